/* main: command-line flags to an engine configuration, then the chosen job. Wiring only: every
 * behaviour lives in the modules. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "engine.h"
#include "expo.h"
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
    OPT_MAX_TCP_STREAMS,
    OPT_REASM_MAX_BYTES,
    OPT_MAX_CALL_AGE,
    OPT_TIMER_T1,
    OPT_TIMER_B,
    OPT_TIMER_C,
    OPT_TIMER_F,
    OPT_LOG_LEVEL,
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
    {"max-tcp-streams", required_argument, NULL, OPT_MAX_TCP_STREAMS},
    {"reasm-max-bytes", required_argument, NULL, OPT_REASM_MAX_BYTES},
    {"max-call-age", required_argument, NULL, OPT_MAX_CALL_AGE},
    {"timer-t1", required_argument, NULL, OPT_TIMER_T1},
    {"timer-b", required_argument, NULL, OPT_TIMER_B},
    {"timer-c", required_argument, NULL, OPT_TIMER_C},
    {"timer-f", required_argument, NULL, OPT_TIMER_F},
    {"log.level", required_argument, NULL, OPT_LOG_LEVEL},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: sipscope --read FILE --print [options]\n"
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
            "Reassembly:\n"
            "  --max-tcp-streams N      TCP streams tracked at once, one per direction of a\n"
            "                           connection; the least recently active is evicted\n"
            "                           [100000]\n"
            "  --reasm-max-bytes SIZE   bytes held for IP fragment reassembly, and as much\n"
            "                           again for TCP stream buffers (partial messages,\n"
            "                           out-of-order segments) [64MiB]\n"
            "  Fixed: IP fragments wait 30s, at most 4096 datagrams at once; a TCP stream\n"
            "  idle for 300s is dropped; one message is at most 65535 bytes (a longer one on\n"
            "  TCP is tracked from its headers, its body skipped).\n"
            "Other:\n"
            "  --log.level LEVEL        error, warn, info or debug [info]\n"
            "  --help                   this text\n"
            "  --version                version\n"
            "\n"
            "Exit status: 0 done; 1 could not run (missing file, unsupported capture, no\n"
            "memory); 2 wrong flags; 3 ran, but the capture was cut short (metrics of what was\n"
            "read are still printed, and the cut is counted in sipscope_parse_errors_total).\n");
}

struct cli {
    const char *read_path;
    int print;
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
        case OPT_MAX_TCP_STREAMS:
            rc = config_parse_count(optarg, 1, 1u << 31, &v, err, sizeof(err));
            cfg->tcp.max_streams = (uint32_t)v;
            break;
        case OPT_REASM_MAX_BYTES:
            rc = config_parse_size(optarg, &v, err, sizeof(err));
            if (!rc && v < 65536) {
                snprintf(err, sizeof(err), "--reasm-max-bytes must be at least 64KiB");
                rc = -EINVAL;
            }
            cfg->reasm.max_bytes = v;
            cfg->tcp.max_bytes = v;
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

int main(int argc, char **argv)
{
    struct cli cli = {0};
    struct engine_config cfg;
    struct engine *e;
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
    rc = engine_read_file(e, cli.read_path, err, sizeof(err));
    if (rc == -EIO) {
        fprintf(stderr, "sipscope: %s: capture cut short: %s\n", cli.read_path, err);
        status = EXIT_INPUT_DAMAGED;
    } else if (rc < 0) {
        fprintf(stderr, "sipscope: %s\n", err);
        engine_free(e);
        return EXIT_FAILURE_RUNTIME;
    }
    if (cli.print && print_metrics(e) != 0) {
        fprintf(stderr, "sipscope: cannot write the metrics to standard output\n");
        status = EXIT_FAILURE_RUNTIME;
    }
    engine_free(e);
    return status;
}
