#!/usr/bin/env bash
# Live capture of awkward SIP traffic, written as frames onto a veth pair and counted exactly:
# IPv6 extension headers (hop-by-hop, destination options, routing) before UDP; IPv4 and IPv6
# fragments in order, reversed, with the first fragment last, and with a fragment sent twice,
# one IPv6 datagram's fragments behind extension headers; 802.1Q and QinQ (802.1ad + 802.1Q)
# frames, whose outer tag the kernel takes into metadata and the filter puts back, carrying IPv4,
# IPv6 and fragments; SIP over TCP on IPv4, on IPv6 under 802.1Q and on IPv4 under QinQ, with a
# message split over three segments, three in one segment, segments out of order, a segment
# resent and a resend that overlaps; SIP on ports 5065 and 5070 inside the configured range and
# on 5061 and 5071 outside it; and what is not SIP on port 5060. The same frames are written to a
# pcap, and tshark (when installed) must count the messages the script says it sent. Inside a
# namespace of its own; the frames go to another host's MAC, so the stack there drops them.
# usage: live_awkward.sh SIPSCOPE   (needs root; skips otherwise)
set -euo pipefail
sipscope=$1
. "$(dirname "$0")/lib.sh"
e2e_need ip curl python3
e2e_setup awk

e2e_quiet_veth saw0 saw1

# Writes the frames onto saw1 (they arrive on saw0) and into PCAP; prints the frame count and
# what was sent, "NAME=N" for each count the checks below compare.
send() { # PCAP
    ip netns exec "$ns" python3 - "$1" <<'PY'
import socket, struct, sys, time

frames, sent = [], {}

def add(key, n=1):
    sent[key] = sent.get(key, 0) + n

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff

V4 = (socket.inet_aton("192.0.2.1"), socket.inet_aton("192.0.2.2"))
V6 = (socket.inet_pton(socket.AF_INET6, "2001:db8::1"), socket.inet_pton(socket.AF_INET6, "2001:db8::2"))

def eth(type_, payload, tags=()):
    h = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01"
    for tpid, vid in tags:
        h += struct.pack("!HH", tpid, vid)
    return h + struct.pack("!H", type_) + payload

def ip4(proto, payload, ident=1, off=0, more=0, rev=False):
    src, dst = V4[::-1] if rev else V4
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, more << 13 | off >> 3,
                    64, proto, 0, src, dst)
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + payload

def ip6(nh, payload, rev=False):
    src, dst = V6[::-1] if rev else V6
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), nh, 64, src, dst) + payload

def l4(proto, head, data, v6, rev=False):
    seg = head + data
    if v6:
        a = V6[::-1] if rev else V6
        ph = a[0] + a[1] + struct.pack("!IxxxB", len(seg), proto)
    else:
        a = V4[::-1] if rev else V4
        ph = a[0] + a[1] + struct.pack("!xBH", proto, len(seg))
    c = csum(ph + seg) or 0xffff
    at = 6 if proto == 17 else 16
    return seg[:at] + struct.pack("!H", c) + seg[at + 2:]

def udp(sp, dp, data, v6=False):
    return l4(17, struct.pack("!HHHH", sp, dp, 8 + len(data), 0), data, v6)

def ext(nh, units=0, routing=False):
    # An extension header of 8 * (units + 1) bytes: PadN options, or a routing header of type
    # 253 (RFC 4727, experimental) with no segment left.
    size = 8 * (units + 1)
    if routing:
        return struct.pack("!BBBB", nh, units, 253, 0) + b"\0" * (size - 4)
    return struct.pack("!BBBB", nh, units, 1, size - 4) + b"\0" * (size - 4)

n = 0
def request(method="OPTIONS", pad=0, tr="UDP"):
    global n
    n += 1
    add(method)
    body = b"x" * pad
    return (b"%s sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/%s 192.0.2.1:5060;branch=z9hG4bKaw%d"
            b"\r\nFrom: <sip:a@example.com>;tag=f%d\r\nTo: <sip:bob@example.com>\r\n"
            b"Call-ID: aw%d\r\nCSeq: 1 %s\r\nMax-Forwards: 70\r\nContent-Type: text/plain\r\n"
            b"Content-Length: %d\r\n\r\n" % (method.encode(), tr.encode(), n, n, n,
                                             method.encode(), len(body))) + body

def response(i, method="OPTIONS", tr="UDP"):
    add("200 " + method)
    return (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/%s 192.0.2.1:5060;branch=z9hG4bKaw%d\r\n"
            b"From: <sip:a@example.com>;tag=f%d\r\nTo: <sip:bob@example.com>;tag=t%d\r\n"
            b"Call-ID: aw%d\r\nCSeq: 1 %s\r\nContent-Length: 0\r\n\r\n"
            % (tr.encode(), i, i, i, i, method.encode()))

