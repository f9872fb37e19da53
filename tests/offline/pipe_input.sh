#!/usr/bin/env bash
# Captures from a named pipe (mkfifo), as a capture tool or a remote copy would feed one:
# - a pipe fed the capture once gives the --print output of the file itself, byte for byte,
#   with the reader started first (it waits in its open for the writer, and must not lose it);
# - with --web.listen-address, SIGTERM or SIGINT during the read ends the job there: the process
#   exits with status 0 within 5 s, says which signal stopped it, and prints nothing (the
#   metrics would be of part of the file). That pipe never ends: only the signal can end the
#   read.
# Only processes this script started are signalled, by PID.
#
# Usage: pipe_input.sh SIPSCOPE GEN_TRAFFIC
set -uo pipefail
sipscope=$1
gen=$2
work=$(mktemp -d)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill -KILL "$p" 2>/dev/null
    done
    wait 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
passed=0 failed=0
bad() {
    failed=$((failed + 1))
    echo "FAIL: $*"
}

"$gen" "$work/mix.pcap" 20000 3 >/dev/null || {
    echo "FAIL: gen_traffic"
    exit 1
}

# Writes CAPTURE into the pipe FIFO with its records ROUNDS times (0: for ever), in the
# background; sets feeder to its PID.
feed() { # CAPTURE FIFO ROUNDS
    python3 - "$@" <<'EOF' &
import sys
data = open(sys.argv[1], "rb").read()
header, records, rounds = data[:24], data[24:], int(sys.argv[3])
try:
    with open(sys.argv[2], "wb") as out:
        out.write(header)
        n = 0
        while rounds == 0 or n < rounds:
            out.write(records)
            n += 1
except BrokenPipeError:
    pass
EOF
    feeder=$!
    pids+=("$feeder")
}

# The capture once through a pipe, against the file.
"$sipscope" --read "$work/mix.pcap" --print >"$work/file.prom" 2>"$work/file.err" ||
    bad "the file itself: exit status $?"
mkfifo "$work/once.fifo"
timeout 20 "$sipscope" --read "$work/once.fifo" --print >"$work/once.prom" 2>"$work/once.err" &
reader=$!
sleep 0.3 # the reader is waiting in its open
feed "$work/mix.pcap" "$work/once.fifo" 1
wait "$reader"
status=$?
if [ "$status" = 0 ] && cmp -s "$work/file.prom" "$work/once.prom"; then
    passed=$((passed + 1))
else
    bad "a pipe fed the capture once: status $status (want 0), or its output is not the file's"
    cat "$work/once.err"
fi

# The pipe is fed the capture's records again and again, for ever; SIGNAL stops the read.
stop_during_read() { # SIGNAL
    local sig=$1 fifo=$work/$1.fifo pid status i
    mkfifo "$fifo"
    feed "$work/mix.pcap" "$fifo" 0
    "$sipscope" --read "$fifo" --web.listen-address 127.0.0.1:0 --print \
        >"$work/$sig.out" 2>"$work/$sig.err" &
    pid=$!
    pids+=("$pid")
    for i in $(seq 100); do
        grep -q 'listening on' "$work/$sig.err" && break
        sleep 0.1
    done
    sleep 1 # well into the read
    if ! kill -0 "$pid" 2>/dev/null; then
        bad "$sig: sipscope ended before the signal; stderr:"
        cat "$work/$sig.err"
        return
    fi
    kill "-$sig" "$pid"
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        bad "$sig: still reading 5 s after the signal"
        return
    fi
    wait "$pid"
    status=$?
    [ "$status" = 0 ] && passed=$((passed + 1)) || bad "$sig: exit status $status, want 0"
    if grep -q "main: SIG$sig while reading $fifo: stopped; nothing printed or served" \
        "$work/$sig.err"; then
        passed=$((passed + 1))
    else
        bad "$sig: no line naming the signal; stderr:"
        cat "$work/$sig.err"
    fi
    [ ! -s "$work/$sig.out" ] && passed=$((passed + 1)) || bad "$sig: metrics were printed"
    # The feeder ends on the broken pipe once sipscope is gone.
    for i in $(seq 50); do
        kill -0 "$feeder" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$feeder" 2>/dev/null && bad "$sig: the feeder did not end"
}

stop_during_read TERM
stop_during_read INT

echo "$passed passed, $failed failed, 0 skipped"
[ "$failed" = 0 ]
