#!/usr/bin/env bash
# Live end to end: sipscope captures with its eBPF filter inside a network namespace of its own
# while SIPp runs the mix of every scenario (answered, busy, 503, 302, cancelled, challenged
# INVITE, challenged REGISTER, de-REGISTER, OPTIONS, re-INVITE) over UDP and over TCP (one
# connection per SIPp pair), each on IPv4 and IPv6, one after the other, and tcpdump records the
# same traffic. Checks, over HTTP:
#   - the scrape passes promtool with no warning, and shows zero capture drops;
#   - the kernel filter matched exactly the packets recorded;
#   - each recorded capture gives the hand-derived values of tests/offline/expect/mix.expect, and
#     the live scrape counts each run's 135 messages under its transport and IP version;
#   - SIPp's own statistics: every client call succeeded, and the successful calls equal
#     sipscope's session attempts + registration attempts + OPTIONS requests;
#   - live equals offline: every sip_ counter and gauge, and every histogram count, of the live
#     scrape equals `sipscope --read` of the recorded traffic;
#   - the call records (--events): 16 calls a run, each with its run's addresses and transport,
#     PCMU and the caller's hang-up on the 9 answered ones (mix.expect), and the same lines as
#     the offline read of the recording but for the times.
# usage: live_sipp.sh SIPSCOPE [udp|tcp|both]   (default both; needs root; skips otherwise)
set -euo pipefail
sipscope=$1
transport=${2:-both}
case "$transport" in
udp) runs=(udp4 udp6) ;;
tcp) runs=(tcp4 tcp6) ;;
both) runs=(udp4 udp6 tcp4 tcp6) ;;
*) echo "usage: live_sipp.sh SIPSCOPE [udp|tcp|both]" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
promtool=${SIPSCOPE_PROMTOOL:-$top/build/deps/bin/promtool}
. "$here/lib.sh"

e2e_need sipp tcpdump tshark

e2e_setup e2e
# Short timers, so that nothing here waits 32 s (64*T1 = 3.2 s).
flags=(--sip-ports 5060-5099 --timer-t1 50ms)
e2e_start_sipscope "${flags[@]}" --events "$work/live-events.json"
check "ready once the capture is attached" scrape /-/ready

mkdir -p "$work/rec" "$work/stats"
SIPSCOPE_SIPP_STATS="$work/stats" ip netns exec "$ns" "$top/scripts/record-fixtures.sh" \
    --only mix --transport "$transport" --port 5060 "$work/rec" >"$work/record.log" 2>&1 ||
    { cat "$work/record.log"; echo "0 passed, 1 failed, 0 skipped"; exit 1; }
# The kernel filter matches every packet with a port in --sip-ports, SIP or not: each UDP
# datagram, and each TCP segment, handshakes, pure ACKs and FINs included. Those are exactly the
# packets the recorder's tcpdump keeps (its filters take SIPp's SIP ports 5060-5079; SIPp's media
# and control sockets are on 5160 and up, and the scrapes come from ephemeral ports, 32768 and
# up). Over UDP that is 135 packets per run (mix.expect); over TCP how many segments carry only
# an ACK is up to the kernel's ACK timing, so the number is counted in the recordings.
recorded=0
for v in "${runs[@]}"; do
    recorded=$((recorded + $(tshark -r "$work/rec/mix-$v.pcap" 2>/dev/null | wc -l)))
done
value() { awk -v k="$1" '$1 == k { print $2 }' "$work/live.prom"; }
# The filter hands packets over within 50 ms, but the kernel's packet counters are read once a
# second: wait for them (at most 5 s) before the scrape the checks read. Two scrapes a moment
# apart must then agree.
for _ in $(seq 50); do
    scrape /metrics >"$work/live.prom"
    [ "$(value 'sipscope_packets_total{iface="lo",result="matched"}')" = "$recorded" ] && break
    sleep 0.1
done
sleep 0.3
scrape /metrics >"$work/live2.prom"
# (The engine's own families move on: the scrapes are packets on lo, and tables empty as
# finished calls stop lingering. The sip_ families must not.)
check "the sip_ families are stable once the traffic stopped" \
    diff <(grep '^sip_' "$work/live.prom") <(grep '^sip_' "$work/live2.prom")

check "promtool accepts the scrape without a warning" \
    bash -c "out=\$('$promtool' check metrics <'$work/live.prom' 2>&1) && [ -z \"\$out\" ] || { echo \"\$out\"; false; }"
