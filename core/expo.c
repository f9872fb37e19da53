/* expo: the Prometheus text format 0.0.4, byte-for-byte reproducible for a given registry state.
 * It reads the registry under its lock and allocates only scratch arrays per render, never per
 * series; it does not serve, compress or cache between renders. */
#include "expo.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void expo_buf_init(struct expo_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void expo_buf_fini(struct expo_buf *b)
{
    free(b->data);
    expo_buf_init(b);
}

/* ---- numbers ---- */

static size_t put_int(char *out, int64_t v)
{
    char tmp[24];
    size_t n = 0, o = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        out[o++] = '-';
    while (n)
        out[o++] = tmp[--n];
    out[o] = '\0';
    return o;
}

static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Writes the decimal d * 10^-k the way %.15g does: %f style when the exponent x is in
 * [-4, 15), else %e style with at least two exponent digits; trailing zeros dropped. */
static size_t put_g15(char *out, bool neg, uint64_t d, int k)
{
    char dig[24];
    int n = 0, o = 0;

    while (d % 10 == 0) {
        d /= 10;
        k--;
    }
    for (uint64_t t = d; t; t /= 10)
        n++;
    for (int i = n - 1; i >= 0; i--, d /= 10)
        dig[i] = (char)('0' + d % 10);
    int x = n - 1 - k;
    if (neg)
        out[o++] = '-';
    if (x >= -4 && x < 15) {
        if (x < 0) {
            out[o++] = '0';
            out[o++] = '.';
            for (int i = 0; i < -x - 1; i++)
                out[o++] = '0';
            for (int i = 0; i < n; i++)
                out[o++] = dig[i];
        } else {
            for (int i = 0; i <= x; i++)
                out[o++] = i < n ? dig[i] : '0';
            if (n > x + 1) {
                out[o++] = '.';
                for (int i = x + 1; i < n; i++)
                    out[o++] = dig[i];
            }
        }
    } else {
        out[o++] = dig[0];
        if (n > 1) {
            out[o++] = '.';
            for (int i = 1; i < n; i++)
                out[o++] = dig[i];
        }
        out[o++] = 'e';
        out[o++] = x < 0 ? '-' : '+';
        int ax = x < 0 ? -x : x;
        if (ax >= 100)
            out[o++] = (char)('0' + ax / 100);
        out[o++] = (char)('0' + ax / 10 % 10);
        out[o++] = (char)('0' + ax % 10);
    }
    out[o] = '\0';
    return (size_t)o;
}

/* The %.15g step without printf: returns the length written, 0 when no decimal of 15
 * significant digits reads back as v, or -1 when v is outside the range where this is exact.
 * Why it is exact: with t = v * 10^k rounded once (10^k exact, |k| <= 22) and t in
 * [1e14, 1e15], t is within 1/16 of the true product (ulp(t) <= 1/8). A 15-digit integer that
 * reads back as v lies within half an ulp of v, that is within 0.111 of the true product, so it
 * can only be nearest(t), and it is then also what %.15g prints (the correctly rounded one).
 * The read-back check is exact too: d < 2^53 and 10^k exact make d / 10^k one correctly
 * rounded operation, the same double strtod returns (Clinger's fast path). */
static int fast_g15(double v, char *out)
{
    double a = fabs(v);
    int k = 14 - (int)floor(log10(a)); /* log10 may be one off near powers of ten */

    for (int tries = 0; tries < 3; tries++) {
        if (k < -22 || k > 22)
            return -1;
        double t = k >= 0 ? a * pow10_exact[k] : a / pow10_exact[-k];
        if (t > 1e15) {
            k--;
            continue;
        }
        if (t < 1e14) {
            k++;
            continue;
        }
        double d = nearbyint(t);
        double back = k >= 0 ? d / pow10_exact[k] : d * pow10_exact[-k];
        if (back != a)
            return 0;
        return (int)put_g15(out, v < 0, (uint64_t)d, k);
    }
    return -1;
}

