/* ip_reasm: IPv4 and IPv6 fragment reassembly on a bounded table (see ip_reasm.h for policy). */
#include "ip_reasm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "slice.h"
#include "table.h"

#define NS_PER_S 1000000000ULL
#define BUF_MIN 2048 /* first allocation: one Ethernet fragment and change */

struct piece {
    uint32_t start, end; /* [start, end) of the datagram's payload held in buf */
};

struct dgram {
    struct table_node node;
    uint8_t *buf;
    uint32_t cap;   /* bytes allocated in buf */
    uint32_t total; /* payload length, known once the last fragment came; 0 before */
    uint32_t hdr_len; /* the first fragment's frag_hdr_len, once it is held (pieces[0] at 0) */
    uint32_t id;
    uint8_t version, proto, n_pieces;
    uint8_t src[16], dst[16];
    struct piece pieces[IP_REASM_MAX_HOLES]; /* sorted, disjoint, never adjacent */
};

/* A datagram reassembled a moment ago. A copy of one of its fragments that comes after it
 * (a capture that sees each frame twice: a SPAN port mirroring both ways, a VLAN interface and
 * its parent) would otherwise open a datagram that can never complete, and time out. */
#define RECENT_DONE 256
#define RECENT_DONE_NS (1 * NS_PER_S)

struct done_key {
    uint64_t hash, ts_ns; /* ts_ns 0: an empty slot */
    uint32_t id;
    uint8_t version, proto;
    uint8_t src[16], dst[16];
};

struct ip_reasm {
    struct ip_reasm_config cfg;
    struct table t;
    ip_reasm_error_fn err;
    void *ctx;
    uint64_t bytes, evictions, completed;
    uint8_t *done; /* the last reassembled payload, handed to the caller */
    struct done_key recent[RECENT_DONE]; /* a ring of the last datagrams completed */
    uint32_t recent_next;
};

void ip_reasm_config_defaults(struct ip_reasm_config *cfg)
{
    cfg->max_datagrams = 4096;
    cfg->max_bytes = 64u << 20;
    cfg->timeout_ns = 30 * NS_PER_S;
}

struct ip_reasm *ip_reasm_new(const struct ip_reasm_config *cfg, ip_reasm_error_fn err, void *ctx)
{
    struct ip_reasm *r;

    if (cfg->max_datagrams == 0 || cfg->max_bytes == 0)
        return NULL;
    r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->cfg = *cfg;
    r->err = err;
    r->ctx = ctx;
    if (table_init(&r->t, sizeof(struct dgram), cfg->max_datagrams) != 0) {
        free(r);
        return NULL;
    }
    return r;
}

static struct dgram *dg_at(const struct ip_reasm *r, uint32_t idx)
{
    return table_entry(&r->t, idx);
}

/* Frees a datagram's buffer and its slot; reason NULL for an eviction (counted apart). */
static void drop(struct ip_reasm *r, uint32_t idx, const char *reason)
{
    struct dgram *d = dg_at(r, idx);
    r->bytes -= d->cap;
    free(d->buf);
    table_remove(&r->t, idx);
    if (reason)
        r->err(r->ctx, reason);
    else
        r->evictions++;
}

void ip_reasm_free(struct ip_reasm *r)
{
    if (!r)
        return;
    for (uint32_t i = 0; i < r->t.high_water; i++)
        if (table_node(&r->t, i)->in_use)
            free(dg_at(r, i)->buf);
    table_fini(&r->t);
    free(r->done);
    free(r);
}

void ip_reasm_expire(struct ip_reasm *r, uint64_t now_ns)
{
    uint32_t idx;
    while ((idx = table_due(&r->t, now_ns)) != TABLE_NONE)
        drop(r, idx, "fragment_timeout");
}

uint64_t ip_reasm_next_deadline(const struct ip_reasm *r)
{
    return table_next_deadline(&r->t);
}

void ip_reasm_get_stats(const struct ip_reasm *r, struct ip_reasm_stats *out)
{
    out->datagrams = r->t.used;
    out->bytes = r->bytes;
    out->evictions = r->evictions;
    out->completed = r->completed;
}

