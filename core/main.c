/* main: command-line flags to an engine configuration, then the chosen job, and the loop that
 * serves until SIGTERM or SIGINT. Wiring only: every behaviour lives in the modules. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "config.h"
#include "engine.h"
#include "expo.h"
#include "http.h"
#include "log.h"
#include "portset.h"

#ifndef SIPSCOPE_VERSION
#define SIPSCOPE_VERSION "0.0.0"
#endif

/* Exit codes, documented in --help. */
enum exit_code {
    EXIT_OK = 0,
    EXIT_FAILURE_RUNTIME = 1, /* could not do the job: missing file, no memory... */
    EXIT_USAGE = 2,           /* wrong flags */
    EXIT_INPUT_DAMAGED = 3,   /* the job ran, but the input was cut short */
};

enum opt_id {
    OPT_READ = 256,
    OPT_PRINT,
    OPT_SIP_PORTS,
    OPT_MAX_CALLS,
    OPT_MAX_TRANSACTIONS,
    OPT_MAX_REGISTRATIONS,
    OPT_MAX_CALL_AGE,
    OPT_TIMER_T1,
    OPT_TIMER_B,
    OPT_TIMER_C,
    OPT_TIMER_F,
    OPT_LOG_LEVEL,
    OPT_WEB_LISTEN,
    OPT_WEB_LIFECYCLE,
    OPT_HELP,
    OPT_VERSION,
};

static const struct option options[] = {
    {"read", required_argument, NULL, OPT_READ},
    {"print", no_argument, NULL, OPT_PRINT},
    {"sip-ports", required_argument, NULL, OPT_SIP_PORTS},
    {"max-calls", required_argument, NULL, OPT_MAX_CALLS},
    {"max-transactions", required_argument, NULL, OPT_MAX_TRANSACTIONS},
    {"max-registrations", required_argument, NULL, OPT_MAX_REGISTRATIONS},
    {"max-call-age", required_argument, NULL, OPT_MAX_CALL_AGE},
    {"timer-t1", required_argument, NULL, OPT_TIMER_T1},
    {"timer-b", required_argument, NULL, OPT_TIMER_B},
    {"timer-c", required_argument, NULL, OPT_TIMER_C},
    {"timer-f", required_argument, NULL, OPT_TIMER_F},
    {"log.level", required_argument, NULL, OPT_LOG_LEVEL},
    {"web.listen-address", required_argument, NULL, OPT_WEB_LISTEN},
    {"web.enable-lifecycle", no_argument, NULL, OPT_WEB_LIFECYCLE},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: sipscope --read FILE [--print] [--web.listen-address ADDR] [options]\n"
            "\n"
            "sipscope tracks SIP transactions, calls and registrations and exports Prometheus\n"
            "metrics (RFC 6076 SER, SEER, ISA, SCR, delays, per-method and per-code counters).\n"
            "\n"
            "Input:\n"
            "  --read FILE              read a pcap or pcapng capture (\"-\" for stdin)\n"
            "  --sip-ports LIST         only these UDP/TCP ports, e.g. 5060,5062-5070\n"
            "                           (default offline: SIP is recognised on any port)\n"
            "Output:\n"
            "  --print                  print the metrics exposition after the whole file\n"
            "  --web.listen-address ADDR\n"
            "                           serve /metrics, /-/healthy, /-/ready on ADDR:\n"
            "                           \":PORT\" (every address, IPv4 and IPv6), \"IPV4:PORT\"\n"
            "                           or \"[IPV6]:PORT\"; port 0 picks a free port, logged\n"
            "                           as \"listening on ADDR:PORT\"\n"
            "                           [" HTTP_DEFAULT_LISTEN
            "; offline, only when given: the final\n"
            "                           metrics are then served until SIGTERM or SIGINT]\n"
            "  --web.enable-lifecycle   accept POST or PUT /-/reload (reloads like SIGHUP)\n"
            "Tracking (defaults in brackets):\n"
            "  --max-calls N            calls tracked at once [1000000]\n"
            "  --max-transactions N     transactions tracked at once [2000000]\n"
            "  --max-registrations N    bindings (and REGISTER attempts) [1000000]\n"
            "  --max-call-age DURATION  calls older than this end as max_age [4h]\n"
            "  --timer-t1 DURATION      RFC 3261 T1 [500ms]; lingering and retry windows are\n"
            "                           64*T1\n"
            "  --timer-b DURATION       INVITE without any response times out [64*T1 = 32s]\n"
            "  --timer-c DURATION       INVITE without a final after a provisional [180s]\n"
            "  --timer-f DURATION       non-INVITE without a final times out [64*T1 = 32s]\n"
            "  Durations: 500ms, 32s, 3m, 4h, 1h30m.\n"
            "Other:\n"
            "  --log.level LEVEL        error, warn, info or debug [info]\n"
            "  --help                   this text\n"
            "  --version                version\n"
            "\n"
            "Exit status: 0 done; 1 could not run (missing file, unsupported capture, no\n"
            "memory, address in use); 2 wrong flags; 3 ran, but the capture was cut short\n"
            "(metrics of what was read are still printed or served, and the cut is counted in\n"
            "sipscope_parse_errors_total). After SIGTERM or SIGINT, serving ends with the\n"
            "status of the job.\n");
}

