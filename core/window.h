/* window: sliding-window event counters keyed by a byte string (a source address, an AoR), for
 * rate signals such as "INVITEs per source in the last 10 s". Time is the caller's (packet
 * time, in ns); there is no timer and no thread. It does not rate-limit or decide anything.
 *
 * Each key has a ring of `buckets` counters of bucket_ns = window_ns / buckets each. Time t
 * falls in bucket number floor(t / bucket_ns); an event added at time t is counted at time
 * `now` while floor(now / bucket_ns) - floor(t / bucket_ns) < buckets. So an event stays
 * counted between window_ns - bucket_ns and window_ns after it happened: exactly window_ns
 * when it falls on the start of its bucket. More buckets, sharper edge.
 *
 * Clock: the window keeps the latest time it was given. A time earlier than that (packets from
 * two interfaces slightly out of order, a clock step) is taken as that latest time: the event
 * counts now, in the newest bucket. State never goes backwards and nothing is dropped.
 *
 * Memory: max_keys entries of about 140 + 4 * buckets bytes, reserved (not touched) at
 * window_new; nothing allocates afterwards.
 *
 * Eviction: when all keys are in use, adding a new key first drops the least recently updated
 * key (by window_add with n > 0; window_count does not refresh), at bucket resolution: keys
 * are ordered by the last bucket they were updated in, and keys last updated in the same
 * bucket by their first update in it. Keys whose events have all left the window hold nothing:
 * each add first drops up to two of them quietly, oldest first (more than the one key an add
 * can create, so they do not pile up). So when a slot is needed the oldest key still counts
 * events, and dropping it is an eviction, counted by window_evictions: that is information
 * lost. */
#ifndef SIPSCOPE_WINDOW_H
#define SIPSCOPE_WINDOW_H

#include <stddef.h>
#include <stdint.h>

/* Keys longer than this are told apart by their length, their first WINDOW_KEY_MAX bytes and a
 * 64-bit hash (seeded per window) of all their bytes: two distinct long keys share a counter
 * only if all three agree. An IPv6 address in text is at most 45 bytes. */
#define WINDOW_KEY_MAX 64
#define WINDOW_MAX_BUCKETS 1024
#define WINDOW_MAX_KEYS (1u << 24)

struct window;

/* A new window of window_ns nanoseconds split into `buckets` buckets (1..WINDOW_MAX_BUCKETS;
 * window_ns must be a non-zero multiple of buckets) holding at most max_keys keys
 * (1..WINDOW_MAX_KEYS). Returns NULL with errno EINVAL for bad arguments or ENOMEM. Owned by
 * the caller; release with window_free. */
struct window *window_new(uint64_t window_ns, uint32_t buckets, uint32_t max_keys);

/* The memory a window of this shape holds once max_keys keys are in it, for the caller's
 * accounting (valid arguments of window_new). */
size_t window_bytes(uint32_t buckets, uint32_t max_keys);

/* Frees the window; NULL is fine. */
void window_free(struct window *w);

/* Adds n events for key[0..keylen) at time now_ns (see Clock above) and returns the key's count
 * within the window, these events included. Any byte string is a key, the empty one too; it is
 * copied. A bucket saturates at UINT32_MAX events. n = 0 reads like window_count but moves the
 * clock; it neither creates nor refreshes a key. Never fails, never allocates; may evict
 * another key. */
uint64_t window_add(struct window *w, const char *key, size_t keylen, uint64_t now_ns, uint32_t n);

/* The key's count within the window at time now_ns (or the window's latest time if later), 0
 * for an unknown key. Changes nothing: neither the clock nor the key's recency. */
uint64_t window_count(const struct window *w, const char *key, size_t keylen, uint64_t now_ns);

/* Keys dropped to make room while they still counted events in the window. */
uint64_t window_evictions(const struct window *w);

/* Keys held now. */
uint32_t window_keys(const struct window *w);

#endif
