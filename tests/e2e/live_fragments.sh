#!/usr/bin/env bash
# Live capture of IP fragments: only those of a protocol that may carry SIP are selected and
# reassembled. ICMP and ESP fragments (IPv4 and IPv6) were selected too and each held 30 s for
# reassembly: 250 of them filled 250 entries of the table, and 4,200 more evicted the first
# fragments of five SIP datagrams, none of which was then counted. Now they are seen, not
# matched, never held, and the five count. Frames are written onto a veth pair inside a
# namespace of its own, addressed to another host (the stack there drops them unread).
# usage: live_fragments.sh SIPSCOPE   (needs root; skips otherwise)
set -euo pipefail
sipscope=$1
. "$(dirname "$0")/lib.sh"
e2e_need ip curl python3
e2e_setup frag

e2e_quiet_veth sfr0 sfr1

# Writes frames onto sfr1, which arrive on sfr0: PART is "other" (fragments of ICMP and ESP:
# 100 IPv4 ICMP, 100 IPv4 ESP, 50 IPv6 ESP, each the first of its datagram), "sip-first" (the
# first fragments of five OPTIONS of 2,000 bytes), "flood" (4,200 first fragments of ICMP) or
# "sip-second" (the OPTIONS' second fragments).
send() { # PART
    ip netns exec "$ns" python3 - "$1" <<'PY'
import socket, struct, sys, time

def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    return ~(s + (s >> 16)) & 0xffff

def eth(type_, payload):
    return b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02" + struct.pack("!H", type_) + payload

def ip4(proto, ident, frag, payload):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, 64, proto, 0,
                    socket.inet_aton("10.66.0.2"), socket.inet_aton("10.66.0.1"))
    return eth(0x0800, h[:10] + struct.pack("!H", csum(h)) + h[12:] + payload)

def ip6_frag(nh, ident, payload):
    frag = struct.pack("!BBHI", nh, 0, 1, ident)  # offset 0, M set
    return eth(0x86dd, struct.pack("!IHBB", 0x60000000, 8 + len(payload), 44, 64) +
               socket.inet_pton(socket.AF_INET6, "fd00::2") +
               socket.inet_pton(socket.AF_INET6, "fd00::1") + frag + payload)

def options(n):
    head = ("OPTIONS sip:bob@10.66.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.66.0.2:5060;"
            "branch=z9hG4bKfr%d\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: fr%d\r\n"
            "CSeq: 1 OPTIONS\r\n" % (n, n)).encode()
    tail = b"Content-Length: 0\r\n\r\n"
    sip = head + b"X-Pad: " + b"p" * (2000 - len(head) - len(tail) - 9) + b"\r\n" + tail
    return struct.pack("!HHHH", 5060, 5060, 8 + len(sip), 0) + sip

s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("sfr1", 0))
frames = []
part = sys.argv[1]
if part == "other":
    frames += [ip4(1, 1000 + i, 0x2000, b"\x08\x00" + b"i" * 62) for i in range(100)]
    frames += [ip4(50, 2000 + i, 0x2000, b"e" * 64) for i in range(100)]
    frames += [ip6_frag(50, 3000 + i, b"e" * 64) for i in range(50)]
elif part == "flood":
    frames += [ip4(1, 10000 + i, 0x2000, b"\x08\x00" + b"i" * 62) for i in range(4200)]
else:
    for n in range(5):
        d = options(n)
        if part == "sip-first":
            frames.append(ip4(17, 500 + n, 0x2000, d[:1480]))
        else:
            frames.append(ip4(17, 500 + n, 1480 // 8, d[1480:]))
for i, f in enumerate(frames):
    s.send(f)
    if i % 200 == 199:
        time.sleep(0.005)  # within the receiving CPU's backlog (netdev_max_backlog)
PY
}

e2e_iface=sfr0
e2e_start_sipscope --sip-ports 5060
send other
check "ICMP and ESP fragments: seen" \
    sample_becomes 'sipscope_packets_total{iface="sfr0",result="seen"}' 250
check "ICMP and ESP fragments: not matched" \
    sample_becomes 'sipscope_packets_total{iface="sfr0",result="matched"}' 0
check "ICMP and ESP fragments: none held for reassembly" \
    sample_becomes 'sipscope_table_entries{table="reasm"}' 0
send sip-first
send flood
send sip-second
check "all seen" sample_becomes 'sipscope_packets_total{iface="sfr0",result="seen"}' 4460
check "the SIP fragments alone matched" \
    sample_becomes 'sipscope_packets_total{iface="sfr0",result="matched"}' 10
check "the five OPTIONS are counted" \
    sample_becomes 'sipscope_sip_messages_total{transport="udp",ip="4"}' 5
check "nothing evicted from the reassembly table" \
    sample_becomes 'sipscope_table_evictions_total{table="reasm"}' 0
check "and nothing left in it" sample_becomes 'sipscope_table_entries{table="reasm"}' 0
e2e_stop_sipscope
e2e_finish
