/* capture_pcapng: the pcapng reader of capture_pcap (draft-ietf-opsawg-pcapng): sections in
 * either byte order, interfaces of different link types, their time resolutions and offsets,
 * blocks it does not need skipped by their length; in place when the file is mapped, else
 * through one read buffer. It neither opens files nor decodes. */
#include "capture_pcapng.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pcap/pcap.h>

#include "capture_pcap_internal.h"

/* pcapng (draft-ietf-opsawg-pcapng): blocks of a type, a total length (a multiple of 4, at least
 * 12), a body and the total length again. A Section Header Block starts the file and each
 * section; its byte-order magic gives the byte order of the section, its own length included. */
#define NG_IDB 1u
#define NG_PB 2u /* the obsolete Packet Block */
#define NG_SPB 3u
#define NG_EPB 6u
#define NG_BYTE_ORDER_MAGIC 0x1a2b3c4du
#define NG_MIN_BLOCK 12u
#define NG_OPT_ENDOFOPT 0
#define NG_IF_TSRESOL 9
#define NG_IF_TSOFFSET 14
/* Standard input and pipes: the read buffer starts at this size and grows, for a longer block,
 * up to CAPTURE_PCAPNG_MAX_BLOCK. */
#define STREAM_BUF_START (256u << 10)

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

/* The capture_link of a LINKTYPE_ value, as for a file libpcap opens: libpcap's own mapping
 * (linktype_to_dlt, which it does not export: it is asked, with a classic file header held in
 * memory) and then capture_pcap_link_from_dlt, as the libpcap path maps the one link type of its
 * files. For a type sipscope does not decode, the LINKTYPE_ value itself, which none of enum
 * capture_link has: decode counts such frames as unsupported_link. Remembered for the few types a
 * file has. */
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
    int link = p ? capture_pcap_link_from_dlt(pcap_datalink(p)) : -1;
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

int capture_pcapng_next(struct capture_pcap *cap, struct capture_frame *frame, char *err,
                        size_t errlen)
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

int capture_pcapng_start(struct capture_pcap *cap, const char *path, char *err, size_t errlen)
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

struct capture_pcap *capture_pcapng_open_stream(const char *path, int fd, bool own,
                                                const uint8_t *pre, size_t npre, char *err,
                                                size_t errlen)
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
    if (capture_pcapng_start(cap, path, err, errlen) != 0) {
        capture_pcap_free(cap);
        return NULL;
    }
    return cap;
}
