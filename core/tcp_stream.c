/* tcp_stream: half-stream table, sequence tracking, out-of-order list and the consumer's
 * pending buffer (see tcp_stream.h for the contract). */
#include "tcp_stream.h"

#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "slice.h"
#include "table.h"

#define NS_PER_S 1000000000ULL
#define BUF_MIN 2048

/* Age lists: open streams that carried data (least recently active first), ended ones, and
 * open ones that never carried a byte (a SYN flood's half-open connections), which a full table
 * evicts before the streams with data. */
enum { CLS_OPEN = 0, CLS_CLOSED = 1, CLS_EMPTY = 2 };

/* How far behind its sender's next byte an RST may fall (a resend's sequence number). */
#define RST_BEHIND 65536u

/* half.rst_closed */
enum { RST_OWN = 1, RST_PEER = 2 };

/* An out-of-order segment, copied. */
struct seg {
    struct seg *next;
    uint64_t ts_ns; /* packet time it was seen at */
    uint32_t seq, len;
    uint8_t data[];
};

struct half {
    struct table_node node;
    uint8_t *buf;      /* bytes the consumer left, at the stream head */
    struct seg *ooo;   /* sorted by sequence number, disjoint */
    uint64_t skip;     /* further bytes to discard (consumer's request) */
    uint64_t hole_since; /* packet time of the first segment held behind the hole (ooo) */
    uint64_t head_ts;    /* packet time the bytes before the stream head were all seen by */
    uint32_t next_seq;   /* next byte expected */
    uint32_t fin_seq;  /* sequence number of the FIN, when fin_seen */
    uint32_t syn_seq;  /* first data byte after the SYN that opened it, when syn_seen */
    uint32_t last_ack; /* the last acknowledgement number it sent (ACK set), when ack_seen */
    uint32_t buf_len, buf_cap, ooo_bytes, ooo_count;
    uint32_t mark; /* the consumer's note about buf (tcp_stream_chunk.mark) */
    uint16_t sport, dport;
    uint8_t version, closed, flags, fin_seen, syn_seen, ack_seen;
    uint8_t rst_closed; /* closed by an RST: RST_OWN, sent by this half's sender, or RST_PEER */
    uint8_t src[16], dst[16];
};

struct tcp_stream {
    struct tcp_stream_config cfg;
    struct table t;
    tcp_stream_deliver_fn deliver;
    tcp_stream_error_fn err;
    void *ctx;
    uint64_t bytes, evictions;
    uint32_t holes; /* half-streams holding bytes behind a hole (ooo): while none does, an ACK
                       costs no lookup of the half-stream it acknowledges */
};

void tcp_stream_config_defaults(struct tcp_stream_config *cfg)
{
    cfg->max_streams = 100000;
    cfg->max_bytes = 64u << 20;
    cfg->max_pending = 65536;
    cfg->max_ooo_bytes = 256u << 10;
    cfg->max_ooo_segments = 64;
    cfg->window = 16u << 20;
    cfg->idle_timeout_ns = 300 * NS_PER_S;
    cfg->hole_timeout_ns = 3 * NS_PER_S;
    cfg->linger_ns = 60 * NS_PER_S;
}

struct tcp_stream *tcp_stream_new(const struct tcp_stream_config *cfg,
                                  tcp_stream_deliver_fn deliver, tcp_stream_error_fn err, void *ctx)
{
    struct tcp_stream *ts;

    if (cfg->max_streams == 0 || cfg->max_bytes == 0 || cfg->max_pending == 0 || cfg->window == 0 ||
        cfg->window > (1u << 30))
        return NULL;
    ts = calloc(1, sizeof(*ts));
    if (!ts)
        return NULL;
    ts->cfg = *cfg;
    ts->deliver = deliver;
    ts->err = err;
    ts->ctx = ctx;
    if (table_init(&ts->t, sizeof(struct half), cfg->max_streams) != 0) {
        free(ts);
        return NULL;
    }
    return ts;
}

