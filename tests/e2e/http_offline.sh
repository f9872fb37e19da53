#!/usr/bin/env bash
# End to end: sipscope --read CAPTURE --web.listen-address 127.0.0.1:0 serves the metrics that
# --print prints, in a form promtool accepts, gzipped on request, and ends with status 0 within
# 5 s of SIGTERM (or SIGINT). Only processes this script started are signalled, by PID.
#
# Usage: http_offline.sh SIPSCOPE PROMTOOL PCAP_DIR
# Exits 77 (skipped) when the shared capture or promtool is absent.
set -uo pipefail

bin=$1
promtool=$2
capture=$3/sipnab_sipp-branch-scenario.pcapng

passed=0
failed=0
finish() {
    echo "$passed passed, $failed failed, 0 skipped"
    [ "$failed" = 0 ]
    exit
}
skip() {
    echo "skipped: $1"
    echo "0 passed, 0 failed, 1 skipped"
    exit 77
}
ok() { passed=$((passed + 1)); }
bad() {
    failed=$((failed + 1))
    echo "FAIL: $*"
}
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then ok; else bad "$what"; fi
}

[ -r "$capture" ] || skip "$capture not found"
[ -x "$promtool" ] || skip "promtool not found at $promtool"
command -v curl >/dev/null || skip "curl not found"

tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do
        kill -KILL "$p" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
forget() { # a reaped PID may be reused: never signal it again
    local keep=() p
    for p in "${pids[@]}"; do
        [ "$p" != "$1" ] && keep+=("$p")
    done
    pids=("${keep[@]}")
}

