/* capture_pcap: frames from a pcap or pcapng file, with nanosecond timestamps. Classic pcap files
 * (either byte order, microsecond or nanosecond magic) are mapped and walked in place, without a
 * copy per record; pcapng files are read here too (draft-ietf-opsawg-pcapng: sections in either
 * byte order, interfaces of different link types), in place when mapped, else through one read
 * buffer; classic pcap from a pipe and the rare variants libpcap knows better go through
 * libpcap. It neither decodes nor filters: every packet of the file comes out as one frame. */
#include "capture_pcap.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pcap/pcap.h>

/* The classic pcap format (pcap-savefile(5)): a 24-byte file header, then records of a 16-byte
 * header (seconds, fraction, captured length, original length) and the captured bytes. */
#define PCAP_MAGIC_USEC 0xa1b2c3d4u
#define PCAP_MAGIC_NSEC 0xa1b23c4du
#define PCAP_FILE_HDR 24
#define PCAP_REC_HDR 16
/* libpcap's MAXIMUM_SNAPLEN, the largest record it accepts for the link types handled here. */
#define PCAP_MAX_SNAPLEN 262144u
/* pcapng (draft-ietf-opsawg-pcapng): blocks of a type, a total length (a multiple of 4, at least
 * 12), a body and the total length again. A Section Header Block starts the file and each
 * section; its byte-order magic gives the byte order of the section, its own length included. */
#define NG_SHB 0x0a0d0d0au /* the same in both byte orders */
#define NG_IDB 1u
#define NG_PB 2u /* the obsolete Packet Block */
#define NG_SPB 3u
#define NG_EPB 6u
#define NG_BYTE_ORDER_MAGIC 0x1a2b3c4du
#define NG_MIN_BLOCK 12u
#define NG_OPT_ENDOFOPT 0
#define NG_IF_TSRESOL 9
#define NG_IF_TSOFFSET 14
/* Distinct link types whose capture_link is remembered (ng_link). */
#define NG_LINK_CACHE 8
/* Standard input and pipes: the read buffer starts at this size and grows, for a longer block,
 * up to CAPTURE_PCAPNG_MAX_BLOCK. */
#define STREAM_BUF_START (256u << 10)
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

/* How an interface's times become nanoseconds (ng_time). */
enum ng_scale {
    NG_USEC, /* 10^-6, the default */
    NG_NSEC, /* 10^-9 */
    NG_DEC,  /* another power of 10: 10^-exp */
    NG_BIN,  /* 2^-exp */
};

/* A pcapng interface, as its Interface Description Block describes it. */
struct ng_iface {
    uint64_t res;     /* NG_DEC: ticks per second, 10^exp */
    int64_t offset;   /* if_tsoffset: seconds added to every time */
    uint32_t snaplen; /* as written; 0 is no limit */
    uint16_t link;    /* what its frames carry (ng_link) */
    uint8_t scale;    /* enum ng_scale */
    uint8_t exp;      /* NG_DEC, NG_BIN: the power */
};

struct capture_pcap {
    enum reader reader;
    pcap_t *pcap; /* READ_LIBPCAP */
    int link;     /* classic pcap: enum capture_link */
    /* The mapped file. */
    const uint8_t *map;
    size_t size, off;
    size_t fetched; /* bytes before it were prefetched */
    size_t dropped; /* pages before it were dropped (a multiple of the page size) */
    size_t populated; /* pages before it were populated; SIZE_MAX when the kernel cannot */
    volatile sig_atomic_t cut; /* the file shrank while mapped (on_sigbus): it ends here */
    uint32_t snaplen;
    uint64_t overlong; /* records longer than snaplen, cut to it (capture_pcap_overlong) */
    bool swapped; /* written in the other byte order (pcapng: the current section is) */
    bool nsec;    /* fractions are nanoseconds, not microseconds */
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

/* libpcap hands out its own DLT_ numbers, which differ from the file's LINKTYPE_ value on some
 * platforms (DLT_RAW is 12 or 14 where LINKTYPE_RAW is 101; DLT_LOOP is 12 on OpenBSD).
 * Returns the capture_link value, or -1 for a link type decode does not handle. */
static int link_from_dlt(int dlt)
{
    if (dlt == DLT_EN10MB)
        return CAPTURE_LINK_ETHERNET;
    if (dlt == DLT_RAW)
        return CAPTURE_LINK_RAW;
    if (dlt == DLT_NULL)
        return CAPTURE_LINK_NULL;
    if (dlt == DLT_LOOP)
        return CAPTURE_LINK_LOOP;
    if (dlt == DLT_LINUX_SLL)
        return CAPTURE_LINK_LINUX_SLL;
#ifdef DLT_LINUX_SLL2
    if (dlt == DLT_LINUX_SLL2)
        return CAPTURE_LINK_LINUX_SLL2;
#endif
#ifdef DLT_IPV4
    if (dlt == DLT_IPV4)
        return CAPTURE_LINK_IPV4;
#endif
#ifdef DLT_IPV6
    if (dlt == DLT_IPV6)
        return CAPTURE_LINK_IPV6;
#endif
    return -1;
}

static uint32_t get32(const uint8_t *p, bool swapped)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return swapped ? __builtin_bswap32(v) : v;
}

static uint64_t get64(const uint8_t *p, bool swapped)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return swapped ? __builtin_bswap64(v) : v;
}

static uint16_t get16(const uint8_t *p, bool swapped)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return swapped ? __builtin_bswap16(v) : v;
}

/* The LINKTYPE_ values the mapped reader takes: those with a capture_link of the same value
 * (capture.h uses the LINKTYPE_ numbers). libpcap byte-swaps parts of the Linux cooked headers
 * of a file written in the other byte order (for CAN frames, in some versions): such files stay
 * with it. Link type values with the FCS bits set go to libpcap as well. */
