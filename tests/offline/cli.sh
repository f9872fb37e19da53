#!/usr/bin/env bash
# The command line's errors: each bad input gets a clear message and its documented exit status
# (0 done, 1 could not run, 2 wrong flags, 3 capture cut short or unreadable), and a cut
# capture still prints what was read, with the cut counted.
set -uo pipefail
sipscope=$1
top=$(cd "$(dirname "$0")/../.." && pwd)
fixture=$top/tests/fixtures/pcap/answered-udp4.pcap
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0

stderr_matches() { # PATTERN: an empty one means nothing may be written to standard error
    if [ -z "$1" ]; then
        [ ! -s "$work/err" ]
    else
        grep -qE -- "$1" "$work/err"
    fi
}
expect() { # NAME STATUS STDERR_PATTERN ARGS...
    local name=$1 want=$2 pattern=$3 status
    shift 3
    "$sipscope" "$@" >"$work/out" 2>"$work/err"
    status=$?
    if [ "$status" = "$want" ] && stderr_matches "$pattern"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL $name: status $status (want $want), stderr:"
        sed 's/^/     /' "$work/err"
    fi
}
check() { # NAME COMMAND...
    local name=$1
    shift
    if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL $name"; fi
}

expect "unknown flag" 2 "unknown flag --bogus" --bogus
expect "--lua-script after another flag" 2 \
    "--lua-script runs a script and must come first: sipscope --lua-script FILE \[ARGS...\]" \
    --read "$fixture" --lua-script x.lua
expect "flag without its value" 2 "needs a value" --read
expect "stray argument" 2 'unexpected argument "extra"' --read "$fixture" extra
# A value's error names its flag: with several flags on a line, "invalid number" alone does not
# say which one to fix.
expect "bad duration" 2 '^sipscope: --timer-t1: invalid duration "5"' --read "$fixture" --timer-t1 5
# Compound durations are written as Prometheus writes them: each unit once, the largest first.
# A unit given twice or out of order is a typo ("1s1s" meant 11s? "1m2h" meant 1h2m?): refused,
# the flag named.
expect "a duration with a unit twice" 2 \
    '^sipscope: --timer-t1: invalid duration "1s1s": each unit once, the largest first \(1h30m\)$' \
    --read "$fixture" --print --timer-t1 1s1s
expect "a duration with its units out of order" 2 \
    '^sipscope: --max-call-age: invalid duration "1m2h": each unit once, the largest first' \
    --read "$fixture" --print --max-call-age 1m2h
expect "a dedup window with a unit twice" 2 '^sipscope: --dedup-window: invalid duration "1ms1ms"' \
    --read "$fixture" --print --dedup-window 1ms1ms
expect "a compound duration" 0 "" --read "$fixture" --print --timer-c 2m30s --max-call-age 1d2h3m \
    --timer-t1 0s500ms
# A zero timer would time out every transaction or call at once (SER 0 on answered calls);
# so would a zero --max-call-age, which is no "no limit".
# And one past a year is a typo, which 64 x T1 in 64-bit nanoseconds would wrap at some
# thousands of days: refused; a year itself runs.
for flag in --timer-t1 --timer-b --timer-c --timer-f --max-call-age; do
    expect "$flag 0s" 2 "$flag must be above zero" --read "$fixture" --print "$flag" 0s
    expect "$flag 366d" 2 "^sipscope: $flag must be at most 365d" --read "$fixture" --print \
        "$flag" 366d
    expect "$flag 365d" 0 '' --read "$fixture" --print "$flag" 365d
done
# A rule budget past 5s is refused: a call that loops holds the engine thread (the capture, a
# reload's answer) for one to two budgets, three times before the breaker; 5s is what a profile
# under valgrind uses (tests/bench/bench.py), 5m a typo for 5ms.
expect "a rule budget past 5s" 2 '^sipscope: --rule-budget must be at most 5s$' \
    --read "$fixture" --print --rules "$top/tests/lua/fixtures/rules_ok" --rule-budget 5001ms
expect "a rule budget of 5 minutes" 2 '^sipscope: --rule-budget must be at most 5s$' \
    --read "$fixture" --print --rules "$top/tests/lua/fixtures/rules_ok" --rule-budget 5m
expect "a rule budget of a year" 2 '^sipscope: --rule-budget must be at most 5s$' \
    --read "$fixture" --print --rules "$top/tests/lua/fixtures/rules_ok" --rule-budget 365d
