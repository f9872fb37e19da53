#include "tcp_stream.h"

#include <netinet/in.h>

#include "test.h"

#define S (1000000000ULL)

/* The test consumer frames lines: it uses every complete "...\n" line and logs it as "line|".
 * When handed a chunk with TCP_STREAM_LOST set it logs "~", drops everything up to and including
 * the first '\n' (the rest of a cut line) and clears the flag. A line "skipN" (N one digit) also
 * discards the next N bytes of the stream. Each offer is logged as "<" when the chunk points
 * into the segment's own payload (zero-copy) and "(" when it points elsewhere (a copy). */
static char log_[4096];
static char reasons[1024];
static const struct packet *cur;
/* Per offer, the direction its packet names ('c': 10.0.0.1:40000 -> 10.0.0.2:5060, 's': the
 * reverse) and its time: bytes released while another segment is handled, or at expiry, must
 * still be their own direction's. */
static char froms[64];
static uint64_t offer_ts[64];

static void logs(const char *s, size_t n)
{
    size_t at = strlen(log_);
    if (at + n < sizeof log_) {
        memcpy(log_ + at, s, n);
        log_[at + n] = 0;
    }
}

/* When set, each offer logs the mark it came with as "{N}", and the consumer leaves mark 7. */
static int show_mark;

static uint64_t consume(void *ctx, const struct packet *pkt, struct tcp_stream_chunk *c)
{
    uint32_t used = 0;
    uint64_t skip = 0;
    size_t n = strlen(froms);
    (void)ctx;
    if (show_mark) {
        char b[16];
        snprintf(b, sizeof b, "{%u}", c->mark);
        logs(b, strlen(b));
        c->mark = 7;
    }
    if (n + 1 < sizeof froms) {
        int client =
            pkt->sport == 40000 && pkt->dport == 5060 && pkt->src[3] == 1 && pkt->dst[3] == 2;
        int server =
            pkt->sport == 5060 && pkt->dport == 40000 && pkt->src[3] == 2 && pkt->dst[3] == 1;
        froms[n] = client ? 'c' : server ? 's' : '?';
        froms[n + 1] = 0;
        offer_ts[n] = pkt->ts_ns;
    }
    logs(c->data >= pkt->payload && c->data < pkt->payload + pkt->payload_len ? "<" : "(", 1);
    if (c->flags & TCP_STREAM_LOST) {
        const uint8_t *nl = memchr(c->data, '\n', c->len);
        logs("~", 1);
        if (!nl)
            return c->len;
        used = (uint32_t)(nl - c->data) + 1;
        c->flags = 0;
    }
    for (;;) {
        const uint8_t *p = c->data + used;
        const uint8_t *nl = memchr(p, '\n', c->len - used);
        if (!nl)
            break;
        logs((const char *)p, (size_t)(nl - p));
        logs("|", 1);
        if (nl - p == 5 && memcmp(p, "skip", 4) == 0)
            skip += (uint64_t)(p[4] - '0');
        used += (uint32_t)(nl - p) + 1;
    }
    return used + skip;
}

static void on_err(void *ctx, const char *reason)
{
    (void)ctx;
    if (reasons[0])
        strcat(reasons, ",");
    strcat(reasons, reason);
}

static struct tcp_stream_config cfg;

static struct tcp_stream *make(void)
{
    log_[0] = 0;
    reasons[0] = 0;
    froms[0] = 0;
    return tcp_stream_new(&cfg, consume, on_err, NULL);
}

static void defaults(void)
{
    tcp_stream_config_defaults(&cfg);
}

/* Client 10.0.0.1:40000 -> server 10.0.0.2:5060 (dir 0), or the reverse (dir 1). */
static struct packet seg(int dir, uint32_t seq, uint8_t flags, const char *data, uint64_t ts)
{
    struct packet p;
    memset(&p, 0, sizeof p);
    p.ts_ns = ts;
    p.ip_version = 4;
    p.l4_proto = IPPROTO_TCP;
    p.src[0] = 10;
    p.src[3] = (uint8_t)(1 + dir);
    p.dst[0] = 10;
    p.dst[3] = (uint8_t)(2 - dir);
    p.sport = dir ? 5060 : 40000;
    p.dport = dir ? 40000 : 5060;
    p.tcp_seq = seq;
    p.tcp_flags = flags;
    p.payload = (const uint8_t *)data;
    p.payload_len = data ? (uint32_t)strlen(data) : 0;
    return p;
}

/* p acknowledging ack (its ACK flag is the caller's). */
static struct packet acking(struct packet p, uint32_t ack)
{
    p.tcp_ack = ack;
    return p;
}

static void send_(struct tcp_stream *ts, struct packet p)
{
    cur = &p;
    tcp_stream_segment(ts, &p);
}

static struct tcp_stream_stats stats(struct tcp_stream *ts)
{
    struct tcp_stream_stats st;
    tcp_stream_get_stats(ts, &st);
    return st;
}

#define SYN DECODE_TCP_SYN
#define FIN DECODE_TCP_FIN
#define RST DECODE_TCP_RST
#define ACK DECODE_TCP_ACK

TEST(whole_lines_in_order_are_read_in_place)
{
    defaults();
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 99, SYN, NULL, 0));
    send_(ts, seg(0, 100, ACK, "a\nbb\n", 1));
    send_(ts, seg(0, 105, ACK, "ccc\n", 2));
    CHECK_STR(log_, "<a|bb|<ccc|");
    CHECK_INT(stats(ts).bytes, 0);
    CHECK_INT(stats(ts).streams, 1);
    CHECK_STR(reasons, "");
    tcp_stream_free(ts);
}

