#!/usr/bin/env bash
# An idle sipscope costs next to nothing: with the bundled rules loaded and no traffic, its
# engine thread wakes once a second (the tick) instead of every 50 ms to look at the ring
# buffer, and the rule budget's watchdog a few times for each call of the rules' on_tick (one a
# second) instead of every half budget (2.5 ms). The first request after the quiet is still
# counted.
# usage: live_idle.sh SIPSCOPE   (needs root; skips otherwise)
set -euo pipefail
sipscope=$1
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$(dirname "$0")/lib.sh"
e2e_need python3 curl
e2e_setup idle

"$top/tests/tools/bundled_rules.sh" "$sipscope" "$work/rules" >/dev/null
e2e_start_sipscope --sip-ports 5060 --rules "$work/rules"

switches() { # TID: its voluntary and involuntary context switches so far
    awk '/ctxt_switches/ {n += $2} END {print n}' "/proc/$pid/task/$1/status"
}
watchdog=$(grep -lx rule-watchdog /proc/"$pid"/task/*/comm | cut -d/ -f5)
check "the watchdog thread is named" test -n "$watchdog"
sleep 1 # past the start-up
engine0=$(switches "$pid")
watchdog0=$(switches "$watchdog")
sleep 5
engine=$(($(switches "$pid") - engine0))
watchdog_n=$(($(switches "$watchdog") - watchdog0))
echo "idle for 5 s: engine thread $engine context switches, watchdog $watchdog_n"
check "the engine thread wakes about once a second (100 times at 20 a second)" \
    test "$engine" -le 15
check "the watchdog wakes a few times a second (2,000 times at every 2.5 ms)" \
    test "$watchdog_n" -le 50

send_options 127.0.0.1 1
check "the first request after the quiet is counted" \
    sample_becomes 'sip_requests_total{method="OPTIONS",carrier="other",ua_type="unknown"}' 1
e2e_stop_sipscope
e2e_finish