expect "a rule budget of 5s" 0 '' \
    --read "$fixture" --print --rules "$top/tests/lua/fixtures/rules_ok" --rule-budget 5s
expect "bad port list" 2 '^sipscope: --sip-ports: invalid port' --read "$fixture" --sip-ports 5060,0
expect "bad count" 2 '^sipscope: --max-calls: invalid number "-3"' --read "$fixture" --max-calls -3
expect "bad size" 2 '^sipscope: --lua-memory: invalid size "16MB"' --read "$fixture" --print \
    --lua-memory 16MB
expect "bad series cap" 2 '^sipscope: --max-series: invalid number "0"' --read "$fixture" \
    --print --max-series 0
expect "snap length out of bounds" 2 \
    '^sipscope: --snaplen: invalid number "127": expected a whole number from 128 to 262144' \
    --snaplen 127
expect "print without a file" 2 "--print needs --read" --print
expect "live flags with a file" 2 "for live capture" --read "$fixture" --interface lo
# An interface list that cannot be captured as written is a wrong flag (2), found before anything
# is attached (no privilege needed), not a failure to run (1).
expect "an interface listed twice" 2 "^sipscope: --interface: 'lo' is listed twice" \
    --interface lo,eth0,lo
expect "any with another interface" 2 \
    "^sipscope: --interface: 'any' captures every interface and cannot be combined with others" \
    --interface lo,any
expect "promiscuous mode with a file" 2 "and --promisc are for live capture" --read "$fixture" \
    --promisc
expect "promiscuous mode on any" 2 '"any" names none to put in promiscuous mode' \
    --interface any --promisc
expect "promiscuous mode by default on any" 2 "--promisc needs the interfaces named" --promisc
expect "a dedup window as long as T1" 2 \
    '--dedup-window must be below T1 \(--timer-t1, 500\.000 ms\)' --read "$fixture" \
    --dedup-window 500ms
expect "a dedup window past a lowered T1" 2 '\(--timer-t1, 0\.800 ms\)' --read "$fixture" \
    --timer-t1 800us --dedup-window 1ms
expect "a dedup window that is no duration" 2 '^sipscope: --dedup-window: invalid duration "10"' --read "$fixture" \
    --dedup-window 10
# Flags that would be ignored. What cannot mean anything is refused (2); what is harmless runs,
# with one warning line.
expect "--print and --events - on one standard output" 2 \
    "--print and --events - both write to standard output" --read "$fixture" --print --events -
expect "--read twice" 2 "--read given twice" --read "$fixture" --read "$fixture" --print
# A list given twice: the second would replace the first, silently (--interface eth0 --interface
# eth1 would capture eth1 alone).
for flag_values in "--sip-ports 5060 5061" "--interface lo lo2" "--decapsulate vxlan gre" \
    "--events-fields pdd codec"; do
    set -- $flag_values
    expect "$1 twice" 2 "^sipscope: $1 given twice: give one comma-separated list" \
        --read "$fixture" --print --events "$work/twice.json" "$1" "$2" "$1" "$3"
done
# A list naming one item twice is a typo (one item meant, another forgotten): refused, the flag
# and the item named. Ports count by number: a range that covers a port listed elsewhere names it
# twice too.
expect "a tunnel listed twice" 2 "^sipscope: --decapsulate: 'vxlan' is listed twice\$" \
    --read "$fixture" --print --decapsulate gre,vxlan,hep,vxlan
expect "an events field listed twice" 2 "^sipscope: --events-fields: 'pdd' is listed twice\$" \
    --read "$fixture" --events "$work/twice.json" --events-fields pdd,codec,pdd
expect "a port listed twice" 2 \
    '^sipscope: --sip-ports: port 5060 is listed twice in "5060,5060"$' \
    --read "$fixture" --print --sip-ports 5060,5060
expect "a port in two ranges" 2 \
    '^sipscope: --sip-ports: port 5065 is listed twice in "5060-5070,5065-5080"$' \
    --read "$fixture" --print --sip-ports 5060-5070,5065-5080
expect "a port and a range that covers it" 2 \
    '^sipscope: --sip-ports: port 5061 is listed twice in "5061,5060-5062"$' \
    --read "$fixture" --print --sip-ports 5061,5060-5062
# Ranges that meet without overlapping, and the tunnels GRE and ERSPAN (two names of what is
# opened, both meant by who writes them) are no repeat.
expect "adjacent port ranges" 0 "" --read "$fixture" --print --sip-ports 5060-5061,5062-5070
expect "gre and erspan" 0 "" --read "$fixture" --print --decapsulate gre,erspan
expect "--events twice" 2 "--events given twice" --read "$fixture" --events "$work/a.json" \
    --events "$work/b.json" --print