size_t expo_number(double v, char *out)
{
    if (isnan(v)) {
        memcpy(out, "NaN", 4);
        return 3;
    }
    if (isinf(v)) {
        memcpy(out, v > 0 ? "+Inf" : "-Inf", 5);
        return 4;
    }
    /* Every integer up to 2^53 is exact in a double, and counters are integers: print them
     * plainly ("1000000", where %g would say "1e+06"); this also turns -0 into "0". */
    if (fabs(v) <= 9007199254740992.0 && v == (double)(int64_t)v)
        return put_int(out, (int64_t)v);
    /* 15 significant digits always reproduce a decimal of 15 digits or fewer (DBL_DIG), and 17
     * always reproduce the double, so the first precision that reads back exactly is the
     * shortest %g form; %g's exponent spelling ("1e-05") is the one Go's 'g' uses too.
     * printf costs about 350 ns, so the 15-digit step is done without it where it can be. */
    int n = fast_g15(v, out);
    if (n > 0)
        return (size_t)n;
    for (int prec = n == 0 ? 16 : 15;; prec++) {
        int len = snprintf(out, EXPO_NUMBER_MAX, "%.*g", prec, v);
        if (prec == 17 || strtod(out, NULL) == v)
            return (size_t)len;
    }
}

size_t expo_ns_seconds(uint64_t ns, char *out)
{
    const uint64_t per_s = 1000000000u;
    uint64_t frac = ns % per_s;
    size_t n, digits = 9;

    if (ns >= 1000000000000000ull || (ns < 100000 && ns != 0))
        return expo_number((double)ns / 1e9, out);
    n = put_int(out, (int64_t)(ns / per_s));
    if (!frac)
        return n;
    while (frac % 10 == 0) {
        frac /= 10;
        digits--;
    }
    out[n++] = '.';
    for (size_t i = digits; i > 0; i--) {
        out[n + i - 1] = (char)('0' + frac % 10);
        frac /= 10;
    }
    n += digits;
    out[n] = '\0';
    return n;
}

/* ---- output ---- */

struct entry {
    const struct metric_series *s;
    const uint32_t *syms;
};

struct render {
    struct metrics *reg;
    int err; /* -ENOMEM once anything failed: later writes are dropped, b keeps a prefix */
    struct expo_buf *out;
    struct expo_buf lab; /* the current series' label pairs, without braces */
    struct entry *ents;
    size_t n_ents, cap_ents;
    const uint32_t *rank;
    size_t n_labels; /* of the family being sorted */
};

static bool grow(struct render *r, struct expo_buf *b, size_t need)
{
    if (r->err)
        return false;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len <= need)
        cap *= 2;
    char *data = realloc(b->data, cap);
    if (!data) {
        r->err = -ENOMEM;
        return false;
    }
    b->data = data;
    b->cap = cap;
    return true;
}

