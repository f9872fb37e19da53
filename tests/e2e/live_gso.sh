#!/usr/bin/env bash
# Live capture of UDP segmentation offload: four OPTIONS of 232 bytes sent in one sendmsg with
# UDP_SEGMENT 232 cross a veth pair as one super-packet, which the capture sees whole (the
# receiving socket gets four datagrams). sipscope counts four datagrams (one message and a
# trailing_data error before); with --snaplen cutting the super-packet, the datagrams it holds
# whole, and the one it cuts as a datagram cut. A sender in a namespace of its own, sipscope in
# another.
# usage: live_gso.sh SIPSCOPE   (needs root; skips otherwise)
set -euo pipefail
sipscope=$1
. "$(dirname "$0")/lib.sh"
e2e_need ip curl python3
e2e_setup gso
peer=$ns-peer
trap 'ip netns del "$peer" 2>/dev/null || true; e2e_cleanup' EXIT
ip netns add "$peer"
ip link add sgp0 netns "$peer" type veth peer name sgs0 netns "$ns"
ip -n "$peer" addr add 10.67.0.1/24 dev sgp0
ip -n "$ns" addr add 10.67.0.2/24 dev sgs0
ip -n "$peer" link set sgp0 up
ip -n "$ns" link set sgs0 up

# COUNT OPTIONS of 232 bytes each, in one sendmsg with UDP_SEGMENT 232, from the peer to
# 10.67.0.2:5060, where a socket reads them (so that no ICMP comes back). Prints what the
# receiver got: COUNT datagrams of 232 bytes when the kernel segmented the super-packet.
send_gso() { # COUNT
    ip netns exec "$ns" python3 - "$1" <<'PY' &
import socket, sys
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r.bind(("10.67.0.2", 5060))
r.settimeout(3)
got = []
try:
    while len(got) < int(sys.argv[1]):
        got.append(len(r.recv(65536)))
except socket.timeout:
    pass
print(" ".join(map(str, got)))
PY
    local receiver=$!
    sleep 0.3
    ip netns exec "$peer" python3 - "$1" <<'PY'
import socket, sys
def options(i):
    head = ("OPTIONS sip:bob@10.67.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.67.0.1:5060;branch=z9hG4bKgso%d"
            "\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: gso%d\r\nCSeq: 1 OPTIONS\r\n"
            % (i, i)).encode()
    tail = b"Content-Length: 0\r\n\r\n"
    m = head + b"X-Pad: " + b"p" * (232 - len(head) - len(tail) - 9) + b"\r\n" + tail
    assert len(m) == 232
    return m
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_UDP, 103, 232)  # UDP_SEGMENT
s.sendto(b"".join(options(i) for i in range(int(sys.argv[1]))), ("10.67.0.2", 5060))
PY
    wait "$receiver"
}

# Stays at WANT for a second (what was sent has long arrived by then).
sample_stays() { # NAME WANT
    sleep 1
    sample_becomes "$@"
}

options='sip_requests_total{method="OPTIONS"}'
e2e_iface=sgs0
e2e_start_sipscope --sip-ports 5060
check "one sendmsg, four datagrams of 232 bytes received" test "$(send_gso 4)" = "232 232 232 232"
check "one frame matched: the super-packet" \
    sample_becomes 'sipscope_packets_total{iface="sgs0",result="matched"}' 1
check "four OPTIONS counted" sample_becomes "$options" 4
check "four datagrams" sample_becomes 'sipscope_sip_messages_total{transport="udp",ip="4"}' 4
check "no parse error" sample_stays 'sipscope_parse_errors_total{stage="sip",reason="trailing_data"}' absent
check "none at all" test -z "$(scrape /metrics | grep '^sipscope_parse_errors_total')"
e2e_stop_sipscope

# Cut at 600 bytes: Ethernet, IPv4 and UDP (42) and 558 bytes of payload hold two OPTIONS whole
# and 94 bytes of the third, cut in its headers; the fourth is not captured at all.
e2e_start_sipscope --sip-ports 5060 --snaplen 600
check "cut: four datagrams received" test "$(send_gso 4)" = "232 232 232 232"
check "cut: the frame is counted truncated" \
    sample_becomes 'sipscope_capture_truncated_total{iface="sgs0"}' 1
check "cut: the two whole OPTIONS counted" sample_stays "$options" 2
check "cut: the third counted as a datagram cut" \
    sample_becomes 'sipscope_parse_errors_total{stage="sip",reason="incomplete"}' 1
e2e_stop_sipscope
e2e_finish