static uint64_t key_hash(const struct packet *pkt)
{
    size_t alen = pkt->ip_version == 4 ? 4 : 16;
    uint64_t h = slice_hash(slice_make((const char *)pkt->src, alen), pkt->ip_version);
    h = hash_mix(h, slice_hash(slice_make((const char *)pkt->dst, alen), 0));
    return hash_mix(h, (uint64_t)pkt->frag_id << 8 | pkt->l4_proto);
}

static uint32_t find(const struct ip_reasm *r, const struct packet *pkt, uint64_t hash)
{
    for (uint32_t idx = table_find(&r->t, hash); idx != TABLE_NONE;
         idx = table_find_next(&r->t, idx, hash)) {
        const struct dgram *d = dg_at(r, idx);
        if (d->version == pkt->ip_version && d->proto == pkt->l4_proto && d->id == pkt->frag_id &&
            memcmp(d->src, pkt->src, sizeof d->src) == 0 &&
            memcmp(d->dst, pkt->dst, sizeof d->dst) == 0)
            return idx;
    }
    return TABLE_NONE;
}

/* Datagrams by what their buffer holds. A sparse one made room for far more than it received:
 * its fragments came far apart, as a flood's do (one 8-byte fragment at offset 65504 makes
 * room for 64 KiB, so that a thousand 42-byte frames filled the 64 MiB budget and evicted
 * every honest datagram in progress). Under pressure the sparse ones go first. */
enum { CLS_DENSE = 0, CLS_SPARSE = 1 };

static void classify(struct ip_reasm *r, uint32_t idx)
{
    const struct dgram *d = dg_at(r, idx);
    uint64_t held = 0;

    for (uint32_t i = 0; i < d->n_pieces; i++)
        held += d->pieces[i].end - d->pieces[i].start;
    uint8_t cls = d->cap > BUF_MIN && held * 8 < d->cap ? CLS_SPARSE : CLS_DENSE;
    if (table_node(&r->t, idx)->cls != cls)
        table_set_class(&r->t, idx, cls);
}

/* Evicts the oldest sparse datagram other than keep, else the oldest other one. Returns false
 * when there is none. */
static bool evict_oldest(struct ip_reasm *r, uint32_t keep)
{
    static const uint8_t order[] = {CLS_SPARSE, CLS_DENSE};

    for (size_t i = 0; i < sizeof order; i++) {
        uint32_t idx = table_oldest(&r->t, order[i]);
        if (idx == keep && idx != TABLE_NONE)
            idx = table_age_next(&r->t, idx);
        if (idx != TABLE_NONE) {
            drop(r, idx, NULL);
            return true;
        }
    }
    return false;
}

/* Grows d's buffer to hold at least need bytes, within the byte budget (evicting older
 * datagrams to make room). Returns 0, or -ENOMEM when it cannot. */
static int reserve(struct ip_reasm *r, uint32_t idx, uint32_t need)
{
    struct dgram *d = dg_at(r, idx);
    uint32_t cap = d->cap ? d->cap : BUF_MIN;
    uint8_t *buf;

    if (need <= d->cap)
        return 0;
    while (cap < need)
        cap *= 2;
    if (cap > IP_REASM_MAX_DATAGRAM)
        cap = IP_REASM_MAX_DATAGRAM;
    while (r->bytes + (cap - d->cap) > r->cfg.max_bytes) {
        if (!evict_oldest(r, idx)) {
            /* Alone and still over budget: ask for exactly what is needed. */
            if (r->bytes + (need - d->cap) > r->cfg.max_bytes)
                return -ENOMEM;
            cap = need;
            break;
        }
    }
    buf = realloc(d->buf, cap);
    if (!buf)
        return -ENOMEM;
    r->bytes += cap - d->cap;
    d->buf = buf;
    d->cap = cap;
    return 0;
}

/* Records [start, end) as held, merging with neighbours. Returns -ENOSPC when that would make
 * more than IP_REASM_MAX_HOLES pieces. The range overlaps nothing held (checked before). */
