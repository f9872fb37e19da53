/* bpf_ring: reads a BPF ring buffer map (BPF_MAP_TYPE_RINGBUF) mapped by hand. Unlike libbpf's
 * ring_buffer__consume, which gives each record back to the kernel as soon as its callback
 * returns, it hands records out and lets the caller give them back later, in order: the caller
 * may keep reading the last few records it was handed (the engine's lookahead parses a message
 * when it comes and tracks it a few frames later).
 * One thread reads a ring; the kernel's producers write it concurrently. */
#ifndef SIPSCOPE_BPF_RING_H
#define SIPSCOPE_BPF_RING_H

#include <stdint.h>

struct bpf_ring;

/* Maps the ring of map_fd (a BPF_MAP_TYPE_RINGBUF of size bytes) and watches it with an epoll
 * set of its own. Returns NULL with errno set. The map descriptor stays the caller's. */
struct bpf_ring *bpf_ring_open(int map_fd, uint32_t size);

/* Unmaps the ring. NULL is accepted. Records not given back are given back by nothing: the
 * kernel frees the ring with its map. */
void bpf_ring_free(struct bpf_ring *r);

/* An epoll descriptor that becomes readable when the kernel wakes the ring's consumer. */
int bpf_ring_fd(const struct bpf_ring *r);

/* The next record after those already handed out: its bytes in *data and *len, and in *end the
 * position after it, for bpf_ring_release. Returns 1, or 0 when none is ready (the ring is
 * empty, or the next record is still being written). Discarded records are passed over. A
 * record's bytes stay valid until it is released. */
int bpf_ring_next(struct bpf_ring *r, const void **data, uint32_t *len, uint64_t *end);

/* Gives every record before position end back to the kernel (end: an *end of bpf_ring_next, or
 * bpf_ring_read_end). Positions only move forward; an older one is ignored. */
void bpf_ring_release(struct bpf_ring *r, uint64_t end);

/* The position after the last record handed out (or passed over). */
uint64_t bpf_ring_read_end(const struct bpf_ring *r);

#endif
