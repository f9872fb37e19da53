/* ws_frame: SIP over WebSocket (RFC 7118) on a reassembled TCP byte stream. A WebSocket
 * connection opens with an HTTP/1.1 upgrade (RFC 6455 §4): the client's GET with an Upgrade
 * header naming websocket, the server's 101 response. Each direction then carries frames
 * (§5.2), and each WebSocket message, text or binary, carries exactly one SIP message (RFC 7118
 * §5). This file recognises the handshake, cuts the frames, unmasks masked ones (every client
 * frame is, §5.3) and joins fragmented messages; it hands each message's bytes on. It knows
 * nothing of SIP but what a start line looks like, which it needs to find a frame in a stream
 * picked up mid-way. WebRTC clients reach a proxy this way: over TLS (wss) nothing can be read,
 * but where a load balancer ends the TLS, the plain leg behind it can.
 *
 * Rules:
 * - A stream that has carried no SIP is WebSocket (WS_FRAME_ON in chunk->flags) when it starts
 *   with a SIP WebSocket handshake: the client's (a "GET uri HTTP/1.1" request whose Upgrade
 *   header lists websocket and whose Sec-WebSocket-Protocol lists sip) or the server's (a
 *   "HTTP/1.1 101" response whose Sec-WebSocket-Protocol lists sip; RFC 7118 §4 makes "sip"
 *   the subprotocol). The handshake's bytes are skipped and counted nowhere; so is a handshake
 *   sent again on the stream (a client retrying after a 401: the 401 itself, in the other
 *   direction, reaches the SIP framer). Anything else is left to the SIP framer, which counts
 *   HTTP that is not such an upgrade as the non-SIP bytes it is.
 * - A stream that lost its place (TCP_STREAM_LOST: picked up mid-way, or after bytes the SIP
 *   framer could not read) and has carried no SIP is WebSocket from the first frame found in
 *   its bytes that starts a message, text or binary, whose payload starts with a SIP start line,
 *   and after which comes nothing or a frame (a WebSocket connection lives as long as its
 *   client, hours: most are picked up this way after a restart). The bytes before that frame
 *   are skipped (tcp_resync). While such a frame is not whole yet, and its first line is there
 *   or begins like one, they wait with it, since they may be the end of a frame whose header
 *   was missed, which the SIP framer would take for SIP over TCP; when that would hold more
 *   than tcp_stream keeps, they are skipped and the frame waits alone (the engine decides, as
 *   it knows the limit). Less than that is not waited for: segments of SIP over TCP often end
 *   in bytes that look like the start of a frame. A stream that has carried SIP over TCP is
 *   never taken for WebSocket: a binary body can hold anything.
 * - Control frames (close, ping, pong) are skipped. A fragmented message is handed on once all
 *   its fragments have arrived, joined. A message of line breaks only is a keep-alive, skipped.
 * - Reported (stage "reasm"), the stream going on:
 *     ws_compressed  a message's first frame with a reserved bit set: RSV1 is permessage-deflate
 *                    (RFC 7692), which sipscope does not inflate; the message is skipped, all
 *                    its frames, by their lengths
 *     ws_oversized   a message longer than WS_FRAME_MAX_MESSAGE bytes, or whose frames span
 *                    more than WS_FRAME_MAX_SPAN: skipped the same way
 *     ws_bad_frame   a new message that begins among a fragmented one's frames: the fragments
 *                    before it are dropped (if the new one breaks the protocol, below, its
 *                    report covers both)
 *   and, the stream resynchronising (TCP_STREAM_LOST set, as after a loss), since a frame that
 *   breaks the protocol does not have a length to trust:
 *     ws_bad_frame   a reserved opcode, a continuation with no message begun, or with a
 *                    reserved bit in a message being read, a control frame that is fragmented
 *                    or longer than 125 bytes, a 64-bit length with its top bit set (the
 *                    message it interrupted goes with it)
 *     tcp_resync     (when a resynchronisation skipped bytes, and no report began it) as
 *                    sip_frame.h says
 * - Resynchronising, the frame to go on from is found as for a stream picked up mid-way; the
 *   bytes before it are skipped.
 *
 * Memory: nothing is allocated. A message in one unmasked frame is handed on in place; a masked
 * one is unmasked, and a fragmented one joined, into the caller's scratch buffer. A frame, or
 * a fragmented message's frames, must fit whole in what tcp_stream keeps for an unfinished
 * message (65,536 bytes): hence the limits below. */