static struct half *at(const struct tcp_stream *ts, uint32_t idx)
{
    return table_entry(&ts->t, idx);
}

static void free_buf(struct tcp_stream *ts, struct half *h)
{
    ts->bytes -= h->buf_cap;
    free(h->buf);
    h->buf = NULL;
    h->buf_len = h->buf_cap = h->mark = 0;
}

static size_t seg_size(uint32_t len)
{
    return sizeof(struct seg) + len;
}

static void free_ooo(struct tcp_stream *ts, struct half *h)
{
    if (h->ooo)
        ts->holes--;
    while (h->ooo) {
        struct seg *s = h->ooo;
        h->ooo = s->next;
        ts->bytes -= seg_size(s->len);
        free(s);
    }
    h->ooo_bytes = h->ooo_count = 0;
}

static bool pending(const struct half *h)
{
    return h->buf_len || h->ooo;
}

static void release(struct tcp_stream *ts, struct half *h)
{
    free_buf(ts, h);
    free_ooo(ts, h);
    h->skip = 0;
}

void tcp_stream_free(struct tcp_stream *ts)
{
    if (!ts)
        return;
    for (uint32_t i = 0; i < ts->t.high_water; i++)
        if (table_node(&ts->t, i)->in_use)
            release(ts, at(ts, i));
    assert(ts->holes == 0);
    table_fini(&ts->t);
    free(ts);
}

uint64_t tcp_stream_next_deadline(const struct tcp_stream *ts)
{
    return table_next_deadline(&ts->t);
}

void tcp_stream_get_stats(const struct tcp_stream *ts, struct tcp_stream_stats *out)
{
    out->streams = ts->t.used;
    out->bytes = ts->bytes;
    out->evictions = ts->evictions;
}

static void remove_half(struct tcp_stream *ts, uint32_t idx)
{
    release(ts, at(ts, idx));
    table_remove(&ts->t, idx);
}

/* Ends a half-stream: what it holds is lost (counted); the entry lingers to absorb resends. */
static void close_half(struct tcp_stream *ts, uint32_t idx, uint64_t now)
{
    struct half *h = at(ts, idx);
    if (pending(h))
        ts->err(ts->ctx, "tcp_closed_pending");
    if (pending(h) || h->skip)
        h->flags |= TCP_STREAM_LOST; /* should it open again (reopen_after_rst) */
    release(ts, h);
    h->closed = 1;
    table_set_class(&ts->t, idx, CLS_CLOSED);
    table_set_deadline(&ts->t, idx, now + ts->cfg.linger_ns);
}

/* An RST that ended h (its sender's half) was not its sender's: that sender sends data past
 * it. A forgery, or a stale RST, inside the window that endpoints ignore (RFC 5961 §3.2 resets
 * only at the exact next sequence number): both halves go on, counted once as tcp_rst_ignored.
 * rev, the other half (TABLE_NONE if unknown), is opened again too when that RST ended it. */
static void reopen_after_rst(struct tcp_stream *ts, uint32_t idx, uint32_t rev, uint64_t now)
{
    ts->err(ts->ctx, "tcp_rst_ignored");
    for (int i = 0; i < 2; i++) {
        uint32_t k = i ? rev : idx;
        struct half *h = k == TABLE_NONE ? NULL : at(ts, k);
        if (!h || !h->closed || h->rst_closed != (i ? RST_PEER : RST_OWN))
            continue;
        h->closed = 0;
        h->rst_closed = 0;
        table_set_class(&ts->t, k, CLS_OPEN);
        table_set_deadline(&ts->t, k, now + ts->cfg.idle_timeout_ns);
    }
}

/* --- lookup ---------------------------------------------------------------------------------- */

struct key {
    const uint8_t *src, *dst;
    uint16_t sport, dport;
    uint8_t version;
};