static bool mappable_linktype(uint32_t lt, bool swapped)
{
    switch (lt) {
    case CAPTURE_LINK_NULL:
    case CAPTURE_LINK_ETHERNET:
    case CAPTURE_LINK_RAW:
    case CAPTURE_LINK_LOOP:
    case CAPTURE_LINK_IPV4:
    case CAPTURE_LINK_IPV6:
        return true;
    case CAPTURE_LINK_LINUX_SLL:
    case CAPTURE_LINK_LINUX_SLL2:
        return !swapped;
    default:
        return false;
    }
}

/* A mapped file that shrinks while it is read (a rotation that truncates it in place) makes any
 * read of its lost pages raise SIGBUS, which would kill the process. The handler covers the
 * capture being read (one at a time: another file opened meanwhile is read without a mapping):
 * it puts zero pages over the rest of the mapping and marks the capture cut, and the reader then
 * ends the file as libpcap ends a truncated one. map_next and ng_block read each record's or
 * block's last byte before handing it out, so that a cut one is caught there rather than later
 * in the engine. */
static struct capture_pcap *volatile sigbus_cover;
static uintptr_t page_size; /* set by sigbus_take, before any mapped file is read */

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
    struct capture_pcap *cap = sigbus_cover;
    uintptr_t a = (uintptr_t)si->si_addr, base = cap ? (uintptr_t)cap->map : 0;
    (void)uc;
    if (cap && a >= base && a < base + cap->size) {
        uintptr_t from = a & ~(page_size - 1);
        if (mmap((void *)from, base + cap->size - from, PROT_READ,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED) {
            cap->cut = 1;
            return; /* the read is done again, and finds zeros */
        }
    }
    signal(sig, SIG_DFL); /* not ours: the default action when the read is done again */
}

static bool sigbus_take(struct capture_pcap *cap)
{
    static bool installed;
    if (sigbus_cover)
        return false;
    if (!installed) {
        struct sigaction sa = {.sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO};
        sigemptyset(&sa.sa_mask);
        page_size = (uintptr_t)sysconf(_SC_PAGESIZE);
        if (sigaction(SIGBUS, &sa, NULL) != 0)
            return false;
        installed = true;
    }
    sigbus_cover = cap;
    return true;
}

/* Whether the mapped file shrank (on_sigbus) by the time of the reads before the call. */
static bool map_cut(const struct capture_pcap *cap)
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
        size_t to = (cap->off - MAP_KEEP_BEHIND) & ~((size_t)page_size - 1);
        madvise((void *)(cap->map + cap->dropped), to - cap->dropped, MADV_DONTNEED);
        cap->dropped = to;
    }
}

/* Maps fd, the open regular file of size bytes, for cap. Returns false (nothing changed) when
 * it cannot: no memory, or another capture holds the SIGBUS handler. */
static bool map_file(struct capture_pcap *cap, int fd, size_t size)
{
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED)
        return false;
    cap->map = map;
    cap->size = size;
    if (!sigbus_take(cap)) {
        munmap(map, size);
        cap->map = NULL;
        cap->size = 0;
        return false;
    }
    /* Read once, front to back: ask for readahead. */
    madvise(map, size, MADV_SEQUENTIAL);
    return true;
}

/* A time before 1970 (a broken clock, or a negative fraction) is taken as 0, and one past
 * CAPTURE_MAX_TS_NS as that: the deadlines the engine adds to packet times (timers,
 * reassembly, lingering) then cannot wrap around to the past. A classic pcap record's times
 * are 32-bit fields (seconds below 2^32, under CAPTURE_MAX_TS_NS), so only the lower bound can
 * apply to them: clamp_ns does that alone, one comparison per frame. */
static uint64_t clamp_ns(int64_t sec, int64_t frac)
{
    /* |sec| < 2^33 and |frac| < 2^42 (a 32-bit field in microseconds at most): no overflow. */
    int64_t ns = sec * 1000000000 + frac;
    return ns > 0 ? (uint64_t)ns : 0;
}

/* libpcap's times are 64-bit seconds and fractions, and a fraction may be past a second or
 * negative (kept as written): the sum, in 128 bits, decides, as clamp_ns's does for the mapped
 * path. A negative second alone is not before 1970 (-1 s and 872,415 s of fraction). */
static uint64_t clamp_ns_wide(int64_t sec, int64_t frac)
{
    __int128 ns = (__int128)sec * 1000000000 + frac;
    if (ns <= 0)
        return 0;
    return ns < (__int128)CAPTURE_MAX_TS_NS ? (uint64_t)ns : CAPTURE_MAX_TS_NS;
}

