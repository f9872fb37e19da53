#!/usr/bin/env bash
# A step of the wall clock while sipscope captures (NTP setting a clock that was wrong at boot,
# a VM resumed from a pause), made for sipscope alone by an LD_PRELOAD library
# (tests/tools/clock_shift.c): the call lines of the --events file written after it carry the
# corrected time, a call that spans it is answered as usual (its timers keep to the packets'
# own clock, which the step does not move), its setup delay stays seconds, and the log tells.
# Then a step back, followed too, and not logged: steps are logged at most once a minute.
# Calls are sent over loopback in a namespace of the test's own.
# usage: live_clock_step.sh SIPSCOPE LIBCLOCK_SHIFT   (needs root; skips otherwise)
set -euo pipefail
sipscope=$1
shim=$2
. "$(dirname "$0")/lib.sh"
e2e_need python3
e2e_setup clockstep

events=$work/events.json
echo 0 >"$work/shift"
e2e_wrap="env LD_PRELOAD=$shim CLOCK_SHIFT_FILE=$work/shift"
e2e_start_sipscope --sip-ports 5060 --events "$events"

# One step of call ID: "invite", "answer" (200 and ACK) or "hangup" (BYE and its 200), between
# a caller on 5070 and a callee on 5060.
call() { # ID STEP...
    ip netns exec "$ns" python3 - "$@" <<'PY'
import socket, sys
cid = sys.argv[1]
caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
caller.bind(("127.0.0.1", 5070))
callee = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
callee.bind(("127.0.0.1", 5060))
a, b = ("127.0.0.1", 5070), ("127.0.0.1", 5060)
def msg(start, branch, cseq, to_tag=""):
    return (f"{start}\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-{cid}-{branch}\r\n"
            f"From: <sip:a@127.0.0.1>;tag=f-{cid}\r\nTo: <sip:b@127.0.0.1>{to_tag}\r\n"
            f"Call-ID: {cid}@127.0.0.1\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n").encode()
for step in sys.argv[2:]:
    if step == "invite":
        caller.sendto(msg("INVITE sip:b@127.0.0.1 SIP/2.0", "i", "1 INVITE"), b)
    elif step == "answer":
        callee.sendto(msg("SIP/2.0 200 OK", "i", "1 INVITE", ";tag=t"), a)
        caller.sendto(msg("ACK sip:b@127.0.0.1 SIP/2.0", "a", "1 ACK", ";tag=t"), b)
    elif step == "hangup":
        caller.sendto(msg("BYE sip:b@127.0.0.1 SIP/2.0", "b", "2 BYE", ";tag=t"), b)
        callee.sendto(msg("SIP/2.0 200 OK", "b", "2 BYE", ";tag=t"), a)
PY
}
# The call line of ID: its start's distance in seconds from now + SHIFT must be under 30, and
# FIELD (setup_delay or duration) under MAX seconds. Waits up to 5 s for the line.
line_ok() { # ID SHIFT FIELD MAX
    python3 - "$events" "$@" <<'PY'
import datetime, json, sys, time
path, cid, shift, field, most = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], float(sys.argv[5])
for _ in range(50):
    lines = [json.loads(l) for l in open(path) if l.strip()]
    mine = [l for l in lines if l.get("call_id") == cid + "@127.0.0.1"]
    if mine:
        break
    time.sleep(0.1)
else:
    sys.exit(f"no line for {cid}")
l = mine[0]
start = datetime.datetime.strptime(l["start"], "%Y-%m-%dT%H:%M:%S.%fZ")
start = start.replace(tzinfo=datetime.timezone.utc).timestamp()
off = start - (time.time() + shift)
print(l)
if abs(off) >= 30:
    sys.exit(f"start {l['start']} is {off:.1f} s from the time expected")
if l["outcome"] != 200 or l["end_reason"] != "bye":
    sys.exit("not an answered call ended by BYE")
if not 0 <= l[field] < most:
    sys.exit(f"{field} {l[field]} is not under {most} s")
PY
}

call a invite answer
sleep 0.5
call a hangup
check "before a step: the time of day" line_ok a 0 duration 5
call b invite
# The INVITE read before the step (call a's 5 messages and it), and a tick after it: a clock
# that wrongly followed the step would then fire call b's timers, or make its setup an hour.
check "the INVITE is read before the step" \
    sample_becomes 'sipscope_sip_messages_total{transport="udp",ip="4"}' 6
sleep 1.2
echo 3600 >"$work/shift"
check "the log tells of the step" log_has "the system clock was stepped by +3600.0"
call b answer hangup
check "a call across the step: answered, the corrected time, a setup delay of seconds" \
    line_ok b 3600 setup_delay 10
call c invite answer hangup
check "after the step: the corrected time" line_ok c 3600 duration 5
echo 0 >"$work/shift"
sleep 1.5 # a tick: the step back is seen
call d invite answer hangup
check "after the step back: the time of day again" line_ok d 0 duration 5
check "a step within a minute of the last one logged is not logged again" \
    test "$(grep -c 'the system clock was stepped by' "$work/sipscope.log")" = 1
check "the step changed nothing else: no call timed out" \
    test "$(grep -c '"end_reason":"bye"' "$events")" = 4
e2e_stop_sipscope
e2e_finish
