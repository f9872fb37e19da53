#!/usr/bin/env bash
# Makes the pcap fixtures: records each SIPp scenario pair of tests/fixtures/sipp on loopback over
# UDP/IPv4 and UDP/IPv6 (tcpdump), records a mix of all of them at once, turns the hand-written
# flows of tests/fixtures/flows into pcaps (scripts/sip2pcap), and checks every capture against its
# hand-written manifest (*.expect) with tshark. Any difference fails the run.
# Recording needs root (tcpdump on lo); --verify-only does not. See tests/fixtures/pcap/MANIFEST.md.
set -euo pipefail
export LC_ALL=C # byte semantics for sort, awk and ${#var}

usage() {
    cat <<'EOF'
usage: scripts/record-fixtures.sh [--port N] [--only NAME]... [--verify-only] [--keep] [OUTDIR]

  OUTDIR         where the pcaps go (default tests/fixtures/pcap); the *.expect manifests are
                 always read from tests/fixtures/pcap and tests/fixtures/flows
  --port N       first SIP port (default $SIPSCOPE_FIXTURE_PORT or 5060); the run uses N..N+19 for
                 SIP and N+100..N+219 for SIPp's media and control sockets, so two runs with ports
                 220 apart do not collide
  --only NAME    record or check only this fixture (a scenario name, "mix" or "flows"); repeatable
  --verify-only  record nothing; check the pcaps already in OUTDIR
  --keep         on failure, keep the work directory (SIPp logs, the capture that failed)
EOF
}

top=$(cd "$(dirname "$0")/.." && pwd)
sippdir="$top/tests/fixtures/sipp"
flowdir="$top/tests/fixtures/flows"
expdir="$top/tests/fixtures/pcap"

# Scenario order is also the slot order in the mix (slot k uses ports base+2k and base+2k+1).
scenarios=(answered busy rejected-503 redirected-302 cancelled invite-auth register-auth
    deregister options reinvite)

base_port=${SIPSCOPE_FIXTURE_PORT:-5060}
outdir=""
verify_only=0
keep=0
only=()
while [ $# -gt 0 ]; do
    case "$1" in
    --port) base_port=$2; shift 2 ;;
    --port=*) base_port=${1#--port=}; shift ;;
    --only) only+=("$2"); shift 2 ;;
    --only=*) only+=("${1#--only=}"); shift ;;
    --verify-only) verify_only=1; shift ;;
    --keep) keep=1; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "record-fixtures: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) [ -z "$outdir" ] || { usage >&2; exit 2; }; outdir=$1; shift ;;
    esac
done
outdir=${outdir:-$expdir}
case "$base_port" in '' | *[!0-9]*) echo "record-fixtures: bad port $base_port" >&2; exit 2 ;; esac
if [ "$base_port" -lt 1024 ] || [ "$base_port" -gt $((65535 - 220)) ]; then
    echo "record-fixtures: port must be in 1024..$((65535 - 220))" >&2
    exit 2
fi
for o in "${only[@]}"; do
    case " ${scenarios[*]} mix flows " in
    *" $o "*) ;;
    *) echo "record-fixtures: --only $o: not a scenario, mix or flows" >&2; exit 2 ;;
    esac
done
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)

