#!/usr/bin/env python3
"""Offline end-to-end: sipscope --read CAPTURE --print on the hard-transport captures, with
exact metric values.

Captures: the ones tests/tools/gen_pcaps.py writes (generated into OUTDIR at test time), the
committed SIPp-over-TCP capture (scripts/record-tcp-fixture.sh), and two third-party captures
of ../shared/pcaps (skipped when that folder is absent). Every expected value below was worked
out by hand from the scenario that produced the capture (see the generator's comments), not
recorded from sipscope's output.

For each capture, the families in EXACT must hold exactly the non-zero series listed (a
missing or an extra series fails); SERIES are single values checked as given, zero included
(None: the series must be absent).

usage: test_offline.py SIPSCOPE SOURCE_DIR OUTDIR SHARED_PCAPS
"""
import os
import subprocess
import sys

from expect import scrape, series_name  # tests/offline/expect.py, beside this script

EXACT = ("sip_requests_total", "sip_responses_total", "sip_session_outcomes_total",
         "sip_dialogs_ended_total", "sipscope_sip_messages_total", "sipscope_parse_errors_total",
         "sip_retransmissions_total")  # none anywhere: TCP resends and duplicate fragments are
# reassembly duplicates, not SIP retransmissions (METRICS.md)


def L(**kw):
    return frozenset(kw.items())


def req(**counts):
    return {("sip_requests_total", L(method=m)): v for m, v in counts.items()}


def resp(*items):
    """items: (method, code, count)"""
    return {("sip_responses_total", L(method=m, code=str(c))): v for m, c, v in items}


def outcomes(**counts):
    return {("sip_session_outcomes_total", L(code=c.lstrip("_"))): v for c, v in counts.items()}


def ended(**counts):
    return {("sip_dialogs_ended_total", L(reason=r)): v for r, v in counts.items()}


def msgs(*items):
    """items: (transport, ip, count)"""
    return {("sipscope_sip_messages_total", L(transport=t, ip=str(i))): v for t, i, v in items}


def errors(*items):
    """items: (stage, reason, count)"""
    return {("sipscope_parse_errors_total", L(stage=s, reason=r)): v for s, r, v in items}


def one(name, value, **labels):
    return {(name, L(**labels)): value}


def packets(seen, matched, decoded):
    """Frames of the capture: captured, past the port filter, yielding SIP (a reassembled
    datagram counts once, when its last fragment comes)."""
    return {("sipscope_packets_total", L(iface="file", result=r)): v
            for r, v in (("seen", seen), ("matched", matched), ("decoded", decoded))}


def merge(*dicts):
    out = {}
    for d in dicts:
        out.update(d)
    return out


WS_EXACT = merge(
    req(REGISTER=2, INVITE=1, ACK=1, BYE=1, OPTIONS=4, NOTIFY=1, MESSAGE=6),
    resp(("REGISTER", 401, 1), ("REGISTER", 200, 1), ("INVITE", 100, 1), ("INVITE", 180, 1),
         ("INVITE", 200, 1), ("BYE", 200, 1), ("OPTIONS", 200, 3), ("MESSAGE", 200, 1)),
    outcomes(_200=1), ended(bye=1),
    msgs(("ws", 4, 18), ("ws", 6, 2), ("tcp", 4, 6)),
    errors(("reasm", "ws_compressed", 1), ("reasm", "tcp_resync", 5), ("sip", "start_line", 1)))
WS_SINGLE = merge(one("sip_sessions_completed_total", 1),
                  one("sip_registration_attempts_total", 1),
                  one("sip_registration_outcomes_total", 1, code="200"),
                  one("sip_registrations_active", 1),
                  packets(88, 88, 22))

