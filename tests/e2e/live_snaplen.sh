#!/usr/bin/env bash
# Live capture against the snap length: five OPTIONS of 650 bytes captured with --snaplen 200
# are five packets cut, counted once each (the kernel counts them; the engine used to count the
# same frames again, 10). With the default snap length nothing on lo is cut: 1,000 OPTIONS
# pipelined in one TCP send go in segments of a full loopback MSS, frames of 65,549 bytes, which
# a snap length of at most 65,535 cut (997 counted, 3 gaps). Inside a namespace of its own, on
# its lo.
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

# A listener on 127.0.0.1:5060 that reads until the peer closes, then the 1,000 OPTIONS in one
# sendall.
send_pipelined() { # COUNT
    ip netns exec "$ns" python3 - "$1" <<'PY'
import socket, sys, threading
l = socket.socket()
l.bind(("127.0.0.1", 5060))
l.listen(1)
def drain():
    c, _ = l.accept()
    while c.recv(1 << 20):
        pass
t = threading.Thread(target=drain)
t.start()
msgs = b"".join(
    b"OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:40000;branch=z9hG4bKpl%d\r\n"
    b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: pl%d\r\nCSeq: 1 OPTIONS\r\n"
    b"X-Pad: %s\r\nContent-Length: 0\r\n\r\n" % (i, i, b"p" * 351) for i in range(int(sys.argv[1])))
s = socket.create_connection(("127.0.0.1", 5060))
s.sendall(msgs)
s.close()
t.join()
print(len(msgs))
PY
}

e2e_start_sipscope --sip-ports 5060
check "1,000 OPTIONS over loopback TCP, 541 KB in one send" test "$(send_pipelined 1000)" -gt 540000
check "every one counted" sample_becomes 'sipscope_sip_messages_total{transport="tcp",ip="4"}' 1000
check "no frame cut" sample_stays 'sipscope_capture_truncated_total{iface="lo"}' 0
check "no gap in the stream" \
    sample_becomes 'sipscope_parse_errors_total{stage="reasm",reason="tcp_gap"}' absent
e2e_stop_sipscope
e2e_finish
