/* harness: engines for the Lua test harness, synthetic frames and metric look-ups. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call_cdr.h"
#include "config.h"
#include "engine.h"
#include "expo.h"
#include "metrics.h"
#include "portset.h"

#define MAX_PAYLOAD 65000
#define MAX_RULE_FILES 64

struct options {
    struct engine_config cfg;
    struct portset ports;
    int b_set, f_set;
};

static int set_option(struct options *o, const char *key, const char *val, char *err, size_t errlen)
{
    struct engine_config *c = &o->cfg;
    uint64_t v;
    int rc;

#define DURATION(name, field)                                                                      \
    if (strcmp(key, name) == 0)                                                                    \
        return config_parse_duration(val, &(field), err, errlen);
#define COUNT(name, field, lo, hi)                                                                 \
    if (strcmp(key, name) == 0) {                                                                  \
        rc = config_parse_count(val, lo, hi, &v, err, errlen);                                     \
        (field) = (uint32_t)v;                                                                     \
        return rc;                                                                                 \
    }
    DURATION("t1", c->track.t1_ns)
    DURATION("timer_c", c->track.timer_c_ns)
    DURATION("max_call_age", c->track.max_call_age_ns)
    DURATION("rule_budget", c->rules.budget_ns)
    COUNT("max_calls", c->track.max_calls, 1, 1u << 31)
    COUNT("max_transactions", c->track.max_transactions, 1, 1u << 31)
    COUNT("max_registrations", c->track.max_registrations, 1, 1u << 31)
    COUNT("max_series", c->rules.max_series, 1, 1000000)
    COUNT("breaker_errors", c->rules.breaker_errors, 0, UINT32_MAX)
    COUNT("breaker_timeouts", c->rules.breaker_timeouts, 0, UINT32_MAX)
#undef DURATION
#undef COUNT
    if (strcmp(key, "timer_b") == 0) {
        o->b_set = 1;
        return config_parse_duration(val, &c->track.timer_b_ns, err, errlen);
    }
    if (strcmp(key, "timer_f") == 0) {
        o->f_set = 1;
        return config_parse_duration(val, &c->track.timer_f_ns, err, errlen);
    }
    if (strcmp(key, "jit_log") == 0) {
        c->rules.jit_log = strcmp(val, "0") != 0;
        return 0;
    }
    if (strcmp(key, "events_fields") == 0)
        return call_cdr_parse_fields(val, &c->events_fields, err, errlen);
    if (strcmp(key, "lua_memory") == 0)
        return config_parse_size(val, &c->rules.memory_limit, err, errlen);
    if (strcmp(key, "sip_ports") == 0) {
        rc = portset_parse(&o->ports, val, err, errlen);
        c->sip_ports = rc == 0 ? &o->ports : NULL;
        return rc;
    }
    snprintf(err, errlen, "unknown harness option \"%s\"", key);
    return -EINVAL;
}

static int parse_options(struct options *o, const char *text, char *err, size_t errlen)
{
    char line[512];

    while (text && *text) {
        const char *end = strchr(text, '\n');
        size_t n = end ? (size_t)(end - text) : strlen(text);
        char *eq;
        int rc;
        if (n >= sizeof(line)) {
            snprintf(err, errlen, "harness option line too long");
            return -EINVAL;
        }
        memcpy(line, text, n);
        line[n] = 0;
        text += n + (end ? 1 : 0);
        if (!n)
            continue;
        eq = strchr(line, '=');
        if (!eq) {
            snprintf(err, errlen, "harness option \"%s\" is not key=value", line);
            return -EINVAL;
        }
        *eq = 0;
        rc = set_option(o, line, eq + 1, err, errlen);
        if (rc)
            return rc;
    }
    if (!o->b_set)
        o->cfg.track.timer_b_ns = 64 * o->cfg.track.t1_ns;
    if (!o->f_set)
        o->cfg.track.timer_f_ns = 64 * o->cfg.track.t1_ns;
    return 0;
}

struct engine *harness_engine_new(const char *rules_dir, const char *rule_files,
                                  const char *events_path, const char *options, char *err,
                                  size_t errlen)
{
    struct options *o = calloc(1, sizeof(*o));
    char *files = NULL;
    const char *list[MAX_RULE_FILES];
    size_t n = 0;
    struct engine *e = NULL;

    if (!o) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    engine_config_defaults(&o->cfg);
    /* Tests create many engines: small tables keep each one cheap. */
    o->cfg.track.max_calls = 10000;
    o->cfg.track.max_transactions = 20000;
    o->cfg.track.max_registrations = 10000;
    if (parse_options(o, options, err, errlen) != 0)
        goto out;
    if (rules_dir && *rules_dir) {
        o->cfg.rules.rules_dir = rules_dir;
    } else if (rule_files && *rule_files) {
        files = strdup(rule_files);
        if (!files) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        for (char *save = NULL, *p = strtok_r(files, "\n", &save); p;
             p = strtok_r(NULL, "\n", &save)) {
            if (n == MAX_RULE_FILES) {
                snprintf(err, errlen, "more than %d rule files", MAX_RULE_FILES);
                goto out;
            }
            list[n++] = p;
        }
        o->cfg.rules.rule_files = list;
        o->cfg.rules.n_rule_files = n;
    }
    o->cfg.events_path = events_path && *events_path ? events_path : NULL;
    e = engine_new(&o->cfg, err, errlen); /* copies what it keeps */