static uint64_t key_hash(const struct key *k)
{
    size_t alen = k->version == 4 ? 4 : 16;
    uint64_t h = slice_hash(slice_make((const char *)k->src, alen), k->version);
    h = hash_mix(h, slice_hash(slice_make((const char *)k->dst, alen), 1));
    return hash_mix(h, (uint64_t)k->sport << 16 | k->dport);
}

static uint32_t find(const struct tcp_stream *ts, const struct key *k, uint64_t hash)
{
    for (uint32_t idx = table_find(&ts->t, hash); idx != TABLE_NONE;
         idx = table_find_next(&ts->t, idx, hash)) {
        const struct half *h = at(ts, idx);
        if (h->version == k->version && h->sport == k->sport && h->dport == k->dport &&
            memcmp(h->src, k->src, 16) == 0 && memcmp(h->dst, k->dst, 16) == 0)
            return idx;
    }
    return TABLE_NONE;
}

static uint32_t create(struct tcp_stream *ts, const struct key *k, uint64_t hash)
{
    uint32_t idx = table_insert(&ts->t, hash, 0, CLS_EMPTY);
    struct half *h;

    if (idx == TABLE_NONE) {
        /* An ended stream holds nothing: reuse it first. Else the least recently active of
         * those that never carried data, else of the others. */
        uint32_t victim = table_oldest(&ts->t, CLS_CLOSED);
        if (victim == TABLE_NONE) {
            victim = table_oldest(&ts->t, CLS_EMPTY);
            if (victim == TABLE_NONE)
                victim = table_oldest(&ts->t, CLS_OPEN);
            ts->evictions++;
        }
        remove_half(ts, victim);
        idx = table_insert(&ts->t, hash, 0, CLS_EMPTY);
    }
    h = at(ts, idx);
    h->version = k->version;
    h->sport = k->sport;
    h->dport = k->dport;
    memcpy(h->src, k->src, 16);
    memcpy(h->dst, k->dst, 16);
    return idx;
}

/* --- handing bytes to the consumer ----------------------------------------------------------- */

/* Grows the pending buffer to hold need bytes, within the budget. Returns 0 or -ENOMEM. */
static int grow(struct tcp_stream *ts, struct half *h, uint32_t need)
{
    uint32_t cap = h->buf_cap ? h->buf_cap : BUF_MIN;
    uint8_t *buf;

    if (need <= h->buf_cap)
        return 0;
    while (cap < need)
        cap *= 2;
    if (cap > ts->cfg.max_pending)
        cap = ts->cfg.max_pending;
    if (ts->bytes + (cap - h->buf_cap) > ts->cfg.max_bytes)
        cap = need;
    if (ts->bytes + (cap - h->buf_cap) > ts->cfg.max_bytes)
        return -ENOMEM;
    buf = realloc(h->buf, cap);
    if (!buf)
        return -ENOMEM;
    ts->bytes += cap - h->buf_cap;
    h->buf = buf;
    h->buf_cap = cap;
    return 0;
}

/* The consumer's unfinished bytes cannot be held: lose them and resynchronise. */
static void drop_pending(struct tcp_stream *ts, struct half *h)
{
    ts->err(ts->ctx, "tcp_buffer_full");
    free_buf(ts, h);
    h->flags |= TCP_STREAM_LOST;
}

static uint64_t offer(struct tcp_stream *ts, struct half *h, const struct packet *pkt,
                      const uint8_t *data, uint32_t len)
{
    /* The mark goes with the bytes left before: the pending buffer's start. */
    struct tcp_stream_chunk c = {data, len, h->flags, data == h->buf ? h->mark : 0};
    uint64_t used = ts->deliver(ts->ctx, pkt, &c);
    h->flags = c.flags;
    h->mark = c.mark;
    return used;
}

/* Hands the stream's next len bytes to the consumer, through the pending buffer only when
 * the consumer left something before. */
