#!/usr/bin/env python3
"""Conformance of --dedup-window on the third-party captures of ../shared/pcaps: on each one,
the SIP metrics (every sip_* series) must be the same with and without --dedup-window 10ms, and
the copies sipscope drops must be the ones an independent count finds in tshark's dissection
(captures with IP fragments, or with VXLAN, GRE or HEP that tshark opens and sipscope without
--decapsulate does not, are left out of that count).

The count applies README's rule to tshark's fields: a UDP datagram or TCP segment is a copy
when one with the same contents (protocol, payload, and a TCP segment's sequence and
acknowledgement numbers and flags) was seen less than 10 ms before on another path, or on any
path from a mirror (a cooked header's "to another host"). The path is the outer sources of
IP-in-IP, plus the cooked header's packet type and ifindex where the file has one, else the VLAN
tags, addresses and ports; the time compared is that of the last packet with those contents on
the first path. Frames cut at the snap length, ICMP (which quotes a datagram, not sends it) and
keep-alives (line breaks alone) are never copies.

usage: dedup_compare.py SIPSCOPE SHARED_PCAPS CAPTURE...
Skips (77) when the folder, tshark or capinfos is absent.
"""
import hashlib
import os
import shutil
import subprocess
import sys

WINDOW = 0.010
FIELDS = ["frame.time_epoch", "frame.cap_len", "frame.len", "frame.protocols", "ip.src",
          "ip.dst", "ipv6.src", "ipv6.dst", "udp.srcport", "udp.dstport", "tcp.srcport",
          "tcp.dstport", "tcp.seq_raw", "tcp.ack_raw", "tcp.flags", "udp.payload", "tcp.payload",
          "vlan.id", "ip.flags.mf", "ip.frag_offset", "ipv6.fraghdr.offset", "sll.pkttype",
          "sll.ifindex"]
OPENED_BY_TSHARK = ("vxlan", "gre", "erspan", "hep")  # sipscope opens them with --decapsulate
OTHERHOST = "3"  # a cooked header's packet type: sent to another host


def encapsulation(path):
    out = subprocess.run(["capinfos", "-E", "-T", path], capture_output=True, text=True,
                         check=True).stdout
    return out.strip().split("\n")[-1].split("\t")[1]


def expected_copies(path):
    """The copies by the rule above, or None when the capture holds IP fragments or tunnels that
    tshark opens."""
    cooked = encapsulation(path) in ("linux-sll", "linux-sll2")
    cmd = ["tshark", "-r", path, "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE",
           "-o", "tcp.desegment_tcp_streams:FALSE", "-T", "fields", "-E", "occurrence=a"]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    seen, copies = {}, 0
    for line in out.split("\n"):
        if not line:
            continue
        v = dict(zip(FIELDS, line.split("\t")))

        def last(k):  # the innermost header's, in a tunnel
            return v[k].split(",")[-1] if v[k] else ""
        protocols = v["frame.protocols"].split(":")
        if last("ip.flags.mf") in ("1", "True") or last("ip.frag_offset") not in ("", "0") or \
                v["ipv6.fraghdr.offset"] or any(p in protocols for p in OPENED_BY_TSHARK):
            return None
        if int(v["frame.cap_len"]) < int(v["frame.len"]) or "icmp" in protocols or \
                "icmpv6" in protocols:
            continue
        if last("udp.srcport"):
            if set(bytes.fromhex(last("udp.payload").replace(":", ""))) <= {0x0D, 0x0A}:
                continue  # a keep-alive
            content = ("udp", last("udp.payload"))
            ports = (last("udp.srcport"), last("udp.dstport"))
        elif last("tcp.srcport"):
            content = ("tcp", last("tcp.payload"), last("tcp.seq_raw"), last("tcp.ack_raw"),
                       int(last("tcp.flags"), 16) & 0xFF)
            ports = (last("tcp.srcport"), last("tcp.dstport"))
        else:
            continue
        outer = (v["ip.src"].split(",")[:-1], v["ipv6.src"].split(",")[:-1])  # IP-in-IP
        if cooked:
            path_of = (outer, v["sll.pkttype"], v["vlan.id"], v["sll.ifindex"])
        else:
            path_of = (outer, v["vlan.id"], last("ipv6.src") or last("ip.src"),
                       last("ipv6.dst") or last("ip.dst"), ports)
        mirrored = cooked and v["sll.pkttype"] == OTHERHOST
        t = float(v["frame.time_epoch"])
        key = hashlib.sha256(repr(content).encode()).hexdigest()
        if key in seen and abs(t - seen[key][0]) <= WINDOW:
            if seen[key][1] != path_of or mirrored:
                copies += 1
                continue
        seen[key] = (t, path_of)
    return copies


def exposition(sipscope, path, extra):
    proc = subprocess.run([sipscope, "--read", path, "--print", *extra], capture_output=True,
                          text=True)
    if proc.returncode not in (0, 3):  # 3: a capture cut short, still printed
        raise RuntimeError(f"{path}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout.split("\n")


def main():
    sipscope, shared, captures = sys.argv[1], sys.argv[2], sys.argv[3:]
    missing = [t for t in ("tshark", "capinfos") if not shutil.which(t)]
    if not os.path.isdir(shared) or missing:
        print(f"skipped: needs {shared} and {', '.join(missing) or 'nothing else'}")
        print("0 passed, 0 failed, 1 skipped")
        return 77
    passed = failed = 0
    for name in captures:
        path = os.path.join(shared, name)
        kept = exposition(sipscope, path, [])
        dropped = exposition(sipscope, path, ["--dedup-window", "10ms"])
        problems = []
        sip_kept = [line for line in kept if line.startswith("sip_")]
        sip_dropped = [line for line in dropped if line.startswith("sip_")]
        if sip_kept != sip_dropped:
            diff = sorted(set(sip_kept) ^ set(sip_dropped))
            problems.append("the SIP metrics differ: " + "; ".join(diff[:6]))
        got = sum(float(line.split()[-1]) for line in dropped
                  if line.startswith("sipscope_capture_duplicates_total{"))
        want = expected_copies(path)
        if want is not None and got != want:
            problems.append(f"{got:g} copies dropped, tshark's fields give {want}")
        if problems:
            failed += 1
            print(f"FAIL {name}: " + "; ".join(problems))
        else:
            passed += 1
            print(f"ok   {name}: {got:g} copies" + (" (fragments or tunnels: not counted)"
                                                     if want is None else ""))
    print(f"{passed} passed, {failed} failed, 0 skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
