/* bench_helpers: what the rule helpers cost per call on the per-message path: CIDR longest-prefix
 * match, header-value classification and sliding-window counters. Not a test: prints numbers
 * only (best of several rounds, nanoseconds per call). */
#include "cidr.h"
#include "classify.h"
#include "window.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define ROUNDS 9

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* CPU time: the bench machine is shared */
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static volatile int64_t sink;

static void report(const char *what, double ns, const char *extra)
{
    printf("%-58s %8.1f ns%s\n", what, ns, extra ? extra : "");
}

/* --- cidr ---------------------------------------------------------------------------------- */

/* A prefix length drawn from a mix like a carrier list: mostly /24, some shorter, some hosts. */
static unsigned v4_len(void)
{
    unsigned r = (unsigned)(rng() % 100);
    if (r < 55)
        return 24;
    if (r < 75)
        return 16 + (unsigned)(rng() % 8);
    if (r < 85)
        return 8 + (unsigned)(rng() % 8);
    return 25 + (unsigned)(rng() % 8);
}

static void mask(uint8_t *a, unsigned bits, unsigned plen)
{
    for (unsigned i = plen; i < bits; i++)
        a[i / 8] &= (uint8_t) ~(0x80 >> (i % 8));
}

static double time_lookups(const struct cidr *set, int family, const uint8_t *addrs, size_t n,
                           size_t stride)
{
    double best = 1e300;
    for (int r = 0; r < ROUNDS; r++) {
        int64_t acc = 0;
        double t0 = now_ns();
        for (size_t i = 0; i < n; i++)
            acc += cidr_lookup(set, family, addrs + i * stride);
        double dt = (now_ns() - t0) / (double)n;
        sink += acc;
        if (dt < best)
            best = dt;
    }
    return best;
}

static void bench_cidr_v4(unsigned nprefixes, const char *label)
{
    enum { PROBES = 1 << 20 };
    uint8_t(*pfx)[4] = malloc(nprefixes * sizeof *pfx);
    unsigned *lens = malloc(nprefixes * sizeof *lens);
    uint8_t *hits = malloc((size_t)PROBES * 4), *uniform = malloc((size_t)PROBES * 4);
    struct cidr *set = cidr_new(nprefixes);
    char text[64], err[160], line[128];
    unsigned added = 0;
    double t0 = now_ns();

    for (unsigned i = 0; i < nprefixes; i++) {
        uint32_t x = (uint32_t)rng();
        memcpy(pfx[i], &x, 4);
        lens[i] = v4_len();
        mask(pfx[i], 32, lens[i]);
        inet_ntop(AF_INET, pfx[i], text, sizeof text);
        snprintf(text + strlen(text), sizeof text - strlen(text), "/%u", lens[i]);
        if (cidr_add(set, text, (int32_t)(i % 1000), err, sizeof err) == 0)
            added++;
    }
    double add_ns = (now_ns() - t0) / nprefixes;
    for (size_t i = 0; i < PROBES; i++) {
        unsigned k = (unsigned)(rng() % nprefixes);
        uint32_t x = (uint32_t)rng();
        uint8_t *a = hits + i * 4;
        memcpy(a, &x, 4);
        for (unsigned b = 0; b < lens[k]; b++) {
            uint8_t bit = (uint8_t)(0x80 >> (b % 8));
            a[b / 8] = (uint8_t)((a[b / 8] & ~bit) | (pfx[k][b / 8] & bit));
        }
        x = (uint32_t)rng();
        memcpy(uniform + i * 4, &x, 4);
    }
    snprintf(line, sizeof line, "  (%u prefixes, %zu KiB)", cidr_count(set),
             cidr_bytes(set) / 1024);
    snprintf(text, sizeof text, "cidr v4 %s: add (text parse included)", label);
    report(text, add_ns, line);
    snprintf(text, sizeof text, "cidr v4 %s: lookup, address inside a prefix", label);
    report(text, time_lookups(set, AF_INET, hits, PROBES, 4), NULL);
    snprintf(text, sizeof text, "cidr v4 %s: lookup, uniform random address", label);
    report(text, time_lookups(set, AF_INET, uniform, PROBES, 4), NULL);
    /* The same address over and over: the cost when the path stays in L1. */
    snprintf(text, sizeof text, "cidr v4 %s: lookup, one hot address", label);
    report(text, time_lookups(set, AF_INET, hits, PROBES, 0), NULL);
    cidr_free(set);
    free(pfx);
    free(lens);
    free(hits);
    free(uniform);
    (void)added;
}

