#!/usr/bin/env bash
# Makes the pcap fixtures: records each SIPp scenario pair of tests/fixtures/sipp on loopback over
# UDP (and, with --transport tcp, TCP) on IPv4 and IPv6 (tcpdump), records a mix of all of them at
# once, turns the hand-written flows of tests/fixtures/flows into pcaps (scripts/sip2pcap), and
# checks every capture against its hand-written manifest (*.expect) with tshark. Any difference
# fails the run, but for one: a TCP recording whose only difference is a TCP analysis flag (a
# segment the loopback's TCP sent on its own timing: a probe, a late segment of the connection
# before on the same ports) is recorded once more, and fails if it shows one again.
# Recording needs root (tcpdump on lo); --verify-only does not. See tests/fixtures/pcap/MANIFEST.md.
set -euo pipefail
export LC_ALL=C # byte semantics for sort, awk and ${#var}

usage() {
    cat <<'EOF'
usage: scripts/record-fixtures.sh [--port N] [--transport T]... [--only NAME]... [--verify-only]
                                  [--keep] [OUTDIR]

  OUTDIR         where the pcaps go (default tests/fixtures/pcap); the *.expect manifests are
                 always read from tests/fixtures/pcap and tests/fixtures/flows
  --port N       first SIP port (default $SIPSCOPE_FIXTURE_PORT or 5060); the run uses N..N+19 for
                 SIP (UDP and TCP alike) and N+100..N+219 for SIPp's media and control sockets, so
                 two runs with ports 220 apart do not collide
  --transport T  udp (the default), tcp, or both; repeatable (udp and tcp = both). Over TCP every
                 SIPp pair shares one connection (SIPp -t t1 on both sides): NAME-tcp4.pcap,
                 NAME-tcp6.pcap, mix-tcp4.pcap, mix-tcp6.pcap. A flow is over the transport
                 its markers name (TCP if any names tcp), whatever this says
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
transports=()
add_transport() {
    case "$1" in
    udp | tcp) case " ${transports[*]} " in *" $1 "*) ;; *) transports+=("$1") ;; esac ;;
    both) add_transport udp; add_transport tcp ;;
    *) echo "record-fixtures: --transport $1: not udp, tcp or both" >&2; exit 2 ;;
    esac
}
while [ $# -gt 0 ]; do
    case "$1" in
    --port) base_port=$2; shift 2 ;;
    --port=*) base_port=${1#--port=}; shift ;;
    --transport) add_transport "$2"; shift 2 ;;
    --transport=*) add_transport "${1#--transport=}"; shift ;;
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
[ ${#transports[@]} -gt 0 ] || transports=(udp)
# UDP first, whatever the order on the command line: the same run always records in one order.
case " ${transports[*]} " in *" udp "*" tcp "* | *" tcp "*" udp "*) transports=(udp tcp) ;; esac
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
# recording parameters (scenario lines of the mix) removed, spaces squeezed, sorted. Over TCP the
# `frames` line is left out (how many segments carry no payload is up to the kernel's ACK timing,
# see dissect_tcp) and the connection lines are added instead: CONNECTIONS handshakes, two FINs
# each, no reset, no byte outside a SIP message, and no TCP anomaly line at all. A TCP flow
# (CONNECTIONS 0) states its connection lines in its manifest, anomalies included: its segments
# are written by hand, and some of them on purpose left out of the capture.
expected_lines() { # EXPECT TRANSPORT CONNECTIONS
    {
        sed -e 's/#.*//' -e 's/[[:space:]]\+/ /g' -e 's/^ //' -e 's/ $//' "$1" |
            awk -v tr="$2" '$0 == "" || $1 == "scenario" || (tr == "tcp" && $1 == "frames") { next }
                            { print }'
        if [ "$2" = tcp ] && [ "$3" != 0 ]; then
            printf 'tcp syn %d\ntcp syn-ack %d\ntcp fin %d\n' "$3" "$3" $((2 * $3))
            printf 'tcp reset 0\ntcp bytes-outside-sip 0\n'
        fi
    } | LC_ALL=C sort
}

# One tshark pass per UDP capture, one line per frame, tab-separated (a Call-ID holds no tab):
#  1 frame.protocols  2 frame.time_epoch  3 ip.src  4 ipv6.src  5 udp.srcport  6 ip.dst
#  7 ipv6.dst  8 udp.dstport  9 sip.Method  10 sip.Status-Code  11 sip.CSeq.method
#  12 sip.Call-ID  13 udp.payload  14 sip.Via.transport
# A frame is SIP when "sip" is among its protocols: the frames `tshark -Y sip` would keep. A
# datagram holds one message, so $work/msgs (one line per SIP message: method, status code, CSeq
# method, Call-ID, top Via transport, tab-separated) takes fields 9-12 and 14 of the SIP frames.
# (tshark starts in about 0.25 s, so one pass instead of one per question halves the run.)
# Heuristics first: with the default ports the mix uses UDP 5072, which tshark otherwise hands to
# its AYIYA dissector by port number.
dissect_udp() { # PCAP -> $work/fields, $work/msgs
    tsh -r "$1" -o udp.try_heuristic_first:TRUE -T fields -E separator=/t -E occurrence=f -e frame.protocols -e frame.time_epoch \
        -e ip.src -e ipv6.src -e udp.srcport -e ip.dst -e ipv6.dst -e udp.dstport \
        -e sip.Method -e sip.Status-Code -e sip.CSeq.method -e sip.Call-ID -e udp.payload \
        -e sip.Via.transport >"$work/fields"
    awk -F'\t' -v OFS='\t' '$1 ~ /(^|:)sip(:|$)/ { print $9, $10, $11, $12, $14 }' \
        "$work/fields" >"$work/msgs"
}

# One tshark pass per TCP capture, as PDML, which keeps every SIP message of a frame apart, in
# order: a segment may end one message and hold the next two, and a message split over segments
# is dissected once, in the frame that completes it (TCP and SIP reassembly on; the SIP ports of
# the run are decoded as SIP, since 5061 is SIP over TLS and others belong to other protocols by
# default). Writes $work/msgs as dissect_udp does, and $work/tcp: `frames N`, `tcp4 N` and
# `tcp6 N` (frames that are TCP over that IP version and nothing else), `tcp syn N` (SYN
# without ACK), `tcp syn-ack N`, `tcp fin N`, `tcp reset N`, `data N` (segments with payload),
# `pure-ack N` (no payload, no SYN, FIN or RST), `tcp bytes-outside-sip N` (TCP payload bytes
# minus the sizes of the SIP messages tshark found in TCP: a CRLF keep-alive, stray bytes or a
# wrong Content-Length show here) and `tcp anomaly NAME N` for each TCP analysis flag that a clean
# loopback connection never raises (retransmission, out of order, lost segment, duplicate ACK,
# TCP keep-alive, zero window, reused ports ...; window updates are normal and not listed).
# How many pure ACKs there are is the kernel's choice (delayed ACKs, and ACKs that ride on the
# next message when it comes soon enough), so it differs from one recording to the next.
dissect_tcp() { # PCAP -> $work/msgs, $work/tcp
    tsh -r "$1" -T pdml -o tcp.desegment_tcp_streams:TRUE -o tcp.analyze_sequence_numbers:TRUE \
        -o sip.desegment_headers:TRUE -o sip.desegment_body:TRUE \
        -d "tcp.port==$base_port-$((base_port + 19)),sip" >"$work/pdml"
    local bad=" retransmission fast_retransmission spurious_retransmission out_of_order"
    bad+=" lost_segment ack_lost_segment duplicate_ack keep_alive keep_alive_ack zero_window"
    bad+=" zero_window_probe zero_window_probe_ack window_full reused_ports "
    awk -v msgs="$work/msgs" -v bad="$bad" -v OFS='\t' '
        function attr(a) {
            if (!match($0, " " a "=\"[^\"]*\"")) return ""
            return substr($0, RSTART + length(a) + 3, RLENGTH - length(a) - 4)
        }
        function unxml(s) {
            gsub(/&lt;/, "<", s); gsub(/&gt;/, ">", s); gsub(/&quot;/, "\"", s)
            gsub(/&apos;/, "\047", s); gsub(/&amp;/, "\\&", s)
            return s
        }
        function flush() {
            if (insip) print method, code, cseq, callid, via > msgs
            insip = 0
        }
        /^<packet>/ { frames++; ip4 = ip6 = tcp = udp = syn = ack = fin = rst = len = 0; next }
        /^<\/packet>/ {
            flush()
            if (tcp && !udp && ip4 != ip6) { if (ip4) tcp4++; else tcp6++ }
            if (syn) { if (ack) synack++; else synonly++ }
            fins += fin; rsts += rst
            if (len > 0) data++; else if (tcp && !syn && !fin && !rst) pureack++
            payload += len
            next
        }
        /<proto name="/ {
            p = attr("name")
            if (p == "sip") {
                flush(); insip = 1
                if (tcp) sipbytes += attr("size") # not SIP over UDP beside it (flows)
                method = code = cseq = callid = via = ""
            } else if (p == "tcp") tcp = 1
            else if (p == "udp") udp = 1
            next
        }
        /<field name="/ {
            f = attr("name")
            if (f == "ip.src") ip4 = 1
            else if (f == "ipv6.src") ip6 = 1
            else if (f == "tcp.len") len = attr("show") + 0
            else if (f == "tcp.flags.syn") syn = attr("show") == "1"
            else if (f == "tcp.flags.ack") ack = attr("show") == "1"
            else if (f == "tcp.flags.fin") fin = attr("show") == "1"
            else if (f == "tcp.flags.reset") rst = attr("show") == "1"
            else if (f ~ /^tcp\.analysis\./ && index(bad, " " substr(f, 14) " "))
                anomaly[substr(f, 14)]++
            else if (insip && f == "sip.Method" && method == "") method = unxml(attr("show"))
            else if (insip && f == "sip.Status-Code" && code == "") code = attr("show")
            else if (insip && f == "sip.CSeq.method" && cseq == "") cseq = unxml(attr("show"))
            else if (insip && f == "sip.Call-ID" && callid == "") callid = unxml(attr("show"))
            else if (insip && f == "sip.Via.transport" && via == "") via = attr("show")
        }
        END {
            printf "frames %d\ntcp4 %d\ntcp6 %d\n", frames, tcp4, tcp6
            printf "data %d\npure-ack %d\n", data, pureack
            printf "tcp syn %d\ntcp syn-ack %d\n", synonly, synack
            printf "tcp fin %d\ntcp reset %d\n", fins, rsts
            printf "tcp bytes-outside-sip %d\n", payload - sipbytes
            for (a in anomaly) printf "tcp anomaly %s %d\n", a, anomaly[a]
        }' "$work/pdml" >"$work/tcp"
    # A capture without any SIP message leaves no msgs file behind.
    touch "$work/msgs"
}

