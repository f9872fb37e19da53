/* config: value parsing for the command line. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    double ns;
} units[] = {
    /* Longest names first so that "ms" is not read as "m". */
    {"ns", 1}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"m", 60e9}, {"h", 3600e9}, {"d", 86400e9},
};

int config_parse_duration(const char *text, uint64_t *ns, char *err, size_t errlen)
{
    const char *p = text;
    double total = 0;
    size_t last = sizeof(units) / sizeof(units[0]); /* the unit before: none yet */

    if (!*p)
        goto bad;
    while (*p) {
        char *end;
        double v;
        size_t best = 0, best_len = 0;
        if (!(*p >= '0' && *p <= '9') && *p != '.')
            goto bad;
        v = strtod(p, &end);
        if (end == p || v < 0 || !isfinite(v))
            goto bad;
        p = end;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            size_t n = strlen(units[i].name);
            if (strncmp(p, units[i].name, n) == 0 && n > best_len) {
                best = i;
                best_len = n;
            }
        }
        if (!best_len)
            goto bad;
        /* As Prometheus has it (Go sums any order): "1s1s" or "1m2h" is more likely a typo,
         * 11s or 1h2m meant, than a sum. units[] runs from the smallest. */
        if (best >= last) {
            snprintf(err, errlen,
                     "invalid duration \"%s\": each unit once, the largest first (1h30m)", text);
            return -EINVAL;
        }
        last = best;
        total += v * units[best].ns;
        p += best_len;
    }
    if (total >= 1.8e19)
        goto bad;
    *ns = (uint64_t)llround(total);
    return 0;
bad:
    snprintf(err, errlen, "invalid duration \"%s\": use a number and a unit, e.g. 500ms, 32s, 4h",
             text);
    return -EINVAL;
}

int config_parse_count(const char *text, uint64_t min, uint64_t max, uint64_t *out, char *err,
                       size_t errlen)
{
    char *end;
    unsigned long long v;

    errno = 0;
    if (!(*text >= '0' && *text <= '9'))
        goto bad;
    v = strtoull(text, &end, 10);
    if (errno || *end || v < min || v > max)
        goto bad;
    *out = v;
    return 0;
bad:
    snprintf(err, errlen, "invalid number \"%s\": expected a whole number from %llu to %llu", text,
             (unsigned long long)min, (unsigned long long)max);
    return -EINVAL;
}

int config_parse_size(const char *text, uint64_t *bytes, char *err, size_t errlen)
{
    static const struct {
        const char *name;
        uint64_t mult;
    } sizes[] = {{"", 1},         {"B", 1},          {"K", 1ULL << 10}, {"KiB", 1ULL << 10},
                 {"M", 1ULL << 20}, {"MiB", 1ULL << 20}, {"G", 1ULL << 30}, {"GiB", 1ULL << 30}};
    char *end;
    unsigned long long v;

    errno = 0;
    if (!(*text >= '0' && *text <= '9'))
        goto bad;
    v = strtoull(text, &end, 10);
    if (errno)
        goto bad;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        if (strcmp(end, sizes[i].name) == 0) {
            if (v > UINT64_MAX / sizes[i].mult)
                goto bad;
            *bytes = v * sizes[i].mult;
            return 0;
        }
    }
bad:
    snprintf(err, errlen, "invalid size \"%s\": use a number with B, KiB, MiB or GiB", text);
    return -EINVAL;
}

int config_parse_names(const char *text, const char *const *names, unsigned n, unsigned *bits,
                       char *err, size_t errlen)
{
    const char *p = text;
    unsigned got = 0;

    for (;;) {
        size_t len = strcspn(p, ",");
        unsigned i = 0;
        while (i < n && !(strlen(names[i]) == len && memcmp(names[i], p, len) == 0))
            i++;
        if (i == n) {
            int k = snprintf(err, errlen, "\"%.*s\" in \"%s\" is not one of ", (int)len, p, text);
            for (unsigned j = 0; j < n && k >= 0 && (size_t)k < errlen; j++)
                k += snprintf(err + k, errlen - (size_t)k, "%s%s", j ? ", " : "", names[j]);
            return -EINVAL;
        }
        got |= 1u << i;
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
    *bits = got;
    return 0;
}

int config_list_unique(const char *text, char *err, size_t errlen)
{
    for (const char *p = text; *p; p += *p == ',') {
        size_t len = strcspn(p, ",");
        /* Every earlier item against this one: a command line's list is short. */
        for (const char *q = text; len && q < p; q += *q == ',') {
            size_t qlen = strcspn(q, ",");
            if (qlen == len && memcmp(q, p, len) == 0) {
                snprintf(err, errlen, "'%.*s' is listed twice", (int)(len > 64 ? 64 : len), p);
                return -EINVAL;
            }
            q += qlen;
        }
        p += len;
    }
    return 0;
}
