#!/bin/sh
# rfc4475: the RFC 4475 torture messages of tests/fixtures/sip/rfc4475 (README.md there) through
# the whole engine, once as UDP datagrams and once in one TCP connection: sip2pcap makes the two
# captures, `sipscope --read --print --sip-ports 5060` must count them as derived by hand in
# tests/offline/expect/rfc4475-udp.expect and rfc4475-tcp.expect.
#   rfc4475.sh SIPSCOPE SIP2PCAP SOURCE_DIR
set -eu
bin=$1
sip2pcap=$2
src=$3
dir="$src/tests/fixtures/sip/rfc4475"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One datagram per message, a second apart, in the order of the RFC.
udp="wsinv intmeth esc01 escnull esc02 lwsdisp longreq dblreq semiuri transports mpart01 unreason
noreason badinv01 clerr ncl scalar02 scalarlg quotbal ltgtruri lwsruri lwsstart trws escruri
baddate regbadct badaspec baddn badvers mismatch01 mismatch02 bigcode insuf multi01 mcl01 inv2543"
# One segment per message. Not dblreq (its trailing INVITE is a datagram's, whose body is longer
# than its Content-Length). A message the framer rejects is followed by one whose start line it
# finds when it resynchronises: lwsstart, badvers and bigcode, whose start lines are broken, come
# after good messages, so that each is parsed and counted rather than skipped by the
# resynchronisation after another. clerr (Content-Length: 9999) last: it waits for bytes that
# never come.
tcp="wsinv intmeth esc01 escnull esc02 lwsdisp longreq semiuri transports mpart01 unreason noreason
badinv01 ncl scalar02 scalarlg quotbal ltgtruri lwsruri trws lwsstart escruri baddate regbadct
badaspec baddn badvers mismatch01 mismatch02 bigcode insuf multi01 mcl01 inv2543 clerr"

{
    printf 'RFC 4475 torture messages over UDP (tests/offline/rfc4475.sh)\r\n'
    t=0
    for m in $udp; do
        printf -- '--- %d.000 192.0.2.10:5060 -> 192.0.2.20:5060 udp\r\n' "$t"
        cat "$dir/$m.sip"
        t=$((t + 1))
    done
} >"$tmp/udp.sip"
{
    printf 'RFC 4475 torture messages over TCP (tests/offline/rfc4475.sh)\r\n'
    printf -- '--- 0.000 192.0.2.10:40000 -> 192.0.2.20:5060 tcp syn\r\n'
    printf -- '--- 0.001 192.0.2.20:5060 -> 192.0.2.10:40000 tcp syn\r\n'
    printf -- '--- 0.002 192.0.2.10:40000 -> 192.0.2.20:5060 tcp\r\n'
    t=1
    for m in $tcp; do
        printf -- '--- %d.000 192.0.2.10:40000 -> 192.0.2.20:5060 tcp\r\n' "$t"
        cat "$dir/$m.sip"
        t=$((t + 1))
    done
} >"$tmp/tcp.sip"

status=0
for v in udp tcp; do
    "$sip2pcap" "$tmp/$v.sip" "$tmp/$v.pcap"
    echo "== $v"
    python3 "$src/tests/offline/expect.py" "$bin" "$tmp/$v.pcap" \
        "$src/tests/offline/expect/rfc4475-$v.expect" || status=1
done
exit $status
