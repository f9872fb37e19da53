#!/usr/bin/env python3
"""Writes the hard-transport captures that tests/offline/test_offline.py asserts, message for
message: SIP over TCP (pipelined, split, out-of-order, resent and keep-alive-prefixed segments,
a connection picked up mid-stream, junk and a missing Content-Length), fragmented UDP INVITEs
over IPv4 and IPv6 (out of order, duplicated, overlapping, incomplete), QinQ and stacked VLAN
tags, IP-in-IP tunnels (4in4, 6in4, 4in6, a fragmented tunnel), mirrored traffic in VXLAN and
GRE, and HEPv3 (for --decapsulate), and SIP over WebSocket.

Standard library only. Every frame is built here byte by byte, so a capture says exactly what
it holds; the expected counts in test_offline.py are derived from the scenario below by hand.

usage: gen_pcaps.py OUTDIR
"""
import os
import struct
import sys

# --- pcap writing -----------------------------------------------------------------------------


class Pcap:
    def __init__(self, path, linktype=1):
        self.f = open(path, "wb")
        self.f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype))

    def add(self, ts, frame):
        sec = int(ts)
        usec = int(round((ts - sec) * 1e6))
        self.f.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)

    def close(self):
        self.f.close()


# --- headers ----------------------------------------------------------------------------------

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


def eth(payload, ethertype, tags=()):
    """tags: (tpid, vid) pairs, outermost first."""
    out = MAC_B + MAC_A
    for tpid, vid in tags:
        out += struct.pack("!HH", tpid, vid)
    return out + struct.pack("!H", ethertype) + payload


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def v4addr(a):
    return bytes(int(x) for x in a.split("."))


def v6addr(a):
    import ipaddress
    return ipaddress.IPv6Address(a).packed


def ipv4(src, dst, proto, payload, ident=0, offset=0, more=False):
    frag = (offset // 8) | (0x2000 if more else 0)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, 64, proto, 0,
                      v4addr(src), v4addr(dst))
    hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
    return hdr + payload


def ipv6(src, dst, nh, payload):
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), nh, 64, v6addr(src),
                       v6addr(dst)) + payload


def frag6(nh, offset, more, ident, data):
    return struct.pack("!BBHI", nh, 0, offset | (1 if more else 0), ident) + data


def udp(sport, dport, payload):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def tcp(sport, dport, seq, ack, flags, payload=b""):
    return struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4,
                       flags, 65535, 0, 0) + payload


UDP, TCP, IPIP, IPV6 = 17, 6, 4, 41


def frags4(src, dst, proto, payload, ident, size=1480):
    """The IPv4 fragments of one datagram, in order."""
    out, off = [], 0
    while off < len(payload):
        part = payload[off:off + size]
        out.append(ipv4(src, dst, proto, part, ident, off, off + size < len(payload)))
        off += size
    return out


def frags6(src, dst, nh, payload, ident, size=1448):
    out, off = [], 0
    while off < len(payload):
        part = payload[off:off + size]
        out.append(ipv6(src, dst, 44, frag6(nh, off, off + size < len(payload), ident, part)))
        off += size
    return out


# --- SIP --------------------------------------------------------------------------------------


def sdp(n_lines):
    lines = ["v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0",
             "m=audio 49170 RTP/AVP 0 8 101"]
    lines += ["a=x-filler:%04d %s" % (i, "f" * 40) for i in range(n_lines)]
    return ("\r\n".join(lines) + "\r\n").encode()


def request(method, call_id, cseq, branch, from_tag, to_tag=None, body=b"", transport="UDP",
            ruri="sip:bob@example.com", cseq_method=None, content_length=True, to="bob"):
    to_hdr = "<sip:%s@example.com>" % to + (";tag=%s" % to_tag if to_tag else "")
    lines = [
        "%s %s SIP/2.0" % (method, ruri),
        "Via: SIP/2.0/%s host.example.com;branch=z9hG4bK%s" % (transport, branch),
        "Max-Forwards: 70",
        "From: <sip:alice@example.com>;tag=%s" % from_tag,
        "To: %s" % to_hdr,
        "Call-ID: %s" % call_id,
        "CSeq: %d %s" % (cseq, cseq_method or method),
        "Contact: <sip:alice@192.0.2.1>",
    ]
    if body:
        lines.append("Content-Type: application/sdp")
    if content_length:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def response(code, reason, method, call_id, cseq, branch, from_tag, to_tag=None, body=b"",
             transport="UDP", to="bob"):
    to_hdr = "<sip:%s@example.com>" % to + (";tag=%s" % to_tag if to_tag else "")
    lines = [
        "SIP/2.0 %d %s" % (code, reason),
        "Via: SIP/2.0/%s host.example.com;branch=z9hG4bK%s" % (transport, branch),
        "From: <sip:alice@example.com>;tag=%s" % from_tag,
        "To: %s" % to_hdr,
        "Call-ID: %s" % call_id,
        "CSeq: %d %s" % (cseq, method),
    ]
    if method == "REGISTER" and 200 <= code < 300:
        lines.append("Contact: <sip:alice@192.0.2.1>;expires=3600")
    if code == 401:
        lines.append('WWW-Authenticate: Digest realm="example.com", nonce="abc"')
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def call_flow(call_id, transport="UDP", invite_body=b"", ok_body=b""):
    """INVITE, 100, 180, 200, ACK, BYE, 200 of one call; (direction, bytes) with direction 0
    from the caller."""
    t = transport
    return [
        (0, request("INVITE", call_id, 1, call_id + "i", "ft", body=invite_body, transport=t)),
        (1, response(100, "Trying", "INVITE", call_id, 1, call_id + "i", "ft", transport=t)),
        (1, response(180, "Ringing", "INVITE", call_id, 1, call_id + "i", "ft", "tt",
                     transport=t)),
        (1, response(200, "OK", "INVITE", call_id, 1, call_id + "i", "ft", "tt", body=ok_body,
                     transport=t)),
        (0, request("ACK", call_id, 1, call_id + "a", "ft", "tt", transport=t)),
        (0, request("BYE", call_id, 2, call_id + "b", "ft", "tt", transport=t)),
        (1, response(200, "OK", "BYE", call_id, 2, call_id + "b", "ft", "tt", transport=t)),
    ]


# --- captures ---------------------------------------------------------------------------------