# Starts sipscope in the background with the given extra flags; sets pid and port.
start() { # start NAME FLAGS...
    local name=$1
    shift
    "$bin" --read "$capture" --web.listen-address 127.0.0.1:0 "$@" \
        >"$tmp/$name.out" 2>"$tmp/$name.err" &
    pid=$!
    pids+=("$pid")
    port=
    for _ in $(seq 100); do
        port=$(sed -n 's/.*http: listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$tmp/$name.err")
        [ -n "$port" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$port" ]; then
        bad "$name: no \"listening on\" line; stderr:"
        cat "$tmp/$name.err"
        finish
    fi
    # Ready once the whole file is processed.
    local code=
    for _ in $(seq 300); do
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/-/ready")
        [ "$code" = 200 ] && break
        sleep 0.1
    done
    check "$name: /-/ready is 200 after the file" test "$code" = 200
}

# Sends a signal and expects exit status 0 within 5 s.
stop() { # stop NAME SIGNAL
    local name=$1 sig=$2 status
    kill "-$sig" "$pid"
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        bad "$name: still running 5 s after SIG$sig"
        return
    fi
    wait "$pid"
    status=$?
    forget "$pid"
    check "$name: exit status 0 after SIG$sig (got $status)" test "$status" = 0
    check "$name: logs the shutdown" grep -q "service: SIG$sig: shutting down" "$tmp/$name.err"
}

# Drops the process_ and sipscope_http_ families (wall-clock dependent, left out of --print).
no_timing() { grep -v -E '^(# (HELP|TYPE) )?(process_|sipscope_http_)' "$1"; }

"$bin" --read "$capture" --print >"$tmp/print.txt" || bad "--print failed"
check "--print has sip_ series" grep -q '^sip_' "$tmp/print.txt"

# --- 1: serve, scrape, check, SIGTERM --------------------------------------------------------
start serve
url="http://127.0.0.1:$port"

curl -s -D "$tmp/h1" -o "$tmp/scrape.txt" "$url/metrics"
check "/metrics is 200" grep -q '^HTTP/1.1 200' "$tmp/h1"
check "/metrics content type" grep -qi \
    '^Content-Type: text/plain; version=0.0.4; charset=utf-8' "$tmp/h1"
check "/metrics without gzip is not encoded" bash -c "! grep -qi '^Content-Encoding' '$tmp/h1'"

"$promtool" check metrics <"$tmp/scrape.txt" >"$tmp/promtool.out" 2>&1
status=$?
check "promtool accepts the scrape (status $status)" test "$status" = 0
check "promtool has no warning" test ! -s "$tmp/promtool.out"
[ -s "$tmp/promtool.out" ] && cat "$tmp/promtool.out"

# Connections cut for a slow request or answer, and refused at a limit: every reason exported at
# 0 from the start.
check "cut and refused connections at 0 from the start" \
    diff <(grep '^sipscope_http_' "$tmp/scrape.txt") \
    <(printf '%s\n' 'sipscope_http_connections_cut_total{reason="slow_answer"} 0' \
        'sipscope_http_connections_cut_total{reason="slow_request"} 0' \
        'sipscope_http_connections_refused_total{reason="per_address"} 0' \
        'sipscope_http_connections_refused_total{reason="per_network"} 0' \
        'sipscope_http_connections_refused_total{reason="reserve"} 0' \
        'sipscope_http_connections_refused_total{reason="total"} 0')

# The served metrics are the printed ones: sip_ lines exactly, and everything but process_.
check "scraped sip_ lines equal --print" \
    diff <(grep '^sip_' "$tmp/scrape.txt") <(grep '^sip_' "$tmp/print.txt")
check "scrape without process_ equals --print" diff <(no_timing "$tmp/scrape.txt") "$tmp/print.txt"
check "scrape has process_ metrics" grep -q '^process_resident_memory_bytes ' "$tmp/scrape.txt"

curl -s --compressed -D "$tmp/h2" -o "$tmp/scrape_gz.txt" "$url/metrics"
check "gzip: Content-Encoding: gzip" grep -qi '^Content-Encoding: gzip' "$tmp/h2"
check "gzip: Vary: Accept-Encoding" grep -qi '^Vary: Accept-Encoding' "$tmp/h2"
check "gzip: the same metrics" diff <(no_timing "$tmp/scrape_gz.txt") "$tmp/print.txt"

check "HEAD /metrics is 200" test "$(curl -s -I -o /dev/null -w '%{http_code}' "$url/metrics")" = 200
check "/-/healthy" test "$(curl -s "$url/-/healthy")" = "sipscope is Healthy."
check "/ is the index page" bash -c "curl -s '$url/' | grep -q 'href=\"metrics\"'"
check "unknown path is 404" test "$(curl -s -o /dev/null -w '%{http_code}' "$url/nope")" = 404
check "reload without --web.enable-lifecycle is 403" \
    test "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$url/-/reload")" = 403
stop serve TERM
check "nothing on stdout without --print" test ! -s "$tmp/serve.out"

# --- 2: --print and serving together, lifecycle on, SIGINT ----------------------------------
start both --print --web.enable-lifecycle
url="http://127.0.0.1:$port"
check "--print while serving prints the same" diff "$tmp/both.out" "$tmp/print.txt"
check "POST /-/reload is 200" \
    test "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$url/-/reload")" = 200
check "GET /-/reload is 405" \
    test "$(curl -s -o /dev/null -w '%{http_code}' "$url/-/reload")" = 405
check "the reload is logged" grep -q 'service: reload (/-/reload): ' "$tmp/both.err"
stop both INT

# --- 3: a taken port fails at once with status 1 --------------------------------------------
start holder
"$bin" --read "$capture" --web.listen-address "127.0.0.1:$port" >/dev/null 2>"$tmp/taken.err"
status=$?
check "a taken port exits 1 (got $status)" test "$status" = 1
check "a taken port says so" grep -q "cannot listen on 127.0.0.1:$port: Address already in use" \
    "$tmp/taken.err"
stop holder TERM

"$bin" --read "$capture" --web.listen-address localhost:1 >/dev/null 2>"$tmp/usage.err"
status=$?
check "a bad address is a usage error (got $status)" test "$status" = 2

finish
