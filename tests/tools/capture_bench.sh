#!/usr/bin/env bash
# capture_bench: how many packets per second the live capture takes with no ring buffer drop, and
# what the consumer costs. udp_blaster sends 600-byte UDP payloads to 127.0.0.1:5060 on one core;
# capture_dump consumes on the other. Each run gets a private network namespace (unshare -n),
# which disappears with its processes: nothing to clean up. Needs root. Informational, not a test.
#
#   tests/tools/capture_bench.sh BUILD_DIR [RUNS] [SECONDS]
set -euo pipefail

build=${1:?usage: capture_bench.sh BUILD_DIR [RUNS] [SECONDS]}
runs=${2:-5}
secs=${3:-5}
dump="$build/tests/capture_dump"
blast="$build/tests/udp_blaster"
ncpu=$(nproc)
send_cpu=0
cons_cpu=$((ncpu > 1 ? 1 : 0))

# One run: prints "sent_rate missing drops consumer_cpu_seconds" (missing: sent but not captured).
run_one() {
    local ports=$1 backlog=$2 capture=$3
    # shellcheck disable=SC2016 # the inner script expands its own positional parameters
    unshare -n bash -c '
        set -e
        ip link set lo up
        if [ "$6" = 1 ]; then
            out=$(mktemp)
            taskset -c "$7" "$1" -i lo -q -p "$3" -w "$4" -t "$(( $5 + 1 ))" >"$out" 2>/dev/null &
            cpid=$!
            sleep 0.5
        fi
        sent_line=$(taskset -c "$8" "$2" -t "$5" -s 600 -k)
        rate=$(echo "$sent_line" | sed -n "s/.*rate=\([0-9]*\).*/\1/p")
        sent=$(echo "$sent_line" | sed -n "s/^sent=\([0-9]*\).*/\1/p")
        if [ "$6" = 1 ]; then
            wait "$cpid"
            frames=$(sed -n "s/^frames=\([0-9]*\).*/\1/p" "$out")
            drops=$(sed -n "s/.*ringbuf_full=\([0-9]*\).*/\1/p" "$out")
            cpu=$(sed -n "s/.*cpu=\([0-9.]*\)s.*/\1/p" "$out")
            rm -f "$out"
            echo "$rate $((sent - frames)) $drops $cpu"
        else
            echo "$rate - - -"
        fi
    ' bench "$dump" "$blast" "$ports" "$backlog" "$secs" "$capture" "$cons_cpu" "$send_cpu"
}

median() {
    sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}

scenario() {
    local name=$1 ports=$2 backlog=$3 capture=$4 rates=() cpus=() line
    printf '%-36s' "$name"
    for _ in $(seq "$runs"); do
        line=$(run_one "$ports" "$backlog" "$capture")
        read -r rate missing drops cpu <<<"$line"
        rates+=("$rate")
        [ "$cpu" != "-" ] && cpus+=("$cpu")
        if [ "$cpu" = "-" ]; then
            printf ' %s/s' "$rate"
        else
            printf ' %s/s(missing=%s,drops=%s)' "$rate" "$missing" "$drops"
        fi
    done
    printf '\n%-36s median %s/s' "" "$(printf '%s\n' "${rates[@]}" | median)"
    if [ "${#cpus[@]}" -gt 0 ]; then
        printf ', consumer CPU median %ss over %ss' "$(printf '%s\n' "${cpus[@]}" | median)" "$secs"
    fi
    printf '\n'
}

echo "sender on CPU $send_cpu, consumer on CPU $cons_cpu, $runs runs of ${secs}s"
scenario "no capture" 5060 262144 0
scenario "capture, no port matches" 5999 262144 1
scenario "capture all, wakeup past 256 KiB" 5060 262144 1
scenario "capture all, wakeup per record" 5060 1 1