class TcpConn:
    """One TCP connection's two directions; build segments with explicit sequence numbers."""

    def __init__(self, pcap, mk_ip, src, dst, sport, dport, isn=(1000, 5000), wrap=None):
        self.pcap, self.mk_ip = pcap, mk_ip
        self.addr = [(src, dst, sport, dport), (dst, src, dport, sport)]
        self.seq = list(isn)
        self.wrap = wrap or (lambda ip: eth(ip, 0x0800))

    def frame(self, d, seq, flags, payload=b""):
        src, dst, sp, dp = self.addr[d]
        seg = tcp(sp, dp, seq, self.seq[1 - d], flags, payload)
        return self.wrap(self.mk_ip(src, dst, TCP, seg))

    def send(self, ts, d, payload=b"", flags=PSH | ACK, seq=None):
        s = self.seq[d] if seq is None else seq
        self.pcap.add(ts, self.frame(d, s, flags, payload))
        if seq is None:
            self.seq[d] += len(payload) + (1 if flags & (SYN | FIN) else 0)

    def handshake(self, ts):
        self.send(ts, 0, flags=SYN)
        self.send(ts + 0.0005, 1, flags=SYN | ACK)
        self.send(ts + 0.001, 0, flags=ACK)


def ip4(src, dst, proto, payload):
    return ipv4(src, dst, proto, payload)


def ip6(src, dst, proto, payload):
    return ipv6(src, dst, proto, payload)


def gen_tcp(path):
    """Connection 1 (IPv4, handshake seen): one call whose messages arrive keep-alive-prefixed,
    pipelined, split, out of order and resent. Connection 2 (IPv6, picked up mid-stream):
    OPTIONS after the tail of an earlier message, a MESSAGE without Content-Length, junk
    before a request line."""
    p = Pcap(path)
    flow = [m for _, m in call_flow("tcpcall", "TCP")]
    invite, trying, ringing, ok, ack, bye, bye_ok = flow
    c = TcpConn(p, ip4, "192.0.2.10", "192.0.2.20", 40000, 5060)
    c.handshake(1000.0)
    c.send(1000.010, 0, b"\r\n\r\n" + invite)           # keep-alive, then the INVITE
    c.send(1000.020, 1, trying + ringing)                # two messages in one segment
    s0 = c.seq[1]
    parts = [ok[:80], ok[80:150], ok[150:]]              # the 200 in three segments
    offs = [s0, s0 + 80, s0 + 150]
    c.send(1000.030, 1, parts[2], seq=offs[2])           # last part first
    c.send(1000.031, 1, parts[0], seq=offs[0])
    c.send(1000.032, 1, parts[1], seq=offs[1])
    c.send(1000.033, 1, parts[1], seq=offs[1])           # resent segment
    c.seq[1] = s0 + len(ok)
    c.send(1000.040, 0, ack + bye[:60])                  # ACK, and a BYE cut in two
    c.send(1000.041, 0, bye[60:] + b"\r\n")              # the rest, and a pong
    c.send(1000.050, 1, b"\r\n\r\n" + bye_ok)            # ping, then the 200
    c.send(1000.060, 0, flags=FIN | ACK)
    c.send(1000.061, 1, flags=FIN | ACK)
    c.send(1000.062, 0, flags=ACK)

    d = TcpConn(p, ip6, "2001:db8::10", "2001:db8::20", 40001, 5060, isn=(70000, 90000),
                wrap=lambda ip: eth(ip, 0x86DD))
    opt = [request("OPTIONS", "mid%d" % i, i, "mid%d" % i, "mt", transport="TCP")
           for i in (1, 2, 3)]
    okopt = [response(200, "OK", "OPTIONS", "mid%d" % i, i, "mid%d" % i, "mt", "x%d" % i,
                      transport="TCP") for i in (1, 2, 3)]
    nocl = request("MESSAGE", "nocl", 1, "nocl", "mt", transport="TCP", body=b"hello\r\n",
                   content_length=False)
    d.send(1001.000, 0, b"a=sendrecv\r\n" + opt[0])     # the tail of a message before
    d.send(1001.001, 1, okopt[0])
    d.send(1001.010, 0, nocl + opt[1])                    # no Content-Length: resync
    d.send(1001.011, 1, okopt[1])
    d.send(1001.020, 0, b"\x00\x01garbage\r\n" + opt[2])  # junk before a request line
    d.send(1001.021, 1, okopt[2])
    p.close()


def udp_frames4(src, dst, payload, ident, tags=()):
    return [eth(f, 0x0800, tags) for f in frags4(src, dst, UDP, udp(5060, 5060, payload), ident)]


def gen_frag4(path):
    """Fragmented UDP INVITEs over IPv4: out of order, with a duplicate fragment, one never
    completed (timeout), one with conflicting overlapping fragments."""
    p = Pcap(path)
    A, B = "198.51.100.1", "198.51.100.2"

    def plain(ts, d, msg):
        s, t = (A, B) if d == 0 else (B, A)
        p.add(ts, eth(ipv4(s, t, UDP, udp(5060, 5060, msg)), 0x0800))

    flow = call_flow("frag4a", invite_body=sdp(60), ok_body=sdp(30))
    invite, trying, ringing, ok, ack, bye, bye_ok = [m for _, m in flow]
    f = udp_frames4(A, B, invite, 0x1111)
    assert len(f) == 3
    for ts, i in ((2000.000, 2), (2000.001, 0), (2000.002, 1)):
        p.add(ts, f[i])
    plain(2000.010, 1, ringing)
    f = udp_frames4(B, A, ok, 0x2222)
    assert len(f) == 2
    p.add(2000.100, f[0])
    p.add(2000.101, f[1])
    plain(2000.110, 0, ack)
    plain(2001.000, 0, bye)
    plain(2001.010, 1, bye_ok)

    inv2 = request("INVITE", "frag4b", 1, "frag4b", "ft", body=sdp(60))
    f = udp_frames4(A, B, inv2, 0x3333)
    p.add(2002.000, f[0])
    p.add(2002.001, f[1])
    p.add(2002.002, f[1])                                  # captured twice
    p.add(2002.003, f[2])
    plain(2002.010, 1, response(486, "Busy Here", "INVITE", "frag4b", 1, "frag4b", "ft", "tb"))
    plain(2002.020, 0, request("ACK", "frag4b", 1, "frag4b", "ft", "tb"))

    inv3 = request("INVITE", "frag4c", 1, "frag4c", "ft", body=sdp(60))
    f = udp_frames4(A, B, inv3, 0x4444)
    p.add(2003.000, f[0])                                  # the middle fragment never comes
    p.add(2003.001, f[2])

    inv4 = request("INVITE", "frag4d", 1, "frag4d", "ft", body=sdp(60))
    f = udp_frames4(A, B, inv4, 0x5555)
    p.add(2004.000, f[0])
    # A fragment claiming bytes 1472..2952 with other content: overlaps the first one.
    bad = ipv4(A, B, UDP, b"X" * 1480, 0x5555, 1472, True)
    p.add(2004.001, eth(bad, 0x0800))

    # 40 s later: the incomplete datagram's 30 s are over.
    plain(2043.000, 0, request("OPTIONS", "frag4e", 1, "frag4e", "ft"))
    plain(2043.001, 1, response(200, "OK", "OPTIONS", "frag4e", 1, "frag4e", "ft", "te"))
    p.close()


