# lib.sh: what the tests of scripts/ share. Sourced after `set -uo pipefail`: a scratch
# directory $work removed at exit, and the tally of check and finish.

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0

# Runs COMMAND and counts it as passed or failed, naming a failure.
check() { # NAME COMMAND...
    local name=$1
    shift
    if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL $name"; fi
}

# Prints the files given when a check failed, then the tally line; the status says whether all
# passed.
finish() { # [FILE...]
    [ "$failed" = 0 ] || cat "$@"
    echo "$passed passed, $failed failed, 0 skipped"
    [ "$failed" = 0 ]
}
