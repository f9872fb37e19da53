/* Tests for the metrics registry: symbols, families, series, values, overflow. */
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>

#include "test.h"

static const char *const method_label[] = {"method"};

/* The value of sipscope_series_overflow_total{family=name}, or -1 when that series is absent. */
static double overflow_count(struct metrics *reg, const char *name)
{
    struct metric_family *f = metrics_family_find(reg, METRICS_OVERFLOW_FAMILY);
    uint32_t sym = metrics_symbol_find(reg, name, strlen(name));
    if (!f || sym == METRICS_NO_SYMBOL)
        return -1;
    struct metric_series *s = metrics_series_find(f, &sym);
    return s ? metric_value(s) : -1;
}

static uint32_t intern_str(struct metrics *reg, const char *s)
{
    return metrics_intern(reg, s, strlen(s));
}

static int symbol_is(struct metrics *reg, uint32_t id, const char *bytes, size_t n)
{
    size_t len;
    const char *p = metrics_symbol(reg, id, &len);
    return len == n && memcmp(p, bytes, n) == 0;
}

TEST(equal_bytes_intern_to_the_same_dense_id)
{
    struct metrics *reg = metrics_new(100);
    uint32_t a = intern_str(reg, "INVITE");
    uint32_t b = intern_str(reg, "BYE");
    uint32_t c = metrics_intern(reg, "INVITE!", 6);

    CHECK(a != METRICS_NO_SYMBOL);
    CHECK_INT(b, a + 1);
    CHECK_INT(c, a);
    CHECK(symbol_is(reg, a, "INVITE", 6));
    CHECK(symbol_is(reg, b, "BYE", 3));
    CHECK_INT(intern_str(reg, ""), a + 2);
    CHECK(symbol_is(reg, a + 2, "", 0));
    metrics_free(reg);
}

TEST(symbol_find_does_not_insert)
{
    struct metrics *reg = metrics_new(100);
    uint32_t a = intern_str(reg, "a");

    CHECK_INT(metrics_symbol_find(reg, "b", 1), METRICS_NO_SYMBOL);
    CHECK_INT(metrics_symbol_find(reg, "a", 1), a);
    CHECK_INT(intern_str(reg, "c"), a + 1);
    metrics_free(reg);
}

TEST(interned_bytes_are_a_copy)
{
    struct metrics *reg = metrics_new(100);
    char buf[8] = "carrier";
    uint32_t id = metrics_intern(reg, buf, 7);

    memcpy(buf, "XXXXXXX", 7);
    CHECK(symbol_is(reg, id, "carrier", 7));
    metrics_free(reg);
}

TEST(many_symbols_keep_their_ids_and_bytes)
{
    struct metrics *reg = metrics_new(10000);
    char buf[32];
    uint32_t first = intern_str(reg, "v0");

    for (int i = 1; i < 5000; i++) {
        snprintf(buf, sizeof buf, "v%d", i);
        CHECK_INT(intern_str(reg, buf), first + (uint32_t)i);
    }
    int bad = 0;
    for (int i = 0; i < 5000; i++) {
        snprintf(buf, sizeof buf, "v%d", i);
        bad += metrics_symbol_find(reg, buf, strlen(buf)) != first + (uint32_t)i;
        bad += !symbol_is(reg, first + (uint32_t)i, buf, strlen(buf));
    }
    CHECK_INT(bad, 0);
    metrics_free(reg);
}

TEST(symbol_cap_refuses_new_values_and_counts_them)
{
    struct metrics *reg = metrics_new(3);
    uint32_t a = intern_str(reg, "a");

    CHECK(intern_str(reg, "b") != METRICS_NO_SYMBOL);
    CHECK(intern_str(reg, "c") != METRICS_NO_SYMBOL);
    CHECK_INT(intern_str(reg, "d"), METRICS_NO_SYMBOL);
    CHECK_INT(intern_str(reg, "e"), METRICS_NO_SYMBOL);
    CHECK_INT(intern_str(reg, "a"), a);
    CHECK_INT(metrics_symbol_find(reg, "d", 1), METRICS_NO_SYMBOL);
    CHECK_DBL(overflow_count(reg, "_symbols_"), 2);
    /* The registry's own value does not take a caller's slot. */
    CHECK(intern_str(reg, METRICS_OVERFLOW_VALUE) != METRICS_NO_SYMBOL);
    metrics_free(reg);
}