static int add_piece(struct dgram *d, uint32_t start, uint32_t end)
{
    uint32_t i = 0;
    while (i < d->n_pieces && d->pieces[i].end < start)
        i++;
    /* pieces[i] is the first that ends at or after start: it touches us, or lies after us. */
    bool joins_prev = i < d->n_pieces && d->pieces[i].end == start;
    if (joins_prev) {
        d->pieces[i].end = end;
        if (i + 1 < d->n_pieces && d->pieces[i + 1].start == end) {
            d->pieces[i].end = d->pieces[i + 1].end;
            memmove(&d->pieces[i + 1], &d->pieces[i + 2],
                    (d->n_pieces - i - 2) * sizeof(struct piece));
            d->n_pieces--;
        }
        return 0;
    }
    if (i < d->n_pieces && d->pieces[i].start == end) {
        d->pieces[i].start = start;
        return 0;
    }
    if (d->n_pieces == IP_REASM_MAX_HOLES)
        return -ENOSPC;
    memmove(&d->pieces[i + 1], &d->pieces[i], (d->n_pieces - i) * sizeof(struct piece));
    d->pieces[i] = (struct piece){start, end};
    d->n_pieces++;
    return 0;
}

/* Whether pkt belongs to a datagram completed less than RECENT_DONE_NS ago. */
static bool recently_done(const struct ip_reasm *r, const struct packet *pkt, uint64_t hash)
{
    for (uint32_t i = 0; i < RECENT_DONE; i++) {
        const struct done_key *k = &r->recent[i];
        if (k->hash == hash && k->ts_ns && pkt->ts_ns - k->ts_ns < RECENT_DONE_NS &&
            k->version == pkt->ip_version && k->proto == pkt->l4_proto && k->id == pkt->frag_id &&
            memcmp(k->src, pkt->src, sizeof k->src) == 0 &&
            memcmp(k->dst, pkt->dst, sizeof k->dst) == 0)
            return true;
    }
    return false;
}

static void remember_done(struct ip_reasm *r, const struct dgram *d, uint64_t hash, uint64_t ts_ns)
{
    struct done_key *k = &r->recent[r->recent_next++ % RECENT_DONE];
    *k = (struct done_key){.hash = hash,
                           .ts_ns = ts_ns ? ts_ns : 1,
                           .id = d->id,
                           .version = d->version,
                           .proto = d->proto};
    memcpy(k->src, d->src, sizeof k->src);
    memcpy(k->dst, d->dst, sizeof k->dst);
}

/* Whether the datagram, with this fragment, would pass what Linux reassembles: 65535 bytes
 * counting the first fragment's header with the payload (ip_frag_reasm: its IPv4 header;
 * ip6_frag_reasm: the IPv6 payload length, so the extension headers before the Fragment header
 * but neither the fixed header nor the Fragment header). No endpoint receives such a datagram.
 * Until the first fragment comes its header is taken at its least: 20 bytes, or none for IPv6. */
static bool too_big(const struct ip_reasm *r, uint32_t idx, const struct packet *pkt, uint32_t end)
{
    uint64_t hdr = pkt->ip_version == 4 ? 20 : 0, far = end;

    if (pkt->frag_offset == 0)
        hdr = pkt->frag_hdr_len;
    if (idx != TABLE_NONE) {
        const struct dgram *d = dg_at(r, idx);
        if (d->n_pieces && d->pieces[0].start == 0)
            hdr = d->hdr_len; /* the first copy of the first fragment is the one kept */
        if (d->total > far)
            far = d->total;
        if (d->n_pieces && d->pieces[d->n_pieces - 1].end > far)
            far = d->pieces[d->n_pieces - 1].end;
    }
    return hdr + far > IP_REASM_MAX_DATAGRAM;
}

/* Adds the fragment; returns the index of its datagram when that is now complete, else
 * TABLE_NONE. */
