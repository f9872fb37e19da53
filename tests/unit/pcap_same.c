/* pcap_same: capture_pcap against libpcap, record by record (pcap_same.h). */
#include "pcap_same.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pcap/pcap.h>

#include "capture_pcap.h"

/* What a pcapng packet's frame may differ in, by design (pcap_same.h). */
enum {
    MAY_DIFFER_TIME = 1, /* a Simple Packet Block, or a resolution libpcap cannot scale */
    MAY_DIFFER_DATA = 2, /* a Linux cooked header in a section of the other byte order */
};

/* The pcapng packets of a file, in order, and what each may differ in; and how many packets
 * come before the first section in the other byte order than the first (libpcap stops there).
 * A walk of the block lengths alone, independent of capture_pcap: it stops at the first block
 * it cannot follow (both readers stop there too). */
struct ng_walk {
    uint8_t *flags;
    size_t n, size;
    size_t before_order_change;
};

static uint32_t rd32(const uint8_t *p, int sw)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return sw ? __builtin_bswap32(v) : v;
}

static uint16_t rd16(const uint8_t *p, int sw)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return sw ? __builtin_bswap16(v) : v;
}

static void walk_add(struct ng_walk *w, uint8_t flags)
{
    if (w->n == w->size) {
        w->size = w->size ? w->size * 2 : 64;
        w->flags = realloc(w->flags, w->size);
        if (!w->flags)
            abort();
    }
    w->flags[w->n++] = flags;
}

static void ng_walk(const uint8_t *d, size_t size, struct ng_walk *w)
{
    /* Per interface of the section: 1 for a Linux cooked link type, 2 for a resolution finer
     * than 2^-34 s (libpcap 1.10 scales a fraction of 2^-k s to nanoseconds as fraction *
     * 10^9 / 2^k in 64 bits, which overflows past k = 34). */
    size_t off = 0, n_iface = 0, max_iface = CAPTURE_PCAPNG_MAX_IFACES;
    uint8_t *iface = malloc(max_iface);
    int sw = 0, first_sw = -1;

    memset(w, 0, sizeof *w);
    w->before_order_change = SIZE_MAX;
    if (!iface)
        abort();
    while (size - off >= 12) {
        uint32_t type = rd32(d + off, sw);
        if (type == 0x0a0d0d0a) {
            uint32_t magic = rd32(d + off + 8, 0);
            if (magic != 0x1a2b3c4d && magic != 0x4d3c2b1a)
                break;
            sw = magic != 0x1a2b3c4d;
            if (first_sw < 0)
                first_sw = sw;
            else if (sw != first_sw && w->before_order_change == SIZE_MAX)
                w->before_order_change = w->n;
            n_iface = 0;
        }
        uint32_t len = rd32(d + off + 4, sw);
        if (len < 12 || len % 4 || len > size - off)
            break;
        const uint8_t *b = d + off + 8;
        uint32_t n = len - 12;
        if (type == 1 && n >= 8 && n_iface < max_iface) {
            uint16_t lt = rd16(b, sw);
            uint8_t f = lt == 113 || lt == 276;
            for (uint32_t o = 8; o + 4 <= n;) {
                uint16_t code = rd16(b + o, sw), olen = rd16(b + o + 2, sw);
                if (code == 0)
                    break;
                if (code == 9 && olen == 1 && o + 5 <= n && (b[o + 4] & 0x80) &&
                    (b[o + 4] & 0x7f) >= 35)
                    f |= 2;
                o += 4 + ((olen + 3u) & ~3u);
            }
            iface[n_iface++] = f;
        } else if (type == 2 || type == 3 || type == 6) {
            uint32_t id = type == 3   ? 0
                          : type == 2 ? (n >= 2 ? rd16(b, sw) : UINT32_MAX)
                                      : (n >= 4 ? rd32(b, sw) : UINT32_MAX);
            /* An undeclared interface's frames may differ in both. (The mask only tells GCC
             * that the index stays inside: id < n_iface <= CAPTURE_PCAPNG_MAX_IFACES.) */
            uint8_t f = id < n_iface ? iface[id % CAPTURE_PCAPNG_MAX_IFACES] : 1 | 2;
            walk_add(w, (type == 3 || (f & 2) ? MAY_DIFFER_TIME : 0) |
                            ((f & 1) && sw != first_sw ? MAY_DIFFER_DATA : 0));
        }
        off += len;
    }
    free(iface);
}

/* What libpcap 1.10 refuses in a pcapng file that capture_pcap reads on purpose: interfaces of
 * several link types or snap lengths, a packet longer than its snap length. */
static bool libpcap_refusal(const char *msg)
{
    static const char *const refusals[] = {
        "an interface has a type ",
        "an interface has a snapshot length ",
        "invalid packet capture length ",
    };
    for (size_t i = 0; i < sizeof refusals / sizeof refusals[0]; i++)
        if (strncmp(msg, refusals[i], strlen(refusals[i])) == 0)
            return true;
    return false;
}