struct cli {
    const char *read_path;
    int print;
    const char *listen_address; /* NULL: do not serve (offline) */
    int enable_lifecycle;
    struct portset ports;
    int have_ports;
    int timer_b_set, timer_f_set;
};

static int parse_args(int argc, char **argv, struct cli *cli, struct engine_config *cfg)
{
    char err[256];
    uint64_t v;
    int opt;

    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        int rc = 0;
        switch (opt) {
        case OPT_READ:
            cli->read_path = optarg;
            break;
        case OPT_PRINT:
            cli->print = 1;
            break;
        case OPT_SIP_PORTS:
            rc = portset_parse(&cli->ports, optarg, err, sizeof(err));
            cli->have_ports = 1;
            break;
        case OPT_MAX_CALLS:
            rc = config_parse_count(optarg, 1, 1u << 31, &v, err, sizeof(err));
            cfg->track.max_calls = (uint32_t)v;
            break;
        case OPT_MAX_TRANSACTIONS:
            rc = config_parse_count(optarg, 1, 1u << 31, &v, err, sizeof(err));
            cfg->track.max_transactions = (uint32_t)v;
            break;
        case OPT_MAX_REGISTRATIONS:
            rc = config_parse_count(optarg, 1, 1u << 31, &v, err, sizeof(err));
            cfg->track.max_registrations = (uint32_t)v;
            break;
        case OPT_MAX_CALL_AGE:
            rc = config_parse_duration(optarg, &cfg->track.max_call_age_ns, err, sizeof(err));
            break;
        case OPT_TIMER_T1:
            rc = config_parse_duration(optarg, &cfg->track.t1_ns, err, sizeof(err));
            if (!rc && cfg->track.t1_ns == 0) {
                snprintf(err, sizeof(err), "--timer-t1 must be above zero");
                rc = -EINVAL;
            }
            break;
        case OPT_TIMER_B:
            rc = config_parse_duration(optarg, &cfg->track.timer_b_ns, err, sizeof(err));
            cli->timer_b_set = 1;
            break;
        case OPT_TIMER_C:
            rc = config_parse_duration(optarg, &cfg->track.timer_c_ns, err, sizeof(err));
            break;
        case OPT_TIMER_F:
            rc = config_parse_duration(optarg, &cfg->track.timer_f_ns, err, sizeof(err));
            cli->timer_f_set = 1;
            break;
        case OPT_LOG_LEVEL: {
            enum log_level level;
            rc = log_level_parse(optarg, &level);
            if (rc)
                snprintf(err, sizeof(err), "invalid --log.level \"%s\": use error, warn, "
                         "info or debug", optarg);
            else
                log_set_level(level);
            break;
        }
        case OPT_WEB_LISTEN: {
            struct http_addr a;
            rc = http_addr_parse(optarg, &a, err, sizeof(err));
            cli->listen_address = optarg;
            break;
        }
        case OPT_WEB_LIFECYCLE:
            cli->enable_lifecycle = 1;
            break;
        case OPT_HELP:
            usage(stdout);
            exit(EXIT_OK);
        case OPT_VERSION:
            printf("sipscope %s\n", SIPSCOPE_VERSION);
            exit(EXIT_OK);
        case ':':
            fprintf(stderr, "sipscope: %s needs a value (see --help)\n", argv[optind - 1]);
            return -EINVAL;
        default:
            fprintf(stderr, "sipscope: unknown flag %s (see --help)\n", argv[optind - 1]);
            return -EINVAL;
        }
        if (rc) {
            fprintf(stderr, "sipscope: %s\n", err);
            return -EINVAL;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sipscope: unexpected argument \"%s\" (see --help)\n", argv[optind]);
        return -EINVAL;
    }
    /* Timers B and F default to 64*T1 (RFC 3261 §17.1.1.2, §17.1.2.2), also for a changed T1. */
    if (!cli->timer_b_set)
        cfg->track.timer_b_ns = 64 * cfg->track.t1_ns;
    if (!cli->timer_f_set)
        cfg->track.timer_f_ns = 64 * cfg->track.t1_ns;
    if (!cli->read_path) {
        fprintf(stderr, "sipscope: nothing to do: give --read FILE (see --help)\n");
        return -EINVAL;
    }
    return 0;
}

