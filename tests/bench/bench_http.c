/* bench_http: what a scrape costs. For the registry of a real capture (when a file is given)
 * and for 10,000 synthetic series: render time, gzip (level 1) time, sizes, and the latency of
 * whole scrapes over loopback on one keep-alive connection. Not a test: prints numbers only.
 *
 * --cpu times render and gzip with the thread's CPU clock instead of the wall clock, so that
 * time spent descheduled on a busy machine is not counted (scrapes are always wall time).
 *
 * Usage: bench_http [--cpu] [CAPTURE] [ROUNDS] */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "engine.h"
#include "expo.h"
#include "http.h"
#include "log.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static clockid_t work_clock = CLOCK_MONOTONIC; /* render and gzip */

static double work_ns(void)
{
    struct timespec ts;
    clock_gettime(work_clock, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *what, double *t, int n, const char *extra)
{
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += t[i];
    qsort(t, (size_t)n, sizeof(*t), cmp_double);
    printf("  %-22s median %7.3f ms  p99 %7.3f ms  mean %7.3f ms%s\n", what, t[n / 2] / 1e6,
           t[(n * 99) / 100] / 1e6, sum / n / 1e6, extra);
}

/* Reads one response (headers, then Content-Length bytes) into buf; returns the body length. */
static long read_one(int fd, char *buf, size_t cap)
{
    size_t have = 0;
    char *end = NULL;
    long want = -1;

    for (;;) {
        ssize_t n = recv(fd, buf + have, cap - 1 - have, 0);
        if (n <= 0)
            return -1;
        have += (size_t)n;
        buf[have] = '\0';
        if (!end && (end = strstr(buf, "\r\n\r\n")) != NULL) {
            char *cl = strcasestr(buf, "\r\nContent-Length:");
            if (!cl || cl > end)
                return -1;
            want = strtol(cl + 17, NULL, 10);
        }
        if (end && (long)(have - (size_t)(end + 4 - buf)) >= want)
            return want;
        if (have == cap - 1)
            return -1;
    }
}

static void bench_scrapes(struct metrics *reg, int rounds)
{
    struct http_config cfg = {.listen_address = "127.0.0.1:0"};
    char err[256];
    struct http_server *srv = http_start(&cfg, reg, NULL, err, sizeof(err));
    static char buf[64 << 20];
    double *t = calloc((size_t)rounds, sizeof(double));

    if (!srv) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    for (int gz = 0; gz < 2; gz++) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(http_port(srv))};
        char req[128], extra[64];
        long len = 0;
        int fd = socket(AF_INET, SOCK_STREAM, 0);

        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
            perror("connect");
            exit(1);
        }
        snprintf(req, sizeof(req), "GET /metrics HTTP/1.1\r\nHost: x\r\n%s\r\n",
                 gz ? "Accept-Encoding: gzip\r\n" : "");
        for (int i = -3; i < rounds; i++) { /* 3 warm-up scrapes */
            double t0 = now_ns();
            if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0 ||
                (len = read_one(fd, buf, sizeof(buf))) < 0) {
                fprintf(stderr, "scrape failed\n");
                exit(1);
            }
            if (i >= 0)
                t[i] = now_ns() - t0;
        }
        close(fd);
        snprintf(extra, sizeof(extra), "  (%ld bytes)", len);
        report(gz ? "scrape, gzip" : "scrape, identity", t, rounds, extra);
    }
    http_stop(srv);
    free(t);
}

static void bench(const char *title, struct metrics *reg, int rounds)
{
    struct expo_buf b;
    z_stream zs = {0};
    unsigned char *gz;
    size_t cap;
    double *t = calloc((size_t)rounds, sizeof(double));
    char extra[64];

    printf("%s\n", title);
    expo_buf_init(&b);
    expo_render(reg, 0, &b); /* warm: buffer grown, symbol ranks computed */
    for (int i = 0; i < rounds; i++) {
        double t0 = work_ns();
        expo_render(reg, 0, &b);
        t[i] = work_ns() - t0;
    }
    snprintf(extra, sizeof(extra), "  (%zu bytes)", b.len);
    report("render", t, rounds, extra);

    /* The same deflate set-up as http.c: gzip wrapper, level 1, reset between scrapes. */
    deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    cap = deflateBound(&zs, (uLong)b.len);
    gz = malloc(cap);
    for (int i = 0; i < rounds; i++) {
        double t0 = work_ns();
        deflateReset(&zs);
        zs.next_in = (Bytef *)b.data;
        zs.avail_in = (uInt)b.len;
        zs.next_out = gz;
        zs.avail_out = (uInt)cap;
        if (deflate(&zs, Z_FINISH) != Z_STREAM_END) {
            fprintf(stderr, "deflate failed\n");
            exit(1);
        }
        t[i] = work_ns() - t0;
    }
    snprintf(extra, sizeof(extra), "  (%lu bytes, %.1f%%)", (unsigned long)zs.total_out,
             100.0 * (double)zs.total_out / (double)b.len);
    report("gzip level 1", t, rounds, extra);
    deflateEnd(&zs);
    free(gz);
    expo_buf_fini(&b);
    free(t);
    bench_scrapes(reg, rounds);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--cpu") == 0) {
        work_clock = CLOCK_THREAD_CPUTIME_ID;
        argv++;
        argc--;
    }
    int rounds = argc > 2 ? atoi(argv[2]) : 200;
    static const char *const labels3[] = {"method", "code", "carrier"};

    log_set_level(LOG_WARN);
    if (argc > 1 && argv[1][0]) {
        struct engine_config cfg;
        struct engine *e;
        char err[256], title[512];

        engine_config_defaults(&cfg);
        e = engine_new(&cfg, err, sizeof(err));
        if (!e || engine_read_file(e, argv[1], err, sizeof(err)) < 0) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        snprintf(title, sizeof(title), "registry of %s", argv[1]);
        bench(title, engine_metrics(e), rounds);
        engine_free(e);
    }

    /* 10 methods x 50 codes x 20 carriers = 10,000 counter series (as bench_expo). */
    struct metrics *reg = metrics_new(100000);
    struct metric_family *resp = metrics_family(reg, "sip_responses_total", "Responses.",
                                                METRIC_COUNTER, labels3, 3, NULL, 0, 20000, 0);
    int n = 0;
    for (int m = 0; m < 10; m++)
        for (int c = 0; c < 50; c++)
            for (int k = 0; k < 20; k++, n++) {
                char v[3][32];
                uint32_t key[3];
                int l0 = snprintf(v[0], sizeof(v[0]), "METHOD%d", m);
                int l1 = snprintf(v[1], sizeof(v[1]), "%d", 100 + c * 11);
                int l2 = snprintf(v[2], sizeof(v[2]), "carrier-%d", (k * 7) % 20);
                key[0] = metrics_intern(reg, v[0], (size_t)l0);
                key[1] = metrics_intern(reg, v[1], (size_t)l1);
                key[2] = metrics_intern(reg, v[2], (size_t)l2);
                metric_counter_add(metrics_series(resp, key), (double)(n * 37 % 100000));
            }
    bench("10,000 counters (3 labels)", reg, rounds);
    metrics_free(reg);
    return 0;
}
