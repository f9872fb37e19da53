#include "dedup.h"

#include <stdlib.h>

#include "slice.h"

/* Four slots a bucket, one cache line: a lookup reads one line. */
#define BUCKET 4u

struct dedup_slot {
    uint64_t fp;   /* 0: empty */
    uint64_t time; /* when the packet was seen */
};

struct dedup {
    uint64_t window_ns;
    uint32_t mask; /* buckets - 1 */
    struct dedup_slot *slots;
};

struct dedup *dedup_new(uint64_t window_ns)
{
    struct dedup *d = calloc(1, sizeof(*d));

    if (!d)
        return NULL;
    d->window_ns = window_ns;
    d->mask = DEDUP_SLOTS / BUCKET - 1;
    if (posix_memalign((void **)&d->slots, 64, DEDUP_SLOTS * sizeof(*d->slots)) != 0) {
        free(d);
        return NULL;
    }
    for (uint32_t i = 0; i < DEDUP_SLOTS; i++)
        d->slots[i] = (struct dedup_slot){0, 0};
    return d;
}

void dedup_free(struct dedup *d)
{
    if (!d)
        return;
    free(d->slots);
    free(d);
}

/* What a copy keeps: the payload, and where in its stream or datagram it goes. Addresses and
 * ports are left out (NAT changes them); so are TTL and checksums (routing changes them). */
static uint64_t fingerprint(enum decode_result r, const struct packet *pkt)
{
    uint64_t seed = (uint64_t)r << 56 | (uint64_t)pkt->l4_proto << 48;

    if (r == DECODE_TCP)
        seed ^= (uint64_t)pkt->tcp_seq << 8 | pkt->tcp_flags;
    else if (r == DECODE_FRAGMENT)
        seed ^= hash_mix((uint64_t)pkt->frag_id << 32 | pkt->frag_offset, pkt->frag_more);
    uint64_t fp = slice_hash(slice_make((const char *)pkt->payload, pkt->payload_len), seed);
    return fp ? fp : 1;
}

static uint64_t distance(uint64_t a, uint64_t b)
{
    return a > b ? a - b : b - a;
}

bool dedup_repeat(struct dedup *d, enum decode_result r, const struct packet *pkt, uint64_t now_ns)
{
    if (r != DECODE_UDP && r != DECODE_TCP && r != DECODE_FRAGMENT)
        return false;
    uint64_t fp = fingerprint(r, pkt);
    struct dedup_slot *b = &d->slots[(fp & d->mask) * BUCKET];
    struct dedup_slot *victim = NULL, *oldest = b;

    for (unsigned i = 0; i < BUCKET; i++) {
        if (!b[i].fp || distance(now_ns, b[i].time) > d->window_ns) {
            if (!victim)
                victim = &b[i]; /* empty, or its window is over */
            continue;
        }
        if (b[i].fp == fp)
            return true;
        if (b[i].time < oldest->time)
            oldest = &b[i];
    }
    /* A bucket of four packets all within the window gives up the one seen first. */
    if (!victim)
        victim = oldest;
    victim->fp = fp;
    victim->time = now_ns;
    return false;
}