expect "--read that outputs nothing" 2 \
    "--read reads the capture for nothing: add --print, --web.listen-address or --events" \
    --read "$fixture"
expect "--read with an events file alone is a job" 0 "" --read "$fixture" --events "$work/e1.json"
check "which writes the file: the capture's 3 calls" test "$(wc -l <"$work/e1.json")" = 3
expect "--check-rules with --read" 2 \
    "--check-rules only checks the rules and exits: --read is for a job" \
    --check-rules "$top/tests/lua/fixtures/rules_ok" --read "$fixture" --print
expect "--check-rules with --events" 2 "--check-rules only checks .*: --events is for a job" \
    --check-rules "$top/tests/lua/fixtures/rules_ok" --events "$work/kept.json"
check "which is not created" test ! -e "$work/kept.json"
expect "--check-rules with --rules" 2 "--check-rules only checks .*: --rules is for a job" \
    --check-rules "$top/tests/lua/fixtures/rules_ok" --rules "$top/rules"
expect "--web.enable-lifecycle with a read that serves nothing" 0 \
    "^sipscope: warn: main: --web.enable-lifecycle does nothing without --web.listen-address" \
    --read "$fixture" --print --web.enable-lifecycle
check "in one line" test "$(wc -l <"$work/err")" = 1
expect "--events-fields without --events" 0 \
    "^sipscope: warn: main: --events-fields does nothing without --events" \
    --read "$fixture" --print --events-fields src_ip
check "in one line" test "$(wc -l <"$work/err")" = 1
expect "a rule setting without --rules" 0 \
    "^sipscope: warn: main: --rule-budget does nothing without --rules \(no rule runs\)" \
    --read "$fixture" --print --rule-budget 10ms
check "in one line" test "$(wc -l <"$work/err")" = 1
expect "which --check-rules uses" 0 "" --check-rules "$top/tests/lua/fixtures/rules_ok" \
    --lua-memory 32MiB
expect "unknown events field" 2 "--events-fields: unknown field 'codecs'" --read "$fixture" \
    --events "$work/e.json" --events-fields src_ip,codecs
expect "an events file that cannot be made" 1 "cannot open the events file $work/no/e.json" \
    --read "$fixture" --events "$work/no/e.json" --print
expect "an events file that cannot be written (a full disk)" 1 \
    "cannot write the events file /dev/full: No space left on device" \
    --read "$fixture" --events /dev/full --print
check "and how many of its lines were lost: the capture's 3 calls" \
    grep -qx "sipscope: 3 lines of the events file could not be written" "$work/err"
check "the metrics are still printed" grep -qx "sipscope_events_errors_total 3" "$work/out"
# An output that is the capture itself: --events would truncate it before the read, and
# standard output (--print, --events -) would write into it. Refused before anything is opened
# for writing, however the path reaches the file (a symlink, a hard link), and the capture is
# left as it was.
cp "$fixture" "$work/v.pcap"
ln -s v.pcap "$work/v-link.json"
ln "$work/v.pcap" "$work/v-hard.json"
expect "the events file is the capture" 2 \
    "--events $work/v.pcap is the capture that --read reads \($work/v.pcap\)" \
    --read "$work/v.pcap" --events "$work/v.pcap" --print
check "and the capture is left whole" cmp -s "$fixture" "$work/v.pcap"
expect "the events file is a symlink to the capture" 2 "is the capture that --read reads" \
    --read "$work/v.pcap" --events "$work/v-link.json" --print
expect "the events file is a hard link to the capture" 2 "is the capture that --read reads" \
    --read "$work/v.pcap" --events "$work/v-hard.json" --print
check "and the capture is still whole" cmp -s "$fixture" "$work/v.pcap"
"$sipscope" --read - --events "$work/v-hard.json" --print <"$work/v.pcap" >"$work/out" 2>"$work/err"
check "the events file is the capture read from standard input: status 2" test $? = 2
check "which it says" grep -q "is the capture that --read reads (standard input)" "$work/err"
"$sipscope" --read "$work/v.pcap" --print >>"$work/v.pcap" 2>"$work/err"
check "standard output appended to the capture, with --print: status 2" test $? = 2
check "which it says" grep -q "standard output is the capture that --read reads ($work/v.pcap): --print would write into it" "$work/err"
"$sipscope" --read "$work/v.pcap" --events - >>"$work/v-link.json" 2>"$work/err"
check "standard output appended to the capture, with --events -: status 2" test $? = 2
check "which it says" grep -q "standard output is the capture that --read reads ($work/v.pcap): --events - would write into it" "$work/err"
check "and the capture is whole after all of them" cmp -s "$fixture" "$work/v.pcap"
# A character device is no capture to erase: /dev/null read and written gets the read's error.
expect "reading and writing /dev/null is not refused" 1 "cannot read capture /dev/null" \
    --read /dev/null --events /dev/null --print
