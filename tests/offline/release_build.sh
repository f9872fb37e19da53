#!/usr/bin/env bash
# The release build (scripts/build-release.sh: link-time and profile-guided optimisation) is the
# binary that scripts/run.sh runs and BENCHMARK.md measures, so it is held to the same values as
# the plain build:
#  1. a generated mix (a seed the training run never saw) gives the generator's exact values;
#  2. it prints byte for byte what the plain build prints: on that mix without rules, with the
#     bundled rules, with an events file (whose lines must match too), and on every committed
#     capture and every generated transport capture (TCP, IPv6, fragments, VLAN, tunnels).
# Skips (77) when the release build is absent: scripts/test.sh builds it first. Run by hand
# after a change, it compares against whatever build-release/ holds: rebuild that first
# (scripts/build-release.sh, which does nothing when it is up to date).
#
#   release_build.sh PLAIN_SIPSCOPE RELEASE_SIPSCOPE GEN_TRAFFIC
set -euo pipefail
plain=$1 release=$2 gen=$3
top=$(cd "$(dirname "$0")/../.." && pwd)
if [ ! -x "$release" ]; then
    echo "skipped: no release build at $release (scripts/build-release.sh makes it)"
    echo "0 passed, 0 failed, 1 skipped"
    exit 77
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
passed=0 failed=0

"$gen" "$dir/mix.pcap" 200000 11 >"$dir/mix.expect"
if python3 "$top/tests/offline/expect.py" "$release" "$dir/mix.pcap" "$dir/mix.expect" \
    >"$dir/expect.out"; then
    passed=$((passed + 1))
else
    cat "$dir/expect.out"
    echo "FAIL: the release build's values on the generated mix"
    failed=$((failed + 1))
fi

# same NAME EVENTS ARGS...: both builds print the same, report the same on stderr, exit alike
# and, when EVENTS names the --events file among ARGS, write the same lines there.
same() {
    local name=$1 events=$2 rc_p=0 rc_r=0 what=""
    shift 2
    "$plain" "$@" 2>"$dir/plain.err" >"$dir/plain.out" || rc_p=$?
    if [ -n "$events" ]; then mv "$events" "$dir/plain.events" 2>/dev/null || :; fi
    "$release" "$@" 2>"$dir/release.err" >"$dir/release.out" || rc_r=$?
    [ "$rc_p" = "$rc_r" ] || what+=" exit $rc_r, not $rc_p;"
    cmp -s "$dir/plain.out" "$dir/release.out" || what+=" the metrics;"
    cmp -s "$dir/plain.err" "$dir/release.err" || what+=" stderr;"
    if [ -n "$events" ] && ! cmp -s "$dir/plain.events" "$events"; then
        what+=" the events file;"
    fi
    if [ -n "$what" ]; then
        echo "FAIL: $name: the release build differs from the plain one in:$what an old" \
            "release build? (scripts/build-release.sh rebuilds it)"
        diff "$dir/plain.out" "$dir/release.out" | head -10 || true
        diff "$dir/plain.err" "$dir/release.err" | head -5 || true
        [ -z "$events" ] || diff "$dir/plain.events" "$events" | head -5 || true
        failed=$((failed + 1))
    else
        passed=$((passed + 1))
    fi
}

"$top/tests/tools/bundled_rules.sh" "$plain" "$dir/rules" >/dev/null
same "mix, no rules" "" --read "$dir/mix.pcap" --print
same "mix, bundled rules" "" --read "$dir/mix.pcap" --rules "$dir/rules" --print
same "mix, bundled rules, events file" "$dir/events.json" --read "$dir/mix.pcap" \
    --rules "$dir/rules" --events "$dir/events.json" --print
python3 "$top/tests/tools/gen_pcaps.py" "$dir/gen" >/dev/null
for f in "$top"/tests/fixtures/pcap/*.pcap "$dir"/gen/*.pcap; do
    same "$(basename "$f")" "" --read "$f" --print
done
echo "$passed passed, $failed failed, 0 skipped"
[ "$failed" = 0 ]
