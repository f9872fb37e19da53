#!/usr/bin/env bash
# Live capture of mirrored SIP inside tunnels (--decapsulate): OPTIONS that the kernel's own
# VXLAN device wraps, frames wrapped in GRE (IP inside, Ethernet inside, ERSPAN types II and
# III, and III under II's protocol number) written onto a veth pair, and HEPv3 (received, and
# sent from here, which is left out). With --decapsulate vxlan,gre every one is counted, exactly;
# without it none is (the tunnels' outer ports are not SIP ports), and with vxlan alone only the
# VXLAN ones. Inside a namespace of its own.
# usage: live_decap.sh SIPSCOPE   (needs root; skips otherwise)
set -euo pipefail
sipscope=$1
. "$(dirname "$0")/lib.sh"
e2e_need ip curl python3
e2e_setup decap

ip -n "$ns" link add sdv0 type veth peer name sdv1
ip -n "$ns" link set sdv0 up
ip -n "$ns" link set sdv1 up
ip -n "$ns" addr add 10.77.0.1/24 dev sdv0
ip -n "$ns" neigh replace 10.77.0.2 lladdr 02:00:00:00:00:02 dev sdv0 nud permanent
# The kernel's VXLAN device: what leaves it goes out of sdv0 to 10.77.0.2, UDP port 4789.
have_vxlan=0
if ip -n "$ns" link add svx0 type vxlan id 42 dstport 4789 remote 10.77.0.2 local 10.77.0.1 \
    dev sdv0 2>/dev/null; then
    have_vxlan=1
    ip -n "$ns" link set svx0 up
    ip -n "$ns" addr add 10.99.0.1/24 dev svx0
    ip -n "$ns" neigh replace 10.99.0.2 lladdr 02:00:00:00:00:99 dev svx0 nud permanent
fi

send_vxlan() { # COUNT: OPTIONS to 10.99.0.2 through the VXLAN device
    ip netns exec "$ns" python3 - "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[1])):
    msg = ("OPTIONS sip:b@10.99.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.99.0.1:5060;branch=z9hG4bKvx%d\r\n"
           "From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: vx%d\r\nCSeq: 1 OPTIONS\r\n"
           "Content-Length: 0\r\n\r\n" % (i, i)).encode()
    s.sendto(msg, ("10.99.0.2", 5060))
PY
}

# Frames written onto sdv1 arrive on sdv0: an outer Ethernet + IPv4 + GRE around an OPTIONS.
send_gre() {
    ip netns exec "$ns" python3 - <<'PY'
import socket, struct

def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    return ~(s + (s >> 16)) & 0xffff

def ip4(proto, payload, src, dst):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0x4000, 64, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst))
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + payload

def udp_sip(n):
    sip = ("OPTIONS sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP 10.5.0.1:5060;branch=z9hG4bKgre%d\r\n"
           "From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: gre%d\r\nCSeq: 1 OPTIONS\r\n"
           "Content-Length: 0\r\n\r\n" % (n, n)).encode()
    return ip4(17, struct.pack("!HHHH", 5060, 5060, 8 + len(sip), 0) + sip, "10.5.0.1", "10.5.0.2")

def eth(type_, payload):
    return b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x02" + struct.pack("!H", type_) + payload

frames = [
    struct.pack("!HH", 0x2000, 0x0800) + b"\0\0\0\7" + udp_sip(1),            # GRE, key, IP
    struct.pack("!HH", 0x0000, 0x6558) + eth(0x0800, udp_sip(2)),             # gretap
    struct.pack("!HHI", 0x1000, 0x88be, 5) + b"\x10\x2a\x00\x05\0\0\0\1"     # ERSPAN II
        + eth(0x0800, udp_sip(3)),
    struct.pack("!HHI", 0x1000, 0x22eb, 6) + b"\x20\x2a\x00\x05\1\2\3\4\0\0\0\0"  # ERSPAN III
        + eth(0x0800, udp_sip(4)),
    struct.pack("!HHI", 0x1000, 0x88be, 7) + b"\x20\x2a\x00\x05\1\2\3\4\0\0\0\1"  # III as II,
        + b"\x09" * 8 + eth(0x0800, udp_sip(5)),                                 # subheader
]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("sdv1", 0))
for f in frames:
    s.send(eth(0x0800, ip4(47, f, "10.77.0.2", "10.77.0.1")))
PY
}

