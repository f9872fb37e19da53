#!/usr/bin/env bash
# The --events file of a live sipscope: it appends to what the file holds (a restart keeps the
# records of the run before), and goes through the two ways logrotate rotates a file:
#   - "create": the file is renamed, SIGHUP opens the path again; the lines of the calls before
#     the signal are all in the renamed file, those after in the new one;
#   - "copytruncate": the file is copied and truncated in place; the next lines start the file
#     again, with no hole of zero bytes where the old lines were;
#   - and two without a signal: the file renamed ("create" without its postrotate), whose lines
#     go on to the renamed file for up to 2 s and then to the path again; and the file removed,
#     when the path is opened again at once (the lines would be written to no file at all).
# Calls are rejected INVITEs (INVITE, 486) sent over loopback in a namespace of the test's own.
# usage: live_events_rotate.sh SIPSCOPE   (needs root; skips otherwise)
set -euo pipefail
sipscope=$1
. "$(dirname "$0")/lib.sh"
e2e_need
e2e_setup rotate

events=$work/events.json
echo '{"type":"before"}' >"$events" # a line of the run before
e2e_start_sipscope --sip-ports 5060 --events "$events"

# N calls from FIRST on: INVITE from 5070 to 5060, 486 back; each its own Call-ID.
calls() { # N FIRST
    ip netns exec "$ns" python3 - "$1" "$2" <<'PY'
import socket, sys
n, first = int(sys.argv[1]), int(sys.argv[2])
caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
caller.bind(("127.0.0.1", 5070))
callee = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
callee.bind(("127.0.0.1", 5060))
for i in range(first, first + n):
    head = (f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-rot-{i}\r\n"
            f"From: <sip:a@127.0.0.1>;tag=f{i}\r\n")
    rest = f"Call-ID: rot-{i}@127.0.0.1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    caller.sendto((f"INVITE sip:b@127.0.0.1 SIP/2.0\r\n{head}To: <sip:b@127.0.0.1>\r\n"
                   f"User-Agent: rotate-test\r\n{rest}").encode(), ("127.0.0.1", 5060))
    callee.sendto((f"SIP/2.0 486 Busy Here\r\n{head}To: <sip:b@127.0.0.1>;tag=t{i}\r\n"
                   f"{rest}").encode(), ("127.0.0.1", 5070))
PY
    sleep 0.3 # the filter hands packets over within 50 ms
}
# The Call-IDs of the call lines of a file, in order, on one line.
ids() { python3 -c '
import json, sys
print(" ".join(json.loads(l)["call_id"].split("@")[0] for l in open(sys.argv[1])
               if json.loads(l)["type"] == "call"))' "$1"; }

calls 2 0
mv "$events" "$events.1"
kill -HUP "$pid"
sleep 0.3
calls 3 2
# Lines are written at least once a second: then the file is as logrotate would copy it.
sleep 1.5
cp "$events" "$events.2" 2>/dev/null || : >"$events.2" # (no file: SIGHUP did not reopen)
truncate -s 0 "$events"
calls 1 5
# Renamed, no signal: the next call's line still goes to the renamed file (written within a
# second, before the 2 s grace ends); after it, the path is opened again.
mv "$events" "$events.3"
calls 1 6
sleep 2.5
calls 1 7
sleep 1.5
cp "$events" "$events.4" 2>/dev/null || : >"$events.4" # (no file: the path was not followed)
# Removed: opened again at the next publish, before the waiting line is written.
rm "$events"
calls 1 8
sleep 1.5
e2e_stop_sipscope # the last lines are written at exit

check "the line of the run before is kept" test "$(head -n 1 "$events.1")" = '{"type":"before"}'
check "the renamed file has the 2 calls before SIGHUP" test "$(ids "$events.1")" = "rot-0 rot-1"
check "the new file had the 3 calls after it" test "$(ids "$events.2")" = "rot-2 rot-3 rot-4"
check "after the truncation the file starts again with the next call, no zero bytes" \
    python3 -c 'import sys; d = open(sys.argv[1], "rb").read()
sys.exit(0 if d[:1] == b"{" and b"\0" not in d else 1)' "$events.3"
check "renamed without a signal: that call and the next, before the grace ended" \
    test "$(ids "$events.3")" = "rot-5 rot-6"
check "then the path again, made anew" test "$(ids "$events.4")" = "rot-7"
check "removed: the path at once, with the call after" test "$(ids "$events")" = "rot-8"
check "each was logged once" test "$(grep -c 'without a SIGHUP: writing to the path again' "$work/sipscope.log")" = 2
check "each line carries the caller's User-Agent and the 486's outcome" \
    test "$(cat "$events.1" "$events.2" "$events.3" "$events.4" "$events" | grep -c '"outcome":486,"end_reason":"rejected".*"user_agent":"rotate-test"')" = 9
e2e_finish
