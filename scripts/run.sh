#!/usr/bin/env bash
# Sets everything up on a fresh Debian 12 machine (dependencies, build) and runs sipscope with
# the given flags. Without flags it runs the main job: live capture of SIP on port 5060 on every
# interface, with the metrics served on http://localhost:9632/metrics (needs root, or CAP_BPF,
# CAP_PERFMON and CAP_NET_RAW). Relative paths in the flags are taken from the caller's
# directory.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
# The setup runs in the repository, in a subshell: sipscope runs in the caller's directory, so
# that relative paths in the flags (--read calls.pcap, --events, --rules) are the caller's.
(
    cd "$top"
    ./scripts/install-deps.sh >/dev/null
    # The release build: -O3 with link-time and profile-guided optimisation (half a minute the
    # first time, nothing after while the sources stay the same).
    ./scripts/build-release.sh build-release
)
if [ $# -eq 0 ]; then
    set -- --interface any --sip-ports 5060 --web.listen-address :9632
fi
exec "$top/build-release/core/sipscope" "$@"