# IPv6 extension headers before UDP.
frames.append(eth(0x86dd, ip6(0, ext(17) + udp(5060, 5060, request(), True))))
frames.append(eth(0x86dd, ip6(0, ext(60) + ext(43, 1, True) + ext(17, 2) +
                              udp(5060, 5060, request(), True))))
frames.append(eth(0x86dd, ip6(60, ext(17) + udp(5060, 5060, request(), True))))
frames.append(eth(0x86dd, ip6(0, ext(60) + ext(17) + udp(5060, 5060, response(n), True))))

# Fragments of a 1,800-byte datagram cut in three, sent in the order given (3: the middle one
# twice).
ident = 100
ORDERS = {"in order": [0, 1, 2], "reversed": [2, 1, 0], "first last": [1, 2, 0],
          "one twice": [0, 1, 1, 2]}
def fragments(v6, order, tags=(), pre=b""):
    global ident
    ident += 1
    d = udp(5060, 5060, request(pad=1500), v6)
    out = []
    for s, e in ((0, 600), (600, 1200), (1200, len(d))):
        more = 1 if e < len(d) else 0
        if v6:
            fh = struct.pack("!BBHI", 17, 0, s | more, ident)
            out.append(ip6(0, pre + fh + d[s:e]) if pre else ip6(44, fh + d[s:e]))
        else:
            out.append(ip4(17, d[s:e], ident, s, more))
    for i in ORDERS[order]:
        frames.append(eth(0x86dd if v6 else 0x0800, out[i], tags))
    if order == "one twice":
        add("fragment_duplicate")

for v6 in (False, True):
    for order in ORDERS:
        fragments(v6, order)
fragments(True, "first last", pre=ext(60) + ext(44))

# VLAN tags: one 802.1Q tag, and QinQ (802.1ad outside, 802.1Q inside).
QINQ = [(0x88a8, 100), (0x8100, 10)]
frames.append(eth(0x0800, ip4(17, udp(5060, 5060, request())), [(0x8100, 10)]))
frames.append(eth(0x86dd, ip6(17, udp(5060, 5060, request(), True)), [(0x8100, 11)]))
frames.append(eth(0x0800, ip4(17, udp(5060, 5060, request())), QINQ))
frames.append(eth(0x86dd, ip6(17, udp(5060, 5060, response(n), True)), QINQ))
fragments(False, "reversed", QINQ)
fragments(True, "first last", [(0x8100, 13)])
fragments(True, "in order", QINQ)

# Ports: --sip-ports 5060,5062-5070.
frames.append(eth(0x0800, ip4(17, udp(40000, 5065, request()))))
frames.append(eth(0x0800, ip4(17, udp(5070, 40000, response(n)))))
for port in (5061, 5071):
    frames.append(eth(0x0800, ip4(17, udp(40000, port, request()))))
    add("OPTIONS", -1)  # not on a SIP port: neither sipscope nor the reference counts it
    add("not_matched")

# Not SIP, on port 5060: bytes, a STUN binding request, HTTP, zeros (each one a start_line
# error), and a keep-alive (RFC 5626, not an error).
for data in (bytes(range(200)), struct.pack("!HHI12s", 1, 0, 0x2112A442, b"abcdefghijkl"),
             b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\0\0\0\0"):
    frames.append(eth(0x0800, ip4(17, udp(5060, 5060, data))))
    add("start_line")
frames.append(eth(0x0800, ip4(17, udp(5060, 5060, b"\r\n\r\n"))))

def tcp_conversation(v6, tags, sport):
    type_ = 0x86dd if v6 else 0x0800
    ip = (lambda p, rev=False: ip6(6, p, rev)) if v6 else (lambda p, rev=False: ip4(6, p, rev=rev))
    c, s = 1000, 5000
    def seg(data, flags=0x18, seq=None, rev=False):
        sp, dp, sq, ak = (5060, sport, s, c) if rev else (sport, 5060, c if seq is None else seq, s)
        head = struct.pack("!HHIIBBHHH", sp, dp, sq, ak, 5 << 4, flags, 65535, 0, 0)
        frames.append(eth(type_, ip(l4(6, head, data, v6, rev), rev), tags))
    seg(b"", 0x02, c - 1)
    s -= 1
    seg(b"", 0x12, rev=True)
    s += 1
    seg(b"", 0x10)
    m = request("INVITE", pad=300, tr="TCP")  # over three segments
    invite = n
    for part in (m[:50], m[50:200], m[200:]):
        seg(part)
        c += len(part)
    m = request(tr="TCP") + request(tr="TCP") + request(tr="TCP")  # three in one segment
    seg(m)
    c += len(m)
    m = response(invite, "INVITE", "TCP") + response(n, tr="TCP")  # two in one segment
    seg(m, rev=True)
    s += len(m)
    m = request(tr="TCP")  # its second half first
    seg(m[70:], seq=c + 70)
    seg(m[:70])
    c += len(m)
    m = request(tr="TCP")  # resent whole
    seg(m)
    seg(m)
    c += len(m)
    add("tcp_retransmission")
    a, b = request(tr="TCP"), request(tr="TCP")  # 100 bytes, then resent with the rest
    seg(a[:100])
    seg(a + b)
    c += len(a + b)
    add("tcp_retransmission")
    m = request(tr="TCP") + request(tr="TCP")  # three pieces, last first
    seg(m[120:], seq=c + 120)
    seg(m[60:120], seq=c + 60)
    seg(m[:60])
    c += len(m)
    seg(b"", 0x11)
    seg(b"", 0x11, rev=True)

tcp_conversation(False, (), 41000)
tcp_conversation(True, [(0x8100, 20)], 41001)
tcp_conversation(False, QINQ, 41002)

with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 262144, 1))
    for i, fr in enumerate(frames):
        f.write(struct.pack("<IIII", 1700000000, i, len(fr), len(fr)) + fr)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("saw1", 0))