/* Appends n bytes, keeping one spare byte for the final NUL. */
static inline void put(struct render *r, struct expo_buf *b, const char *p, size_t n)
{
    if (n == 0) /* p may be NULL then (an empty label buffer) */
        return;
    if (b->cap - b->len <= n && !grow(r, b, n))
        return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static inline void put_c(struct render *r, struct expo_buf *b, char c)
{
    if (b->cap - b->len <= 1 && !grow(r, b, 1))
        return;
    b->data[b->len++] = c;
}

static inline void put_str(struct render *r, struct expo_buf *b, const char *s)
{
    put(r, b, s, strlen(s));
}

static void put_number(struct render *r, struct expo_buf *b, double v)
{
    char tmp[EXPO_NUMBER_MAX];
    put(r, b, tmp, expo_number(v, tmp));
}

static void put_u64(struct render *r, struct expo_buf *b, uint64_t v)
{
    char tmp[24];
    size_t n = sizeof tmp;

    do {
        tmp[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(r, b, tmp + n, sizeof tmp - n);
}

/* Escapes valid UTF-8: backslash and newline always, the double quote in label values only
 * (the format's two escaping rules, for HELP text and for label values). */
static void put_escaped(struct render *r, struct expo_buf *b, const char *p, size_t len, bool quote)
{
    size_t start = 0;

    for (size_t i = 0; i < len; i++) {
        const char *esc;
        switch (p[i]) {
        case '\\':
            esc = "\\\\";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '"':
            if (!quote)
                continue;
            esc = "\\\"";
            break;
        default:
            continue;
        }
        put(r, b, p + start, i - start);
        put(r, b, esc, 2);
        start = i + 1;
    }
    put(r, b, p + start, len - start);
}

/* For collector label values, which are not interned: repaired here the way metrics_intern
 * repairs symbols, so that the output is valid UTF-8 whatever a collector emits. */
static void put_escaped_repair(struct render *r, struct expo_buf *b, const char *p, size_t len)
{
    while (len) {
        size_t bad, ok = metrics_utf8_prefix(p, len, &bad);
        put_escaped(r, b, p, ok, true);
        if (!bad)
            break;
        put(r, b, "\xef\xbf\xbd", 3);
        p += ok + bad;
        len -= ok + bad;
    }
}

static void put_header(struct render *r, const struct metric_family *fam)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    const char *name = metrics_family_name(fam), *help = metrics_family_help(fam);

    if (*help) {
        put(r, r->out, "# HELP ", 7);
        put_str(r, r->out, name);
        put_c(r, r->out, ' ');
        put_escaped(r, r->out, help, strlen(help), false);
        put_c(r, r->out, '\n');
    }
    put(r, r->out, "# TYPE ", 7);
    put_str(r, r->out, name);
    put_c(r, r->out, ' ');
    put_str(r, r->out, types[metrics_family_type(fam)]);
    put_c(r, r->out, '\n');
}

/* One sample line: name suffix {labels[,le="x"]} value. */
static void put_sample_start(struct render *r, const char *name, const char *suffix,
                             size_t suffix_len, const char *le, size_t le_len)
{
    struct expo_buf *b = r->out;

    put_str(r, b, name);
    put(r, b, suffix, suffix_len);
    if (r->lab.len || le) {
        put_c(r, b, '{');
        put(r, b, r->lab.data, r->lab.len);
        if (le) {
            if (r->lab.len)
                put_c(r, b, ',');
            put(r, b, "le=\"", 4);
            put(r, b, le, le_len);
            put_c(r, b, '"');
        }
        put_c(r, b, '}');
    }
    put_c(r, b, ' ');
}

static void put_label(struct render *r, const char *name, const char *v, size_t len, bool repair)
{
    if (r->lab.len)
        put_c(r, &r->lab, ',');
    put_str(r, &r->lab, name);
    put(r, &r->lab, "=\"", 2);
    if (repair)
        put_escaped_repair(r, &r->lab, v, len);
    else
        put_escaped(r, &r->lab, v, len, true);
    put_c(r, &r->lab, '"');
}

/* ---- families with series ---- */

static void collect_series(void *ctx, const struct metric_series *s, const uint32_t *syms)
{
    struct render *r = ctx;

    /* Sized beforehand with one spare for an overflow series that became used meanwhile. */
    if (r->n_ents < r->cap_ents)
        r->ents[r->n_ents++] = (struct entry){s, syms};
}

static int cmp_entry(const void *a, const void *b, void *ctx)
{
    const struct render *r = ctx;
    const uint32_t *x = ((const struct entry *)a)->syms, *y = ((const struct entry *)b)->syms;

    for (size_t i = 0; i < r->n_labels; i++) {
        uint32_t rx = r->rank[x[i]], ry = r->rank[y[i]];
        if (rx != ry)
            return rx < ry ? -1 : 1;
    }
    return 0;
}

static void render_series_family(struct render *r, struct metric_family *fam)
{
    size_t n_labels, n_buckets;
    const char *const *labels = metrics_family_labels(fam, &n_labels);
    const double *bounds = metrics_family_buckets(fam, &n_buckets);
    const char *name = metrics_family_name(fam);
    enum metric_type type = metrics_family_type(fam);
    size_t want = metrics_family_series_count(fam) + 1;

    if (want > r->cap_ents) {
        struct entry *ents = realloc(r->ents, want * sizeof *ents);
        if (!ents) {
            r->err = -ENOMEM;
            return;
        }
        r->ents = ents;
        r->cap_ents = want;
    }
    r->n_ents = 0;
    metrics_series_each(fam, collect_series, r);
    if (r->n_ents == 0)
        return;
    if (n_labels && r->n_ents > 1) {
        if (!r->rank) {
            r->rank = metrics_symbol_ranks(r->reg);
            if (!r->rank) {
                r->err = -ENOMEM;
                return;
            }
        }
        r->n_labels = n_labels;
        qsort_r(r->ents, r->n_ents, sizeof *r->ents, cmp_entry, r);
    }

    /* The le values are the same for every series of the family: format them once. */
    char le[METRICS_MAX_BUCKETS + 1][EXPO_NUMBER_MAX];
    size_t le_len[METRICS_MAX_BUCKETS + 1];
    if (type == METRIC_HISTOGRAM) {
        for (size_t i = 0; i < n_buckets; i++)
            le_len[i] = expo_number(bounds[i], le[i]);
        le_len[n_buckets] = expo_number(INFINITY, le[n_buckets]);
    }

    put_header(r, fam);
    for (size_t k = 0; k < r->n_ents && !r->err; k++) {
        const struct metric_series *s = r->ents[k].s;
        r->lab.len = 0;
        for (size_t i = 0; i < n_labels; i++) {
            size_t len;
            const char *v = metrics_symbol(r->reg, r->ents[k].syms[i], &len);
            put_label(r, labels[i], v, len, false);
        }
        if (type != METRIC_HISTOGRAM) {
            put_sample_start(r, name, "", 0, NULL, 0);
            put_number(r, r->out, metric_value(s));
            put_c(r, r->out, '\n');
            continue;
        }
        uint64_t cum = 0;
        for (size_t i = 0; i <= n_buckets; i++) {
            cum += metric_histogram_bucket(s, i);
            put_sample_start(r, name, "_bucket", 7, le[i], le_len[i]);
            put_u64(r, r->out, cum);
            put_c(r, r->out, '\n');
        }
        put_sample_start(r, name, "_sum", 4, NULL, 0);
        put_number(r, r->out, metric_histogram_sum(s));
        put_c(r, r->out, '\n');
        /* The +Inf bucket, read once: _count can never disagree with it. */
        put_sample_start(r, name, "_count", 6, NULL, 0);
        put_u64(r, r->out, cum);
        put_c(r, r->out, '\n');
    }
}

/* ---- collectors ---- */

/* What a collector emitted, to be sorted before printing. Each record in data is the value
 * (a double) followed by n_labels (uint32 length, bytes) pairs; offs holds record offsets. */
struct collected {
    struct render *r;
    size_t n_labels;
    char *data;
    size_t len, cap;
    size_t *offs;
    size_t n, cap_offs;
};

static bool coll_reserve(struct collected *c, size_t need)
{
    if (c->cap - c->len >= need)
        return true;
    size_t cap = c->cap ? c->cap : 1024;
    while (cap - c->len < need)
        cap *= 2;
    char *data = realloc(c->data, cap);
    if (!data)
        return false;
    c->data = data;
    c->cap = cap;
    return true;
}

static void emit(void *ctx, const char *const *values, double value)
{
    struct collected *c = ctx;
    size_t need = sizeof value;

    if (c->r->err)
        return;
    for (size_t i = 0; i < c->n_labels; i++)
        need += sizeof(uint32_t) + (values && values[i] ? strlen(values[i]) : 0);
    if (c->n == c->cap_offs) {
        size_t cap = c->cap_offs ? c->cap_offs * 2 : 64;
        size_t *offs = realloc(c->offs, cap * sizeof *offs);
        if (!offs) {
            c->r->err = -ENOMEM;
            return;
        }
        c->offs = offs;
        c->cap_offs = cap;
    }
    if (!coll_reserve(c, need)) {
        c->r->err = -ENOMEM;
        return;
    }
    c->offs[c->n++] = c->len;
    memcpy(c->data + c->len, &value, sizeof value);
    c->len += sizeof value;
    for (size_t i = 0; i < c->n_labels; i++) {
        const char *v = values && values[i] ? values[i] : "";
        uint32_t len = (uint32_t)strlen(v);
        memcpy(c->data + c->len, &len, sizeof len);
        memcpy(c->data + c->len + sizeof len, v, len);
        c->len += sizeof len + len;
    }
}

/* Reads the label at *p of a record and advances *p past it. */
static const char *coll_label(const char **p, uint32_t *len)
{
    memcpy(len, *p, sizeof *len);
    const char *v = *p + sizeof *len;
    *p = v + *len;
    return v;
}

static int cmp_collected(const void *a, const void *b, void *ctx)
{
    const struct collected *c = ctx;
    const char *x = c->data + *(const size_t *)a + sizeof(double);
    const char *y = c->data + *(const size_t *)b + sizeof(double);

    for (size_t i = 0; i < c->n_labels; i++) {
        uint32_t lx, ly;
        const char *vx = coll_label(&x, &lx), *vy = coll_label(&y, &ly);
        uint32_t n = lx < ly ? lx : ly;
        int d = n ? memcmp(vx, vy, n) : 0;
        if (d)
            return d;
        if (lx != ly)
            return lx < ly ? -1 : 1;
    }
    return 0;
}

/* Renders fam if it is a collector; returns false, having done nothing, if it is not. */
static bool render_collector(struct render *r, struct collected *c, struct metric_family *fam)
{
    size_t n_labels;
    const char *const *labels = metrics_family_labels(fam, &n_labels);
    const char *name = metrics_family_name(fam);

    c->n_labels = n_labels;
    c->len = 0;
    c->n = 0;
    if (metrics_family_collect(fam, emit, c) == -EINVAL)
        return false;
    if (r->err || c->n == 0)
        return true;
    qsort_r(c->offs, c->n, sizeof *c->offs, cmp_collected, c);
    put_header(r, fam);
    for (size_t k = 0; k < c->n && !r->err; k++) {
        const char *p = c->data + c->offs[k];
        double value;
        memcpy(&value, p, sizeof value);
        p += sizeof value;
        r->lab.len = 0;
        for (size_t i = 0; i < n_labels; i++) {
            uint32_t len;
            const char *v = coll_label(&p, &len);
            put_label(r, labels[i], v, len, true);
        }
        put_sample_start(r, name, "", 0, NULL, 0);
        put_number(r, r->out, value);
        put_c(r, r->out, '\n');
    }
    return true;
}

/* ---- render ---- */

static int cmp_family(const void *a, const void *b)
{
    return strcmp(metrics_family_name(*(struct metric_family *const *)a),
                  metrics_family_name(*(struct metric_family *const *)b));
}

int expo_render(struct metrics *reg, unsigned flags, struct expo_buf *b)
{
    struct render r = {.reg = reg, .out = b};
    struct collected c = {.r = &r};
    struct metric_family **fams = NULL;

    b->len = 0;
    metrics_lock(reg);
    size_t n = metrics_family_count(reg);
    fams = malloc((n ? n : 1) * sizeof *fams);
    if (!fams) {
        r.err = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        fams[i] = metrics_family_at(reg, i);
    qsort(fams, n, sizeof *fams, cmp_family);
    for (size_t i = 0; i < n && !r.err; i++) {
        unsigned fflags = metrics_family_flags(fams[i]);
        if ((fflags & METRIC_HIDDEN) || ((flags & EXPO_DETERMINISTIC) && (fflags & METRIC_TIMING)))
            continue;
        if (!render_collector(&r, &c, fams[i]))
            render_series_family(&r, fams[i]);
    }
out:
    metrics_unlock(reg);
    if (b->data)
        b->data[b->len] = '\0';
    free(fams);
    free(r.ents);
    free(c.data);
    free(c.offs);
    expo_buf_fini(&r.lab);
    return r.err;
}