TEST(a_line_split_across_segments_is_buffered_then_freed)
{
    defaults();
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 99, SYN, NULL, 0));
    send_(ts, seg(0, 100, ACK, "x\nhe", 1));
    CHECK_INT(stats(ts).bytes, 2048);
    send_(ts, seg(0, 104, ACK, "l", 2));
    send_(ts, seg(0, 105, ACK, "lo\ny\n", 3));
    CHECK_STR(log_, "<x|((hello|y|");
    CHECK_INT(stats(ts).bytes, 0);
    CHECK_STR(reasons, "");
    tcp_stream_free(ts);
}

TEST(out_of_order_segments_are_delivered_in_sequence_order)
{
    defaults();
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 99, SYN, NULL, 0));
    send_(ts, seg(0, 106, ACK, "third\n", 1));
    send_(ts, seg(0, 103, ACK, "two", 2));
    CHECK_STR(log_, "");
    CHECK_INT(stats(ts).bytes, (24 + 6) + (24 + 3)); /* two copies, 24-byte headers */
    send_(ts, seg(0, 100, ACK, "one", 3));
    CHECK_STR(log_, "<((onetwothird|");
    CHECK_INT(stats(ts).bytes, 0);
    CHECK_STR(reasons, "");
    tcp_stream_free(ts);
}

TEST(resent_bytes_are_dropped_and_counted)
{
    defaults();
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 99, SYN, NULL, 0));
    send_(ts, seg(0, 100, ACK, "a\n", 1));
    send_(ts, seg(0, 100, ACK, "a\n", 2));    /* whole resend */
    send_(ts, seg(0, 100, ACK, "a\nb\n", 3)); /* resend plus new bytes */
    CHECK_STR(log_, "<a|<b|");
    CHECK_STR(reasons, "tcp_retransmission,tcp_retransmission");
    tcp_stream_free(ts);
}

TEST(resent_out_of_order_bytes_are_held_once)
{
    defaults();
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 99, SYN, NULL, 0));
    send_(ts, seg(0, 104, ACK, "cd\n", 1));
    send_(ts, seg(0, 104, ACK, "cd\n", 2));
    send_(ts, seg(0, 102, ACK, "bbcd\ne\n", 3)); /* around and past the held bytes */
    send_(ts, seg(0, 100, ACK, "aa", 4));
    CHECK_STR(log_, "<((aabbcd|(e|");
    CHECK_STR(reasons, "tcp_retransmission,tcp_retransmission");
    tcp_stream_free(ts);
}

TEST(a_stream_picked_up_mid_way_starts_resyncing)
{
    defaults();
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 5000, ACK, NULL, 0)); /* a bare ACK creates nothing */
    CHECK_INT(stats(ts).streams, 0);
    send_(ts, seg(0, 5000, ACK, "tail\nnext\n", 1));
    CHECK_STR(log_, "<~next|");
    CHECK_INT(stats(ts).streams, 1);
    tcp_stream_free(ts);
}

TEST(syn_sets_the_base_and_fin_ends_the_half_stream)
{
    defaults();
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 99, SYN, NULL, 0));
    send_(ts, seg(1, 499, SYN | ACK, NULL, 0));
    send_(ts, seg(0, 100, ACK | FIN, "bye\n", 1 * S));
    send_(ts, seg(1, 500, ACK, "ok\n", 1 * S));
    CHECK_STR(log_, "<bye|<ok|");
    send_(ts, seg(0, 100, ACK | FIN, "bye\n", 2 * S)); /* resent after the close */
    send_(ts, seg(0, 105, ACK, "late\n", 2 * S));      /* data past the FIN */
    CHECK_STR(log_, "<bye|<ok|");
    CHECK_STR(reasons, "tcp_retransmission,tcp_after_close");
    CHECK_INT(stats(ts).streams, 2);
    /* The ended half lingers 60 s; the open one idles out after 300 s. */
    CHECK_INT(tcp_stream_next_deadline(ts), 61 * S);
    tcp_stream_expire(ts, 61 * S);
    CHECK_INT(stats(ts).streams, 1);
    tcp_stream_expire(ts, 301 * S);
    CHECK_INT(stats(ts).streams, 0);
    CHECK_STR(reasons, "tcp_retransmission,tcp_after_close");
    tcp_stream_free(ts);
}

TEST(fin_waits_for_the_bytes_before_it)
{
    defaults();
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 99, SYN, NULL, 0));
    send_(ts, seg(0, 102, ACK | FIN, "b\n", 1));
    send_(ts, seg(0, 100, ACK, "a\n", 2));
    CHECK_STR(log_, "<a|(b|");
    send_(ts, seg(0, 104, ACK, "c\n", 3));
    CHECK_STR(reasons, "tcp_after_close");
    tcp_stream_free(ts);
}

TEST(close_with_a_partial_line_counts_it)
{
    defaults();
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 99, SYN, NULL, 0));
    send_(ts, seg(0, 100, ACK | FIN, "cut", 1));
    CHECK_STR(reasons, "tcp_closed_pending");
    CHECK_INT(stats(ts).bytes, 0);
    tcp_stream_free(ts);
}

TEST(rst_ends_both_halves)
{
    defaults();
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 99, SYN, NULL, 0));
    send_(ts, seg(1, 499, SYN | ACK, NULL, 0));
    send_(ts, seg(1, 500, ACK, "part", 1));
    send_(ts, seg(0, 100, RST, NULL, 2));
    CHECK_STR(reasons, "tcp_closed_pending");
    send_(ts, seg(1, 504, ACK, "ial\n", 3));
    CHECK_STR(reasons, "tcp_closed_pending,tcp_after_close");
    CHECK_STR(log_, "<");
    tcp_stream_free(ts);
}

