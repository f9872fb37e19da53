#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_pipeline (format in tests/fuzz/fuzz_pipeline.c) from the
generated captures (tests/tools/gen_pcaps.py), the SIPp TCP capture and the SIP fixtures, RFC
4475's torture messages among them (each wrapped in an Ethernet/IPv4/UDP frame and in a TCP
segment split in two), and, read with an events file, calls that give every call-record field
(tests/offline/cdr_fields.py's two calls, SIPp's answered and cancelled calls).

usage: make_corpus.py OUTDIR   (the committed corpus is tests/fuzz/corpus)
"""
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, "tests", "tools"))
sys.path.insert(0, os.path.join(TOP, "tests", "offline"))
import cdr_fields  # noqa: E402
import gen_pcaps  # noqa: E402

# The options byte (tests/fuzz/fuzz_pipeline.c).
SIP_PORTS, DECAPSULATE, EVENTS, DEDUP = 1, 2, 4, 8

LINKS = {1: 0, 101: 1, 113: 2, 276: 3, 0: 4, 228: 5, 229: 6, 108: 7}
MAX_FILE = 16384  # keep seeds small: libFuzzer mutates small inputs faster


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack("<I", data[:4])
    assert magic == 0xA1B2C3D4, "little-endian microsecond pcap only"
    link = struct.unpack("<I", data[20:24])[0]
    pos, frames = 24, []
    while pos + 16 <= len(data):
        sec, usec, cap, _ = struct.unpack("<IIII", data[pos:pos + 16])
        frames.append((sec + usec / 1e6, data[pos + 16:pos + 16 + cap]))
        pos += 16 + cap
    return link, frames


def records(link, frames):
    out, prev = [], None
    for ts, frame in frames:
        step = 0 if prev is None else max(0, min(65535, int(round((ts - prev) * 1000))))
        prev = ts
        out.append(struct.pack("<BHH", LINKS[link], step, len(frame)) + frame)
    return out


def write_split(outdir, stem, opts, recs):
    """One file per run of records that fits MAX_FILE. A record over MAX_FILE alone (gen_ws's
    60,000-byte segments) is left out: one large seed would raise libFuzzer's input size for
    the whole run, and tests/offline covers those."""
    n, cur = 0, b""
    for r in recs:
        if len(r) + 1 > MAX_FILE:
            continue
        if cur and len(cur) + len(r) > MAX_FILE:
            write(outdir, f"{stem}-{n}", bytes([opts]) + cur)
            n, cur = n + 1, b""
        cur += r
    if cur:
        write(outdir, f"{stem}-{n}", bytes([opts]) + cur)


def write(outdir, name, data):
    with open(os.path.join(outdir, name), "wb") as f:
        f.write(data)


def rec(frame, step=0, kind=0):
    return struct.pack("<BHH", kind, step, len(frame)) + frame


def write_floods(outdir):
    """Seeds that reach the caps of the fuzzer's small tables at once: fragment floods (more
    datagrams than the table, more pieces than IP_REASM_MAX_HOLES, cut and oversized
    fragments, inconsistent ends) and TCP floods (more streams than the table, more
    out-of-order segments than the list holds, a window jump, RST)."""
    g = gen_pcaps
    A, B = "192.0.2.1", "192.0.2.2"
    body = g.udp(5060, 5060, g.request("INVITE", "fl", 1, "fl", "ft", body=g.sdp(30)))
    recs = b""
    for ident in range(12):                       # 12 datagrams in progress: evictions
        recs += rec(g.eth(g.ipv4(A, B, 17, body[:64], ident, 0, True), 0x0800), 1)
    for i in range(40):                           # 40 separate pieces: too many holes
        recs += rec(g.eth(g.ipv4(A, B, 17, body[:8], 99, i * 16, True), 0x0800))
    recs += rec(g.eth(g.ipv4(A, B, 17, body[:64], 98, 0, True), 0x0800), 0, 0x80)  # cut
    recs += rec(g.eth(g.ipv4(A, B, 17, body[:64], 97, 65528, False), 0x0800))      # too big
    recs += rec(g.eth(g.ipv4(A, B, 17, body[:12], 96, 0, True), 0x0800))           # not /8
    recs += rec(g.eth(g.ipv4(A, B, 17, body[:16], 95, 16, False), 0x0800))
    recs += rec(g.eth(g.ipv4(A, B, 17, body[:16], 95, 32, False), 0x0800))         # two ends
    recs += rec(g.eth(g.ipv4(A, B, 17, body[:8], 95, 0, True), 0x0800), 31000)     # timeout
    write(outdir, "flood-fragments", bytes([0]) + recs)

    recs = b""
    msg = g.request("OPTIONS", "t", 1, "t", "ft", transport="TCP")
    for port in range(12):                        # 12 half-streams: evictions
        seg = g.tcp(40000 + port, 5060, 1000, 1, g.ACK, msg)
        recs += rec(g.eth(g.ipv4(A, B, 6, seg), 0x0800), 1)
    for i in range(20):                           # out-of-order segments past the list cap
        seg = g.tcp(41000, 5060, 5000 + 100 * (i + 1), 1, g.ACK, msg[:50])
        recs += rec(g.eth(g.ipv4(A, B, 6, seg), 0x0800))
    recs += rec(g.eth(g.ipv4(A, B, 6, g.tcp(41000, 5060, 5000, 1, g.ACK, msg)), 0x0800))
    recs += rec(g.eth(g.ipv4(A, B, 6, g.tcp(41000, 5060, 90000000, 1, g.ACK, msg)), 0x0800))
    recs += rec(g.eth(g.ipv4(B, A, 6, g.tcp(5060, 41000, 1, 1, g.RST)), 0x0800))
    recs += rec(g.eth(g.ipv4(A, B, 6, g.tcp(41000, 5060, 99, 1, g.SYN)), 0x0800), 400)
    write(outdir, "flood-tcp", bytes([1]) + recs)


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, os.path.join(TOP, "tests/tools/gen_pcaps.py"), tmp],
                       check=True)
        pcaps = [os.path.join(tmp, n) for n in sorted(os.listdir(tmp))]
        pcaps.append(os.path.join(TOP, "tests/fixtures/pcap/sipp_tcp.pcap"))
        for path in pcaps:
            link, frames = read_pcap(path)
            stem = os.path.splitext(os.path.basename(path))[0]
            opts = DECAPSULATE if stem in ("gen_mirror", "gen_hep", "gen_dup_hep") else 0
            if stem.startswith("gen_dup"):  # packets captured twice, dropped as copies
                opts |= DEDUP
            write_split(outdir, stem, opts, records(link, frames))
        calls = os.path.join(tmp, "cdr_calls.pcap")
        cdr_fields.write_calls(calls)
        for path in [calls] + [os.path.join(TOP, "tests/fixtures/pcap", n + ".pcap")
                               for n in ("answered-udp6", "cancelled-tcp4")]:
            link, frames = read_pcap(path)
            stem = os.path.splitext(os.path.basename(path))[0]
            write_split(outdir, stem, EVENTS, records(link, frames))
    write_floods(outdir)
    fixtures = os.path.join(TOP, "tests/fixtures/sip")
    # The fixtures, then the RFC 4475 torture messages of its rfc4475 directory.
    paths = [(os.path.join(fixtures, n), "sip-" + os.path.splitext(n)[0])
             for n in sorted(os.listdir(fixtures)) if n.endswith(".sip")]
    paths += [(os.path.join(fixtures, "rfc4475", n), "sip-rfc4475-" + os.path.splitext(n)[0])
              for n in sorted(os.listdir(os.path.join(fixtures, "rfc4475"))) if n.endswith(".sip")]
    for path, stem in paths:
        with open(path, "rb") as f:
            msg = f.read()
        A, B = "192.0.2.1", "192.0.2.2"
        dgram = gen_pcaps.eth(gen_pcaps.ipv4(A, B, 17, gen_pcaps.udp(5060, 5060, msg)), 0x0800)
        write(outdir, stem + "-udp", bytes([1]) + struct.pack("<BHH", 0, 0, len(dgram)) + dgram)
        half = len(msg) // 2
        segs = [(gen_pcaps.SYN, 99, b""), (gen_pcaps.ACK, 100, msg[:half]),
                (gen_pcaps.ACK, 100 + half, msg[half:])]
        recs = b""
        for flags, seq, payload in segs:
            fr = gen_pcaps.eth(gen_pcaps.ipv4(A, B, 6, gen_pcaps.tcp(40000, 5060, seq, 1, flags,
                                                                     payload)), 0x0800)
            recs += struct.pack("<BHH", 0, 1, len(fr)) + fr
        write(outdir, stem + "-tcp", bytes([0]) + recs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
