#!/usr/bin/env bash
# Live capture from an interface without a link-layer header (a tun device, as OpenVPN and
# WireGuard use): its frames start with their IP header. With --interface any they were read as
# Ethernet and dropped, silently (seen, never matched); --interface tun0 was refused. Now both
# capture the three OPTIONS sent out of tun0, exactly. Inside a namespace of its own, with a tun
# device that a helper process holds open (no carrier otherwise).
# usage: live_tun.sh SIPSCOPE   (needs root; skips otherwise)
set -euo pipefail
sipscope=$1
. "$(dirname "$0")/lib.sh"
e2e_need ip curl python3
e2e_setup tun

ip netns exec "$ns" python3 - <<'PY' &
import fcntl, os, struct, time
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, 0x400454ca, struct.pack("16sH", b"tun0", 0x0001 | 0x1000))  # TUNSETIFF: IFF_TUN, IFF_NO_PI
time.sleep(60)
PY
holder=$!
trap 'kill "$holder" 2>/dev/null || true; wait "$holder" 2>/dev/null || true; e2e_cleanup' EXIT
for _ in $(seq 50); do
    ip -n "$ns" link show tun0 >/dev/null 2>&1 && break
    sleep 0.1
done
ip -n "$ns" addr add 10.9.0.1/24 dev tun0
ip -n "$ns" link set tun0 up

send_options() {
    ip netns exec "$ns" python3 - <<'PY'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
msg = (b"OPTIONS sip:bob@10.9.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.9.0.1:5060;branch=z9hG4bKtun1\r\n"
       b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: tun1\r\nCSeq: 1 OPTIONS\r\n"
       b"Content-Length: 0\r\n\r\n")
for _ in range(3):
    s.sendto(msg, ("10.9.0.2", 5060))
PY
}

for e2e_iface in any tun0; do
    e2e_start_sipscope --sip-ports 5060
    send_options
    check "$e2e_iface: three OPTIONS" sample_becomes 'sip_requests_total{method="OPTIONS"}' 3
    check "$e2e_iface: three matched on tun0" \
        sample_becomes 'sipscope_packets_total{iface="tun0",result="matched"}' 3
    check "$e2e_iface: three decoded" \
        sample_becomes 'sipscope_packets_total{iface="tun0",result="decoded"}' 3
    e2e_stop_sipscope
done
e2e_finish
