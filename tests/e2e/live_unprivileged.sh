#!/usr/bin/env bash
# Live capture as the systemd unit runs it: an unprivileged user (uid 65534) holding only the
# capabilities of the unit's AmbientCapabilities= line (examples/systemd/sipscope.service.in,
# read here, so that the unit and this test cannot part). sipscope attaches (the kernel verifies
# and loads its filter), takes --promisc, counts the SIP sent to it, and holds no capability once
# attached. Without any one of those capabilities it refuses to start, with status 1, and names
# it. Inside a namespace of its own with a veth pair it creates.
# usage: live_unprivileged.sh SIPSCOPE   (needs root and setpriv; skips otherwise)
set -euo pipefail
sipscope=$1
unit=$(dirname "$0")/../../examples/systemd/sipscope.service.in
. "$(dirname "$0")/lib.sh"
e2e_need ip curl python3 setpriv
e2e_setup unpriv

caps=$(sed -n 's/^AmbientCapabilities=//p' "$unit")
# "CAP_BPF CAP_PERFMON" -> "+bpf,+perfmon", setpriv's form.
setpriv_caps() { # CAP...
    local out="" c
    for c in "$@"; do
        c=${c#CAP_}
        out="$out,+${c,,}"
    done
    echo "${out#,}"
}
as_unit() { # CAP...: the setpriv command that runs as uid 65534 with those capabilities only
    local set
    set=$(setpriv_caps "$@")
    echo "setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all,$set" \
        "--ambient-caps=-all,$set --bounding-set=-all,$set"
}

ip -n "$ns" link add upv0 type veth peer name upv1
ip -n "$ns" link set upv0 up
ip -n "$ns" link set upv1 up
ip -n "$ns" addr add 10.9.2.1/24 dev upv1
ip -n "$ns" neigh replace 10.9.2.2 lladdr 02:00:00:00:00:99 dev upv1 nud permanent
cap_sets_empty() {
    grep -E '^Cap(Prm|Eff|Amb):' "/proc/$pid/status"
    test "$(grep -cE '^Cap(Prm|Eff|Amb):[[:space:]]+0+$' "/proc/$pid/status")" = 3
}

# shellcheck disable=SC2086 # the unit's capabilities, one word each
check "the unit grants CAP_BPF, CAP_PERFMON and CAP_NET_RAW" \
    test "$(printf '%s\n' $caps | sort | tr '\n' ' ')" = "CAP_BPF CAP_NET_RAW CAP_PERFMON "
e2e_iface=upv0
# shellcheck disable=SC2086
e2e_wrap=$(as_unit $caps)
# uid 65534 must reach the binary: a build under /root (0700) cannot be run this way.
if ! $e2e_wrap test -x "$sipscope"; then
    echo "skipped: uid 65534 cannot run $sipscope"
    echo "0 passed, 0 failed, 1 skipped"
    exit 77
fi
e2e_start_sipscope --sip-ports 5060 --promisc
check "it runs as uid 65534" test "$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")" = 65534
check "the log says it dropped them" log_has "capture attached: all capabilities dropped"
check "no capability left once attached" cap_sets_empty
check "promiscuous mode without CAP_NET_ADMIN" \
    test "$(ip -n "$ns" -d link show dev upv0 | grep -o 'promiscuity [0-9]*')" = "promiscuity 1"
send_options 10.9.2.2 3
check "the SIP sent to it is counted" sample_becomes 'sip_requests_total{method="OPTIONS"}' 3
e2e_stop_sipscope

# Each capability of the unit is needed: without it, status 1 and its name. (Bounded in time: a
# sipscope that started anyway would otherwise run on, out of the cleanup's reach.)
for c in $caps; do
    rest=$(printf '%s\n' $caps | grep -vx "$c" | tr '\n' ' ')
    rc=0
    # shellcheck disable=SC2086
    timeout 10 ip netns exec "$ns" $(as_unit $rest) "$sipscope" --interface upv0 \
        --web.listen-address 127.0.0.1:0 2>"$work/refused.log" || rc=$?
    check "without $c: status 1" test "$rc" = 1
    check "without $c: it says so" grep -qF "missing capability $c (" "$work/refused.log"
done
e2e_finish
