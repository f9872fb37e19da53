#!/usr/bin/env bash
# Live capture against the snap length: five OPTIONS of 650 bytes captured with --snaplen 200
# are five packets cut, counted once each (the kernel counts them; the engine used to count the
# same frames again, 10). Inside a namespace of its own, on its lo.
# usage: live_snaplen.sh SIPSCOPE   (needs root; skips otherwise)
set -euo pipefail
sipscope=$1
. "$(dirname "$0")/lib.sh"
e2e_need ip curl python3
e2e_setup snaplen

# COUNT OPTIONS over UDP to 127.0.0.1:5060, each padded to SIZE bytes.
send_padded() { # COUNT SIZE
    ip netns exec "$ns" python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[1])):
    head = (b"OPTIONS sip:bob@x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsl%d\r\n"
            b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: sl%d\r\nCSeq: 1 OPTIONS\r\n"
            % (i, i))
    tail = b"Content-Length: 0\r\n\r\n"
    pad = int(sys.argv[2]) - len(head) - len(tail) - len(b"X-Pad: \r\n")
    s.sendto(head + b"X-Pad: " + b"p" * pad + b"\r\n" + tail, ("127.0.0.1", 5060))
PY
}

# Stays at WANT for a second (what was sent has long arrived by then).
sample_stays() { # NAME WANT
    sleep 1
    sample_becomes "$@"
}

e2e_start_sipscope --sip-ports 5060 --snaplen 200
send_padded 5 650
check "--snaplen 200: five packets matched" \
    sample_becomes 'sipscope_packets_total{iface="lo",result="matched"}' 5
check "--snaplen 200: each cut once, counted once" \
    sample_becomes 'sipscope_capture_truncated_total{iface="lo"}' 5
check "--snaplen 200: and stays at five" sample_stays 'sipscope_capture_truncated_total{iface="lo"}' 5
e2e_stop_sipscope
e2e_finish