static void fill_frame(struct capture_frame *frame, const uint8_t *data, uint32_t caplen,
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

/* ---- classic pcap, in place ---- */

/* Opens the classic pcap file fd (whose first PCAP_FILE_HDR bytes are hdr) in place when the
 * in-place reader gives exactly what libpcap would: version 2.4, a snap length of 1 to 262144
 * and a link type whose headers libpcap leaves alone. Returns the reader, or NULL to let
 * libpcap open the file (and report any problem). */
static struct capture_pcap *map_pcap_open(int fd, size_t size, const uint8_t *hdr)
{
    uint32_t magic;
    bool swapped = false;

    memcpy(&magic, hdr, 4);
    if (magic != PCAP_MAGIC_USEC && magic != PCAP_MAGIC_NSEC) {
        magic = __builtin_bswap32(magic);
        if (magic != PCAP_MAGIC_USEC && magic != PCAP_MAGIC_NSEC)
            return NULL;
        swapped = true;
    }
    uint32_t snaplen = get32(hdr + 16, swapped), linktype = get32(hdr + 20, swapped);
    if (get16(hdr + 4, swapped) != 2 || get16(hdr + 6, swapped) != 4 || snaplen == 0 ||
        snaplen > PCAP_MAX_SNAPLEN || !mappable_linktype(linktype, swapped))
        return NULL;
    struct capture_pcap *cap = calloc(1, sizeof *cap);
    if (!cap)
        return NULL;
    if (!map_file(cap, fd, size)) {
        free(cap);
        return NULL;
    }
    cap->reader = READ_PCAP_MAPPED;
    cap->fd = -1;
    cap->off = PCAP_FILE_HDR;
    cap->snaplen = snaplen;
    cap->swapped = swapped;
    cap->nsec = magic == PCAP_MAGIC_NSEC;
    cap->link = (int)linktype;
    return cap;
}

/* The next record of a mapped file, with libpcap's checks and messages (sf-pcap.c), so that
 * both readers end a file the same way. */
static int map_next(struct capture_pcap *cap, struct capture_frame *frame, char *err,
                    size_t errlen)
{
    size_t left = cap->size - cap->off;

    if (left == 0)
        return 0;
    if (left < PCAP_REC_HDR) {
        snprintf(err, errlen, "truncated dump file; tried to read %d header bytes, only got %zu",
                 PCAP_REC_HDR, left);
        cap->off = cap->size;
        return -EIO;
    }
    map_ahead(cap);
    const uint8_t *h = cap->map + cap->off;
    /* As libpcap 1.10 reads them: seconds and fraction are signed 32-bit fields, but its byte
     * swap yields unsigned values, so in a swapped file they are not sign-extended (a time past
     * 2038 stays positive there only). Microseconds are scaled in 64 bits, as in its long. */
    uint32_t rs = get32(h, cap->swapped), rf = get32(h + 4, cap->swapped);
    int64_t sec = cap->swapped ? (int64_t)rs : (int64_t)(int32_t)rs;
    int64_t frac = cap->swapped ? (int64_t)rf : (int64_t)(int32_t)rf;
    uint32_t caplen = get32(h + 8, cap->swapped), len = get32(h + 12, cap->swapped);
    size_t avail = left - PCAP_REC_HDR;

    if (!cap->nsec)
        frac *= 1000;
    cap->off += PCAP_REC_HDR;
    if (caplen > PCAP_MAX_SNAPLEN) {
        if (caplen > cap->snaplen)
            snprintf(err, errlen,
                     "invalid packet capture length %u, bigger than snaplen of %u", caplen,
                     cap->snaplen);
        else
            snprintf(err, errlen, "invalid packet capture length %u, bigger than maximum of %u",
                     caplen, PCAP_MAX_SNAPLEN);
        return -EBADMSG; /* a record libpcap refuses, as the libpcap path reports it */
    }
    if (avail < caplen) {
        /* libpcap reads a record longer than the snap length up to the snap length first. */
        uint32_t want = caplen > cap->snaplen && avail < cap->snaplen ? cap->snaplen : caplen;
        snprintf(err, errlen, "truncated dump file; tried to read %u captured bytes, only got %zu",
                 want, avail);
        cap->off = cap->size;
        return -EIO;
    }
    if (caplen)
        (void)*(volatile const uint8_t *)(h + PCAP_REC_HDR + caplen - 1); /* on_sigbus */
    if (cap->cut) {
        snprintf(err, errlen, "truncated dump file; the file shrank while it was read");
        cap->off = cap->size;
        return -EIO;
    }
    cap->off += caplen;
    /* A record longer than the file's snap length is cut to it, as libpcap does; counted, for
     * the advice at the end of the read is then to mend the header, not to capture again. */
    if (caplen > cap->snaplen)
        cap->overlong++;
    fill_frame(frame, h + PCAP_REC_HDR, caplen > cap->snaplen ? cap->snaplen : caplen, len,
               clamp_ns(sec, frac), cap->link);
    return 1;
}

/* ---- pcapng ---- */

/* The capture_link of a LINKTYPE_ value, as for a file libpcap opens: libpcap's own mapping
 * (linktype_to_dlt, which it does not export: it is asked, with a classic file header held in
 * memory) and then link_from_dlt, as the libpcap path maps the one link type of its files. For a
 * type sipscope does not decode, the LINKTYPE_ value itself, which none of enum capture_link
 * has: decode counts such frames as unsupported_link. Remembered for the few types a file has. */
static uint16_t ng_link(struct capture_pcap *cap, uint16_t linktype)
{
    unsigned n = cap->n_links < NG_LINK_CACHE ? cap->n_links : NG_LINK_CACHE;
    for (unsigned i = 0; i < n; i++)
        if (cap->links[i].linktype == linktype)
            return cap->links[i].link;

    /* In this machine's byte order: version 2.4, no zone or accuracy, a snap length. */
    uint32_t magic = PCAP_MAGIC_USEC, fields[4] = {0, 0, 65535, linktype};
    uint16_t version[2] = {2, 4};
    uint8_t hdr[PCAP_FILE_HDR];
    char errbuf[PCAP_ERRBUF_SIZE];
    memcpy(hdr, &magic, 4);
    memcpy(hdr + 4, version, 4);
    memcpy(hdr + 8, fields, 16);
    FILE *f = fmemopen(hdr, sizeof hdr, "rb");
    pcap_t *p = f ? pcap_fopen_offline(f, errbuf) : NULL;
    int link = p ? link_from_dlt(pcap_datalink(p)) : -1;
    if (p)
        pcap_close(p); /* and f with it */
    else if (f)
        fclose(f);
    if (!p)
        return linktype; /* out of memory: unsupported, this time */
    unsigned slot = cap->n_links++ % NG_LINK_CACHE;
    cap->links[slot].linktype = linktype;
    cap->links[slot].link = link >= 0 ? (uint16_t)link : linktype;
    return cap->links[slot].link;
}

/* Nanoseconds since 1970 of an interface's time t, clamped (clamp_ns_wide). As libpcap reads
 * them: seconds are t over the resolution plus if_tsoffset, added in 64 bits and read as signed;
 * the remainder is scaled to nanoseconds, down by truncation. Common resolutions divide by a
 * constant. */
static uint64_t ng_time(const struct ng_iface *ifc, uint64_t t)
{
    static const uint64_t pow10[] = {1,       10,       100,       1000,      10000, 100000,
                                     1000000, 10000000, 100000000, 1000000000}; /* 10^(9 - exp) */
    uint64_t sec, ns;

    switch (ifc->scale) {
    case NG_USEC:
        sec = t / 1000000;
        ns = t % 1000000 * 1000;
        break;
    case NG_NSEC:
        sec = t / 1000000000;
        ns = t % 1000000000;
        break;
    case NG_BIN: /* exp <= 63 */
        sec = t >> ifc->exp;
        ns = (uint64_t)(((unsigned __int128)(t & ((1ull << ifc->exp) - 1)) * 1000000000) >>
                        ifc->exp);
        break;
    default: { /* NG_DEC, exp <= 19 */
        uint64_t frac = t % ifc->res;
        sec = t / ifc->res;
        ns = ifc->exp <= 9 ? frac * pow10[9 - ifc->exp] : frac / (ifc->res / 1000000000);
        break;
    }
    }
    return clamp_ns_wide((int64_t)(sec + (uint64_t)ifc->offset), (int64_t)ns);
}

static int ng_too_short(uint32_t type, char *err, size_t errlen)
{
    snprintf(err, errlen, "block of type %u in pcapng dump file is too short", type);
    return -EBADMSG;
}

/* The options of an Interface Description Block (o[n]): if_tsresol and if_tsoffset, with
 * libpcap's checks, into *ifc. Returns 0 or -EBADMSG. */
static int ng_idb_options(bool sw, const uint8_t *o, uint32_t n, struct ng_iface *ifc, char *err,
                          size_t errlen)
{
    bool saw_tsresol = false, saw_tsoffset = false;

    while (n > 0) {
        if (n < 4)
            return ng_too_short(NG_IDB, err, errlen);
        uint16_t code = get16(o, sw), olen = get16(o + 2, sw);
        uint32_t padded = ((uint32_t)olen + 3) & ~3u;
        const uint8_t *v = o + 4;
        if (padded > n - 4)
            return ng_too_short(NG_IDB, err, errlen);
        o += 4 + padded;
        n -= 4 + padded;
        switch (code) {
        case NG_OPT_ENDOFOPT:
            if (olen != 0) {
                snprintf(err, errlen,
                         "Interface Description Block has opt_endofopt option with length %u "
                         "!= 0",
                         olen);
                return -EBADMSG;
            }
            return 0;
        case NG_IF_TSRESOL:
            if (olen != 1) {
                snprintf(err, errlen,
                         "Interface Description Block has if_tsresol option with length %u != 1",
                         olen);
                return -EBADMSG;
            }
            if (saw_tsresol) {
                snprintf(err, errlen,
                         "Interface Description Block has more than one if_tsresol option");
                return -EBADMSG;
            }
            saw_tsresol = true;
            if (v[0] & 0x80) { /* 2^-exp: the time must fit in 64 bits */
                ifc->exp = v[0] & 0x7f;
                if (ifc->exp > 63) {
                    snprintf(err, errlen,
                             "Interface Description Block if_tsresol option resolution 2^-%u is "
                             "too high",
                             ifc->exp);
                    return -EBADMSG;
                }
                ifc->scale = NG_BIN;
            } else { /* 10^-exp: 10^19 is the largest power of 10 in 64 bits */
                ifc->exp = v[0];
                if (ifc->exp > 19) {
                    snprintf(err, errlen,
                             "Interface Description Block if_tsresol option resolution 10^-%u "
                             "is too high",
                             ifc->exp);
                    return -EBADMSG;
                }
                ifc->res = 1;
                for (unsigned i = 0; i < ifc->exp; i++)
                    ifc->res *= 10;
                ifc->scale = ifc->exp == 6 ? NG_USEC : ifc->exp == 9 ? NG_NSEC : NG_DEC;
            }
            break;
        case NG_IF_TSOFFSET:
            if (olen != 8) {
                snprintf(err, errlen,
                         "Interface Description Block has if_tsoffset option with length %u != 8",
                         olen);
                return -EBADMSG;
            }
            if (saw_tsoffset) {
                snprintf(err, errlen,
                         "Interface Description Block has more than one if_tsoffset option");
                return -EBADMSG;
            }
            saw_tsoffset = true;
            ifc->offset = (int64_t)get64(v, sw);
            break;
        default:
            break;
        }
    }
    return 0;
}

/* An Interface Description Block's body (b[n]): one more interface for the section. */
static int ng_idb(struct capture_pcap *cap, const uint8_t *b, uint32_t n, char *err, size_t errlen)
{
    struct ng_iface ifc = {.scale = NG_USEC, .exp = 6};
    int rc;

    if (n < 8)
        return ng_too_short(NG_IDB, err, errlen);
    ifc.snaplen = get32(b + 4, cap->swapped);
    if ((rc = ng_idb_options(cap->swapped, b + 8, n - 8, &ifc, err, errlen)) < 0)
        return rc;
    if (cap->n_ifaces == cap->ifaces_size) {
        if (cap->n_ifaces == CAPTURE_PCAPNG_MAX_IFACES) {
            snprintf(err, errlen, "more than %u interfaces in a section of the file",
                     CAPTURE_PCAPNG_MAX_IFACES);
            return -EBADMSG;
        }
        uint32_t size = cap->ifaces_size ? cap->ifaces_size * 2 : 4;
        struct ng_iface *ifaces = realloc(cap->ifaces, size * sizeof *ifaces);
        if (!ifaces) {
            snprintf(err, errlen, "out of memory for per-interface information (%u interfaces)",
                     cap->n_ifaces + 1);
            return -ENOMEM;
        }
        cap->ifaces = ifaces;
        cap->ifaces_size = size;
    }
    ifc.link = ng_link(cap, get16(b, cap->swapped));
    cap->ifaces[cap->n_ifaces++] = ifc;
    return 0;
}

/* A Section Header Block's body (b[n]): a new section, in the byte order its magic says, with
 * no interfaces yet. Any minor version is read (the draft: a minor change stays compatible). */
static int ng_shb(struct capture_pcap *cap, const uint8_t *b, uint32_t n, char *err, size_t errlen)
{
    uint32_t magic;

    if (n < 16) /* byte-order magic, major and minor version, section length */
        return ng_too_short(NG_SHB, err, errlen);
    memcpy(&magic, b, 4);
    if (magic != NG_BYTE_ORDER_MAGIC && magic != __builtin_bswap32(NG_BYTE_ORDER_MAGIC)) {
        snprintf(err, errlen, "the file has a section with a bad byte order magic field");
        return -EBADMSG;
    }
    bool sw = magic != NG_BYTE_ORDER_MAGIC;
    uint16_t major = get16(b + 4, sw);
    if (major != 1) {
        snprintf(err, errlen, "unknown pcapng savefile major version number %u", major);
        return -EBADMSG;
    }
    cap->swapped = sw;
    cap->n_ifaces = 0;
    return 0;
}

/* The bytes from the reading position on, read from fd into buf: at least want of them, or all
 * that are left before the end of the file. Returns how many (*p points at them), or -EBADMSG
 * for a read error (a signal too: the engine then sees whether it was a stop) or -ENOMEM, with
 * the reason in err. want is at most a block's length, at most CAPTURE_PCAPNG_MAX_BLOCK. */
static ssize_t stream_fill(struct capture_pcap *cap, size_t want, const uint8_t **p, char *err,
                           size_t errlen)
{
    while (cap->tail - cap->head < want && !cap->eof) {
        if (cap->buf_size - cap->head < want) {
            /* What is left goes to the front, and the buffer grows if want is still more. */
            memmove(cap->buf, cap->buf + cap->head, cap->tail - cap->head);
            cap->tail -= cap->head;
            cap->head = 0;
            if (cap->buf_size < want) {
                size_t size = cap->buf_size * 2;
                if (size > CAPTURE_PCAPNG_MAX_BLOCK)
                    size = CAPTURE_PCAPNG_MAX_BLOCK;
                if (size < want)
                    size = want;
                uint8_t *buf = realloc(cap->buf, size);
                if (!buf) {
                    snprintf(err, errlen, "out of memory for a pcapng block of %zu bytes", want);
                    return -ENOMEM;
                }
                cap->buf = buf;
                cap->buf_size = size;
            }
        }
        ssize_t got = read(cap->fd, cap->buf + cap->tail, cap->buf_size - cap->tail);
        if (got < 0) {
            snprintf(err, errlen, "error reading dump file: %s", strerror(errno));
            return -EBADMSG;
        }
        if (got == 0)
            cap->eof = true;
        cap->tail += (size_t)got;
    }
    *p = cap->buf + cap->head;
    return (ssize_t)(cap->tail - cap->head);
}

/* The next block, whole and with consistent lengths, at *block (valid until the next call),
 * its total length in *len. Returns 1, 0 at the end of the file between blocks, or -EIO
 * (the file ends inside it), -EBADMSG (a malformed length, a read error) or -ENOMEM, with the
 * reason in libpcap's words in err. Never reads past the mapping or the buffer: every length is
 * checked against what is there first. */
static int ng_block(struct capture_pcap *cap, const uint8_t **block, uint32_t *len, char *err,
                    size_t errlen)
{
    const uint8_t *p;
    ssize_t n;

    /* The block header, and a Section Header Block's byte-order magic after it. */
    if (cap->map) {
        n = (ssize_t)(cap->size - cap->off);
        p = cap->map + cap->off;
        if (n > 0)
            map_ahead(cap);
    } else if ((n = stream_fill(cap, NG_MIN_BLOCK, &p, err, errlen)) < 0) {
        return (int)n;
    }
    if (n == 0)
        return 0;
    if (n < 8) {
        snprintf(err, errlen, "truncated pcapng dump file; tried to read 8 bytes, only got %zd", n);
        return -EIO;
    }
    bool sw = cap->swapped;
    uint32_t type = get32(p, sw), magic;
    if (type == NG_SHB && n >= 12) { /* a new section may change the byte order */
        memcpy(&magic, p + 8, 4);
        if (magic == NG_BYTE_ORDER_MAGIC || magic == __builtin_bswap32(NG_BYTE_ORDER_MAGIC))
            sw = magic != NG_BYTE_ORDER_MAGIC;
    }
    uint32_t total = get32(p + 4, sw);
    if (cap->map && map_cut(cap))
        goto shrank;
    if (total < NG_MIN_BLOCK) {
        snprintf(err, errlen, "block in pcapng dump file has a length of %u < %u", total,
                 NG_MIN_BLOCK);
        return -EBADMSG;
    }
    if (total % 4 != 0) {
        snprintf(err, errlen,
                 "block in pcapng dump file has a length of %u that is not a multiple of 4", total);
        return -EBADMSG;
    }
    if (total > CAPTURE_PCAPNG_MAX_BLOCK) {
        snprintf(err, errlen, "pcapng block size %u > maximum %u", total, CAPTURE_PCAPNG_MAX_BLOCK);
        return -EBADMSG;
    }
    if ((size_t)n < total && !cap->map && (n = stream_fill(cap, total, &p, err, errlen)) < 0)
        return (int)n;
    if ((size_t)n < total) {
        snprintf(err, errlen, "truncated pcapng dump file; tried to read %u bytes, only got %zd",
                 total - 8, n - 8);
        return -EIO;
    }
    if (cap->map) {
        (void)*(volatile const uint8_t *)(p + total - 1); /* on_sigbus */
        if (map_cut(cap))
            goto shrank;
    }
    if (get32(p + total - 4, sw) != total) {
        snprintf(err, errlen, "block total length in header and trailer don't match");
        return -EBADMSG;
    }
    *block = p;
    *len = total;
    return 1;
shrank:
    snprintf(err, errlen, "truncated pcapng dump file; the file shrank while it was read");
    return -EIO;
}

static void ng_consume(struct capture_pcap *cap, uint32_t len)
{
    if (cap->map)
        cap->off += len;
    else
        cap->head += len;
}

static int ng_no_iface(uint32_t id, char *err, size_t errlen)
{
    snprintf(err, errlen,
             "a packet arrived on interface %u, but there's no Interface Description Block for "
             "that interface",
             id);
    return -EBADMSG;
}

/* One whole block (ng_block): returns 1 with a frame for a packet block, 0 for any other
 * block (an interface or a section taken in, or one skipped), or a negative errno. Packet
 * blocks are checked as libpcap checks them (the fixed part, then the interface, then the
 * packet's length), except that a packet longer than its interface's snap length is read as it
 * is (libpcap refuses it): its bytes are all in the block. */
static int ng_parse(struct capture_pcap *cap, const uint8_t *b, uint32_t len,
                    struct capture_frame *frame, char *err, size_t errlen)
{
    bool sw = cap->swapped;
    uint32_t type = get32(b, sw), n = len - NG_MIN_BLOCK, id, caplen, wirelen, hdr = 20;
    const uint8_t *body = b + 8;
    uint64_t t;

    switch (type) {
    case NG_EPB: /* interface, time high and low, captured and original length */
        if (n < hdr)
            return ng_too_short(type, err, errlen);
        id = get32(body, sw);
        break;
    case NG_PB: /* 16-bit interface, drops count, then as an EPB */
        if (n < hdr)
            return ng_too_short(type, err, errlen);
        id = get16(body, sw);
        break;
    case NG_SPB: { /* original length; its interface is the first */
        if (n < 4)
            return ng_too_short(type, err, errlen);
        if (cap->n_ifaces == 0)
            return ng_no_iface(0, err, errlen);
        const struct ng_iface *ifc = &cap->ifaces[0];
        uint32_t snap =
            ifc->snaplen && ifc->snaplen < PCAP_MAX_SNAPLEN ? ifc->snaplen : PCAP_MAX_SNAPLEN;
        wirelen = get32(body, sw);
        caplen = wirelen < snap ? wirelen : snap;
        if (caplen > n - 4)
            return ng_too_short(type, err, errlen);
        fill_frame(frame, body + 4, caplen, wirelen, cap->last_ts, ifc->link);
        return 1;
    }
    case NG_IDB:
        return ng_idb(cap, body, n, err, errlen);
    case NG_SHB:
        return ng_shb(cap, body, n, err, errlen);
    default: /* name resolution, statistics, secrets, custom, local: not for us */
        return 0;
    }
    if (id >= cap->n_ifaces)
        return ng_no_iface(id, err, errlen);
    t = (uint64_t)get32(body + 4, sw) << 32 | get32(body + 8, sw);
    caplen = get32(body + 12, sw);
    wirelen = get32(body + 16, sw);
    if (caplen > n - hdr)
        return ng_too_short(type, err, errlen);
    const struct ng_iface *ifc = &cap->ifaces[id];
    cap->last_ts = ng_time(ifc, t);
    fill_frame(frame, body + hdr, caplen, wirelen, cap->last_ts, ifc->link);
    return 1;
}

static int ng_next(struct capture_pcap *cap, struct capture_frame *frame, char *err, size_t errlen)
{
    const uint8_t *b = NULL; /* set with len when ng_block gives a block (GCC -O3 cannot tell) */
    uint32_t len = 0;
    int rc;

    if (cap->done)
        return 0;
    while ((rc = ng_block(cap, &b, &len, err, errlen)) == 1) {
        rc = ng_parse(cap, b, len, frame, err, errlen);
        if (rc < 0)
            break;
        ng_consume(cap, len);
        if (rc == 1)
            return 1;
    }
    if (rc < 0)
        cap->done = true;
    return rc;
}

/* Starts a pcapng reader whose first four bytes (the block type of a Section Header Block) are
 * known: reads that first block. Returns 0, or -1 with the reason in err. */
static int ng_start(struct capture_pcap *cap, const char *path, char *err, size_t errlen)
{
    char why[256];
    const uint8_t *b = NULL;
    uint32_t len = 0, magic = 0;
    ssize_t n;
    int rc;

    cap->reader = READ_PCAPNG;
    if (cap->map) {
        n = (ssize_t)cap->size;
        b = cap->map;
    } else if ((n = stream_fill(cap, NG_MIN_BLOCK, &b, why, sizeof why)) < 0) {
        snprintf(err, errlen, "cannot read capture %s: %s", path, why);
        return -1;
    }
    if (n >= 12)
        memcpy(&magic, b + 8, 4);
    if (n < 12 ||
        (magic != NG_BYTE_ORDER_MAGIC && magic != __builtin_bswap32(NG_BYTE_ORDER_MAGIC))) {
        snprintf(err, errlen, "cannot read capture %s: unknown file format", path); /* libpcap's */
        return -1;
    }
    rc = ng_block(cap, &b, &len, why, sizeof why);
    if (rc == 1 && (rc = ng_shb(cap, b + 8, len - NG_MIN_BLOCK, why, sizeof why)) == 0) {
        ng_consume(cap, len);
        return 0;
    }
    snprintf(err, errlen, "cannot read capture %s: %s", path, why);
    return -1;
}

/* ---- opening ---- */

/* A pcapng reader over fd without a mapping, whose first npre bytes, already read, are pre. */
static struct capture_pcap *stream_ng_open(const char *path, int fd, bool own, const uint8_t *pre,
                                           size_t npre, char *err, size_t errlen)
{
    struct capture_pcap *cap = calloc(1, sizeof *cap);
    uint8_t *buf = malloc(STREAM_BUF_START);

    if (!cap || !buf) {
        snprintf(err, errlen, "cannot read capture %s: out of memory", path);
        free(cap);
        free(buf);
        if (own)
            close(fd);
        return NULL;
    }
    if (npre)
        memcpy(buf, pre, npre);
    cap->fd = fd;
    cap->own_fd = own;
    cap->buf = buf;
    cap->buf_size = STREAM_BUF_START;
    cap->tail = npre;
    if (ng_start(cap, path, err, errlen) != 0) {
        capture_pcap_free(cap);
        return NULL;
    }
    return cap;
}

/* A FILE for libpcap that gives the bytes already read from fd (pre[n]) again, then the rest
 * of fd: whether a pipe holds pcapng or classic pcap is known only once its first bytes are
 * read, and they cannot be put back. */
struct replay {
    int fd;
    bool own;
    uint8_t pre[4];
    size_t n, off;
};

static ssize_t replay_read(void *cookie, char *buf, size_t size)
{
    struct replay *r = cookie;
    if (r->off < r->n) {
        size_t k = r->n - r->off < size ? r->n - r->off : size;
        memcpy(buf, r->pre + r->off, k);
        r->off += k;
        return (ssize_t)k;
    }
    return read(r->fd, buf, size); /* -1 and errno on an error: fread reports it */
}

static int replay_close(void *cookie)
{
    struct replay *r = cookie;
    int rc = r->own ? close(r->fd) : 0;
    free(r);
    return rc;
}

/* The reader over libpcap's p (of path), unless its link type is one decode does not know. */
static struct capture_pcap *libpcap_take(pcap_t *p, const char *path, char *err, size_t errlen)
{
    int dlt = pcap_datalink(p);
    int link = link_from_dlt(dlt);
    if (link < 0) {
        const char *name = pcap_datalink_val_to_name(dlt);
        const char *desc = pcap_datalink_val_to_description(dlt);
        if (name)
            snprintf(err, errlen, "cannot read capture %s: unsupported link type %s (%s, DLT %d)",
                     path, name, desc ? desc : name, dlt);
        else
            snprintf(err, errlen, "cannot read capture %s: unsupported link type DLT %d", path,
                     dlt);
        pcap_close(p);
        return NULL;
    }
    struct capture_pcap *cap = calloc(1, sizeof *cap);
    if (!cap) {
        snprintf(err, errlen, "cannot read capture %s: out of memory", path);
        pcap_close(p);
        return NULL;
    }
    cap->reader = READ_LIBPCAP;
    cap->fd = -1;
    cap->pcap = p;
    cap->link = link;
    return cap;
}

/* Whether the first bytes of a capture (n of them at pre) are gzip's magic (RFC 1952: 1f 8b):
 * a compressed capture (tcpdump -z gzip, a rotated .pcap.gz), which libpcap calls an "unknown
 * file format". The error then says how to read it. */
static bool gzip_refused(const uint8_t *pre, size_t n, const char *path, char *err,
                         size_t errlen)
{
    if (n < 2 || pre[0] != 0x1f || pre[1] != 0x8b)
        return false;
    if (strcmp(path, "-") == 0)
        snprintf(err, errlen,
                 "cannot read capture %s: it is compressed with gzip: zcat FILE | sipscope "
                 "--read - ...",
                 path);
    else
        snprintf(err, errlen,
                 "cannot read capture %s: it is compressed with gzip: zcat %s | sipscope "
                 "--read - ...",
                 path, path);
    return true;
}

/* Whether the file at path starts with gzip's magic (gzip_refused). */
static bool gzip_file(const char *path, char *err, size_t errlen)
{
    uint8_t magic[2];
    bool gz;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return false;
    gz = read(fd, magic, 2) == 2 && gzip_refused(magic, 2, path, err, errlen);
    close(fd);
    return gz;
}

/* Nanosecond precision: libpcap scales microsecond files up and keeps the full resolution of
 * nanosecond pcap files. */
static struct capture_pcap *libpcap_open_path(const char *path, char *err, size_t errlen)
{
    char errbuf[PCAP_ERRBUF_SIZE] = "";
    pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, errbuf);
    if (!p && gzip_file(path, err, errlen))
        return NULL;
    if (!p) {
        /* libpcap's message names the file for a failed fopen ("x.pcap: No such file or
         * directory") but not for a bad format ("unknown file format"): name it once. */
        size_t n = strlen(path);
        if (strncmp(errbuf, path, n) == 0 && errbuf[n] == ':')
            snprintf(err, errlen, "cannot read capture %s", errbuf);
        else
            snprintf(err, errlen, "cannot read capture %s: %s", path, errbuf);
        return NULL;
    }
    return libpcap_take(p, path, err, errlen);
}