# name -> (where, extra args, exact series, single series)
# Mirrored traffic (gen_mirror): in VXLAN, a rejected call (INVITE, 486, ACK), a REGISTER and its
# 200 over TCP (4 in the TCP count; the handshake decodes nothing), a MESSAGE in a fragmented
# outer datagram and its 200; VXLAN on 8472 over IPv6 around IPv6: OPTIONS, 200; GRE with a key:
# REGISTER, 200 (another AOR); gretap: MESSAGE, 200; ERSPAN II and III: OPTIONS, 200 each; last,
# in VXLAN, an INVITE its mirror cut in its SDP (a truncated packet, its body shorter than its
# Content-Length), its 486, ACK. 24 frames: the first fragment is not matched until the
# datagram is whole, and 20 carry a SIP message. With both tunnels opened:
MIRROR_EXACT = merge(
    req(INVITE=2, ACK=2, OPTIONS=3, REGISTER=2, MESSAGE=2),
    resp(("INVITE", 486, 2), ("OPTIONS", 200, 3), ("REGISTER", 200, 2), ("MESSAGE", 200, 2)),
    outcomes(_486=2), ended(rejected=2),
    msgs(("udp", 4, 16), ("udp", 6, 2), ("tcp", 4, 2)),
    errors(("sip", "body_truncated", 1)))
MIRROR_SINGLE = merge(one("sip_registration_outcomes_total", 2, code="200"),
                      one("sip_registrations_active", 2),
                      one("sipscope_capture_truncated_total", 1, iface="file"),
                      packets(24, 23, 20))

# gen_dup: a capture of a host with a VLAN and NAT, packets twice (the generator's docstring): an
# answered call; OPTIONS and 200 NATed; OPTIONS, the same sent again 0.5 s later, 200; a
# fragmented INVITE, 486, ACK; OPTIONS and 200 over TCP; a fragmented INVITE NATed, 486, ACK;
# an OPTIONS sent three times on one path, 200. With --dedup-window each copy is dropped: 25,
# the NATed fragments as one datagram once whole. Every message counts once, but those sent
# again: the OPTIONS 0.5 s later and the two of the flood (no copies: the same path) are the
# three retransmissions. Of the 58 frames, 27 reach the port filter (the first copies but
# fragments until whole, the TCP handshake included); 24 carry SIP.
DUP_EXACT = merge(
    req(INVITE=3, ACK=3, BYE=1, OPTIONS=7),
    resp(("INVITE", 100, 1), ("INVITE", 180, 1), ("INVITE", 200, 1), ("INVITE", 486, 2),
         ("BYE", 200, 1), ("OPTIONS", 200, 4)),
    outcomes(_200=1, _486=2), ended(bye=1, rejected=2),
    msgs(("udp", 4, 22), ("tcp", 4, 2)),
    {("sip_retransmissions_total", L(method="OPTIONS", kind="request")): 3})
DUP_SINGLE = merge(one("sipscope_capture_duplicates_total", 25, iface="file"),
                   packets(58, 27, 24))
# Without it (the offline default) a file is read as it was captured: each UDP message counts
# twice, its copy as a retransmission, and so does the NATed INVITE, reassembled twice; the
# tagged INVITE's copied fragments are reassembly duplicates, and so are the TCP segments with
# data (the handshake's copies are no error).
DUP_KEPT_EXACT = merge(
    req(INVITE=5, ACK=6, BYE=2, OPTIONS=10),
    resp(("INVITE", 100, 2), ("INVITE", 180, 2), ("INVITE", 200, 2), ("INVITE", 486, 4),
         ("BYE", 200, 2), ("OPTIONS", 200, 6)),
    outcomes(_200=1, _486=2), ended(bye=1, rejected=2),
    msgs(("udp", 4, 39), ("tcp", 4, 2)),
    errors(("reasm", "fragment_duplicate", 3), ("reasm", "tcp_retransmission", 2)),
    {("sip_retransmissions_total", L(method=m, kind=k)): v for m, k, v in (
        ("INVITE", "request", 2), ("INVITE", "response", 5), ("ACK", "request", 3),
        ("BYE", "request", 1), ("BYE", "response", 1), ("OPTIONS", "request", 6),
        ("OPTIONS", "response", 2))})
DUP_KEPT_SINGLE = merge(one("sipscope_capture_duplicates_total", None, iface="file"),
                        packets(58, 49, 41))

