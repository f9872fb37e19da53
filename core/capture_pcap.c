/* capture_pcap: frames from a pcap or pcapng file through libpcap, with nanosecond timestamps.
 * It neither decodes nor filters: every record of the file comes out as one frame. */
#include "capture_pcap.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pcap/pcap.h>

struct capture_pcap {
    pcap_t *pcap;
    int link; /* enum capture_link */
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

struct capture_pcap *capture_pcap_open(const char *path, char *err, size_t errlen)
{
    char errbuf[PCAP_ERRBUF_SIZE] = "";
    /* Nanosecond precision: libpcap scales microsecond files up and keeps the full resolution
     * of nanosecond pcap and pcapng (if_tsresol) files. */
    pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, errbuf);
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

int capture_pcap_next(struct capture_pcap *cap, struct capture_frame *frame, char *err,
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
         * file..."), and read errors with errno's text. */
        snprintf(err, errlen, "%s", pcap_geterr(cap->pcap));
        return -EIO;
    }
    frame->data = data;
    frame->caplen = h->caplen;
    /* A record whose original length is below its captured length is malformed; keep the
     * documented invariant wirelen >= caplen rather than pass it on. */
    frame->wirelen = h->len > h->caplen ? h->len : h->caplen;
    /* With PCAP_TSTAMP_PRECISION_NANO, tv_usec holds nanoseconds. */
    frame->ts_ns = (uint64_t)h->ts.tv_sec * 1000000000u + (uint64_t)h->ts.tv_usec;
    frame->link = (uint16_t)cap->link;
    frame->dir = CAPTURE_DIR_UNKNOWN;
    frame->iface = 0;
    return 1;
}

int capture_pcap_link(const struct capture_pcap *cap)
{
    return cap->link;
}

void capture_pcap_free(struct capture_pcap *cap)
{
    if (!cap)
        return;
    pcap_close(cap->pcap);
    free(cap);
}