/* Reads fd (standard input, or a pipe opened once: a writer that saw an open and a close would
 * get EPIPE and go) from its start, as it comes: pcapng here, anything else through libpcap. */
static struct capture_pcap *stream_open(const char *path, int fd, bool own, char *err,
                                        size_t errlen)
{
    uint8_t pre[4];
    size_t n = 0;

    while (n < sizeof pre) {
        ssize_t got = read(fd, pre + n, sizeof pre - n);
        if (got < 0) {
            snprintf(err, errlen, "cannot read capture %s: error reading dump file: %s", path,
                     strerror(errno));
            if (own)
                close(fd);
            return NULL;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    if (n == 4 && get32(pre, false) == NG_SHB)
        return stream_ng_open(path, fd, own, pre, n, err, errlen);
    if (gzip_refused(pre, n, path, err, errlen)) {
        if (own)
            close(fd);
        return NULL;
    }

    struct replay *r = calloc(1, sizeof *r);
    FILE *f = NULL;
    if (r) {
        *r = (struct replay){.fd = fd, .own = own, .n = n};
        memcpy(r->pre, pre, n);
        f = fopencookie(r, "rb",
                        (cookie_io_functions_t){.read = replay_read, .close = replay_close});
    }
    if (!f) {
        snprintf(err, errlen, "cannot read capture %s: out of memory", path);
        free(r);
        if (own)
            close(fd);
        return NULL;
    }
    setvbuf(f, NULL, _IOFBF, 64 << 10); /* a pipe gives up to 64 KiB at a time */
    char errbuf[PCAP_ERRBUF_SIZE] = "";
    pcap_t *p = pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_NANO, errbuf);
    if (!p) {
        snprintf(err, errlen, "cannot read capture %s: %s", path, errbuf);
        fclose(f); /* libpcap leaves it to the caller on a failure */
        return NULL;
    }
    return libpcap_take(p, path, err, errlen); /* it closes f from now on */
}

/* A regular file: classic pcap or pcapng mapped when possible (pcapng not mapped is read
 * through the buffer). Returns the reader, or NULL with *tried false to let libpcap open the
 * file (and report any problem), or NULL with *tried true and the reason in err. */
static struct capture_pcap *file_open(const char *path, bool *tried, char *err, size_t errlen)
{
    struct capture_pcap *cap = NULL;
    uint8_t hdr[PCAP_FILE_HDR];
    struct stat st;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    *tried = false;
    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (n = pread(fd, hdr, sizeof hdr, 0)) < 4)
        goto out;
    if (get32(hdr, false) != NG_SHB) {
        if (n == (ssize_t)sizeof hdr)
            cap = map_pcap_open(fd, (size_t)st.st_size, hdr);
        goto out;
    }
    *tried = true;
    cap = calloc(1, sizeof *cap);
    if (!cap) {
        snprintf(err, errlen, "cannot read capture %s: out of memory", path);
        goto out;
    }
    cap->fd = -1;
    if (map_file(cap, fd, (size_t)st.st_size)) {
        if (ng_start(cap, path, err, errlen) != 0) {
            capture_pcap_free(cap);
            cap = NULL;
        }
        goto out;
    }
    free(cap);
    /* Not mapped (another capture holds the SIGBUS handler, or no memory): read from the
     * start. */
    return stream_ng_open(path, fd, true, NULL, 0, err, errlen);
out:
    close(fd);
    return cap;
}