def gen_frag6(path):
    """Fragmented UDP INVITE over IPv6 (Fragment header), fragments in reverse order, the 200
    fragmented too; then a datagram with overlapping fragments (RFC 5722: dropped whole)."""
    p = Pcap(path)
    A, B = "2001:db8:1::1", "2001:db8:1::2"

    def frames(s, t, msg, ident):
        return [eth(f, 0x86DD) for f in frags6(s, t, UDP, udp(5060, 5060, msg), ident)]

    def plain(ts, d, msg):
        s, t = (A, B) if d == 0 else (B, A)
        p.add(ts, eth(ipv6(s, t, UDP, udp(5060, 5060, msg)), 0x86DD))

    flow = call_flow("frag6a", invite_body=sdp(60), ok_body=sdp(30))
    invite, trying, ringing, ok, ack, bye, bye_ok = [m for _, m in flow]
    f = frames(A, B, invite, 0xABCD0001)
    assert len(f) == 3
    for i, fr in enumerate(reversed(f)):
        p.add(3000.000 + i * 0.001, fr)
    plain(3000.010, 1, trying)
    f = frames(B, A, ok, 0xABCD0002)
    assert len(f) == 2
    p.add(3000.100, f[0])
    p.add(3000.101, f[1])
    plain(3000.110, 0, ack)
    plain(3001.000, 0, bye)
    plain(3001.010, 1, bye_ok)

    inv2 = request("INVITE", "frag6b", 1, "frag6b", "ft", body=sdp(60))
    f = frames(A, B, inv2, 0xABCD0003)
    p.add(3002.000, f[0])
    # Same bytes 1440..1448 again, inside a fragment that starts 8 bytes early: RFC 5722.
    payload = udp(5060, 5060, inv2)
    over = ipv6(A, B, 44, frag6(UDP, 1440, True, 0xABCD0003, payload[1440:2888]))
    p.add(3002.001, eth(over, 0x86DD))
    p.close()


def gen_frag_nested6(path):
    """IPv6 fragments inside fragments: an OPTIONS split in two, the datagram carrying its first
    fragment split in two again, and so on, so that each reassembly yields another fragment.
    Five levels (one more than the tunnels decode follows) are taken apart to the OPTIONS; seven
    are given up, and counted as reasm/fragment_nested."""
    p = Pcap(path)
    A, B = "2001:db8:2::1", "2001:db8:2::2"
    ts = 4000.0
    for levels, ident in ((5, 0x5E000000), (7, 0x7E000000)):
        options = request("OPTIONS", "nested%d" % levels, 1, "nested%d" % levels, "nt")
        payload = udp(5060, 5060, options)
        frames = [frag6(UDP, 8, False, ident, payload[8:])]
        first = frag6(UDP, 0, True, ident, payload[:8])
        for level in range(1, levels):
            frames.append(frag6(44, 8, False, ident + level, first[8:]))
            first = frag6(44, 0, True, ident + level, first[:8])
        frames.append(first)
        for f in frames:
            p.add(ts, eth(ipv6(A, B, 44, f), 0x86DD))
            ts += 0.001
    p.close()


def gen_qinq(path):
    """802.1ad + 802.1Q (QinQ), and a triple stack with the pre-standard 0x9100 tag."""
    p = Pcap(path)
    A, B = "192.0.2.30", "192.0.2.40"
    qinq = ((0x88A8, 100), (0x8100, 200))
    triple = ((0x9100, 7), (0x88A8, 100), (0x8100, 200))

    def send(ts, d, msg, tags):
        s, t = (A, B) if d == 0 else (B, A)
        p.add(ts, eth(ipv4(s, t, UDP, udp(5060, 5060, msg)), 0x0800, tags))

    reg = dict(to="alice", ruri="sip:example.com")
    send(4000.000, 0, request("REGISTER", "qreg", 1, "qreg1", "rt", **reg), qinq)
    send(4000.010, 1, response(401, "Unauthorized", "REGISTER", "qreg", 1, "qreg1", "rt", "s1",
                               to="alice"), qinq)
    send(4000.020, 0, request("REGISTER", "qreg", 2, "qreg2", "rt", **reg), qinq)
    send(4000.030, 1, response(200, "OK", "REGISTER", "qreg", 2, "qreg2", "rt", "s2",
                               to="alice"), qinq)
    send(4001.000, 0, request("OPTIONS", "qopt", 1, "qopt", "ot"), triple)
    send(4001.010, 1, response(200, "OK", "OPTIONS", "qopt", 1, "qopt", "ot", "s3"), triple)
    p.close()


def tcp_register(p, ts, src, dst, sport, call_id, wrap):
    """A TCP connection to port 5060 whose frames wrap() puts in a tunnel: the handshake, a
    REGISTER for alice (one Contact) and its 200."""
    c = TcpConn(p, ip4, src, dst, sport, 5060, wrap=wrap)
    c.handshake(ts)
    c.send(ts + 0.010, 0, request("REGISTER", call_id, 1, call_id, "rt", transport="TCP",
                                  to="alice", ruri="sip:example.com"))
    c.send(ts + 0.020, 1, response(200, "OK", "REGISTER", call_id, 1, call_id, "rt", "s",
                                   transport="TCP", to="alice"))