/* clustered: prefixes are /48s inside 100 /32s (a few carriers' allocations); otherwise
 * /32../64 anywhere in 2000::/3, which shares almost no trie nodes: the worst case. */
static void bench_cidr_v6(unsigned nprefixes, int clustered, const char *label)
{
    enum { PROBES = 1 << 20 };
    uint8_t(*pfx)[16] = malloc(nprefixes * sizeof *pfx);
    unsigned *lens = malloc(nprefixes * sizeof *lens);
    uint8_t *hits = malloc((size_t)PROBES * 16);
    struct cidr *set = cidr_new(nprefixes);
    char text[80], err[160], line[128];
    double t0 = now_ns();

    for (unsigned i = 0; i < nprefixes; i++) {
        uint64_t x = rng(), y = rng();
        memcpy(pfx[i], &x, 8);
        memcpy(pfx[i] + 8, &y, 8);
        pfx[i][0] = (uint8_t)(0x20 | (pfx[i][0] & 0x1f)); /* 2000::/3 */
        lens[i] = 32 + 4 * (unsigned)(rng() % 9);         /* /32 .. /64 */
        if (clustered) {
            uint32_t carrier = 0x2a000000u + (uint32_t)(rng() % 100) * 0x10000u;
            pfx[i][0] = (uint8_t)(carrier >> 24);
            pfx[i][1] = (uint8_t)(carrier >> 16);
            pfx[i][2] = (uint8_t)(carrier >> 8);
            pfx[i][3] = (uint8_t)carrier;
            lens[i] = 48;
        }
        mask(pfx[i], 128, lens[i]);
        inet_ntop(AF_INET6, pfx[i], text, sizeof text);
        snprintf(text + strlen(text), sizeof text - strlen(text), "/%u", lens[i]);
        cidr_add(set, text, (int32_t)(i % 1000), err, sizeof err);
    }
    double add_ns = (now_ns() - t0) / nprefixes;
    for (size_t i = 0; i < PROBES; i++) {
        unsigned k = (unsigned)(rng() % nprefixes);
        uint8_t *a = hits + i * 16;
        uint64_t y = rng();
        memcpy(a, pfx[k], 8);
        memcpy(a + 8, &y, 8);
    }
    snprintf(line, sizeof line, "  (%u prefixes, %zu KiB)", cidr_count(set),
             cidr_bytes(set) / 1024);
    snprintf(text, sizeof text, "cidr v6 %s: add (text parse included)", label);
    report(text, add_ns, line);
    snprintf(text, sizeof text, "cidr v6 %s: lookup, address inside a prefix", label);
    report(text, time_lookups(set, AF_INET6, hits, PROBES, 16), NULL);
    cidr_free(set);
    free(pfx);
    free(lens);
    free(hits);
}

/* --- classify ------------------------------------------------------------------------------ */

struct crule {
    enum classify_kind kind;
    const char *pattern;
    unsigned flags;
};

