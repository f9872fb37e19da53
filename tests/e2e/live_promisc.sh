#!/usr/bin/env bash
# Live capture with --promisc, as on a mirror (SPAN) port: the named interface is promiscuous
# while sipscope captures it and not after, even after a SIGKILL; an administrator's own
# promiscuous setting stays; frames addressed to another host's MAC are counted; an interface
# renamed away is let go once one created under the name is taken. Without --promisc nothing
# changes. (A veth delivers frames for other MACs to packet sockets in any mode, so the frames
# counted do not prove the mode: the kernel's promiscuity count does.) Inside a namespace of its
# own with veth pairs it creates.
# usage: live_promisc.sh SIPSCOPE   (needs root; skips otherwise)
set -euo pipefail
sipscope=$1
. "$(dirname "$0")/lib.sh"
e2e_need ip curl python3
e2e_setup promisc

# A veth pair: NAME is captured, PEER sends from NET.1 to NET.2, a neighbour whose MAC is no
# interface's: the frames reach NAME addressed to another host.
make_veth() { # NAME PEER NET
    ip -n "$ns" link add "$1" type veth peer name "$2"
    ip -n "$ns" link set "$1" up
    ip -n "$ns" link set "$2" up
    ip -n "$ns" addr add "$3.1/24" dev "$2"
    ip -n "$ns" neigh replace "$3.2" lladdr 02:00:00:00:00:99 dev "$2" nud permanent
}
promiscuity() { # DEV
    ip -n "$ns" -d link show dev "$1" | grep -o 'promiscuity [0-9]*' | awk '{print $2}'
}
promiscuity_becomes() { # DEV WANT   (waits up to 5 s)
    local got=""
    for _ in $(seq 50); do
        got=$(promiscuity "$1")
        [ "$got" = "$2" ] && return 0
        sleep 0.1
    done
    echo "promiscuity of $1 is $got, want $2"
    return 1
}
kill_sipscope() { # SIGNAL
    kill "-$1" "$pid"
    wait "$pid" || true
    pid=""
}
options='sip_requests_total{method="OPTIONS"}'

make_veth spp0 spp1 10.9.0
e2e_iface=spp0

# Without --promisc the interface is left as it is.
e2e_start_sipscope --sip-ports 5060
check "without --promisc: not promiscuous" promiscuity_becomes spp0 0
kill_sipscope TERM

e2e_start_sipscope --sip-ports 5060 --promisc
check "promiscuous while captured" promiscuity_becomes spp0 1
check "the log says so" log_has "interface spp0: promiscuous mode on while capturing"
check "the sending side is left alone" promiscuity_becomes spp1 0
send_options 10.9.0.2 3
check "frames to another host's MAC are counted" sample_becomes "$options" 3
# A mirror that copies two ports a packet crosses sends it twice: the same bytes at once are a
# copy there (--dedup-window is on with --promisc), one path or not.
ip netns exec "$ns" python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
m = (b"OPTIONS sip:bob@x SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKspan\r\n"
     b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: span\r\nCSeq: 1 OPTIONS\r\n"
     b"Content-Length: 0\r\n\r\n")
s.sendto(m, ("10.9.0.2", 5060))
s.sendto(m, ("10.9.0.2", 5060))'
check "a mirror's two copies count once" sample_becomes "$options" 4
check "the second as a copy" sample_becomes 'sipscope_capture_duplicates_total{iface="spp0"}' 1
# Renamed away: its socket stays bound to it, so it stays held until an interface of the name
# comes; then that one is captured and held, and the renamed one let go.
ip -n "$ns" link set spp0 down
ip -n "$ns" link set spp0 name sold0
check "renamed away: held until another spp0 comes" promiscuity_becomes sold0 1
make_veth spp0 spp2 10.9.1
check "the log says a new spp0 is captured" \
    log_has "interface spp0 was created again: capturing it"
check "the new spp0 is promiscuous" promiscuity_becomes spp0 1
send_options 10.9.1.2 2
check "its frames are counted" sample_becomes "$options" 6
check "the renamed one stays let go" promiscuity_becomes sold0 0
kill_sipscope KILL
check "SIGKILL: not promiscuous after" promiscuity_becomes spp0 0

# An administrator's own setting counts apart, and stays.
ip -n "$ns" link set spp0 promisc on
e2e_start_sipscope --sip-ports 5060 --promisc
check "the administrator's and sipscope's" promiscuity_becomes spp0 2
e2e_stop_sipscope
check "the administrator's stays" promiscuity_becomes spp0 1
e2e_finish