#ifndef SIPSCOPE_WS_FRAME_H
#define SIPSCOPE_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "sip_frame.h"
#include "sip_parse.h"
#include "tcp_stream.h"

/* Bits of tcp_stream_chunk.flags, beside TCP_STREAM_LOST and the SIP framer's (whose
 * SIP_FRAME_SKIPPED and SIP_FRAME_REPORTED keep their meaning here). */
#define WS_FRAME_ON 0x10 /* the stream carries WebSocket frames */
#define WS_FRAME_DROPPING                                                                          \
    0x20 /* the rest of a message being skipped: its continuations go                              \
          * without a report until its final one */

/* The longest handshake waited for: a request or response head longer than this is not one. */
#define WS_FRAME_MAX_HANDSHAKE 32768

#define WS_FRAME_MAX_HEAD 14 /* a frame header: 2 bytes, a 64-bit length, a masking key */
/* The bytes a message's frames may span (headers, and control frames between fragments,
 * included), so that they and the header of a frame still coming fit the 65,536 bytes
 * tcp_stream keeps (SIP_MAX_MSG + 1, its default max_pending); and the longest message handed
 * on: one frame whole in that span. */
#define WS_FRAME_MAX_SPAN (SIP_MAX_MSG + 1 - WS_FRAME_MAX_HEAD)
#define WS_FRAME_MAX_MESSAGE (WS_FRAME_MAX_SPAN - WS_FRAME_MAX_HEAD)

struct ws_frame_ops {
    /* One message's bytes, unmasked and joined; valid during the call only. */
    void (*message)(void *ctx, const uint8_t *data, size_t len);
    /* A give-up or anomaly, always stage "reasm"; reason is a static string. */
    void (*error)(void *ctx, const char *reason);
};

enum ws_frame_start {
    WS_FRAME_NOT,      /* not WebSocket: frame the bytes as SIP */
    WS_FRAME_MORE,     /* a handshake or a frame not complete yet: offer again with more;
                        * *skip bytes come before the frame (to skip, if they cannot wait) */
    WS_FRAME_ACCEPTED, /* WebSocket: WS_FRAME_ON is set, *skip bytes (a handshake, or what
                        * came before the frame found mid-way) precede the frames */
};

/* Whether the stream whose next bytes chunk holds is starting (or found mid-way) as WebSocket.
 * For a stream without WS_FRAME_ON that has carried no SIP (SIP_FRAME_SIP_SEEN clear).
 * Accepting a stream picked up mid-way clears TCP_STREAM_LOST, reporting tcp_resync if bytes
 * were skipped, now or by the SIP framer before. */
enum ws_frame_start ws_frame_detect(const struct ws_frame_ops *ops, void *ctx,
                                    struct tcp_stream_chunk *chunk, size_t *skip);

/* Frames as many messages as chunk holds (WS_FRAME_ON set), from its start, honouring and
 * updating chunk->flags. Returns the bytes used, in the sense of tcp_stream_deliver_fn: what is
 * left is an unfinished frame or fragmented message; a value above chunk->len skips the rest of
 * a frame that is not read. scratch holds WS_FRAME_MAX_MESSAGE bytes. */
uint64_t ws_frame_consume(const struct ws_frame_ops *ops, void *ctx, struct tcp_stream_chunk *chunk,
                          uint8_t *scratch);

#endif