static void feed(struct tcp_stream *ts, struct half *h, const struct packet *pkt,
                 const uint8_t *data, uint32_t len)
{
    while (len) {
        uint64_t used;
        if (h->skip) {
            uint32_t k = h->skip < len ? (uint32_t)h->skip : len;
            h->skip -= k;
            data += k;
            len -= k;
            continue;
        }
        if (!h->buf_len) {
            /* Zero-copy: the consumer reads the segment itself. */
            used = offer(ts, h, pkt, data, len);
            if (used >= len) {
                h->skip = used - len;
                return;
            }
            data += used;
            len -= (uint32_t)used;
            if (len > ts->cfg.max_pending || grow(ts, h, len) != 0) {
                drop_pending(ts, h);
                return;
            }
            memcpy(h->buf, data, len);
            h->buf_len = len;
            return;
        }
        uint32_t k = ts->cfg.max_pending - h->buf_len;
        if (k > len)
            k = len;
        if (grow(ts, h, h->buf_len + k) != 0) {
            drop_pending(ts, h);
            continue;
        }
        memcpy(h->buf + h->buf_len, data, k);
        h->buf_len += k;
        data += k;
        len -= k;
        used = offer(ts, h, pkt, h->buf, h->buf_len);
        if (used >= h->buf_len) {
            h->skip = used - h->buf_len;
            free_buf(ts, h);
            continue;
        }
        if (used == 0 && h->buf_len == ts->cfg.max_pending) {
            drop_pending(ts, h); /* a consumer that breaks its contract */
            continue;
        }
        memmove(h->buf, h->buf + used, h->buf_len - used);
        h->buf_len -= (uint32_t)used;
    }
}

/* Delivers the out-of-order segments that the stream head has reached. A hole that remains
 * behind them dates from now.
 *
 * Each segment's bytes go with the time it was seen, or, when the bytes before it were seen
 * later, with theirs (h->head_ts): a message carries the time its last byte was on the wire
 * and every byte before it too, when its receiver could read it whole. Behind a hole that
 * a resend filled, that is the resend's time; behind one given up (a segment the capture
 * missed: its time is unknown), the held segment's own, not the time of the ACK, the later
 * segment or the expiry that gave the hole up: a REGISTER released by its 200's ACK keeps its
 * 10 ms registration delay. pkt gives every other field. */
static void drain(struct tcp_stream *ts, struct half *h, const struct packet *pkt)
{
    if (!h->ooo || (int32_t)(h->ooo->seq - h->next_seq) > 0)
        return;
    h->hole_since = pkt->ts_ns;
    while (h->ooo && (int32_t)(h->ooo->seq - h->next_seq) <= 0) {
        struct seg *s = h->ooo;
        uint32_t done = h->next_seq - s->seq;
        h->ooo = s->next;
        h->ooo_count--;
        h->ooo_bytes -= s->len;
        ts->bytes -= seg_size(s->len);
        if (done < s->len) {
            struct packet at_seen;
            const struct packet *p = pkt;
            if (s->ts_ns > h->head_ts)
                h->head_ts = s->ts_ns;
            if (h->head_ts != pkt->ts_ns) {
                at_seen = *pkt;
                at_seen.ts_ns = h->head_ts;
                p = &at_seen;
            }
            h->next_seq += s->len - done;
            feed(ts, h, p, s->data + done, s->len - done);
        }
        free(s);
    }
    if (!h->ooo)
        ts->holes--;
}

/* Loses every byte before seq: what is pending and the hole up to seq. */
static void jump(struct tcp_stream *ts, struct half *h, uint32_t seq)
{
    ts->err(ts->ctx, "tcp_gap");
    free_buf(ts, h);
    h->skip = 0;
    h->next_seq = seq;
    h->flags |= TCP_STREAM_LOST;
}

/* A packet for bytes of h released while something else is handled (a segment of the other
 * direction, or the idle timeout): h's addresses and ports, and nothing else (no payload, no
 * capture fields). The consumer reads no more than that from it. Its time, ts_ns, is replaced
 * by drain with the time the bytes were seen. */