check "no capture drops" \
    bash -c "! grep -E '^sipscope_capture_drops_total\\{.*\\} [1-9]' '$work/live.prom'"
check "the kernel matched every recorded packet and nothing else ($recorded)" \
    test "$(value 'sipscope_packets_total{iface="lo",result="matched"}')" = "$recorded"
for v in "${runs[@]}"; do
    check "$v recording gives the hand-derived values" \
        python3 "$top/tests/offline/expect.py" "$sipscope" "$work/rec/mix-$v.pcap" \
        "$top/tests/offline/expect/mix.expect" --transport "$v" -- "${flags[@]}"
    series="sipscope_sip_messages_total{transport=\"${v:0:3}\",ip=\"${v:3}\"}"
    check "live: the 135 messages of the $v run under $series" test "$(value "$series")" = 135
done

# SIPp: every client call succeeded (a failure would have failed the recorder too), and what
# succeeded is exactly what sipscope counted.
successful=$(awk -F';' 'FNR == 1 { for (i = 1; i <= NF; i++) if ($i == "SuccessfulCall(C)") s = i
                                    if (!s) exit 1; next }
                        { last[FILENAME] = $s } END { for (f in last) t += last[f]; print t }' \
    "$work"/stats/*-uac.csv)
failed_calls=$(awk -F';' 'FNR == 1 { for (i = 1; i <= NF; i++) if ($i == "FailedCall(C)") s = i; next }
                          { last[FILENAME] = $s } END { for (f in last) t += last[f]; print t }' \
    "$work"/stats/*-uac.csv)
counted=$(($(value sip_session_attempts_total) + $(value sip_registration_attempts_total) +
    $(value 'sip_requests_total{method="OPTIONS"}')))
check "SIPp reports no failed call" test "$failed_calls" = 0
# 25 calls per run (mix.expect).
calls=$((25 * ${#runs[@]}))
check "SIPp's $calls successful calls ($successful) = attempts + registrations + OPTIONS ($counted)" \
    test "$successful" = "$calls" -a "$counted" = "$calls"

# Live equals offline on the same traffic, read with the same flags.
mergecap -w "$work/all.pcap" "$work"/rec/mix-*.pcap
"$sipscope" --read "$work/all.pcap" --print "${flags[@]}" >"$work/offline.prom"
comparable() { # sip_ counters and gauges, and histogram counts; not the delays themselves,
    # which differ by the microseconds between the kernel's and tcpdump's timestamps.
    grep '^sip_' "$1" | grep -v -E '_(bucket|sum)\{|_sum ' | sort
}
check "live sip_ counters, gauges and histogram counts equal sipscope --read of the recording" \
    diff <(comparable "$work/live.prom") <(comparable "$work/offline.prom")

e2e_stop_sipscope

# The call records: the live file is complete once sipscope has stopped (it flushes at exit).
"$sipscope" --read "$work/all.pcap" --print "${flags[@]}" --events "$work/offline-events.json" \
    >/dev/null
check "call records: 16 calls a run, with their runs' addresses, transport, codec and hang-up" \
    python3 - "$work/live-events.json" "${runs[@]}" <<'PY'
import collections, json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
calls = [l for l in lines if l["type"] == "call"]
want = collections.Counter()
for v in sys.argv[2:]:  # udp4 ...: 16 calls, 9 answered (mix.expect), SIPp on loopback
    ip = "127.0.0.1" if v.endswith("4") else "::1"
    want[(ip, ip, v[:3], "PCMU", "caller")] += 9
    want[(ip, ip, v[:3], None, None)] += 7
got = collections.Counter((c.get("src_ip"), c.get("dst_ip"), c.get("transport"), c.get("codec"),
                           c.get("hangup")) for c in calls)
if got != want:
    print("got", dict(got), "want", dict(want))
    sys.exit(1)
PY
check "call records: live equals sipscope --read of the recording, but for the times" \
    python3 - "$work/live-events.json" "$work/offline-events.json" <<'PY'
import json, sys
TIMES = {"start", "answer", "end", "setup_delay", "duration", "pdd"}
def calls(path):
    out = [{k: v for k, v in json.loads(l).items() if k not in TIMES} for l in open(path)]
    return sorted((json.dumps(c, sort_keys=True) for c in out if c["type"] == "call"))
live, offline = calls(sys.argv[1]), calls(sys.argv[2])
if live != offline:
    print("\n".join(sorted(set(live) ^ set(offline))[:6]))
    sys.exit(1)
PY
e2e_finish