out:
    free(files);
    free(o);
    return e;
}

/* "192.0.2.1:5060" or "[2001:db8::1]:5060" -> family, address bytes, port. */
static int parse_endpoint(const char *s, int *family, uint8_t addr[16], uint16_t *port)
{
    char host[64];
    const char *colon;
    unsigned long p;
    char *end;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':' || (size_t)(close - s - 1) >= sizeof(host))
            return -EINVAL;
        memcpy(host, s + 1, (size_t)(close - s - 1));
        host[close - s - 1] = 0;
        colon = close + 1;
        *family = AF_INET6;
    } else {
        colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= sizeof(host))
            return -EINVAL;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = 0;
        *family = AF_INET;
    }
    p = strtoul(colon + 1, &end, 10);
    if (*end || p == 0 || p > 65535)
        return -EINVAL;
    *port = (uint16_t)p;
    return inet_pton(*family, host, addr) == 1 ? 0 : -EINVAL;
}

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

int harness_feed(struct engine *e, const char *text, size_t len, uint64_t t_ns, const char *src,
                 const char *dst, int tcp, char *err, size_t errlen)
{
    uint8_t saddr[16], daddr[16];
    uint16_t sport, dport;
    int sfam, dfam;
    size_t ip_len, l4_len = tcp ? 20 : 8;
    uint8_t *frame, *l4;
    struct capture_frame f;

    if (parse_endpoint(src, &sfam, saddr, &sport) || parse_endpoint(dst, &dfam, daddr, &dport) ||
        sfam != dfam) {
        snprintf(err, errlen,
                 "bad endpoints \"%s\" -> \"%s\": use 192.0.2.1:5060 or "
                 "[2001:db8::1]:5060, both of one family",
                 src, dst);
        return -EINVAL;
    }
    if (len > MAX_PAYLOAD) {
        snprintf(err, errlen, "a message of %zu bytes is over the harness limit", len);
        return -EINVAL;
    }
    ip_len = sfam == AF_INET ? 20 : 40;
    frame = calloc(1, ip_len + l4_len + len);
    if (!frame) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (sfam == AF_INET) {
        frame[0] = 0x45;
        wr16(frame + 2, (uint16_t)(ip_len + l4_len + len));
        wr16(frame + 6, 0x4000); /* don't fragment */
        frame[8] = 64;
        frame[9] = tcp ? IPPROTO_TCP : IPPROTO_UDP;
        memcpy(frame + 12, saddr, 4);
        memcpy(frame + 16, daddr, 4);
    } else {
        frame[0] = 0x60;
        wr16(frame + 4, (uint16_t)(l4_len + len));
        frame[6] = tcp ? IPPROTO_TCP : IPPROTO_UDP;
        frame[7] = 64;
        memcpy(frame + 8, saddr, 16);
        memcpy(frame + 24, daddr, 16);
    }
    l4 = frame + ip_len;
    wr16(l4, sport);
    wr16(l4 + 2, dport);
    if (tcp) {
        l4[7] = 1; /* sequence number 1 */
        l4[12] = 5 << 4;
        l4[13] = 0x18; /* PSH, ACK */
        wr16(l4 + 14, 65535);
    } else {
        wr16(l4 + 4, (uint16_t)(8 + len));
    }
    memcpy(l4 + l4_len, text, len);
    f = (struct capture_frame){.data = frame,
                               .caplen = (uint32_t)(ip_len + l4_len + len),
                               .wirelen = (uint32_t)(ip_len + l4_len + len),
                               .ts_ns = t_ns,
                               .link = CAPTURE_LINK_RAW,
                               .dir = CAPTURE_DIR_UNKNOWN,
                               .iface = 0};
    engine_frame(e, &f);
    free(frame);
    return 0;
}

