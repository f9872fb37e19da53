#!/usr/bin/env bash
# bench_lua: what Lua rules cost per SIP message, on a generated capture of answered calls:
# no rules, one empty on_message hook, a label rule (one sip.label computed per call), a label
# rule with a counter per request, and the bundled rules (rules/) when the tree has them.
#   tests/bench/bench_lua.sh [CALLS=30000] [REPS=7]      (SIPSCOPE=path/to/sipscope)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=${SIPSCOPE:-$top/build/core/sipscope}
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
if ls "$top"/rules/*.lua >/dev/null 2>&1; then
    configs+=(bundled="$top/rules")
fi
"$bin" --lua-script "$top/tests/bench/bench_lua.lua" "$tmp/calls.pcap" "$reps" "${configs[@]}"