static uint32_t add(struct ip_reasm *r, const struct packet *pkt)
{
    uint32_t start = pkt->frag_offset, len = pkt->payload_len, end = start + len;
    uint64_t hash = key_hash(pkt);
    uint32_t idx = find(r, pkt, hash);
    struct dgram *d;

    if (pkt->truncated) {
        if (idx != TABLE_NONE)
            drop(r, idx, "fragment_truncated");
        else
            r->err(r->ctx, "fragment_truncated");
        return TABLE_NONE;
    }
    if (len == 0 || (pkt->frag_more && len % 8 != 0)) {
        r->err(r->ctx, "fragment_bad_length");
        return TABLE_NONE;
    }
    if (too_big(r, idx, pkt, end)) {
        if (idx != TABLE_NONE)
            drop(r, idx, "fragment_too_big");
        else
            r->err(r->ctx, "fragment_too_big");
        return TABLE_NONE;
    }
    if (idx == TABLE_NONE) {
        if (recently_done(r, pkt, hash)) {
            r->err(r->ctx, "fragment_duplicate");
            return TABLE_NONE;
        }
        idx = table_insert(&r->t, hash, 0, 0);
        if (idx == TABLE_NONE) {
            evict_oldest(r, TABLE_NONE);
            idx = table_insert(&r->t, hash, 0, 0);
        }
        d = dg_at(r, idx);
        d->version = pkt->ip_version;
        d->proto = pkt->l4_proto;
        d->id = pkt->frag_id;
        memcpy(d->src, pkt->src, sizeof d->src);
        memcpy(d->dst, pkt->dst, sizeof d->dst);
        table_set_deadline(&r->t, idx, pkt->ts_ns + r->cfg.timeout_ns);
    }
    d = dg_at(r, idx);

    /* The last fragment fixes the length; nothing may lie past it. */
    if (!pkt->frag_more) {
        if ((d->total && d->total != end) ||
            (d->n_pieces && d->pieces[d->n_pieces - 1].end > end)) {
            drop(r, idx, "fragment_bad_length");
            return TABLE_NONE;
        }
        d->total = end;
    } else if (d->total && end > d->total) {
        drop(r, idx, "fragment_bad_length");
        return TABLE_NONE;
    }

    for (uint32_t i = 0; i < d->n_pieces; i++) {
        const struct piece *p = &d->pieces[i];
        if (start >= p->end || end <= p->start)
            continue;
        if (start >= p->start && end <= p->end) {
            r->err(r->ctx, memcmp(d->buf + start, pkt->payload, len) == 0 ? "fragment_duplicate"
                                                                          : "fragment_conflict");
            return TABLE_NONE;
        }
        drop(r, idx, "fragment_overlap");
        return TABLE_NONE;
    }

    if (reserve(r, idx, end) != 0) {
        drop(r, idx, "fragment_no_memory");
        return TABLE_NONE;
    }
    d = dg_at(r, idx);
    if (add_piece(d, start, end) != 0) {
        drop(r, idx, "fragment_holes");
        return TABLE_NONE;
    }
    memcpy(d->buf + start, pkt->payload, len);
    if (start == 0)
        d->hdr_len = pkt->frag_hdr_len;
    if (d->total && d->n_pieces == 1 && d->pieces[0].start == 0 && d->pieces[0].end == d->total)
        return idx;
    classify(r, idx);
    return TABLE_NONE;
}

int ip_reasm_add(struct ip_reasm *r, const struct packet *pkt, const uint8_t **data, uint32_t *len)
{
    /* pkt may point into the previous output: keep it alive until the fragment is copied. */
    uint8_t *old = r->done;
    uint32_t idx;

    r->done = NULL;
    ip_reasm_expire(r, pkt->ts_ns);
    idx = add(r, pkt);
    if (idx != TABLE_NONE) {
        struct dgram *d = dg_at(r, idx);
        remember_done(r, d, table_node(&r->t, idx)->hash, pkt->ts_ns);
        r->done = d->buf;
        *data = d->buf;
        *len = d->total;
        r->bytes -= d->cap;
        r->completed++;
        table_remove(&r->t, idx);
    }
    free(old);
    return idx != TABLE_NONE;
}