# Summarises $work/msgs in the manifest's terms (see MANIFEST.md): frames (UDP; over TCP the
# connection lines of $work/tcp instead), distinct Call-IDs, requests by method, responses by CSeq
# method and code, and the flow (message sequence) of every Call-ID, counted by distinct flow. A
# request token is its method, a response token is CODE/CSEQ-METHOD.
actual_lines() { # TRANSPORT
    if [ "$1" = tcp ]; then
        grep '^tcp ' "$work/tcp"
    else
        printf 'frames %d\n' "$(wc -l <"$work/fields")"
    fi
    awk -F'\t' '
        {
            if ($1 != "") { tok = $1; key = "request " $1 }
            else { tok = $2 "/" $3; key = "response " $3 " " $2 }
            count[key]++
            if (!($4 in flow)) { order[++ncalls] = $4; flow[$4] = tok }
            else flow[$4] = flow[$4] " " tok
        }
        END {
            printf "call-ids %d\n", ncalls
            for (k in count) printf "%s %d\n", k, count[k]
            for (i = 1; i <= ncalls; i++) flows[flow[order[i]]]++
            for (f in flows) printf "flow %d %s\n", flows[f], f
        }' "$work/msgs"
}

tcp_value() { # KEY: the number after KEY in $work/tcp
    awk -v k="$1" 'substr($0, 1, length(k) + 1) == k " " { print $NF }' "$work/tcp"
}

