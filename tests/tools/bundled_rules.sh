#!/usr/bin/env bash
# bundled_rules.sh: writes enabled, configured copies of the bundled rules (rules/*.lua) into
# DEST, as an operator would run them on gen_traffic's captures (callers 10.0.x.y, the proxy
# 192.0.2.1). The sip-exporter migration rule is left out (the benchmark's target excludes it).
# Used by the benchmark, the release build's training run and the release build's test.
#
#   tests/tools/bundled_rules.sh SIPSCOPE DEST    (prints the names of the rules written)
set -euo pipefail
sipscope=$1 dest=$2
top=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$dest"
configure() { # rule, its configuration table (fields replacing the shipped ones)
    "$sipscope" --lua-script "$top/tests/lua/rules/configure.lua" "$top/rules/$1.lua" "$dest" \
        "$2" >/dev/null
    echo "$1"
}
configure carrier '{enabled = true, carriers = {["10.0.0.0/17"] = "red", ["10.0.128.0/17"] = "blue"}}'
configure device '{enabled = true}'
configure fraud '{enabled = true}'
configure trunk_asr '{enabled = true, trunks = {["192.0.2.1"] = "core-gw"}}'
"$sipscope" --check-rules "$dest" >/dev/null
