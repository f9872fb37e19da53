/* Tests for the Prometheus text renderer: exact exposition text, numbers, escaping, sorting,
 * promtool's verdict, and rendering while the writer thread works. */
#include "expo.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "test.h"

static const char *const method_label[] = {"method"};

static uint32_t sym(struct metrics *reg, const char *s)
{
    return metrics_intern(reg, s, strlen(s));
}

/* Renders reg and compares the whole text; prints both on mismatch. */
#define CHECK_RENDER(reg, flags, expected)                                                         \
    do {                                                                                           \
        struct expo_buf b_;                                                                        \
        expo_buf_init(&b_);                                                                        \
        int rc_ = expo_render((reg), (flags), &b_);                                                \
        CHECK_INT(rc_, 0);                                                                         \
        const char *e_ = (expected);                                                               \
        if (b_.len != strlen(e_) || memcmp(b_.data, e_, b_.len) != 0)                              \
            TEST_FAIL_AT("rendered:\n%.*s---- expected:\n%s----", (int)b_.len,                     \
                         b_.data ? b_.data : "", e_);                                              \
        expo_buf_fini(&b_);                                                                        \
    } while (0)

TEST(numbers_use_the_shortest_round_trip_form)
{
    static const struct {
        double v;
        const char *s;
    } cases[] = {
        {0, "0"},
        {-0.0, "0"},
        {1, "1"},
        {-1, "-1"},
        {3, "3"},
        {0.25, "0.25"},
        {-2.5, "-2.5"},
        {0.1, "0.1"},
        {0.005, "0.005"},
        {0.0001, "0.0001"},
        {1e-05, "1e-05"},
        {0.00001234, "1.234e-05"},
        {1.0 / 3, "0.3333333333333333"},
        {0.1 + 0.2, "0.30000000000000004"},
        {123456.789, "123456.789"},
        {1234567.5, "1234567.5"},
        {1000000, "1000000"},
        {1e15, "1000000000000000"},
        {9007199254740992.0, "9007199254740992"},
        {-9007199254740992.0, "-9007199254740992"},
        {9007199254740994.0, "9007199254740994"},
        {1e20, "1e+20"},
        {1.5e300, "1.5e+300"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
        {NAN, "NaN"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[EXPO_NUMBER_MAX];
        size_t n = expo_number(cases[i].v, out);
        if (n != strlen(cases[i].s) || strcmp(out, cases[i].s) != 0)
            TEST_FAIL_AT("case %zu: \"%s\" (%zu), expected \"%s\"", i, out, n, cases[i].s);
    }
}

/* The definition, slowly: integers plainly, else the first of %.15g, %.16g, %.17g that reads
 * back exactly. expo_number must agree byte for byte. */
static void reference_number(double v, char *out)
{
    if (fabs(v) <= 9007199254740992.0 && v == (double)(int64_t)v) {
        snprintf(out, EXPO_NUMBER_MAX, "%" PRId64, (int64_t)v);
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, EXPO_NUMBER_MAX, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

static uint64_t rng_state = 0x853c49e6748fea9bULL;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

TEST(numbers_match_the_printf_definition_on_many_values)
{
    int bad = 0;

    for (int i = 0; i < 400000; i++) {
        double v;
        uint64_t r = rng();
        switch (i % 5) {
        case 0: /* any finite double */
            memcpy(&v, &r, sizeof v);
            if (!isfinite(v))
                continue;
            break;
        case 1: /* short decimals: a few digits at any scale in the fast path's range */
            v = (double)(r % 100000) * pow(10, (double)((int)(r >> 40) % 40 - 20));
            break;
        case 2: /* ratios */
            v = (double)(r % 1000) / (double)(1 + (r >> 32) % 1000);
            break;
        case 3: /* next to powers of ten, where log10 is off by one */
            v = pow(10, (double)((int)(r % 60) - 25));
            v = (r >> 32) & 1 ? nextafter(v, 0) : nextafter(v, INFINITY);
            break;
        default: /* 15 and 16 digit decimals */
            v = (double)(r % 10000000000000000ULL) / pow(10, (double)(r >> 60));
            break;
        }
        if (r >> 63)
            v = -v;
        char want[EXPO_NUMBER_MAX], got[EXPO_NUMBER_MAX];
        reference_number(v, want);
        size_t n = expo_number(v, got);
        if (strcmp(got, want) != 0 || n != strlen(want)) {
            if (bad++ < 10)
                TEST_FAIL_AT("%.17g: \"%s\", expected \"%s\"", v, got, want);
        }
    }
    CHECK_INT(bad, 0);
}

/* Durations from integer nanoseconds: the same text as the double route, by the printf
 * definition, on the edges of the integer route (0.0001 s, 10^15 ns) and on random durations
 * of every length, from nanoseconds to centuries. */
TEST(seconds_from_nanoseconds_match_the_double_route)
{
    static const uint64_t edges[] = {0, 1, 99999, 100000, 100001, 999999999, 1000000000,
                                     1000000001, 2500000000, 3722254000000, 999999999999999,
                                     1000000000000000, 18446744073709551615ull};
    char got[EXPO_NUMBER_MAX], want[EXPO_NUMBER_MAX];
    int bad = 0;

    CHECK_INT(expo_ns_seconds(2500000000, got), 3);
    CHECK_STR(got, "2.5");
    CHECK_INT(expo_ns_seconds(3722254000000, got), 8);
    CHECK_STR(got, "3722.254");
    CHECK_INT(expo_ns_seconds(50000, got), 5);
    CHECK_STR(got, "5e-05");
    for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]) + 300000; i++) {
        uint64_t ns = i < sizeof(edges) / sizeof(edges[0]) ? edges[i] : rng();
        if (i >= sizeof(edges) / sizeof(edges[0])) {
            ns >>= rng() % 64; /* every magnitude */
            if (i % 3 == 0)
                ns -= ns % 1000000; /* whole milliseconds, as packet times often are */
        }
        reference_number((double)ns / 1e9, want);
        size_t n = expo_ns_seconds(ns, got);
        if (strcmp(got, want) != 0 || n != strlen(want)) {
            if (bad++ < 10)
                TEST_FAIL_AT("%llu ns: \"%s\", expected \"%s\"", (unsigned long long)ns, got,
                             want);
        }
    }
    CHECK_INT(bad, 0);
}

TEST(empty_registry_renders_nothing)
{
    struct metrics *reg = metrics_new(100);
    struct expo_buf b;

    expo_buf_init(&b);
    CHECK_INT(expo_render(reg, 0, &b), 0);
    CHECK_INT(b.len, 0);
    expo_buf_fini(&b);
    CHECK(b.data == NULL);
    metrics_free(reg);
}

TEST(counter_series_are_sorted_by_label_value)
{
    struct metrics *reg = metrics_new(100);
    struct metric_family *f = metrics_family(reg, "sip_requests_total", "Requests seen.",
                                             METRIC_COUNTER, method_label, 1, NULL, 0, 100, 0);
    uint32_t invite = sym(reg, "INVITE"), ack = sym(reg, "ACK"), bye = sym(reg, "BYE");

    metric_counter_add(metrics_series(f, &invite), 3);
    metric_counter_add(metrics_series(f, &ack), 1);
    metric_counter_add(metrics_series(f, &bye), 2);
    CHECK_RENDER(reg, 0,
                 "# HELP sip_requests_total Requests seen.\n"
                 "# TYPE sip_requests_total counter\n"
                 "sip_requests_total{method=\"ACK\"} 1\n"
                 "sip_requests_total{method=\"BYE\"} 2\n"
                 "sip_requests_total{method=\"INVITE\"} 3\n");
    metrics_free(reg);
}

TEST(families_are_sorted_by_name_and_unlabelled_ones_start_at_zero)
{
    struct metrics *reg = metrics_new(100);

    metrics_family(reg, "zeta", "Last.", METRIC_GAUGE, NULL, 0, NULL, 0, 1, 0);
    metrics_family(reg, "alpha_total", "First.", METRIC_COUNTER, NULL, 0, NULL, 0, 1, 0);
    /* Labelled, no series yet: prints nothing at all. */
    metrics_family(reg, "beta_total", "Unused.", METRIC_COUNTER, method_label, 1, NULL, 0, 10, 0);
    metrics_family(reg, "Gamma", "Upper case sorts first.", METRIC_GAUGE, NULL, 0, NULL, 0, 1, 0);
    CHECK_RENDER(reg, 0,
                 "# HELP Gamma Upper case sorts first.\n"
                 "# TYPE Gamma gauge\n"
                 "Gamma 0\n"
                 "# HELP alpha_total First.\n"
                 "# TYPE alpha_total counter\n"
                 "alpha_total 0\n"
                 "# HELP zeta Last.\n"
                 "# TYPE zeta gauge\n"
                 "zeta 0\n");
    metrics_free(reg);
}

TEST(several_labels_sort_label_by_label_bytewise)
{
    struct metrics *reg = metrics_new(100);
    static const char *const labels[] = {"a", "b"};
    struct metric_family *f =
        metrics_family(reg, "m", "M.", METRIC_GAUGE, labels, 2, NULL, 0, 100, 0);
    uint32_t k1[2] = {sym(reg, "x"), sym(reg, "2")};
    uint32_t k2[2] = {sym(reg, "x"), sym(reg, "10")};
    uint32_t k3[2] = {sym(reg, "w"), sym(reg, "9")};
    uint32_t k4[2] = {sym(reg, "xa"), sym(reg, "1")};
    uint32_t k5[2] = {sym(reg, ""), sym(reg, "z")};

    metric_gauge_set(metrics_series(f, k1), 1);
    metric_gauge_set(metrics_series(f, k2), 2);
    metric_gauge_set(metrics_series(f, k3), 3);
    metric_gauge_set(metrics_series(f, k4), 4);
    metric_gauge_set(metrics_series(f, k5), 5);
    CHECK_RENDER(reg, 0,
                 "# HELP m M.\n"
                 "# TYPE m gauge\n"
                 "m{a=\"\",b=\"z\"} 5\n"
                 "m{a=\"w\",b=\"9\"} 3\n"
                 "m{a=\"x\",b=\"10\"} 2\n"
                 "m{a=\"x\",b=\"2\"} 1\n"
                 "m{a=\"xa\",b=\"1\"} 4\n");
    metrics_free(reg);
}

TEST(histograms_print_cumulative_buckets_sum_and_count)
{
    struct metrics *reg = metrics_new(100);
    static const double b[] = {0.005, 0.5, 1};
    static const char *const outcome[] = {"outcome"};
    struct metric_family *f = metrics_family(reg, "srd_seconds", "Request delay.", METRIC_HISTOGRAM,
                                             outcome, 1, b, 3, 10, 0);
    struct metric_family *g =
        metrics_family(reg, "pdd_seconds", "Post dial.", METRIC_HISTOGRAM, NULL, 0, b, 3, 1, 0);
    uint32_t ok = sym(reg, "success"), ko = sym(reg, "failure");
    struct metric_series *s = metrics_series(f, &ok);

    metric_histogram_observe(s, 0.25);
    metric_histogram_observe(s, 0.5);
    metric_histogram_observe(s, 1);
    metric_histogram_observe(s, 7);
    metric_histogram_observe(metrics_series(f, &ko), 0.001);
    metric_histogram_observe(metrics_series(g, NULL), 2);
    CHECK_RENDER(reg, 0,
                 "# HELP pdd_seconds Post dial.\n"
                 "# TYPE pdd_seconds histogram\n"
                 "pdd_seconds_bucket{le=\"0.005\"} 0\n"
                 "pdd_seconds_bucket{le=\"0.5\"} 0\n"
                 "pdd_seconds_bucket{le=\"1\"} 0\n"
                 "pdd_seconds_bucket{le=\"+Inf\"} 1\n"
                 "pdd_seconds_sum 2\n"
                 "pdd_seconds_count 1\n"
                 "# HELP srd_seconds Request delay.\n"
                 "# TYPE srd_seconds histogram\n"
                 "srd_seconds_bucket{outcome=\"failure\",le=\"0.005\"} 1\n"
                 "srd_seconds_bucket{outcome=\"failure\",le=\"0.5\"} 1\n"
                 "srd_seconds_bucket{outcome=\"failure\",le=\"1\"} 1\n"
                 "srd_seconds_bucket{outcome=\"failure\",le=\"+Inf\"} 1\n"
                 "srd_seconds_sum{outcome=\"failure\"} 0.001\n"
                 "srd_seconds_count{outcome=\"failure\"} 1\n"
                 "srd_seconds_bucket{outcome=\"success\",le=\"0.005\"} 0\n"
                 "srd_seconds_bucket{outcome=\"success\",le=\"0.5\"} 2\n"
                 "srd_seconds_bucket{outcome=\"success\",le=\"1\"} 3\n"
                 "srd_seconds_bucket{outcome=\"success\",le=\"+Inf\"} 4\n"
                 "srd_seconds_sum{outcome=\"success\"} 8.75\n"
                 "srd_seconds_count{outcome=\"success\"} 4\n");
    metrics_free(reg);
}

TEST(histogram_without_buckets_has_only_inf)
{
    struct metrics *reg = metrics_new(100);
    struct metric_family *f =
        metrics_family(reg, "h", "H.", METRIC_HISTOGRAM, NULL, 0, NULL, 0, 1, 0);

    metric_histogram_observe(metrics_series(f, NULL), 0.5);
    CHECK_RENDER(reg, 0,
                 "# HELP h H.\n"
                 "# TYPE h histogram\n"
                 "h_bucket{le=\"+Inf\"} 1\n"
                 "h_sum 0.5\n"
                 "h_count 1\n");
    metrics_free(reg);
}

TEST(label_values_and_help_are_escaped)
{
    struct metrics *reg = metrics_new(100);
    static const char *const labels[] = {"ua"};
    struct metric_family *f = metrics_family(reg, "e_total", "Back\\slash, \"quotes\"\nand more.",
                                             METRIC_COUNTER, labels, 1, NULL, 0, 10, 0);
    uint32_t k = sym(reg, "a\"b\\c\nd");

    metric_counter_add(metrics_series(f, &k), 1);
    CHECK_RENDER(reg, 0,
                 "# HELP e_total Back\\\\slash, \"quotes\"\\nand more.\n"
                 "# TYPE e_total counter\n"
                 "e_total{ua=\"a\\\"b\\\\c\\nd\"} 1\n");
    metrics_free(reg);
}

TEST(invalid_utf8_prints_as_replacement_characters)
{
    struct metrics *reg = metrics_new(100);
    static const char *const labels[] = {"ua"};
    struct metric_family *f =
        metrics_family(reg, "u_total", "Bad \xff help.", METRIC_COUNTER, labels, 1, NULL, 0, 10, 0);
    uint32_t k = metrics_intern(reg, "caf\xc3\xa9 \xc3(", 8);

    metric_counter_add(metrics_series(f, &k), 1);
    CHECK_RENDER(reg, 0,
                 "# HELP u_total Bad \xef\xbf\xbd help.\n"
                 "# TYPE u_total counter\n"
                 "u_total{ua=\"caf\xc3\xa9 \xef\xbf\xbd(\"} 1\n");
    metrics_free(reg);
}

TEST(gauge_values_print_special_and_fractional_numbers)
{
    struct metrics *reg = metrics_new(100);
    static const char *const labels[] = {"k"};
    struct metric_family *f =
        metrics_family(reg, "g", "G.", METRIC_GAUGE, labels, 1, NULL, 0, 10, 0);
    static const struct {
        const char *k;
        double v;
    } set[] = {{"a", 0.1},      {"b", 1e-05},     {"c", -2.5}, {"d", NAN},
               {"e", INFINITY}, {"f", -INFINITY}, {"g", 1e20}, {"h", 12345678}};
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++) {
        uint32_t k = sym(reg, set[i].k);
        metric_gauge_set(metrics_series(f, &k), set[i].v);
    }
    CHECK_RENDER(reg, 0,
                 "# HELP g G.\n"
                 "# TYPE g gauge\n"
                 "g{k=\"a\"} 0.1\n"
                 "g{k=\"b\"} 1e-05\n"
                 "g{k=\"c\"} -2.5\n"
                 "g{k=\"d\"} NaN\n"
                 "g{k=\"e\"} +Inf\n"
                 "g{k=\"f\"} -Inf\n"
                 "g{k=\"g\"} 1e+20\n"
                 "g{k=\"h\"} 12345678\n");
    metrics_free(reg);
}

