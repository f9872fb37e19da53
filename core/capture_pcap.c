/* capture_pcap: frames from a pcap or pcapng file, with nanosecond timestamps. Classic pcap files
 * (either byte order, microsecond or nanosecond magic) are mapped and walked in place, without a
 * copy per record; pcapng, standard input and the rare variants libpcap knows better go through
 * libpcap. It neither decodes nor filters: every record of the file comes out as one frame. */
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

struct capture_pcap {
    pcap_t *pcap; /* libpcap reads the file; NULL when it is mapped */
    int link;     /* enum capture_link */
    /* The mapped file. */
    const uint8_t *map;
    size_t size, off;
    size_t fetched; /* bytes before it were prefetched */
    size_t dropped; /* pages before it were dropped (a multiple of the page size) */
    size_t populated; /* pages before it were populated; SIZE_MAX when the kernel cannot */
    volatile sig_atomic_t cut; /* the file shrank while mapped (on_sigbus): it ends here */
    uint32_t snaplen;
    bool swapped; /* written in the other byte order */
    bool nsec;    /* fractions are nanoseconds, not microseconds */
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
 * capture being read (one at a time: another file opened meanwhile goes through libpcap): it
 * puts zero pages over the rest of the mapping and marks the capture cut, and the reader then
 * ends the file as libpcap ends a truncated one. map_next reads each record's last byte before
 * handing it out, so that a cut record is caught there rather than later in the engine. */
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

/* Maps path when it is a classic pcap file the in-place reader gives exactly what libpcap would:
 * version 2.4, a snap length of 1 to 262144 and a link type whose headers libpcap leaves alone.
 * Returns the reader, or NULL to let libpcap open the file (and report any problem). */
static struct capture_pcap *map_open(const char *path)
{
    struct capture_pcap *cap = NULL;
    struct stat st;
    uint8_t hdr[PCAP_FILE_HDR];
    int fd;

    /* Only a regular file maps. A named pipe must not be opened here: libpcap opens the path
     * again, and a writer that saw this open and its close gets EPIPE and goes, leaving
     * libpcap's open waiting for a writer for ever. */
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < PCAP_FILE_HDR ||
        pread(fd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr)
        goto out;
    uint32_t magic;
    memcpy(&magic, hdr, 4);
    bool swapped = false;
    if (magic != PCAP_MAGIC_USEC && magic != PCAP_MAGIC_NSEC) {
        magic = __builtin_bswap32(magic);
        if (magic != PCAP_MAGIC_USEC && magic != PCAP_MAGIC_NSEC)
            goto out;
        swapped = true;
    }
    uint32_t snaplen = get32(hdr + 16, swapped), linktype = get32(hdr + 20, swapped);
    if (get16(hdr + 4, swapped) != 2 || get16(hdr + 6, swapped) != 4 || snaplen == 0 ||
        snaplen > PCAP_MAX_SNAPLEN || !mappable_linktype(linktype, swapped))
        goto out;
    cap = calloc(1, sizeof *cap);
    if (!cap)
        goto out;
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        free(cap);
        cap = NULL;
        goto out;
    }
    cap->map = map;
    cap->size = (size_t)st.st_size;
    if (!sigbus_take(cap)) {
        munmap(map, (size_t)st.st_size);
        free(cap);
        cap = NULL;
        goto out;
    }
    /* Read once, front to back: ask for readahead. */
    madvise(map, (size_t)st.st_size, MADV_SEQUENTIAL);
    cap->off = PCAP_FILE_HDR;
    cap->snaplen = snaplen;
    cap->swapped = swapped;
    cap->nsec = magic == PCAP_MAGIC_NSEC;
    cap->link = (int)linktype;
out:
    close(fd);
    return cap;
}

/* Whether the file at path starts with the gzip magic (RFC 1952: 1f 8b): a compressed capture
 * (tcpdump -z gzip, a rotated .pcap.gz), which libpcap calls an "unknown file format". Standard
 * input cannot be asked: libpcap has read its first bytes. */
static bool is_gzip(const char *path)
{
    unsigned char magic[2];
    bool gz = false;
    int fd;

    if (strcmp(path, "-") == 0 || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return false;
    gz = read(fd, magic, 2) == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    close(fd);
    return gz;
}

struct capture_pcap *capture_pcap_open(const char *path, char *err, size_t errlen)
{
    if (strcmp(path, "-") != 0) {
        struct capture_pcap *cap = map_open(path);
        if (cap)
            return cap;
    }

    char errbuf[PCAP_ERRBUF_SIZE] = "";
    /* Nanosecond precision: libpcap scales microsecond files up and keeps the full resolution
     * of nanosecond pcap and pcapng (if_tsresol) files. */
    pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, errbuf);
    if (!p && is_gzip(path)) {
        snprintf(err, errlen,
                 "cannot read capture %s: it is compressed with gzip: zcat %s | sipscope --read "
                 "- ...",
                 path, path);
        return NULL;
    }
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
    cap->pcap = p;
    cap->link = link;
    return cap;
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

static void fill_frame(const struct capture_pcap *cap, struct capture_frame *frame,
                       const uint8_t *data, uint32_t caplen, uint32_t len, uint64_t ts_ns)
{
    frame->data = data;
    frame->caplen = caplen;
    /* A record whose original length is below its captured length is malformed; keep the
     * documented invariant wirelen >= caplen rather than pass it on. */
    frame->wirelen = len > caplen ? len : caplen;
    frame->ts_ns = ts_ns;
    frame->link = (uint16_t)cap->link;
    frame->dir = CAPTURE_DIR_UNKNOWN;
    frame->iface = 0;
    frame->gso_size = 0;
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
    /* A record longer than the file's snap length is cut to it, as libpcap does. */
    fill_frame(cap, frame, h + PCAP_REC_HDR, caplen > cap->snaplen ? cap->snaplen : caplen, len,
               clamp_ns(sec, frac));
    return 1;
}

/* The next record through libpcap (pcapng, other variants, standard input). Out of line: the
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
         * file; tried to read N captured bytes, only got M" (pcapng: "truncated pcapng dump
         * file..."); anything else is a block it refuses (an interface that was never
         * described, a second link type, a bad block length) or a read error. */
        snprintf(err, errlen, "%s", pcap_geterr(cap->pcap));
        return strncmp(err, "truncated", 9) == 0 ? -EIO : -EBADMSG;
    }
    /* With PCAP_TSTAMP_PRECISION_NANO, tv_usec holds nanoseconds. */
    fill_frame(cap, frame, data, h->caplen, h->len,
               clamp_ns_wide(h->ts.tv_sec, h->ts.tv_usec));
    return 1;
}

int capture_pcap_next(struct capture_pcap *cap, struct capture_frame *frame, char *err,
                      size_t errlen)
{
    if (!cap->pcap)
        return map_next(cap, frame, err, errlen);
    return libpcap_next(cap, frame, err, errlen);
}

int capture_pcap_link(const struct capture_pcap *cap)
{
    return cap->link;
}

bool capture_pcap_in_place(const struct capture_pcap *cap)
{
    return cap->pcap == NULL;
}

void capture_pcap_free(struct capture_pcap *cap)
{
    if (!cap)
        return;
    if (cap->pcap) {
        pcap_close(cap->pcap);
    } else {
        munmap((void *)cap->map, cap->size);
        sigbus_cover = NULL;
    }
    free(cap);
}