def gen_ipip(path):
    """4in4 (a rejected call), 6in4 (OPTIONS), 4in6 carrying TCP (REGISTER over a
    connection), and a 4in4 tunnel whose outer packet is fragmented (a MESSAGE)."""
    p = Pcap(path)
    O4a, O4b = "203.0.113.1", "203.0.113.2"
    O6a, O6b = "2001:db8:ffff::1", "2001:db8:ffff::2"

    def in4(s, t, proto, payload):        # inner packet in an IPv4 tunnel
        return eth(ipv4(O4a, O4b, proto, payload), 0x0800)

    def i4(d, msg):
        s, t = ("10.1.1.1", "10.1.1.2") if d == 0 else ("10.1.1.2", "10.1.1.1")
        return ipv4(s, t, UDP, udp(5060, 5060, msg))

    p.add(5000.000, in4(0, 0, IPIP, i4(0, request("INVITE", "ipip4", 1, "ipip4", "ft"))))
    p.add(5000.010, in4(0, 0, IPIP, i4(1, response(486, "Busy Here", "INVITE", "ipip4", 1,
                                                   "ipip4", "ft", "tb"))))
    p.add(5000.020, in4(0, 0, IPIP, i4(0, request("ACK", "ipip4", 1, "ipip4", "ft", "tb"))))

    inner6 = ipv6("2001:db8:2::1", "2001:db8:2::2", UDP,
                  udp(5060, 5060, request("OPTIONS", "ipip6", 1, "ipip6", "ot")))
    p.add(5001.000, in4(0, 0, IPV6, inner6))
    inner6 = ipv6("2001:db8:2::2", "2001:db8:2::1", UDP,
                  udp(5060, 5060, response(200, "OK", "OPTIONS", "ipip6", 1, "ipip6", "ot",
                                           "s")))
    p.add(5001.010, in4(0, 0, IPV6, inner6))

    def in6(ip):
        return eth(ipv6(O6a, O6b, IPIP, ip), 0x86DD)

    tcp_register(p, 5002.000, "10.2.2.1", "10.2.2.2", 40002, "ipipreg", in6)

    msg = request("MESSAGE", "ipipfrag", 1, "ipipfrag", "mt", body=sdp(40))
    inner = i4(0, msg)
    for fr in frags4(O4a, O4b, IPIP, inner, 0x7777):
        p.add(5003.000, eth(fr, 0x0800))
    p.add(5003.010, in4(0, 0, IPIP, i4(1, response(200, "OK", "MESSAGE", "ipipfrag", 1,
                                                   "ipipfrag", "mt", "s"))))
    p.close()


def gen_mirror(path):
    """Mirrored SIP inside the tunnels --decapsulate opens: VXLAN on 4789 (a rejected call; a
    REGISTER over TCP; a MESSAGE whose outer datagram is fragmented), VXLAN on 8472 over IPv6
    around IPv6 (OPTIONS), GRE with a key around IPv4 (REGISTER), gretap (MESSAGE), ERSPAN II
    and III, the latter with its subheader (OPTIONS each). Every request has its response.
    Last, an INVITE its mirror cut short, then its 486 and ACK."""
    p = Pcap(path)
    O4a, O4b = "198.51.100.1", "198.51.100.2"
    O6a, O6b = "2001:db8:eeee::1", "2001:db8:eeee::2"

    def inner_eth(ip, v6=False):
        return eth(ip, 0x86DD if v6 else 0x0800, tags=((0x8100, 7),))

    def vxlan(ip, port=4789, v6=False):
        hdr = struct.pack("!BBHI", 0x08, 0, 0, 0x002a00)  # I flag, VNI 42
        if v6:
            return eth(ipv6(O6a, O6b, UDP, udp(40000, port, hdr + inner_eth(ip, True))), 0x86DD)
        return eth(ipv4(O4a, O4b, UDP, udp(40000, port, hdr + inner_eth(ip))), 0x0800)

    def gre(proto, payload, flags=0, words=b""):
        return eth(ipv4(O4a, O4b, 47, struct.pack("!HH", flags, proto) + words + payload), 0x0800)

    def i4(d, msg):
        s, t = ("10.3.3.1", "10.3.3.2") if d == 0 else ("10.3.3.2", "10.3.3.1")
        return ipv4(s, t, UDP, udp(5060, 5060, msg))

    def i6(d, msg):
        s, t = ("2001:db8:3::1", "2001:db8:3::2") if d == 0 else ("2001:db8:3::2", "2001:db8:3::1")
        return ipv6(s, t, UDP, udp(5060, 5060, msg))

    p.add(6000.000, vxlan(i4(0, request("INVITE", "vx1", 1, "vx1", "ft"))))
    p.add(6000.010, vxlan(i4(1, response(486, "Busy Here", "INVITE", "vx1", 1, "vx1", "ft",
                                         "tb"))))
    p.add(6000.020, vxlan(i4(0, request("ACK", "vx1", 1, "vx1", "ft", "tb"))))

    p.add(6001.000, vxlan(i6(0, request("OPTIONS", "vx6", 1, "vx6", "ot")), 8472, True))
    p.add(6001.010, vxlan(i6(1, response(200, "OK", "OPTIONS", "vx6", 1, "vx6", "ot", "s")),
                          8472, True))

    tcp_register(p, 6002.000, "10.4.4.1", "10.4.4.2", 40003, "vxreg", vxlan)

    msg = request("MESSAGE", "vxfrag", 1, "vxfrag", "mt", body=sdp(40))
    hdr = struct.pack("!BBHI", 0x08, 0, 0, 0x002a00)
    for fr in frags4(O4a, O4b, UDP, udp(40000, 4789, hdr + inner_eth(i4(0, msg))), 0x6666):
        p.add(6003.000, eth(fr, 0x0800))
    p.add(6003.010, vxlan(i4(1, response(200, "OK", "MESSAGE", "vxfrag", 1, "vxfrag", "mt",
                                         "s"))))

    key = struct.pack("!I", 0x1234)
    p.add(6004.000, gre(0x0800, i4(0, request("REGISTER", "grereg", 1, "grereg", "gt",
                                               to="bob", ruri="sip:example.com")), 0x2000, key))
    p.add(6004.010, gre(0x0800, i4(1, response(200, "OK", "REGISTER", "grereg", 1, "grereg",
                                               "gt", "s", to="bob")), 0x2000, key))

    p.add(6005.000, gre(0x6558, inner_eth(i4(0, request("MESSAGE", "tap", 1, "tap", "mt")))))
    p.add(6005.010, gre(0x6558, inner_eth(i4(1, response(200, "OK", "MESSAGE", "tap", 1, "tap",
                                                         "mt", "s")))))

    seq = struct.pack("!I", 1)
    erspan2 = bytes.fromhex("102a000500000001")
    p.add(6006.000, gre(0x88BE, erspan2 + inner_eth(i4(0, request("OPTIONS", "e2", 1, "e2",
                                                                  "ot"))), 0x1000, seq))
    p.add(6006.010, gre(0x88BE, erspan2 + inner_eth(i4(1, response(200, "OK", "OPTIONS", "e2", 1,
                                                                   "e2", "ot", "s"))),
                        0x1000, seq))
    erspan3 = bytes.fromhex("202a00050102030400000001") + b"\x09" * 8  # O set: a subheader
    p.add(6007.000, gre(0x22EB, erspan3 + inner_eth(i4(0, request("OPTIONS", "e3", 1, "e3",
                                                                  "ot"))), 0x1000, seq))
    p.add(6007.010, gre(0x22EB, erspan3 + inner_eth(i4(1, response(200, "OK", "OPTIONS", "e3", 1,
                                                                   "e3", "ot", "s"))),
                        0x1000, seq))

    # A mirror that cut what it copied: the INVITE's last 40 bytes (of its SDP) are missing,
    # its IP and UDP lengths say the whole. Then its 486 and ACK, whole.
    invite = request("INVITE", "vxcut", 1, "vxcut", "ft", body=sdp(6))
    whole = vxlan(i4(0, invite))
    cut = whole[:-40]
    cut = cut[:16] + struct.pack("!H", len(cut) - 14) + cut[18:]          # outer IP length
    cut = cut[:24] + struct.pack("!H", 0) + cut[26:]                      # and its checksum
    cut = cut[:24] + struct.pack("!H", checksum(cut[14:34])) + cut[26:]
    cut = cut[:38] + struct.pack("!H", len(cut) - 34) + cut[40:]          # outer UDP length
    p.add(6008.000, cut)
    p.add(6008.010, vxlan(i4(1, response(486, "Busy Here", "INVITE", "vxcut", 1, "vxcut", "ft",
                                         "tc"))))
    p.add(6008.020, vxlan(i4(0, request("ACK", "vxcut", 1, "vxcut", "ft", "tc"))))
    p.close()


