#!/usr/bin/env bash
# Records tests/fixtures/pcap/sipp_tcp.pcap: SIPp's built-in uac and uas scenarios over one TCP
# connection (-t t1) on 127.0.0.1, captured with tcpdump on lo. Three calls: INVITE, 100, 180,
# 200, ACK, BYE, 200 each (the uac's -d pause between ACK and BYE is 100 ms).
# Needs root (tcpdump) and the Debian packages sip-tester and tcpdump. Re-run only to refresh
# the committed capture; the tests read the committed file.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/tests/fixtures/pcap/sipp_tcp.pcap}
port=5098
work=$(mktemp -d)
cleanup() {
    [[ -n ${uas:-} ]] && kill "$uas" 2>/dev/null || true
    [[ -n ${dump:-} ]] && kill "$dump" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

tcpdump -i lo -U -s 65535 -w "$work/cap.pcap" "tcp port $port" 2>"$work/tcpdump.log" &
dump=$!
sleep 1
sipp -sn uas -t t1 -i 127.0.0.1 -p "$port" -nostdin >/dev/null 2>&1 </dev/null &
uas=$!
sleep 0.5
sipp -sn uac -t t1 -i 127.0.0.1 -p 5099 -m 3 -r 10 -d 100 -timeout 20s 127.0.0.1:"$port" \
    -nostdin >/dev/null 2>&1 </dev/null
sleep 1
kill "$uas"
uas=
sleep 0.5
kill "$dump"
wait "$dump" 2>/dev/null || true
dump=
mkdir -p "$(dirname "$out")"
cp "$work/cap.pcap" "$out"
echo "wrote $out"