/* --- metric look-up ----------------------------------------------------------------------- */

struct wanted {
    const char *const *names, *const *values;
    size_t n;
    const char *le; /* _bucket: the bound asked for */
};

static const char *value_of(const struct wanted *w, const char *name)
{
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->names[i], name) == 0)
            return w->values[i];
    return NULL;
}

/* Every family label is given, and nothing else (le aside for buckets). */
static int labels_match(const struct wanted *w, const char *const *labels, size_t n_labels,
                        char *err, size_t errlen)
{
    size_t given = w->n - (w->le ? 1 : 0);
    for (size_t i = 0; i < n_labels; i++) {
        if (!value_of(w, labels[i])) {
            snprintf(err, errlen, "label \"%s\" is missing", labels[i]);
            return -EINVAL;
        }
    }
    if (given != n_labels) {
        snprintf(err, errlen, "%zu labels given, the family has %zu", given, n_labels);
        return -EINVAL;
    }
    return 0;
}

struct collect_ctx {
    const struct wanted *w;
    const char *const *labels;
    size_t n_labels;
    double value;
    int found;
};

static void collect_emit(void *ctx, const char *const *values, double v)
{
    struct collect_ctx *c = ctx;
    for (size_t i = 0; i < c->n_labels; i++)
        if (strcmp(values[i] ? values[i] : "", value_of(c->w, c->labels[i])) != 0)
            return;
    c->value = v;
    c->found = 1;
}

static int suffix(const char *name, const char *sfx, char *base, size_t cap)
{
    size_t n = strlen(name), m = strlen(sfx);
    if (n <= m || strcmp(name + n - m, sfx) != 0 || n - m >= cap)
        return 0;
    memcpy(base, name, n - m);
    base[n - m] = 0;
    return 1;
}