TEST(overflow_series_and_its_counter_are_printed)
{
    struct metrics *reg = metrics_new(100);
    struct metric_family *f =
        metrics_family(reg, "x_total", "X.", METRIC_COUNTER, method_label, 1, NULL, 0, 1, 0);
    uint32_t a = sym(reg, "a"), b = sym(reg, "b"), c = sym(reg, "c");

    metric_counter_add(metrics_series(f, &a), 1);
    metric_counter_add(metrics_series(f, &b), 1);
    metric_counter_add(metrics_series(f, &c), 1);
    CHECK_RENDER(reg, 0,
                 "# HELP sipscope_series_overflow_total Label combinations that went to a "
                 "family's overflow series, by family (_symbols_: label values refused by the "
                 "full symbol table or longer than 1,024 bytes).\n"
                 "# TYPE sipscope_series_overflow_total counter\n"
                 "sipscope_series_overflow_total{family=\"x_total\"} 2\n"
                 "# HELP x_total X.\n"
                 "# TYPE x_total counter\n"
                 "x_total{method=\"_overflow_\"} 2\n"
                 "x_total{method=\"a\"} 1\n");
    metrics_free(reg);
}

TEST(symbol_table_overflow_is_printed)
{
    struct metrics *reg = metrics_new(1);
    static const char *const labels[] = {"a", "b"};
    struct metric_family *f =
        metrics_family(reg, "y", "Y.", METRIC_GAUGE, labels, 2, NULL, 0, 10, 0);
    uint32_t k[2] = {sym(reg, "one"), sym(reg, "two")};

    metric_gauge_set(metrics_series(f, k), 7);
    CHECK_RENDER(reg, 0,
                 "# HELP sipscope_series_overflow_total Label combinations that went to a "
                 "family's overflow series, by family (_symbols_: label values refused by the "
                 "full symbol table or longer than 1,024 bytes).\n"
                 "# TYPE sipscope_series_overflow_total counter\n"
                 "sipscope_series_overflow_total{family=\"_symbols_\"} 1\n"
                 "sipscope_series_overflow_total{family=\"y\"} 1\n"
                 "# HELP y Y.\n"
                 "# TYPE y gauge\n"
                 "y{a=\"_overflow_\",b=\"_overflow_\"} 7\n");
    metrics_free(reg);
}

