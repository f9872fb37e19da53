#!/usr/bin/env bash
# Sets everything up on a fresh Debian 12 machine and runs the whole test suite: unit tests
# (also under ASan+UBSan), end-to-end and conformance tests, Lua specs and the fuzz runs
# (ASan+UBSan: the pipeline with and without rules, capture files; MemorySanitizer: the pipeline).
# Prints one closing line "N passed, N failed, N skipped"; exits non-zero if anything failed.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

./scripts/install-deps.sh

jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
# The release build (LTO, PGO) that scripts/run.sh runs: test offline_release_build checks it.
# A failure here (the build, or a crash in its training run) is one failed test, not the end.
release_failed=0
./scripts/build-release.sh build-release || release_failed=1
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSIPSCOPE_SANITIZE=address,undefined >/dev/null
cmake --build build-asan -j"$jobs"
# The libFuzzer build: clang, the core instrumented for coverage (fuzzer-no-link) and built
# with ASan and UBSan; its ctest runs the fuzzers (label fuzz, tests/CMakeLists.txt): the
# pipeline's for 60 s and, beside it, the pipeline's with a rule that calls the whole Lua API,
# the capture files' and the web endpoints' for 30 s each.
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
    -DSIPSCOPE_FUZZ=ON -DSIPSCOPE_SANITIZE=address,undefined >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzz_pipeline fuzz_pipeline_rules fuzz_pcap_file fuzz_http
# The same pipeline fuzzer under MemorySanitizer, without rules: reads of bytes never written,
# such as what a reused table entry keeps of the entry before (core/table.c poisons them there).
cmake -S . -B build-msan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
    -DSIPSCOPE_FUZZ=ON -DSIPSCOPE_SANITIZE=memory >/dev/null
cmake --build build-msan -j"$jobs" --target fuzz_pipeline

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT

# ctest's JUnit report tells passed, failed and skipped apart; sum them over every run.
run_ctest() {
    local dir=$1 name=$2
    shift 2
    ctest --test-dir "$dir" --output-on-failure -j"$jobs" --output-junit "$results/$name.xml" "$@" ||
        true
}
run_ctest build all
run_ctest build-asan asan -L unit
run_ctest build-fuzz fuzz -L fuzz
run_ctest build-msan msan -L fuzz

python3 - "$results" "$release_failed" <<'PY'
# Each test program prints its own "N passed, N failed, N skipped" line: sum those, so that a
# case skipped inside a program is reported as skipped. A program that failed without such a
# line (a crash) counts as one failure; one skipped as a whole (exit 77) as one skip.
import re, sys, glob, xml.etree.ElementTree as ET
line = re.compile(r"(\d+) passed, (\d+) failed, (\d+) skipped")
passed = failed = skipped = 0
for f in sorted(glob.glob(sys.argv[1] + "/*.xml")):
    for case in ET.parse(f).getroot().iter("testcase"):
        status = case.get("status", "")
        out = "".join(case.itertext())
        counts = line.findall(out)
        if counts:
            p_, f_, s_ = map(int, counts[-1])
            if status == "fail" and f_ == 0:
                f_ = 1
            passed += p_; failed += f_; skipped += s_
        elif status == "run":
            passed += 1
        elif status in ("notrun", "disabled"):
            skipped += 1
        else:
            failed += 1
            print("FAILED:", case.get("name"))
if sys.argv[2] != "0":
    failed += 1
    print("FAILED: scripts/build-release.sh (the release build or its training run)")
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
PY