expect "all with other fields" 2 "--events-fields: 'all' stands alone" --read "$fixture" \
    --events "$work/e.json" --events-fields all,none
gzip -c "$fixture" >"$work/calls.pcap.gz"
expect "a gzipped capture" 1 "cannot read capture $work/calls.pcap.gz: it is compressed with \
gzip: zcat $work/calls.pcap.gz \| sipscope --read - \.\.\." --read "$work/calls.pcap.gz" --print

# A rule that fails to load: the error names the file and line, "sipscope:" said once.
mkdir "$work/badrules"
printf 'local sip = require "sipscope"\nsip.label{name = "method", from = function() end}\nreturn {}\n' \
    >"$work/badrules/r.lua"
expect "a rule that fails to load, in a job" 1 \
    "^sipscope: $work/badrules/r.lua:2: sip.label 'method': default must be a string\$" \
    --read "$fixture" --rules "$work/badrules" --print
expect "and checked" 1 \
    "^sipscope: $work/badrules/r.lua:2: sip.label 'method': default must be a string\$" \
    --check-rules "$work/badrules"

# Frames cut at the snap length (editcap -s 200): every SIP message lost. The status stays 0
# (the file was read whole), but one line on standard error says what was lost.
python3 - "$fixture" "$work/snap200.pcap" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
out, off = bytearray(data[:24]), 24
out[16:20] = struct.pack("<I", 200)  # the header's snap length
while off < len(data):
    sec, usec, incl, orig = struct.unpack("<IIII", data[off:off + 16])
    keep = min(incl, 200)
    out += struct.pack("<IIII", sec, usec, keep, orig) + data[off + 16:off + 16 + keep]
    off += 16 + incl
open(sys.argv[2], "wb").write(out)
PY
expect "a capture cut at a small snap length" 0 \
    "^sipscope: $work/snap200.pcap: 21 frames cut at the snap length, 21 SIP messages incomplete: \
what was lost is not counted in the metrics \(capture with a larger snap length, e.g. tcpdump \
-s 0\)\$" --read "$work/snap200.pcap" --print
check "in one line" test "$(wc -l <"$work/err")" = 1
check "which the metrics count too" \
    grep -qx 'sipscope_capture_truncated_total{iface="file"} 21' "$work/out"
# A file whose header gives a snap length (200) below its records' lengths: the frames are whole
# in the file (tshark reads all 21, each longer than 200 bytes: every SIP message), but libpcap
# cuts each to the header's snap length, and so does sipscope. No larger capture would help: the
# advice is to mend the header. Then the same with the first 10 records really cut to 200 when
# captured: both causes, and both remedies, are said.
python3 - "$fixture" "$work/hdr200.pcap" "$work/mixed200.pcap" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
whole = bytearray(data)
whole[16:20] = struct.pack("<I", 200)  # the header's snap length, nothing else changed
open(sys.argv[2], "wb").write(whole)
out, off, i = bytearray(whole[:24]), 24, 0
while off < len(data):
    sec, usec, incl, orig = struct.unpack("<IIII", data[off:off + 16])
    keep = min(incl, 200) if i < 10 else incl
    out += struct.pack("<IIII", sec, usec, keep, orig) + data[off + 16:off + 16 + keep]
    off += 16 + incl
    i += 1
open(sys.argv[3], "wb").write(out)
PY
expect "records longer than the header's snap length" 0 \
    "^sipscope: $work/hdr200.pcap: 21 frames cut to the snap length of the file's header \(200 \
bytes\), 21 SIP messages incomplete: what was lost is not counted in the metrics \(the file \
holds them whole: its header is wrong, not the capture; libpcap cuts them too; set the header's \
snap length, bytes 16-19, to 262144\)\$" --read "$work/hdr200.pcap" --print
check "in one line" test "$(wc -l <"$work/err")" = 1
check "which the metrics count as cut" \
    grep -qx 'sipscope_capture_truncated_total{iface="file"} 21' "$work/out"