static void half_packet(const struct half *h, uint64_t ts_ns, struct packet *out)
{
    memset(out, 0, sizeof(*out));
    out->ts_ns = ts_ns;
    out->ip_version = h->version;
    out->l4_proto = IPPROTO_TCP;
    memcpy(out->src, h->src, 16);
    memcpy(out->dst, h->dst, 16);
    out->sport = h->sport;
    out->dport = h->dport;
}

/* Gives up the holes of h before byte upto, oldest first: each is a gap (counted), and the
 * bytes held behind it reach the consumer with pkt. A FIN is not data: the stream head stops
 * at it. */
static void give_up_before(struct tcp_stream *ts, struct half *h, const struct packet *pkt,
                           uint32_t upto)
{
    /* Each turn moves the head forward: to upto, the FIN or the first held byte, all past it. */
    while ((int32_t)(upto - h->next_seq) > 0 && !(h->fin_seen && h->next_seq == h->fin_seq)) {
        uint32_t to = upto;
        if (h->fin_seen && (int32_t)(h->fin_seq - to) < 0)
            to = h->fin_seq;
        if (h->ooo && (int32_t)(h->ooo->seq - to) < 0)
            to = h->ooo->seq;
        jump(ts, h, to);
        drain(ts, h, pkt);
    }
}

/* The sequence number just past every byte (and FIN) of h known to have been sent: the end of
 * the last segment held, or the FIN's own number when it comes later. */
static uint32_t sent_end(const struct half *h)
{
    const struct seg *s = h->ooo;
    uint32_t end = h->next_seq;

    for (; s; s = s->next)
        end = s->seq + s->len; /* sorted: the last is the furthest */
    if (h->fin_seen && (int32_t)(h->fin_seq - end) >= 0)
        end = h->fin_seq + 1;
    return end;
}

/* Whether ack, from the peer of h, acknowledges bytes of a hole of h: it has received every byte
 * before it, so the hole below it is a segment the capture missed, never to be resent, and can
 * be given up at once instead of at the hole timeout.
 *
 * An ACK is trusted only from just past the stream head to the end of what h is known to have
 * sent (sent_end: the held data and a FIN). TCP itself ignores an ACK of something not yet
 * sent (RFC 9293 §3.10.7.4); one past everything seen acknowledges bytes never seen: a stale
 * incarnation of the connection on the same ports, a forged or corrupt header, or more
 * segments the capture missed after the held data. Only the last would be a reason to give
 * up, and the hole timeout covers it. A random number passes with the probability span / 2^32,
 * span being how far the held bytes reach past the head: a few KiB for a missed message or two
 * (about 1 in a million), at most the window plus a segment (1 in 256 with the defaults). A
 * wrong one costs what an early hole timeout does: a hole given up that a resend would have
 * filled. */
static bool acks_hole(const struct half *h, uint32_t ack)
{
    uint32_t ahead = ack - h->next_seq;
    return !h->closed && h->ooo && ahead != 0 && ahead <= sent_end(h) - h->next_seq;
}

/* Copies [seq, seq + len) into the out-of-order list, around the bytes already there.
 * Returns false when a byte was already held (a resend). */
static bool hold(struct tcp_stream *ts, struct half *h, uint32_t seq, const uint8_t *data,
                 uint32_t len, uint64_t ts_ns)
{
    struct seg **pp = &h->ooo;
    bool dup = false, had = h->ooo != NULL;

    while (len) {
        struct seg *s = *pp;
        uint32_t k = len;
        if (s && (int32_t)(s->seq + s->len - seq) <= 0) {
            pp = &s->next; /* wholly before us */
            continue;
        }
        if (s && (int32_t)(s->seq - seq) <= 0) {
            uint32_t over = s->seq + s->len - seq; /* we start inside s */
            dup = true;
            if (over >= len)
                break;
            seq += over;
            data += over;
            len -= over;
            pp = &s->next;
            continue;
        }
        if (s && (int32_t)(s->seq - (seq + len)) < 0)
            k = s->seq - seq; /* up to where s begins */
        if (ts->bytes + seg_size(k) > ts->cfg.max_bytes) {
            ts->err(ts->ctx, "tcp_buffer_full");
            break;
        }
        struct seg *n = malloc(seg_size(k));
        if (!n) {
            ts->err(ts->ctx, "tcp_buffer_full");
            break;
        }
        n->ts_ns = ts_ns;
        n->seq = seq;
        n->len = k;
        memcpy(n->data, data, k);
        n->next = s;
        *pp = n;
        pp = &n->next;
        ts->bytes += seg_size(k);
        h->ooo_bytes += k;
        h->ooo_count++;
        seq += k;
        data += k;
        len -= k;
    }
    if (!had && h->ooo)
        ts->holes++;
    return !dup;
}

