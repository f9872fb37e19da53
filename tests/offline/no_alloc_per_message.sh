#!/usr/bin/env bash
# "No allocation on the per-packet path" (DESIGN.md): the heap allocations of a whole offline
# read are counted (tests/tools/alloc_count.c, LD_PRELOAD) for two generated captures of the same
# mix, 20,000 and 60,000 messages; the counts must be equal, without and with an events file.
# Any allocation made per message, per call or per transaction would make the longer read's
# count larger by thousands. Rules are left out: LuaJIT allocates as it compiles traces, which
# depends on what got hot, not on the count of messages (its heap is its own, lua_heap.c).
# usage: no_alloc_per_message.sh SIPSCOPE GEN_TRAFFIC LIBALLOC_COUNT
set -euo pipefail
sipscope=$1 gen=$2 lib=$3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
failed=0 passed=0

for n in 20000 60000; do
    "$gen" "$dir/mix-$n.pcap" "$n" 1 >/dev/null
done
# Allocations of one read of FILE with the extra flags given.
allocs() { # FILE [FLAGS...]
    local file=$1
    shift
    LD_PRELOAD=$lib ALLOC_COUNT_FILE=$dir/count "$sipscope" --read "$file" --print "$@" >/dev/null
    cat "$dir/count"
}
check_equal() { # WHAT FLAGS...
    local what=$1 small large
    shift
    small=$(allocs "$dir/mix-20000.pcap" "$@")
    large=$(allocs "$dir/mix-60000.pcap" "$@")
    if [ "$small" -gt 0 ] && [ "$small" = "$large" ]; then
        echo "ok   $what: $small allocations for 20,000 messages and for 60,000"
        passed=$((passed + 1))
    else
        echo "FAIL $what: $small allocations for 20,000 messages, $large for 60,000"
        failed=$((failed + 1))
    fi
}
check_equal "no rules"
check_equal "with an events file" --events "$dir/events.json"
echo "$passed passed, $failed failed, 0 skipped"
[ "$failed" = 0 ]