TEST(new_syn_on_the_same_ports_starts_a_new_stream)
{
    defaults();
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 99, SYN, NULL, 0));
    send_(ts, seg(0, 100, ACK, "half", 1));
    send_(ts, seg(0, 99, SYN, NULL, 2)); /* a resent SYN changes nothing */
    CHECK_STR(reasons, "");
    send_(ts, seg(0, 7000, SYN, NULL, 3));
    send_(ts, seg(0, 7001, ACK, "new\n", 4));
    CHECK_STR(reasons, "tcp_gap");
    CHECK_STR(log_, "<<new|");
    tcp_stream_free(ts);
}

/* A reconnect whose initial sequence number is a little behind the old stream's head (Linux
 * picks them by time and hash: 1 in 256 or so falls within a 16 MiB window) is a new stream,
 * closed or not; only the opening SYN's own number is a resend. */
TEST(a_reconnect_with_an_earlier_sequence_number_is_a_new_stream)
{
    defaults();
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 999999, SYN, NULL, 0));
    send_(ts, seg(0, 1000000, ACK | FIN, "one\n", 1));
    send_(ts, seg(0, 5000, SYN, NULL, 2)); /* the old half ended: 995,000 behind its head */
    send_(ts, seg(0, 5001, ACK, "two\n", 3));
    send_(ts, seg(0, 5000, SYN, NULL, 4)); /* resent: changes nothing */
    send_(ts, seg(0, 5005, ACK, "three\n", 5));
    CHECK_STR(log_, "<one|<two|<three|");
    CHECK_STR(reasons, "");
    /* The same while the old half is still open: its bytes pending are lost, counted. */
    send_(ts, seg(0, 5011, ACK, "cut", 6));
    send_(ts, seg(0, 10, SYN, NULL, 7));
    send_(ts, seg(0, 11, ACK, "four\n", 8));
    CHECK_STR(log_, "<one|<two|<three|<<four|");
    CHECK_STR(reasons, "tcp_gap");
    tcp_stream_free(ts);
}

/* A stream picked up mid-way has seen no SYN: a SYN then opens a new connection. */
TEST(a_syn_after_a_mid_stream_pickup_opens_a_new_stream)
{
    defaults();
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 700, ACK, "tail\nfirst\n", 0));
    send_(ts, seg(0, 600, SYN, NULL, 1));
    send_(ts, seg(0, 601, ACK, "again\n", 2));
    CHECK_STR(log_, "<~first|<again|");
    CHECK_STR(reasons, "");
    tcp_stream_free(ts);
}

/* When the out-of-order list is full, the segment that comes is kept if it starts before the
 * first held one: only the hole before it is lost. */
TEST(a_full_out_of_order_list_keeps_a_segment_inside_the_hole)
{
    defaults();
    cfg.max_ooo_segments = 2;
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 99, SYN, NULL, 0));
    /* bytes 100..102 never come */
    send_(ts, seg(0, 110, ACK, "c\n", 1));
    send_(ts, seg(0, 112, ACK, "d\n", 2));
    send_(ts, seg(0, 103, ACK, "x\nb\n", 3)); /* 103..106, then 107..109 missing too */
    send_(ts, seg(0, 107, ACK, "ee\n", 4));    /* fills 107..109 */
    CHECK_STR(reasons, "tcp_gap");
    CHECK_STR(log_, "<~b|<ee|(c|(d|");
    CHECK_INT(stats(ts).bytes, 0);
    tcp_stream_free(ts);
}

/* A segment cut at the snap length: what was captured is used, the bytes cut off are a gap
 * at once (the next segment is not held behind them), and a FIN after them still closes. */
TEST(a_segment_cut_at_the_snap_length_is_a_gap_at_once)
{
    defaults();
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 99, SYN, NULL, 0));
    struct packet p = seg(0, 100, ACK, "one\ntw", 1); /* "one\ntwo\nth" on the wire */
    p.payload_wire_len = 11;
    send_(ts, p);
    CHECK_STR(log_, "<one|");
    CHECK_STR(reasons, "tcp_gap");
    send_(ts, seg(0, 111, ACK, "ree\nfour\n", 2));
    CHECK_STR(log_, "<one|<~four|");
    p = seg(0, 120, ACK | FIN, NULL, 3); /* only headers captured: 5 bytes cut, then the FIN */
    p.payload_wire_len = 5;
    send_(ts, p);
    send_(ts, seg(0, 125, ACK, "late\n", 4));
    CHECK_STR(reasons, "tcp_gap,tcp_gap,tcp_after_close");
    CHECK_INT(stats(ts).bytes, 0);
    tcp_stream_free(ts);
}

/* A cut segment whose captured end is already the head (a resend coalescing old bytes with
 * new ones, cut) is a gap too; one held out of order with a FIN keeps the old course and still
 * closes once the hole before it is filled; bytes cut inside what the consumer asked to skip
 * are no loss. */
TEST(cut_segments_resent_held_or_skipped)
{
    defaults();
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 99, SYN, NULL, 0));
    send_(ts, seg(0, 100, ACK, "a\n", 1));
    struct packet p = seg(0, 100, ACK, "a\n", 2); /* "a\nb\n" on the wire */
    p.payload_wire_len = 4;
    send_(ts, p);
    send_(ts, seg(0, 104, ACK, "\nc\n", 3)); /* the cut line's end, then a whole line */
    CHECK_STR(log_, "<a|<~c|");
    CHECK_STR(reasons, "tcp_retransmission,tcp_gap");

    log_[0] = reasons[0] = 0;
    p = seg(0, 110, ACK | FIN, "e\n", 4); /* out of order, 4 bytes cut, then the FIN */
    p.payload_wire_len = 6;
    send_(ts, p);
    send_(ts, seg(0, 107, ACK, "dd\n", 5)); /* 107..109: the hole */
    CHECK_STR(log_, "<dd|(e|");
    send_(ts, seg(0, 112, ACK, "late\n", 6));
    CHECK_STR(reasons, "tcp_after_close");
    tcp_stream_free(ts);

    ts = make();
    send_(ts, seg(1, 499, SYN, NULL, 0));
    send_(ts, seg(1, 500, ACK, "skip5\n", 1)); /* the next 5 bytes are to be discarded */
    p = seg(1, 506, ACK, "xy", 2);                /* 5 on the wire: 3 cut, all skipped */
    p.payload_wire_len = 5;
    send_(ts, p);
    send_(ts, seg(1, 511, ACK, "ok\n", 3));
    CHECK_STR(log_, "<skip5|<ok|");
    CHECK_STR(reasons, "");
    tcp_stream_free(ts);
}

