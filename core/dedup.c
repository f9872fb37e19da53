/* dedup: a fixed table of recent packets' fingerprints and paths, to tell copies of a packet
 * captured on several paths (see dedup.h for the rule); nothing is kept per packet. */
#include "dedup.h"

#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "slice.h"

/* Four slots a bucket: a lookup reads 96 contiguous bytes. */
#define BUCKET 4u

struct dedup_slot {
    uint64_t fp;   /* the contents (fingerprint); 0: empty */
    uint64_t path; /* where it was seen (path_of) */
    uint64_t time; /* when */
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
    memset(d->slots, 0, DEDUP_SLOTS * sizeof(*d->slots)); /* fp 0: empty */
    return d;
}

void dedup_free(struct dedup *d)
{
    if (!d)
        return;
    free(d->slots);
    free(d);
}

static uint64_t word(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof(w));
    return w;
}

/* The packet's source and destination addresses (16 bytes each, IPv4 in the first 4) folded into
 * h. */
static uint64_t mix_addresses(uint64_t h, const struct packet *pkt)
{
    h = hash_mix(h, word(pkt->src));
    h = hash_mix(h, word(pkt->src + 8));
    h = hash_mix(h, word(pkt->dst));
    return hash_mix(h, word(pkt->dst + 8));
}

/* What a copy keeps: the payload, and where in its stream or datagram it goes (a segment's
 * sequence and acknowledgement numbers and flags). Addresses and ports are left out of a whole
 * datagram's or segment's (NAT changes them), but kept in a fragment's: a fragment NATed on its
 * way is a piece of another datagram to reassemble (its first fragment, with the UDP header,
 * differs), and its copy is told once whole. TTL and checksums are left out (routing changes
 * them). */
static uint64_t fingerprint(enum decode_result r, const struct packet *pkt)
{
    uint64_t seed = (uint64_t)r << 56 | (uint64_t)pkt->l4_proto << 48;

    if (r == DECODE_TCP) {
        seed ^= hash_mix((uint64_t)pkt->tcp_seq << 8 | pkt->tcp_flags, pkt->tcp_ack);
    } else if (r == DECODE_FRAGMENT) {
        seed ^= hash_mix((uint64_t)pkt->frag_id << 32 | pkt->frag_offset, pkt->frag_more);
        seed = mix_addresses(seed, pkt);
    }
    uint64_t fp = slice_hash_wide(slice_make((const char *)pkt->payload, pkt->payload_len), seed);
    return fp ? fp : 1;
}

/* The path a packet was seen on: the interface (live, or named by a cooked v2 header) and the
 * direction it was captured in, its VLAN tags, and the tunnels' sources it came through (a mirror,
 * a HEP agent). Copies differ there: a bridge and its port, a VLAN and its parent, a bond and its
 * slave, in and out of one interface (hairpin NAT), a HEP agent's copy beside the packet captured
 * here or beside another agent's copy. The same bytes again on the same path were sent again (a
 * flood, a test tool, two senders) and count, but from a mirror (dedup_repeat). Only where nothing
 * tells the direction (a file of plain Ethernet frames) do addresses and ports stand in for the
 * path, so that a copy NATed on its way is found there too. */
static uint64_t path_of(const struct packet *pkt)
{
    uint64_t v =
        hash_mix((uint64_t)pkt->iface << 32 | pkt->link_ifindex,
                 (uint64_t)pkt->tunnel_from << 16 | (uint64_t)pkt->dir << 8 | pkt->n_vlans);
    for (unsigned i = 0; i < pkt->n_vlans && i < DECODE_MAX_VLANS; i++)
        v = hash_mix(v, pkt->vlans[i]);
    if (pkt->dir == CAPTURE_DIR_UNKNOWN)
        v = mix_addresses(hash_mix(v, (uint64_t)pkt->sport << 16 | pkt->dport), pkt);
    return v;
}

static uint64_t distance(uint64_t a, uint64_t b)
{
    return a > b ? a - b : b - a;
}

bool dedup_repeat(struct dedup *d, enum decode_result r, const struct packet *pkt, uint64_t now_ns)
{
    /* A packet cut at the snap length is cut at another length on another interface (its link
     * header differs): not recognised, so kept. */
    if ((r != DECODE_UDP && r != DECODE_TCP && r != DECODE_FRAGMENT) || pkt->truncated)
        return false;
    uint64_t fp = fingerprint(r, pkt), path = path_of(pkt);
    /* Traffic for other hosts comes from a mirror (SPAN, TAP, a mirroring tunnel), which sends
     * one packet twice on one path when it copies two ports, or both directions, that the
     * packet crosses: there the same bytes again within the window are a copy too. */
    bool mirrored = pkt->mirrored || pkt->dir == CAPTURE_DIR_OTHERHOST;
    struct dedup_slot *b = &d->slots[(fp & d->mask) * BUCKET];
    struct dedup_slot *victim = NULL, *oldest = b;

    for (unsigned i = 0; i < BUCKET; i++) {
        if (!b[i].fp || distance(now_ns, b[i].time) > d->window_ns) {
            if (!victim)
                victim = &b[i]; /* empty, or its window is over */
            continue;
        }
        if (b[i].fp == fp) {
            if (b[i].path != path || mirrored)
                return true;
            b[i].time = now_ns; /* sent again: its copies are measured from this one */
            return false;
        }
        if (b[i].time < oldest->time)
            oldest = &b[i];
    }
    /* A bucket of four packets all within the window gives up the one seen first. */
    if (!victim)
        victim = oldest;
    *victim = (struct dedup_slot){fp, path, now_ns};
    return false;
}