TEST(value_longer_than_the_limit_is_refused)
{
    struct metrics *reg = metrics_new(10);
    static char big[METRICS_MAX_SYMBOL_LEN + 1];

    memset(big, 'x', sizeof big);
    CHECK(metrics_intern(reg, big, METRICS_MAX_SYMBOL_LEN) != METRICS_NO_SYMBOL);
    CHECK_INT(metrics_intern(reg, big, METRICS_MAX_SYMBOL_LEN + 1), METRICS_NO_SYMBOL);
    /* 342 invalid bytes repair to 1026 bytes: over the limit after repair. */
    memset(big, '\xff', 342);
    CHECK_INT(metrics_intern(reg, big, 342), METRICS_NO_SYMBOL);
    CHECK(metrics_intern(reg, big, 341) != METRICS_NO_SYMBOL);
    CHECK_DBL(overflow_count(reg, "_symbols_"), 2);
    metrics_free(reg);
}

TEST(utf8_prefix_stops_at_maximal_ill_formed_subsequences)
{
    static const struct {
        const char *s;
        size_t len, ok, bad;
    } cases[] = {
        {"abc", 3, 3, 0},
        {"\xc3\xa9t\xc3\xa9", 6, 6, 0}, /* été */
        {"\xf0\x9f\x98\x80", 4, 4, 0},  /* U+1F600 */
        {"\xef\xbf\xbd", 3, 3, 0},      /* U+FFFD itself */
        {"\xf4\x8f\xbf\xbf", 4, 4, 0},  /* U+10FFFF */
        {"a\xff", 2, 1, 1},             /* never a UTF-8 byte */
        {"\x80z", 2, 0, 1},             /* lone continuation */
        {"\xc0\xaf", 2, 0, 1},          /* overlong lead */
        {"\xe0\x80\x80", 3, 0, 1},      /* overlong: E0 needs A0..BF */
        {"\xed\xa0\x80", 3, 0, 1},      /* surrogate U+D800 */
        {"\xf4\x90\x80\x80", 4, 0, 1},  /* past U+10FFFF */
        {"\xf5\x80", 2, 0, 1},          /* F5 never appears */
        {"x\xe2\x82", 3, 1, 2},         /* truncated at the end */
        {"\xe2\x82x", 3, 0, 2},         /* third byte missing */
        {"\xf0\x9f\x98z", 4, 0, 3},     /* fourth byte missing */
        {"\xc3", 1, 0, 1},              /* lead alone at the end */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t bad = 99;
        size_t ok = metrics_utf8_prefix(cases[i].s, cases[i].len, &bad);
        if (ok != cases[i].ok || bad != cases[i].bad)
            TEST_FAIL_AT("case %zu: ok %zu bad %zu, expected %zu %zu", i, ok, bad, cases[i].ok,
                         cases[i].bad);
    }
}

