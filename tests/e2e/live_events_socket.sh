#!/usr/bin/env bash
# A live sipscope with --events - whose standard output is a stream socket that is never read
# (journald's with StandardOutput=journal, when journald stalls): the socket is full from the
# start, so every line is lost and counted, and sipscope goes on capturing, serving and
# answering SIGTERM, whose exit (status 0: a service's stop) logs how many lines were lost.
# Before, the engine blocked in write(2) at the first line: no more counting, and SIGTERM was
# never read. Calls are rejected INVITEs over loopback in a namespace of the test's own.
# usage: live_events_socket.sh SIPSCOPE   (needs root; skips otherwise)
set -euo pipefail
sipscope=$1
. "$(dirname "$0")/lib.sh"
e2e_need python3 curl
e2e_setup evsock

# The wrapper: standard output becomes one end of a socketpair filled up before sipscope starts;
# a child holds the other end, reads nothing, and leaves when sipscope (its parent) has gone.
cat >"$work/stalled_stdout.py" <<'PY'
import os, socket, sys, time
ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
ours.setblocking(False)
try:
    while True:
        ours.send(b"x" * 512)
except BlockingIOError:
    pass
ours.setblocking(True)
if os.fork() == 0:
    ours.close()
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.2)
    os._exit(0)
theirs.close()
os.dup2(ours.fileno(), 1)
ours.close()
os.execvp(sys.argv[1], sys.argv[1:])
PY
e2e_wrap="python3 $work/stalled_stdout.py"
e2e_start_sipscope --sip-ports 5060 --events -

calls() { # FIRST COUNT: COUNT calls, INVITE and 486, from FIRST on
    ip netns exec "$ns" python3 - "$1" "$2" <<'PY'
import socket, sys
caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
caller.bind(("127.0.0.1", 5070))
callee = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
callee.bind(("127.0.0.1", 5060))
first = int(sys.argv[1])
for i in range(first, first + int(sys.argv[2])):
    head = (f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-sock-{i}\r\n"
            f"From: <sip:a@127.0.0.1>;tag=f{i}\r\nCall-ID: sock-{i}@127.0.0.1\r\n")
    rest = "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    caller.sendto(f"INVITE sip:b@127.0.0.1 SIP/2.0\r\n{head}To: <sip:b@127.0.0.1>\r\n{rest}"
                  .encode(), ("127.0.0.1", 5060))
    callee.sendto(f"SIP/2.0 486 Busy Here\r\n{head}To: <sip:b@127.0.0.1>;tag=t{i}\r\n{rest}"
                  .encode(), ("127.0.0.1", 5070))
PY
}

calls 0 5
check "the first five lines are lost, and counted" sample_becomes 'sipscope_events_errors_total' 5
check "none is counted as written" \
    sample_becomes 'sipscope_events_total{type="call"}' 0
check "the log says why" \
    log_has "cannot write the events file (standard output): the pipe is full"
calls 5 5
check "sipscope goes on counting calls" sample_becomes 'sip_session_attempts_total' 10
check "and losing their lines" sample_becomes 'sipscope_events_errors_total' 10

# SIGTERM, and a KILL after 5 s so that a sipscope that stopped in write(2) fails the check
# instead of hanging the script.
kill -TERM "$pid"
for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
kill -KILL "$pid" 2>/dev/null || true
rc=0
wait "$pid" || rc=$?
pid=""
check "SIGTERM stops it with status 0" test "$rc" = 0
check "its last line counts the lines lost" \
    log_has "stopped; 10 lines of the events file were lost in this run"
e2e_finish
