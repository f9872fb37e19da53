#!/usr/bin/env python3
"""Bounded tables under floods, with real traffic in between: the real calls, registration and
TCP messages keep their exact values, the flood's entries are the ones evicted, and every
eviction is counted. All values are derived by hand from the scenarios below.

Scanner capture (a SIPVicious "friendly-scanner" at 300 messages/s for 60 s, 100 times the real
traffic), read with --max-calls 50 --max-transactions 200 --max-registrations 50:
  scanner message i (0 <= i < 18000) at 0.5 + i/300 s, each with a Call-ID and branch of its own:
    i % 3 == 0  OPTIONS to an address of its own, never answered
    i % 3 == 1  REGISTER answered 401 (i odd) or 403 (i even) 0.5 ms later
    i % 3 == 2  INVITE never answered
  call 1: INVITE 1.0, 100 1.01, 180 1.1, 200 3.0, ACK, BYE 53.0, 200 53.01 (rings 2 s, lasts 50 s)
  call 2: INVITE 5.0, 100 5.01, 180 5.1, 200 25.0, ACK, BYE 45.0, 200 45.01 (rings 20 s, 20 s)
  registration: REGISTER 2.0, 401 2.01, REGISTER 2.02, 200 2.03 (Expires 3600)

SYN-flood capture, read with --max-tcp-streams 1000: one real connection (SYN, SYN-ACK, ACK)
sends three OPTIONS, each in two segments 10 ms apart with 2000 SYNs from other addresses and
ports between them.

    scanner_flood.py SIPSCOPE WORK_DIR
"""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import gen_pcaps as g  # noqa: E402
import expect  # noqa: E402  (tests/offline, this script's directory)

T0 = 1700000000.0
PX = ("10.0.0.1", 5060)
SCANNER = ("198.51.100.66", 5070)


def sip(first, headers, body=b""):
    text = first + "\r\n" + "".join(h + "\r\n" for h in headers)
    return text.encode() + b"Content-Length: %d\r\n\r\n" % len(body) + body


def request(method, ruri, via, branch, frm, to, call_id, cseq, extra=()):
    return sip("%s %s SIP/2.0" % (method, ruri),
               ["Via: SIP/2.0/UDP %s:%d;branch=%s" % (via[0], via[1], branch), "Max-Forwards: 70",
                "From: " + frm, "To: " + to, "Call-ID: " + call_id,
                "CSeq: %d %s" % (cseq, method)] + list(extra))


def response(code, via, branch, frm, to, call_id, cseq, method, extra=()):
    return sip("SIP/2.0 %d Reason" % code,
               ["Via: SIP/2.0/UDP %s:%d;branch=%s" % (via[0], via[1], branch), "From: " + frm,
                "To: " + to, "Call-ID: " + call_id, "CSeq: %d %s" % (cseq, method)] + list(extra))


class Capture:
    def __init__(self):
        self.frames = []

    def udp(self, t, src, dst, payload):
        ip = g.ipv4(src[0], dst[0], g.UDP, g.udp(src[1], dst[1], payload))
        self.frames.append((t, g.eth(ip, 0x0800)))

    def tcp(self, t, src, dst, seq, ack, flags, payload=b""):
        ip = g.ipv4(src[0], dst[0], g.TCP, g.tcp(src[1], dst[1], seq, ack, flags, payload))
        self.frames.append((t, g.eth(ip, 0x0800)))

    def write(self, path):
        p = g.Pcap(path)
        for t, frame in sorted(self.frames, key=lambda f: f[0]):
            p.add(T0 + t, frame)
        p.close()


def real_call(c, n, t0, ring, hold):
    ua = ("10.0.1.%d" % n, 5060)
    cid = "real-call-%d@10.0.1.%d" % (n, n)
    frm = "<sip:alice%d@example.test>;tag=ft%d" % (n, n)
    to = "<sip:bob%d@example.test>" % n
    to_tag = to + ";tag=tt%d" % n
    inv = "z9hG4bK-real-inv-%d" % n
    c.udp(t0, ua, PX, request("INVITE", "sip:bob%d@example.test" % n, ua, inv, frm, to, cid, 1,
                              ["Contact: <sip:alice@%s>" % ua[0]]))
    c.udp(t0 + 0.01, PX, ua, response(100, ua, inv, frm, to, cid, 1, "INVITE"))
    c.udp(t0 + 0.1, PX, ua, response(180, ua, inv, frm, to_tag, cid, 1, "INVITE"))
    c.udp(t0 + ring, PX, ua, response(200, ua, inv, frm, to_tag, cid, 1, "INVITE",
                                      ["Contact: <sip:bob@10.0.0.1>"]))
    c.udp(t0 + ring + 0.01, ua, PX, request("ACK", "sip:bob@10.0.0.1", ua,
                                            "z9hG4bK-real-ack-%d" % n, frm, to_tag, cid, 1))
    bye = "z9hG4bK-real-bye-%d" % n
    t_bye = t0 + ring + hold
    c.udp(t_bye, ua, PX, request("BYE", "sip:bob@10.0.0.1", ua, bye, frm, to_tag, cid, 2))
    c.udp(t_bye + 0.01, PX, ua, response(200, ua, bye, frm, to_tag, cid, 2, "BYE"))