/* About fifty rules an operator might write for User-Agent / Server. */
static const struct crule crules[] = {
    {CLASSIFY_EXACT, "friendly-scanner", 0},
    {CLASSIFY_CONTAINS, "sipvicious", CLASSIFY_NOCASE},
    {CLASSIFY_CONTAINS, "sipcli", CLASSIFY_NOCASE},
    {CLASSIFY_CONTAINS, "sip-scan", CLASSIFY_NOCASE},
    {CLASSIFY_EXACT, "pplsip", 0},
    {CLASSIFY_PREFIX, "VaxSIPUserAgent", 0},
    {CLASSIFY_CONTAINS, "sundayddr", CLASSIFY_NOCASE},
    {CLASSIFY_PREFIX, "Cisco-SIPGateway", 0},
    {CLASSIFY_GLOB, "Yealink SIP-T4?S *", 0},
    {CLASSIFY_GLOB, "Yealink SIP-T5?W *", 0},
    {CLASSIFY_PREFIX, "Yealink", CLASSIFY_NOCASE},
    {CLASSIFY_PREFIX, "PolycomVVX", 0},
    {CLASSIFY_PREFIX, "PolycomSoundPoint", 0},
    {CLASSIFY_PREFIX, "Polycom", CLASSIFY_NOCASE},
    {CLASSIFY_PREFIX, "Grandstream", CLASSIFY_NOCASE},
    {CLASSIFY_PREFIX, "Cisco/SPA", 0},
    {CLASSIFY_PREFIX, "Cisco-CP", 0},
    {CLASSIFY_PREFIX, "snom", CLASSIFY_NOCASE},
    {CLASSIFY_PREFIX, "Fanvil", CLASSIFY_NOCASE},
    {CLASSIFY_PREFIX, "Gigaset", 0},
    {CLASSIFY_PREFIX, "Panasonic", 0},
    {CLASSIFY_PREFIX, "Mitel", 0},
    {CLASSIFY_PREFIX, "Aastra", 0},
    {CLASSIFY_PREFIX, "AVM FRITZ!Box", 0},
    {CLASSIFY_PREFIX, "OBIHAI", CLASSIFY_NOCASE},
    {CLASSIFY_PREFIX, "Avaya", 0},
    {CLASSIFY_PREFIX, "Linphone", CLASSIFY_NOCASE},
    {CLASSIFY_PREFIX, "MicroSIP", 0},
    {CLASSIFY_PREFIX, "Zoiper", CLASSIFY_NOCASE},
    {CLASSIFY_PREFIX, "Bria", 0},
    {CLASSIFY_PREFIX, "X-Lite", 0},
    {CLASSIFY_PREFIX, "Jitsi", 0},
    {CLASSIFY_PREFIX, "Telephone ", 0},
    {CLASSIFY_PREFIX, "Blink", 0},
    {CLASSIFY_CONTAINS, "Acrobits", 0},
    {CLASSIFY_CONTAINS, "Groundwire", 0},
    {CLASSIFY_PREFIX, "Asterisk PBX 1", 0},
    {CLASSIFY_PREFIX, "Asterisk", CLASSIFY_NOCASE},
    {CLASSIFY_PREFIX, "FPBX-", 0},
    {CLASSIFY_PREFIX, "FreeSWITCH", 0},
    {CLASSIFY_CONTAINS, "mod_sofia", 0},
    {CLASSIFY_PREFIX, "kamailio", CLASSIFY_NOCASE},
    {CLASSIFY_PREFIX, "OpenSIPS", CLASSIFY_NOCASE},
    {CLASSIFY_PREFIX, "3CX", 0},
    {CLASSIFY_PREFIX, "sipXecs", 0},
    {CLASSIFY_SUFFIX, "(Cisco)", 0},
    {CLASSIFY_SUFFIX, "-SBC", CLASSIFY_NOCASE},
    {CLASSIFY_CONTAINS, "AudioCodes", CLASSIFY_NOCASE},
    {CLASSIFY_CONTAINS, "Ribbon", 0},
    {CLASSIFY_GLOB, "*Sonus*SBC*", CLASSIFY_NOCASE},
    {CLASSIFY_GLOB, "*/?.?.? (*)", 0},
};

static const char *const agents[] = {
    "Asterisk PBX 18.2.0",
    "Yealink SIP-T46S 66.86.0.15",
    "Linphone/4.5",
    "FreeSWITCH-mod_sofia/1.10.7",
    "friendly-scanner",
    "sipvicious",
    "PolycomVVX-VVX_410-UA/6.4.0.10050",
};

