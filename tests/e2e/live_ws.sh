#!/usr/bin/env bash
# Live capture of SIP over WebSocket (RFC 7118) on real sockets: a client and a server on the
# namespace's loopback, port 18080, talking as a WebRTC phone and its proxy would (HTTP upgrade
# with the "sip" subprotocol, masked client frames, fragmented messages with pings among them,
# keep-alives, close). Every OPTIONS and every 200 is counted exactly, under transport "ws".
# Then a connection that was opened before sipscope started: it is picked up mid-way, with
# neither handshake seen, and its messages are counted too. Inside a namespace of its own.
# usage: live_ws.sh SIPSCOPE   (needs root; skips otherwise)
set -euo pipefail
sipscope=$1
. "$(dirname "$0")/lib.sh"
e2e_need ip curl python3
e2e_setup ws

# ws.py N [READY GO]: serves one WebSocket on 127.0.0.1:18080 and connects to it; sends N
# OPTIONS (one in three fragmented around a ping, one in three after a keep-alive frame), each
# answered by a 200 from the server, then closes. With READY and GO: after the handshake,
# creates READY and waits for GO before sending.
cat >"$work/ws.py" <<'PY'
import os, socket, struct, sys, threading, time

def frame(payload, opcode=1, fin=True, key=None):
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    m = 0x80 if key else 0
    head += bytes([m | n]) if n < 126 else bytes([m | 126]) + struct.pack("!H", n)
    if key:
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        head += key
    return head + payload

def read_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError
        b += c
    return b

def read_frame(s):
    b0, b1 = read_exact(s, 2)
    n = b1 & 127
    if n == 126:
        n = struct.unpack("!H", read_exact(s, 2))[0]
    key = read_exact(s, 4) if b1 & 0x80 else None
    data = read_exact(s, n)
    if key:
        data = bytes(b ^ key[i % 4] for i, b in enumerate(data))
    return b0 >> 7, b0 & 15, data

def read_head(s):
    b = b""
    while not b.endswith(b"\r\n\r\n"):
        b += read_exact(s, 1)
    return b

def options(i):
    return ("OPTIONS sip:proxy@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/WS df7jal23ls0d.invalid;"
            "branch=z9hG4bKws%d\r\nFrom: <sip:alice@example.com>;tag=ws%d\r\n"
            "To: <sip:proxy@127.0.0.1>\r\nCall-ID: ws%d@example.com\r\nCSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n" % (i, i, i)).encode()

def serve(ls):
    c, _ = ls.accept()
    read_head(c)
    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
              b"Sec-WebSocket-Protocol: sip\r\n\r\n")
    msg = b""
    while True:
        fin, op, data = read_frame(c)
        if op == 8:
            c.sendall(frame(b"\x03\xe8", opcode=8))
            return
        if op == 9:
            c.sendall(frame(data, opcode=10))
            continue
        if op in (0, 1, 2):
            msg += data
            if not fin:
                continue
            m, msg = msg, b""
            if m.strip() == b"":
                continue
            head = m.decode().split("\r\n")
            keep = [h + (";tag=srv" if h.startswith("To:") else "") for h in head[1:]
                    if h.split(":")[0] in ("Via", "From", "To", "Call-ID", "CSeq")]
            c.sendall(frame(("SIP/2.0 200 OK\r\n" + "\r\n".join(keep) +
                             "\r\nContent-Length: 0\r\n\r\n").encode()))

n = int(sys.argv[1])
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 18080))
ls.listen(1)
t = threading.Thread(target=serve, args=(ls,))
t.start()
s = socket.create_connection(("127.0.0.1", 18080))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.sendall(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:18080\r\nUpgrade: websocket\r\n"
          b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
          b"Sec-WebSocket-Protocol: sip\r\nSec-WebSocket-Version: 13\r\n\r\n")
read_head(s)
if len(sys.argv) > 3:
    open(sys.argv[2], "w").close()
    while not os.path.exists(sys.argv[3]):
        time.sleep(0.05)
for i in range(n):
    key = struct.pack("!I", 0x1234567 * (i + 1) & 0xffffffff)
    m = options(i)
    if i % 3 == 1:
        s.sendall(frame(m[:30], fin=False, key=key) + frame(b"hi", opcode=9, key=key) +
                  frame(m[30:], opcode=0, key=key))
        read_frame(s)  # the pong
    elif i % 3 == 2:
        s.sendall(frame(b"\r\n\r\n", key=key) + frame(m, key=key))
    else:
        s.sendall(frame(m, key=key))
    fin, op, data = read_frame(s)
    assert data.startswith(b"SIP/2.0 200 OK"), data
s.sendall(frame(b"\x03\xe8", opcode=8, key=b"abcd"))
read_frame(s)
t.join()
PY

ws="sipscope_sip_messages_total{transport=\"ws\",ip=\"4\"}"
e2e_start_sipscope --sip-ports 18080
check "the client and server talk" ip netns exec "$ns" timeout 20 python3 "$work/ws.py" 30
check "every OPTIONS" sample_becomes 'sip_requests_total{method="OPTIONS"}' 30
check "every 200" sample_becomes 'sip_responses_total{method="OPTIONS",code="200"}' 30
check "all 60 as WebSocket" sample_becomes "$ws" 60
check "nothing as plain TCP" sample_becomes 'sipscope_sip_messages_total{transport="tcp",ip="4"}' absent
check "no parse error" test -z "$(scrape /metrics | grep '^sipscope_parse_errors_total')"
e2e_stop_sipscope

# A connection already open when sipscope starts: picked up mid-way.
ip netns exec "$ns" timeout 30 python3 "$work/ws.py" 9 "$work/ready" "$work/go" &
client=$!
for _ in $(seq 100); do [ -e "$work/ready" ] && break; sleep 0.05; done
e2e_start_sipscope --sip-ports 18080
sleep 1 # the capture is attached before sipscope listens; a second more for safety
touch "$work/go"
check "the mid-way client and server talk" wait "$client"
check "mid-way: every OPTIONS" sample_becomes 'sip_requests_total{method="OPTIONS"}' 9
check "mid-way: every 200" sample_becomes 'sip_responses_total{method="OPTIONS",code="200"}' 9
check "mid-way: all 18 as WebSocket" sample_becomes "$ws" 18
check "mid-way: no parse error" test -z "$(scrape /metrics | grep '^sipscope_parse_errors_total')"
e2e_stop_sipscope
e2e_finish
