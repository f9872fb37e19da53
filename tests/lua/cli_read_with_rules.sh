#!/bin/sh
# cli_read_with_rules: the offline job with rules and an events file, end to end through the
# command line: a generated capture of 50 calls, the fixture rules, --print and --events.
#   cli_read_with_rules.sh SIPSCOPE SOURCE_DIR
set -eu
bin=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$bin" --lua-script "$src/tests/bench/gen_calls.lua" "$tmp/calls.pcap" 50 >/dev/null
"$bin" --read "$tmp/calls.pcap" --rules "$src/tests/lua/fixtures/rules_ok" \
    --events "$tmp/events.jsonl" --print >"$tmp/out.prom"

fail() {
    echo "cli_read_with_rules: $*" >&2
    exit 1
}
# The fixture rule counts INVITEs by User-Agent; the label has no X-Carrier to read.
grep -qx 'fixture_invites_total{ua="bench/1.0"} 50' "$tmp/out.prom" || fail "rule counter"
grep -qx 'sip_requests_total{method="INVITE",carrier="other"} 50' "$tmp/out.prom" ||
    fail "label on a built-in family"
grep -qx 'sipscope_rules_loaded 2' "$tmp/out.prom" || fail "rules loaded"
grep -q '^sipscope_rule_seconds' "$tmp/out.prom" && fail "timing family in --print"
# The heap's size moves with allocation addresses: out of --print, which prints the same bytes
# for the same capture every time.
grep -q '^sipscope_lua_memory_bytes' "$tmp/out.prom" && fail "Lua heap size in --print"
"$bin" --read "$tmp/calls.pcap" --rules "$src/tests/lua/fixtures/rules_ok" \
    --events "$tmp/again.jsonl" --print >"$tmp/again.prom"
cmp -s "$tmp/out.prom" "$tmp/again.prom" || fail "a second run printed other bytes"
[ "$(wc -l <"$tmp/events.jsonl")" -eq 50 ] || fail "50 CDR lines"
# The label, the engine's signalling fields (the caller hung up), then the rule's field.
grep -q '"end_reason":"bye","labels":{"carrier":"other"},"src_ip":"10\.1\.[0-9.]*","src_port":5060,"dst_ip":"10\.2\.0\.1","dst_port":5060,"transport":"udp","user_agent":"bench/1\.0","pdd":0\.1,"hangup":"caller","checked":true}$' \
    "$tmp/events.jsonl" || fail "CDR with the label, the signalling fields and the rule's field"
echo "1 passed, 0 failed, 0 skipped"