def hep3(src, dst, sport, dport, payload, transport=UDP, proto_type=1, extra=b""):
    """A HEPv3 packet (HOMER's encapsulation) around one message: its chunks, then extra ones."""
    def chunk(t, data, vendor=0):
        return struct.pack("!HHH", vendor, t, 6 + len(data)) + data
    v6 = ":" in src
    body = (chunk(1, bytes([10 if v6 else 2])) + chunk(2, bytes([transport])) +
            chunk(5 if v6 else 3, (v6addr if v6 else v4addr)(src)) +
            chunk(6 if v6 else 4, (v6addr if v6 else v4addr)(dst)) +
            chunk(7, struct.pack("!H", sport)) + chunk(8, struct.pack("!H", dport)) +
            chunk(9, struct.pack("!I", 1700000000)) + chunk(10, struct.pack("!I", 0)) +
            chunk(11, bytes([proto_type])) + chunk(12, struct.pack("!I", 2001)) + extra +
            chunk(15, payload))
    return b"HEP3" + struct.pack("!H", 6 + len(body)) + body


def gen_hep(path):
    """What a proxy sends HOMER (--decapsulate hep): HEPv3 over UDP to port 9060 from
    192.0.2.50. A call over UDP (INVITE, 100, 180, 200, ACK, BYE, 200), a REGISTER and its 200
    that came over TCP and IPv6 (one message per HEP packet), a TCP segment holding an OPTIONS
    and the start of another, the first one's 200, an RTCP report (not SIP), and one HEP packet
    with a vendor's chunk before the payload (an OPTIONS, then its 200)."""
    p = Pcap(path)

    def out(payload, ts):
        p.add(ts, eth(ipv4("192.0.2.50", "192.0.2.60", UDP, udp(40010, 9060, payload)), 0x0800))

    A, B = "10.6.6.1", "10.6.6.2"
    flow = [(0, request("INVITE", "hep1", 1, "hep1", "ft", body=sdp(4))),
            (1, response(100, "Trying", "INVITE", "hep1", 1, "hep1", "ft")),
            (1, response(180, "Ringing", "INVITE", "hep1", 1, "hep1", "ft", "tt")),
            (1, response(200, "OK", "INVITE", "hep1", 1, "hep1", "ft", "tt", body=sdp(4))),
            (0, request("ACK", "hep1", 1, "hep1", "ft", "tt")),
            (0, request("BYE", "hep1", 2, "hep1b", "ft", "tt")),
            (1, response(200, "OK", "BYE", "hep1", 2, "hep1b", "ft", "tt"))]
    for i, (d, msg) in enumerate(flow):
        s, t = (A, B) if d == 0 else (B, A)
        out(hep3(s, t, 5060, 5060, msg), 7000.0 + i * 0.5)
    out(hep3("2001:db8:6::1", "2001:db8:6::2", 40020, 5060,
             request("REGISTER", "hepreg", 1, "hepreg", "rt", transport="TCP", to="carol",
                     ruri="sip:example.com"), transport=TCP), 7010.0)
    out(hep3("2001:db8:6::2", "2001:db8:6::1", 5060, 40020,
             response(200, "OK", "REGISTER", "hepreg", 1, "hepreg", "rt", "s", transport="TCP",
                      to="carol"), transport=TCP), 7010.010)
    # A TCP segment as the agent saw it: a whole OPTIONS, then the start of another (which no
    # later packet completes). Then the 200 to the whole one.
    o2 = request("OPTIONS", "hepo2", 1, "hepo2", "ot", transport="TCP")
    o3 = request("OPTIONS", "hepo3", 1, "hepo3", "ot", transport="TCP")
    out(hep3("2001:db8:6::1", "2001:db8:6::2", 40020, 5060, o2 + o3[:30], transport=TCP),
        7010.500)
    out(hep3("2001:db8:6::2", "2001:db8:6::1", 5060, 40020,
             response(200, "OK", "OPTIONS", "hepo2", 1, "hepo2", "ot", "s", transport="TCP"),
             transport=TCP), 7010.510)
    out(hep3(A, B, 40000, 40001, b"\x80\xc8\x00\x06" + b"\0" * 24, proto_type=5), 7011.0)
    vendor = struct.pack("!HHH", 0x0030, 0x0001, 7) + b"\x5a"
    out(hep3(A, B, 5060, 5060, request("OPTIONS", "hepo", 1, "hepo", "ot"), extra=vendor),
        7012.0)
    out(hep3(B, A, 5060, 5060, response(200, "OK", "OPTIONS", "hepo", 1, "hepo", "ot", "s")),
        7012.010)
    p.close()


