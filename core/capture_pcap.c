/* capture_pcap: frames from a pcap or pcapng file, with nanosecond timestamps. Opens the file and
 * picks its reader: classic pcap files (either byte order, microsecond or nanosecond magic) are
 * mapped and walked in place here, without a copy per record; pcapng files go to capture_pcapng.c,
 * mapped when possible, else through one read buffer; classic pcap from a pipe and the rare
 * variants libpcap knows better go through libpcap. It neither decodes nor filters: every packet
 * of the file comes out as one frame. */
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

#include "capture_pcap_internal.h"
#include "capture_pcapng.h"

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

/* libpcap hands out its own DLT_ numbers, which differ from the file's LINKTYPE_ value on some
 * platforms (DLT_RAW is 12 or 14 where LINKTYPE_RAW is 101; DLT_LOOP is 12 on OpenBSD).
 * Returns the capture_link value, or -1 for a link type decode does not handle. */
int capture_pcap_link_from_dlt(int dlt)
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

/* A mapped file that shrinks while it is read (a rotation that truncates it in place) makes any
 * read of its lost pages raise SIGBUS, which would kill the process. The handler covers the
 * capture being read (one at a time: another file opened meanwhile is read without a mapping):
 * it puts zero pages over the rest of the mapping and marks the capture cut, and the reader then
 * ends the file as libpcap ends a truncated one. map_next and ng_block read each record's or
 * block's last byte before handing it out, so that a cut one is caught there rather than later
 * in the engine. */
static struct capture_pcap *volatile sigbus_cover;
uintptr_t capture_pcap_page_size; /* set by sigbus_take, before any mapped file is read */

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
    struct capture_pcap *cap = sigbus_cover;
    uintptr_t a = (uintptr_t)si->si_addr, base = cap ? (uintptr_t)cap->map : 0;
    (void)uc;
    if (cap && a >= base && a < base + cap->size) {
        uintptr_t from = a & ~(capture_pcap_page_size - 1);
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
        capture_pcap_page_size = (uintptr_t)sysconf(_SC_PAGESIZE);
        if (sigaction(SIGBUS, &sa, NULL) != 0)
            return false;
        installed = true;
    }
    sigbus_cover = cap;
    return true;
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

/* ---- opening ---- */

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
    int link = capture_pcap_link_from_dlt(dlt);
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
        return capture_pcapng_open_stream(path, fd, own, pre, n, err, errlen);
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
        if (capture_pcapng_start(cap, path, err, errlen) != 0) {
            capture_pcap_free(cap);
            cap = NULL;
        }
        goto out;
    }
    free(cap);
    /* Not mapped (another capture holds the SIGBUS handler, or no memory): read from the
     * start. */
    return capture_pcapng_open_stream(path, fd, true, NULL, 0, err, errlen);
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
        return capture_pcapng_next(cap, frame, err, errlen);
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
