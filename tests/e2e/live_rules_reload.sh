#!/usr/bin/env bash
# Rule reload on the live binary: SIGHUP and POST /-/reload swap in new rules only when they all
# load, rule counters survive a reload, a broken rule file is rejected (visible in metrics) while
# the old rules keep running, and a reload that would change the rule labels is refused.
# usage: live_rules_reload.sh SIPSCOPE   (needs root; skips otherwise)
set -euo pipefail
sipscope=$1
. "$(dirname "$0")/lib.sh"
e2e_need
e2e_setup reload

# A rule whose counter says which version counted: version 1 adds 1 per request, version 2
# adds 10. The family (name, labels) is the same, so its value must carry over a reload.
mkdir "$work/rules"
write_rule() { # STEP
    cat >"$work/rules/count.lua" <<EOF
local sip = require "sipscope"
local seen = sip.counter{name = "test_requests_total", help = "Requests seen by the rule.",
                         labels = {"method"}}
return {on_request = function(m) seen:inc(m.method, $1) end}
EOF
}
write_rule 1

e2e_start_sipscope --sip-ports 5060 --rules "$work/rules" --web.enable-lifecycle

# N OPTIONS requests, each its own transaction (new branch, new Call-ID).
send() { # N FIRST
    ip netns exec "$ns" python3 - "$1" "$2" <<'PY'
import socket, sys
n, first = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(first, first + n):
    msg = (f"OPTIONS sip:probe@127.0.0.1 SIP/2.0\r\n"
           f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-reload-{i}\r\n"
           f"From: <sip:test@127.0.0.1>;tag=t{i}\r\nTo: <sip:probe@127.0.0.1>\r\n"
           f"Call-ID: reload-{i}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    s.sendto(msg.encode(), ("127.0.0.1", 5060))
PY
    sleep 0.3 # the filter hands packets over within 50 ms
}
metric() { # SERIES
    ip netns exec "$ns" curl -sf "http://127.0.0.1:$port/metrics" | awk -v k="$1" '$1 == k {print $2}'
}
is() { # SERIES VALUE
    local got
    got=$(metric "$1")
    [ "$got" = "$2" ] || { echo "$1 = ${got:-absent}, expected $2"; return 1; }
}
reload_http() { ip netns exec "$ns" curl -s -o /dev/null -w '%{http_code}' -X POST \
    "http://127.0.0.1:$port/-/reload"; }

send 3 0
check "version 1 counted 3 requests" is 'test_requests_total{method="OPTIONS"}' 3
check "one rule loaded" is sipscope_rules_loaded 1

write_rule 10
kill -HUP "$pid"
sleep 0.5
check "SIGHUP reload succeeded" is 'sipscope_rules_reloads_total{result="success"}' 1
check "the counter survived the reload" is 'test_requests_total{method="OPTIONS"}' 3
send 2 3
check "version 2 runs: 3 + 2 x 10" is 'test_requests_total{method="OPTIONS"}' 23

echo 'return {on_request = function(m) this is not lua end}' >"$work/rules/broken.lua"
check "POST /-/reload of a broken rule answers 500" test "$(reload_http)" = 500
check "the failed reload is counted" is 'sipscope_rules_reloads_total{result="failure"}' 1
check "and shown as the last reload" is sipscope_rules_last_reload_success 0
send 1 5
check "the old rules kept running" is 'test_requests_total{method="OPTIONS"}' 33
rm "$work/rules/broken.lua"

cat >"$work/rules/label.lua" <<'EOF'
local sip = require "sipscope"
sip.label{name = "carrier", default = "other", max_values = 4, from = function() return "x" end}
return {}
EOF
check "a reload that adds a label is refused" test "$(reload_http)" != 200
check "the refusal is counted" is 'sipscope_rules_reloads_total{result="refused"}' 1
rm "$work/rules/label.lua"
check "POST /-/reload of good rules answers 200" test "$(reload_http)" = 200
check "and it is counted as a success" is 'sipscope_rules_reloads_total{result="success"}' 2
check "the last reload is a success again" is sipscope_rules_last_reload_success 1
check "the built-in count is exact throughout" is 'sip_requests_total{method="OPTIONS"}' 6
check "no rule error" bash -c "! grep -q '^sipscope_rule_errors_total' <(ip netns exec $ns curl -sf http://127.0.0.1:$port/metrics)"

e2e_stop_sipscope
e2e_finish