/* Values no rule matches: every index is consulted and every glob tried. */
static const char *const strangers[] = {
    "MyHomegrownSoftphone/0.1 (build 1234; linux x86_64)",
    "UnknownDevice-XYZ 2.0.1.5 rev 77 firmware 2023-11-02",
};

static double time_classify(const struct classify *c, const char *const *values, size_t nv)
{
    enum { CALLS = 1 << 20 };
    size_t lens[16];
    double best = 1e300;

    for (size_t i = 0; i < nv; i++)
        lens[i] = strlen(values[i]);
    for (int r = 0; r < ROUNDS; r++) {
        int64_t acc = 0;
        double t0 = now_ns();
        for (size_t i = 0; i < CALLS; i++) {
            size_t k = i % nv;
            acc += classify_lookup(c, values[k], lens[k]);
        }
        double dt = (now_ns() - t0) / CALLS;
        sink += acc;
        if (dt < best)
            best = dt;
    }
    return best;
}

static void bench_classify(void)
{
    size_t n = sizeof crules / sizeof crules[0];
    struct classify *c = classify_new((uint32_t)n);
    char err[160], line[64];

    for (size_t i = 0; i < n; i++)
        if (classify_add(c, crules[i].kind, crules[i].pattern, strlen(crules[i].pattern),
                         crules[i].flags, (int32_t)i, err, sizeof err) != 0)
            fprintf(stderr, "rule %zu: %s\n", i, err);
    for (size_t i = 0; i < sizeof agents / sizeof agents[0]; i++)
        printf("  %-40s -> rule %d\n", agents[i], classify_lookup(c, agents[i], strlen(agents[i])));
    snprintf(line, sizeof line, "  (%u rules)", classify_count(c));
    report("classify: lookup, the seven sample User-Agents in turn",
           time_classify(c, agents, sizeof agents / sizeof agents[0]), line);
    for (size_t i = 0; i < sizeof agents / sizeof agents[0]; i++) {
        char what[80];
        snprintf(what, sizeof what, "classify:   \"%s\"", agents[i]);
        report(what, time_classify(c, &agents[i], 1), NULL);
    }
    report("classify: lookup, ~50-byte values no rule matches",
           time_classify(c, strangers, sizeof strangers / sizeof strangers[0]), NULL);
    classify_free(c);
}

/* Classifiers filled up to CLASSIFY_MAX_COST with the rules that cost most per lookup, timed on
 * the value that makes every index chain and glob segment work at every place: 64 KiB of 'a'
 * (a lookup looks at 1 KiB of it). The worst case a rule's call can meet, whatever the packet. */
static void bench_classify_worst_one(const char *label, enum classify_kind kind, const char *pat,
                                     unsigned flags, const char *value, size_t len)
{
    enum { CALLS = 256 };
    struct classify *c = classify_new(CLASSIFY_MAX_RULES);
    double best = 1e300;
    char line[80], what[96];
    int32_t id = 0;

    while (classify_add(c, kind, pat, strlen(pat), flags, id, NULL, 0) == 0)
        id++;
    for (int r = 0; r < ROUNDS; r++) {
        int64_t acc = 0;
        double t0 = now_ns();
        for (int i = 0; i < CALLS; i++)
            acc += classify_lookup(c, value, len);
        double dt = (now_ns() - t0) / CALLS;
        sink += acc;
        if (dt < best)
            best = dt;
    }
    snprintf(line, sizeof line, "  (%d rules, cost %llu, %.2f ns a unit)", id,
             (unsigned long long)classify_cost(c), best / (double)classify_cost(c));
    snprintf(what, sizeof what, "classify worst: %s", label);
    report(what, best, line);
    classify_free(c);
}

