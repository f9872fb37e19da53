/* window: per-key rings of bucket counters on a bounded table (core/table), with one age list
 * in update order for least-recently-updated eviction. */
#include "window.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "slice.h"
#include "table.h"

struct wkey {
    struct table_node node;
    uint64_t epoch; /* bucket number of the newest bucket, ring[head] */
    uint64_t total; /* sum of the ring */
    uint32_t head;
    uint32_t keylen; /* full length (capped at UINT32_MAX); the first WINDOW_KEY_MAX bytes are
                        kept after the ring, so that a lookup of a short key and its count
                        touch the entry's first two cache lines only */
    uint32_t ring[]; /* ring[head - i mod buckets] counts bucket epoch - i */
};

struct window {
    struct table t;
    uint64_t bucket_ns;
    uint64_t clock;       /* latest time given */
    uint64_t clock_epoch; /* its bucket number, and where that bucket starts: */
    uint64_t epoch_start; /* a time in the same bucket needs no division */
    uint64_t seed;
    uint64_t evictions;
    uint32_t buckets;
    uint32_t key_off; /* offset of the key bytes in an entry */
};

/* Two stale keys dropped per add outpace the one key an add can create. */
#define STALE_DROPS_PER_ADD 2

/* An entry: the key's node and ring, then its first WINDOW_KEY_MAX bytes at key_off. */
static uint32_t key_offset(uint32_t buckets)
{
    return (uint32_t)((sizeof(struct wkey) + (size_t)buckets * sizeof(uint32_t) + 7) & ~(size_t)7);
}

size_t window_bytes(uint32_t buckets, uint32_t max_keys)
{
    return sizeof(struct window) + table_bytes(key_offset(buckets) + WINDOW_KEY_MAX, max_keys);
}

struct window *window_new(uint64_t window_ns, uint32_t buckets, uint32_t max_keys)
{
    struct window *w;
    size_t entry;

    if (buckets == 0 || buckets > WINDOW_MAX_BUCKETS || window_ns == 0 || window_ns % buckets ||
        max_keys == 0 || max_keys > WINDOW_MAX_KEYS) {
        errno = EINVAL;
        return NULL;
    }
    w = calloc(1, sizeof(*w));
    if (!w) {
        errno = ENOMEM;
        return NULL;
    }
    w->key_off = key_offset(buckets);
    entry = w->key_off + WINDOW_KEY_MAX;
    if (table_init(&w->t, entry, max_keys) != 0) {
        free(w);
        errno = ENOMEM;
        return NULL;
    }
    w->bucket_ns = window_ns / buckets;
    w->buckets = buckets;
    /* A per-window seed keeps an attacker who picks source addresses from aiming at one hash
     * chain or at a long-key collision. */
    if (getrandom(&w->seed, sizeof w->seed, GRND_NONBLOCK) != sizeof w->seed)
        w->seed = (uint64_t)(uintptr_t)w ^ (uint64_t)clock();
    return w;
}

void window_free(struct window *w)
{
    if (!w)
        return;
    table_fini(&w->t);
    free(w);
}

/* Bucket number of time t >= w->clock, without a division when t is in the clock's bucket. */
static uint64_t epoch_of(const struct window *w, uint64_t t)
{
    if (t - w->epoch_start < w->bucket_ns)
        return w->clock_epoch;
    return t / w->bucket_ns;
}

/* The window's time for a caller's time: never earlier than the latest seen. */
static uint64_t effective(const struct window *w, uint64_t now)
{
    return now > w->clock ? now : w->clock;
}

static struct wkey *key_at(const struct window *w, uint32_t idx)
{
    return table_entry(&w->t, idx);
}

static uint8_t *key_bytes(const struct window *w, const struct wkey *k)
{
    return (uint8_t *)k + w->key_off;
}

static uint32_t stored_len(size_t len)
{
    return len > UINT32_MAX ? UINT32_MAX : (uint32_t)len;
}

static uint32_t key_find(const struct window *w, const char *key, size_t len, uint64_t h)
{
    size_t kept = len < WINDOW_KEY_MAX ? len : WINDOW_KEY_MAX;

    for (uint32_t idx = table_find(&w->t, h); idx != TABLE_NONE;
         idx = table_find_next(&w->t, idx, h)) {
        const struct wkey *k = key_at(w, idx);
        if (k->keylen == stored_len(len) && (kept == 0 || memcmp(key_bytes(w, k), key, kept) == 0))
            return idx;
    }
    return TABLE_NONE;
}