static int print_metrics(struct engine *e)
{
    struct expo_buf out;
    int rc;

    expo_buf_init(&out);
    rc = expo_render(engine_metrics(e), EXPO_DETERMINISTIC, &out);
    if (rc == 0 && fwrite(out.data, 1, out.len, stdout) != out.len)
        rc = -EIO;
    expo_buf_fini(&out);
    if (fflush(stdout) != 0)
        rc = -EIO;
    return rc;
}

/* --- Serving ---------------------------------------------------------------------------------- */

/* What the serve loop does besides waiting for a signal, all on the calling (engine) thread.
 * Live capture will add its tick here: advance the engine clock, publish kernel counters. */
struct serve_hooks {
    void *ctx;
    unsigned tick_ms; /* period of tick; 0 for none */
    void (*tick)(void *ctx);
    /* Reloads (SIGHUP, or /-/reload through the mailbox). Returns 0 or -errno with a reason in
     * msg[msglen]. */
    int (*reload)(void *ctx, char *msg, size_t msglen);
};

static void serve_reload(const struct serve_hooks *h, const char *why, struct http_reload *mb)
{
    char msg[256] = "";
    int rc = h->reload(h->ctx, msg, sizeof(msg));

    if (rc == 0)
        log_info("main", "reload (%s): %s", why, msg[0] ? msg : "done");
    else
        log_error("main", "reload (%s) failed: %s", why, msg[0] ? msg : strerror(-rc));
    if (mb)
        http_reload_done(mb, rc, msg);
}

/* Runs until SIGTERM or SIGINT: SIGHUP and reload requests from mailbox (may be NULL) call
 * hooks->reload, and hooks->tick runs every tick_ms. The three signals are blocked from here on
 * and read from a signalfd; the HTTP threads never receive them (http.h). Returns 0, or -errno
 * when the signals cannot be watched. */
