/* main: command-line flags to an engine configuration, then the chosen job. Wiring only: every
 * behaviour lives in the modules. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "engine.h"
#include "expo.h"
#include "log.h"
#include "lua_bridge.h"
#include "portset.h"

#ifndef SIPSCOPE_VERSION
#define SIPSCOPE_VERSION "0.0.0"
#endif
#ifndef SIPSCOPE_LUA_DIR
#define SIPSCOPE_LUA_DIR "/usr/share/sipscope/lua"
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
    OPT_RULES,
    OPT_EVENTS,
    OPT_LUA_MEMORY,
    OPT_RULE_BUDGET,
    OPT_MAX_SERIES,
    OPT_CHECK_RULES,
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
    {"rules", required_argument, NULL, OPT_RULES},
    {"events", required_argument, NULL, OPT_EVENTS},
    {"lua-memory", required_argument, NULL, OPT_LUA_MEMORY},
    {"rule-budget", required_argument, NULL, OPT_RULE_BUDGET},
    {"max-series", required_argument, NULL, OPT_MAX_SERIES},
    {"check-rules", required_argument, NULL, OPT_CHECK_RULES},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: sipscope --read FILE --print [options]\n"
            "       sipscope --check-rules DIR\n"
            "       sipscope --lua-script FILE [ARGS...]\n"
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
            "  --events FILE            one JSON line per finished call (CDR) and per\n"
            "                           registration change (\"-\" for standard output)\n"
            "Rules (Lua):\n"
            "  --rules DIR              load DIR/*.lua (not *_spec.lua) in name order;\n"
            "                           SIGHUP reloads them\n"
            "  --check-rules DIR        load and validate DIR's rules, print them, exit 0/1\n"
            "  --lua-memory SIZE        Lua heap cap, e.g. 64MiB [64MiB]\n"
            "  --rule-budget DURATION   longest one rule call may run [5ms]\n"
            "  --max-series N           series cap of each rule metric family [1000]\n"
            "  --lua-script FILE ARGS   run a trusted Lua script (first flag only): the test\n"
            "                           harness, e.g. busted specs\n"
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
            "memory); 2 wrong flags; 3 ran, but the capture was cut short (metrics of what was\n"
            "read are still printed, and the cut is counted in sipscope_parse_errors_total).\n");
}

struct cli {
    const char *read_path;
    const char *check_rules;
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
        case OPT_RULES:
            cfg->rules.rules_dir = optarg;
            break;
        case OPT_CHECK_RULES:
            cli->check_rules = optarg;
            cfg->rules.rules_dir = optarg;
            break;
        case OPT_EVENTS:
            cfg->events_path = optarg;
            break;
        case OPT_LUA_MEMORY:
            rc = config_parse_size(optarg, &cfg->rules.memory_limit, err, sizeof(err));
            if (!rc && cfg->rules.memory_limit < (1u << 20)) {
                snprintf(err, sizeof(err), "--lua-memory must be at least 1MiB");
                rc = -EINVAL;
            }
            break;
        case OPT_RULE_BUDGET:
            rc = config_parse_duration(optarg, &cfg->rules.budget_ns, err, sizeof(err));
            if (!rc && cfg->rules.budget_ns < 100000) {
                snprintf(err, sizeof(err), "--rule-budget must be at least 100us");
                rc = -EINVAL;
            }
            break;
        case OPT_MAX_SERIES:
            rc = config_parse_count(optarg, 1, 1000000, &v, err, sizeof(err));
            cfg->rules.max_series = (uint32_t)v;
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
    if (!cli->read_path && !cli->check_rules) {
        fprintf(stderr, "sipscope: nothing to do: give --read FILE (see --help)\n");
        return -EINVAL;
    }
    return 0;
}

/* --check-rules DIR: build an engine with the rules (every declaration is checked against the
 * real built-in families) and describe them; no traffic. */
static int check_rules(struct engine_config *cfg)
{
    char err[1024];
    struct engine *e;
    int n;

    cfg->track.max_calls = cfg->track.max_transactions = cfg->track.max_registrations = 1;
    e = engine_new(cfg, err, sizeof(err));
    if (!e) {
        fprintf(stderr, "sipscope: %s\n", err);
        return EXIT_FAILURE_RUNTIME;
    }
    n = engine_describe_rules(e, stdout);
    printf("%d rule%s OK\n", n, n == 1 ? "" : "s");
    engine_free(e);
    return EXIT_OK;
}

static struct engine *hup_engine; /* the engine SIGHUP reloads */

static void on_sighup(int sig)
{
    (void)sig;
    if (hup_engine)
        engine_request_reload(hup_engine);
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

    if (argc >= 2 && strcmp(argv[1], "--lua-script") == 0) {
        if (argc < 3) {
            fprintf(stderr, "sipscope: --lua-script needs a FILE (see --help)\n");
            return EXIT_USAGE;
        }
        return lua_bridge_run_script(argv[2], argc - 3, argv + 3, SIPSCOPE_LUA_DIR);
    }
    engine_config_defaults(&cfg);
    if (parse_args(argc, argv, &cli, &cfg) != 0)
        return EXIT_USAGE;
    if (cli.have_ports)
        cfg.sip_ports = &cli.ports;
    if (cli.check_rules)
        return check_rules(&cfg);
    e = engine_new(&cfg, err, sizeof(err));
    if (!e) {
        fprintf(stderr, "sipscope: %s\n", err);
        return EXIT_FAILURE_RUNTIME;
    }
    if (cfg.rules.rules_dir) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_sighup;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        hup_engine = e;
        sigaction(SIGHUP, &sa, NULL);
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
    hup_engine = NULL;
    engine_free(e);
    return status;
}