/* Whether every bucket of the key is out of the window at bucket number e. */
static bool key_stale(const struct window *w, const struct wkey *k, uint64_t e)
{
    return e - k->epoch >= w->buckets;
}

/* Moves the key's ring forward to bucket number e >= k->epoch, clearing the buckets that left
 * the window. */
static void key_advance(const struct window *w, struct wkey *k, uint64_t e)
{
    uint64_t d = e - k->epoch;

    if (d >= w->buckets) {
        memset(k->ring, 0, (size_t)w->buckets * sizeof(k->ring[0]));
        k->total = 0;
    } else {
        for (uint64_t i = 0; i < d; i++) {
            k->head = k->head + 1 == w->buckets ? 0 : k->head + 1;
            k->total -= k->ring[k->head];
            k->ring[k->head] = 0;
        }
    }
    k->epoch = e;
}

/* The key's count at bucket number e >= k->epoch: the ring less the d oldest buckets, which
 * have left the window (they follow head in the ring). */
static uint64_t key_count(const struct window *w, const struct wkey *k, uint64_t e)
{
    uint64_t d = e - k->epoch, expired = 0;
    uint32_t slot = k->head;

    if (d >= w->buckets)
        return 0;
    for (uint64_t i = 0; i < d; i++) {
        slot = slot + 1 == w->buckets ? 0 : slot + 1;
        expired += k->ring[slot];
    }
    return k->total - expired;
}

uint64_t window_add(struct window *w, const char *key, size_t keylen, uint64_t now_ns, uint32_t n)
{
    uint64_t t = effective(w, now_ns), e = epoch_of(w, t), h;
    uint32_t idx, room;
    struct wkey *k;

    if (e != w->clock_epoch) {
        w->clock_epoch = e;
        w->epoch_start = e * w->bucket_ns;
    }
    w->clock = t;
    for (int i = 0; i < STALE_DROPS_PER_ADD && w->t.used; i++) {
        idx = table_oldest(&w->t, 0);
        if (!key_stale(w, key_at(w, idx), e))
            break;
        table_remove(&w->t, idx);
    }
    h = slice_hash(slice_make(key, keylen), w->seed);
    idx = key_find(w, key, keylen, h);
    if (n == 0)
        return idx == TABLE_NONE ? 0 : key_count(w, key_at(w, idx), e);
    if (idx == TABLE_NONE) {
        if (w->t.used == w->t.cap) {
            /* The oldest key is live: had it been stale, the loop above would have dropped
             * it. Every add puts an event in the key's newest bucket, so live keys count at
             * least one event and losing one is an eviction. */
            uint32_t old = table_oldest(&w->t, 0);
            assert(!key_stale(w, key_at(w, old), e));
            table_remove(&w->t, old);
            w->evictions++;
        }
        idx = table_insert(&w->t, h, 0, 0); /* cannot fail: a slot was just freed if needed */
        k = key_at(w, idx);
        k->epoch = e;
        k->keylen = stored_len(keylen);
        if (keylen)
            memcpy(key_bytes(w, k), key, keylen < WINDOW_KEY_MAX ? keylen : WINDOW_KEY_MAX);
    } else {
        k = key_at(w, idx);
        if (e != k->epoch) {
            /* Recency at bucket resolution: relinking touches two neighbours, three cache
             * misses in a large table, so a burst within one bucket relinks only once. */
            table_set_class(&w->t, idx, 0);
            key_advance(w, k, e);
        }
    }
    room = UINT32_MAX - k->ring[k->head];
    if (n > room)
        n = room;
    k->ring[k->head] += n;
    k->total += n;
    return k->total;
}

uint64_t window_count(const struct window *w, const char *key, size_t keylen, uint64_t now_ns)
{
    uint64_t e = epoch_of(w, effective(w, now_ns));
    uint32_t idx = key_find(w, key, keylen, slice_hash(slice_make(key, keylen), w->seed));

    return idx == TABLE_NONE ? 0 : key_count(w, key_at(w, idx), e);
}

uint64_t window_evictions(const struct window *w)
{
    return w->evictions;
}

uint32_t window_keys(const struct window *w)
{
    return w->t.used;
}
