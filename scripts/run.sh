#!/usr/bin/env bash
# Sets everything up on a fresh Debian 12 machine (dependencies, build) and runs sipscope with
# the given flags. Without flags it reads a capture that ships with the repository and prints
# its metrics, so a newcomer sees the main job work at once.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
./scripts/install-deps.sh >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
if [ $# -eq 0 ]; then
    set -- --read tests/fixtures/pcap/mix-udp4.pcap --print
fi
exec ./build/core/sipscope "$@"