/* Places a segment's bytes [seq, seq + len) relative to the stream head. */
static void place(struct tcp_stream *ts, struct half *h, const struct packet *pkt, uint32_t seq,
                  const uint8_t *data, uint32_t len)
{
    for (;;) {
        int32_t rel = (int32_t)(seq - h->next_seq);
        if (rel > (int32_t)ts->cfg.window || rel < -(int32_t)ts->cfg.window) {
            free_ooo(ts, h);
            jump(ts, h, seq);
            continue;
        }
        if (rel < 0) {
            uint32_t old = (uint32_t)-rel;
            ts->err(ts->ctx, "tcp_retransmission");
            if (old >= len)
                return;
            seq += old;
            data += old;
            len -= old;
            continue;
        }
        if (rel == 0) {
            h->next_seq += len;
            h->head_ts = pkt->ts_ns;
            feed(ts, h, pkt, data, len);
            drain(ts, h, pkt);
            return;
        }
        if (h->ooo_bytes + len <= ts->cfg.max_ooo_bytes &&
            h->ooo_count < ts->cfg.max_ooo_segments) {
            if (!h->ooo)
                h->hole_since = pkt->ts_ns;
            if (!hold(ts, h, seq, data, len, pkt->ts_ns))
                ts->err(ts->ctx, "tcp_retransmission");
            return;
        }
        /* Too much waits behind the hole: give it up and go on from the first byte known,
         * this segment's or the first held one's, whichever comes first (this segment may
         * fill the hole's end). */
        jump(ts, h, h->ooo && (int32_t)(h->ooo->seq - seq) < 0 ? h->ooo->seq : seq);
        drain(ts, h, pkt);
    }
}

/* An idle stream's holes are given up like any other (nothing will fill them now), so what waits
 * behind them is delivered, with the stream's addresses and the times it was seen (drain); only
 * what the consumer then leaves unfinished is lost. The consumer may be called here: the engine
 * expires streams only where it may track messages (before a frame, at a tick, or from
 * tcp_stream_segment, each after its lookahead is flushed). */
void tcp_stream_expire(struct tcp_stream *ts, uint64_t now_ns)
{
    uint32_t idx;
    while ((idx = table_due(&ts->t, now_ns)) != TABLE_NONE) {
        struct half *h = at(ts, idx);
        if (!h->closed && h->ooo) {
            struct packet own;
            half_packet(h, now_ns, &own);
            give_up_before(ts, h, &own, sent_end(h));
        }
        if (!h->closed && h->buf_len)
            ts->err(ts->ctx, "tcp_idle_timeout");
        remove_half(ts, idx);
    }
}