def real_registration(c, t0):
    ua = ("10.0.2.1", 5060)
    aor = "<sip:user1@example.test>"
    frm = aor + ";tag=rt1"
    contact = ["Contact: <sip:user1@10.0.2.1:5060>", "Expires: 3600"]
    c.udp(t0, ua, PX, request("REGISTER", "sip:example.test", ua, "z9hG4bK-rr1", frm, aor,
                              "real-reg-1", 1, contact))
    c.udp(t0 + 0.01, PX, ua, response(401, ua, "z9hG4bK-rr1", frm, aor + ";tag=x1", "real-reg-1",
                                      1, "REGISTER",
                                      ['WWW-Authenticate: Digest realm="example.test", nonce="n"']))
    c.udp(t0 + 0.02, ua, PX, request("REGISTER", "sip:example.test", ua, "z9hG4bK-rr2", frm, aor,
                                     "real-reg-1", 2,
                                     contact + ['Authorization: Digest username="user1"']))
    c.udp(t0 + 0.03, PX, ua, response(200, ua, "z9hG4bK-rr2", frm, aor + ";tag=x1", "real-reg-1",
                                      2, "REGISTER", contact))


def scanner(c, n, rate):
    ua = "User-Agent: friendly-scanner"
    for i in range(n):
        t = 0.5 + i / rate
        cid = "scan-%d" % i
        branch = "z9hG4bK-s%d" % i
        if i % 3 == 0:
            dst = ("10.0.%d.%d" % (10 + (i >> 8) % 200, i & 255), 5060)
            c.udp(t, SCANNER, dst, request("OPTIONS", "sip:100@%s" % dst[0], SCANNER, branch,
                                           "<sip:100@1.1.1.1>;tag=s%d" % i, "<sip:100@1.1.1.1>",
                                           cid, 1, [ua]))
        elif i % 3 == 1:
            aor = "<sip:%d@example.test>" % i
            frm = aor + ";tag=s%d" % i
            c.udp(t, SCANNER, PX, request("REGISTER", "sip:example.test", SCANNER, branch, frm,
                                          aor, cid, 1, [ua, "Contact: <sip:%d@198.51.100.66>" % i]))
            c.udp(t + 0.0005, PX, SCANNER, response(401 if i % 2 else 403, SCANNER, branch, frm,
                                                    aor + ";tag=px", cid, 1, "REGISTER"))
        else:
            dst = ("10.0.%d.%d" % (10 + (i >> 8) % 200, i & 255), 5060)
            c.udp(t, SCANNER, dst, request("INVITE", "sip:100@%s" % dst[0], SCANNER, branch,
                                           "<sip:100@1.1.1.1>;tag=s%d" % i,
                                           "<sip:100@%s>" % dst[0], cid, 1, [ua]))


def syn_flood(c):
    ua = ("10.0.1.1", 40000)
    c.tcp(0.0, ua, PX, 1000, 0, g.SYN)
    c.tcp(0.001, PX, ua, 5000, 1001, g.SYN | g.ACK)
    c.tcp(0.002, ua, PX, 1001, 5001, g.ACK)
    seq = 1001
    for n in range(3):
        t = 1.0 + n
        msg = ("OPTIONS sip:bob@10.0.0.1 SIP/2.0\r\n"
               "Via: SIP/2.0/TCP 10.0.1.1:40000;branch=z9hG4bK-t%d\r\n"
               "From: <sip:a@example.test>;tag=a%d\r\nTo: <sip:b@example.test>\r\n"
               "Call-ID: tcp-%d\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n" % (n, n, n)).encode()
        half = len(msg) // 2
        c.tcp(t, ua, PX, seq, 5001, g.ACK | g.PSH, msg[:half])
        for i in range(2000):
            src = ("198.51.100.%d" % (1 + i % 250), 1024 + i)
            c.tcp(t + 0.001 + i * 1e-6, src, PX, 77 + i, 0, g.SYN)
        c.tcp(t + 0.01, ua, PX, seq + half, 5001, g.ACK | g.PSH, msg[half:])
        seq += len(msg)