# HEPv3 to 10.77.0.1:9060, arriving on sdv0 (written onto sdv1): what a proxy sends HOMER.
# Two OPTIONS, one of them as if it had come over TCP and IPv6, together with a REGISTER in the
# same payload (a TCP segment as it came). Then the same HEP sent out of sdv0 from here: copies
# this host sends are left out.
send_hep() {
    ip netns exec "$ns" python3 - <<'PY'
import socket, struct

def chunk(t, data):
    return struct.pack("!HHH", 0, t, 6 + len(data)) + data

def sip(method, n):
    return ("%s sip:b@x SIP/2.0\r\nVia: SIP/2.0/TCP 10.5.0.1:5060;branch=z9hG4bKhep%d\r\n"
            "From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: hep%d\r\nCSeq: 1 %s\r\n"
            "Content-Length: 0\r\n\r\n" % (method, n, n, method)).encode()

def hep(fam, transport, src, dst, payload):
    af = socket.AF_INET if fam == 2 else socket.AF_INET6
    a, b = (3, 4) if fam == 2 else (5, 6)
    body = (chunk(1, bytes([fam])) + chunk(2, bytes([transport])) +
            chunk(a, socket.inet_pton(af, src)) + chunk(b, socket.inet_pton(af, dst)) +
            chunk(7, struct.pack("!H", 5060)) + chunk(8, struct.pack("!H", 5060)) +
            chunk(11, b"\x01") + chunk(15, payload))
    return b"HEP3" + struct.pack("!H", 6 + len(body)) + body

def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    return ~(s + (s >> 16)) & 0xffff

def frame(payload):
    udp = struct.pack("!HHHH", 40000, 9060, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0x4000, 64, 17, 0,
                     socket.inet_aton("10.77.0.2"), socket.inet_aton("10.77.0.1"))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00" + ip + udp

copies = [hep(2, 17, "10.5.0.1", "10.5.0.2", sip("OPTIONS", 1)),
          hep(10, 6, "2001:db8::1", "2001:db8::2", sip("OPTIONS", 2) + sip("REGISTER", 3))]
raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
raw.bind(("sdv1", 0))
for c in copies:
    raw.send(frame(c))
out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for c in copies:
    out.sendto(c, ("10.77.0.2", 9060))
PY
}

# Stays at WANT for 2 s (what was sent has long arrived by then).
sample_stays() { # NAME WANT
    sleep 2
    sample_becomes "$@"
}

options='sip_requests_total{method="OPTIONS"}'
e2e_iface=sdv0
vx=$((have_vxlan * 3))

e2e_start_sipscope --sip-ports 5060 --decapsulate vxlan,gre
[ "$have_vxlan" = 1 ] && send_vxlan 3
send_gre
check "vxlan,gre: every OPTIONS" sample_becomes "$options" $((vx + 5))
check "vxlan,gre: all matched in the kernel" \
    sample_becomes 'sipscope_packets_total{iface="sdv0",result="matched"}' $((vx + 5))
check "vxlan,gre: no parse error" test -z "$(scrape /metrics | grep '^sipscope_parse_errors_total')"
e2e_stop_sipscope

e2e_start_sipscope --sip-ports 5060
[ "$have_vxlan" = 1 ] && send_vxlan 3
send_gre
check "without: the SIP port is seen nowhere" sample_stays "$options" 0
check "without: nothing matched" \
    sample_becomes 'sipscope_packets_total{iface="sdv0",result="matched"}' 0
e2e_stop_sipscope

e2e_start_sipscope --sip-ports 5060 --decapsulate vxlan
[ "$have_vxlan" = 1 ] && send_vxlan 3
send_gre
check "vxlan alone: the VXLAN ones" sample_stays "$options" "$vx"
e2e_stop_sipscope
# HEP: the two OPTIONS and the REGISTER, two of them over TCP and IPv6, and only as received;
# the VXLAN and GRE ones stay shut.
e2e_start_sipscope --sip-ports 5060 --decapsulate hep
[ "$have_vxlan" = 1 ] && send_vxlan 3
send_gre
send_hep
check "hep: its two OPTIONS" sample_becomes "$options" 2
check "hep: and the REGISTER beside one" sample_becomes 'sip_requests_total{method="REGISTER"}' 1
check "hep: two came over TCP and IPv6" \
    sample_becomes 'sipscope_sip_messages_total{transport="tcp",ip="6"}' 2
check "hep: and one over UDP and IPv4" \
    sample_stays 'sipscope_sip_messages_total{transport="udp",ip="4"}' 1
e2e_stop_sipscope
[ "$have_vxlan" = 1 ] || echo "note: no vxlan link type in this kernel; its cases sent nothing"
e2e_finish