TEST(help_is_left_out_when_empty)
{
    struct metrics *reg = metrics_new(100);

    metrics_family(reg, "n", NULL, METRIC_GAUGE, NULL, 0, NULL, 0, 1, 0);
    metrics_family(reg, "o", "", METRIC_GAUGE, NULL, 0, NULL, 0, 1, 0);
    CHECK_RENDER(reg, 0,
                 "# TYPE n gauge\n"
                 "n 0\n"
                 "# TYPE o gauge\n"
                 "o 0\n");
    metrics_free(reg);
}

struct ratio_ctx {
    int calls;
};

static void collect_ratios(void *ctx, struct metrics *reg, metrics_emit_fn emit, void *emit_ctx)
{
    struct ratio_ctx *c = ctx;
    static const char *const v1[] = {"trunk-b"};
    static const char *const v2[] = {"trunk-a"};
    static const char *const v3[] = {"bad\xff"};

    (void)reg;
    c->calls++;
    emit(emit_ctx, v1, 0.5);
    emit(emit_ctx, v2, 0.75);
    emit(emit_ctx, v3, 1);
}

static void collect_one(void *ctx, struct metrics *reg, metrics_emit_fn emit, void *emit_ctx)
{
    (void)ctx;
    (void)reg;
    emit(emit_ctx, NULL, 12.5);
}