static int serve_until_signal(struct http_reload *mailbox, const struct serve_hooks *h)
{
    struct pollfd fds[2];
    sigset_t set;
    int sfd, rc = 0;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        return -EINVAL;
    sfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (sfd < 0)
        return -errno;
    fds[0] = (struct pollfd){.fd = sfd, .events = POLLIN};
    fds[1] = (struct pollfd){.fd = mailbox ? http_reload_fd(mailbox) : -1, .events = POLLIN};
    for (;;) {
        int n = poll(fds, 2, h->tick_ms && h->tick ? (int)h->tick_ms : -1);
        if (n < 0 && errno != EINTR) {
            rc = -errno;
            break;
        }
        if (n == 0) {
            h->tick(h->ctx);
            continue;
        }
        if (fds[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                if (si.ssi_signo == SIGHUP) {
                    serve_reload(h, "SIGHUP", NULL);
                } else {
                    log_info("main", "%s: shutting down",
                             si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
                    break;
                }
            }
        }
        if ((fds[1].revents & POLLIN) && http_reload_take(mailbox))
            serve_reload(h, "/-/reload", mailbox);
    }
    close(sfd);
    return rc;
}

/* The offline job's state as the HTTP threads see it. */
struct offline {
    atomic_bool ready;           /* the whole file is processed */
    struct http_reload *mailbox; /* /-/reload handoff to the main thread */
};

static bool offline_ready(void *ctx)
{
    return atomic_load(&((struct offline *)ctx)->ready);
}

/* HTTP thread: hands the reload to the main thread and waits (http.h's contract). */
#define RELOAD_TIMEOUT_MS 30000

static int offline_reload_request(void *ctx, char *msg, size_t msglen)
{
    return http_reload_request(((struct offline *)ctx)->mailbox, RELOAD_TIMEOUT_MS, msg, msglen);
}

/* Main thread: there are no rules to reload yet. */
static int offline_reload(void *ctx, char *msg, size_t msglen)
{
    (void)ctx;
    snprintf(msg, msglen, "no rules loaded: nothing to reload");
    return 0;
}

int main(int argc, char **argv)
{
    struct cli cli = {0};
    struct engine_config cfg;
    struct engine *e;
    struct offline off = {0};
    struct http_server *srv = NULL;
    char err[512];
    int rc, status = EXIT_OK;

    engine_config_defaults(&cfg);
    if (parse_args(argc, argv, &cli, &cfg) != 0)
        return EXIT_USAGE;
    if (cli.have_ports)
        cfg.sip_ports = &cli.ports;
    e = engine_new(&cfg, err, sizeof(err));
    if (!e) {
        fprintf(stderr, "sipscope: %s\n", err);
        return EXIT_FAILURE_RUNTIME;
    }
    /* Listen before reading: a taken port fails at once, not after a long file, and /-/ready
     * tells when the metrics are final. While the file is read, SIGTERM and SIGINT still end
     * the process at once (their default action: engine_read_file cannot be interrupted, and
     * there is nothing to save); once serving, they stop it gracefully. */
    if (cli.listen_address) {
        struct http_config hc = {.listen_address = cli.listen_address,
                                 .enable_lifecycle = cli.enable_lifecycle,
                                 .version = SIPSCOPE_VERSION};
        struct http_hooks hooks = {
            .ctx = &off, .ready = offline_ready, .reload = offline_reload_request};
        off.mailbox = http_reload_new();
        if (!off.mailbox) {
            fprintf(stderr, "sipscope: cannot create the reload mailbox: %s\n", strerror(errno));
            engine_free(e);
            return EXIT_FAILURE_RUNTIME;
        }
        srv = http_start(&hc, engine_metrics(e), &hooks, err, sizeof(err));
        if (!srv) {
            fprintf(stderr, "sipscope: %s\n", err);
            status = EXIT_FAILURE_RUNTIME;
            goto out;
        }
    }
    rc = engine_read_file(e, cli.read_path, err, sizeof(err));
    if (rc == -EIO) {
        fprintf(stderr, "sipscope: %s: capture cut short: %s\n", cli.read_path, err);
        status = EXIT_INPUT_DAMAGED;
    } else if (rc < 0) {
        fprintf(stderr, "sipscope: %s\n", err);
        status = EXIT_FAILURE_RUNTIME;
        goto out;
    }
    if (cli.print && print_metrics(e) != 0) {
        fprintf(stderr, "sipscope: cannot write the metrics to standard output\n");
        status = EXIT_FAILURE_RUNTIME;
    }
    if (srv) {
        struct serve_hooks sh = {.ctx = &off, .reload = offline_reload};
        atomic_store(&off.ready, true);
        log_info("main", "%s processed; serving its metrics until SIGTERM or SIGINT",
                 cli.read_path);
        rc = serve_until_signal(off.mailbox, &sh);
        if (rc < 0) {
            fprintf(stderr, "sipscope: cannot watch signals: %s\n", strerror(-rc));
            status = EXIT_FAILURE_RUNTIME;
        }
    }
out:
    if (off.mailbox)
        http_reload_cancel(off.mailbox); /* a waiting /-/reload returns before http_stop */
    http_stop(srv);
    http_reload_free(off.mailbox);
    engine_free(e);
    return status;
}
