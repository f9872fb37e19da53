#!/usr/bin/env bash
# Live capture on "any" (the default) of a host with a bridge, as Docker, libvirt and LXC make
# one: each packet to the host is captured twice, on the bridge's port and on the bridge. By
# default sipscope drops the second copy (--dedup-window 10ms) and counts it in
# sipscope_capture_duplicates_total. A retransmission T1 later still counts, and so do a message
# sent twice at once on one path and the same bytes from two senders. Fragments and TCP segments
# have copies too, and neither a reassembly nor the TCP stream sees them twice. tcpdump records
# the UDP part on "any": its file, read with --dedup-window, counts the same. A VXLAN tunnel ended
# on the host shows each message three times: counted once. With --dedup-window 0 every message
# counts twice, half of them as retransmissions: what the default avoids. The sender is in a
# namespace of its own, so that its packets cross the veth.
# usage: live_dedup.sh SIPSCOPE   (needs root; skips otherwise)
set -euo pipefail
sipscope=$1
. "$(dirname "$0")/lib.sh"
e2e_need ip curl python3 tcpdump
e2e_setup dedup
peer=$ns-peer
tcpdump_pid=""
trap '[ -z "$tcpdump_pid" ] || kill "$tcpdump_pid" 2>/dev/null || true
ip netns del "$peer" 2>/dev/null || true; e2e_cleanup' EXIT
ip netns add "$peer"
e2e_quiet_tcp "$peer"
ip link add ddp0 netns "$peer" type veth peer name ddb0 netns "$ns"
ip -n "$ns" link add ddbr0 type bridge
ip -n "$ns" link set ddb0 master ddbr0
ip -n "$peer" addr add 10.9.3.1/24 dev ddp0
ip -n "$ns" addr add 10.9.3.2/24 dev ddbr0
ip -n "$peer" link set ddp0 up
ip -n "$ns" link set ddb0 up
ip -n "$ns" link set ddbr0 up

# OPTIONS over UDP from the peer, COUNT times at once; PAD bytes of padding make it longer than
# the MTU, so that it goes in fragments.
send_udp() { # BRANCH [PAD [COUNT]]
    ip netns exec "$peer" python3 - "$1" "${2:-0}" "${3:-1}" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
pad = b"X-Pad: " + b"a" * int(sys.argv[2]) + b"\r\n" if int(sys.argv[2]) else b""
msg = (b"OPTIONS sip:bob@10.9.3.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.9.3.1:5060;branch=z9hG4bK" +
       sys.argv[1].encode() + b"\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: " +
       sys.argv[1].encode() + b"\r\nCSeq: 1 OPTIONS\r\n" + pad + b"Content-Length: 0\r\n\r\n")
for _ in range(int(sys.argv[3])):
    s.sendto(msg, ("10.9.3.2", 5060))
PY
}
# OPTIONS over TCP from the peer to a listener on the bridge's address.
send_tcp() { # BRANCH
    ip netns exec "$ns" python3 -c '
import socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.9.3.2", 5060))
s.listen(1)
c, _ = s.accept()
c.settimeout(5)
while c.recv(4096):
    pass
' &
    local listener=$!
    for _ in $(seq 50); do
        ip netns exec "$ns" ss -ltn | grep -q '10.9.3.2:5060' && break
        sleep 0.1
    done
    ip netns exec "$peer" python3 - "$1" <<'PY'
import socket, sys
s = socket.create_connection(("10.9.3.2", 5060))
s.sendall(b"OPTIONS sip:bob@10.9.3.2 SIP/2.0\r\nVia: SIP/2.0/TCP 10.9.3.1:5060;branch=z9hG4bK" +
          sys.argv[1].encode() + b"\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: " +
          sys.argv[1].encode() + b"\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
s.close()
PY
    wait "$listener"
}
options='sip_requests_total{method="OPTIONS"}'
retrans='sip_retransmissions_total{method="OPTIONS",kind="request"}'
dups='sipscope_capture_duplicates_total{iface="ddbr0"}'

e2e_iface=any
e2e_start_sipscope --sip-ports 5060
# tcpdump records the same traffic on "any" (in Linux cooked v2, which names each packet's
# interface): read with --dedup-window, its file must give what sipscope counted live. UDP only:
# a TCP connection's last segments may come after tcpdump stops.
ip netns exec "$ns" tcpdump -i any --immediate-mode -U -w "$work/any.pcap" \
    'port 5060 or (ip[6:2] & 0x1fff != 0)' 2>"$work/tcpdump.log" &
tcpdump_pid=$!
for _ in $(seq 50); do
    grep -q "listening on" "$work/tcpdump.log" && break
    sleep 0.1
done
send_udp a1
check "a message seen twice counts once" sample_becomes "$options" 1
check "it is no retransmission of itself" sample_becomes "$retrans" 0
check "the copy on the bridge is counted" sample_becomes "$dups" 1
check "the port's copy is the one parsed" \
    sample_becomes 'sipscope_packets_total{iface="ddb0",result="decoded"}' 1
check "nothing is a copy on the port" \
    sample_becomes 'sipscope_capture_duplicates_total{iface="ddb0"}' absent
sleep 0.6 # T1: a retransmission is no copy
send_udp a1
check "a retransmission T1 later counts" sample_becomes "$options" 2
check "as a retransmission" sample_becomes "$retrans" 1
check "its copy is counted" sample_becomes "$dups" 2
send_udp a2 3000 # three fragments, each seen twice
check "a message in fragments counts once" sample_becomes "$options" 3
check "its three fragments' copies are counted" sample_becomes "$dups" 5
check "no fragment is left over or overlaps" bash -c \
    "! ip netns exec $ns curl -sf http://127.0.0.1:$port/metrics | grep '^sipscope_parse_errors_total{stage=\"reasm\"'"
send_udp f1 0 2 # sent twice at once on one path (a flood, a test tool): no copies
check "the same message sent twice counts twice" sample_becomes "$options" 5
check "the second as a retransmission" sample_becomes "$retrans" 2
check "and each has its copy" sample_becomes "$dups" 7
# The same bytes from two senders (two source ports) at once: both count.
ip netns exec "$peer" python3 - <<'PY'
import socket
msg = (b"OPTIONS sip:bob@10.9.3.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.9.3.1:5060;branch=z9hG4bKs2"
       b"\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: s2\r\nCSeq: 1 OPTIONS\r\n"
       b"Content-Length: 0\r\n\r\n")
for port in (5060, 5061):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("10.9.3.1", port))
    s.sendto(msg, ("10.9.3.2", 5060))