TEST(a_hole_is_given_up_when_too_much_waits_behind_it)
{
    defaults();
    cfg.max_ooo_segments = 2;
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 99, SYN, NULL, 0));
    send_(ts, seg(0, 100, ACK, "lost", 1));
    /* bytes 104..109 never come */
    send_(ts, seg(0, 110, ACK, "x\ny", 2));
    send_(ts, seg(0, 113, ACK, "\nz", 3));
    CHECK_STR(reasons, "");
    send_(ts, seg(0, 115, ACK, "\n", 4));
    CHECK_STR(reasons, "tcp_gap");
    CHECK_STR(log_, "<(~(y|(z|");
    CHECK_INT(stats(ts).bytes, 0);
    tcp_stream_free(ts);
}

/* A segment the capture missed is never sent again (its receiver has it): on a quiet stream
 * (an OPTIONS ping every 10 s) the hole held everything behind it until the out-of-order cap
 * or the idle timeout, hours. It is given up at the first segment more than hole_timeout
 * (3 s) after the first one held behind it. */
TEST(a_hole_is_given_up_at_the_first_segment_past_the_hole_timeout)
{
    defaults();
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 99, SYN, NULL, 0));
    send_(ts, seg(0, 100, ACK, "a\n", 1 * S));
    /* "b\n" at 102 is missed */
    send_(ts, seg(0, 104, ACK, "junk c\n", 10 * S));
    send_(ts, seg(0, 111, ACK, "d\n", 12 * S)); /* 2 s after "c": still waiting */
    CHECK_STR(reasons, "");
    send_(ts, seg(0, 111, ACK, "d\n", 5 * S)); /* earlier (a merged capture): still waiting */
    CHECK_STR(reasons, "tcp_retransmission");
    CHECK_STR(log_, "<a|");
    send_(ts, seg(0, 113, ACK, "e\n", 20 * S)); /* 10 s after: given up */
    CHECK_STR(reasons, "tcp_retransmission,tcp_gap");
    CHECK_STR(log_, "<a|(~(d|<e|");
    CHECK_INT(stats(ts).bytes, 0);
    /* A later hole is timed from its own first held segment. */
    send_(ts, seg(0, 118, ACK, "g\n", 21 * S)); /* "f\n" at 115..117 missed */
    send_(ts, seg(0, 121, ACK, "h\n", 23 * S));
    CHECK_STR(reasons, "tcp_retransmission,tcp_gap");
    send_(ts, seg(0, 124, ACK, "i\n", 24 * S));
    CHECK_STR(reasons, "tcp_retransmission,tcp_gap,tcp_gap");
    tcp_stream_free(ts);
}

/* Endpoints ignore an RST outside their window (RFC 5961): a stale or forged one. It used to
 * end both halves for the linger time, hiding the connection. */
TEST(an_rst_out_of_its_senders_window_is_ignored)
{
    defaults();
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 99, SYN, NULL, 0));
    send_(ts, seg(1, 499, SYN | ACK, NULL, 0));
    send_(ts, seg(0, 100, ACK, "a\n", 1));
    send_(ts, seg(0, 0x12345678, RST, NULL, 2));
    send_(ts, seg(0, 102 - 70000, RST, NULL, 3)); /* too far behind */
    CHECK_STR(reasons, "tcp_rst_ignored,tcp_rst_ignored");
    send_(ts, seg(0, 102, ACK, "b\n", 4));
    send_(ts, seg(1, 500, ACK, "x\n", 5));
    CHECK_STR(log_, "<a|<b|<x|");
    /* One ahead of the next byte (a segment the capture missed) is in the window. */
    send_(ts, seg(0, 104 + 1000, RST, NULL, 6));
    send_(ts, seg(1, 502, ACK, "y\n", 7));
    CHECK_STR(reasons, "tcp_rst_ignored,tcp_rst_ignored,tcp_after_close");
    tcp_stream_free(ts);
}

/* A blind attacker's RST falls in the window one time in 256 (16 MiB of 4 GiB) and ends both
 * halves; the endpoints, which reset only at the exact next byte (RFC 5961 §3.2), ignore it and
 * go on. Everything after it was dropped as tcp_after_close for the linger time (60 s) and the
 * connection's SIP lost. Data past the head from the RST's own sender takes it back. */
