/* portset: parsing of port lists. */
#include "portset.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

void portset_add(struct portset *set, uint16_t port)
{
    if (!portset_has(set, port)) {
        set->bits[port >> 6] |= 1ULL << (port & 63);
        set->count++;
    }
}

static const char *skip_spaces(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Reads one port number at *p; returns it, or -1 when there is none or it is out of range. */
static long read_port(const char **p)
{
    long v = 0;
    const char *s = skip_spaces(*p);
    const char *start = s;

    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (*s - '0');
        if (v > 65535)
            return -1;
        s++;
    }
    if (s == start || v == 0)
        return -1;
    *p = skip_spaces(s);
    return v;
}

int portset_parse(struct portset *set, const char *text, char *err, size_t errlen)
{
    const char *p = text;

    memset(set, 0, sizeof(*set));
    for (;;) {
        const char *item = p;
        long lo = read_port(&p), hi;
        if (lo < 0) {
            snprintf(err, errlen, "invalid port in \"%s\" at \"%s\": ports are 1-65535", text,
                     item);
            return -EINVAL;
        }
        hi = lo;
        if (*p == '-') {
            p++;
            hi = read_port(&p);
            if (hi < 0 || hi < lo) {
                snprintf(err, errlen, "invalid port range in \"%s\" at \"%s\"", text, item);
                return -EINVAL;
            }
        }
        for (long port = lo; port <= hi; port++) {
            /* A port in two items ("5060,5060", ranges that overlap) is a typo: one item was
             * meant, another forgotten. */
            if (portset_has(set, (uint16_t)port)) {
                snprintf(err, errlen, "port %ld is listed twice in \"%s\"", port, text);
                return -EINVAL;
            }
            portset_add(set, (uint16_t)port);
        }
        if (*p == '\0')
            return 0;
        if (*p != ',') {
            snprintf(err, errlen, "unexpected \"%c\" in port list \"%s\"", *p, text);
            return -EINVAL;
        }
        p++;
    }
}