int harness_metric(struct engine *e, const char *name, const char *const *label_names,
                   const char *const *label_values, size_t n, double *out, char *err, size_t errlen)
{
    struct metrics *reg = engine_metrics(e);
    struct wanted w = {label_names, label_values, n, NULL};
    struct metric_family *fam = metrics_family_find(reg, name);
    enum { VALUE, COUNT, SUM, BUCKET } part = VALUE;
    char base[256];
    const char *const *labels;
    size_t n_labels;
    uint32_t syms[16];
    struct metric_series *s;
    int rc = 0;

    if (!fam) {
        if (suffix(name, "_count", base, sizeof(base)))
            part = COUNT;
        else if (suffix(name, "_sum", base, sizeof(base)))
            part = SUM;
        else if (suffix(name, "_bucket", base, sizeof(base)))
            part = BUCKET;
        fam = part != VALUE ? metrics_family_find(reg, base) : NULL;
        if (fam && metrics_family_type(fam) != METRIC_HISTOGRAM)
            fam = NULL;
    }
    if (!fam) {
        /* A collector (ratio gauges): computed as a scrape would. */
        struct collect_ctx c = {&w, NULL, 0, 0, 0};
        metrics_lock(reg);
        for (size_t i = 0; i < metrics_family_count(reg); i++) {
            struct metric_family *f = metrics_family_at(reg, i);
            if (strcmp(metrics_family_name(f), name) != 0)
                continue;
            c.labels = metrics_family_labels(f, &c.n_labels);
            rc = labels_match(&w, c.labels, c.n_labels, err, errlen);
            if (rc == 0)
                rc = metrics_family_collect(f, collect_emit, &c) == 0 ? 1 : -EINVAL;
            break;
        }
        metrics_unlock(reg);
        if (rc == 0) {
            snprintf(err, errlen, "no metric family is called %s", name);
            return -EINVAL;
        }
        if (rc < 0)
            return rc;
        *out = c.value;
        return c.found ? 0 : -ENOENT;
    }
    if (part == BUCKET && !(w.le = value_of(&w, "le"))) {
        snprintf(err, errlen, "%s needs an \"le\" label", name);
        return -EINVAL;
    }
    labels = metrics_family_labels(fam, &n_labels);
    rc = labels_match(&w, labels, n_labels, err, errlen);
    if (rc)
        return rc;
    for (size_t i = 0; i < n_labels; i++) {
        const char *v = value_of(&w, labels[i]);
        syms[i] = metrics_symbol_find(reg, v, strlen(v));
        if (syms[i] == METRICS_NO_SYMBOL)
            return -ENOENT;
    }
    s = metrics_series_find(fam, syms);
    if (!s)
        return -ENOENT;
    if (part == VALUE && metrics_family_type(fam) == METRIC_HISTOGRAM)
        part = COUNT;
    switch (part) {
    case VALUE:
        *out = metric_value(s);
        break;
    case COUNT:
        *out = (double)metric_histogram_count(s);
        break;
    case SUM:
        *out = metric_histogram_sum(s);
        break;
    case BUCKET: {
        size_t nb;
        const double *bounds = metrics_family_buckets(fam, &nb);
        int inf = strcmp(w.le, "+Inf") == 0;
        double le = inf ? 0 : strtod(w.le, NULL);
        uint64_t cum = 0;
        size_t i;
        for (i = 0; i < nb && (inf || bounds[i] <= le); i++)
            cum += metric_histogram_bucket(s, i);
        if (!inf && (i == 0 || bounds[i - 1] != le)) {
            snprintf(err, errlen, "%s has no bucket le=\"%s\"", name, w.le);
            return -EINVAL;
        }
        if (inf)
            cum += metric_histogram_bucket(s, nb);
        *out = (double)cum;
        break;
    }
    }
    return 0;
}

char *harness_exposition(struct engine *e, int deterministic, size_t *len)
{
    struct expo_buf b;
    char *text;

    expo_buf_init(&b);
    if (expo_render(engine_metrics(e), deterministic ? EXPO_DETERMINISTIC : 0, &b) != 0) {
        expo_buf_fini(&b);
        return NULL;
    }
    text = malloc(b.len + 1);
    if (text) {
        memcpy(text, b.data ? b.data : "", b.len);
        text[b.len] = 0;
        *len = b.len;
    }
    expo_buf_fini(&b);
    return text;
}

void harness_free(void *p)
{
    free(p);
}

char *harness_jit_log(struct engine *e, size_t *len)
{
    struct lua_bridge *b = engine_rules(e);
    char *text;
    size_t n;

    if (!b)
        return NULL;
    n = lua_bridge_jit_log(b, NULL, 0);
    text = malloc(n + 1);
    if (text)
        *len = lua_bridge_jit_log(b, text, n + 1);
    return text;
}