TEST(an_rst_whose_sender_then_sends_data_is_taken_back)
{
    defaults();
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 99, SYN, NULL, 0));
    send_(ts, seg(1, 499, SYN | ACK, NULL, 0));
    send_(ts, seg(0, 100, ACK, "a\n", 1));
    send_(ts, seg(1, 500, ACK, "x\npart", 2));
    send_(ts, seg(0, 102 + 1000000, RST, NULL, 3)); /* forged: in the window, not exact */
    CHECK_STR(reasons, "tcp_closed_pending");
    send_(ts, seg(1, 507, ACK, "ial\n", 4)); /* the peer first: lost, as after any RST */
    CHECK_STR(reasons, "tcp_closed_pending,tcp_after_close");
    send_(ts, seg(0, 100, ACK, "a\n", 5)); /* a resend takes nothing back */
    CHECK_STR(reasons, "tcp_closed_pending,tcp_after_close,tcp_retransmission");
    /* The RST's sender goes on (it never sent it), acknowledging what the peer sent. */
    send_(ts, acking(seg(0, 102, ACK, "b\n", 6), 511));
    CHECK_STR(reasons, "tcp_closed_pending,tcp_after_close,tcp_retransmission,tcp_rst_ignored");
    /* The peer's next segment comes after the hole its lost one left, which the ACK gave up. */
    send_(ts, seg(1, 511, ACK, "y\nz\n", 7));
    CHECK_STR(reasons,
              "tcp_closed_pending,tcp_after_close,tcp_retransmission,tcp_rst_ignored,tcp_gap");
    send_(ts, seg(0, 104, ACK | FIN, "c\n", 8));
    CHECK_STR(log_, "<a|<x|<b|(~z|<c|");
    CHECK_INT(stats(ts).streams, 2);
    tcp_stream_free(ts);
}

/* A keep-alive (no byte or one, just before the next expected one: RFC 9293 §3.8.4, the one
 * byte Windows sends) is neither data nor a resend. */
TEST(keep_alives_are_not_counted)
{
    defaults();
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 99, SYN, NULL, 0));
    send_(ts, seg(0, 100, ACK, "a\n", 1));
    send_(ts, seg(0, 101, ACK, "\n", 2));
    send_(ts, seg(0, 101, ACK, NULL, 3));
    send_(ts, seg(0, 102, ACK, "b\n", 4));
    CHECK_STR(reasons, "");
    CHECK_STR(log_, "<a|<b|");
    send_(ts, seg(0, 102, ACK, "b\n", 5)); /* two bytes: a resend */
    CHECK_STR(reasons, "tcp_retransmission");
    tcp_stream_free(ts);
}

TEST(a_segment_larger_than_the_out_of_order_cap_jumps_the_hole)
{
    defaults();
    cfg.max_ooo_bytes = 4;
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 99, SYN, NULL, 0));
    send_(ts, seg(0, 110, ACK, "junk\nok\n", 1));
    CHECK_STR(reasons, "tcp_gap");
    CHECK_STR(log_, "<~ok|");
    tcp_stream_free(ts);
}

TEST(a_sequence_number_past_the_window_is_a_jump)
{
    defaults();
    cfg.window = 1000;
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 99, SYN, NULL, 0));
    send_(ts, seg(0, 100, ACK, "a\n", 1));
    send_(ts, seg(0, 5000, ACK, "b\nc\n", 2));
    CHECK_STR(reasons, "tcp_gap");
    CHECK_STR(log_, "<a|<~c|");
    tcp_stream_free(ts);
}

/* The consumer's mark comes back with the bytes it left, and only with them: not with a chunk
 * that starts afresh (nothing was left, or what was left was lost to a gap). */
TEST(the_consumers_mark_comes_back_with_the_bytes_it_left)
{
    defaults();
    cfg.window = 1000;
    show_mark = 1;
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 99, SYN, NULL, 0));
    send_(ts, seg(0, 100, ACK, "ab", 1));   /* left whole, mark 7 */
    send_(ts, seg(0, 102, ACK, "c", 2));    /* "abc" again, with it */
    send_(ts, seg(0, 103, ACK, "d\nx", 3)); /* "abcd" used, "x" left */
    send_(ts, seg(0, 106, ACK, "\n", 4));   /* "x" used, nothing left */
    send_(ts, seg(0, 107, ACK, "ef", 5));   /* a fresh chunk; "ef" left */
    send_(ts, seg(0, 5000, ACK, "g\n", 6)); /* a gap drops "ef": a fresh chunk again */
    CHECK_STR(log_, "{0}<{7}({7}(abcd|{7}(x|{0}<{0}<~");
    CHECK_STR(reasons, "tcp_gap");
    show_mark = 0;
    tcp_stream_free(ts);
}

TEST(sequence_numbers_wrap_around)
{
    defaults();
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 0xfffffffcu, SYN, NULL, 0));
    send_(ts, seg(0, 0xffffffffu, ACK, "ab", 1)); /* ooo: 0xfffffffd..fffffffe missing */
    send_(ts, seg(0, 0xfffffffdu, ACK, "xy", 2));
    send_(ts, seg(0, 1, ACK, "\n", 3));
    CHECK_STR(log_, "<((xyab|");
    CHECK_STR(reasons, "");
    tcp_stream_free(ts);
}

/* A segment the capture missed is never resent, and the peer says so: its ACK covers the hole.
 * The REGISTER held behind the hole used to wait for the hole timeout (3 s, or the idle timeout
 * on a quiet connection) while its 200 came 10 ms later, found no transaction and was counted
 * as an orphan. The hole is given up when the ACK comes, and what it held is delivered, as the
 * client's bytes, before the server's segment that carried the ACK. At the time its segment
 * was seen (1 s), not the ACK's: the REGISTER took 10 ms to answer, not 0. */
