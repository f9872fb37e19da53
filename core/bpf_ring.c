/* bpf_ring: a BPF ring buffer read in place, records given back by the caller. */
#include "bpf_ring.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/bpf.h>

/* The kernel's layout (kernel/bpf/ringbuf.c): a page holding the consumer position, which the
 * consumer writes; a page holding the producer position; then the data, mapped twice in a row
 * so that a record that wraps around the end reads as one piece. Each record starts with an
 * 8-byte header: its length with the busy and discard bits, then the kernel's page offset. */
/* The kernel's positions are unsigned longs, read here as 64-bit words. */
_Static_assert(sizeof(unsigned long) == sizeof(uint64_t), "64-bit kernels' ring layout");

struct bpf_ring {
    int epoll_fd;
    size_t page;
    uint64_t *consumer_pos; /* shared with the kernel: written with release order */
    const uint64_t *producer_pos;
    const uint8_t *data;
    uint64_t mask;      /* size - 1 */
    uint64_t read;      /* position after the last record handed out */
    uint64_t released;  /* last value stored in *consumer_pos */
    void *producer_map; /* the producer page and the data */
    size_t producer_map_len;
};

struct bpf_ring *bpf_ring_open(int map_fd, uint32_t size)
{
    struct bpf_ring *r;
    struct epoll_event ev = {.events = EPOLLIN};
    void *p;
    int saved;

    if (size == 0 || (size & (size - 1)) != 0) {
        errno = EINVAL;
        return NULL;
    }
    if (!(r = calloc(1, sizeof(*r))))
        return NULL;
    r->epoll_fd = -1;
    r->page = (size_t)sysconf(_SC_PAGESIZE);
    r->mask = size - 1;
    p = mmap(NULL, r->page, PROT_READ | PROT_WRITE, MAP_SHARED, map_fd, 0);
    if (p == MAP_FAILED)
        goto fail;
    r->consumer_pos = p;
    r->producer_map_len = r->page + 2 * (size_t)size;
    p = mmap(NULL, r->producer_map_len, PROT_READ, MAP_SHARED, map_fd, (off_t)r->page);
    if (p == MAP_FAILED)
        goto fail;
    r->producer_map = p;
    r->producer_pos = p;
    r->data = (const uint8_t *)p + r->page;
    r->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (r->epoll_fd < 0 || epoll_ctl(r->epoll_fd, EPOLL_CTL_ADD, map_fd, &ev) != 0)
        goto fail;
    r->read = r->released = __atomic_load_n(r->consumer_pos, __ATOMIC_ACQUIRE);
    return r;

fail:
    saved = errno;
    bpf_ring_free(r);
    errno = saved;
    return NULL;
}

void bpf_ring_free(struct bpf_ring *r)
{
    if (!r)
        return;
    if (r->epoll_fd >= 0)
        close(r->epoll_fd);
    if (r->producer_map)
        munmap(r->producer_map, r->producer_map_len);
    if (r->consumer_pos)
        munmap(r->consumer_pos, r->page);
    free(r);
}

int bpf_ring_fd(const struct bpf_ring *r)
{
    return r->epoll_fd;
}

int bpf_ring_next(struct bpf_ring *r, const void **data, uint32_t *len, uint64_t *end)
{
    uint64_t producer = __atomic_load_n(r->producer_pos, __ATOMIC_ACQUIRE);

    while (r->read < producer) {
        const uint8_t *hdr = r->data + (r->read & r->mask);
        /* Acquire: the record's bytes are read after its busy bit is seen clear. */
        uint32_t word = __atomic_load_n((const uint32_t *)(const void *)hdr, __ATOMIC_ACQUIRE);
        uint32_t n = word & ~(uint32_t)(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT);

        if (word & BPF_RINGBUF_BUSY_BIT)
            return 0; /* reserved, not yet committed: records after it wait for it */
        r->read += ((uint64_t)n + BPF_RINGBUF_HDR_SZ + 7) & ~(uint64_t)7;
        if (word & BPF_RINGBUF_DISCARD_BIT)
            continue;
        *data = hdr + BPF_RINGBUF_HDR_SZ;
        *len = n;
        *end = r->read;
        return 1;
    }
    return 0;
}

void bpf_ring_release(struct bpf_ring *r, uint64_t end)
{
    if (end <= r->released)
        return;
    r->released = end;
    /* Release: the kernel may overwrite the records only after they have been read. */
    __atomic_store_n(r->consumer_pos, end, __ATOMIC_RELEASE);
}

uint64_t bpf_ring_read_end(const struct bpf_ring *r)
{
    return r->read;
}
