#!/usr/bin/env bash
# The systemd unit's system call filter (SystemCallFilter= in examples/systemd/sipscope.service.in,
# read here) against the calls sipscope makes through a whole live life under strace: capture on
# a named interface with --promisc, the bundled rules, an events file, calls, a plain and a gzip
# scrape, SIGHUP, POST /-/reload and SIGTERM. A call outside the filter would fail with EPERM
# under the unit (SystemCallErrorNumber=EPERM), which no root test would notice. The filter's
# groups are expanded by systemd-analyze. Inside a namespace of its own.
# usage: live_syscalls.sh SIPSCOPE   (needs root, strace and systemd-analyze; skips otherwise)
set -euo pipefail
sipscope=$1
top=$(cd "$(dirname "$0")/../.." && pwd)
unit=$top/examples/systemd/sipscope.service.in
. "$(dirname "$0")/lib.sh"
e2e_need python3 curl strace systemd-analyze
e2e_setup syscalls

# The names a filter entry stands for: a group expanded (nested groups too), or the name itself
# (without an ":errno" suffix). A group systemd-analyze does not know fails the script.
expand() { # ENTRY
    case $1 in
    @*) systemd-analyze syscall-filter "$1" >"$work/group" ||
            { echo "systemd-analyze does not know $1" >&2; exit 1; }
        sed -n 's/^ \+\([@a-z0-9_-]\+\)$/\1/p' "$work/group" | while read -r e; do expand "$e"; done ;;
    *) echo "${1%%:*}" ;;
    esac
}
# The unit's SystemCallFilter= lines in order, as systemd reads them: an empty one resets the
# set, one that starts with "~" takes its names out of it (a deny list after an allow list),
# any other adds to it. (A first line that is a deny list, everything else allowed, is read as
# allowing nothing: the test then fails rather than pass by mistake.)
export LC_ALL=C
: >"$work/allowed"
lines=0
while IFS= read -r value; do
    lines=$((lines + 1))
    if [ -z "$value" ]; then
        : >"$work/allowed"
        continue
    fi
    deny=0
    if [ "${value#\~}" != "$value" ]; then
        deny=1
        value=${value#\~}
    fi
    for entry in $value; do expand "$entry"; done | sort -u >"$work/names"
    if [ "$deny" = 1 ]; then
        comm -23 "$work/allowed" "$work/names" >"$work/rest"
    else
        sort -u "$work/allowed" "$work/names" >"$work/rest"
    fi
    mv "$work/rest" "$work/allowed"
done < <(sed -n 's/^SystemCallFilter=//p' "$unit")
check "the unit has a system call filter" test "$lines" -gt 0
check "systemd-analyze expands it" test "$(wc -l <"$work/allowed")" -gt 100

"$top/tests/tools/bundled_rules.sh" "$sipscope" "$work/rules" >/dev/null
ip -n "$ns" link add sys0 type veth peer name sys1
ip -n "$ns" link set sys0 up
ip -n "$ns" link set sys1 up
ip -n "$ns" addr add 10.9.3.1/24 dev sys1
ip -n "$ns" neigh replace 10.9.3.2 lladdr 02:00:00:00:00:99 dev sys1 nud permanent
e2e_iface=sys0
e2e_wrap="strace -f -qq -o $work/trace --"
e2e_start_sipscope --sip-ports 5060 --promisc --rules "$work/rules" --events "$work/e.json" \
    --web.enable-lifecycle
tracer=$pid
trap 'kill "$tracer" 2>/dev/null || true; e2e_cleanup' EXIT
pid=$(pgrep -P "$tracer") # sipscope itself: strace passes signals to it on no one's behalf
check "sipscope runs under strace" test "$(cat "/proc/$pid/comm")" = sipscope

ip netns exec "$ns" python3 - <<'PY'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(20):
    h = (f"Via: SIP/2.0/UDP 10.9.3.1:5060;branch=z9hG4bK-sc{i}\r\nFrom: <sip:a@x>;tag=f{i}\r\n"
         f"Call-ID: sc{i}\r\n")
    s.sendto(f"INVITE sip:b@x SIP/2.0\r\n{h}To: <sip:b@x>\r\nCSeq: 1 INVITE\r\n"
             f"Content-Length: 0\r\n\r\n".encode(), ("10.9.3.2", 5060))
    s.sendto(f"SIP/2.0 486 Busy\r\n{h}To: <sip:b@x>;tag=t\r\nCSeq: 1 INVITE\r\n"
             f"Content-Length: 0\r\n\r\n".encode(), ("10.9.3.2", 5060))
PY
check "the calls are counted" sample_becomes 'sipscope_sip_messages_total{transport="udp",ip="4"}' 40
check "a gzip scrape" sh -c "ip netns exec $ns curl -sf -H 'Accept-Encoding: gzip' \
    http://127.0.0.1:$port/metrics | gzip -dc | grep -q '^sip_requests_total'"
kill -HUP "$pid"
check "SIGHUP reloads" sh -c "sleep 1; grep -q 'reload (SIGHUP)' $work/sipscope.log"
check "POST /-/reload" ip netns exec "$ns" curl -sf -X POST "http://127.0.0.1:$port/-/reload"
kill -TERM "$pid"
rc=0
wait "$tracer" || rc=$?
pid=""
check "SIGTERM stops it with status 0" test "$rc" = 0
check "the events file has the 20 calls" test "$(grep -c '"outcome":486' "$work/e.json")" = 20

grep -oP '^\d+ +\K[a-z_0-9]+(?=\()' "$work/trace" | sort -u >"$work/used"
check "strace saw the calls it made" test "$(wc -l <"$work/used")" -gt 20
check "every system call it made is one the unit allows" \
    sh -c "comm -23 $work/used $work/allowed | tee /dev/stderr | wc -l | grep -qx 0"
e2e_finish
