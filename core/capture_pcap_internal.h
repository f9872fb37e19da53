/* capture_pcap_internal: what capture_pcap.c (opening, classic pcap, libpcap) and capture_pcapng.c
 * (the pcapng reader) share, for those two files only: the reader's state, the mapped file's
 * readahead, byte-order reads, times and frames. Not a contract for any other module. */
#ifndef SIPSCOPE_CAPTURE_PCAP_INTERNAL_H
#define SIPSCOPE_CAPTURE_PCAP_INTERNAL_H

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include <pcap/pcap.h>

#include "capture_pcap.h"

/* The classic pcap format (pcap-savefile(5)): a 24-byte file header, then records of a 16-byte
 * header (seconds, fraction, captured length, original length) and the captured bytes. */
#define PCAP_MAGIC_USEC 0xa1b2c3d4u
#define PCAP_MAGIC_NSEC 0xa1b23c4du
#define PCAP_FILE_HDR 24
#define PCAP_REC_HDR 16
/* libpcap's MAXIMUM_SNAPLEN, the largest record it accepts for the link types handled here. */
#define PCAP_MAX_SNAPLEN 262144u
/* The block type of a pcapng Section Header Block, which starts the file and each section: the
 * same in both byte orders. */
#define NG_SHB 0x0a0d0d0au
/* Distinct link types whose capture_link is remembered (ng_link). */
#define NG_LINK_CACHE 8
/* How far ahead of the record being read its bytes are prefetched: the hardware prefetcher
 * stops at page boundaries, and the records are read once, front to back. */
#define MAP_PREFETCH_AHEAD 4096
/* Pages read long ago are dropped from the mapping (MADV_DONTNEED) every MAP_DROP_EVERY bytes,
 * all but the last MAP_KEEP_BEHIND: otherwise the whole file would count in the process's
 * resident memory by the end of a large capture. Nothing can go wrong if something still
 * pointed there: the mapping is private and never written, so a dropped page that is read again
 * is read again from the file. */
#define MAP_DROP_EVERY (32u << 20)
#define MAP_KEEP_BEHIND (8u << 20)
/* Pages ahead of the reader are mapped MAP_POPULATE_EVERY bytes at a time with one
 * MADV_POPULATE_READ (Linux 5.14) rather than one page fault per 16 pages (the kernel's
 * fault-around): that took 5-8% of the time of a large file. Older kernels fault as before. */
#define MAP_POPULATE_EVERY (4u << 20)
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

enum reader {
    READ_LIBPCAP,
    READ_PCAP_MAPPED, /* classic pcap, in place */
    READ_PCAPNG,      /* in place when map is set, else through buf */
};

struct ng_iface; /* capture_pcapng.c */

struct capture_pcap {
    enum reader reader;
    pcap_t *pcap; /* READ_LIBPCAP */
    int link;     /* classic pcap: enum capture_link */
    /* The mapped file. */
    const uint8_t *map;
    size_t size, off;
    size_t fetched;            /* bytes before it were prefetched */
    size_t dropped;            /* pages before it were dropped (a multiple of the page size) */
    size_t populated;          /* pages before it were populated; SIZE_MAX when the kernel cannot */
    volatile sig_atomic_t cut; /* the file shrank while mapped (on_sigbus): it ends here */
    uint32_t snaplen;
    uint64_t overlong; /* records longer than snaplen, cut to it (capture_pcap_overlong) */
    bool swapped;      /* written in the other byte order (pcapng: the current section is) */
    bool nsec;         /* fractions are nanoseconds, not microseconds */
    /* pcapng */
    bool done;               /* an error ended the file: further reads give 0 */
    struct ng_iface *ifaces; /* the current section's */
    uint32_t n_ifaces, ifaces_size;
    uint64_t last_ts; /* of the latest frame: a Simple Packet Block's time */
    struct {
        uint16_t linktype, link;
    } links[NG_LINK_CACHE];
    unsigned n_links;
    /* pcapng not mapped: buf[head, tail) holds what was read of fd and not yet consumed. */
    int fd;
    bool own_fd; /* opened here (not standard input): closed with the reader */
    bool eof;
    uint8_t *buf;
    size_t buf_size, head, tail;
};

/* The page size, set (capture_pcap.c, sigbus_take) before any mapped file is read. */
extern uintptr_t capture_pcap_page_size;