static void collect_none(void *ctx, struct metrics *reg, metrics_emit_fn emit, void *emit_ctx)
{
    (void)ctx;
    (void)reg;
    (void)emit;
    (void)emit_ctx;
}

TEST(collectors_are_sorted_with_families)
{
    struct metrics *reg = metrics_new(100);
    static const char *const trunk[] = {"trunk"};
    struct ratio_ctx rc = {0};

    metrics_family(reg, "sip_b", "B.", METRIC_GAUGE, NULL, 0, NULL, 0, 1, 0);
    CHECK_INT(metrics_collector(reg, "sip_c_ratio", "Ratio.", METRIC_GAUGE, trunk, 1, 0,
                                collect_ratios, &rc),
              0);
    CHECK_INT(metrics_collector(reg, "sip_a_seconds_total", "CPU.", METRIC_COUNTER, NULL, 0, 0,
                                collect_one, NULL),
              0);
    CHECK_INT(
        metrics_collector(reg, "sip_aa", "Nothing.", METRIC_GAUGE, NULL, 0, 0, collect_none, NULL),
        0);
    CHECK_RENDER(reg, 0,
                 "# HELP sip_a_seconds_total CPU.\n"
                 "# TYPE sip_a_seconds_total counter\n"
                 "sip_a_seconds_total 12.5\n"
                 "# HELP sip_b B.\n"
                 "# TYPE sip_b gauge\n"
                 "sip_b 0\n"
                 "# HELP sip_c_ratio Ratio.\n"
                 "# TYPE sip_c_ratio gauge\n"
                 "sip_c_ratio{trunk=\"bad\xef\xbf\xbd\"} 1\n"
                 "sip_c_ratio{trunk=\"trunk-a\"} 0.75\n"
                 "sip_c_ratio{trunk=\"trunk-b\"} 0.5\n");
    CHECK_INT(rc.calls, 1);
    metrics_free(reg);
}

