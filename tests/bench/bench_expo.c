/* bench_expo: how long a scrape of 10,000 series takes to render, and what a lookup of an
 * existing series costs on the per-message path. Not a test: prints numbers only. */
#include "expo.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static __attribute__((format(printf, 2, 3))) uint32_t sym(struct metrics *reg, const char *fmt, ...)
{
    char v[32];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(v, sizeof v, fmt, ap);
    va_end(ap);
    return metrics_intern(reg, v, (size_t)n);
}

/* Renders reg `rounds` times and returns the best and mean milliseconds per render. */
static void time_render(const char *what, struct metrics *reg, int rounds)
{
    struct expo_buf b;
    double best = 1e300, total = 0;

    expo_buf_init(&b);
    expo_render(reg, 0, &b); /* warm: buffer grown, symbol ranks computed */
    for (int i = 0; i < rounds; i++) {
        double t0 = now_ns();
        if (expo_render(reg, 0, &b) != 0) {
            fprintf(stderr, "render failed\n");
            exit(1);
        }
        double dt = now_ns() - t0;
        total += dt;
        if (dt < best)
            best = dt;
    }
    printf("%-44s %7.3f ms best, %7.3f ms mean, %zu bytes\n", what, best / 1e6,
           total / rounds / 1e6, b.len);
    expo_buf_fini(&b);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 50;
    static const char *const labels3[] = {"method", "code", "carrier"};
    static const char *const labels1[] = {"trunk"};
    static const double delays[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30};

    /* 10 methods x 50 codes x 20 carriers = 10,000 counter series, integer values. */
    struct metrics *reg = metrics_new(100000);
    struct metric_family *resp = metrics_family(reg, "sip_responses_total", "Responses.",
                                                METRIC_COUNTER, labels3, 3, NULL, 0, 20000, 0);
    static uint32_t keys[10000][3];
    int n = 0;
    for (int m = 0; m < 10; m++)
        for (int c = 0; c < 50; c++)
            for (int k = 0; k < 20; k++, n++) {
                keys[n][0] = sym(reg, "METHOD%d", m);
                keys[n][1] = sym(reg, "%d", 100 + c * 11);
                keys[n][2] = sym(reg, "carrier-%d", (k * 7) % 20);
                metric_counter_add(metrics_series(resp, keys[n]), (double)(n * 37 % 100000));
            }
    time_render("10,000 counters (3 labels, integers)", reg, rounds);

    /* Lookup of existing series in a scrambled order, as messages would arrive. */
    static uint32_t order[1 << 20];
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        order[i] = (uint32_t)((i * 2654435761u) % 10000);
    uintptr_t sink = 0;
    double t0 = now_ns();
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        sink ^= (uintptr_t)metrics_series(resp, keys[order[i]]);
    double dt = now_ns() - t0;
    printf("%-44s %7.1f ns\n", "series lookup (3 labels, 10,000 series)",
           dt / (double)(sizeof order / sizeof order[0]));
    t0 = now_ns();
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        metric_counter_add(metrics_series(resp, keys[order[i]]), 1);
    dt = now_ns() - t0;
    printf("%-44s %7.1f ns\n", "lookup + counter add",
           dt / (double)(sizeof order / sizeof order[0]));
    t0 = now_ns();
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        sink ^= (uintptr_t)metrics_series(resp, keys[order[i] & 15]);
    dt = now_ns() - t0;
    printf("%-44s %7.1f ns\n", "series lookup (16 hot series)",
           dt / (double)(sizeof order / sizeof order[0]));
    metrics_free(reg);

    /* 10,000 gauges with fractional values: every number takes the %g round-trip path. */
    reg = metrics_new(100000);
    struct metric_family *g =
        metrics_family(reg, "sip_x_ratio", "Ratios.", METRIC_GAUGE, labels1, 1, NULL, 0, 20000, 0);
    for (int i = 0; i < 10000; i++) {
        uint32_t k = sym(reg, "trunk-%05d", (i * 7919) % 10000);
        metric_gauge_set(metrics_series(g, &k), 1.0 / (i + 3));
    }
    time_render("10,000 gauges (1 label, fractions)", reg, rounds);
    metrics_free(reg);

    /* 1,000 histograms of 12 buckets: 15,000 lines. */
    reg = metrics_new(100000);
    struct metric_family *h = metrics_family(reg, "sip_delay_seconds", "Delays.", METRIC_HISTOGRAM,
                                             labels1, 1, delays, 12, 20000, 0);
    for (int i = 0; i < 1000; i++) {
        uint32_t k = sym(reg, "trunk-%04d", i);
        struct metric_series *s = metrics_series(h, &k);
        for (int j = 0; j < 20; j++)
            metric_histogram_observe(s, 0.001 * (i + 1) * (j + 1));
    }
    time_render("1,000 histograms x 12 buckets (15,000 lines)", reg, rounds);
    metrics_free(reg);
    return sink == 1 ? 1 : 0;
}