struct capture_pcap *capture_pcap_open(const char *path, char *err, size_t errlen)
{
    struct stat st;
    bool tried;

    if (strcmp(path, "-") == 0)
        return stream_open(path, fileno(stdin), false, err, errlen);
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        int fd = open(path, O_RDONLY | O_CLOEXEC); /* a pipe: waits for its writer */
        if (fd < 0) {
            snprintf(err, errlen, "cannot read capture %s: %s", path, strerror(errno));
            return NULL;
        }
        return stream_open(path, fd, true, err, errlen);
    }
    struct capture_pcap *cap = file_open(path, &tried, err, errlen);
    if (cap || tried)
        return cap;
    return libpcap_open_path(path, err, errlen);
}

/* ---- reading ---- */

/* The next record through libpcap (classic pcap variants, or from a pipe). Out of line: the
 * mapped path is the hot one, and this one would keep the call from being inlined there. */
__attribute__((noinline)) static int libpcap_next(struct capture_pcap *cap,
                                                  struct capture_frame *frame, char *err,
                                                  size_t errlen)
{
    struct pcap_pkthdr *h;
    const u_char *data;
    int rc = pcap_next_ex(cap->pcap, &h, &data);
    if (rc == PCAP_ERROR_BREAK) /* offline: the end of the file, between records */
        return 0;
    if (rc != 1) {
        /* PCAP_ERROR: libpcap 1.10 reports a file that ends inside a record as "truncated dump
         * file; tried to read N captured bytes, only got M"; anything else is a record it
         * refuses or a read error. */
        snprintf(err, errlen, "%s", pcap_geterr(cap->pcap));
        return strncmp(err, "truncated", 9) == 0 ? -EIO : -EBADMSG;
    }
    /* With PCAP_TSTAMP_PRECISION_NANO, tv_usec holds nanoseconds. */
    fill_frame(frame, data, h->caplen, h->len, clamp_ns_wide(h->ts.tv_sec, h->ts.tv_usec),
               cap->link);
    return 1;
}

int capture_pcap_next(struct capture_pcap *cap, struct capture_frame *frame, char *err,
                      size_t errlen)
{
    if (cap->reader == READ_PCAP_MAPPED)
        return map_next(cap, frame, err, errlen);
    if (cap->reader == READ_PCAPNG)
        return ng_next(cap, frame, err, errlen);
    return libpcap_next(cap, frame, err, errlen);
}

uint64_t capture_pcap_overlong(const struct capture_pcap *cap, uint32_t *snaplen)
{
    *snaplen = cap->snaplen;
    return cap->reader == READ_PCAP_MAPPED ? cap->overlong : 0;
}

bool capture_pcap_in_place(const struct capture_pcap *cap)
{
    return cap->map != NULL;
}

void capture_pcap_free(struct capture_pcap *cap)
{
    if (!cap)
        return;
    if (cap->pcap)
        pcap_close(cap->pcap);
    if (cap->map) {
        munmap((void *)cap->map, cap->size);
        sigbus_cover = NULL;
    }
    if (cap->own_fd)
        close(cap->fd);
    free(cap->buf);
    free(cap->ifaces);
    free(cap);
}