TEST(a_hole_the_peer_acknowledged_is_given_up_before_the_acking_segment_is_read)
{
    defaults();
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 99, SYN, NULL, 0));
    send_(ts, acking(seg(1, 499, SYN | ACK, NULL, 0), 100));
    send_(ts, acking(seg(0, 100, ACK, NULL, 0), 500));
    /* "lost\n" at 100..104 is missed */
    send_(ts, acking(seg(0, 105, ACK, "x\nreg\n", 1 * S), 500)); /* held: 105..110 */
    CHECK_STR(log_, "");
    send_(ts, acking(seg(1, 500, ACK, "ok\n", 1 * S + 10000000), 111));
    CHECK_STR(reasons, "tcp_gap");
    CHECK_STR(log_, "(~reg|<ok|");
    CHECK_STR(froms, "cs");
    CHECK_INT(offer_ts[0], 1 * S);
    CHECK_INT(offer_ts[1], 1 * S + 10000000);
    CHECK_INT(stats(ts).bytes, 0);
    send_(ts, acking(seg(0, 111, ACK, "next\n", 2 * S), 503)); /* in order now */
    CHECK_STR(log_, "(~reg|<ok|<next|");
    CHECK_STR(reasons, "tcp_gap");
    tcp_stream_free(ts);
}

/* The capture missed a response (r1) and then the request after it, whose ACK covered r1: when
 * the next response comes past the hole, the client's last ACK already says r1 arrived. It is
 * believed once the bytes seen past the hole reach it: r3, missed too, is not known to have
 * been sent until r4 comes. */
TEST(a_hole_acknowledged_before_the_bytes_past_it_came_is_given_up_when_they_come)
{
    defaults();
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 99, SYN, NULL, 0));
    send_(ts, acking(seg(1, 499, SYN | ACK, NULL, 0), 100));
    /* the server sends "r1\n" at 500..502 (missed), "j\nr2\n" at 503..507, "r3\n" at 508..510
     * (missed), "k\nr4\n" at 511..515 */
    send_(ts, acking(seg(0, 100, ACK, "a\n", 1), 511));
    send_(ts, acking(seg(1, 503, ACK, "j\nr2\n", 2), 102)); /* held; ends before 511 */
    CHECK_STR(reasons, "");
    CHECK_STR(log_, "<a|");
    send_(ts, acking(seg(1, 511, ACK, "k\nr4\n", 3), 102));
    CHECK_STR(reasons, "tcp_gap,tcp_gap");
    CHECK_STR(log_, "<a|(~r2|(~r4|");
    CHECK_STR(froms, "css");
    CHECK_INT(stats(ts).bytes, 0);
    tcp_stream_free(ts);
}

/* The server's half-stream is not needed: a bare ACK of a direction never seen (its data went
 * unseen, or the capture began after it sent any) still acknowledges the client's bytes. */
TEST(a_bare_ack_from_a_direction_never_seen_gives_the_hole_up)
{
    defaults();
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 99, SYN, NULL, 0));
    send_(ts, seg(0, 100, ACK, "a\n", 1));
    send_(ts, seg(0, 104, ACK, "j\nb\n", 2)); /* 102..103 missed */
    send_(ts, acking(seg(1, 500, ACK, NULL, 3), 108));
    CHECK_STR(reasons, "tcp_gap");
    CHECK_STR(log_, "<a|(~b|");
    CHECK_STR(froms, "cc");
    CHECK_INT(stats(ts).streams, 1); /* the bare ACK made no half-stream */
    tcp_stream_free(ts);
}

/* Only an ACK from just past the stream head to the end of what was seen sent (the held bytes)
 * is believed; any other would give up bytes on the word of a stale, forged or corrupt header. */
TEST(an_ack_that_is_not_plausible_is_ignored)
{
    defaults();
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 99, SYN, NULL, 0));
    send_(ts, seg(0, 100, ACK, "a\n", 1));
    send_(ts, seg(0, 105, ACK, "j\nb\n", 2)); /* 102..104 missed; held 105..108 */
    uint64_t held = stats(ts).bytes;
    CHECK(held > 4);
    send_(ts, acking(seg(1, 500, ACK, NULL, 3), 102));         /* the stream head: nothing new */
    send_(ts, acking(seg(1, 500, ACK, NULL, 3), 101));         /* behind it */
    send_(ts, acking(seg(1, 500, ACK, NULL, 3), 110));         /* one past the held bytes */
    send_(ts, acking(seg(1, 500, ACK, NULL, 3), 0x80000066u)); /* half the space away */
    send_(ts, acking(seg(1, 500, 0, NULL, 3), 109)); /* no ACK flag: the field means nothing */
    CHECK_STR(reasons, "");
    CHECK_STR(log_, "<a|");
    CHECK_INT(stats(ts).bytes, held);
    send_(ts, acking(seg(1, 500, ACK, NULL, 3), 109)); /* the end of the held bytes */
    CHECK_STR(reasons, "tcp_gap");
    CHECK_STR(log_, "<a|(~b|");
    CHECK_INT(stats(ts).bytes, 0);
    tcp_stream_free(ts);
}

/* An ACK inside the hole says only that the bytes before it arrived: the rest of the hole may
 * still come (a segment in flight), so it keeps waiting. */
TEST(an_ack_inside_the_hole_gives_up_only_the_bytes_before_it)
{
    defaults();
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 99, SYN, NULL, 0));
    send_(ts, seg(0, 100, ACK, "a\n", 1));
    send_(ts, seg(0, 106, ACK, "d\ne\n", 2)); /* "b\n" 102..103, "c\n" 104..105 missed */
    send_(ts, acking(seg(1, 500, ACK, NULL, 3), 104));
    CHECK_STR(reasons, "tcp_gap");
    CHECK_STR(log_, "<a|");
    send_(ts, seg(0, 104, ACK, "c\n", 4)); /* the rest of the hole comes */
    CHECK_STR(log_, "<a|<~(d|e|");
    CHECK_STR(reasons, "tcp_gap");
    tcp_stream_free(ts);
}

/* Sequence numbers compare modulo 2^32: a hole across the wrap, held bytes past it, an ACK
 * numerically below the stream head. */
