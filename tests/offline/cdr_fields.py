#!/usr/bin/env python3
"""Call lines' signalling fields (src_ip ... q850, core/call_cdr.c) against the Lua rule they
replace (tests/lua/fixtures/cdr_enrich_oracle.lua), on whole captures: every line of the events
file the engine writes must equal, member for member, the line written with the engine's fields
off (--events-fields none) and the oracle rule adding them.

Captures: two calls written here whose fields are also checked against values worked out by
hand (every field, IPv4 and IPv6, the causes of a BYE and of a CANCEL), a generated mix
(gen_traffic), the ones tests/tools/gen_pcaps.py writes, the committed SIPp recordings and flows
(tests/fixtures/pcap), and ../shared/pcaps when it is there.

    cdr_fields.py SIPSCOPE GEN_TRAFFIC SOURCE_DIR WORK_DIR [SHARED_PCAPS]
"""
import collections
import glob
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import gen_pcaps as g  # noqa: E402

FIELDS = ["src_ip", "src_port", "dst_ip", "dst_port", "transport", "user_agent", "server", "pdd",
          "codec", "hangup", "q850"]


def events(binary, capture, out, extra):
    args = [binary, "--read", capture, "--events", out, "--print"] + extra
    # --print: the run's metrics go to the pipe and are dropped; the events file is the output
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with open(out, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


DECAPSULATE = {"gen_mirror.pcap": ["--decapsulate", "vxlan,gre"],
               "gen_hep.pcap": ["--decapsulate", "hep"]}


def sip(start, call_id, cseq, branch, from_tag, to_tag, extra=(), body="",
        caller_side=True):
    """A message of a call from alice (tag from_tag) to bob; caller_side=False swaps From and
    To, as in a request the callee sends."""
    ends = [("alice", from_tag), ("bob", to_tag)]
    if not caller_side:
        ends.reverse()
    (fu, ft), (tu, tt) = ends
    lines = [start, "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bK" + branch,
             "From: <sip:%s@example.com>;tag=%s" % (fu, ft),
             "To: <sip:%s@example.com>" % tu + (";tag=" + tt if tt else ""),
             "Call-ID: " + call_id, "CSeq: " + cseq] + list(extra)
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


SDP = ("v=0\r\no=- 1 1 IN IP4 198.51.100.20\r\ns=-\r\nc=IN IP4 198.51.100.20\r\nt=0 0\r\n"
       "m=audio 4000 RTP/SAVP 111 0\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:111 opus/48000/2\r\n")

# What the two calls of cdr_calls.pcap give, worked out from the messages below.
HAND = {
    "q1": {"src_ip": "192.0.2.10", "src_port": 5062, "dst_ip": "198.51.100.20", "dst_port": 5060,
           "transport": "udp", "user_agent": "Linphone/5.2 (belle-sip)", "server": "FreeSWITCH",
           "pdd": 0.3, "codec": "opus", "hangup": "callee", "q850": 16},
    "q2": {"src_ip": "2001:db8::10", "src_port": 5060, "dst_ip": "2001:db8::20",
           "dst_port": 5070, "transport": "udp", "server": "Yealink SIP-T46S", "pdd": 1.25,
           "q850": 31},
}


def write_calls(path):
    """q1 over IPv4: answered (opus first in the 2xx's SDP), the callee hangs up with a Q.850
    cause. q2 over IPv6: rings, cancelled with a cause, 487 from a phone without Server."""
    p = g.Pcap(path)
    a4, b4 = ("192.0.2.10", 5062), ("198.51.100.20", 5060)
    a6, b6 = ("2001:db8::10", 5060), ("2001:db8::20", 5070)

    def v4(ts, src, dst, payload):
        p.add(ts, g.eth(g.ipv4(src[0], dst[0], 17, g.udp(src[1], dst[1], payload)), 0x0800))

    def v6(ts, src, dst, payload):
        p.add(ts, g.eth(g.ipv6(src[0], dst[0], 17, g.udp(src[1], dst[1], payload)), 0x86DD))

    t = 1700000000.0
    v4(t, a4, b4, sip("INVITE sip:bob@example.com SIP/2.0", "q1", "1 INVITE", "q1i", "ft", None,
                      ["User-Agent: Linphone/5.2 (belle-sip)"]))
    v4(t + 0.3, b4, a4, sip("SIP/2.0 183 Session Progress", "q1", "1 INVITE", "q1i", "ft", "tt"))
    v4(t + 2, b4, a4, sip("SIP/2.0 200 OK", "q1", "1 INVITE", "q1i", "ft", "tt",
                          ["Server: FreeSWITCH", "User-Agent: not-this"], SDP))
    v4(t + 2.01, a4, b4, sip("ACK sip:bob@example.com SIP/2.0", "q1", "1 ACK", "q1a", "ft", "tt"))
    v4(t + 30, b4, a4, sip("BYE sip:alice@example.com SIP/2.0", "q1", "1 BYE", "q1b", "ft", "tt",
                           ["Reason: Q.850;cause=16;text=\"Normal call clearing\""],
                           caller_side=False))
    v4(t + 30.01, a4, b4, sip("SIP/2.0 200 OK", "q1", "1 BYE", "q1b", "ft", "tt",
                              caller_side=False))
    t += 60
    v6(t, a6, b6, sip("INVITE sip:bob@example.com SIP/2.0", "q2", "1 INVITE", "q2i", "ft", None))
    v6(t + 1.25, b6, a6, sip("SIP/2.0 180 Ringing", "q2", "1 INVITE", "q2i", "ft", "tt"))
    v6(t + 5, a6, b6, sip("CANCEL sip:bob@example.com SIP/2.0", "q2", "1 CANCEL", "q2i", "ft",
                          None, ["Reason: Q.850;cause=31"]))
    v6(t + 5.01, b6, a6, sip("SIP/2.0 200 OK", "q2", "1 CANCEL", "q2i", "ft", None))
    v6(t + 5.02, b6, a6, sip("SIP/2.0 487 Request Terminated", "q2", "1 INVITE", "q2i", "ft",
                             "tt", ["User-Agent: Yealink SIP-T46S"]))
    v6(t + 5.03, a6, b6, sip("ACK sip:bob@example.com SIP/2.0", "q2", "1 ACK", "q2i", "ft", "tt"))
    p.close()


def main():
    binary, gen_traffic, src, work = sys.argv[1:5]
    shared = sys.argv[5] if len(sys.argv) > 5 else ""
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    rules = os.path.join(work, "rules")
    os.makedirs(rules)
    shutil.copy(os.path.join(src, "tests/lua/fixtures/cdr_enrich_oracle.lua"), rules)

    calls = os.path.join(work, "cdr_calls.pcap")
    write_calls(calls)
    mix = os.path.join(work, "mix.pcap")
    subprocess.run([gen_traffic, mix, "100000", "1"], check=True, stdout=subprocess.DEVNULL)
    gen = os.path.join(work, "gen")
    subprocess.run([sys.executable, os.path.join(src, "tests/tools/gen_pcaps.py"), gen],
                   check=True, stdout=subprocess.DEVNULL)
    captures = [calls, mix] + sorted(glob.glob(os.path.join(gen, "*.pcap*")))
    captures += sorted(glob.glob(os.path.join(src, "tests/fixtures/pcap/*.pcap")))
    if shared and os.path.isdir(shared):
        captures += sorted(glob.glob(os.path.join(shared, "*.pcap")) +
                           glob.glob(os.path.join(shared, "*.pcapng")))
    else:
        print("shared captures: absent, not compared")

    seen = collections.Counter()
    failures = 0
    by_hand = {a["call_id"]: {k: a[k] for k in FIELDS if k in a}
               for a in events(binary, calls, os.path.join(work, "native.json"), [])}
    if by_hand != HAND:
        print(f"FAIL cdr_calls.pcap: the engine wrote {by_hand}, by hand {HAND}")
        failures += 1
    calls = 0
    for cap in captures:
        name = os.path.basename(cap)
        # The tunnelled captures hold SIP only when opened (gen_pcaps.py's gen_mirror, gen_hep).
        opened = DECAPSULATE.get(name, [])
        native = events(binary, cap, os.path.join(work, "native.json"), opened)
        oracle = events(binary, cap, os.path.join(work, "oracle.json"),
                        opened + ["--rules", rules, "--events-fields", "none"])
        if len(native) != len(oracle):
            print(f"FAIL {name}: {len(native)} lines against the oracle's {len(oracle)}")
            failures += 1
            continue
        bad = [(a, b) for a, b in zip(native, oracle) if a != b]
        for a, b in bad[:3]:
            diff = {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}
            print(f"FAIL {name}: call {a.get('call_id')!r}: engine, oracle: {diff}")
        failures += len(bad)
        n = sum(1 for a in native if a["type"] == "call")
        calls += n
        for a in native:
            seen.update(k for k in FIELDS if k in a)
        print(f"{'ok  ' if not bad else 'FAIL'} {name}: {n} call lines, {len(native)} lines")
    print(f"{calls} call lines in {len(captures)} captures; lines with each field: " +
          ", ".join(f"{k} {seen[k]}" for k in FIELDS))
    # A field no line had was not compared at all: the captures must give each one.
    missing = [k for k in FIELDS if not seen[k]]
    if missing:
        print("FAIL: no capture gave " + ", ".join(missing))
        failures += 1
    if failures:
        print(f"{failures} failures")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
