#!/usr/bin/env bash
# run.sh: regenerates BENCHMARK.md on this machine. Builds the release binaries into build-bench
# (scripts/build-release.sh) and a plain Release build into build-bench-plain,
# generates every input in a temporary directory, runs each measurement several times (median,
# min, max; tshark and sngrep on the same file in the same run) and writes the report with the
# command behind every figure (tests/bench/bench.py does the measuring). The live section and
# the memory soak need root: they make two network namespaces joined by a veth pair, and delete
# them at the end, also when interrupted.
#
#   tests/bench/run.sh [--quick] [--out FILE] [--work DIR] [--keep] [bench.py options...]
#
# --quick: fewer rounds, 5 s live steps, a 60 s soak (default 600 s: --soak-seconds S).
# --out FILE: where the report goes [BENCHMARK.md at the repository root].
# --work DIR: inputs go there and stay; otherwise a temporary directory, removed at the end
#   unless --keep. Other options (--runs N, --sections 1,2,..., --no-live, --no-profile,
#   --rules DIR, --step-seconds S, --cpu N, --send-cpu N) go to bench.py; see --help there.
# --baseline BIN[=LABEL]: an older sipscope binary run in the same offline rounds, so that a
#   change is measured before and after on the same machine state (a shared VM's pace moves
#   more between hours than most changes do). The plain Release build is always one.
# --report-only WORK/results.json rewrites the report from a kept run without measuring.
# Timing thresholds live here, never in CI tests.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${SIPSCOPE_BENCH_BUILD:-$top/build-bench}
out=$top/BENCHMARK.md
work=""
keep=0
pass=()
invocation="tests/bench/run.sh${*:+ $*}"
while [ $# -gt 0 ]; do
    case $1 in
    --out) out=$(realpath -m "$2"); shift 2 ;;
    --work) work=$(realpath -m "$2"); keep=1; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) pass+=("$1"); shift ;;
    esac
done

# The release build (scripts/build-release.sh: -O3, LTO, PGO) is what is measured; the plain
# Release build (-O3 alone) runs beside it in sections 1 and 2, so that what LTO and PGO bring
# is shown rather than assumed.
"$top/scripts/build-release.sh" "$build" sipscope bench_sip_parse bench_http bench_memory \
    gen_traffic gen_calls sip_sender
plain=$build-plain
cmake -S "$top" -B "$plain" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS=-g >/dev/null
cmake --build "$plain" -j"$(nproc)" --target sipscope bench_sip_parse >/dev/null
pass=(--baseline "$plain/core/sipscope=plain -O3 (no LTO, no PGO)"
    --parse-baseline "$plain/tests/bench_sip_parse=the plain -O3 build (no LTO, no PGO)"
    "${pass[@]}")

if [ -z "$work" ]; then
    work=$(mktemp -d /tmp/sipscope-bench.XXXXXX)
fi
mkdir -p "$work"
cleanup() {
    # bench.py deletes its namespaces itself; this covers it being killed outright.
    if [ -f "$work/netns" ]; then
        while read -r ns; do ip netns del "$ns" 2>/dev/null || true; done <"$work/netns"
    fi
    if [ "$keep" = 0 ]; then rm -rf "$work"; else echo "inputs kept in $work" >&2; fi
}
trap cleanup EXIT

python3 "$top/tests/bench/bench.py" --top "$top" --build "$build" --work "$work" --out "$out" \
    --invocation "$invocation" "${pass[@]}"
