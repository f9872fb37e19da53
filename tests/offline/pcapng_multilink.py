#!/usr/bin/env python3
"""A pcapng file whose interfaces have different link types, as Wireshark writes when it captures
on several interfaces (eth0 and a tun or WireGuard device): its metrics are exactly the sum of
those of the captures it was made from. libpcap refuses such a file past its first interface.

The file is written here from committed fixtures (Ethernet, little-endian microsecond pcap):
- section 1, little-endian: answered-udp4 as it is (Ethernet, if_tsresol absent: microseconds),
  busy-udp6 as raw IP (LINKTYPE_RAW, the Ethernet header taken off, nanoseconds), and
  JUNK_FRAMES frames of an interface of a link type sipscope does not decode (LINKTYPE_USER0),
  with a name resolution, a statistics and a custom block to skip;
- section 2, big-endian: options-udp4 as raw IPv4 (LINKTYPE_IPV4, microseconds) and
  cancelled-tcp4 (TCP) as Linux cooked (LINKTYPE_LINUX_SLL, nanoseconds). No binary resolution:
  the fixtures' microsecond times stay exact, so that every delay is the same.
Frames are merged by time within each section, as mergecap does. Every counter and histogram
series of the merged file's --print is the sum of the per-fixture ones, plus the junk frames: seen,
and counted as sipscope_parse_errors_total{stage="l2",reason="unsupported_link"}. Gauges are left
out (build_info is 1 whatever the sum). Standard input gives the same bytes as the file.

usage: pcapng_multilink.py SIPSCOPE SOURCE_DIR
"""
import os
import re
import struct
import subprocess
import sys
import tempfile

JUNK_FRAMES = 5
LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LINUX_SLL = 1, 101, 113
LINKTYPE_USER0, LINKTYPE_IPV4 = 147, 228


def read_pcap(path):
    """Frames (time in microseconds, bytes) of a little-endian microsecond Ethernet pcap."""
    with open(path, "rb") as f:
        data = f.read()
    magic, _, _, _, _, _, link = struct.unpack("<IHHiIII", data[:24])
    assert magic == 0xA1B2C3D4 and link == LINKTYPE_ETHERNET, path
    pos, frames = 24, []
    while pos < len(data):
        sec, usec, cap, _ = struct.unpack("<IIII", data[pos:pos + 16])
        frames.append((sec * 1000000 + usec, data[pos + 16:pos + 16 + cap]))
        pos += 16 + cap
    return frames


def strip_ethernet(frame):
    assert struct.unpack("!H", frame[12:14])[0] in (0x0800, 0x86DD), "plain IP over Ethernet"
    return frame[14:]


def to_cooked(frame):
    """Linux cooked v1: packet type (to us), ARPHRD_ETHER, address length, address, protocol."""
    protocol = struct.unpack("!H", frame[12:14])[0]
    return struct.pack("!HHH8sH", 0, 1, 6, frame[6:12] + b"\0\0", protocol) + frame[14:]


class Writer:
    def __init__(self):
        self.out = bytearray()

    def block(self, kind, body, order):
        body += b"\0" * (-len(body) % 4)
        n = 12 + len(body)
        self.out += struct.pack(order + "II", kind, n) + body + struct.pack(order + "I", n)

    def section(self, order):
        self.block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1), order)

    def interface(self, order, linktype, tsresol=None):
        opts = b""
        if tsresol is not None:
            opts = struct.pack(order + "HHB3x", 9, 1, tsresol) + struct.pack(order + "HH", 0, 0)
        self.block(1, struct.pack(order + "HHI", linktype, 0, 0) + opts, order)

    def packet(self, order, iface, ticks, frame):
        self.block(6, struct.pack(order + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF,
                                  len(frame), len(frame)) + frame, order)


