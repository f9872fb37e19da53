#!/usr/bin/env python3
"""Conformance of --dedup-window on the third-party captures of ../shared/pcaps: on each one,
the SIP metrics (every sip_* series) must be the same with and without --dedup-window 10ms, and
the copies sipscope drops must be the ones an independent count finds in tshark's dissection
(captures with IP fragments are left out of that count: tshark does not reassemble them here).

The count applies README's rule to tshark's fields: a UDP datagram or TCP segment is a copy
when one with the same contents (protocol, payload, and a TCP segment's sequence number and
flags) was seen less than 10 ms before on another path. The path is the cooked header's packet
type and ifindex where the file has one, else the VLAN tags, addresses and ports; the time
compared is that of the last packet with those contents on the first path. Frames cut at the
snap length are never copies.

usage: dedup_compare.py SIPSCOPE SHARED_PCAPS CAPTURE...
Skips (77) when the folder, tshark or capinfos is absent.
"""
import hashlib
import os
import shutil
import subprocess
import sys

WINDOW = 0.010
FIELDS = ["frame.time_epoch", "frame.cap_len", "frame.len", "ip.src", "ip.dst", "ipv6.src",
          "ipv6.dst", "udp.srcport", "udp.dstport", "tcp.srcport", "tcp.dstport", "tcp.seq_raw",
          "tcp.flags", "udp.payload", "tcp.payload", "vlan.id", "ip.flags.mf", "ip.frag_offset",
          "ipv6.fraghdr.offset", "sll.pkttype", "sll.ifindex"]


def encapsulation(path):
    out = subprocess.run(["capinfos", "-E", "-T", path], capture_output=True, text=True,
                         check=True).stdout
    return out.strip().split("\n")[-1].split("\t")[1]


def expected_copies(path):
    """The copies by the rule above, or None when the capture holds IP fragments."""
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
        if last("ip.flags.mf") in ("1", "True") or last("ip.frag_offset") not in ("", "0") or \
                v["ipv6.fraghdr.offset"]:
            return None
        if int(v["frame.cap_len"]) < int(v["frame.len"]):
            continue
        if last("udp.srcport"):
            content = ("udp", last("udp.payload"))
            ports = (last("udp.srcport"), last("udp.dstport"))
        elif last("tcp.srcport"):
            content = ("tcp", last("tcp.payload"), last("tcp.seq_raw"),
                       int(last("tcp.flags"), 16) & 0xFF)
            ports = (last("tcp.srcport"), last("tcp.dstport"))
        else:
            continue
        if cooked:
            path_of = (v["sll.pkttype"], v["vlan.id"], v["sll.ifindex"])
        else:
            path_of = (v["vlan.id"], last("ipv6.src") or last("ip.src"),
                       last("ipv6.dst") or last("ip.dst"), ports)
        t = float(v["frame.time_epoch"])
        key = hashlib.sha256(repr(content).encode()).hexdigest()
        if key in seen and abs(t - seen[key][0]) <= WINDOW:
            if seen[key][1] != path_of:
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
            print(f"ok   {name}: {got:g} copies" + (" (fragments: not counted by tshark)"
                                                     if want is None else ""))
    print(f"{passed} passed, {failed} failed, 0 skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