# gen_dup_sll2: tcpdump -i any in Linux cooked v2 on a host with a bond, each packet on the slave
# and on the bond (the generator's docstring): an answered call, then the same OPTIONS bytes
# from two senders on the slave. The cooked header's ifindex tells the bond's copies (7); the
# two OPTIONS share a path and both count, the second as a retransmission (the same branch).
DUP_SLL2_EXACT = merge(
    req(INVITE=1, ACK=1, BYE=1, OPTIONS=2),
    resp(("INVITE", 100, 1), ("INVITE", 180, 1), ("INVITE", 200, 1), ("BYE", 200, 1)),
    outcomes(_200=1), ended(bye=1),
    msgs(("udp", 4, 9)),
    {("sip_retransmissions_total", L(method="OPTIONS", kind="request")): 1})
DUP_SLL2_SINGLE = merge(one("sipscope_capture_duplicates_total", 7, iface="file"),
                        packets(16, 9, 9))

# gen_dup_hep: an OPTIONS captured here and reported in HEP by two agents, its 200 here and by
# one agent. The agent that sent a HEP packet is part of its path: 3 copies, each message once.
DUP_HEP_EXACT = merge(req(OPTIONS=1), resp(("OPTIONS", 200, 1)), msgs(("udp", 4, 2)))
DUP_HEP_SINGLE = merge(one("sipscope_capture_duplicates_total", 3, iface="file"),
                       packets(5, 2, 2))

