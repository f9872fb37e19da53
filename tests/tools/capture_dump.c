/* capture_dump: runs the live BPF capture for a while and prints one line per frame, then the
 * kernel counters. A debugging and measuring aid for capture_bpf; it does not decode frames.
 *
 *   capture_dump [-i IFACES] [-p PORTS] [-s SNAPLEN] [-b RINGBUF] [-w BACKLOG] [-t SECONDS] [-q]
 *
 * -q prints no frame lines, only totals: frames, frames per second and the CPU time this
 * process used (the consumer's cost). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "capture_bpf.h"

#define MAX_NAMES CAPTURE_BPF_MAX_IFACES

struct dump {
    struct capture_bpf *cap;
    bool quiet;
    uint64_t frames;
    uint64_t bytes;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static double now_s(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void on_frame(void *ctx, const struct capture_frame *f)
{
    struct dump *d = ctx;
    char name[64];

    d->frames++;
    d->bytes += f->caplen;
    if (d->quiet)
        return;
    if (capture_bpf_iface_name(d->cap, f->iface, name, sizeof(name)) != 0)
        snprintf(name, sizeof(name), "?");
    printf("%" PRIu64 ".%09" PRIu64 " iface=%" PRIu32 "(%s) dir=%u caplen=%" PRIu32
           " wirelen=%" PRIu32 "\n",
           f->ts_ns / 1000000000u, f->ts_ns % 1000000000u, f->iface, name, f->dir, f->caplen,
           f->wirelen);
}

/* Splits a comma-separated list in place. Returns the number of names. */
static size_t split_names(char *list, const char **names, size_t max)
{
    size_t n = 0;
    for (char *tok = strtok(list, ","); tok && n < max; tok = strtok(NULL, ","))
        names[n++] = tok;
    return n;
}

static void usage(void)
{
    fprintf(stderr, "usage: capture_dump [-i IFACES] [-p PORTS] [-s SNAPLEN] [-b RINGBUF] "
                    "[-w BACKLOG] [-t SECONDS] [-q]\n");
}

int main(int argc, char **argv)
{
    static struct portset ports;
    struct capture_bpf_iface_stats stats[64];
    struct capture_bpf_config cfg = {0};
    const char *names[MAX_NAMES];
    char *ifaces = NULL;
    const char *port_spec = "5060";
    double seconds = 5, t0, c0, elapsed, cpu;
    struct dump d = {0};
    char err[256];
    int opt, n, ret = 0;

    while ((opt = getopt(argc, argv, "i:p:s:b:w:t:q")) != -1) {
        switch (opt) {
        case 'i':
            ifaces = optarg;
            break;
        case 'p':
            port_spec = optarg;
            break;
        case 's':
            cfg.snaplen = (uint32_t)strtoul(optarg, NULL, 0);
            break;
        case 'b':
            cfg.ringbuf_size = (uint32_t)strtoul(optarg, NULL, 0);
            break;
        case 'w':
            cfg.wakeup_backlog = (uint32_t)strtoul(optarg, NULL, 0);
            break;
        case 't':
            seconds = strtod(optarg, NULL);
            break;
        case 'q':
            d.quiet = true;
            break;
        default:
            usage();
            return 2;
        }
    }
    if (portset_parse(&ports, port_spec, err, sizeof(err)) != 0) {
        fprintf(stderr, "capture_dump: %s\n", err);
        return 2;
    }
    cfg.ports = &ports;
    if (ifaces) {
        cfg.ifaces = names;
        cfg.n_ifaces = split_names(ifaces, names, MAX_NAMES);
    }

    d.cap = capture_bpf_open(&cfg, err, sizeof(err));
    if (!d.cap) {
        fprintf(stderr, "capture_dump: %s\n", err);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    /* Tell a script that the filter is attached: everything sent from now on is seen. */
    fprintf(stderr, "capture_dump: ready\n");

    t0 = now_s(CLOCK_MONOTONIC);
    c0 = cpu_s();
    while (!stop && now_s(CLOCK_MONOTONIC) - t0 < seconds) {
        int r = capture_bpf_poll(d.cap, CAPTURE_BPF_POLL_MS, on_frame, &d);
        if (r < 0 && r != -EINTR) {
            fprintf(stderr, "capture_dump: poll: %s\n", strerror(-r));
            ret = 1;
            break;
        }
    }
    /* Drain what is left (bounded: a full budget means more may be waiting). */
    for (int i = 0;
         i < 64 && capture_bpf_poll(d.cap, 0, on_frame, &d) == CAPTURE_BPF_DEFAULT_BUDGET; i++)
        ;
    elapsed = now_s(CLOCK_MONOTONIC) - t0;
    cpu = cpu_s() - c0;
    fflush(stdout);

    n = capture_bpf_counters(d.cap, stats, 64);
    for (int i = 0; i < n && i < 64; i++) {
        char name[64];
        if (capture_bpf_iface_name(d.cap, stats[i].iface, name, sizeof(name)) != 0)
            snprintf(name, sizeof(name), "?");
        printf("counters ifindex=%" PRIu32 "(%s) seen=%" PRIu64 " matched=%" PRIu64
               " ringbuf_full=%" PRIu64 " truncated=%" PRIu64 "\n",
               stats[i].ifindex, name, stats[i].seen, stats[i].matched, stats[i].ringbuf_full,
               stats[i].truncated);
    }
    printf("frames=%" PRIu64 " bytes=%" PRIu64 " seconds=%.3f rate=%.0f/s cpu=%.3fs (%.1f%%) "
           "bad_records=%" PRIu64 "\n",
           d.frames, d.bytes, elapsed, (double)d.frames / elapsed, cpu, 100.0 * cpu / elapsed,
           capture_bpf_bad_records(d.cap));
    capture_bpf_free(d.cap);
    return ret;
}