def metrics(binary, capture, extra):
    out = subprocess.run([binary, "--read", capture, "--print"] + extra, check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return expect.series_values(out)


def check(values, expected, what):
    bad = 0
    for name, want in expected.items():
        got = values.get(name)
        if got is None or abs(got - want) > 1e-9 * max(1.0, abs(want)):
            print("FAIL %s: %s = %s, expected %s" % (what, name, got, want))
            bad += 1
    return bad


def main():
    binary, work = sys.argv[1], sys.argv[2]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    bad = 0

    c = Capture()
    real_call(c, 1, 1.0, 2.0, 50.0)
    real_call(c, 2, 5.0, 20.0, 20.0)
    real_registration(c, 2.0)
    scanner(c, 18000, 300.0)
    path = os.path.join(work, "scanner.pcap")
    c.write(path)
    v = metrics(binary, path, ["--max-calls", "50", "--max-transactions", "200",
                               "--max-registrations", "50"])
    bad += check(v, {
        # The real calls, as without the flood.
        'sip_session_outcomes_total{code="200"}': 2,
        "sip_sessions_completed_total": 2,
        'sip_dialogs_ended_total{reason="bye"}': 2,
        "sip_session_duration_seconds_sum": 70,  # 50 + 20
        "sip_session_duration_seconds_count": 2,
        "sip_session_setup_seconds_sum": 22,  # 2 + 20
        "sip_post_dial_delay_seconds_sum": 0.2,  # 0.1 + 0.1
        "sip_post_dial_delay_seconds_count": 2,
        # Each BYE answered 10 ms later, while scanner INVITEs come every 10 ms.
        'sip_session_disconnect_delay_seconds_sum{outcome="success"}': 0.02,
        'sip_session_disconnect_delay_seconds_count{outcome="success"}': 2,
        'sip_dialogs_active{state="confirmed"}': 0,
        'sip_dialogs_active{state="early"}': 0,
        # 6000 scanner INVITEs: 50 still in the table (trying); the others evicted long before
        # Timer B, each with outcome timeout. The two real calls, once ended, were evicted too.
        "sip_session_attempts_total": 6002,
        'sip_dialogs_active{state="trying"}': 50,
        'sip_dialogs_ended_total{reason="evicted"}': 5950,
        'sip_session_outcomes_total{code="timeout"}': 5950,
        'sipscope_table_evictions_total{table="calls"}': 5952,
        'sipscope_table_entries{table="calls"}': 50,
        # The real registration, as without the flood. 6000 scanner attempts: 3000 end with
        # their 403; the 401s wait for a retry, and all but the 49 left at the end (the last
        # REGISTER got a 403) were evicted with their challenge as outcome.
        "sip_registration_attempts_total": 6001,
        'sip_registration_outcomes_total{code="200"}': 1,
        'sip_registration_outcomes_total{code="401"}': 2951,
        'sip_registration_outcomes_total{code="403"}': 3000,
        "sip_registrations_active": 1,
        'sipscope_table_entries{table="registration_attempts"}': 49,
        'sipscope_table_evictions_total{table="registration_attempts"}': 2951,
        'sipscope_table_entries{table="registrations"}': 1,  # the real binding
        'sipscope_table_evictions_total{table="registrations"}': 0,
        # 18000 scanner transactions and 6 real ones (2 INVITEs, 2 BYEs, 2 REGISTERs) in 200
        # places, each pushed out within a second, long before any timer.
        'sipscope_table_evictions_total{table="transactions"}': 18006 - 200,
        'sipscope_table_entries{table="transactions"}': 200,
    }, "scanner")

    c = Capture()
    syn_flood(c)
    path = os.path.join(work, "synflood.pcap")
    c.write(path)
    v = metrics(binary, path, ["--max-tcp-streams", "1000"])
    bad += check(v, {
        'sip_requests_total{method="OPTIONS"}': 3,
        'sipscope_sip_messages_total{transport="tcp",ip="4"}': 3,
        # 2 real half-streams and 6000 SYNs in 1000 places.
        'sipscope_table_evictions_total{table="tcp"}': 6002 - 1000,
        'sipscope_table_entries{table="tcp"}': 1000,
    }, "syn flood")

    shutil.rmtree(work, ignore_errors=True)
    if bad:
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
