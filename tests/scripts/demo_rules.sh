#!/usr/bin/env bash
# scripts/demo.sh runs the bundled rules enabled and configured for its traffic (SIPp on
# 127.0.0.1, no User-Agent): the rules it writes (demo.sh --write-rules) load, each with its
# hooks, and on a SIPp recording of that traffic (mix-udp4: 16 calls) they label and count every
# call. The shipped rules, which the demo used to pass as they are, run nothing.
#
# Usage: demo_rules.sh SIPSCOPE SOURCE_DIR
set -uo pipefail
sipscope=$1 src=$2
. "$(dirname "$0")/lib.sh"

"$sipscope" --check-rules "$src/rules" >"$work/shipped"
check "the shipped rules run nothing (enabled = false)" \
    test "$(grep -c ': hooks none$' "$work/shipped")" = "$(ls "$src"/rules/*.lua | wc -l)"

"$src/scripts/demo.sh" --write-rules "$work/rules" "$sipscope" >"$work/out" 2>&1
check "demo.sh --write-rules: status 0" test $? = 0
"$sipscope" --check-rules "$work/rules" >"$work/check"
check "four rules load" grep -qx "4 rules OK" "$work/check"
check "carrier declares its label" grep -q "^carrier .*: hooks none; labels carrier$" "$work/check"
check "device has its hook and label" \
    grep -q "^device .*: hooks on_transaction_end; labels ua_type;" "$work/check"
check "fraud has its hooks" grep -q "^fraud .*: hooks on_dialog_start,on_transaction_end,on_tick;" \
    "$work/check"
check "trunk_asr has its hooks" \
    grep -q "^trunk_asr .*: hooks on_dialog_start,on_dialog_answer,on_dialog_end;" "$work/check"

"$sipscope" --read "$src/tests/fixtures/pcap/mix-udp4.pcap" --rules "$work/rules" --print \
    >"$work/prom" 2>"$work/err"
check "the demo's traffic read with them: status 0" test $? = 0
check "every call on the loopback carrier" \
    grep -qx 'sip_session_attempts_total{carrier="loopback",ua_type="unknown"} 16' "$work/prom"
check "every call seized on the loopback trunk" \
    grep -qx 'trunk_seizures_total{trunk="loopback-gw",direction="inbound"} 16' "$work/prom"
check "final responses by device class" \
    grep -qx 'device_final_responses_total{server="unknown",class="2xx"} 31' "$work/prom"
finish "$work/out" "$work/err"