PY
check "the same bytes from two senders count twice" sample_becomes "$options" 7
check "the second as a retransmission (the same branch)" sample_becomes "$retrans" 3
check "each has its copy, on the bridge" sample_becomes "$dups" 9
sleep 0.2 # for tcpdump (in immediate mode it writes each packet as it comes)
kill -INT "$tcpdump_pid"
wait "$tcpdump_pid" || true
tcpdump_pid=""
# The live counts, then the file's with --dedup-window, each family summed over its labels.
sum_of() { # FAMILY_PREFIX: the sum of the samples whose series starts so
    awk -v p="$1" 'index($0, p) == 1 {s += $2} END {print s + 0}'
}
scrape /metrics >"$work/live.txt"
"$sipscope" --read "$work/any.pcap" --sip-ports 5060 --dedup-window 10ms --print \
    >"$work/file.txt"
same_sum() { # FAMILY_PREFIX
    local file live
    file=$(sum_of "$1" <"$work/file.txt")
    live=$(sum_of "$1" <"$work/live.txt")
    [ "$file" = "$live" ] && return 0
    echo "$1: $file in the file, $live live"
    grep -F "$1" "$work/file.txt" "$work/live.txt"
    return 1
}
for family in "$options" "$retrans" sipscope_capture_duplicates_total \
    'sipscope_sip_messages_total{transport="udp"'; do
    check "tcpdump's file gives the live count of $family" same_sum "$family"
done
send_tcp t1
check "a message over TCP counts once" sample_becomes "$options" 8
check "no TCP segment is taken for a retransmission" \
    sample_becomes 'sipscope_parse_errors_total{stage="reasm",reason="tcp_retransmission"}' absent
check "still no retransmission but the three sent again" sample_becomes "$retrans" 3
e2e_stop_sipscope

# A VXLAN tunnel that this host ends itself: with --decapsulate vxlan the message is read inside
# the outer packets on the port and on the bridge, and the kernel shows it again on the tunnel's
# own device; one of three counts.
ip -n "$peer" link add ddvx0 type vxlan id 42 local 10.9.3.1 remote 10.9.3.2 dstport 4789 \
    dev ddp0
ip -n "$ns" link add ddvx0 type vxlan id 42 local 10.9.3.2 remote 10.9.3.1 dstport 4789 \
    dev ddbr0
ip -n "$peer" addr add 10.9.4.1/24 dev ddvx0
ip -n "$ns" addr add 10.9.4.2/24 dev ddvx0
ip -n "$peer" link set ddvx0 up
ip -n "$ns" link set ddvx0 up
e2e_start_sipscope --sip-ports 5060 --decapsulate vxlan
ip netns exec "$peer" python3 - <<'PY'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b"OPTIONS sip:bob@10.9.4.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.9.4.1:5060;branch=z9hG4bKv1"
         b"\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: v1\r\nCSeq: 1 OPTIONS\r\n"
         b"Content-Length: 0\r\n\r\n", ("10.9.4.2", 5060))
PY
check "through a tunnel ended here: counted once" sample_becomes "$options" 1
check "no retransmission of itself" sample_becomes "$retrans" 0
check "the bridge's copy is counted" sample_becomes "$dups" 1
check "the tunnel device's copy is counted" \
    sample_becomes 'sipscope_capture_duplicates_total{iface="ddvx0"}' 1
e2e_stop_sipscope

# Two interfaces named: copies too, so the same default. One interface: no copies but those in
# and out of it, so off unless given.
e2e_iface=ddb0,ddbr0
e2e_start_sipscope --sip-ports 5060
check "two interfaces named: on" log_has "within 10.000 ms is a copy"
send_udp n1
check "two interfaces named: counted once" sample_becomes "$options" 1
check "two interfaces named: the copy counted" sample_becomes "$dups" 1
e2e_stop_sipscope
e2e_iface=ddbr0
e2e_start_sipscope --sip-ports 5060
send_udp o1
check "one interface: counted once" sample_becomes "$options" 1
check "one interface: off by default" bash -c "! grep -q 'is a copy' $work/sipscope.log"
e2e_stop_sipscope
e2e_iface=any

# What the default avoids: every message twice, the second as a retransmission.
e2e_start_sipscope --sip-ports 5060 --dedup-window 0
send_udp b1
check "--dedup-window 0: counted twice" sample_becomes "$options" 2
check "--dedup-window 0: once as a retransmission" sample_becomes "$retrans" 1
check "--dedup-window 0: no copy counted" sample_becomes "$dups" absent
e2e_stop_sipscope
e2e_finish
