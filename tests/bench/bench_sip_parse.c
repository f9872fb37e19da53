/* bench_sip_parse: nanoseconds per sip_parse call on typical messages (the fixtures), datagram
 * mode as UDP traffic uses it. Each message is parsed N times per run, the fixtures in turn;
 * the median (and the min, the better figure on a shared machine) of several runs is printed. Build in Release for numbers:
 * the target is <= 150 ns per message. --cpu times with the thread's CPU clock instead of the
 * wall clock, so that time spent descheduled on a busy machine is not counted.
 *
 * --only FIXTURE (e.g. invite_sdp.sip) parses that fixture alone, for a profiler.
 *
 *   bench_sip_parse [--cpu] [--only FIXTURE] [iterations [runs]] */
#include "sip_parse.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_RUNS 99

static volatile uint64_t sink; /* keeps the parses from being optimised away */

static size_t load(const char *name, char *buf, size_t cap)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/tests/fixtures/sip/%s", SIPSCOPE_SOURCE_DIR, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(1);
    }
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

static clockid_t clock_id = CLOCK_MONOTONIC;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(clock_id, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    static const char *const files[] = {"invite_sdp.sip", "ok_200.sip", "register.sip", "bye.sip"};
    static const char *const labels[] = {"INVITE+SDP", "200 OK+SDP", "REGISTER", "BYE"};
    static struct sip_header hdrs[SIP_MAX_HEADERS];
    const char *only = NULL; /* one fixture, so that a profiler sees it alone */
    for (;;) {
        if (argc > 1 && strcmp(argv[1], "--cpu") == 0) {
            clock_id = CLOCK_THREAD_CPUTIME_ID;
            argv++;
            argc--;
        } else if (argc > 2 && strcmp(argv[1], "--only") == 0) {
            only = argv[2];
            argv += 2;
            argc -= 2;
        } else {
            break;
        }
    }
    long iters = argc > 1 ? atol(argv[1]) : 1000000;
    int runs_n = argc > 2 ? atoi(argv[2]) : 9;
    if (iters < 1 || runs_n < 1 || runs_n > MAX_RUNS) {
        fprintf(stderr,
                "usage: bench_sip_parse [--cpu] [--only FIXTURE] [iterations [runs (1..%d)]]\n",
                MAX_RUNS);
        return 2;
    }
    enum { N_FIXTURES = sizeof(files) / sizeof(files[0]) };
    static char bufs[N_FIXTURES][8192];
    size_t lens[N_FIXTURES];
    unsigned n_headers[N_FIXTURES];
    bool used[N_FIXTURES];
    static double runs[N_FIXTURES][MAX_RUNS];
    double total = 0;
    int done = 0;

    for (size_t f = 0; f < N_FIXTURES; f++) {
        struct sip_msg m;
        used[f] = !only || strcmp(only, files[f]) == 0;
        if (!used[f])
            continue;
        lens[f] = load(files[f], bufs[f], sizeof(bufs[f]));
        if (sip_parse(bufs[f], lens[f], SIP_PARSE_DATAGRAM, &m, hdrs, SIP_MAX_HEADERS) !=
            (int)lens[f]) {
            fprintf(stderr, "%s does not parse\n", files[f]);
            return 1;
        }
        n_headers[f] = m.n_headers;
        done++;
    }
    /* Round robin over the fixtures, run after run: on a shared machine whose speed drifts for
     * seconds at a time, each fixture then sees the same mix of slow and fast moments. */
    for (int r = 0; r < runs_n; r++) {
        for (size_t f = 0; f < N_FIXTURES; f++) {
            if (!used[f])
                continue;
            struct sip_msg m;
            uint64_t acc = 0;
            double t0 = now_ns();
            for (long i = 0; i < iters; i++) {
                int rc = sip_parse(bufs[f], lens[f], SIP_PARSE_DATAGRAM, &m, hdrs, SIP_MAX_HEADERS);
                acc += (uint64_t)rc + m.cseq + m.via_branch.len + m.to_tag.len;
            }
            runs[f][r] = (now_ns() - t0) / (double)iters;
            sink += acc;
        }
    }
    for (size_t f = 0; f < N_FIXTURES; f++) {
        if (!used[f])
            continue;
        qsort(runs[f], (size_t)runs_n, sizeof(runs[f][0]), cmp_double);
        printf(
            "%-12s %4zu bytes %3u headers  %6.1f ns/msg (median of %d x %ld; min %.1f max %.1f)\n",
            labels[f], lens[f], n_headers[f], runs[f][runs_n / 2], runs_n, iters, runs[f][0],
            runs[f][runs_n - 1]);
        total += runs[f][runs_n / 2];
    }
    if (done == 0) {
        fprintf(stderr, "no fixture named %s\n", only);
        return 2;
    }
    printf("mean of medians: %.1f ns/msg\n", total / done);
    return 0;
}
