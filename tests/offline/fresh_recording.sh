#!/usr/bin/env bash
# Records every SIPp scenario afresh on loopback, over UDP and TCP on IPv4 and IPv6
# (scripts/record-fixtures.sh, which checks each capture against its manifest with tshark), and
# checks sipscope's metrics of the new captures against the same hand-derived expectations as the
# committed ones.
set -euo pipefail
sipscope=$1
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=$(mktemp -d)
ns=sipscope-fresh-$$
trap 'ip netns del "$ns" 2>/dev/null || true; rm -rf "$out"' EXIT
if [ "$(id -u)" != 0 ] || ! command -v sipp >/dev/null; then
    echo "skipped: needs root and sipp"
    echo "0 passed, 0 failed, 1 skipped"
    exit 77
fi
# A namespace of its own: the host's loopback traffic stays out of the recordings, and tail
# loss probes are off there (see e2e_quiet_tcp in tests/e2e/lib.sh).
. "$top/tests/e2e/lib.sh"
ip netns add "$ns"
ip -n "$ns" link set lo up
e2e_quiet_tcp "$ns"
ip netns exec "$ns" "$top/scripts/record-fixtures.sh" --port 17460 --transport both "$out" \
    >"$out/record.log" 2>&1 || {
    cat "$out/record.log"
    echo "0 passed, 1 failed, 0 skipped"
    exit 1
}
passed=0 failed=0
for s in answered busy rejected-503 redirected-302 cancelled invite-auth register-auth \
    deregister options reinvite mix; do
    for v in udp4 udp6 tcp4 tcp6; do
        if result=$(python3 "$here/expect.py" "$sipscope" "$out/$s-$v.pcap" "$here/expect/$s.expect" \
            --transport "$v"); then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
            echo "$s-$v:"
            echo "$result" | grep -v '^#'
        fi
    done
done
echo "$passed passed, $failed failed, 0 skipped"
[ "$failed" = 0 ]
