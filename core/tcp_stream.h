/* tcp_stream: TCP stream reassembly for a passive observer. Each direction of a connection is a
 * half-stream keyed by (IP version, source, destination, ports); its bytes are handed in order,
 * exactly once, to a consumer callback (the SIP framer), which says how many it used. It does
 * not know SIP, does not check checksums and keeps no data the consumer has used.
 *
 * Sequence tracking: a SYN sets the sequence base; without one (a connection already open when
 * the capture began) the first segment with data sets it and the stream starts "resyncing", so
 * the consumer looks for a message start. Bytes seen again (TCP retransmissions) are dropped,
 * never handed over twice: they are not SIP retransmissions (METRICS.md). Segments past the
 * next expected byte wait, copied, in a per-stream out-of-order list. A hole that is never
 * filled (a segment the capture missed: its sender will not resend what its peer received) is
 * given up, and the stream resynchronises after it:
 *   - at once, up to the acknowledgement number, when the other direction acknowledges bytes
 *     in it (ACK set, the number past the stream head and not past the held bytes or FIN: the
 *     peer has them): by the segment that carries the ACK, before that segment's own bytes are
 *     handled, so a request held behind the hole reaches the consumer before its response; or,
 *     when that direction's last ACK came before the bytes past the hole, as they come;
 *   - when a segment comes more than hole_timeout after the first one held behind it (packet
 *     time), for captures that miss the ACKs too (one direction only);
 *   - when the list outgrows its cap;
 *   - at the idle timeout.
 * Bytes held out of order reach the consumer with the time their own segment was seen, or,
 * when the bytes before them were seen later (a hole a resend filled), with that later time:
 * so a message carries the time its receiver could first read it whole, never that of the
 * ACK, later segment or expiry that gave a hole up (a REGISTER released by its 200's ACK keeps
 * its registration delay). A message split across segments carries its last segment's time.
 * A keep-alive (one byte, or none, just before the next expected byte) is not data and is not
 * counted.
 * FIN ends a half-stream once every byte before it was delivered; an RST whose sequence number
 * is in the window of its sender's half-stream (RFC 5961: endpoints ignore any other, so a stale
 * or forged one must not hide the connection) ends both halves. Yet endpoints reset only at
 * the exact next sequence number (RFC 5961 §3.2): one elsewhere in the window, as a blind
 * attacker's forgery is one time in 256, they ignore. So when the RST's sender then sends data
 * past its head, the RST was not its own: both halves go on (the other one's data between
 * them is lost, counted as tcp_after_close). An
 * ended half-stream is remembered for a linger time so late resends are not taken for a new
 * connection. A SYN is a resend only with the opening SYN's own sequence number; any other SYN
 * starts a new connection on the half-stream, ended or open (a reconnect's initial sequence
 * number can fall anywhere, behind the old head too).
 *
 * Memory: nothing is allocated for a segment the consumer uses whole (the zero-copy path).
 * Only what it leaves (the start of a message continued in a later segment) and out-of-order
 * segments are copied, into per-stream buffers allocated on demand, freed when drained, within
 * per-stream caps and a total byte budget. When the table is full the least recently active
 * open stream that never carried a byte (a SYN flood's half-open connections) is evicted, else
 * the least recently active open one (counted in evictions); ended streams are reused first,
 * silently, as they hold nothing.
 *
 * Give-ups are reported to the error callback with one of these static reasons (the engine
 * counts them in sipscope_parse_errors_total{stage="reasm",reason}):
 *   tcp_retransmission   a segment carrying bytes already delivered (all or some): the old
 *                        bytes are dropped (an anomaly, nothing lost)
 *   tcp_gap              bytes lost to a hole given up (acknowledged by the peer, hole timeout,
 *                        out-of-order cap, idle timeout, sequence jump past the window, SYN of
 *                        a new connection over pending data, a segment cut at the snap
 *                        length): the stream resynchronises
 *   tcp_buffer_full      bytes the consumer left exceed the per-stream cap or the budget:
 *                        they are dropped and the stream resynchronises
 *   tcp_idle_timeout     a stream idle past the timeout with an unfinished message pending
 *                        (what was held behind its holes is delivered first)
 *   tcp_closed_pending   FIN or RST with bytes pending (a message cut by the close)
 *   tcp_after_close      new data on a half-stream that had ended (dropped)
 *   tcp_rst_ignored      an RST out of its sender's window: stale or forged, ignored; or one
 *                        in it, taken back when its sender sent data past it (above) */
#ifndef SIPSCOPE_TCP_STREAM_H
#define SIPSCOPE_TCP_STREAM_H

#include <stdint.h>

#include "decode.h"