static void collect_cpu(void *ctx, struct metrics *reg, metrics_emit_fn emit, void *emit_ctx)
{
    (void)ctx;
    (void)reg;
    emit(emit_ctx, NULL, 1.25);
}

TEST(deterministic_output_leaves_out_timing_families)
{
    struct metrics *reg = metrics_new(100);
    static const char *const rule[] = {"rule"};
    static const double b[] = {0.001};
    struct metric_family *t = metrics_family(reg, "sipscope_rule_seconds", "Rule time.",
                                             METRIC_HISTOGRAM, rule, 1, b, 1, 10, METRIC_TIMING);
    uint32_t r = sym(reg, "r1");

    metric_histogram_observe(metrics_series(t, &r), 0.0005);
    metrics_family(reg, "sip_x_total", "X.", METRIC_COUNTER, NULL, 0, NULL, 0, 1, 0);
    metrics_collector(reg, "process_cpu_seconds_total", "CPU.", METRIC_COUNTER, NULL, 0,
                      METRIC_TIMING, collect_cpu, NULL);
    CHECK_RENDER(reg, EXPO_DETERMINISTIC,
                 "# HELP sip_x_total X.\n"
                 "# TYPE sip_x_total counter\n"
                 "sip_x_total 0\n");
    CHECK_RENDER(reg, 0,
                 "# HELP process_cpu_seconds_total CPU.\n"
                 "# TYPE process_cpu_seconds_total counter\n"
                 "process_cpu_seconds_total 1.25\n"
                 "# HELP sip_x_total X.\n"
                 "# TYPE sip_x_total counter\n"
                 "sip_x_total 0\n"
                 "# HELP sipscope_rule_seconds Rule time.\n"
                 "# TYPE sipscope_rule_seconds histogram\n"
                 "sipscope_rule_seconds_bucket{rule=\"r1\",le=\"0.001\"} 1\n"
                 "sipscope_rule_seconds_bucket{rule=\"r1\",le=\"+Inf\"} 1\n"
                 "sipscope_rule_seconds_sum{rule=\"r1\"} 0.0005\n"
                 "sipscope_rule_seconds_count{rule=\"r1\"} 1\n");
    metrics_free(reg);
}

