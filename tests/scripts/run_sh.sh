#!/usr/bin/env bash
# scripts/run.sh runs sipscope in the caller's directory: relative paths in its flags (--read
# calls.pcap, --events, --rules) name the caller's files, not the repository's. The script runs
# in a fake tree whose setup steps (install-deps.sh, build-release.sh) and release binary are
# stubs: the binary prints its working directory and arguments.
#
# Usage: run_sh.sh SOURCE_DIR
set -uo pipefail
src=$1
. "$(dirname "$0")/lib.sh"

tree=$work/repo
mkdir -p "$tree/scripts" "$tree/build-release/core" "$work/caller"
cp "$src/scripts/run.sh" "$tree/scripts/run.sh"
cat >"$tree/scripts/install-deps.sh" <<'STUB'
#!/bin/sh
pwd >"$(dirname "$0")/../deps.cwd"
STUB
cat >"$tree/scripts/build-release.sh" <<'STUB'
#!/bin/sh
# The real one takes its build directory relative to the repository.
[ -d "$1" ] || { echo "build-release.sh: no $1 here ($(pwd))" >&2; exit 1; }
STUB
cat >"$tree/build-release/core/sipscope" <<'STUB'
#!/bin/sh
pwd
printf '%s\n' "$@"
STUB
chmod +x "$tree/scripts/"*.sh "$tree/build-release/core/sipscope"

(cd "$work/caller" && "$tree/scripts/run.sh" --read calls.pcap --print) >"$work/out" 2>"$work/err"
check "run.sh with flags: status 0" test $? = 0
check "sipscope runs in the caller's directory" test "$(sed -n 1p "$work/out")" = "$work/caller"
check "with the caller's flags" test "$(sed -n '2,$p' "$work/out" | tr '\n' ' ')" = \
    "--read calls.pcap --print "
check "the setup steps ran in the repository" test "$(cat "$tree/deps.cwd")" = "$tree"
(cd "$work/caller" && "$tree/scripts/run.sh") >"$work/out" 2>"$work/err"
check "run.sh without flags runs the main job" test "$(sed -n '2,$p' "$work/out" | tr '\n' ' ')" = \
    "--interface any --sip-ports 5060 --web.listen-address :9632 "
finish "$work/err"