CASES = {
    "gen_dup_hep.pcap --decapsulate hep --dedup-window 10ms": (
        "gen", ["--decapsulate", "hep", "--dedup-window", "10ms"], DUP_HEP_EXACT,
        DUP_HEP_SINGLE),
    "gen_dup_sll2.pcap --dedup-window 10ms": ("gen", ["--dedup-window", "10ms"],
                                              DUP_SLL2_EXACT, DUP_SLL2_SINGLE),
    "gen_dup.pcap --dedup-window 10ms": ("gen", ["--dedup-window", "10ms"], DUP_EXACT,
                                         DUP_SINGLE),
    "gen_dup.pcap": ("gen", [], DUP_KEPT_EXACT, DUP_KEPT_SINGLE),
    # Connection 1, IPv4, handshake seen: a keep-alive-prefixed INVITE, 100 and 180 in one
    # segment, the 200 in three segments sent last-first and one of them resent, ACK and a BYE
    # cut across two segments, a pong, a ping before the 200 to the BYE. One call: answered,
    # ended by BYE. The resent segment is one reassembly duplicate, not a SIP retransmission.
    # Connection 2, IPv6, picked up mid-stream: the tail of an earlier message (skipped once:
    # tcp_resync), OPTIONS; a MESSAGE without Content-Length (RFC 3261 §18.3: an error,
    # skipped up to the next start line), OPTIONS; junk before a request line (start_line),
    # OPTIONS; each OPTIONS answered 200. Both halves of connection 1 ended and linger; both
    # of connection 2 are open: four TCP table entries.
    "gen_tcp_stream.pcap": ("gen", [], merge(
        req(INVITE=1, ACK=1, BYE=1, OPTIONS=3),
        resp(("INVITE", 100, 1), ("INVITE", 180, 1), ("INVITE", 200, 1), ("BYE", 200, 1),
             ("OPTIONS", 200, 3)),
        outcomes(_200=1), ended(bye=1),
        msgs(("tcp", 4, 7), ("tcp", 6, 6)),
        errors(("reasm", "tcp_retransmission", 1), ("reasm", "tcp_resync", 1),
               ("sip", "content_length", 1), ("sip", "start_line", 1))),
        merge(one("sipscope_table_entries", 4, table="tcp"),
              one("sipscope_table_evictions_total", 0, table="tcp"),
              one("sip_sessions_completed_total", 1))),
    # Call A: INVITE in three fragments sent 2, 0, 1; 180; a 200 in two fragments; ACK, BYE,
    # 200. Call B: INVITE whose second fragment is captured twice (one duplicate), 486, ACK.
    # INVITE C: middle fragment missing, given up 30 s later (the OPTIONS at +40 s runs the
    # timer). INVITE D: a conflicting overlap drops it. Then OPTIONS and 200.
    "gen_frag_udp4.pcap": ("gen", [], merge(
        req(INVITE=2, ACK=2, BYE=1, OPTIONS=1),
        resp(("INVITE", 180, 1), ("INVITE", 200, 1), ("BYE", 200, 1), ("INVITE", 486, 1),
             ("OPTIONS", 200, 1)),
        outcomes(_200=1, _486=1), ended(bye=1, rejected=1),
        msgs(("udp", 4, 11)),
        errors(("reasm", "fragment_duplicate", 1), ("reasm", "fragment_timeout", 1),
               ("reasm", "fragment_overlap", 1))),
        merge(one("sipscope_table_entries", 0, table="reasm"),
              one("sipscope_table_evictions_total", 0, table="reasm"),
              # A: 3 + 1 + 2 + 3 frames, B: 4 + 2, C: 2, D: 2, OPTIONS and 200: 21 frames;
              # 11 datagrams complete, each SIP.
              packets(21, 11, 11))),
    # INVITE in three IPv6 fragments in reverse order, 100, a 200 in two fragments, ACK, BYE,
    # 200; then an INVITE whose second fragment overlaps the first by 8 bytes (RFC 5722: the
    # datagram is dropped, though the bytes agree).
    "gen_frag_udp6.pcap": ("gen", [], merge(
        req(INVITE=1, ACK=1, BYE=1),
        resp(("INVITE", 100, 1), ("INVITE", 200, 1), ("BYE", 200, 1)),
        outcomes(_200=1), ended(bye=1),
        msgs(("udp", 6, 6)),
        errors(("reasm", "fragment_overlap", 1))),
        one("sipscope_table_entries", 0, table="reasm")),
    # An OPTIONS in IPv6 fragments nested five levels deep (reassembled), and another nested
    # seven levels: its five outer levels are reassembled, the fragment the fifth yields is
    # given up and counted, and the two inner levels' second halves stay in the table, waiting
    # for first halves that never come, until their timeout.
    "gen_frag_nested6.pcap": ("gen", [], merge(
        req(OPTIONS=1),
        msgs(("udp", 6, 1)),
        errors(("reasm", "fragment_nested", 1))),
        merge(one("sipscope_table_entries", 2, table="reasm"), packets(14, 1, 1))),
    # QinQ (802.1ad 100 + 802.1Q 200): REGISTER, 401, REGISTER, 200 with one Contact (one
    # attempt, challenge folded, one binding); 0x9100 + 802.1ad + 802.1Q: OPTIONS, 200.
    "gen_qinq.pcap": ("gen", [], merge(
        req(REGISTER=2, OPTIONS=1),
        resp(("REGISTER", 401, 1), ("REGISTER", 200, 1), ("OPTIONS", 200, 1)),
        msgs(("udp", 4, 6))),
        merge(one("sip_registration_attempts_total", 1),
              one("sip_registration_outcomes_total", 1, code="200"),
              one("sip_registrations_active", 1),
              packets(6, 6, 6))),
    # The same capture filtered to a port it does not use: every frame seen, none matched.
    "gen_qinq.pcap --sip-ports 5061": ("gen", ["--sip-ports", "5061"], {},
        merge(packets(6, 0, 0), one("sip_registration_attempts_total", 0))),
    # 4in4: INVITE, 486, ACK (a rejected call). 6in4: OPTIONS, 200. 4in6 carrying TCP:
    # handshake, REGISTER, 200 with one Contact. A 4in4 packet fragmented outside the tunnel: MESSAGE; its 200.
    "gen_ipip.pcap": ("gen", [], merge(
        req(INVITE=1, ACK=1, OPTIONS=1, REGISTER=1, MESSAGE=1),
        resp(("INVITE", 486, 1), ("OPTIONS", 200, 1), ("REGISTER", 200, 1),
             ("MESSAGE", 200, 1)),
        outcomes(_486=1), ended(rejected=1),
        msgs(("udp", 4, 5), ("udp", 6, 2), ("tcp", 4, 2))),
        merge(one("sip_registration_outcomes_total", 1, code="200"),
              one("sip_registrations_active", 1),
              one("sipscope_table_entries", 2, table="tcp"))),
    # Mirrored traffic: gen_mirror, above.
    "gen_mirror.pcap --decapsulate vxlan,gre": ("gen", ["--decapsulate", "vxlan,gre"],
                                                MIRROR_EXACT, MIRROR_SINGLE),
    # Without --decapsulate: no SIP at all. The VXLAN datagrams (15, the fragmented one once)
    # are UDP that is not SIP; GRE is no transport.
    "gen_mirror.pcap": ("gen", [], {}, packets(24, 15, 0)),
    # VXLAN alone ("erspan" would name GRE): the GRE ones stay shut (REGISTER over UDP, MESSAGE,
    # two OPTIONS, and their responses: 8 frames).
    "gen_mirror.pcap --decapsulate vxlan": ("gen", ["--decapsulate", "vxlan"], merge(
        req(INVITE=2, ACK=2, OPTIONS=1, REGISTER=1, MESSAGE=1),
        resp(("INVITE", 486, 2), ("OPTIONS", 200, 1), ("REGISTER", 200, 1),
             ("MESSAGE", 200, 1)),
        outcomes(_486=2), ended(rejected=2),
        msgs(("udp", 4, 8), ("udp", 6, 2), ("tcp", 4, 2)),
        errors(("sip", "body_truncated", 1))),
        packets(24, 15, 12)),
    # "erspan" names GRE: the same as vxlan,gre.
    "gen_mirror.pcap --decapsulate erspan,vxlan": ("gen", ["--decapsulate", "erspan,vxlan"],
                                                   MIRROR_EXACT, MIRROR_SINGLE),
    # HEPv3 to port 9060 (gen_hep): a completed call over UDP (INVITE, 100, 180, 200, ACK, BYE,
    # 200), a REGISTER and its 200 that came over TCP and IPv6; a TCP segment with an OPTIONS
    # and the start of another (incomplete: the agent's TCP is not reassembled), the first
    # one's 200; an OPTIONS (behind a vendor's chunk) and its 200; an RTCP report, not SIP
    # (seen, not matched). 14 frames, 13 carrying messages.
    "gen_hep.pcap --decapsulate hep": ("gen", ["--decapsulate", "hep"], merge(
        req(INVITE=1, ACK=1, BYE=1, REGISTER=1, OPTIONS=2),
        resp(("INVITE", 100, 1), ("INVITE", 180, 1), ("INVITE", 200, 1), ("BYE", 200, 1),
             ("REGISTER", 200, 1), ("OPTIONS", 200, 2)),
        outcomes(_200=1), ended(bye=1),
        msgs(("udp", 4, 9), ("tcp", 6, 4)),
        errors(("sip", "incomplete", 1))),
        merge(one("sip_sessions_completed_total", 1),
              one("sip_registration_outcomes_total", 1, code="200"),
              packets(14, 13, 13))),
    # Without it: datagrams to port 9060 that are not SIP.
    "gen_hep.pcap": ("gen", [], {}, packets(14, 14, 0)),
    # SIP over WebSocket to port 8080 (gen_ws). Connection 1, handshakes seen: REGISTER (three
    # fragments, a ping among them), 401, REGISTER (one frame cut across two segments), 200
    # with one Contact (one attempt, the challenge folded, one binding); a keep-alive frame,
    # INVITE, 100, 180 (one segment), 200, ACK, BYE (one segment), 200: a completed call; a
    # deflated frame (ws_compressed), close frames, FIN. Connection 2 over IPv6, picked up
    # mid-way: a keep-alive frame skipped before the OPTIONS, the tail of a message before the
    # 200 (a tcp_resync each). Connection 3, SIP over TCP on the same port: OPTIONS, 200, junk
    # (start_line), a segment like a frame carrying an OPTIONS (skipped in the resync the junk
    # began: no tcp_resync), OPTIONS, 200. Connection 4, picked up mid-way in two segments of
    # 60,000 bytes: junk (a tcp_resync), a 40,000-byte NOTIFY across both, an OPTIONS.
    # Connection 5, picked up inside a frame: a whole MESSAGE's text skipped (a tcp_resync), three
    # MESSAGEs in 3 segments, the first two completed by the second. Connection 6, picked up after
    # an unfinished line (a tcp_resync): a 65,508-byte MESSAGE and a short one in 48 segments of
    # 1,400 bytes, completed by the last two. Connection 7, SIP over TCP picked up mid-way: a
    # MESSAGE whose body ends in 0x82, its 200, FIN (no byte waits). 88 frames; 9 + 2 + 4 + 1 +
    # 2 + 2 + 2 complete a message (the first half of the cut REGISTER does not). No
    # --sip-ports: a WebSocket stream is recognised as such. The rule below sees 20 messages as
    # "ws" and 6 as "tcp".
    "gen_ws.pcap": ("gen", [], WS_EXACT, WS_SINGLE),
    # The same with the port given: nothing changes, the handshakes are not parse errors.
    "gen_ws.pcap --sip-ports 8080": ("gen", ["--sip-ports", "8080"], WS_EXACT, WS_SINGLE),
    # With a rule: m.transport says "ws" for all 13, and a field copier writes it for the call.
    "gen_ws.pcap --rules": ("gen", ["--rules", "{src}/tests/lua/fixtures/rules_transport"],
                            WS_EXACT, merge(
        WS_SINGLE, one("fixture_transport_messages_total", 20, transport="ws"),
        one("fixture_transport_messages_total", 6, transport="tcp"),
        one("fixture_transport_calls_total", 1, transport="ws"))),
    # SIPp built-in uac/uas over one TCP connection: three calls of INVITE, 180, 200, ACK,
    # BYE, 200 (the uas sends no 100).
    "sipp_tcp.pcap": ("fixture", [], merge(
        req(INVITE=3, ACK=3, BYE=3),
        resp(("INVITE", 180, 3), ("INVITE", 200, 3), ("BYE", 200, 3)),
        outcomes(_200=3), ended(bye=3),
        msgs(("tcp", 4, 18))),
        merge(one("sip_sessions_completed_total", 3),
              one("sipscope_table_entries", 2, table="tcp"))),
    # An INVITE of 65793 bytes over TCP (Content-Length 65536), longer than SIP_MAX_MSG: seen
    # from its headers, the body skipped; its 100.
    "suricata-verify_sip-body-large__sip-body-large.pcap": ("shared", [], merge(
        req(INVITE=1), resp(("INVITE", 100, 1)),
        msgs(("tcp", 4, 2)),
        errors(("reasm", "tcp_oversized_body", 1))), {}),
    # Junk before a request (see KNOWN_TSHARK_ERRORS in tests/conformance/tshark_compare.py):
    # frame 1 is 4 zero bytes, not SIP; frame 2 is a REGISTER without Via, From, To, Call-ID
    # or CSeq (RFC 3261 §8.1.1), a parse error. Offline, SIP is recognised by its start line,
    # so the junk datagram is other traffic...
    "zeek_sip-junk-before-request.pcap": ("shared", [], merge(
        errors(("sip", "missing_header", 1))), packets(2, 2, 0)),
    # ...and with --sip-ports, where the port says SIP, the junk counts as a bad start line.
    "zeek_sip-junk-before-request.pcap --sip-ports 5060": ("shared", ["--sip-ports", "5060"],
        merge(errors(("sip", "missing_header", 1), ("sip", "start_line", 1))), packets(2, 2, 0)),
}