# check PCAP EXPECT TRANSPORT [FAMILY [CONNECTIONS]]: the capture must match the manifest line for
# line and, when a family is given (SIPp recordings), every frame must be TRANSPORT over that IP
# version and every message's top Via must name TRANSPORT (SIPp's [transport]). Over TCP,
# CONNECTIONS is the number of SIPp pairs (one connection each). Leaves the capture's dissection
# in $work (fields for UDP, used by check_flow_bytes).
check() {
    local pcap=$1 expect=$2 tr=$3 family=${4:-} conns=${5:-1} name other summary
    name=$(basename "$pcap")
    [ -s "$pcap" ] || die "$name: missing or empty"
    rm -f "$work/msgs"
    "dissect_$tr" "$pcap"
    expected_lines "$expect" "$tr" "$conns" >"$work/expected"
    actual_lines "$tr" | LC_ALL=C sort >"$work/actual"
    if ! diff -u "$work/expected" "$work/actual" >"$work/diff"; then
        if [ "${anomaly_retry:-0}" = 1 ] && [ "$tr" = tcp ] && tail -n +3 "$work/diff" |
            awk '/^[-+]/ && !/^\+tcp anomaly / { other = 1 } END { exit other }'; then
            echo "  $name: $(grep '^+tcp anomaly' "$work/diff" | cut -c2- | paste -sd, -):" \
                "recorded once more" >&2
            record_again=1
            return 0
        fi
        echo "--- $expect (expected)  +++ $name (captured)" >&2
        tail -n +3 "$work/diff" >&2
        die "$name does not match $(basename "$expect")"
    fi
    if [ "$tr" = tcp ]; then
        local frames
        frames=$(tcp_value frames)
        [ -z "$family" ] || [ "$(tcp_value "tcp$family")" = "$frames" ] ||
            die "$name: $((frames - $(tcp_value "tcp$family"))) frames are not TCP over IPv$family"
        summary="frames $frames ($(tcp_value 'tcp syn') SYN, $(tcp_value 'tcp syn-ack') SYN-ACK,"
        summary+=" $(tcp_value 'tcp fin') FIN, $(tcp_value data) with payload,"
        summary+=" $(tcp_value pure-ack) pure ACK), messages $(wc -l <"$work/msgs")"
    else
        if [ -n "$family" ]; then
            other=$(awk -F'\t' -v fam="$family" '
                !((fam == 4 ? $3 : $4) != "" && $5 != "") { n++ } END { print n + 0 }' "$work/fields")
            [ "$other" = 0 ] || die "$name: $other frames are not UDP over IPv$family"
        fi
        summary=$(grep '^frames' "$work/actual")
    fi
    if [ -n "$family" ]; then
        other=$(awk -F'\t' -v via="${tr^^}" '$5 != via { n++ } END { print n + 0 }' "$work/msgs")
        [ "$other" = 0 ] || die "$name: $other messages have a top Via other than SIP/2.0/${tr^^}"
    fi
    printf '  %-36s ok  %s\n' "$name" "$summary"
}

# ---------------------------------------------------------------------------------------------
# Recording

start_tcpdump() { # PCAP FILTER
    local err="$work/tcpdump.err" i
    rm -f "$1"
    # Empty the log here: the redirection below truncates it only once the child runs, and until
    # then the wait below would find the previous capture's "listening on" and start the traffic
    # before this capture is up. (Delaying the child by 150 ms makes every recording after the
    # first lose its first packets; a loaded machine once lost a TCP handshake this way.)
    : >"$err"
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
    local size=-1 now i steady=0
    # Let the last datagrams reach the file: wait until it stops growing for 100 ms. (20 ms
    # was not enough: a tcpdump descheduled that long lost the last ACK and FINs of a recording
    # now and then, when SIGINT found them still in its socket.)
    for i in $(seq 1 150); do
        now=$(stat -c %s "$1")
        if [ "$now" = "$size" ]; then
            steady=$((steady + 1))
            [ "$steady" -ge 5 ] && break
        else
            steady=0
        fi
        size=$now
        sleep 0.02
    done
    kill -INT "$tcpdump_pid"
    wait "$tcpdump_pid" || die "tcpdump exited with an error: $(cat "$work/tcpdump.err")"
    tcpdump_pid=""
}

wait_bound() { # TRANSPORT PORT
    local i
    for i in $(seq 1 250); do
        [ -n "$(ss -Hln "--${1}" "sport = :$2")" ] && return 0
        sleep 0.02
    done
    die "nothing listens on $1 port $2"
}

# sipp_pair SCENARIO SLOT TRANSPORT FAMILY CALLS: starts the UAS of SCENARIO in the background and
# the UAC after it, with the ports of SLOT; appends both wrapper PIDs to pair_pids.
sipp_pair() {
    local scen=$1 slot=$2 tr=$3 fam=$4 calls=$5 ip remote tag=$1-$3$4
    local uas_port=$((base_port + 2 * slot)) uac_port=$((base_port + 2 * slot + 1))
    local media=$((base_port + 100 + 8 * slot)) control=$((base_port + 200 + 2 * slot))
    if [ "$fam" = 4 ]; then ip=127.0.0.1; remote="127.0.0.1:$uas_port"; else ip=::1; remote="[::1]:$uas_port"; fi
    # -nr: no SIPp retransmissions at all (loopback loses nothing; a lost datagram times the run
    # out rather than adding a copy). -m CALLS: both sides stop after exactly CALLS calls.
    # -r 10: a call every 100 ms, so the calls of one scenario overlap only a little.
    local common=(-i "$ip" -m "$calls" -nr -nostdin -timeout 20s -timeout_error)
    # TCP: -t t1, one connection per SIPp instance, as between a phone or a proxy and its next
    # hop, and one handshake per capture rather than one per call (-t tn), so the capture holds
    # exactly one SYN and two FINs per pair. The UAC connects from its own port (-p), so a
    # connection of an earlier recording may still be in TIME_WAIT on the same four-tuple; Linux
    # lets a connect() from an explicitly bound port take it over when TCP timestamps are on
    # (tcp_twsk_unique), and a listener accepts a SYN with a newer timestamp on a TIME_WAIT
    # four-tuple, so recordings can follow each other at once (the checks below would see a
    # reset or a retransmitted SYN).
    [ "$tr" = udp ] || common+=(-t t1)
    (cd "$work" && exec timeout 30 sipp -sf "$sippdir/$scen-uas.xml" -p "$uas_port" \
        -mp "$media" -cp "$control" "${common[@]}" \
        -trace_err -error_file "$work/$tag-uas.err" >"$work/$tag-uas.log" 2>&1) &
    pids+=($!)
    pair_pids+=($!)
    wait_bound "$tr" "$uas_port"
    # SIPSCOPE_SIPP_STATS=DIR keeps each client's own statistics (its final successful and
    # failed call counts), for tests that compare them with sipscope's.
    local stats=()
    [ -z "${SIPSCOPE_SIPP_STATS:-}" ] ||
        stats=(-trace_stat -stf "$SIPSCOPE_SIPP_STATS/$tag-uac.csv" -fd 60)
    (cd "$work" && exec timeout 30 sipp -sf "$sippdir/$scen-uac.xml" -p "$uac_port" \
        -mp "$((media + 4))" -cp "$((control + 1))" -r 10 -rp 1000 "${common[@]}" "${stats[@]}" \
        -trace_err -error_file "$work/$tag-uac.err" "$remote" \
        >"$work/$tag-uac.log" 2>&1) &
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

record_scenario() { # NAME TRANSPORT FAMILY PCAP
    local scen=$1 tr=$2 fam=$3 pcap=$4 calls
    calls=$(calls_of "$expdir/$scen.expect")
    [ -n "$calls" ] || die "$expdir/$scen.expect has no call-ids line"
    start_tcpdump "$pcap" "$tr and (port $base_port or port $((base_port + 1)))"
    pair_pids=()
    sipp_pair "$scen" 0 "$tr" "$fam" "$calls"
    wait_pairs
    stop_tcpdump "$pcap"
}

record_mix() { # TRANSPORT FAMILY PCAP
    local tr=$1 fam=$2 pcap=$3 slot=0 scen n
    start_tcpdump "$pcap" "$tr and portrange $base_port-$((base_port + 2 * ${#scenarios[@]} - 1))"
    pair_pids=()
    for scen in "${scenarios[@]}"; do
        n=$(awk -v s="$scen" '$1 == "scenario" && $2 == s { print $3 }' "$expdir/mix.expect")
        [ -n "$n" ] || die "mix.expect has no 'scenario $scen N' line"
        sipp_pair "$scen" "$slot" "$tr" "$fam" "$n"
        slot=$((slot + 1))
    done
    wait_pairs
    stop_tcpdump "$pcap"
}

# ---------------------------------------------------------------------------------------------
# Hand-written flows

# Checks that PCAP holds the messages of the flow file SIP exactly: for each marker, the frame
# time (base epoch + TIME), endpoints and UDP or TCP payload bytes; a marker that says missed
# has no frame. This checks sip2pcap with an independent decoder; IPv6 addresses in markers must
# be written in canonical (compressed) form. TRANSPORT udp reads the fields dissect_udp left;
# tcp (a flow with TCP markers, UDP ones beside them) takes a pass of its own.
check_flow_bytes() { # SIP PCAP TRANSPORT
    local sip=$1 pcap=$2 tr=$3 name size i=0 m=0 n marker
    local t src dst flags start end want got sec frac
    local ft s4 s6 sp d4 d6 dp payload
    local -a offsets frames
    name=$(basename "$pcap")
    size=$(stat -c %s "$sip")
    # OFFSET:MARKER for every marker line (grep -b counts bytes).
    grep -a -b '^--- [0-9]' "$sip" >"$work/markers"
    # '|' rather than tab: read would merge the empty fields of the absent address family.
    if [ "$tr" = tcp ]; then
        tsh -r "$pcap" -T fields -E separator=/t -E occurrence=f -e frame.time_epoch \
            -e ip.src -e ipv6.src -e udp.srcport -e tcp.srcport -e ip.dst -e ipv6.dst \
            -e udp.dstport -e tcp.dstport -e udp.payload -e tcp.payload |
            awk -F'\t' -v OFS='|' '{ print $1, $2, $3, $4 $5, $6, $7, $8 $9, $10 $11 }' \
                >"$work/frames"
    else
        cut -f2-8,13 "$work/fields" | tr '\t' '|' >"$work/frames"
    fi
    n=$(grep -a -c -v -E ' missed( |.?$)' "$work/markers" || true)
    [ "$n" = "$(wc -l <"$work/frames")" ] || die "$name: $n markers but $(wc -l <"$work/frames") frames"
    mapfile -t offsets < <(cut -d: -f1 "$work/markers")
    offsets+=("$size")
    mapfile -t frames <"$work/frames"
    while IFS= read -r marker; do
        marker=${marker#*:}
        # The message starts after the marker line and its LF (LC_ALL=C: ${#} counts bytes).
        start=$((offsets[m] + ${#marker} + 1))
        end=${offsets[$((m + 1))]}
        m=$((m + 1))
        read -r _ t src _ dst _ flags <<<"${marker%$'\r'}"
        case " $flags " in
        *" missed "*) continue ;; # sent, but not in the capture
        esac
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
            die "$name: packet $((i + 1)) differs from marker $m in $(basename "$sip")"
        fi
        i=$((i + 1))
    done <"$work/markers"
}

# ---------------------------------------------------------------------------------------------

# produce NAME EXPECT TRANSPORT FAMILY CONNECTIONS COMMAND...: runs COMMAND with the capture path
# appended (unless --verify-only), checks the capture (see check), and only then puts it into
# OUTDIR, so that a failed run never leaves a bad fixture behind.
produce() {
    local name=$1 expect=$2 tr=$3 family=$4 conns=$5
    shift 5
    if [ "$verify_only" = 1 ]; then
        check "$outdir/$name" "$expect" "$tr" "$family" "$conns"
        return
    fi
    "$@" "$work/$name"
    record_again=0
    anomaly_retry=1 check "$work/$name" "$expect" "$tr" "$family" "$conns"
    if [ "$record_again" = 1 ]; then # a TCP analysis flag alone (see the top of this file)
        "$@" "$work/$name"
        check "$work/$name" "$expect" "$tr" "$family" "$conns"
    fi
    mv -f "$work/$name" "$outdir/$name"
}

start=$(date +%s.%N)
echo "record-fixtures: output $outdir, SIP ports $base_port..$((base_port + 19)), ${transports[*]}"

for scen in "${scenarios[@]}"; do
    wanted "$scen" || continue
    for tr in "${transports[@]}"; do
        for fam in 4 6; do
            produce "$scen-$tr$fam.pcap" "$expdir/$scen.expect" "$tr" "$fam" 1 \
                record_scenario "$scen" "$tr" "$fam"
        done
    done
done

if wanted mix; then
    for tr in "${transports[@]}"; do
        for fam in 4 6; do
            produce "mix-$tr$fam.pcap" "$expdir/mix.expect" "$tr" "$fam" "${#scenarios[@]}" \
                record_mix "$tr" "$fam"
        done
    done
fi

if wanted flows; then
    for sip in "$flowdir"/*.sip; do
        flow=$(basename "$sip" .sip)
        tr=udp
        if grep -a -q -E '^--- [0-9][^ ]* [^ ]+ -> [^ ]+ tcp( |.?$)' "$sip"; then tr=tcp; fi
        produce "flow-$flow.pcap" "$flowdir/$flow.expect" "$tr" "" 0 "$top/scripts/sip2pcap" "$sip"
        # check left a UDP capture's dissection in $work/fields
        check_flow_bytes "$sip" "$outdir/flow-$flow.pcap" "$tr"
    done
fi

awk -v a="$start" -v b="$(date +%s.%N)" \
    'BEGIN { printf "record-fixtures: all captures match their manifests (%.1f s)\n", b - a }'