# The advice mends it: the header's snap length set to 262144 (0x00040000, little-endian here),
# every frame is read whole and nothing is said.
printf '\x00\x00\x04\x00' | dd of="$work/hdr200.pcap" bs=1 seek=16 conv=notrunc status=none
expect "the header mended as advised" 0 "" --read "$work/hdr200.pcap" --print
check "and the capture's 3 INVITEs are read whole" \
    grep -qx 'sip_requests_total{method="INVITE"} 3' "$work/out"
expect "records cut when captured and records longer than the header's snap length" 0 \
    "^sipscope: $work/mixed200.pcap: 21 frames cut at the snap length \(11 of them by the file's \
header only, 200 bytes, though the file holds them whole\), 21 SIP messages incomplete: what was \
lost is not counted in the metrics \(capture with a larger snap length, e.g. tcpdump -s 0; and \
set the header's snap length, bytes 16-19, to 262144\)\$" --read "$work/mixed200.pcap" --print
check "in one line" test "$(wc -l <"$work/err")" = 1
expect "a whole capture says nothing" 0 "" --read "$fixture" --print

expect "missing file" 1 "nothing.pcap" --read "$work/nothing.pcap" --print
printf 'not a capture at all, just text\n' >"$work/text.pcap"
expect "not a capture" 1 "text.pcap" --read "$work/text.pcap" --print

# A pcap whose link type is PPP (9): header fields written by hand.
printf '\xd4\xc3\xb2\xa1\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\x00\x00\x09\x00\x00\x00' \
    >"$work/ppp.pcap"
expect "unsupported link type" 1 "PPP" --read "$work/ppp.pcap" --print

# The fixture cut in the middle of its last record: what came before is printed and counted.
size=$(stat -c %s "$fixture")
head -c $((size - 20)) "$fixture" >"$work/cut.pcap"
expect "cut capture" 3 "cut short" --read "$work/cut.pcap" --print
check "a cut capture still prints the messages before the cut" \
    grep -qx 'sip_requests_total{method="INVITE"} 3' "$work/out"
check "the cut is counted" \
    grep -qx 'sipscope_parse_errors_total{stage="l2",reason="capture_file_truncated"} 1' "$work/out"

# A pcapng whose second packet names an interface the file never described: the read stops
# there. The first packet (the fixture's first frame) is still read; the end is counted as
# unreadable, not as cut.
python3 - "$fixture" "$work/badif.pcapng" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
caplen = struct.unpack("<I", data[24 + 8:24 + 12])[0]
frame = data[24 + 16:24 + 16 + caplen]
def block(kind, body):
    n = 12 + len(body)
    return struct.pack("<II", kind, n) + body + struct.pack("<I", n)
def epb(iface):
    pad = frame + b"\0" * (-len(frame) % 4)
    return block(6, struct.pack("<IIIII", iface, 0, 1, len(frame), len(frame)) + pad)
out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
out += block(1, struct.pack("<HHI", 1, 0, 0))
open(sys.argv[2], "wb").write(out + epb(0) + epb(1) + epb(0))
PY
expect "unreadable capture" 3 "unreadable past this point" --read "$work/badif.pcapng" --print
check "an unreadable block still prints the messages before it" \
    grep -qx 'sip_requests_total{method="INVITE"} 1' "$work/out"
check "the unreadable end is counted as such" \
    grep -qx 'sipscope_parse_errors_total{stage="l2",reason="capture_file_unreadable"} 1' "$work/out"

expect "help" 0 "" --help
check "help lists every flag group" grep -q -- "--web.listen-address" "$work/out"
# What follows --help or --version is checked as on any other line: a stray argument, before or
# after it (getopt moves it to the end), or an unknown flag is a wrong command line.
expect "help with a stray argument" 2 '^sipscope: unexpected argument "extra" \(see --help\)$' \
    --help extra
check "in one line, with no help printed" test "$(wc -l <"$work/err")" = 1 -a ! -s "$work/out"
expect "a stray argument before help" 2 '^sipscope: unexpected argument "extra"' extra --help
expect "help with an unknown flag" 2 "^sipscope: unknown flag --bogus" --help --bogus
expect "version" 0 "" --version
check "version prints the version" grep -qE '^sipscope [0-9]+\.[0-9]+\.[0-9]+$' "$work/out"
expect "version with a stray argument" 2 '^sipscope: unexpected argument "extra"' --version extra
echo "$passed passed, $failed failed, 0 skipped"
[ "$failed" = 0 ]