TEST(a_reused_buffer_renders_the_same_bytes)
{
    struct metrics *reg = metrics_new(100);
    struct metric_family *f =
        metrics_family(reg, "r_total", "R.", METRIC_COUNTER, method_label, 1, NULL, 0, 100, 0);
    struct expo_buf b;
    char first[256];

    for (int i = 0; i < 5; i++) {
        char v[8];
        snprintf(v, sizeof v, "m%d", 4 - i);
        uint32_t k = sym(reg, v);
        metric_counter_add(metrics_series(f, &k), i);
    }
    expo_buf_init(&b);
    CHECK_INT(expo_render(reg, 0, &b), 0);
    CHECK(b.len < sizeof first);
    memcpy(first, b.data, b.len + 1);
    size_t len = b.len;
    CHECK_INT(expo_render(reg, 0, &b), 0);
    CHECK_INT(b.len, len);
    CHECK_STR(b.data, first);
    CHECK_STR(b.data, "# HELP r_total R.\n"
                      "# TYPE r_total counter\n"
                      "r_total{method=\"m0\"} 4\n"
                      "r_total{method=\"m1\"} 3\n"
                      "r_total{method=\"m2\"} 2\n"
                      "r_total{method=\"m3\"} 1\n"
                      "r_total{method=\"m4\"} 0\n");
    expo_buf_fini(&b);
    metrics_free(reg);
}

/* ---- promtool ---- */

#ifndef SIPSCOPE_PROMTOOL
#define SIPSCOPE_PROMTOOL ""
#endif

static void collect_build(void *ctx, struct metrics *reg, metrics_emit_fn emit, void *emit_ctx)
{
    static const char *const v[] = {"0.1.0", "2.1.0-beta3", "pcap"};
    (void)ctx;
    (void)reg;
    emit(emit_ctx, v, 1);
}