for fr in frames:
    s.send(fr)
print("frames=%d" % len(frames), " ".join("%s=%d" % (k.replace(" ", "_"), v)
                                           for k, v in sorted(sent.items())))
PY
}

e2e_iface=saw0 e2e_start_sipscope --sip-ports 5060,5062-5070
sent=$(send "$work/awkward.pcap")
echo "sent: $sent"
want() { # NAME
    echo "$sent" | tr ' ' '\n' | sed -n "s/^$1=//p"
}
frames=$(want frames)

check "every frame seen" sample_becomes 'sipscope_packets_total{iface="saw0",result="seen"}' "$frames"
check "all but those outside the ports matched" \
    sample_becomes 'sipscope_packets_total{iface="saw0",result="matched"}' \
    "$((frames - $(want not_matched)))"
check "OPTIONS requests" sample_becomes 'sip_requests_total{method="OPTIONS"}' "$(want OPTIONS)"
check "INVITE requests" sample_becomes 'sip_requests_total{method="INVITE"}' "$(want INVITE)"
check "200 to OPTIONS" sample_becomes 'sip_responses_total{method="OPTIONS",code="200"}' \
    "$(want 200_OPTIONS)"
check "200 to INVITE" sample_becomes 'sip_responses_total{method="INVITE",code="200"}' \
    "$(want 200_INVITE)"
check "fragments sent twice" \
    sample_becomes 'sipscope_parse_errors_total{stage="reasm",reason="fragment_duplicate"}' \
    "$(want fragment_duplicate)"
check "TCP segments resent" \
    sample_becomes 'sipscope_parse_errors_total{stage="reasm",reason="tcp_retransmission"}' \
    "$(want tcp_retransmission)"
check "not SIP on the SIP port" \
    sample_becomes 'sipscope_parse_errors_total{stage="sip",reason="start_line"}' \
    "$(want start_line)"
check "no drops" sample_becomes 'sipscope_capture_drops_total{iface="saw0",reason="ringbuf_full"}' 0
check "nothing cut" sample_becomes 'sipscope_capture_truncated_total{iface="saw0"}' 0
check "no fragment given up" \
    sample_becomes 'sipscope_parse_errors_total{stage="reasm",reason="fragment_overlap"}' absent

# The reference: tshark's SIP messages in the same frames (ports 5065 and 5070 declared SIP, no
# heuristic SIP on other ports, TCP segments reassembled out of order too).
tshark_counts() {
    tshark -r "$work/awkward.pcap" -o tcp.reassemble_out_of_order:TRUE \
        -d udp.port==5065,sip -d udp.port==5070,sip \
        --disable-heuristic sip_udp --disable-heuristic sip_tcp \
        -T fields -e sip.Method -e sip.Status-Code -E occurrence=a 2>/dev/null |
        awk -F'\t' '{ for (i = split($1, m, ","); i > 0; i--) if (m[i] != "") r[m[i]]++
                      for (i = split($2, c, ","); i > 0; i--) if (c[i] != "") s++ }
                    END { printf "OPTIONS=%d INVITE=%d responses=%d\n", r["OPTIONS"], r["INVITE"], s }'
}
if command -v tshark >/dev/null; then
    check "tshark counts what was sent" test "$(tshark_counts)" = \
        "OPTIONS=$(want OPTIONS) INVITE=$(want INVITE) responses=$(($(want 200_OPTIONS) + $(want 200_INVITE)))"
else
    echo "tshark not installed: the reference count is not checked"
fi
e2e_stop_sipscope
e2e_finish
