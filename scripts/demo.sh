#!/usr/bin/env bash
# A one-minute demonstration on a fresh Debian 12 machine: sets everything up, starts sipscope on
# the loopback of a network namespace of its own with four of the bundled rules enabled and
# configured for the demo's traffic (they ship disabled), drives SIPp traffic (answered, busy,
# rejected, cancelled, challenged calls, registrations, OPTIONS) for a minute, and shows the key
# metrics as they move. Needs root. Nothing outside the namespace is touched.
#
# usage: sudo scripts/demo.sh [SECONDS]
#        scripts/demo.sh --write-rules DIR SIPSCOPE   (writes the demo's rules into DIR, exits)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)

# The bundled rules ship with enabled = false: a copy of each, enabled and configured for the
# demo's traffic (every SIPp instance on 127.0.0.1, no User-Agent), as an operator would edit
# them (rules/README.md; tests/lua/rules/configure.lua rewrites their config table).
# sip_exporter.lua, a migration view, is left out.
write_rules() { # DIR SIPSCOPE
    local dir=$1 bin=$2 rule
    mkdir -p "$dir"
    for rule in \
        "carrier:{enabled = true, carriers = {[\"127.0.0.0/8\"] = \"loopback\"}}" \
        "device:{enabled = true}" \
        "fraud:{enabled = true}" \
        "trunk_asr:{enabled = true, trunks = {[\"127.0.0.1\"] = \"loopback-gw\"}}"; do
        "$bin" --lua-script "$top/tests/lua/rules/configure.lua" "$top/rules/${rule%%:*}.lua" \
            "$dir" "${rule#*:}" >/dev/null
    done
    "$bin" --check-rules "$dir" >/dev/null
}
if [ "${1:-}" = --write-rules ]; then
    write_rules "$2" "$3"
    exit
fi
seconds=${1:-60}
cd "$top"

echo "== setting up (dependencies, build)"
./scripts/install-deps.sh >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
sipscope=$top/build/core/sipscope
sippdir=$top/tests/fixtures/sipp

ns=sipscope-demo-$$
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
in_ns() { ip netns exec "$ns" "$@"; }

write_rules "$work/rules" "$sipscope"
echo "== starting sipscope on lo (ports 5060-5079) with the bundled rules carrier, device, fraud"
echo "   and trunk_asr, enabled and configured for this traffic"
# exec: the PID kept is sipscope's own, so that cleanup stops it and nothing else.
(exec ip netns exec "$ns" "$sipscope" --interface lo --sip-ports 5060-5079 \
    --web.listen-address 127.0.0.1:9632 --rules "$work/rules" >/dev/null \
    2>"$work/sipscope.log") &
pids+=($!)
for _ in $(seq 1 100); do
    in_ns curl -sf 127.0.0.1:9632/-/ready >/dev/null 2>&1 && break
    sleep 0.1
done
in_ns curl -sf 127.0.0.1:9632/-/ready >/dev/null || { cat "$work/sipscope.log"; exit 1; }

# One SIPp pair per scenario, each on its own ports, each sending a call every few seconds for
# the whole demo (-m bounds it).
scenarios=(answered busy rejected-503 cancelled invite-auth register-auth options)
rates=(10 2 2 2 3 2 3) # calls per 10 s
slot=0
for scen in "${scenarios[@]}"; do
    uas=$((5060 + 2 * slot)) uac=$((5061 + 2 * slot))
    calls=$((rates[slot] * seconds / 10))
    (cd "$work" && exec timeout $((seconds + 30)) ip netns exec "$ns" sipp \
        -sf "$sippdir/$scen-uas.xml" -i 127.0.0.1 -p "$uas" -mp $((5200 + 8 * slot)) \
        -cp $((5400 + 2 * slot)) -m "$calls" -nostdin >/dev/null 2>&1) &
    pids+=($!)
    sleep 0.2
    (cd "$work" && exec timeout $((seconds + 30)) ip netns exec "$ns" sipp \
        -sf "$sippdir/$scen-uac.xml" -i 127.0.0.1 -p "$uac" -mp $((5204 + 8 * slot)) \
        -cp $((5401 + 2 * slot)) -r "${rates[slot]}" -rp 10000 -m "$calls" \
        "127.0.0.1:$uas" -nostdin >/dev/null 2>&1) &
    pids+=($!)
    slot=$((slot + 1))
done

show() {
    in_ns curl -s 127.0.0.1:9632/metrics >"$work/metrics"
    printf '\n== after %s s\n' "$1"
    grep -E '^sip_(session_attempts_total|session_outcomes_total|session_establishment_ratio|answer_seizure_ratio|ineffective_session_attempts_ratio|dialogs_active|registrations_active|registration_outcomes_total)' \
        "$work/metrics" | grep -v ' 0$' | sed 's/^/   /' || true
    grep -E '^(trunk_(seizures_total|answer_seizure_ratio)|device_final_responses_total|fraud_alerts_total)' \
        "$work/metrics" | grep -v ' 0$' | sed 's/^/   /' || true
    grep -E '^sipscope_(packets_total|capture_drops_total|rule_errors_total)' "$work/metrics" |
        sed 's/^/   /' || true
}
for t in $(seq 15 15 "$seconds"); do
    sleep 15
    show "$t"
done
echo
echo "== done; the demo's namespace and processes are removed. To watch your own traffic:"
echo "   sudo $top/scripts/run.sh --interface any   # then open http://localhost:9632/"
echo "   With rules: they ship disabled. Copy them, set enabled = true and configure each for"
echo "   your addresses (rules/README.md), check them, and run with them:"
echo "   cp -r $top/rules my-rules && \$EDITOR my-rules/carrier.lua"
echo "   $top/build/core/sipscope --check-rules my-rules"
echo "   sudo $top/scripts/run.sh --interface any --rules my-rules"