def ws_frame(payload, opcode=1, fin=True, key=None, rsv=0):
    """A WebSocket frame (RFC 6455 §5.2), masked with key (4 bytes) when given, the length in
    its shortest form."""
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    mask = 0x80 if key else 0
    if n < 126:
        head += bytes([mask | n])
    elif n < 65536:
        head += bytes([mask | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mask | 127]) + struct.pack("!Q", n)
    if key:
        head += key
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + payload


def gen_ws(path):
    """SIP over WebSocket (RFC 7118) to port 8080, as a WebRTC client reaches a proxy behind a
    load balancer that ended its TLS. Connection 1 (IPv4, TCP and WebSocket handshakes seen):
    a REGISTER in three fragments with a ping among them, its 401, the REGISTER again cut
    across two segments, its 200; a keep-alive then an INVITE with SDP; 100 and 180 in one
    segment, the 200 with SDP; ACK and BYE in one segment, the 200; a compressed frame
    (permessage-deflate) that cannot be read; close frames and FIN. Client frames are masked,
    each with its own key; server frames are not. Connection 2 (IPv6) is picked up mid-way, with
    neither handshake: a keep-alive frame and an OPTIONS in one segment; the tail of an earlier
    message and the 200 in one frame. Connection 3 is SIP over TCP on the same port: OPTIONS,
    200; junk; a segment that looks like one frame carrying an OPTIONS; OPTIONS, 200.
    Connection 4 is picked up mid-way in two 60,000-byte segments: junk, a 40,000-byte NOTIFY
    across both, an OPTIONS. Connection 5 is picked up inside a frame whose payload is a whole
    MESSAGE, then three MESSAGE frames, the first cut across two segments. Connection 6 is
    picked up after an unfinished line, then a MESSAGE of 65,508 bytes and a short one, in
    1,400-byte segments. Connection 7 is SIP over TCP picked up mid-way: a MESSAGE whose body
    ends in 0x82, its 200, FIN."""
    p = Pcap(path)
    keys = iter(struct.pack("!I", 0x5a3c0f10 + 7919 * i) for i in range(1, 100))

    def cf(payload, **kw):  # a client frame
        return ws_frame(payload, key=next(keys), **kw)

    sdp_body = sdp(2)
    invite, trying, ringing, ok, ack, bye, bye_ok = [m for _, m in call_flow(
        "wscall", "WS", invite_body=sdp_body, ok_body=sdp_body)]
    reg1 = request("REGISTER", "wsreg", 1, "wsr1", "rt", transport="WS", ruri="sip:example.com",
                   to="alice")
    reg401 = response(401, "Unauthorized", "REGISTER", "wsreg", 1, "wsr1", "rt", "s1",
                      transport="WS", to="alice")
    reg2 = request("REGISTER", "wsreg", 2, "wsr2", "rt", transport="WS", ruri="sip:example.com",
                   to="alice")
    reg200 = response(200, "OK", "REGISTER", "wsreg", 2, "wsr2", "rt", "s2", transport="WS",
                      to="alice")
    c = TcpConn(p, ip4, "192.0.2.30", "192.0.2.40", 50000, 8080)
    c.handshake(8000.0)
    c.send(8000.010, 0, b"GET /ws HTTP/1.1\r\nHost: 192.0.2.40:8080\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Origin: https://phone.example.com\r\nSec-WebSocket-Protocol: sip\r\n"
           b"Sec-WebSocket-Version: 13\r\n\r\n")
    c.send(8000.011, 1, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
           b"Sec-WebSocket-Protocol: sip\r\n\r\n")
    c.send(8000.020, 0, cf(reg1[:40], fin=False) + cf(b"ka", opcode=9) +
           cf(reg1[40:90], opcode=0, fin=False) + cf(reg1[90:], opcode=0))
    c.send(8000.021, 1, ws_frame(reg401))
    frame = cf(reg2)
    c.send(8000.030, 0, frame[:50])                       # one frame in two segments
    c.send(8000.031, 0, frame[50:])
    c.send(8000.032, 1, ws_frame(reg200))
    c.send(8001.000, 0, cf(b"\r\n\r\n") + cf(invite))   # keep-alive, then the INVITE
    c.send(8001.001, 1, ws_frame(trying) + ws_frame(ringing))
    c.send(8001.002, 1, ws_frame(ok))
    c.send(8001.010, 0, cf(ack) + cf(bye))
    c.send(8001.011, 1, ws_frame(bye_ok))
    c.send(8001.020, 0, cf(b"\xf2\x0c\x00\x00", rsv=4))  # RSV1: deflated, not read
    c.send(8001.030, 0, cf(b"\x03\xe8", opcode=8))
    c.send(8001.031, 1, ws_frame(b"\x03\xe8", opcode=8))
    c.send(8001.040, 0, flags=FIN | ACK)
    c.send(8001.041, 1, flags=FIN | ACK)
    c.send(8001.042, 0, flags=ACK)

    d = TcpConn(p, ip6, "2001:db8::30", "2001:db8::40", 50001, 8080, isn=(300000, 400000),
                wrap=lambda ip: eth(ip, 0x86DD))
    d.send(8002.000, 0, cf(b"\r\n\r\n") +
           cf(request("OPTIONS", "wsmid", 1, "wsm", "mt", transport="WS")))
    ok_mid = response(200, "OK", "OPTIONS", "wsmid", 1, "wsm", "mt", "x", transport="WS")
    # Padded to 266 bytes, so that the frame's length ends in a line feed (81 7e 01 0a): the
    # line after it must not be taken for a start line of SIP over TCP.
    ok_mid = ok_mid.replace(b"\r\nContent-Length", b"\r\nX-Pad: " +
                            b"p" * (266 - len(ok_mid) - 9) + b"\r\nContent-Length")
    assert len(ok_mid) == 266
    d.send(8002.001, 1, b"a=sendrecv\r\n" + ws_frame(ok_mid))    # the tail of a message first

    # Plain SIP over TCP on the same port: once it has carried SIP, bytes that look like a
    # frame carrying SIP (the whole segment, after junk) do not make it WebSocket.
    e = TcpConn(p, ip4, "192.0.2.31", "192.0.2.40", 50002, 8080, isn=(500000, 600000))
    plain = [request("OPTIONS", "plain%d" % i, i, "pl%d" % i, "pt", transport="TCP")
             for i in (1, 2, 3)]
    plain_ok = [response(200, "OK", "OPTIONS", "plain%d" % i, i, "pl%d" % i, "pt", "y",
                         transport="TCP") for i in (1, 3)]
    e.handshake(8003.000)
    e.send(8003.010, 0, plain[0])
    e.send(8003.011, 1, plain_ok[0])
    e.send(8003.020, 0, b"XYZ\r\n")                                     # junk: start_line
    e.send(8003.030, 0, b"\x81\x7e" + struct.pack("!H", len(plain[1])) + plain[1])
    e.send(8003.040, 0, plain[2])
    e.send(8003.041, 1, plain_ok[1])

    # Picked up mid-way with large segments (GRO, TSO): 30,000 bytes that are no frame, then a
    # 40,000-byte NOTIFY whose frame ends in the next segment, then an OPTIONS. While the NOTIFY's
    # frame waits, only it is held: with the bytes before it, it would not fit tcp_stream's
    # 65,536 bytes.
    f = TcpConn(p, ip4, "192.0.2.32", "192.0.2.40", 50003, 8080, isn=(700000, 800000))
    notify = request("NOTIFY", "big", 1, "bg", "nt", transport="WS", body=b"n" * 39500)
    stream = b"\x00" * 30000 + cf(notify) + cf(request("OPTIONS", "afterbig", 1, "ab", "nt",
                                                     transport="WS"))
    f.send(8004.000, 0, stream[:60000])
    f.send(8004.001, 0, stream[60000:])

    # Picked up mid-way in the middle of a frame whose payload is a whole MESSAGE (the frame
    # header was in a segment not captured), then a frame cut across two segments: the MESSAGE
    # text must wait with that frame, not go to the SIP framer as SIP over TCP.
    h = TcpConn(p, ip4, "192.0.2.40", "192.0.2.33", 8080, 50004, isn=(900000, 950000))
    msgs = [request("MESSAGE", "tail%d" % i, 1, "tl%d" % i, "mt", transport="WS")
            for i in range(4)]
    second = ws_frame(msgs[1])
    h.send(8005.000, 0, msgs[0] + second[:60])
    h.send(8005.001, 0, second[60:] + ws_frame(msgs[2]))
    h.send(8005.002, 0, ws_frame(msgs[3]))

    # Picked up mid-way after a line the framer would keep (no line break), before a frame as
    # long as one can be (WS_FRAME_MAX_MESSAGE, 65,508 bytes), in 1,400-byte segments: the
    # bytes before it are let go when holding them too would pass tcp_stream's 65,536.
    k = TcpConn(p, ip4, "192.0.2.40", "192.0.2.34", 8080, 50005, isn=(960000, 990000))
    body = b"m" * (65508 - len(request("MESSAGE", "longest", 1, "lg", "mt", transport="WS",
                                       body=b"m" * 10000)) + 10000)
    longest = request("MESSAGE", "longest", 1, "lg", "mt", transport="WS", body=body)
    assert len(longest) == 65508
    stream = b"</presence>" + b"z" * 20 + ws_frame(longest) + ws_frame(
        request("MESSAGE", "after", 1, "af", "mt", transport="WS"))
    for i in range(0, len(stream), 1400):
        k.send(8006.000 + i / 1e7, 0, stream[i:i + 1400])

    # SIP over TCP picked up mid-way, a MESSAGE whose UTF-8 body ends in 0x82 (the last byte of
    # "。"), its 200, then FIN: a byte that may begin a frame at a segment's end must not hold
    # the message back.
    m = TcpConn(p, ip4, "192.0.2.35", "192.0.2.40", 50006, 8080, isn=(1100000, 1200000))
    text = "こんにちは。".encode()
    m.send(8007.000, 0, request("MESSAGE", "utf8", 1, "u8", "ut", transport="TCP", body=text))
    m.send(8007.001, 1, response(200, "OK", "MESSAGE", "utf8", 1, "u8", "ut", "z",
                                 transport="TCP"))
    m.send(8007.002, 0, flags=FIN | ACK)
    p.close()