void tcp_stream_segment(struct tcp_stream *ts, const struct packet *pkt)
{
    struct key k = {pkt->src, pkt->dst, pkt->sport, pkt->dport, pkt->ip_version};
    uint64_t now = pkt->ts_ns, hash;
    uint32_t seq = pkt->tcp_seq, len = pkt->payload_len, idx;
    /* Bytes of the segment that the snap length cut off: never seen, yet sent. */
    uint32_t cut = pkt->payload_wire_len > len ? pkt->payload_wire_len - len : 0;
    uint8_t flags = pkt->tcp_flags;
    struct half *h;

    tcp_stream_expire(ts, now);
    hash = key_hash(&k);
    idx = find(ts, &k, hash);
    /* What this segment acknowledges of the other direction comes before what it carries: a
     * request held behind a hole reaches the consumer before the response that acknowledged
     * it. Its bytes are the other direction's, delivered at this segment's time. */
    if (ts->holes && (flags & DECODE_TCP_ACK)) {
        struct key rk = {pkt->dst, pkt->src, pkt->dport, pkt->sport, pkt->ip_version};
        uint32_t rev = find(ts, &rk, key_hash(&rk));
        if (rev != TABLE_NONE && acks_hole(at(ts, rev), pkt->tcp_ack)) {
            struct half *r = at(ts, rev);
            struct packet own;
            half_packet(r, now, &own);
            give_up_before(ts, r, &own, pkt->tcp_ack);
            if (r->fin_seen && r->next_seq == r->fin_seq)
                close_half(ts, rev, now);
        }
    }

    if (flags & DECODE_TCP_RST) {
        struct key rk = {pkt->dst, pkt->src, pkt->dport, pkt->sport, pkt->ip_version};
        uint32_t rev = find(ts, &rk, key_hash(&rk));
        /* Its sender's half-stream, when known, says where the RST must fall: at its next byte
         * (RFC 5961 §3.2 asks endpoints for exactly that), or ahead of it by up to the window
         * (segments the capture missed), or a little behind. Any other is stale or forged,
         * and ignored as the endpoints ignore it. */
        if (idx != TABLE_NONE && !at(ts, idx)->closed &&
            (uint32_t)(seq - at(ts, idx)->next_seq + RST_BEHIND) > ts->cfg.window + RST_BEHIND) {
            ts->err(ts->ctx, "tcp_rst_ignored");
            return;
        }
        if (idx != TABLE_NONE && !at(ts, idx)->closed) {
            close_half(ts, idx, now);
            at(ts, idx)->rst_closed = RST_OWN;
        }
        if (rev != TABLE_NONE && !at(ts, rev)->closed) {
            close_half(ts, rev, now);
            at(ts, rev)->rst_closed = RST_PEER;
        }
        return;
    }
    if (flags & DECODE_TCP_SYN) {
        seq++; /* the SYN takes one sequence number; data (TCP Fast Open) follows it */
        if (idx == TABLE_NONE) {
            idx = create(ts, &k, hash);
        } else {
            h = at(ts, idx);
            /* Only a SYN with the opening SYN's sequence number is a resend of it. Any other
             * is a new connection on the same addresses and ports, even one whose initial
             * sequence number falls a little behind the old stream's head (a reconnect). */
            if (h->syn_seen && seq == h->syn_seq)
                goto open;
            if (!h->closed && pending(h))
                ts->err(ts->ctx, "tcp_gap");
            release(ts, h);
            h->closed = h->fin_seen = h->flags = h->ack_seen = h->rst_closed = 0;
            table_set_class(&ts->t, idx, CLS_EMPTY); /* a new connection: no data yet */
        }
        h = at(ts, idx);
        h->next_seq = h->syn_seq = seq;
        h->syn_seen = 1;
    } else if (idx == TABLE_NONE) {
        if (len == 0)
            return; /* a bare ACK or FIN of a stream never seen: nothing to follow */
        idx = create(ts, &k, hash);
        h = at(ts, idx);
        h->next_seq = seq;
        h->flags |= TCP_STREAM_LOST; /* picked up mid-stream */
    }
open:
    h = at(ts, idx);
    if (flags & DECODE_TCP_ACK) { /* for holes of the other direction seen later */
        h->last_ack = pkt->tcp_ack;
        h->ack_seen = 1;
    }
    /* Data past the head of a half its own RST ended: that RST was none of its sender's. */
    if (h->closed && h->rst_closed == RST_OWN && len && (int32_t)(seq + len - h->next_seq) > 0 &&
        (uint32_t)(seq - h->next_seq + RST_BEHIND) <= ts->cfg.window + RST_BEHIND) {
        struct key rk = {pkt->dst, pkt->src, pkt->dport, pkt->sport, pkt->ip_version};
        reopen_after_rst(ts, idx, find(ts, &rk, key_hash(&rk)), now);
        h = at(ts, idx);
    }
    if (h->closed) {
        if (len)
            ts->err(ts->ctx, (int32_t)(seq + len - h->next_seq) <= 0 ? "tcp_retransmission"
                                                                     : "tcp_after_close");
        return;
    }
    /* Most recently active last; a stream joins the open ones with its first byte, and takes
     * its reply half, which may not have sent any yet, with it: that half's ACKs are what give
     * up a hole of this one early (acks_hole), so a flood of SYNs must not evict it first. */
    if (len && table_node(&ts->t, idx)->cls == CLS_EMPTY) {
        struct key rk = {pkt->dst, pkt->src, pkt->dport, pkt->sport, pkt->ip_version};
        uint32_t rev = find(ts, &rk, key_hash(&rk));
        if (rev != TABLE_NONE && table_node(&ts->t, rev)->cls == CLS_EMPTY)
            table_set_class(&ts->t, rev, CLS_OPEN);
    }
    table_set_class(&ts->t, idx,
                    len || table_node(&ts->t, idx)->cls == CLS_OPEN ? CLS_OPEN : CLS_EMPTY);
    table_set_deadline(&ts->t, idx, now + ts->cfg.idle_timeout_ns);
    /* A keep-alive: at most one byte, just before the next one expected (RFC 9293 §3.8.4):
     * neither data nor a resend. */
    if (len <= 1 && !(flags & (DECODE_TCP_SYN | DECODE_TCP_FIN)) && seq + 1 == h->next_seq && !cut)
        return;
    /* A hole that this much packet time has not filled will not be: the capture missed the
     * segment, and its sender had no reason to send it again. Go on from the first byte held
     * behind it. (Time that goes backwards, in a capture merged out of order, gives none up.) */
    if (h->ooo && now > h->hole_since && now - h->hole_since >= ts->cfg.hole_timeout_ns) {
        jump(ts, h, h->ooo->seq);
        drain(ts, h, pkt);
    }
    if (flags & DECODE_TCP_FIN) {
        h->fin_seen = 1;
        h->fin_seq = seq + len;
    }
    if (len)
        place(ts, h, pkt, seq, pkt->payload, len);
    /* A cut segment whose captured bytes end at the stream head (they were just delivered, or
     * had been, or none were captured): the bytes cut off are next, and they are known to be
     * missing. Without this every later segment would wait behind them until the out-of-order
     * list gave the hole up. A cut segment held out of order keeps the old course: its hole
     * is given up that way. */
    if (cut && h->next_seq == seq + len) {
        if (h->skip >= cut) { /* the consumer was to discard them anyway: nothing is lost */
            h->skip -= cut;
            h->next_seq += cut;
        } else {
            jump(ts, h, seq + len + cut);
        }
        h->head_ts = now; /* the bytes cut off were on the wire, if not in the capture */
        drain(ts, h, pkt);
        if (flags & DECODE_TCP_FIN)
            h->fin_seq = seq + len + cut;
    }
    /* The other direction may have acknowledged the bytes of a hole before anything past it
     * was seen: the capture missed a response and the request after it, whose ACK covered the
     * response; the next response comes past the hole. */
    if (h->ooo) {
        struct key rk = {pkt->dst, pkt->src, pkt->dport, pkt->sport, pkt->ip_version};
        uint32_t rev = find(ts, &rk, key_hash(&rk));
        if (rev != TABLE_NONE && at(ts, rev)->ack_seen && acks_hole(h, at(ts, rev)->last_ack))
            give_up_before(ts, h, pkt, at(ts, rev)->last_ack);
    }
    if (h->fin_seen && h->next_seq == h->fin_seq)
        close_half(ts, idx, now);
}