wanted() {
    [ ${#only[@]} -eq 0 ] && return 0
    local o
    for o in "${only[@]}"; do [ "$o" = "$1" ] && return 0; done
    return 1
}

need() {
    command -v "$1" >/dev/null || { echo "record-fixtures: $1 not found ($2)" >&2; exit 1; }
}
need tshark "apt-get install tshark"
if [ "$verify_only" = 0 ]; then
    need sipp "apt-get install sip-tester"
    need tcpdump "apt-get install tcpdump"
    need ss "apt-get install iproute2"
    [ "$(id -u)" = 0 ] || { echo "record-fixtures: recording needs root (tcpdump on lo)" >&2; exit 1; }
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/record-fixtures.XXXXXX")
# Processes this script started, by PID; only these are ever signalled.
pids=()
tcpdump_pid=""

cleanup() {
    local rc=$? pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    if [ -n "$tcpdump_pid" ]; then
        kill -INT "$tcpdump_pid" 2>/dev/null || true
    fi
    wait 2>/dev/null || true
    if [ "$rc" != 0 ] && [ "$keep" = 1 ]; then
        echo "record-fixtures: work directory kept: $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
    echo "record-fixtures: FAILED: $*" >&2
    exit 1
}

# tshark warns on stderr when run as root; keep its stderr only when it fails.
tsh() {
    local err="$work/tshark.err" rc=0
    tshark "$@" 2>"$err" || rc=$?
    if [ "$rc" != 0 ]; then
        cat "$err" >&2
        die "tshark $* exited $rc"
    fi
}

# The manifest lines that are checked against the capture: comments, blank lines and the
# recording parameters (scenario lines of the mix) removed, spaces squeezed, sorted.
expected_lines() {
    sed -e 's/#.*//' -e 's/[[:space:]]\+/ /g' -e 's/^ //' -e 's/ $//' "$1" |
        grep -v -e '^$' -e '^scenario ' | LC_ALL=C sort
}

# One tshark pass per capture, one line per frame, tab-separated (a Call-ID holds no tab):
#  1 frame.protocols  2 frame.time_epoch  3 ip.src  4 ipv6.src  5 udp.srcport  6 ip.dst
#  7 ipv6.dst  8 udp.dstport  9 sip.Method  10 sip.Status-Code  11 sip.CSeq.method
#  12 sip.Call-ID  13 udp.payload
# A frame is SIP when "sip" is among its protocols: the frames `tshark -Y sip` would keep.
# (tshark starts in about 0.25 s, so one pass instead of one per question halves the run.)
# Heuristics first: with the default ports the mix uses UDP 5072, which tshark otherwise hands to
# its AYIYA dissector by port number.
dissect() { # PCAP -> $work/fields
    tsh -r "$1" -o udp.try_heuristic_first:TRUE -T fields -E separator=/t -E occurrence=f -e frame.protocols -e frame.time_epoch \
        -e ip.src -e ipv6.src -e udp.srcport -e ip.dst -e ipv6.dst -e udp.dstport \
        -e sip.Method -e sip.Status-Code -e sip.CSeq.method -e sip.Call-ID -e udp.payload \
        >"$work/fields"
}

# Summarises $work/fields in the manifest's terms (see MANIFEST.md): frames, distinct Call-IDs,
# requests by method, responses by CSeq method and code, and the flow (message sequence) of
# every Call-ID, counted by distinct flow. A request token is its method, a response token is
# CODE/CSEQ-METHOD.
actual_lines() {
    awk -F'\t' '
        { frames++ }
        $1 !~ /(^|:)sip(:|$)/ { next }
        {
            if ($9 != "") { tok = $9; key = "request " $9 }
            else { tok = $10 "/" $11; key = "response " $11 " " $10 }
            count[key]++
            if (!($12 in flow)) { order[++ncalls] = $12; flow[$12] = tok }
            else flow[$12] = flow[$12] " " tok
        }
        END {
            printf "frames %d\n", frames
            printf "call-ids %d\n", ncalls
            for (k in count) printf "%s %d\n", k, count[k]
            for (i = 1; i <= ncalls; i++) flows[flow[order[i]]]++
            for (f in flows) printf "flow %d %s\n", flows[f], f
        }' "$work/fields"
}

# check PCAP EXPECT [4|6]: the capture must match the manifest line for line and, when a family
# is given, every frame must be UDP over that IP version. Leaves the capture in $work/fields.
check() {
    local pcap=$1 expect=$2 family=${3:-} name other
    name=$(basename "$pcap")
    [ -s "$pcap" ] || die "$name: missing or empty"
    dissect "$pcap"
    expected_lines "$expect" >"$work/expected"
    actual_lines | LC_ALL=C sort >"$work/actual"
    if ! diff -u "$work/expected" "$work/actual" >"$work/diff"; then
        echo "--- $expect (expected)  +++ $name (captured)" >&2
        tail -n +3 "$work/diff" >&2
        die "$name does not match $(basename "$expect")"
    fi
    if [ -n "$family" ]; then
        other=$(awk -F'\t' -v fam="$family" '
            !((fam == 4 ? $3 : $4) != "" && $5 != "") { n++ } END { print n + 0 }' "$work/fields")
        [ "$other" = 0 ] || die "$name: $other frames are not UDP over IPv$family"
    fi
    printf '  %-36s ok  %s\n' "$name" "$(grep '^frames' "$work/actual")"
}

# ---------------------------------------------------------------------------------------------
# Recording

start_tcpdump() { # PCAP FILTER
    local err="$work/tcpdump.err" i
    rm -f "$1"
    # -U with --immediate-mode: every packet reaches the file as it arrives, so nothing waits in a
    # half-filled ring block when the capture is stopped. -Z root: Debian's tcpdump would
    # otherwise drop to its own user before creating the file.
    tcpdump -i lo -n -s 0 -U --immediate-mode -Z root -w "$1" "$2" 2>"$err" &
    tcpdump_pid=$!
    for i in $(seq 1 250); do
        grep -q 'listening on' "$err" && return 0
        kill -0 "$tcpdump_pid" 2>/dev/null || break
        sleep 0.02
    done
    cat "$err" >&2
    die "tcpdump did not start"
}

stop_tcpdump() { # PCAP
    local size=-1 now i
    # Let the last datagrams reach the file: wait until it stops growing (20 ms steady).
    for i in $(seq 1 100); do
        now=$(stat -c %s "$1")
        [ "$now" = "$size" ] && break
        size=$now
        sleep 0.02
    done
    kill -INT "$tcpdump_pid"
    wait "$tcpdump_pid" || die "tcpdump exited with an error: $(cat "$work/tcpdump.err")"
    tcpdump_pid=""
}

wait_bound() { # PORT
    local i
    for i in $(seq 1 250); do
        [ -n "$(ss -Hlun "sport = :$1")" ] && return 0
        sleep 0.02
    done
    die "nothing listens on UDP port $1"
}

# sipp_pair SCENARIO SLOT FAMILY CALLS: starts the UAS of SCENARIO in the background and the UAC
# after it, with the ports of SLOT; appends both wrapper PIDs to pair_pids.
sipp_pair() {
    local scen=$1 slot=$2 fam=$3 calls=$4 ip remote
    local uas_port=$((base_port + 2 * slot)) uac_port=$((base_port + 2 * slot + 1))
    local media=$((base_port + 100 + 8 * slot)) control=$((base_port + 200 + 2 * slot))
    if [ "$fam" = 4 ]; then ip=127.0.0.1; remote="127.0.0.1:$uas_port"; else ip=::1; remote="[::1]:$uas_port"; fi
    # -nr: no SIPp retransmissions at all (loopback loses nothing; a lost datagram times the run
    # out rather than adding a copy). -m CALLS: both sides stop after exactly CALLS calls.
    # -r 10: a call every 100 ms, so the calls of one scenario overlap only a little.
    local common=(-i "$ip" -m "$calls" -nr -nostdin -timeout 20s -timeout_error)
    (cd "$work" && exec timeout 30 sipp -sf "$sippdir/$scen-uas.xml" -p "$uas_port" \
        -mp "$media" -cp "$control" "${common[@]}" \
        -trace_err -error_file "$work/$scen-$fam-uas.err" >"$work/$scen-$fam-uas.log" 2>&1) &
    pids+=($!)
    pair_pids+=($!)
    wait_bound "$uas_port"
    # SIPSCOPE_SIPP_STATS=DIR keeps each client's own statistics (its final successful and
    # failed call counts), for tests that compare them with sipscope's.
    local stats=()
    [ -z "${SIPSCOPE_SIPP_STATS:-}" ] ||
        stats=(-trace_stat -stf "$SIPSCOPE_SIPP_STATS/$scen-udp$fam-uac.csv" -fd 60)
    (cd "$work" && exec timeout 30 sipp -sf "$sippdir/$scen-uac.xml" -p "$uac_port" \
        -mp "$((media + 4))" -cp "$((control + 1))" -r 10 -rp 1000 "${common[@]}" "${stats[@]}" \
        -trace_err -error_file "$work/$scen-$fam-uac.err" "$remote" \
        >"$work/$scen-$fam-uac.log" 2>&1) &
    pids+=($!)
    pair_pids+=($!)
}

# Waits for every SIPp started since pair_pids was reset; fails with their logs if one failed.
wait_pairs() {
    local pid rc bad=0
    for pid in "${pair_pids[@]}"; do
        rc=0
        wait "$pid" || rc=$?
        [ "$rc" = 0 ] || bad=1
    done
    pids=()
    if [ "$bad" = 1 ]; then
        for f in "$work"/*.err "$work"/*.log; do
            [ -s "$f" ] || continue
            echo "== $f" >&2
            tail -n 30 "$f" >&2
        done
        die "a SIPp process failed (exit status 1: a call failed; 124: killed by timeout)"
    fi
}

calls_of() { # EXPECT
    awk '$1 == "call-ids" { print $2 }' "$1"
}

record_scenario() { # NAME FAMILY PCAP
    local scen=$1 fam=$2 pcap=$3 calls
    calls=$(calls_of "$expdir/$scen.expect")
    [ -n "$calls" ] || die "$expdir/$scen.expect has no call-ids line"
    start_tcpdump "$pcap" "udp and (port $base_port or port $((base_port + 1)))"
    pair_pids=()
    sipp_pair "$scen" 0 "$fam" "$calls"
    wait_pairs
    stop_tcpdump "$pcap"
}

record_mix() { # FAMILY PCAP
    local fam=$1 pcap=$2 slot=0 scen n
    start_tcpdump "$pcap" "udp and portrange $base_port-$((base_port + 2 * ${#scenarios[@]} - 1))"
    pair_pids=()
    for scen in "${scenarios[@]}"; do
        n=$(awk -v s="$scen" '$1 == "scenario" && $2 == s { print $3 }' "$expdir/mix.expect")
        [ -n "$n" ] || die "mix.expect has no 'scenario $scen N' line"
        sipp_pair "$scen" "$slot" "$fam" "$n"
        slot=$((slot + 1))
    done
    wait_pairs
    stop_tcpdump "$pcap"
}

# ---------------------------------------------------------------------------------------------
# Hand-written flows

# Checks that PCAP holds the messages of the flow file SIP exactly: for each marker, the frame
# time (base epoch + TIME), endpoints and UDP payload bytes. This checks sip2pcap with an
# independent decoder; IPv6 addresses in markers must be written in canonical (compressed) form.
check_flow_bytes() { # SIP PCAP
    local sip=$1 pcap=$2 name size i=0 n marker
    local t src dst flags start end want got sec frac
    local ft s4 s6 sp d4 d6 dp payload
    local -a offsets frames
    name=$(basename "$pcap")
    size=$(stat -c %s "$sip")
    # OFFSET:MARKER for every marker line (grep -b counts bytes).
    grep -a -b '^--- [0-9]' "$sip" >"$work/markers"
    # '|' rather than tab: read would merge the empty fields of the absent address family.
    cut -f2-8,13 "$work/fields" | tr '\t' '|' >"$work/frames"
    n=$(wc -l <"$work/markers")
    [ "$n" = "$(wc -l <"$work/frames")" ] || die "$name: $n markers but $(wc -l <"$work/frames") frames"
    mapfile -t offsets < <(cut -d: -f1 "$work/markers")
    offsets+=("$size")
    mapfile -t frames <"$work/frames"
    while IFS= read -r marker; do
        marker=${marker#*:}
        # The message starts after the marker line and its LF (LC_ALL=C: ${#} counts bytes).
        start=$((offsets[i] + ${#marker} + 1))
        end=${offsets[$((i + 1))]}
        read -r _ t src _ dst _ flags <<<"${marker%$'\r'}"
        want=$(dd if="$sip" iflag=skip_bytes,count_bytes skip="$start" count=$((end - start)) \
            bs=65536 status=none | od -An -v -tx1 | tr -d ' \n')
        case " $flags " in
        *" noeol "*) want=${want%0a}; want=${want%0d} ;;
        esac
        sec=${t%%.*}
        frac=${t#"$sec"}
        frac=$(printf '%-9s' "${frac#.}" | tr ' ' 0)
        want="$((1704067200 + 10#$sec)).$frac $src $dst $want"
        IFS='|' read -r ft s4 s6 sp d4 d6 dp payload <<<"${frames[$i]}"
        if [ -n "$s4" ]; then got="$ft $s4:$sp $d4:$dp $payload"; else got="$ft [$s6]:$sp [$d6]:$dp $payload"; fi
        if [ "$got" != "$want" ]; then
            echo "expected: ${want:0:160}" >&2
            echo "captured: ${got:0:160}" >&2
            die "$name: packet $((i + 1)) differs from its marker in $(basename "$sip")"
        fi
        i=$((i + 1))
    done <"$work/markers"
}

# ---------------------------------------------------------------------------------------------

# produce NAME EXPECT FAMILY COMMAND...: runs COMMAND with the capture path appended (unless
# --verify-only), checks the capture, and only then puts it into OUTDIR, so that a failed run
# never leaves a bad fixture behind.
produce() {
    local name=$1 expect=$2 family=$3
    shift 3
    if [ "$verify_only" = 1 ]; then
        check "$outdir/$name" "$expect" "$family"
        return
    fi
    "$@" "$work/$name"
    check "$work/$name" "$expect" "$family"
    mv -f "$work/$name" "$outdir/$name"
}

start=$(date +%s.%N)
echo "record-fixtures: output $outdir, SIP ports $base_port..$((base_port + 19))"

for scen in "${scenarios[@]}"; do
    wanted "$scen" || continue
    for fam in 4 6; do
        produce "$scen-udp$fam.pcap" "$expdir/$scen.expect" "$fam" record_scenario "$scen" "$fam"
    done
done

if wanted mix; then
    for fam in 4 6; do
        produce "mix-udp$fam.pcap" "$expdir/mix.expect" "$fam" record_mix "$fam"
    done
fi

if wanted flows; then
    for sip in "$flowdir"/*.sip; do
        flow=$(basename "$sip" .sip)
        produce "flow-$flow.pcap" "$flowdir/$flow.expect" "" "$top/scripts/sip2pcap" "$sip"
        # check left this capture's dissection in $work/fields
        check_flow_bytes "$sip" "$outdir/flow-$flow.pcap"
    done
fi

awk -v a="$start" -v b="$(date +%s.%N)" \
    'BEGIN { printf "record-fixtures: all captures match their manifests (%.1f s)\n", b - a }'
