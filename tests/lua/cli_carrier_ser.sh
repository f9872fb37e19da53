#!/bin/sh
# cli_carrier_ser: offline end to end with a bundled rule. The flow of
# tests/fixtures/rules/carriers.sip (calls from and to two carriers, with different outcomes)
# becomes a pcap (sip2pcap); rules/carrier.lua is configured for its addresses the way an
# operator would edit it; `sipscope --read --rules --print` must split attempts, outcomes and
# SER per carrier exactly as derived by hand in the .sip file's header.
#   cli_carrier_ser.sh SIPSCOPE SIP2PCAP SOURCE_DIR
set -eu
bin=$1
sip2pcap=$2
src=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() {
    echo "cli_carrier_ser: $*" >&2
    exit 1
}

"$sip2pcap" "$src/tests/fixtures/rules/carriers.sip" "$tmp/carriers.pcap"
mkdir "$tmp/rules"
sed -e 's/^    enabled = false,$/    enabled = true,/' \
    -e 's|^    carriers = {$|&\n        ["198.51.100.0/24"] = "red",\n        ["203.0.113.0/24"] = "blue",|' \
    "$src/rules/carrier.lua" >"$tmp/rules/carrier.lua"
grep -q '^    enabled = true,$' "$tmp/rules/carrier.lua" || fail "could not enable the rule"
grep -q '"203.0.113.0/24"] = "blue",$' "$tmp/rules/carrier.lua" || fail "could not add carriers"

"$bin" --read "$tmp/carriers.pcap" --rules "$tmp/rules" --print >"$tmp/out.prom"

passed=0
expect() {
    grep -qxF "$1" "$tmp/out.prom" || { grep -F "${1%% *}" "$tmp/out.prom" >&2 || true; fail "no line: $1"; }
    passed=$((passed + 1))
}
expect 'sipscope_sip_messages_total{transport="udp",ip="4"} 50'
expect 'sip_session_attempts_total{carrier="red"} 3'
expect 'sip_session_attempts_total{carrier="blue"} 5'
expect 'sip_session_attempts_total{carrier="other"} 1'
expect 'sip_session_outcomes_total{code="200",carrier="red"} 2'
expect 'sip_session_outcomes_total{code="486",carrier="red"} 1'
expect 'sip_session_outcomes_total{code="200",carrier="blue"} 2'
expect 'sip_session_outcomes_total{code="302",carrier="blue"} 1'
expect 'sip_session_outcomes_total{code="503",carrier="blue"} 1'
expect 'sip_session_outcomes_total{code="487",carrier="blue"} 1'
expect 'sip_session_outcomes_total{code="404",carrier="other"} 1'
expect 'sip_session_challenges_total{code="407",carrier="red"} 1'
expect 'sip_sessions_completed_total{carrier="red"} 2'
expect 'sip_sessions_completed_total{carrier="blue"} 2'
# SER = o{200} / (attempts - o{3xx}): red 2 / 3, blue 2 / (5 - 1), other 0 / 1
expect 'sip_session_establishment_ratio{carrier="red"} 0.6666666666666666'
expect 'sip_session_establishment_ratio{carrier="blue"} 0.5'
expect 'sip_session_establishment_ratio{carrier="other"} 0'
expect 'sip_answer_seizure_ratio{carrier="blue"} 0.4'
expect 'sip_ineffective_session_attempts_ratio{carrier="blue"} 0.2'
# Every series of the session families carries a carrier; the three carriers and no other.
n=$(grep -c '^sip_session_attempts_total{' "$tmp/out.prom")
[ "$n" -eq 3 ] || fail "$n sip_session_attempts_total series, not 3"
passed=$((passed + 1))
echo "$passed passed, 0 failed, 0 skipped"
