#!/usr/bin/env bash
# Captures from a named pipe (mkfifo), as a capture tool or a remote copy would feed one:
# - a pipe fed the capture once gives the --print output of the file itself, byte for byte,
#   with the reader started first (it waits in its open for the writer, and must not lose it);
# - with --web.listen-address, SIGTERM or SIGINT during the read ends the job there: the process
#   exits within 5 s with the status of a process the signal ended (143, 130), says which
#   signal stopped it, and prints nothing (the metrics would be of part of the file). Whatever
#   the writer does: feed records for ever, feed 50 a second, send ten and then hold the pipe
#   open in silence, or never come (the reader waits in its open);
# - while a read that serves waits on the pipe, /metrics answers 503 as /-/ready does, and both
#   answer 200 once the writer closes it;
# - with --events, SIGTERM during the read closes the events file with the lines read so far
#   whole, also when its reader has stopped reading (the lines it cannot take are lost).
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
passed=0 failed=0 skipped=0
bad() {
    failed=$((failed + 1))
    echo "FAIL: $*"
}

"$gen" "$work/mix.pcap" 20000 3 >/dev/null || {
    echo "FAIL: gen_traffic"
    exit 1
}

# Writes CAPTURE into the pipe FIFO in the background, as MODE says: once (the whole capture),
# forever (its records again and again), slow (50 records a second), hold (ten records, then
# the pipe stays open with nothing more). Sets feeder to its PID.
feed() { # CAPTURE FIFO MODE
    python3 - "$@" <<'EOF' &
import struct, sys, time
data = open(sys.argv[1], "rb").read()
header, body, mode = data[:24], data[24:], sys.argv[3]
records, off = [], 0
while off < len(body):  # little-endian pcap records: 16-byte header, then incl_len bytes
    n = 16 + struct.unpack("<I", body[off + 8:off + 12])[0]
    records.append(body[off:off + n])
    off += n
try:
    with open(sys.argv[2], "wb", buffering=0) as out:
        out.write(header)
        if mode == "once":
            out.write(body)
        elif mode == "forever":
            while True:
                out.write(body)
        elif mode == "slow":
            for r in records * 100:
                out.write(r)
                time.sleep(0.02)
        elif mode == "hold":
            out.write(b"".join(records[:10]))
            time.sleep(60)
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
feed "$work/mix.pcap" "$work/once.fifo" once
wait "$reader"
status=$?
if [ "$status" = 0 ] && cmp -s "$work/file.prom" "$work/once.prom"; then
    passed=$((passed + 1))
else
    bad "a pipe fed the capture once: status $status (want 0), or its output is not the file's"
    cat "$work/once.err"
fi

# SIGNAL during a read that serves, the pipe fed as MODE says (none: no writer at all).
stop_during_read() { # SIGNAL MODE WANT_STATUS
    local sig=$1 mode=$2 want=$3 fifo=$work/$1-$2.fifo out=$work/$1-$2 pid status i
    feeder=
    mkfifo "$fifo"
    [ "$mode" != none ] && feed "$work/mix.pcap" "$fifo" "$mode"
    "$sipscope" --read "$fifo" --web.listen-address 127.0.0.1:0 --print >"$out.out" 2>"$out.err" &
    pid=$!
    pids+=("$pid")
    for i in $(seq 100); do
        grep -q 'listening on' "$out.err" && break
        sleep 0.1
    done
    sleep 1 # well into the read (or the wait)
    if ! kill -0 "$pid" 2>/dev/null; then
        bad "$sig $mode: sipscope ended before the signal; stderr:"
        cat "$out.err"
        return
    fi
    kill "-$sig" "$pid"
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        bad "$sig $mode: still running 5 s after the signal"
        return
    fi
    wait "$pid"
    status=$?
    [ "$status" = "$want" ] && passed=$((passed + 1)) ||
        bad "$sig $mode: exit status $status, want $want"
    if grep -q "main: SIG$sig while reading $fifo: stopped; nothing printed or served" \
        "$out.err"; then
        passed=$((passed + 1))
    else
        bad "$sig $mode: no line naming the signal; stderr:"
        cat "$out.err"
    fi
    [ ! -s "$out.out" ] && passed=$((passed + 1)) || bad "$sig $mode: metrics were printed"
    # A feeder ends on the broken pipe once sipscope is gone (hold: once it writes no more).
    if [ -n "$feeder" ] && [ "$mode" != hold ]; then
        for i in $(seq 50); do
            kill -0 "$feeder" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$feeder" 2>/dev/null && bad "$sig $mode: the feeder did not end"
    fi
}

# A SIGTERM that comes before the read could look for it (gdb holds sipscope where the handler
# is about to be installed; the signal waits, blocked, and is taken as the read starts), and
# then the read blocks: the open of a pipe that no writer ever opens. The flag alone was read
# only once that open returned, which it never did.
if command -v gdb >/dev/null; then
    mkfifo "$work/early.fifo"
    cat >"$work/early.gdb" <<'EOF'
set pagination off
handle SIGTERM nostop noprint pass
handle SIGALRM nostop noprint pass
break service_interruptible
run
python import os; os.kill(gdb.selected_inferior().pid, 15)
delete
continue
EOF
    timeout 20 gdb -q -batch -x "$work/early.gdb" --args "$sipscope" --read "$work/early.fifo" \
        --web.listen-address 127.0.0.1:0 --print >"$work/early.out" 2>&1
    if grep -q "Program terminated with signal SIGTERM" "$work/early.out" &&
        grep -q "main: SIGTERM while reading $work/early.fifo: stopped" "$work/early.out"; then
        passed=$((passed + 1))
    else
        bad "a SIGTERM before the read, then a blocking open: not stopped; gdb says:"
        tail -5 "$work/early.out"
    fi
else
    echo "skipped: the early-signal case needs gdb"
    skipped=1
fi

# While the read is held open (the writer sends ten records, then nothing), /metrics answers
# 503 as /-/ready does: the metrics would be of part of the file, and a scrape would store
# them. Once the writer closes the pipe, both answer 200 with the file's metrics.
served_only_when_read() {
    local fifo=$work/served.fifo out=$work/served pid port= code body i
    mkfifo "$fifo"
    "$sipscope" --read "$fifo" --web.listen-address 127.0.0.1:0 >"$out.out" 2>"$out.err" &
    pid=$!
    pids+=("$pid")
    exec {holder}>"$fifo" # the writer: held open by this shell until it closes it
    python3 - "$work/mix.pcap" <<'EOF2' >&"$holder"
import struct, sys
data = open(sys.argv[1], "rb").read()
off, n = 24, 0
while n < 10:
    off += 16 + struct.unpack("<I", data[off + 8:off + 12])[0]
    n += 1
sys.stdout.buffer.write(data[:off])
EOF2
    for i in $(seq 100); do
        port=$(sed -n 's/.*http: listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$out.err")
        [ -n "$port" ] && break
        sleep 0.1
    done
    if [ -z "$port" ]; then
        bad "served during a read: no port; stderr:"
        cat "$out.err"
        exec {holder}>&-
        return
    fi
    sleep 0.5 # the ten records are read; the read waits for more
    code=$(curl -s -o "$out.body" -w '%{http_code}' "http://127.0.0.1:$port/metrics")
    [ "$code" = 503 ] && passed=$((passed + 1)) ||
        bad "served during a read: /metrics answered $code, want 503"
    body=$(cat "$out.body")
    [ "$body" = "sipscope is not ready: the metrics are not final yet." ] &&
        passed=$((passed + 1)) || bad "served during a read: /metrics said \"$body\""
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/-/ready")
    [ "$code" = 503 ] && passed=$((passed + 1)) ||
        bad "served during a read: /-/ready answered $code, want 503"
    exec {holder}>&- # the end of the file
    for i in $(seq 50); do
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/-/ready")
        [ "$code" = 200 ] && break
        sleep 0.1
    done
    code=$(curl -s -o "$out.body" -w '%{http_code}' "http://127.0.0.1:$port/metrics")
    if [ "$code" = 200 ] && grep -qx 'sipscope_packets_total{iface="file",result="seen"} 10' \
        "$out.body"; then
        passed=$((passed + 1))
    else
        bad "served after the read: /metrics answered $code, or not the ten records' metrics"
    fi
    kill -TERM "$pid"
    wait "$pid"
    code=$?
    [ "$code" = 0 ] && passed=$((passed + 1)) || bad "served after the read: status $code at SIGTERM"
}
if command -v curl >/dev/null; then
    served_only_when_read
else
    echo "skipped: /metrics during a read needs curl"
    skipped=1
fi

# A read that does not serve, with --events: SIGTERM while the pipe is held open in silence
# after three calls (INVITE, 486, ACK) ends the read there and closes the events file, which
# then holds the three calls' lines, whole, before the process ends by the signal (143). It
# used to die at once with the lines still in memory: an empty file.
events_at_stop() {
    local fifo=$work/events.fifo out=$work/events pid status i holder
    mkfifo "$fifo"
    "$sipscope" --read "$fifo" --events "$out.json" 2>"$out.err" &
    pid=$!
    pids+=("$pid")
    python3 - "$(dirname "$0")/../tools" "$out.pcap" <<'EOF2'
import sys
sys.path.insert(0, sys.argv[1])
import gen_pcaps as g
p = g.Pcap(sys.argv[2])
a, b = ("192.0.2.10", 5062), ("198.51.100.20", 5060)
def send(ts, src, dst, first, cid, to_tag):
    msg = (first + "\r\nVia: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK" + cid +
           "\r\nFrom: <sip:a@x>;tag=f\r\nTo: <sip:b@y>" + to_tag + "\r\nCall-ID: " + cid +
           "\r\nCSeq: 1 " + ("ACK" if first.startswith("ACK") else "INVITE") +
           "\r\nContent-Length: 0\r\n\r\n").encode()
    p.add(ts, g.eth(g.ipv4(src[0], dst[0], 17, g.udp(src[1], dst[1], msg)), 0x0800))
for i in range(3):
    cid = "stop-%d" % i
    send(1700000000 + i, a, b, "INVITE sip:b@y SIP/2.0", cid, "")
    send(1700000000.1 + i, b, a, "SIP/2.0 486 Busy Here", cid, ";tag=t")
    send(1700000000.2 + i, a, b, "ACK sip:b@y SIP/2.0", cid, ";tag=t")
p.close()
EOF2
    exec {holder}>"$fifo"
    cat "$out.pcap" >&"$holder"
    sleep 1 # read, and waiting for more
    kill -TERM "$pid"
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    exec {holder}>&-
    wait "$pid"
    status=$?
    [ "$status" = 143 ] && passed=$((passed + 1)) ||
        bad "--events, SIGTERM during a read that does not serve: status $status, want 143"
    if python3 - "$out.json" <<'EOF2'; then
import json, sys
lines = open(sys.argv[1], "rb").read().split(b"\n")
assert lines[-1] == b"", "the file ends inside a line"
calls = [json.loads(line) for line in lines[:-1]]
assert [(c["call_id"], c["outcome"]) for c in calls] == \
    [("stop-0", 486), ("stop-1", 486), ("stop-2", 486)], calls
EOF2
        passed=$((passed + 1))
    else
        bad "--events, SIGTERM during a read that does not serve: not the three calls' lines"
        cat "$out.err"
    fi
}
events_at_stop

# The same stop while the events file's reader has stopped reading (a pipe held open, never
# read): the read is blocked in a write once the pipe is full, and SIGTERM must still end it
# within 5 s, the lines not written counted as lost. It used to wait in that write for good,
# each interruption resumed.
events_reader_stalled() {
    local fifo=$work/stalled.fifo out=$work/stalled pid status i holder
    mkfifo "$fifo"
    exec {holder}<>"$fifo" # a reader that never reads (read-write: the open does not wait)
    "$sipscope" --read "$work/mix.pcap" --events "$fifo" 2>"$out.err" &
    pid=$!
    pids+=("$pid")
    sleep 1 # 20,000 messages: far more lines than a pipe holds
    kill -TERM "$pid"
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" # still waiting in its write: the failure, not a hung test
    fi
    exec {holder}>&-
    wait "$pid"
    status=$?
    [ "$status" = 143 ] && passed=$((passed + 1)) ||
        bad "--events to a stalled reader, SIGTERM during the read: status $status, want 143"
    if grep -Eq "main: SIGTERM while reading .*: stopped" "$out.err" &&
        grep -Eq "main: [0-9]+ lines of the events file were lost" "$out.err"; then
        passed=$((passed + 1))
    else
        bad "--events to a stalled reader: no stop and lost-lines lines; stderr:"
        cat "$out.err"
    fi
}
events_reader_stalled

stop_during_read TERM forever 143
stop_during_read INT forever 130
stop_during_read TERM slow 143
stop_during_read TERM hold 143
stop_during_read TERM none 143

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