TEST(an_ack_past_the_sequence_wrap_gives_up_the_hole_before_it)
{
    defaults();
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 0xfffffff9u, SYN, NULL, 0));
    send_(ts, seg(0, 0xfffffffau, ACK, "a\n", 1)); /* ..fffffffb */
    /* "lost\n" at fffffffc..00000000 is missed */
    send_(ts, seg(0, 1, ACK, "j\nb\n", 2));                    /* held: 1..4 */
    send_(ts, acking(seg(1, 500, ACK, NULL, 3), 6));           /* past the held bytes */
    send_(ts, acking(seg(1, 500, ACK, NULL, 3), 0xfffffffbu)); /* behind the head */
    CHECK_STR(reasons, "");
    send_(ts, acking(seg(1, 500, ACK, NULL, 3), 5));
    CHECK_STR(reasons, "tcp_gap");
    CHECK_STR(log_, "<a|(~b|");
    send_(ts, seg(0, 5, ACK, "c\n", 4));
    CHECK_STR(log_, "<a|(~b|<c|");
    tcp_stream_free(ts);
}

/* A FIN held behind a hole counts as sent: its ACK (one past it) gives the hole up and the
 * half-stream ends there. */
TEST(an_ack_of_a_fin_behind_a_hole_gives_the_hole_up_and_ends_the_half_stream)
{
    defaults();
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 99, SYN, NULL, 0));
    /* 100..101 missed */
    send_(ts, seg(0, 102, ACK | FIN, "j\nb\n", 1)); /* held 102..105, FIN 106 */
    send_(ts, acking(seg(1, 500, ACK, NULL, 2), 107));
    CHECK_STR(reasons, "tcp_gap");
    CHECK_STR(log_, "(~b|");
    send_(ts, seg(0, 107, ACK, "x\n", 3));
    CHECK_STR(reasons, "tcp_gap,tcp_after_close");
    tcp_stream_free(ts);
}

/* At the idle timeout nothing will fill a hole any more: what waits behind it is delivered (at
 * the times it was seen, as its own direction's bytes), each hole counted as a gap; only a line
 * the consumer leaves unfinished is lost to the timeout. It all used to be dropped unseen. */
TEST(idle_expiry_delivers_what_waits_behind_holes)
{
    defaults();
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 99, SYN, NULL, 0));
    send_(ts, seg(0, 100, ACK, "a\n", 10 * S));
    send_(ts, seg(0, 104, ACK, "j\nb\n", 11 * S));      /* 102..103 missed */
    send_(ts, seg(0, 110, ACK, "k\nc\nunfin", 12 * S)); /* 108..109 missed */
    CHECK_STR(log_, "<a|");
    CHECK_INT(tcp_stream_next_deadline(ts), 312 * S);
    tcp_stream_expire(ts, 330 * S);
    CHECK_STR(log_, "<a|(~b|(~c|");
    CHECK_STR(froms, "ccc");
    CHECK_INT(offer_ts[1], 11 * S);
    CHECK_INT(offer_ts[2], 12 * S);
    CHECK_STR(reasons, "tcp_gap,tcp_gap,tcp_idle_timeout");
    CHECK_INT(stats(ts).streams, 0);
    CHECK_INT(stats(ts).bytes, 0);
    tcp_stream_free(ts);
}

/* A message held behind a hole carries the time its last byte was seen, or that of the bytes
 * before it when they came later: never the time of the segment that gave the hole up. The
 * review's case: released bytes took that segment's time (6 s here), so a request released
 * late had a delay that was the hole's, not its own. */
TEST(bytes_released_from_a_hole_carry_the_time_they_were_seen)
{
    defaults();
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 99, SYN, NULL, 0));
    send_(ts, seg(0, 100, ACK, "a\n", 1 * S));
    /* 102..103 missed; "j\nb" 104..106 and "c\n" 107..108 come in reverse order: the line
     * "bc" is whole once both were seen, at 2.5 s. */
    send_(ts, seg(0, 107, ACK, "c\n", 2 * S));
    send_(ts, seg(0, 104, ACK, "j\nb", 2 * S + S / 2));
    CHECK_STR(log_, "<a|");
    /* 6 s: past the hole timeout (3 s after 2 s); the hole is given up first. */
    send_(ts, seg(0, 109, ACK, "d\n", 6 * S));
    CHECK_STR(reasons, "tcp_gap");
    CHECK_STR(log_, "<a|(~(bc|<d|");
    CHECK_INT(offer_ts[1], 2 * S + S / 2); /* "j\nb": its own time */
    CHECK_INT(offer_ts[2], 2 * S + S / 2); /* "c\n" seen at 2 s, but "b" before it at 2.5 s */
    CHECK_INT(offer_ts[3], 6 * S);
    /* A hole a resend fills: "f\n" seen at 7 s could be read only when "e\n" came, at 8 s. */
    send_(ts, seg(0, 113, ACK, "f\n", 7 * S)); /* "e\n" 111..112 comes later */
    send_(ts, seg(0, 111, ACK, "e\n", 8 * S));
    CHECK_STR(log_, "<a|(~(bc|<d|<e|(f|");
    CHECK_INT(offer_ts[4], 8 * S);
    CHECK_INT(offer_ts[5], 8 * S);
    /* A line split across segments: complete with its last segment (9.5 s). */
    send_(ts, seg(0, 115, ACK, "g", 9 * S));
    send_(ts, seg(0, 116, ACK, "h\n", 9 * S + S / 2));
    CHECK_STR(log_, "<a|(~(bc|<d|<e|(f|<(gh|");
    CHECK_INT(offer_ts[7], 9 * S + S / 2);
    CHECK_STR(reasons, "tcp_gap");
    CHECK_INT(stats(ts).bytes, 0);
    tcp_stream_free(ts);
}