TEST(invalid_utf8_is_repaired_at_intern_time)
{
    struct metrics *reg = metrics_new(100);
    uint32_t a = metrics_intern(reg, "a\xff", 2);
    uint32_t b = metrics_intern(reg, "a\xef\xbf\xbd", 4);

    CHECK_INT(b, a);
    CHECK(symbol_is(reg, a, "a\xef\xbf\xbd", 4));
    CHECK_INT(metrics_symbol_find(reg, "a\xff", 2), a);
    /* One U+FFFD per maximal subsequence: E2 82 is one, C0 and AF are two. */
    uint32_t c = metrics_intern(reg, "\xe2\x82|\xc0\xaf|\xed\xa0\x80", 9);
    CHECK(symbol_is(
        reg, c, "\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 20));
    metrics_free(reg);
}

TEST(symbol_ranks_follow_byte_order_as_symbols_are_added)
{
    struct metrics *reg = metrics_new(100);
    uint32_t b = intern_str(reg, "b"), a = intern_str(reg, "a"), ab = intern_str(reg, "ab");
    uint32_t e = intern_str(reg, "");
    uint32_t ovf = intern_str(reg, METRICS_OVERFLOW_VALUE), sym = intern_str(reg, "_symbols_");

    metrics_lock(reg);
    const uint32_t *rank = metrics_symbol_ranks(reg);
    /* "" < "_overflow_" < "_symbols_" < "a" < "ab" < "b" ('_' is 0x5f, 'a' 0x61). */
    CHECK_INT(rank[e], 0);
    CHECK_INT(rank[ovf], 1);
    CHECK_INT(rank[sym], 2);
    CHECK_INT(rank[a], 3);
    CHECK_INT(rank[ab], 4);
    CHECK_INT(rank[b], 5);
    metrics_unlock(reg);

    uint32_t aa = intern_str(reg, "aa"), z = intern_str(reg, "Z");
    metrics_lock(reg);
    rank = metrics_symbol_ranks(reg);
    CHECK_INT(rank[e], 0);
    CHECK_INT(rank[z], 1);
    CHECK_INT(rank[ovf], 2);
    CHECK_INT(rank[a], 4);
    CHECK_INT(rank[aa], 5);
    CHECK_INT(rank[ab], 6);
    CHECK_INT(rank[b], 7);
    metrics_unlock(reg);
    metrics_free(reg);
}

TEST(invalid_family_arguments_are_refused_with_einval)
{
    struct metrics *reg = metrics_new(100);
    static const double b_ok[] = {0.1, 1};
    static const double b_flat[] = {1, 1};
    static const double b_down[] = {2, 1};
    static const double b_nan[] = {0.5, NAN};
    static const double b_inf[] = {0.5, INFINITY};
    static const char *const dunder[] = {"__name"};
    static const char *const digit[] = {"1a"};
    static const char *const dash[] = {"a-b"};
    static const char *const colon[] = {"a:b"};
    static const char *const le[] = {"le"};
    static const char *const dup[] = {"a", "a"};
    static const char *const many[] = {"a", "b", "c", "d", "e", "f", "g",
                                       "h", "i", "j", "k", "l", "m"};
    static const char *const bad_names[] = {"", "1abc", "a-b", "a b", "é"};
    static const struct {
        enum metric_type type;
        const char *const *labels;
        size_t n_labels;
        const double *buckets;
        size_t n_buckets;
        size_t cap;
    } bad[] = {
        {METRIC_COUNTER, dunder, 1, NULL, 0, 10},
        {METRIC_COUNTER, digit, 1, NULL, 0, 10},
        {METRIC_COUNTER, dash, 1, NULL, 0, 10},
        {METRIC_COUNTER, colon, 1, NULL, 0, 10},
        {METRIC_HISTOGRAM, le, 1, b_ok, 2, 10},
        {METRIC_COUNTER, dup, 2, NULL, 0, 10},
        {METRIC_COUNTER, many, 13, NULL, 0, 10},
        {METRIC_COUNTER, NULL, 1, NULL, 0, 10},
        {METRIC_COUNTER, method_label, 1, NULL, 0, 0},
        {METRIC_COUNTER, NULL, 0, b_ok, 2, 10},
        {METRIC_HISTOGRAM, NULL, 0, b_flat, 2, 10},
        {METRIC_HISTOGRAM, NULL, 0, b_down, 2, 10},
        {METRIC_HISTOGRAM, NULL, 0, b_nan, 2, 10},
        {METRIC_HISTOGRAM, NULL, 0, b_inf, 2, 10},
        {METRIC_HISTOGRAM, NULL, 0, NULL, 2, 10},
        {METRIC_HISTOGRAM, NULL, 0, b_ok, METRICS_MAX_BUCKETS + 1, 10},
        {(enum metric_type)7, NULL, 0, NULL, 0, 10},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        struct metric_family *f =
            metrics_family(reg, "x_total", "h", bad[i].type, bad[i].labels, bad[i].n_labels,
                           bad[i].buckets, bad[i].n_buckets, bad[i].cap, 0);
        if (f || errno != EINVAL)
            TEST_FAIL_AT("case %zu accepted (errno %d)", i, errno);
    }
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        errno = 0;
        CHECK(!metrics_family(reg, bad_names[i], "h", METRIC_GAUGE, NULL, 0, NULL, 0, 1, 0));
        CHECK_INT(errno, EINVAL);
    }
    /* None of the refusals left a family behind; the valid forms work. */
    CHECK(!metrics_family_find(reg, "x_total"));
    CHECK(metrics_family(reg, "a:b_c9", "h", METRIC_COUNTER, le, 1, NULL, 0, 10, 0));
    CHECK(metrics_family(reg, "_x", NULL, METRIC_GAUGE, many, 12, NULL, 0, 10, 0));
    CHECK(metrics_family(reg, "h0", "h", METRIC_HISTOGRAM, NULL, 0, NULL, 0, 1, 0));
    CHECK(metrics_family(reg, "h24", "h", METRIC_HISTOGRAM, NULL, 0, b_ok, 2, 1, 0));
    metrics_free(reg);
}

/* A rule's help of 4 MiB, 250 times, was 2 GB at peak and 1 GB a scrape; a label name of 1 MB
 * made 238 MB a scrape, on every sample line. */
TEST(names_and_help_past_their_caps_are_refused)
{
    struct metrics *reg = metrics_new(100);
    static char name[METRICS_MAX_NAME_LEN + 2], label[METRICS_MAX_LABEL_NAME_LEN + 2],
        help[METRICS_MAX_HELP_LEN + 2];
    const char *labels[] = {label};
    size_t before;

    memset(name, 'n', METRICS_MAX_NAME_LEN + 1);
    memset(label, 'l', METRICS_MAX_LABEL_NAME_LEN + 1);
    memset(help, 'h', METRICS_MAX_HELP_LEN + 1);
    before = metrics_family_count(reg);
    errno = 0;
    CHECK(!metrics_family(reg, name, "h", METRIC_COUNTER, NULL, 0, NULL, 0, 1, 0));
    CHECK_INT(errno, ENAMETOOLONG);
    CHECK_INT(metrics_family_check(reg, name, "h", METRIC_COUNTER, NULL, 0, NULL, 0, 1),
              -ENAMETOOLONG);
    CHECK(!metrics_family(reg, "x_total", "h", METRIC_COUNTER, labels, 1, NULL, 0, 1, 0));
    CHECK_INT(errno, ENAMETOOLONG);
    CHECK_INT(metrics_family_check(reg, "x_total", "h", METRIC_COUNTER, labels, 1, NULL, 0, 1),
              -ENAMETOOLONG);
    CHECK(!metrics_family(reg, "x_total", help, METRIC_COUNTER, NULL, 0, NULL, 0, 1, 0));
    CHECK_INT(errno, EMSGSIZE);
    CHECK_INT(metrics_family_check(reg, "x_total", help, METRIC_COUNTER, NULL, 0, NULL, 0, 1),
              -EMSGSIZE);
    CHECK_INT(metrics_collector(reg, name, "h", METRIC_GAUGE, NULL, 0, 0, NULL, NULL),
              -ENAMETOOLONG);
    CHECK_INT(metrics_collector(reg, "c", help, METRIC_GAUGE, NULL, 0, 0, NULL, NULL), -EMSGSIZE);
    CHECK_INT(metrics_family_count(reg), before);
    /* Exactly at the caps is fine. */
    name[METRICS_MAX_NAME_LEN] = '\0';
    label[METRICS_MAX_LABEL_NAME_LEN] = '\0';
    help[METRICS_MAX_HELP_LEN] = '\0';
    CHECK_INT(metrics_family_check(reg, name, help, METRIC_COUNTER, labels, 1, NULL, 0, 1), 0);
    struct metric_family *f =
        metrics_family(reg, name, help, METRIC_COUNTER, labels, 1, NULL, 0, 1, 0);
    CHECK(f != NULL);
    CHECK_INT(strlen(metrics_family_help(f)), METRICS_MAX_HELP_LEN);
    CHECK_INT(metrics_family_count(reg), before + 1);
    metrics_free(reg);
}

TEST(same_schema_redeclared_returns_the_same_family)
{
    struct metrics *reg = metrics_new(100);
    static const double b[] = {0.5, 1};
    static const char *const labels2[] = {"method"};
    struct metric_family *f =
        metrics_family(reg, "rtt_seconds", "first", METRIC_HISTOGRAM, method_label, 1, b, 2, 10, 0);
    struct metric_family *g =
        metrics_family(reg, "rtt_seconds", "second", METRIC_HISTOGRAM, labels2, 1, b, 2, 99, 0);

    CHECK(f != NULL);
    CHECK(g == f);
    CHECK_STR(metrics_family_help(f), "first");
    CHECK(metrics_family_find(reg, "rtt_seconds") == f);
    CHECK(metrics_family_find(reg, "rtt") == NULL);
    metrics_free(reg);
}

TEST(other_schema_under_the_same_name_returns_null_einval)
{
    struct metrics *reg = metrics_new(100);
    static const double b[] = {0.5, 1};
    static const double b2[] = {0.5, 2};
    static const char *const other[] = {"code"};
    static const char *const two[] = {"method", "code"};
    struct metric_family *f =
        metrics_family(reg, "x", "h", METRIC_HISTOGRAM, method_label, 1, b, 2, 10, 0);

    CHECK(f != NULL);
    errno = 0;
    CHECK(!metrics_family(reg, "x", "h", METRIC_GAUGE, method_label, 1, NULL, 0, 10, 0));
    CHECK_INT(errno, EINVAL);
    errno = 0;
    CHECK(!metrics_family(reg, "x", "h", METRIC_HISTOGRAM, other, 1, b, 2, 10, 0));
    CHECK_INT(errno, EINVAL);
    errno = 0;
    CHECK(!metrics_family(reg, "x", "h", METRIC_HISTOGRAM, two, 2, b, 2, 10, 0));
    CHECK_INT(errno, EINVAL);
    errno = 0;
    CHECK(!metrics_family(reg, "x", "h", METRIC_HISTOGRAM, method_label, 1, b2, 2, 10, 0));
    CHECK_INT(errno, EINVAL);
    errno = 0;
    CHECK(!metrics_family(reg, "x", "h", METRIC_HISTOGRAM, method_label, 1, b, 1, 10, 0));
    CHECK_INT(errno, EINVAL);
    CHECK(metrics_family_find(reg, "x") == f);
    metrics_free(reg);
}

TEST(family_schema_is_readable)
{
    struct metrics *reg = metrics_new(100);
    static const double b[] = {0.005, 1};
    static const char *const labels[] = {"method", "code"};
    struct metric_family *f = metrics_family(reg, "d_seconds", "Delay.", METRIC_HISTOGRAM, labels,
                                             2, b, 2, 10, METRIC_TIMING);
    size_t n;

    CHECK_STR(metrics_family_name(f), "d_seconds");
    CHECK_STR(metrics_family_help(f), "Delay.");
    CHECK_INT(metrics_family_type(f), METRIC_HISTOGRAM);
    CHECK_INT(metrics_family_flags(f), METRIC_TIMING);
    const char *const *names = metrics_family_labels(f, &n);
    CHECK_INT(n, 2);
    CHECK_STR(names[0], "method");
    CHECK_STR(names[1], "code");
    const double *bounds = metrics_family_buckets(f, &n);
    CHECK_INT(n, 2);
    CHECK_DBL(bounds[0], 0.005);
    CHECK_DBL(bounds[1], 1);
    /* The registry's own family comes first; then ours. */
    metrics_lock(reg);
    CHECK_INT(metrics_family_count(reg), 2);
    CHECK_STR(metrics_family_name(metrics_family_at(reg, 0)), METRICS_OVERFLOW_FAMILY);
    CHECK(metrics_family_at(reg, 1) == f);
    metrics_unlock(reg);
    struct metric_family *g = metrics_family(reg, "g", NULL, METRIC_GAUGE, NULL, 0, NULL, 0, 1, 0);
    CHECK_STR(metrics_family_help(g), "");
    metrics_free(reg);
}

TEST(same_labels_find_the_same_series)
{
    struct metrics *reg = metrics_new(100);
    static const char *const labels[] = {"method", "code"};
    struct metric_family *f =
        metrics_family(reg, "r_total", "h", METRIC_COUNTER, labels, 2, NULL, 0, 100, 0);
    uint32_t k1[2] = {intern_str(reg, "INVITE"), intern_str(reg, "200")};
    uint32_t k2[2] = {k1[1], k1[0]};

    CHECK(metrics_series_find(f, k1) == NULL);
    struct metric_series *s1 = metrics_series(f, k1);
    struct metric_series *s2 = metrics_series(f, k2);
    CHECK(s1 != NULL && s2 != NULL && s1 != s2);
    CHECK(metrics_series(f, k1) == s1);
    CHECK(metrics_series_find(f, k1) == s1);
    CHECK(metrics_series_find(f, k2) == s2);
    metric_counter_add(s1, 2);
    metric_counter_add(metrics_series(f, k1), 3);
    CHECK_DBL(metric_value(s1), 5);
    CHECK_DBL(metric_value(s2), 0);
    metrics_free(reg);
}

TEST(series_never_move_as_more_are_created)
{
    struct metrics *reg = metrics_new(20000);
    struct metric_family *f =
        metrics_family(reg, "m_total", "h", METRIC_COUNTER, method_label, 1, NULL, 0, 20000, 0);
    struct metric_series *first[16];
    uint32_t syms[16];
    char buf[32];

    for (int i = 0; i < 16; i++) {
        snprintf(buf, sizeof buf, "m%d", i);
        syms[i] = intern_str(reg, buf);
        first[i] = metrics_series(f, &syms[i]);
        metric_counter_add(first[i], i);
    }
    for (int i = 16; i < 10000; i++) {
        snprintf(buf, sizeof buf, "m%d", i);
        uint32_t s = intern_str(reg, buf);
        metric_counter_add(metrics_series(f, &s), 1);
    }
    int bad = 0;
    for (int i = 0; i < 16; i++) {
        bad += metrics_series(f, &syms[i]) != first[i];
        bad += metric_value(first[i]) != i;
    }
    CHECK_INT(bad, 0);
    metrics_lock(reg);
    CHECK_INT(metrics_family_series_count(f), 10000);
    metrics_unlock(reg);
    CHECK_DBL(overflow_count(reg, "m_total"), -1);
    metrics_free(reg);
}

TEST(past_the_cap_labels_go_to_the_counted_overflow_series)
{
    struct metrics *reg = metrics_new(100);
    struct metric_family *f =
        metrics_family(reg, "o_total", "h", METRIC_COUNTER, method_label, 1, NULL, 0, 2, 0);
    uint32_t a = intern_str(reg, "a"), b = intern_str(reg, "b"), c = intern_str(reg, "c");
    uint32_t d = intern_str(reg, "d"), ovf = intern_str(reg, METRICS_OVERFLOW_VALUE);

    struct metric_series *sa = metrics_series(f, &a), *sb = metrics_series(f, &b);
    struct metric_series *sc = metrics_series(f, &c), *sd = metrics_series(f, &d);
    CHECK(sa != sb);
    CHECK(sc == sd);
    CHECK(sc != sa && sc != sb);
    CHECK(metrics_series_find(f, &c) == NULL);
    CHECK(metrics_series_find(f, &ovf) == sc);
    CHECK_DBL(overflow_count(reg, "o_total"), 2);
    /* An existing series is still found; addressing the overflow labels is not an overflow. */
    CHECK(metrics_series(f, &a) == sa);
    CHECK(metrics_series(f, &ovf) == sc);
    CHECK_DBL(overflow_count(reg, "o_total"), 2);
    uint32_t none = METRICS_NO_SYMBOL;
    CHECK(metrics_series(f, &none) == sc);
    CHECK_DBL(overflow_count(reg, "o_total"), 3);
    CHECK(metrics_series_is_overflow(sc));
    CHECK(!metrics_series_is_overflow(sa));
    CHECK(!metrics_series_is_overflow(sb));
    metrics_free(reg);
}

TEST(no_symbol_goes_to_the_overflow_series_below_the_cap)
{
    struct metrics *reg = metrics_new(1);
    static const char *const labels[] = {"a", "b"};
    struct metric_family *f =
        metrics_family(reg, "n_total", "h", METRIC_COUNTER, labels, 2, NULL, 0, 100, 0);
    uint32_t k[2] = {intern_str(reg, "x"), intern_str(reg, "y")};

    CHECK(k[1] == METRICS_NO_SYMBOL);
    struct metric_series *s = metrics_series(f, k);
    uint32_t ovf[2];
    ovf[0] = ovf[1] = intern_str(reg, METRICS_OVERFLOW_VALUE);
    CHECK(s == metrics_series_find(f, ovf));
    CHECK_DBL(overflow_count(reg, "n_total"), 1);
    CHECK_DBL(overflow_count(reg, "_symbols_"), 1);
    /* An id that was never interned is treated the same way. */
    uint32_t bogus[2] = {k[0], 99999};
    CHECK(metrics_series(f, bogus) == s);
    CHECK_DBL(overflow_count(reg, "n_total"), 2);
    metrics_free(reg);
}

TEST(zero_label_family_has_its_series_from_the_start)
{
    struct metrics *reg = metrics_new(100);
    struct metric_family *f = metrics_family(reg, "up", "h", METRIC_GAUGE, NULL, 0, NULL, 0, 0, 0);

    metrics_lock(reg);
    CHECK_INT(metrics_family_series_count(f), 1);
    metrics_unlock(reg);
    struct metric_series *s = metrics_series_find(f, NULL);
    CHECK(s != NULL);
    CHECK(metrics_series(f, NULL) == s);
    CHECK_DBL(metric_value(s), 0);
    CHECK(!metrics_series_is_overflow(s));
    metrics_free(reg);
}

TEST(counter_ignores_negative_and_nan_adds)
{
    struct metrics *reg = metrics_new(100);
    struct metric_family *f =
        metrics_family(reg, "c_total", "h", METRIC_COUNTER, NULL, 0, NULL, 0, 1, 0);
    struct metric_series *s = metrics_series(f, NULL);

    metric_counter_add(s, 1);
    metric_counter_add(s, -5);
    metric_counter_add(s, NAN);
    metric_counter_add(s, 0.5);
    CHECK_DBL(metric_value(s), 1.5);
    metrics_free(reg);
}

TEST(gauge_is_set_and_added_to)
{
    struct metrics *reg = metrics_new(100);
    struct metric_family *f = metrics_family(reg, "g", "h", METRIC_GAUGE, NULL, 0, NULL, 0, 1, 0);
    struct metric_series *s = metrics_series(f, NULL);

    metric_gauge_set(s, 10);
    metric_gauge_add(s, -3);
    metric_gauge_add(s, 0.25);
    CHECK_DBL(metric_value(s), 7.25);
    metric_gauge_set(s, -1);
    CHECK_DBL(metric_value(s), -1);
    metrics_free(reg);
}

TEST(histogram_bounds_are_inclusive_and_nan_is_ignored)
{
    struct metrics *reg = metrics_new(100);
    static const double b[] = {0.005, 0.5, 1};
    struct metric_family *f =
        metrics_family(reg, "h_seconds", "h", METRIC_HISTOGRAM, NULL, 0, b, 3, 1, 0);
    struct metric_series *s = metrics_series(f, NULL);

    metric_histogram_observe(s, 0.005); /* le 0.005 */
    metric_histogram_observe(s, -1);    /* le 0.005 */
    metric_histogram_observe(s, 0.25);  /* le 0.5 */
    metric_histogram_observe(s, 0.5);   /* le 0.5 */
    metric_histogram_observe(s, 1);     /* le 1 */
    metric_histogram_observe(s, 7);     /* +Inf */
    metric_histogram_observe(s, NAN);
    CHECK_INT(metric_histogram_bucket(s, 0), 2);
    CHECK_INT(metric_histogram_bucket(s, 1), 2);
    CHECK_INT(metric_histogram_bucket(s, 2), 1);
    CHECK_INT(metric_histogram_bucket(s, 3), 1);
    CHECK_INT(metric_histogram_count(s), 6);
    CHECK_DBL(metric_histogram_sum(s), 7.755);
    metrics_free(reg);
}

struct walk {
    int n;
    uint32_t first_syms[8];
    const struct metric_series *last;
};

static void walk_fn(void *ctx, const struct metric_series *s, const uint32_t *syms)
{
    struct walk *w = ctx;
    if (w->n < 8)
        w->first_syms[w->n] = syms[0];
    w->n++;
    w->last = s;
}

TEST(series_each_walks_creation_order_with_used_overflow_last)
{
    struct metrics *reg = metrics_new(100);
    struct metric_family *f =
        metrics_family(reg, "w_total", "h", METRIC_COUNTER, method_label, 1, NULL, 0, 3, 0);
    uint32_t c = intern_str(reg, "c"), a = intern_str(reg, "a"), b = intern_str(reg, "b");
    uint32_t d = intern_str(reg, "d"), ovf = intern_str(reg, METRICS_OVERFLOW_VALUE);
    struct walk w = {0};

    CHECK_INT(metrics_series_each(f, walk_fn, &w), 0);
    metrics_series(f, &c);
    metrics_series(f, &a);
    metrics_series(f, &b);
    w.n = 0;
    CHECK_INT(metrics_series_each(f, walk_fn, &w), 3);
    CHECK_INT(w.first_syms[0], c);
    CHECK_INT(w.first_syms[1], a);
    CHECK_INT(w.first_syms[2], b);
    struct metric_series *o = metrics_series(f, &d);
    w.n = 0;
    CHECK_INT(metrics_series_each(f, walk_fn, &w), 4);
    CHECK_INT(w.first_syms[3], ovf);
    CHECK(w.last == o);
    metrics_free(reg);
}

static void collect_nothing(void *ctx, struct metrics *reg, metrics_emit_fn emit, void *emit_ctx)
{
    (void)reg;
    (void)emit;
    (void)emit_ctx;
    (*(int *)ctx)++;
}

TEST(collector_names_are_unique_and_types_checked)
{
    struct metrics *reg = metrics_new(100);
    int calls = 0;

    metrics_family(reg, "fam", "h", METRIC_GAUGE, NULL, 0, NULL, 0, 1, 0);
    CHECK_INT(metrics_collector(reg, "col", "h", METRIC_GAUGE, NULL, 0, 0, collect_nothing, &calls),
              0);
    CHECK_INT(metrics_collector(reg, "col", "h", METRIC_GAUGE, NULL, 0, 0, collect_nothing, &calls),
              -EEXIST);
    CHECK_INT(metrics_collector(reg, "fam", "h", METRIC_GAUGE, NULL, 0, 0, collect_nothing, &calls),
              -EEXIST);
    CHECK_INT(
        metrics_collector(reg, "hist", "h", METRIC_HISTOGRAM, NULL, 0, 0, collect_nothing, &calls),
        -EINVAL);
    CHECK_INT(
        metrics_collector(reg, "bad-name", "h", METRIC_GAUGE, NULL, 0, 0, collect_nothing, &calls),
        -EINVAL);
    CHECK_INT(metrics_collector(reg, "nofn", "h", METRIC_GAUGE, NULL, 0, 0, NULL, NULL), -EINVAL);
    /* A collector's name is not a family's. */
    errno = 0;
    CHECK(!metrics_family(reg, "col", "h", METRIC_GAUGE, NULL, 0, NULL, 0, 1, 0));
    CHECK_INT(errno, EINVAL);
    CHECK(metrics_family_find(reg, "col") == NULL);
    metrics_lock(reg);
    CHECK_INT(metrics_family_count(reg), 3);
    struct metric_family *col = metrics_family_at(reg, 2);
    CHECK_INT(metrics_family_collect(col, NULL, NULL), 0);
    CHECK_INT(metrics_family_collect(metrics_family_at(reg, 1), NULL, NULL), -EINVAL);
    metrics_unlock(reg);
    CHECK_INT(calls, 1);
    metrics_free(reg);
}

TEST(free_accepts_null)
{
    metrics_free(NULL);
}

TEST_MAIN()