static void bench_classify_worst(void)
{
    size_t len = 65536;
    char *v = malloc(len), *x = malloc(len);

    memset(v, 'a', len);
    memset(x, 'a', len);
    x[0] = 'x';
    bench_classify_worst_one("contains \"aaab\" x N", CLASSIFY_CONTAINS, "aaab", 0, v, len);
    bench_classify_worst_one("contains \"aaab\" nocase x N", CLASSIFY_CONTAINS, "aaab",
                             CLASSIFY_NOCASE, v, len);
    bench_classify_worst_one("contains \"a{15}b\" nocase x N", CLASSIFY_CONTAINS,
                             "aaaaaaaaaaaaaaab", CLASSIFY_NOCASE, v, len);
    bench_classify_worst_one("glob \"x*?ab*\" x N", CLASSIFY_GLOB, "x*?ab*", 0, x, len);
    bench_classify_worst_one("glob \"x*?aaab*\" x N", CLASSIFY_GLOB, "x*?aaab*", 0, x, len);
    bench_classify_worst_one("glob \"x*?a{15}b*\" nocase x N", CLASSIFY_GLOB,
                             "x*?aaaaaaaaaaaaaaab*", CLASSIFY_NOCASE, x, len);
    free(v);
    free(x);
}

/* --- window -------------------------------------------------------------------------------- */

/* hot: nine adds in ten go to the first 1% of the keys (a few busy trunks and scanners among
 * many quiet sources); otherwise keys are drawn uniformly, the worst case for caches. */
static void bench_window(uint32_t nkeys, uint32_t max_keys, int hot, const char *label)
{
    enum { CALLS = 1 << 21 };
    char(*keys)[16] = malloc((size_t)nkeys * sizeof *keys);
    uint8_t *klen = malloc(nkeys);
    uint32_t *order = malloc(CALLS * sizeof *order);
    double best_add = 1e300, best_count = 1e300;
    uint64_t t = 0;
    char what[96], line[64];
    struct window *w = NULL;

    for (uint32_t i = 0; i < nkeys; i++)
        klen[i] = (uint8_t)snprintf(keys[i], sizeof keys[i], "10.%u.%u.%u", (i >> 16) & 255,
                                    (i >> 8) & 255, i & 255);
    for (size_t i = 0; i < CALLS; i++)
        order[i] = (uint32_t)(rng() % ((hot && rng() % 10) ? nkeys / 100 : nkeys));
    for (int r = 0; r < ROUNDS; r++) {
        int64_t acc = 0;
        window_free(w);
        w = window_new(10000000000ull, 10, max_keys); /* 10 s in 1 s buckets */
        double t0 = now_ns();
        for (size_t i = 0; i < CALLS; i++) {
            uint32_t k = order[i];
            t += 1000; /* 1 us of packet time per message: 1M messages/s */
            acc += (int64_t)window_add(w, keys[k], klen[k], t, 1);
        }
        double dt = (now_ns() - t0) / CALLS;
        if (dt < best_add)
            best_add = dt;
        t0 = now_ns();
        for (size_t i = 0; i < CALLS; i++) {
            uint32_t k = order[i];
            acc += (int64_t)window_count(w, keys[k], klen[k], t);
        }
        dt = (now_ns() - t0) / CALLS;
        if (dt < best_count)
            best_count = dt;
        sink += acc;
    }
    snprintf(line, sizeof line, "  (%llu evictions in the last round)",
             (unsigned long long)window_evictions(w));
    snprintf(what, sizeof what, "window %s: add", label);
    report(what, best_add, line);
    snprintf(what, sizeof what, "window %s: count", label);
    report(what, best_count, NULL);
    window_free(w);
    free(keys);
    free(klen);
    free(order);
}

int main(void)
{
    bench_cidr_v4(10000, "10k mixed /8../32");
    bench_cidr_v4(20, "20 prefixes");
    bench_cidr_v6(10000, 1, "10k /48 in 100 /32s");
    bench_cidr_v6(10000, 0, "10k /32../64 scattered");
    bench_classify();
    bench_classify_worst();
    bench_window(1000, 100000, 0, "1k source IPs, cap 100k");
    bench_window(100000, 100000, 1, "100k source IPs (90% to 1k), cap 100k");
    bench_window(100000, 100000, 0, "100k source IPs uniform, cap 100k");
    bench_window(1000000, 100000, 0, "1M source IPs uniform, cap 100k");
    return 0;
}
