#!/usr/bin/env bash
# The --events file of a live sipscope is a named pipe whose reader goes away (a log shipper that
# stops): sipscope goes on, logs the broken pipe once, counts the lines it could not write, and
# stops with status 0 when told to, its last log line saying how many lines were lost. Without
# SIGPIPE ignored it died at the next write, silently.
# Calls are rejected INVITEs over loopback in a namespace of the test's own.
# usage: live_events_pipe.sh SIPSCOPE   (needs root; skips otherwise)
set -euo pipefail
sipscope=$1
. "$(dirname "$0")/lib.sh"
e2e_need python3 curl
e2e_setup evpipe

fifo=$work/events.fifo
mkfifo "$fifo"
# Reads the first three lines, however many writes they come in, then goes away.
head -n 3 "$fifo" >"$work/read" &
reader=$!
e2e_start_sipscope --sip-ports 5060 --events "$fifo"

calls() { # FIRST: three calls, INVITE and 486, from FIRST on
    ip netns exec "$ns" python3 - "$1" <<'PY'
import socket, sys
caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
caller.bind(("127.0.0.1", 5070))
callee = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
callee.bind(("127.0.0.1", 5060))
for i in range(int(sys.argv[1]), int(sys.argv[1]) + 3):
    head = (f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-pipe-{i}\r\n"
            f"From: <sip:a@127.0.0.1>;tag=f{i}\r\nCall-ID: pipe-{i}@127.0.0.1\r\n")
    rest = "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    caller.sendto(f"INVITE sip:b@127.0.0.1 SIP/2.0\r\n{head}To: <sip:b@127.0.0.1>\r\n{rest}"
                  .encode(), ("127.0.0.1", 5060))
    callee.sendto(f"SIP/2.0 486 Busy Here\r\n{head}To: <sip:b@127.0.0.1>;tag=t{i}\r\n{rest}"
                  .encode(), ("127.0.0.1", 5070))
PY
}

calls 0
check "the first three lines are written" \
    sample_becomes 'sipscope_events_total{type="call"}' 3
wait "$reader" # it read its lines and left: the pipe has no reader now
check "the reader read the three calls" test "$(grep -c '"type":"call"' "$work/read")" = 3
calls 3
check "the next three are lost, and counted" sample_becomes 'sipscope_events_errors_total' 3
check "sipscope goes on" kill -0 "$pid"
check "and still serves" scrape /-/healthy
check "the log says why" log_has "cannot write the events file $fifo: Broken pipe"
calls 6
check "lines lost since are counted, and not logged again" \
    sample_becomes 'sipscope_events_errors_total' 6
check "one log line for the episode" \
    test "$(grep -c 'cannot write the events file' "$work/sipscope.log")" = 1
e2e_stop_sipscope
check "its last line counts the lines lost" \
    log_has "stopped; 6 lines of the events file were lost in this run"
e2e_finish
