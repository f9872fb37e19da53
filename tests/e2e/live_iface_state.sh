#!/usr/bin/env bash
# Live capture from interfaces that go down, come back, are removed and created again: the gauge
# sipscope_capture_interface_up{iface} follows (1, 0, 1, 0, then 1 again once an interface of
# that name is back: the capture follows the name, with no capability left), the kernel counters
# go on from where they were across three interfaces of one name, and the log says what
# happened; an interface created again is followed at once (what is sent on it right away is
# counted). A captured interface renamed to the name of another is refused, in the log; one
# renamed away is still captured and shown up. Inside a namespace of its own with veth pairs it
# creates.
# usage: live_iface_state.sh SIPSCOPE   (needs root; skips otherwise)
set -euo pipefail
sipscope=$1
. "$(dirname "$0")/lib.sh"
e2e_need ip curl python3
e2e_setup iface

# A veth pair NAME/PEER, both up; NAME gets ADDR/24 and a fixed neighbour .2, so that datagrams
# to it leave through NAME without ARP.
make_veth() { # NAME PEER NET
    ip -n "$ns" link add "$1" type veth peer name "$2"
    ip -n "$ns" link set "$1" up
    ip -n "$ns" link set "$2" up
    ip -n "$ns" addr add "$3.1/24" dev "$1"
    ip -n "$ns" neigh replace "$3.2" lladdr 02:00:00:00:00:02 dev "$1" nud permanent
}

make_veth sstap0 sstap1 10.8.0
make_veth sstap2 sstap3 10.8.1
e2e_iface=sstap0,sstap2
e2e_start_sipscope --sip-ports 5060

gauge_becomes() { # WANT [IFACE]
    sample_becomes "sipscope_capture_interface_up{iface=\"${2:-sstap0}\"}" "$1"
}
matched='sipscope_packets_total{iface="sstap0",result="matched"}'
options='sip_requests_total{method="OPTIONS"}'

check "up at the start" gauge_becomes 1
send_options 10.8.0.2 3
check "three OPTIONS" sample_becomes "$options" 3
check "three matched on sstap0" sample_becomes "$matched" 3
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
check "the log says so" log_has "interface sstap0 was removed: nothing to capture until an interface of that name is created again"
# Another interface of that name: the capture follows the name.
make_veth sstap0 sstap1 10.8.0
check "created again: up" gauge_becomes 1
check "the log says it is captured" log_has "interface sstap0 was created again: capturing it"
send_options 10.8.0.2 3
check "three more OPTIONS" sample_becomes "$options" 6
check "the kernel count goes on from 3" sample_becomes "$matched" 6
check "the removal is logged once" test "$(grep -c 'was removed' "$work/sipscope.log")" = 1
# Removed again, and the other captured interface renamed to its name: that one is already
# captured (as sstap2), so sstap0 does not take it.
ip -n "$ns" link del sstap0
check "removed again" gauge_becomes 0
ip -n "$ns" link set sstap2 down
ip -n "$ns" link set sstap2 name sstap0
ip -n "$ns" link set sstap0 up
check "the log says why it is not captured" \
    log_has "interface sstap0 is back, but it is not captured: interface 'sstap0' is now the one captured as 'sstap2'"
check "still 0" gauge_becomes 0
check "the refusal is logged once" test "$(grep -c 'is back, but' "$work/sipscope.log")" = 1
# Setting the interface down flushed its neighbours, the permanent one too.
ip -n "$ns" neigh replace 10.8.1.2 lladdr 02:00:00:00:00:02 dev sstap0 nud permanent
send_options 10.8.1.2 2
check "sstap2's traffic is still its own" \
    sample_becomes 'sipscope_packets_total{iface="sstap2",result="matched"}' 2
check "sstap0's count stays" sample_becomes "$matched" 6
# Renamed back, and sstap0 created a third time: the counts of both interfaces that had the name
# before carry on.
ip -n "$ns" link set sstap0 down
ip -n "$ns" link set sstap0 name sstap2
ip -n "$ns" link set sstap2 up
check "sstap2 is itself again" gauge_becomes 1 sstap2
make_veth sstap0 sstap1 10.8.0
check "created a third time: up" gauge_becomes 1
send_options 10.8.0.2 1
check "one more OPTIONS" sample_becomes "$options" 9
check "the kernel count goes on from 6" sample_becomes "$matched" 7
# A rename chain: sstap0 renamed away and created anew, then the renamed one given sstap2's name
# (sstap2 deleted). sstap2 follows onto the interface sstap0 had, whose counts stay sstap0's.
for dev in sstap0 sstap1; do ip -n "$ns" link set "$dev" down; done
ip -n "$ns" link set sstap0 name sold0
ip -n "$ns" link set sstap1 name sold1
ip -n "$ns" addr flush dev sold0
make_veth sstap0 sstap1 10.8.0
check "renamed away and created anew: up" gauge_becomes 1
ip -n "$ns" link del sstap2
check "sstap2 removed" gauge_becomes 0 sstap2
ip -n "$ns" link set sold0 name sstap2
ip -n "$ns" link set sold1 up
ip -n "$ns" link set sstap2 up
ip -n "$ns" addr add 10.8.2.1/24 dev sstap2
ip -n "$ns" neigh replace 10.8.2.2 lladdr 02:00:00:00:00:02 dev sstap2 nud permanent
check "sstap2 follows onto it" gauge_becomes 1 sstap2
send_options 10.8.2.2 4
check "sstap2 counts its own: 2 and 4" \
    sample_becomes 'sipscope_packets_total{iface="sstap2",result="matched"}' 6
check "sstap0 keeps its 7" sample_becomes "$matched" 7
# Removed and created again, and sent to at once, without waiting for the gauge: the capture
# follows on the kernel's link notification. It followed at its next tick only, up to a second
# later, and these five crossed the unbound interface uncounted (seen nowhere).
ip -n "$ns" link del sstap0
make_veth sstap0 sstap1 10.8.0
send_options 10.8.0.2 5
check "five OPTIONS sent as soon as it is created: 13 + 5" sample_becomes "$options" 18
check "five matched on it: 7 + 5" sample_becomes "$matched" 12
# Renamed away, with no interface taking its name: still the one captured, and said so. Its
# gauge read 0 and the log said it was removed, while its packets went on being counted.
removed=$(grep -c 'interface sstap0 was removed' "$work/sipscope.log")
ip -n "$ns" link set sstap0 down
ip -n "$ns" link set sstap0 name sren0
ip -n "$ns" link set sren0 up
ip -n "$ns" neigh replace 10.8.0.2 lladdr 02:00:00:00:00:02 dev sren0 nud permanent
check "renamed away and up: its gauge is 1" gauge_becomes 1
send_options 10.8.0.2 2
check "its packets count under its name: 12 + 2" sample_becomes "$matched" 14
check "it is not said to be removed" \
    test "$(grep -c 'interface sstap0 was removed' "$work/sipscope.log")" = "$removed"
e2e_stop_sipscope
e2e_finish