def gen_dup(path):
    """What `tcpdump -i any` records on a host with a VLAN and NAT: packets twice, 20 us apart, the
    second copy tagged (VLAN 100: the parent's view) or NATed (another source address and
    port). An answered call over UDP, each packet tagged (and one hop later: TTL one lower,
    checksum left stale); an OPTIONS and its 200 NATed; an OPTIONS sent again 0.5 s later (a
    retransmission, T1 on), each with its tagged copy, and its 200 with one; a fragmented INVITE
    (three fragments, each with its tagged copy) answered 486, ACK; another fragmented INVITE
    NATed (three fragments and three NATed ones: pieces of another datagram to reassemble),
    answered 486, ACK; an OPTIONS sent three times within 2 ms on one path (a flood: no copy,
    each counts), its 200; a TCP OPTIONS and its 200 after the handshake, each segment with its
    tagged copy. 58 frames, 27 of them copies (the three NATed fragments one, once whole)."""
    p = Pcap(path)
    A, B, NAT = "192.0.2.10", "192.0.2.20", "203.0.113.5"
    vlan = ((0x8100, 100),)

    def tagged(frame):  # an Ethernet frame as the VLAN's parent shows it
        return frame[:12] + struct.pack("!HH", *vlan[0]) + frame[12:]

    def once(ts, src, dst, msg):
        p.add(ts, eth(ipv4(src, dst, UDP, udp(5060, 5060, msg)), 0x0800))

    def twice(ts, src, dst, msg, copy="vlan"):
        once(ts, src, dst, msg)
        if copy == "vlan":
            frame = ipv4(src, dst, UDP, udp(5060, 5060, msg))
            frame = frame[:8] + bytes([63]) + frame[9:]  # one hop later; checksum left stale
            p.add(ts + 0.00002, eth(frame, 0x0800, vlan))
        else:  # after source NAT
            p.add(ts + 0.00002, eth(ipv4(NAT, dst, UDP, udp(40000, 5060, msg)), 0x0800))

    for i, (d, msg) in enumerate(call_flow("dup1")):
        twice(3000.0 + i * 0.01, A if d == 0 else B, B if d == 0 else A, msg)
    twice(3001.000, A, B, request("OPTIONS", "dup2", 1, "dup2", "ft"), copy="nat")
    twice(3001.010, B, A, response(200, "OK", "OPTIONS", "dup2", 1, "dup2", "ft", "t2"),
          copy="nat")
    opt3 = request("OPTIONS", "dup3", 1, "dup3", "ft")
    twice(3002.000, A, B, opt3)
    twice(3002.500, A, B, opt3)  # T1 later: sent again
    twice(3002.510, B, A, response(200, "OK", "OPTIONS", "dup3", 1, "dup3", "ft", "t3"))
    inv = request("INVITE", "dup4", 1, "dup4", "ft", body=sdp(60))
    f = udp_frames4(A, B, inv, 0x4444)
    assert len(f) == 3
    for i, frame in enumerate(f):
        p.add(3003.000 + i * 0.001, frame)
        p.add(3003.000 + i * 0.001 + 0.00002, tagged(frame))
    twice(3003.010, B, A, response(486, "Busy Here", "INVITE", "dup4", 1, "dup4", "ft", "t4"))
    twice(3003.020, A, B, request("ACK", "dup4", 1, "dup4", "ft", "t4"))
    class Twice:  # TcpConn's pcap: every segment with its tagged copy
        def add(self, ts, frame):
            p.add(ts, frame)
            p.add(ts + 0.00002, tagged(frame))

    c = TcpConn(Twice(), ip4, A, B, 40001, 5060)
    c.handshake(3004.000)
    c.send(3004.010, 0, request("OPTIONS", "dup5", 1, "dup5", "ft", transport="TCP"))
    c.send(3004.020, 1, response(200, "OK", "OPTIONS", "dup5", 1, "dup5", "ft", "t5",
                                 transport="TCP"))
    inv = request("INVITE", "dup6", 1, "dup6", "ft", body=sdp(60))
    f, g = udp_frames4(A, B, inv, 0x6666), udp_frames4(NAT, B, inv, 0x6666)
    for i in range(3):
        p.add(3005.000 + i * 0.001, f[i])
        p.add(3005.000 + i * 0.001 + 0.00002, g[i])
    twice(3005.010, B, A, response(486, "Busy Here", "INVITE", "dup6", 1, "dup6", "ft", "t6"))
    twice(3005.020, A, B, request("ACK", "dup6", 1, "dup6", "ft", "t6"))
    opt7 = request("OPTIONS", "dup7", 1, "dup7", "ft")
    for k in range(3):
        once(3006.000 + k * 0.001, A, B, opt7)
    once(3006.010, B, A, response(200, "OK", "OPTIONS", "dup7", 1, "dup7", "ft", "t7"))
    p.close()