/* A registry with every kind of line the renderer makes. */
static struct metrics *sample_registry(void)
{
    struct metrics *reg = metrics_new(1000);
    static const char *const mc[] = {"method", "code"};
    static const char *const st[] = {"state"};
    static const char *const ua[] = {"user_agent"};
    static const char *const bi[] = {"version", "luajit", "capture"};
    static const double delays[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30};
    struct metric_family *resp = metrics_family(reg, "sip_responses_total", "Responses seen.",
                                                METRIC_COUNTER, mc, 2, NULL, 0, 3, 0);
    struct metric_family *active = metrics_family(reg, "sip_dialogs_active", "Calls now.",
                                                  METRIC_GAUGE, st, 1, NULL, 0, 10, 0);
    struct metric_family *ser = metrics_family(
        reg, "sip_session_request_delay_seconds", "First INVITE to first provisional \\ final.",
        METRIC_HISTOGRAM, method_label, 1, delays, 12, 10, 0);
    struct metric_family *uaf =
        metrics_family(reg, "sip_user_agents_total", "Requests by User-Agent,\nescaped.",
                       METRIC_COUNTER, ua, 1, NULL, 0, 10, 0);
    metrics_family(reg, "sip_session_attempts_total", "Calls started.", METRIC_COUNTER, NULL, 0,
                   NULL, 0, 1, 0);
    metrics_collector(reg, "sipscope_build_info", "Build.", METRIC_GAUGE, bi, 3, 0, collect_build,
                      NULL);

    static const char *const codes[][2] = {
        {"INVITE", "200"}, {"INVITE", "180"}, {"BYE", "200"}, {"REGISTER", "401"}};
    for (int i = 0; i < 4; i++) {
        uint32_t k[2] = {sym(reg, codes[i][0]), sym(reg, codes[i][1])};
        metric_counter_add(metrics_series(resp, k), 10 + i);
    }
    uint32_t s = sym(reg, "confirmed");
    metric_gauge_set(metrics_series(active, &s), 3);
    s = sym(reg, "early");
    metric_gauge_set(metrics_series(active, &s), 0);
    s = sym(reg, "INVITE");
    struct metric_series *h = metrics_series(ser, &s);
    for (int i = 0; i < 50; i++)
        metric_histogram_observe(h, 0.003 * i);
    static const char agent[] = "Acme \"phone\" \\ v1\n\xff\xc3\xa9";
    uint32_t u = metrics_intern(reg, agent, sizeof agent - 1);
    metric_counter_add(metrics_series(uaf, &u), 1);
    return reg;
}

TEST(promtool_accepts_the_output_without_a_warning)
{
    const char *tool = getenv("SIPSCOPE_PROMTOOL");
    if (!tool || !*tool)
        tool = SIPSCOPE_PROMTOOL;
    if (!*tool || access(tool, X_OK) != 0)
        TEST_SKIP("promtool not found (%s)", *tool ? tool : "SIPSCOPE_PROMTOOL unset");

    struct metrics *reg = sample_registry();
    struct expo_buf b;
    char path[] = "/tmp/sipscope_expo_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    expo_buf_init(&b);
    CHECK_INT(expo_render(reg, 0, &b), 0);
    CHECK_INT(write(fd, b.data, b.len), b.len);
    close(fd);

    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' check metrics < '%s' 2>&1", tool, path);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    if (p) {
        char line[512];
        int lines = 0;
        while (fgets(line, sizeof line, p)) {
            TEST_FAIL_AT("promtool: %s", line);
            lines++;
        }
        int status = pclose(p);
        CHECK_INT(status, 0);
        CHECK_INT(lines, 0);
    }
    unlink(path);
    expo_buf_fini(&b);
    metrics_free(reg);
}

/* ---- threads ---- */

#define WRITER_ROUNDS 200000
#define WRITER_VALUES 400

struct shared {
    struct metrics *reg;
    struct metric_family *counts, *hist;
    int done;    /* relaxed atomic */
    int renders; /* relaxed atomic */
    int render_errors;
};