def main():
    binary, src, outdir, shared = sys.argv[1:5]
    subprocess.run([sys.executable, os.path.join(src, "tests/tools/gen_pcaps.py"), outdir],
                   check=True)
    dirs = {"gen": outdir, "fixture": os.path.join(src, "tests/fixtures/pcap"), "shared": shared}
    passed = failed = skipped = 0
    for case, (where, args, exact, single) in CASES.items():
        path = os.path.join(dirs[where], case.split()[0])
        if where == "shared" and not os.path.isdir(shared):
            skipped += 1
            print(f"skip {case}: {shared} is absent")
            continue
        got = scrape(binary, path, [a.replace("{src}", src) for a in args])
        problems = []
        for key in sorted(set(exact) | {k for k, v in got.items() if k[0] in EXACT and v},
                          key=series_name):
            want, have = exact.get(key, 0), got.get(key, 0)
            if want != have:
                problems.append(f"{series_name(key)}: {have:g}, expected {want:g}")
        for key, want in single.items():
            have = got.get(key)
            if have != want:
                problems.append(f"{series_name(key)}: {have}, expected "
                                f"{'absent' if want is None else format(want, 'g')}")
        if problems:
            failed += 1
            print(f"FAIL {case}")
            for p in problems:
                print("     " + p)
        else:
            passed += 1
            print(f"ok   {case}")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
