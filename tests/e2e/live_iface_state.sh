#!/usr/bin/env bash
# Live capture from an interface that goes down, comes back, and is removed: the gauge
# sipscope_capture_interface_up{iface} follows (1, 0, 1, then 0 for good, even once an interface
# of that name is back: the capture is bound to the removed one), and the log says what happened
# and what to do. Inside a namespace of its own with a veth pair it creates.
# usage: live_iface_state.sh SIPSCOPE   (needs root; skips otherwise)
set -euo pipefail
sipscope=$1
. "$(dirname "$0")/lib.sh"
e2e_need ip curl
e2e_setup iface

ip -n "$ns" link add sstap0 type veth peer name sstap1
ip -n "$ns" link set sstap0 up
ip -n "$ns" link set sstap1 up
e2e_iface=sstap0
e2e_start_sipscope --sip-ports 5060

# Waits up to 5 s (the state is read every second) for the gauge to read WANT.
gauge_becomes() { # WANT
    local got=""
    for _ in $(seq 50); do
        got=$(scrape /metrics | sed -n 's/^sipscope_capture_interface_up{iface="sstap0"} //p')
        [ "$got" = "$1" ] && return 0
        sleep 0.1
    done
    echo "sipscope_capture_interface_up{iface=\"sstap0\"} is \"$got\", want $1"
    return 1
}
log_has() { # TEXT
    grep -qF "$1" "$work/sipscope.log" || {
        echo "not in the log: $1"
        cat "$work/sipscope.log"
        return 1
    }
}

check "up at the start" gauge_becomes 1
# The peer down: no carrier on sstap0.
ip -n "$ns" link set sstap1 down
check "down without a carrier" gauge_becomes 0
check "the log says it is down" \
    log_has "interface sstap0 is down or has no carrier: nothing to capture until it is up again"
ip -n "$ns" link set sstap1 up
check "up again" gauge_becomes 1
check "the log says it is back" log_has "interface sstap0 is up: capturing again"
ip -n "$ns" link del sstap0
check "removed" gauge_becomes 0
check "the log says what to do" log_has "interface sstap0 was removed: its capture has stopped; restart sipscope to capture from an interface of that name again"
# Another interface of that name is not the one the capture is bound to.
ip -n "$ns" link add sstap0 type veth peer name sstap1
ip -n "$ns" link set sstap0 up
ip -n "$ns" link set sstap1 up
sleep 2
check "a new interface of that name is not it" gauge_becomes 0
check "the removal is logged once" test "$(grep -c 'was removed' "$work/sipscope.log")" = 1
e2e_stop_sipscope
e2e_finish
