#!/usr/bin/env bash
# bench_lua: what Lua rules cost per SIP message, on a generated capture of answered calls
# (tests/bench/gen_calls.lua: 7 messages per call, call i from 10.1.x.y to 10.2.0.1):
# no rules, one empty on_message hook, a label rule (one sip.label computed per call), a label
# rule with a counter per request, each bundled rule of rules/ alone, all of them, and all but
# the sip-exporter migration rule. Bundled rules ship disabled: they are enabled here and
# configured for the capture's addresses (RULE_CONFIG below), as an operator would.
#   tests/bench/bench_lua.sh [CALLS=30000] [REPS=7]      (SIPSCOPE=path/to/sipscope)
#   CONFIGS="none bundled" tests/bench/bench_lua.sh ...   only these configurations
#   tests/bench/bench_lua.sh --make-rules DIR [RULE...]   write enabled, configured copies of
#                                                         the bundled rules (default: all) to DIR
# Output: one line per configuration, "NAME  NS ns/message  +DELTA" (DELTA: to "none"); thread
# CPU time, file reading included, best of REPS runs interleaved across configurations.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=${SIPSCOPE:-$top/build/core/sipscope}

BUNDLED=(carrier device fraud trunk_asr sip_exporter)
declare -A RULE_CONFIG=(
    [carrier]='{enabled = true, carriers = {["10.1.0.0/18"] = "red", ["10.1.64.0/18"] = "blue"}}'
    [device]='{enabled = true}'
    [fraud]='{enabled = true}'
    [trunk_asr]='{enabled = true, trunks = {["10.2.0.1"] = "core-gw"}}'
    [sip_exporter]='{enabled = true}'
)

make_rules() { # DIR RULE...
    local dir=$1
    shift
    mkdir -p "$dir"
    for r in "$@"; do
        "$bin" --lua-script "$top/tests/lua/rules/configure.lua" "$top/rules/$r.lua" "$dir" \
            "${RULE_CONFIG[$r]}" >/dev/null
    done
}

if [ "${1:-}" = "--make-rules" ]; then
    dir=${2:?usage: bench_lua.sh --make-rules DIR [RULE...]}
    shift 2
    if [ $# -eq 0 ]; then
        set -- "${BUNDLED[@]}"
    fi
    make_rules "$dir" "$@"
    exit 0
fi

calls=${1:-30000}
reps=${2:-7}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$bin" --lua-script "$top/tests/bench/gen_calls.lua" "$tmp/calls.pcap" "$calls" >/dev/null

mkdir "$tmp/empty" "$tmp/label" "$tmp/label_metric"
cat >"$tmp/empty/empty.lua" <<'LUA'
return {on_message = function(m) end}
LUA
cat >"$tmp/label/label.lua" <<'LUA'
local sip = require "sipscope"
sip.label{name = "carrier", default = "other", max_values = 16, from = function(m)
    local ip = m.src_ip
    if ip:find("10.1.0.", 1, true) == 1 then return "first" end
    return "rest"
end}
return {}
LUA
cat >"$tmp/label_metric/label_metric.lua" <<'LUA'
local sip = require "sipscope"
sip.label{name = "carrier", default = "other", max_values = 16, from = function(m)
    local ip = m.src_ip
    if ip:find("10.1.0.", 1, true) == 1 then return "first" end
    return "rest"
end}
local requests = sip.counter{name = "bench_requests_total", labels = {"method"}}
return {on_request = function(m) requests:inc(m.method) end}
LUA

configs=(none=- empty_hook="$tmp/empty" label="$tmp/label" label_metric="$tmp/label_metric")
if [ -f "$top/rules/carrier.lua" ]; then
    for r in "${BUNDLED[@]}"; do
        make_rules "$tmp/rule_$r" "$r"
        configs+=(rule_"$r"="$tmp/rule_$r")
    done
    make_rules "$tmp/bundled" "${BUNDLED[@]}"
    make_rules "$tmp/bundled_no_exporter" carrier device fraud trunk_asr
    configs+=(bundled="$tmp/bundled" bundled_no_exporter="$tmp/bundled_no_exporter")
fi
if [ -n "${CONFIGS:-}" ]; then
    kept=()
    for c in "${configs[@]}"; do
        case " $CONFIGS " in *" ${c%%=*} "*) kept+=("$c") ;; esac
    done
    configs=("${kept[@]}")
fi
"$bin" --lua-script "$top/tests/bench/bench_lua.lua" "$tmp/calls.pcap" "$reps" "${configs[@]}"
