#!/usr/bin/env bash
# Issue acceptance: a generated capture of 1,000,000 SIP messages with a known mix processes with
# exact metric values and zero evictions at the default caps; prints time and peak RSS.
set -euo pipefail
sipscope=$1 gen=$2 messages=${3:-1000000}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$gen" "$dir/mix.pcap" "$messages" 1 >"$dir/mix.expect"
grep '^# messages' "$dir/mix.expect"
# Not exec: the trap must run after it, or every run leaves its 365 MB capture in $TMPDIR.
python3 "$(dirname "$0")/expect.py" "$sipscope" "$dir/mix.pcap" "$dir/mix.expect" --runs 2
