# lib.sh: what the live end-to-end scripts share, sourced after `set -euo pipefail`: a network
# namespace of their own with lo up, a work directory, both removed on exit with the sipscope
# they started; checks counted into the closing "N passed, N failed, N skipped" line.
#
#   e2e_need [TOOL...]              skips the script (exit 77) unless root with every TOOL
#   e2e_setup NAME                  namespace sipscope-NAME-PID ($ns), $work, the cleanup trap
#   e2e_quiet_tcp NS                no TCP tail loss probes in NS (e2e_setup does it for $ns)
#   check NAME COMMAND...           runs COMMAND; on failure prints NAME and its output
#   e2e_start_sipscope ARGS...      sipscope (path in $sipscope) inside $ns capturing on
#                                   $e2e_iface (lo when unset), HTTP on an ephemeral port of its
#                                   lo ($port, $pid); fails the script if it never listens. It
#                                   runs through the command in $e2e_wrap (words) when set
#   scrape PATH                     GET http://127.0.0.1:$port PATH from inside $ns
#   sample_becomes NAME WANT        waits up to 5 s for the series NAME (as exposed, labels
#                                   included) to read WANT ("absent": no such series)
#   log_has TEXT                    waits up to 5 s for TEXT in sipscope's log
#   send_options DEST COUNT         COUNT SIP OPTIONS over UDP to DEST:5060, from inside $ns,
#                                   each its own (branch, Call-ID): none is a copy (dedup.h)
#   e2e_stop_sipscope               SIGTERM, checked to end with status 0
#   e2e_finish                      the closing line; the exit status says whether all passed

passed=0 failed=0
pid=""

e2e_need() { # TOOL...
    local missing=""
    [ "$(id -u)" = 0 ] || missing="root"
    for tool in "$@"; do
        command -v "$tool" >/dev/null || missing="$missing${missing:+, }$tool"
    done
    [ -z "$missing" ] && return 0
    echo "skipped: needs $missing"
    echo "0 passed, 0 failed, 1 skipped"
    exit 77
}

e2e_cleanup() {
    [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
    [ -z "$pid" ] || wait "$pid" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}

# A veth pair NAME/PEER in the test's namespace, both up, with IPv6 off on both: no router
# solicitations or MLD reports of the namespace's own, so every frame seen is one the test sent.
e2e_quiet_veth() { # NAME PEER
    ip -n "$ns" link add "$1" type veth peer name "$2"
    for dev in "$1" "$2"; do
        ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$dev.disable_ipv6=1"
        ip -n "$ns" link set "$dev" up
    done
}

e2e_setup() { # NAME
    ns=sipscope-$1-$$
    work=$(mktemp -d)
    trap e2e_cleanup EXIT
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    e2e_quiet_tcp "$ns"
}

# No tail loss probes in namespace $1 (net.ipv4.tcp_early_retrans is per namespace): on a busy
# machine a SIPp that answers more than ~10 ms late lets its peer's probe fire while the ACK is
# still delayed, and the recording then holds a spurious retransmission that its manifest does
# not (seen once in a few runs). Loss recovery is not what these tests are about; sipscope's
# handling of resent segments is tested on gen_tcp_stream.pcap.
e2e_quiet_tcp() { # NS
    ip netns exec "$1" sh -c 'echo 0 >/proc/sys/net/ipv4/tcp_early_retrans' 2>/dev/null ||
        echo "warning: tail loss probes stay on in $1 (net.ipv4.tcp_early_retrans)" >&2
}

check() { # NAME COMMAND...
    local name=$1
    shift
    if "$@" >"$work/check.out" 2>&1; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL $name"
        sed 's/^/     /' "$work/check.out" | head -40
    fi
}

e2e_start_sipscope() { # ARGS...
    # A log of an instance before would be read for this one's port (and lines) until the
    # background redirection below truncates it, which a busy machine can delay: the checks then
    # scraped the old, stopped instance and found nothing (seen in CI under load).
    rm -f "$work/sipscope.log"
    # shellcheck disable=SC2086 # e2e_wrap is a command and its arguments
    ip netns exec "$ns" ${e2e_wrap:-} "$sipscope" --interface "${e2e_iface:-lo}" "$@" \
        --web.listen-address 127.0.0.1:0 \
        2>"$work/sipscope.log" &
    pid=$!
    port=""
    for _ in $(seq 1 100); do
        # The log may not exist yet: the background redirection has not run.
        port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$work/sipscope.log" \
            2>/dev/null || true)
        [ -n "$port" ] && return 0
        sleep 0.05
    done
    cat "$work/sipscope.log"
    echo "0 passed, 1 failed, 0 skipped"
    exit 1
}

scrape() { # PATH
    ip netns exec "$ns" curl -sf "http://127.0.0.1:$port$1"
}

sample_becomes() { # NAME WANT
    local got=""
    for _ in $(seq 50); do
        got=$(scrape /metrics | awk -v name="$1 " 'index($0, name) == 1 {print $2}')
        [ "${got:-absent}" = "$2" ] && return 0
        sleep 0.1
    done
    echo "$1 is ${got:-absent}, want $2"
    return 1
}

log_has() { # TEXT
    for _ in $(seq 50); do
        grep -qF "$1" "$work/sipscope.log" && return 0
        sleep 0.1
    done
    echo "not in the log: $1"
    cat "$work/sipscope.log"
    return 1
}

send_options() { # DEST COUNT
    ip netns exec "$ns" python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[2])):
    n = str(i).encode()
    s.sendto(b"OPTIONS sip:bob@x SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKopt" + n +
             b"\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: opt" + n +
             b"\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", (sys.argv[1], 5060))
PY
}

e2e_stop_sipscope() {
    local rc=0
    kill -TERM "$pid"
    wait "$pid" || rc=$?
    pid=""
    check "SIGTERM stops it with status 0" test "$rc" = 0
}

e2e_finish() {
    echo "$passed passed, $failed failed, 0 skipped"
    [ "$failed" = 0 ]
}
