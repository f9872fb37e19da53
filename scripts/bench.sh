#!/usr/bin/env bash
# Sets everything up on a fresh Debian 12 machine (dependencies, including tshark, sngrep and
# tcpreplay) and regenerates BENCHMARK.md with tests/bench/run.sh, which builds Release into
# build-bench. Run as root for the live section and the memory soak. Options go to run.sh
# (--quick for a short run).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
./scripts/install-deps.sh
exec ./tests/bench/run.sh "$@"
