/* ws_frame: SIP over WebSocket (RFC 7118) on a reassembled TCP byte stream. A WebSocket
 * connection opens with an HTTP/1.1 upgrade (RFC 6455 §4): the client's GET with an Upgrade
 * header naming websocket, the server's 101 response. Each direction then carries frames
 * (§5.2), and each WebSocket message, text or binary, carries exactly one SIP message (RFC 7118
 * §5). This file recognises the handshake, cuts the frames, unmasks what clients send (every
 * client frame is masked, §5.3) and joins fragmented messages; it hands each message's bytes
 * on. It knows nothing of SIP but what a start line looks like, which it needs to find a frame
 * in a stream picked up mid-way. WebRTC clients reach a proxy this way: over TLS (wss) nothing
 * can be read, but where a load balancer ends the TLS, the plain leg behind it can.
 *
 * Rules:
 * - A stream is WebSocket (WS_FRAME_ON in chunk->flags) when, before it carried any SIP, it
 *   starts with the client's handshake (a "GET uri HTTP/1.1" request whose Upgrade header lists
 *   websocket) or the server's (a "HTTP/1.1 101" response). The handshake's bytes are skipped and
 *   counted nowhere. A GET that is not an upgrade is left to the SIP framer, which counts it as
 *   the non-SIP bytes it is.
 * - A stream picked up mid-way (TCP_STREAM_LOST, no handshake seen: a WebSocket connection
 *   lives as long as its client, hours) is WebSocket when its bytes start with a whole-message
 *   text or binary frame whose payload starts with a SIP start line.
 * - Control frames (close, ping, pong) are skipped. A fragmented message is handed on once all
 *   its fragments have arrived, joined. A message of line breaks only is a keep-alive, skipped.
 * - Reported (stage "reasm"), the stream going on:
 *     ws_compressed  a frame with a reserved bit set: RSV1 is permessage-deflate (RFC 7692),
 *                    which sipscope does not inflate; the frame is skipped
 *     ws_bad_frame   a reserved opcode, a continuation with no message begun, a new message
 *                    inside a fragmented one, or a control frame that is fragmented or longer
 *                    than 125 bytes; the frame is skipped by its length
 *     ws_oversized   a message longer than SIP_MAX_MSG bytes; skipped
 *   and, the stream resynchronising (TCP_STREAM_LOST set, as after a loss):
 *     ws_bad_frame   a 64-bit length with its top bit set (RFC 6455 forbids it)
 *     tcp_resync     (when a resynchronisation skipped bytes) as sip_frame.h says
 * - Resynchronising after a loss, each offer is taken whole or skipped whole: it is taken when
 *   it starts with a frame as above (a whole-message text or binary frame carrying a SIP start
 *   line), otherwise skipped. Segments mostly start with a frame: a segment lost or cut is
 *   followed by one that does.
 *
 * Memory: nothing is allocated. A frame from the server is handed on in place; a client's is
 * unmasked, and a fragmented message joined, into the caller's scratch buffer. */
#ifndef SIPSCOPE_WS_FRAME_H
#define SIPSCOPE_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "sip_frame.h"
#include "sip_parse.h"
#include "tcp_stream.h"

/* Bit of tcp_stream_chunk.flags: the stream carries WebSocket frames. Beside TCP_STREAM_LOST and
 * the SIP framer's bits (SIP_FRAME_SKIPPED and SIP_FRAME_REPORTED keep their meaning here). */
#define WS_FRAME_ON 0x10

/* The longest handshake waited for: a request or response head longer than this is not one. */
#define WS_FRAME_MAX_HANDSHAKE 8192

/* A WebSocket message's payload is at most this long to be handed on (one SIP message). */
#define WS_FRAME_MAX_MESSAGE SIP_MAX_MSG

struct ws_frame_ops {
    /* One message's bytes, unmasked and joined; valid during the call only. */
    void (*message)(void *ctx, const uint8_t *data, size_t len);
    /* A give-up or anomaly, always stage "reasm"; reason is a static string. */
    void (*error)(void *ctx, const char *reason);
};

enum ws_frame_start {
    WS_FRAME_NOT,      /* not WebSocket: frame the bytes as SIP */
    WS_FRAME_MORE,     /* a handshake or a frame not complete yet: offer again with more */
    WS_FRAME_ACCEPTED, /* WebSocket: WS_FRAME_ON is set, *skip bytes of handshake precede the
                        * frames */
};

/* Whether the stream whose next bytes chunk holds is starting (or found mid-way) as WebSocket.
 * For a stream without WS_FRAME_ON that has carried no SIP yet (SIP_FRAME_SIP_SEEN clear) or is
 * resynchronising (TCP_STREAM_LOST). Accepting a stream picked up mid-way clears
 * TCP_STREAM_LOST, reporting tcp_resync if bytes were skipped before. */
enum ws_frame_start ws_frame_detect(const struct ws_frame_ops *ops, void *ctx,
                                    struct tcp_stream_chunk *chunk, size_t *skip);

/* Frames as many messages as chunk holds (WS_FRAME_ON set), from its start, honouring and
 * updating chunk->flags. Returns the bytes used, in the sense of tcp_stream_deliver_fn: what is
 * left is an unfinished frame or fragmented message; a value above chunk->len skips the rest of
 * a frame that is not read. scratch holds WS_FRAME_MAX_MESSAGE bytes. */
uint64_t ws_frame_consume(const struct ws_frame_ops *ops, void *ctx, struct tcp_stream_chunk *chunk,
                          uint8_t *scratch);

#endif