/* Whether link is one decode handles (enum capture_link). */
static bool decoded_link(int link)
{
    switch (link) {
    case CAPTURE_LINK_NULL:
    case CAPTURE_LINK_ETHERNET:
    case CAPTURE_LINK_RAW:
    case CAPTURE_LINK_LOOP:
    case CAPTURE_LINK_LINUX_SLL:
    case CAPTURE_LINK_IPV4:
    case CAPTURE_LINK_IPV6:
    case CAPTURE_LINK_LINUX_SLL2:
        return true;
    default:
        return false;
    }
}

/* The file's bytes (malloc'ed; NULL if it cannot be read) and whether it is pcapng. */
static uint8_t *slurp(const char *path, size_t *size, bool *pcapng)
{
    FILE *f = fopen(path, "rb");
    uint8_t *d = NULL;
    size_t n = 0, cap = 0, got;

    *pcapng = false;
    *size = 0;
    if (!f)
        return NULL;
    do {
        if (n == cap) {
            cap = cap ? cap * 2 : 65536;
            uint8_t *bigger = realloc(d, cap);
            if (!bigger)
                abort();
            d = bigger;
        }
        got = fread(d + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    fclose(f);
    *size = n;
    *pcapng = n >= 4 && rd32(d, 0) == 0x0a0d0d0a;
    return d;
}

int pcap_same_as_libpcap(const char *path, bool *in_place, char *why, size_t whylen)
{
    char err[256] = "", perr[PCAP_ERRBUF_SIZE] = "";
    struct capture_pcap *cap = capture_pcap_open(path, err, sizeof err);
    pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, perr);
    struct ng_walk walk = {0};
    int frames = 0;
    bool pcapng;
    size_t size;
    uint8_t *bytes = slurp(path, &size, &pcapng);

    why[0] = '\0';
    if (in_place && cap)
        *in_place = capture_pcap_in_place(cap);
    if (pcapng)
        ng_walk(bytes, size, &walk);
    free(bytes);
    if (!cap || !p) {
        /* libpcap opens no pcapng file whose first interface comes after a packet, or that has
         * none, or of a minor version other than 0 and 2: capture_pcap does. */
        if (!cap || !pcapng)
            snprintf(why, whylen, "open: \"%s\", libpcap \"%s\"", cap ? "" : err, p ? "" : perr);
        frames = cap ? -2 : -1;
        goto out;
    }
    for (;;) {
        struct capture_frame fr;
        struct pcap_pkthdr *h;
        const u_char *data;
        if (pcapng && (size_t)frames >= walk.before_order_change)
            break; /* libpcap reads no section in another byte order than the first */
        int rc = capture_pcap_next(cap, &fr, err, sizeof err);
        int prc = pcap_next_ex(p, &h, &data);
        /* libpcap's errors: a cut file ("truncated ...") or a record it refuses. */
        int want = prc == 1                                       ? 1
                   : prc == PCAP_ERROR_BREAK                      ? 0
                   : strncmp(pcap_geterr(p), "truncated", 9) == 0 ? -EIO
                                                                  : -EBADMSG;
        if (pcapng && prc != 1 && prc != PCAP_ERROR_BREAK && libpcap_refusal(pcap_geterr(p)))
            break; /* libpcap stops where capture_pcap reads on */
        if (rc != want) {
            snprintf(why, whylen, "frame %d: rc %d, libpcap %d (%s)", frames, rc, prc,
                     prc == 1 ? "a frame" : pcap_geterr(p));
            break;
        }
        if (rc == 0)
            break;
        if (rc < 0) {
            if (strcmp(err, pcap_geterr(p)) != 0)
                snprintf(why, whylen, "frame %d: \"%s\", libpcap \"%s\"", frames, err,
                         pcap_geterr(p));
            break;
        }
        uint8_t may = pcapng && (size_t)frames < walk.n ? walk.flags[frames] : 0;
        if (pcapng && (size_t)frames >= walk.n)
            may = MAY_DIFFER_TIME | MAY_DIFFER_DATA;
        /* libpcap byte-swaps or rewrites parts of the headers of some link types (USB, NFLOG,
         * CAN over Linux cooked) it does not decode anyway. */
        if (!decoded_link(fr.link))
            may |= MAY_DIFFER_DATA;
        /* libpcap's time, clamped to [0, CAPTURE_MAX_TS_NS] as capture.h says (in 128 bits,
         * so that the reference cannot wrap itself). */
        __int128 t = (__int128)h->ts.tv_sec * 1000000000 + (__int128)h->ts.tv_usec;
        uint64_t ts = t < 0 ? 0 : t > (__int128)CAPTURE_MAX_TS_NS ? CAPTURE_MAX_TS_NS : (uint64_t)t;
        if ((fr.ts_ns != ts && !(may & MAY_DIFFER_TIME)) || fr.caplen != h->caplen ||
            (!(may & MAY_DIFFER_DATA) && (fr.wirelen != (h->len > h->caplen ? h->len : h->caplen) ||
                                          memcmp(fr.data, data, h->caplen) != 0))) {
            snprintf(why, whylen, "frame %d differs: ts %llu/%llu caplen %u/%u wirelen %u/%u",
                     frames, (unsigned long long)fr.ts_ns, (unsigned long long)ts, fr.caplen,
                     h->caplen, fr.wirelen, h->len);
            break;
        }
        frames++;
    }
out:
    free(walk.flags);
    capture_pcap_free(cap);
    if (p)
        pcap_close(p);
    return frames;
}
