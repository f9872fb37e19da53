#!/usr/bin/env bash
# build-release.sh: builds the release sipscope, the binary scripts/run.sh runs and BENCHMARK.md
# measures: Release (-O3) with link-time optimisation and profile-guided optimisation. On the
# benchmark's capture it reads 7 to 11% more messages per CPU-second than a plain Release build
# (BENCHMARK.md has both, side by side in the same rounds).
#
# PGO compiles the code twice in one build directory: first instrumented, then, after a training
# run has recorded which branches and calls are taken, with that profile. The training reads
# inputs the build makes itself, never the benchmark's file: a generated mix of 300,000 UDP
# messages (seed 7; the benchmark uses seed 1) without rules, with the bundled rules enabled and
# with an events file, then every committed test capture and the generated transport captures
# (TCP, IPv6, fragments, VLAN, tunnels), so that those paths are profiled too. Code the training
# never ran is compiled as without a profile, not as cold (-fprofile-partial-training).
#
#   scripts/build-release.sh [BUILD_DIR [TARGET...]]
#
# BUILD_DIR defaults to build-release; TARGETs (default sipscope) are built in the second phase.
# Needs what scripts/install-deps.sh installs. Takes 15 to 30 s on two cores.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath -m "${1:-$top/build-release}")
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(sipscope)
jobs=$(nproc)
pgo=$build/pgo
common=(-DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS=-g -DSIPSCOPE_LTO=ON "-DSIPSCOPE_PGO_DIR=$pgo")

# Nothing to do when these targets were built from the same inputs (scripts/run.sh calls this
# every time it starts sipscope): the sources, the build files, the training's tools and
# captures. The stamp's time is the build's start, so that a file edited during the build
# counts as newer.
stamp=$build/release-stamp
inputs=("$top/CMakeLists.txt" "$top/core" "$top/bpf" "$top/lua" "$top/rules" "$top/scripts"
    "$top/tests/CMakeLists.txt" "$top/tests/tools" "$top/tests/fixtures/pcap"
    "$top/tests/lua/rules/configure.lua")
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${targets[*]}" ] &&
    [ -z "$(find "${inputs[@]}" -newer "$stamp" -not -path '*/__pycache__*' -print -quit)" ]; then
    exit 0
fi
mkdir -p "$build"
rm -f "$stamp"
echo "${targets[*]}" >"$stamp.new" # its time is now; only renamed at the end

train=$(mktemp -d /tmp/sipscope-train.XXXXXX)
trap 'rm -rf "$train"' EXIT

# 1. The instrumented build. Old profiles go: they would add up with the new run's.
rm -rf "$pgo"
cmake -S "$top" -B "$build" "${common[@]}" -DSIPSCOPE_PGO=generate >/dev/null
cmake --build "$build" -j"$jobs" --target sipscope gen_traffic >/dev/null

# 2. The training run. A failure here is a bug, not something to build around.
sipscope=$build/core/sipscope
"$build/tests/gen_traffic" "$train/mix.pcap" 300000 7 >/dev/null
"$sipscope" --read "$train/mix.pcap" --print >/dev/null
"$top/tests/tools/bundled_rules.sh" "$sipscope" "$train/rules" >/dev/null
"$sipscope" --read "$train/mix.pcap" --rules "$train/rules" --print >/dev/null
"$sipscope" --read "$train/mix.pcap" --rules "$train/rules" --events "$train/events.json" \
    --print >/dev/null
python3 "$top/tests/tools/gen_pcaps.py" "$train/gen" >/dev/null
for f in "$top"/tests/fixtures/pcap/*.pcap "$train"/gen/*.pcap; do
    # Some of these captures are broken on purpose: sipscope then exits 1, or 3 for a cut file,
    # after its report; 2 (wrong flags) or a crash is a bug.
    rc=0
    "$sipscope" --read "$f" --print >/dev/null 2>&1 || rc=$?
    if [ "$rc" != 0 ] && [ "$rc" != 1 ] && [ "$rc" != 3 ]; then
        echo "build-release.sh: the training run failed on $f (exit $rc)" >&2
        exit 1
    fi
done

# 3. The optimised build, with the profile.
cmake -S "$top" -B "$build" "${common[@]}" -DSIPSCOPE_PGO=use >/dev/null
cmake --build "$build" -j"$jobs" --target "${targets[@]}" >/dev/null
mv "$stamp.new" "$stamp"
echo "built ${targets[*]} in $build (Release, LTO, PGO)" >&2