static void *writer(void *arg)
{
    struct shared *sh = arg;
    char v[16];

    /* Make sure renders overlap the writes: wait for the reader at the start and half way. */
    while (__atomic_load_n(&sh->renders, __ATOMIC_RELAXED) < 1)
        ;
    for (int i = 0; i < WRITER_ROUNDS; i++) {
        if (i == WRITER_ROUNDS / 2) {
            int seen = __atomic_load_n(&sh->renders, __ATOMIC_RELAXED);
            while (__atomic_load_n(&sh->renders, __ATOMIC_RELAXED) < seen + 2)
                ;
        }
        int n = snprintf(v, sizeof v, "v%03d", i % WRITER_VALUES);
        uint32_t k = metrics_intern(sh->reg, v, (size_t)n);
        metric_counter_add(metrics_series(sh->counts, &k), 1);
        metric_histogram_observe(metrics_series(sh->hist, &k), (i % 7) * 0.25);
        /* New families appear while the reader walks. */
        if (i % 20000 == 0) {
            char name[32];
            snprintf(name, sizeof name, "late_%d_total", i / 20000);
            struct metric_family *f =
                metrics_family(sh->reg, name, "Late.", METRIC_COUNTER, NULL, 0, NULL, 0, 1, 0);
            metric_counter_add(metrics_series(f, NULL), 1);
        }
    }
    __atomic_store_n(&sh->done, 1, __ATOMIC_RELAXED);
    return NULL;
}

static void *reader(void *arg)
{
    struct shared *sh = arg;
    struct expo_buf b;

    expo_buf_init(&b);
    while (!__atomic_load_n(&sh->done, __ATOMIC_RELAXED)) {
        if (expo_render(sh->reg, 0, &b) != 0)
            sh->render_errors++;
        __atomic_fetch_add(&sh->renders, 1, __ATOMIC_RELAXED);
    }
    expo_buf_fini(&b);
    return NULL;
}

TEST(rendering_while_the_writer_works_is_safe_and_loses_nothing)
{
    struct shared sh = {0};
    static const double b[] = {0.5, 1};
    pthread_t w, r;

    sh.reg = metrics_new(10000);
    sh.counts =
        metrics_family(sh.reg, "t_total", "T.", METRIC_COUNTER, method_label, 1, NULL, 0, 1000, 0);
    sh.hist =
        metrics_family(sh.reg, "t_seconds", "T.", METRIC_HISTOGRAM, method_label, 1, b, 2, 1000, 0);
    CHECK_INT(pthread_create(&r, NULL, reader, &sh), 0);
    CHECK_INT(pthread_create(&w, NULL, writer, &sh), 0);
    pthread_join(w, NULL);
    pthread_join(r, NULL);
    CHECK_INT(sh.render_errors, 0);
    CHECK(sh.renders >= 3);

    /* Every value got WRITER_ROUNDS / WRITER_VALUES = 500 adds and 500 observations. */
    int bad = 0;
    uint64_t hist_total = 0;
    for (int i = 0; i < WRITER_VALUES; i++) {
        char v[16];
        int n = snprintf(v, sizeof v, "v%03d", i);
        uint32_t k = metrics_symbol_find(sh.reg, v, (size_t)n);
        struct metric_series *s = metrics_series_find(sh.counts, &k);
        bad += !s || metric_value(s) != WRITER_ROUNDS / WRITER_VALUES;
        hist_total += metric_histogram_count(metrics_series_find(sh.hist, &k));
    }
    CHECK_INT(bad, 0);
    CHECK_INT(hist_total, WRITER_ROUNDS);

    /* v000 was observed at i = 400 k, k = 0..499, and i % 7 = k % 7 (400 % 7 = 1): residues
     * 0, 1, 2 came 72 times and 3 to 6 came 71 times (500 = 7 * 71 + 3). Observations are
     * 0.25 * residue: le 0.5 holds residues 0-2 (216), le 1 adds 3-4 (142), +Inf 5-6 (142).
     * Sum: 0.25 * (72 * (0+1+2) + 71 * (3+4+5+6)) = 0.25 * 1494 = 373.5, exact in binary. */
    struct expo_buf out;
    expo_buf_init(&out);
    CHECK_INT(expo_render(sh.reg, 0, &out), 0);
    CHECK(strstr(out.data, "\nt_total{method=\"v000\"} 500\n") != NULL);
    CHECK(strstr(out.data, "\nt_seconds_bucket{method=\"v000\",le=\"0.5\"} 216\n"
                           "t_seconds_bucket{method=\"v000\",le=\"1\"} 358\n"
                           "t_seconds_bucket{method=\"v000\",le=\"+Inf\"} 500\n"
                           "t_seconds_sum{method=\"v000\"} 373.5\n"
                           "t_seconds_count{method=\"v000\"} 500\n") != NULL);
    CHECK(strstr(out.data, "\nlate_9_total 1\n") != NULL);
    expo_buf_fini(&out);
    metrics_free(sh.reg);
}

TEST_MAIN()