struct tcp_stream_config {
    uint32_t max_streams;      /* half-streams at once (a connection uses two) */
    uint64_t max_bytes;        /* buffer bytes across all streams */
    uint32_t max_pending;      /* per stream: bytes the consumer may leave unused */
    uint32_t max_ooo_bytes;    /* per stream: out-of-order bytes held */
    uint32_t max_ooo_segments; /* per stream: out-of-order segments held */
    uint32_t window;           /* a sequence number further than this from the next expected
                                  byte, either way, is a jump: a gap, then resync */
    uint64_t idle_timeout_ns;  /* a stream without segments for this long is dropped */
    uint64_t hole_timeout_ns;  /* a hole older than this is given up at the next segment */
    uint64_t linger_ns;        /* an ended stream is remembered for this long */
};

/* Defaults: 100000 streams, 64 MiB, 65536 pending, 256 KiB and 64 segments out of order,
 * window 16 MiB, idle 300 s (longer than common keep-alive intervals: RFC 5626 suggests
 * 95-120 s for TCP), hole 3 s (a lost segment is resent after the retransmission timeout, 1 s
 * at first, RFC 6298; one the capture alone missed never is), linger 60 s (twice the usual
 * 30 s maximum segment lifetime). */
void tcp_stream_config_defaults(struct tcp_stream_config *cfg);

/* Set in tcp_stream_chunk.flags after bytes were lost (mid-stream start, hole given up,
 * buffer dropped), so that the consumer looks for a message start. */
#define TCP_STREAM_LOST 0x01

/* In-order bytes offered to the consumer. */
struct tcp_stream_chunk {
    const uint8_t *data; /* the stream's next bytes; valid during the call only */
    uint32_t len;
    /* In and out, kept per stream: tcp_stream sets TCP_STREAM_LOST (the consumer clears it
     * once it found a message start); the other bits are the consumer's own state. */
    uint8_t flags;
    /* In and out, the consumer's own note about the bytes it leaves unused, offered again with
     * them at the start of the next chunk (what it learnt of them, so as not to read them all
     * again). 0 in a chunk that does not start with bytes left before: tcp_stream clears it
     * whenever it drops them. */
    uint32_t mark;
};

/* Returns how many bytes of chunk the consumer used; the rest is kept and offered again,
 * followed by the next bytes. A value above chunk->len also discards that many further bytes
 * of the stream as they arrive (a message body too large to hold). The consumer uses as much
 * as it can: what it leaves must be an incomplete message. pkt is the segment being handled,
 * or, for bytes released by the other direction's ACK or by the idle timeout, a packet that
 * holds only the stream's IP version, addresses, ports and l4_proto (TCP): no payload,
 * interface or VLAN. Its ts_ns is the time of the chunk's last byte (above), which for bytes
 * held out of order may be earlier than the segment's. Valid during the call only. */
typedef uint64_t (*tcp_stream_deliver_fn)(void *ctx, const struct packet *pkt,
                                          struct tcp_stream_chunk *chunk);

/* Called for every give-up with a static reason (see above). */
typedef void (*tcp_stream_error_fn)(void *ctx, const char *reason);

struct tcp_stream_stats {
    uint32_t streams;   /* half-streams in the table, ended ones included */
    uint64_t bytes;     /* buffer bytes held */
    uint64_t evictions; /* open streams evicted because the table was full */
};

struct tcp_stream;

/* Creates an empty table. Returns NULL when memory is short or a limit is 0. */
struct tcp_stream *tcp_stream_new(const struct tcp_stream_config *cfg,
                                  tcp_stream_deliver_fn deliver, tcp_stream_error_fn err,
                                  void *ctx);

/* Frees everything held, delivering nothing. NULL is fine. */
void tcp_stream_free(struct tcp_stream *ts);

/* Handles one TCP segment as decode described it (DECODE_TCP: addresses, ports, tcp_seq,
 * tcp_ack, tcp_flags, payload, ts_ns). Due timeouts run first, then the holes of the other
 * direction that the segment acknowledges. In-order bytes reach the consumer before this
 * returns; the payload is copied if anything of it must be kept. */
void tcp_stream_segment(struct tcp_stream *ts, const struct packet *pkt);

/* Drops every stream idle past its deadline. The bytes held behind its holes are delivered
 * first (each hole counted as tcp_gap), so the consumer may be called, with the times those
 * bytes were seen; an unfinished message it leaves is lost (tcp_idle_timeout). */
void tcp_stream_expire(struct tcp_stream *ts, uint64_t now_ns);

/* The earliest stream deadline, UINT64_MAX when none. */
uint64_t tcp_stream_next_deadline(const struct tcp_stream *ts);

void tcp_stream_get_stats(const struct tcp_stream *ts, struct tcp_stream_stats *out);

#endif
