/* pcap_same: capture_pcap against libpcap, record by record (pcap_same.h). */
#include "pcap_same.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <pcap/pcap.h>

#include "capture_pcap.h"

int pcap_same_as_libpcap(const char *path, bool *in_place, char *why, size_t whylen)
{
    char err[256] = "", perr[PCAP_ERRBUF_SIZE] = "";
    struct capture_pcap *cap = capture_pcap_open(path, err, sizeof err);
    pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, perr);
    int frames = 0;

    why[0] = '\0';
    if (!cap || !p) {
        snprintf(why, whylen, "open: \"%s\", libpcap \"%s\"", cap ? "" : err, p ? "" : perr);
        frames = cap ? -2 : -1;
        goto out;
    }
    if (in_place)
        *in_place = capture_pcap_in_place(cap);
    for (;;) {
        struct capture_frame fr;
        struct pcap_pkthdr *h;
        const u_char *data;
        int rc = capture_pcap_next(cap, &fr, err, sizeof err);
        int prc = pcap_next_ex(p, &h, &data);
        /* libpcap's errors: a cut file ("truncated ...") or a record it refuses. */
        int want = prc == 1                                       ? 1
                   : prc == PCAP_ERROR_BREAK                      ? 0
                   : strncmp(pcap_geterr(p), "truncated", 9) == 0 ? -EIO
                                                                  : -EBADMSG;
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
        /* libpcap's time, clamped to [0, CAPTURE_MAX_TS_NS] as capture.h says (in 128 bits,
         * so that the reference cannot wrap itself). */
        __int128 t = (__int128)h->ts.tv_sec * 1000000000 + (__int128)h->ts.tv_usec;
        uint64_t ts = t < 0 ? 0 : t > (__int128)CAPTURE_MAX_TS_NS ? CAPTURE_MAX_TS_NS : (uint64_t)t;
        if (fr.ts_ns != ts || fr.caplen != h->caplen ||
            fr.wirelen != (h->len > h->caplen ? h->len : h->caplen) ||
            memcmp(fr.data, data, h->caplen) != 0) {
            snprintf(why, whylen, "frame %d differs: ts %llu/%llu caplen %u/%u wirelen %u/%u",
                     frames, (unsigned long long)fr.ts_ns, (unsigned long long)ts, fr.caplen,
                     h->caplen, fr.wirelen, h->len);
            break;
        }
        frames++;
    }
out:
    capture_pcap_free(cap);
    if (p)
        pcap_close(p);
    return frames;
}