def build(fixtures):
    w = Writer()
    # Section 1, little-endian.
    w.section("<")
    w.interface("<", LINKTYPE_ETHERNET)
    w.interface("<", LINKTYPE_RAW, tsresol=9)
    w.interface("<", LINKTYPE_USER0)
    w.block(4, struct.pack("<HH4s", 1, 4, bytes([10, 0, 0, 1])) + b"\0\0\0\0", "<")  # NRB
    answered = read_pcap(fixtures["answered"])
    busy = read_pcap(fixtures["busy"])
    start = answered[0][0]
    frames = [(t, 0, t, f) for t, f in answered]
    frames += [(t, 1, t * 1000, strip_ethernet(f)) for t, f in busy]
    frames += [(start + 1 + i, 2, start + 1 + i, b"junk frame %d" % i) for i in range(JUNK_FRAMES)]
    for _, iface, ticks, frame in sorted(frames, key=lambda x: x[0]):
        w.packet("<", iface, ticks, frame)
    w.block(5, struct.pack("<III", 0, 0, 0) + struct.pack("<HH", 0, 0), "<")  # ISB
    w.block(0x00000BAD, struct.pack("<I", 32473) + b"custom", "<")
    # Section 2, big-endian: its interfaces are numbered from 0 again.
    w.section(">")
    w.interface(">", LINKTYPE_IPV4, tsresol=6)
    w.interface(">", LINKTYPE_LINUX_SLL, tsresol=9)
    options = read_pcap(fixtures["options"])
    cancelled = read_pcap(fixtures["cancelled"])
    frames = [(t, 0, t, strip_ethernet(f)) for t, f in options]
    frames += [(t, 1, t * 1000, to_cooked(f)) for t, f in cancelled]
    for _, iface, ticks, frame in sorted(frames, key=lambda x: x[0]):
        w.packet(">", iface, ticks, frame)
    return bytes(w.out)


SERIES = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$")


def metrics(sipscope, path, stdin=None):
    """{series: value} of the counter and histogram families of --print, and the raw output."""
    run = subprocess.run([sipscope, "--read", path, "--print"], stdin=stdin,
                         capture_output=True, check=False)
    if run.returncode != 0:
        raise RuntimeError("%s: exit status %d: %s" % (path, run.returncode,
                                                      run.stderr.decode().strip()))
    types, values = {}, {}
    for line in run.stdout.decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
        elif line and not line.startswith("#"):
            m = SERIES.match(line)
            name = m.group(1)
            family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
            if types.get(family) in ("counter", "histogram"):
                values[name + (m.group(2) or "")] = float(m.group(3))
    return values, run.stdout


def main():
    sipscope, top = sys.argv[1], sys.argv[2]
    fixture_dir = os.path.join(top, "tests", "fixtures", "pcap")
    fixtures = {name: os.path.join(fixture_dir, "%s.pcap" % f) for name, f in
                (("answered", "answered-udp4"), ("busy", "busy-udp6"),
                 ("options", "options-udp4"), ("cancelled", "cancelled-tcp4"))}
    passed = failed = 0
    with tempfile.TemporaryDirectory() as work:
        merged = os.path.join(work, "multilink.pcapng")
        with open(merged, "wb") as f:
            f.write(build(fixtures))
        want = {}
        for path in fixtures.values():
            for k, v in metrics(sipscope, path)[0].items():
                want[k] = want.get(k, 0) + v
        want['sipscope_packets_total{iface="file",result="seen"}'] += JUNK_FRAMES
        key = 'sipscope_parse_errors_total{stage="l2",reason="unsupported_link"}'
        want[key] = want.get(key, 0) + JUNK_FRAMES
        try:
            got, out = metrics(sipscope, merged)
        except RuntimeError as e:
            print("FAIL the merged file is read to its end: %s" % e)
            print("0 passed, 1 failed, 0 skipped")
            return 1
        for k in sorted(set(want) | set(got)):
            w, g = want.get(k, 0), got.get(k, 0)
            # Histogram sums are floating point, added in another order.
            if k.split("{")[0].endswith("_sum"):
                same = abs(w - g) <= 1e-9 * max(1, abs(w))
            else:
                same = w == g
            if same:
                passed += 1
            else:
                failed += 1
                print("FAIL %s: %s, the sum of the fixtures' is %s" % (k, g, w))
        # The manifests (*.expect): three calls in each of answered, busy and cancelled.
        if got.get('sip_requests_total{method="INVITE"}') != 9:
            failed += 1
            print("FAIL the merged file holds 9 INVITEs")
        with open(merged, "rb") as f:
            if metrics(sipscope, "-", stdin=f)[1] == out:
                passed += 1
            else:
                failed += 1
                print("FAIL standard input gives other metrics than the file")
    print("%d passed, %d failed, 0 skipped" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