TEST(idle_streams_time_out_and_pending_bytes_are_counted)
{
    defaults();
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 99, SYN, NULL, 0));
    send_(ts, seg(0, 100, ACK, "a\n", 10 * S));
    send_(ts, seg(1, 499, SYN | ACK, NULL, 10 * S));
    send_(ts, seg(1, 500, ACK, "pend", 20 * S));
    CHECK_INT(tcp_stream_next_deadline(ts), 310 * S);
    tcp_stream_expire(ts, 310 * S);
    CHECK_STR(reasons, "");
    CHECK_INT(stats(ts).streams, 1);
    tcp_stream_expire(ts, 320 * S);
    CHECK_STR(reasons, "tcp_idle_timeout");
    CHECK_INT(stats(ts).streams, 0);
    CHECK_INT(stats(ts).bytes, 0);
    tcp_stream_free(ts);
}

TEST(a_full_table_reuses_ended_streams_then_evicts_the_least_active)
{
    defaults();
    cfg.max_streams = 2;
    struct tcp_stream *ts = make();
    struct packet p;
    send_(ts, seg(0, 99, SYN, NULL, 0));
    send_(ts, seg(1, 499, SYN, NULL, 1));
    send_(ts, seg(0, 100, FIN, NULL, 2)); /* dir 0 ends and lingers */
    p = seg(0, 99, SYN, NULL, 3);
    p.sport = 40001;
    send_(ts, p); /* takes the ended slot: no eviction */
    CHECK_INT(stats(ts).evictions, 0);
    send_(ts, seg(1, 500, ACK, "x\n", 4)); /* dir 1 becomes the most active */
    p = seg(0, 99, SYN, NULL, 5);
    p.sport = 40002;
    send_(ts, p); /* evicts port 40001, the least recently active */
    CHECK_INT(stats(ts).evictions, 1);
    CHECK_INT(stats(ts).streams, 2);
    send_(ts, seg(1, 502, ACK, "y\n", 6));
    CHECK_STR(log_, "<x|<y|");
    tcp_stream_free(ts);
}

/* A SYN flood (half-open connections that never carry a byte) fills the table while a real
 * stream holds half a message: the flood's streams push each other out, not the stream with
 * data, whose message is then read whole. Every eviction is counted. */
TEST(a_full_table_evicts_streams_without_data_before_streams_with_data)
{
    defaults();
    cfg.max_streams = 3;
    struct tcp_stream *ts = make();
    struct packet p;
    send_(ts, seg(0, 99, SYN, NULL, 0));
    send_(ts, seg(1, 499, SYN | ACK, NULL, 1)); /* the server's half: no data yet */
    send_(ts, seg(0, 100, ACK, "he", 2));       /* the client's first data takes the server's half
                                                 * along among the open ones */
    for (int i = 1; i <= 5; i++) {
        p = seg(0, 7, SYN, NULL, 2 + (uint64_t)i);
        p.src[3] = 9;
        p.sport = (uint16_t)(40000 + i);
        send_(ts, p); /* the 1st takes the last place, each next evicts the flood's oldest */
    }
    CHECK_INT(stats(ts).evictions, 4);
    CHECK_INT(stats(ts).streams, 3);
    send_(ts, seg(0, 102, ACK, "llo\n", 10));
    /* The server's half was kept: its first line is read whole, not resynchronised past. */
    send_(ts, seg(1, 500, ACK, "ok\n", 11));
    CHECK_STR(log_, "<(hello|<ok|");
    CHECK_STR(reasons, "");
    tcp_stream_free(ts);
}

TEST(a_line_longer_than_the_pending_cap_is_dropped_and_resynced)
{
    defaults();
    cfg.max_pending = 8;
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 99, SYN, NULL, 0));
    send_(ts, seg(0, 100, ACK, "0123456789", 1));
    CHECK_STR(reasons, "tcp_buffer_full");
    send_(ts, seg(0, 110, ACK, "ab\ncd\n", 2));
    CHECK_STR(log_, "<<~cd|");
    send_(ts, seg(0, 116, ACK, "0123", 3));
    send_(ts, seg(0, 120, ACK, "45678", 4));
    CHECK_STR(reasons, "tcp_buffer_full,tcp_buffer_full");
    CHECK_INT(stats(ts).bytes, 0);
    tcp_stream_free(ts);
}

TEST(the_byte_budget_bounds_what_is_held)
{
    defaults();
    cfg.max_bytes = 16;
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 99, SYN, NULL, 0));
    send_(ts, seg(0, 100, ACK, "0123456789", 1));
    CHECK_INT(stats(ts).bytes, 10);
    send_(ts, seg(0, 110, ACK, "abcdefghij", 2));
    CHECK_STR(reasons, "tcp_buffer_full");
    CHECK_INT(stats(ts).bytes, 0);
    send_(ts, seg(0, 150, ACK, "0123456789", 3)); /* out of order, over budget */
    CHECK_STR(reasons, "tcp_buffer_full,tcp_buffer_full");
    CHECK_INT(stats(ts).bytes, 0);
    tcp_stream_free(ts);
}

TEST(the_consumer_can_discard_bytes_yet_to_come)
{
    defaults();
    struct tcp_stream *ts = make();
    send_(ts, seg(0, 99, SYN, NULL, 0));
    send_(ts, seg(0, 100, ACK, "skip7\nab", 1)); /* skip 7: "ab" now, 5 more later */
    send_(ts, seg(0, 108, ACK, "cdefgok\n", 2));
    CHECK_STR(log_, "<skip7|<ok|");
    CHECK_INT(stats(ts).bytes, 0);
    tcp_stream_free(ts);
}

TEST_MAIN()