def gen_dup_sll2(path):
    """What `tcpdump -i any` records in Linux cooked v2 on a host with a bond: every packet on the
    slave (ifindex 3) and again on the bond (ifindex 5), 20 us apart, with the same packet type
    (host for those that come in, outgoing for those that leave). An answered call, its caller
    at A, this host B; then the same OPTIONS bytes from two senders (A and C, same ports) on the
    slave alone 1 ms apart: two packets, no copy. 16 frames, 7 of them copies."""
    p = Pcap(path, linktype=276)
    A, B, C = "192.0.2.10", "192.0.2.20", "192.0.2.30"

    def cooked(ifindex, pkttype, ip):
        return struct.pack("!HHIHBB8s", 0x0800, 0, ifindex, 1, pkttype, 6,
                           b"\x02\x00\x00\x00\x00\x01\x00\x00") + ip

    for i, (d, msg) in enumerate(call_flow("sll1")):
        src, dst, kind = (A, B, 0) if d == 0 else (B, A, 4)  # PACKET_HOST, PACKET_OUTGOING
        ip = ipv4(src, dst, UDP, udp(5060, 5060, msg))
        p.add(3100.0 + i * 0.01, cooked(3, kind, ip))
        p.add(3100.0 + i * 0.01 + 0.00002, cooked(5, kind, ip))
    opt = request("OPTIONS", "sll2", 1, "sll2", "ft")
    p.add(3101.000, cooked(3, 0, ipv4(A, B, UDP, udp(5060, 5060, opt))))
    p.add(3101.001, cooked(3, 0, ipv4(C, B, UDP, udp(5060, 5060, opt))))
    p.close()


def gen_dup_hep(path):
    """A message captured here and reported in HEP too (--decapsulate hep): an OPTIONS from A to
    B on the wire, then the same in HEP from agent 192.0.2.50 (1 ms later) and from agent
    192.0.2.51 (2 ms later); its 200 on the wire, then in HEP from 192.0.2.51 (1 ms later).
    5 frames: 3 of them copies."""
    p = Pcap(path)
    A, B = "10.7.7.1", "10.7.7.2"
    opt = request("OPTIONS", "duph", 1, "duph", "ft")
    ok = response(200, "OK", "OPTIONS", "duph", 1, "duph", "ft", "th")

    def wire(ts, src, dst, msg):
        p.add(ts, eth(ipv4(src, dst, UDP, udp(5060, 5060, msg)), 0x0800))

    def hep(ts, agent, src, dst, msg):
        p.add(ts, eth(ipv4(agent, "192.0.2.60", UDP, udp(40010, 9060, hep3(src, dst, 5060,
                                                                         5060, msg))), 0x0800))

    wire(7100.000, A, B, opt)
    hep(7100.001, "192.0.2.50", A, B, opt)
    hep(7100.002, "192.0.2.51", A, B, opt)
    wire(7100.010, B, A, ok)
    hep(7100.011, "192.0.2.51", B, A, ok)
    p.close()


CAPTURES = {
    "gen_dup_hep.pcap": gen_dup_hep,
    "gen_dup_sll2.pcap": gen_dup_sll2,
    "gen_dup.pcap": gen_dup,
    "gen_tcp_stream.pcap": gen_tcp,
    "gen_frag_udp4.pcap": gen_frag4,
    "gen_frag_udp6.pcap": gen_frag6,
    "gen_frag_nested6.pcap": gen_frag_nested6,
    "gen_qinq.pcap": gen_qinq,
    "gen_ipip.pcap": gen_ipip,
    "gen_mirror.pcap": gen_mirror,
    "gen_hep.pcap": gen_hep,
    "gen_ws.pcap": gen_ws,
}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, fn in CAPTURES.items():
        fn(os.path.join(out, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
