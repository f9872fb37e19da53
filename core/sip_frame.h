/* sip_frame: cuts a reassembled TCP byte stream into SIP messages (RFC 3261 §18.3: framing by
 * Content-Length, mandatory on streams). It skips CRLF keep-alives (RFC 5626 §3.5.1), and after
 * garbage or a loss it resynchronises on the next line that is a SIP start line. It parses
 * with sip_parse and hands each message on; it neither tracks nor counts metrics itself.
 *
 * Rules:
 * - Bytes "\r" and "\n" between messages are keep-alives: skipped, counted nowhere.
 * - A message that sip_parse rejects (missing or non-numeric Content-Length, missing mandatory
 *   header, bad start line...) is reported with sip_parse's reason (stage "sip"), once. When
 *   its length is known, it is skipped whole and the next message is expected right after it:
 *   its header block ended (an empty line) and its first Content-Length is a number, the block
 *   is at most 64 lines of text (no control byte but HT), no line after its first holds a start
 * line (bytes that begin no message, such as junk before one, are no header block), and header
 *   block and body make at most SIP_MAX_MSG bytes. Its body is then not read for start lines:
 *   a message/sipfrag or multipart body quoting SIP is no message of the stream, and a next
 *   message whose start line the framer would not recognise (SIP/7.0) is parsed and counted on
 *   its own. Until its header block ends, a rejected message waits for more bytes like an
 *   unfinished one, reported when the answer is known (left unfinished when the stream closes
 *   or idles out, it counts as tcp_closed_pending or tcp_idle_timeout, as any unfinished
 *   message does). Otherwise (the length unknown, e.g. without a Content-Length) the framer
 *   resynchronises from the line after its start.
 * - Resynchronising (after TCP_STREAM_LOST or a parse error), bytes are skipped up to the
 *   first line that is a request line (token SP Request-URI SP SIP/2.0) or a status line
 *   (SIP/2.0 SP 3 digits). When that line is found after skipped bytes (junk before a
 *   request, the rest of a message cut by a loss or picked up mid-way), "tcp_resync" (stage
 *   "reasm") is reported once, unless a reported parse error began the resynchronisation
 *   (one count per event). An unfinished last line is kept for the next bytes while it
 *   could still be a start line (printable ASCII, at most SIP_FRAME_MAX_LINE bytes).
 * - Quiet mode (offline without --sip-ports, where any TCP stream may be something else):
 *   until a stream has carried one SIP message, parse errors are not reported; the bytes they
 *   cover (a rejected message of known length whole) count as skipped, so junk before the
 *   first message is still reported as tcp_resync once a message follows. A rejected message
 *   whose header block has not ended in the bytes there is not waited for then (the stream
 *   may be any text protocol, its lines held up to SIP_MAX_MSG bytes): it is resynchronised
 *   line by line. A stream that never carries SIP reports nothing.
 * - A message whose header block is complete but which is longer than SIP_MAX_MSG with its
 *   body is handed on with the headers and the part of the body present (anomaly
 *   body_truncated masked), reported as "tcp_oversized_body" (stage "reasm"), and the rest of
 *   its body is skipped as it arrives: memory stays bounded, the message is still seen.
 *   RFC 3261 sets no upper bound on a TCP message; SIP_MAX_MSG is sipscope's. A body longer
 *   than SIP_FRAME_MAX_SKIP is not skipped: such a Content-Length is taken for garbage (one
 *   of 99999999 would hide the next 100 MB of the stream, every message in them lost without
 *   a count), and the framer resynchronises after the header block instead, its skip covered
 *   by the tcp_oversized_body report. */
#ifndef SIPSCOPE_SIP_FRAME_H
#define SIPSCOPE_SIP_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "sip_parse.h"
#include "tcp_stream.h"

#define SIP_FRAME_MAX_LINE 8192 /* longest unfinished line kept while resynchronising */
/* Longest body skipped past the end of what arrived (see the rules above): 1 MiB, sixteen
 * times SIP_MAX_MSG; SIP carries no bodies that size (a large MESSAGE or multipart is tens of
 * KiB; files go by MSRP or HTTP). */
#define SIP_FRAME_MAX_SKIP (1u << 20)

struct sip_frame_ops {
    /* One message; msg and its slices live during the call only. */
    void (*message)(void *ctx, const struct sip_msg *msg);
    /* A give-up or anomaly; sip is 1 for sip_parse reasons (stage "sip"), 0 for framing
     * reasons (stage "reasm"). reason is a static string. */
    void (*error)(void *ctx, int sip, const char *reason);
};

/* Bits of tcp_stream_chunk.flags used by the framer, beside TCP_STREAM_LOST. */
#define SIP_FRAME_SKIPPED 0x02  /* bytes skipped since the last resynchronisation began */
#define SIP_FRAME_SIP_SEEN 0x04 /* the stream has carried a SIP message */
#define SIP_FRAME_REPORTED 0x08 /* a parse error began this resynchronisation */

/* Frames as many messages as chunk holds, from its start, honouring and updating
 * chunk->flags and chunk->mark (how far an unfinished message was read: it is parsed again only
 * when the bytes that came since can change the answer). quiet: see quiet mode above. Returns the
 * bytes used, in the sense of tcp_stream_deliver_fn: what is left is an unfinished message or line;
 * a value above chunk->len skips the rest of an oversized body. hdrs[max_hdrs] is scratch storage
 * for the parser. */
uint64_t sip_frame_consume(const struct sip_frame_ops *ops, void *ctx,
                           struct tcp_stream_chunk *chunk, int quiet, struct sip_header *hdrs,
                           size_t max_hdrs);

/* Whether line[0..len) (without its line break) is a SIP request or status line. */
int sip_frame_is_start_line(const uint8_t *line, size_t len);

#endif