/* libpcap hands out its own DLT_ numbers, which differ from the file's LINKTYPE_ value on some
 * platforms (DLT_RAW is 12 or 14 where LINKTYPE_RAW is 101; DLT_LOOP is 12 on OpenBSD).
 * Returns the capture_link value, or -1 for a link type decode does not handle. */
int capture_pcap_link_from_dlt(int dlt);

static inline uint32_t get32(const uint8_t *p, bool swapped)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return swapped ? __builtin_bswap32(v) : v;
}

static inline uint64_t get64(const uint8_t *p, bool swapped)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return swapped ? __builtin_bswap64(v) : v;
}

static inline uint16_t get16(const uint8_t *p, bool swapped)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return swapped ? __builtin_bswap16(v) : v;
}

/* Whether the mapped file shrank (on_sigbus) by the time of the reads before the call. */
static inline bool map_cut(const struct capture_pcap *cap)
{
    __atomic_signal_fence(__ATOMIC_SEQ_CST); /* those reads are not moved past this one */
    return cap->cut != 0;
}

/* Readahead for the mapped reader at cap->off: prefetch, populate, drop what is long read. */
static inline void map_ahead(struct capture_pcap *cap)
{
    for (size_t to = cap->off + MAP_PREFETCH_AHEAD; cap->fetched < to && cap->fetched < cap->size;
         cap->fetched += 64)
        __builtin_prefetch(cap->map + cap->fetched);
    if (cap->off + MAP_POPULATE_EVERY / 2 > cap->populated && cap->populated < cap->size) {
        size_t n = cap->size - cap->populated;
        if (n > MAP_POPULATE_EVERY)
            n = MAP_POPULATE_EVERY;
        if (madvise((void *)(cap->map + cap->populated), n, MADV_POPULATE_READ) == 0 ||
            (errno != EINVAL && errno != EFAULT))
            cap->populated += n; /* done, or a passing failure (memory, a signal): faults do it */
        else
            cap->populated = SIZE_MAX; /* not supported, or the file shrank: fault as usual */
    }
    if (cap->off - cap->dropped >= MAP_DROP_EVERY + MAP_KEEP_BEHIND) {
        size_t to = (cap->off - MAP_KEEP_BEHIND) & ~((size_t)capture_pcap_page_size - 1);
        madvise((void *)(cap->map + cap->dropped), to - cap->dropped, MADV_DONTNEED);
        cap->dropped = to;
    }
}

/* A time before 1970 (a broken clock, or a negative fraction) is taken as 0, and one past
 * CAPTURE_MAX_TS_NS as that: the deadlines the engine adds to packet times (timers,
 * reassembly, lingering) then cannot wrap around to the past. A classic pcap record's times
 * are 32-bit fields (seconds below 2^32, under CAPTURE_MAX_TS_NS), so only the lower bound can
 * apply to them: clamp_ns does that alone, one comparison per frame. */
static inline uint64_t clamp_ns(int64_t sec, int64_t frac)
{
    /* |sec| < 2^33 and |frac| < 2^42 (a 32-bit field in microseconds at most): no overflow. */
    int64_t ns = sec * 1000000000 + frac;
    return ns > 0 ? (uint64_t)ns : 0;
}

/* libpcap's times are 64-bit seconds and fractions, and a fraction may be past a second or
 * negative (kept as written): the sum, in 128 bits, decides, as clamp_ns's does for the mapped
 * path. A negative second alone is not before 1970 (-1 s and 872,415 s of fraction). */
static inline uint64_t clamp_ns_wide(int64_t sec, int64_t frac)
{
    __int128 ns = (__int128)sec * 1000000000 + frac;
    if (ns <= 0)
        return 0;
    return ns < (__int128)CAPTURE_MAX_TS_NS ? (uint64_t)ns : CAPTURE_MAX_TS_NS;
}

static inline void fill_frame(struct capture_frame *frame, const uint8_t *data, uint32_t caplen,
                              uint32_t len, uint64_t ts_ns, int link)
{
    frame->data = data;
    frame->caplen = caplen;
    /* A record whose original length is below its captured length is malformed; keep the
     * documented invariant wirelen >= caplen rather than pass it on. */
    frame->wirelen = len > caplen ? len : caplen;
    frame->ts_ns = ts_ns;
    frame->link = (uint16_t)link;
    frame->dir = CAPTURE_DIR_UNKNOWN;
    frame->iface = 0;
    frame->gso_size = 0; /* files do not say (live only: capture_bpf) */
}

#endif
