/* main: command-line flags to an engine configuration, then the chosen job, and the loop that
 * serves until SIGTERM or SIGINT. Wiring only: every behaviour lives in the modules. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "call_cdr.h"
#include "capture_bpf.h"
#include "config.h"
#include "decode.h"
#include "dedup.h"
#include "engine.h"
#include "expo.h"
#include "http.h"
#include "log.h"
#include "lua_bridge.h"
#include "portset.h"
#include "service.h"
#include "slice.h"

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
    EXIT_INPUT_DAMAGED = 3,   /* the job ran, but the input was cut short or unreadable */
    EXIT_SIGNAL_BASE = 128,   /* + a signal's number: it stopped the job (end_by_signal) */
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
    OPT_WEB_LISTEN,
    OPT_INTERFACE,
    OPT_SNAPLEN,
    OPT_DECAPSULATE,
    OPT_RINGBUF_SIZE,
    OPT_PROMISC,
    OPT_DEDUP_WINDOW,
    OPT_WEB_LIFECYCLE,
    OPT_RULES,
    OPT_EVENTS,
    OPT_EVENTS_FIELDS,
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
    {"max-tcp-streams", required_argument, NULL, OPT_MAX_TCP_STREAMS},
    {"reasm-max-bytes", required_argument, NULL, OPT_REASM_MAX_BYTES},
    {"max-call-age", required_argument, NULL, OPT_MAX_CALL_AGE},
    {"timer-t1", required_argument, NULL, OPT_TIMER_T1},
    {"timer-b", required_argument, NULL, OPT_TIMER_B},
    {"timer-c", required_argument, NULL, OPT_TIMER_C},
    {"timer-f", required_argument, NULL, OPT_TIMER_F},
    {"log.level", required_argument, NULL, OPT_LOG_LEVEL},
    {"web.listen-address", required_argument, NULL, OPT_WEB_LISTEN},
    {"interface", required_argument, NULL, OPT_INTERFACE},
    {"snaplen", required_argument, NULL, OPT_SNAPLEN},
    {"decapsulate", required_argument, NULL, OPT_DECAPSULATE},
    {"ringbuf-size", required_argument, NULL, OPT_RINGBUF_SIZE},
    {"promisc", no_argument, NULL, OPT_PROMISC},
    {"dedup-window", required_argument, NULL, OPT_DEDUP_WINDOW},
    {"web.enable-lifecycle", no_argument, NULL, OPT_WEB_LIFECYCLE},
    {"rules", required_argument, NULL, OPT_RULES},
    {"events", required_argument, NULL, OPT_EVENTS},
    {"events-fields", required_argument, NULL, OPT_EVENTS_FIELDS},
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
            "Usage: sipscope [--interface LIST] [--sip-ports LIST] [options]   (live)\n"
            "       sipscope --read FILE [--print] [--web.listen-address ADDR] [--events FILE]\n"
            "                [options]   (one of the three at least)\n"
            "       sipscope --check-rules DIR\n"
            "       sipscope --lua-script FILE [ARGS...]\n"
            "\n"
            "sipscope tracks SIP transactions, calls and registrations and exports Prometheus\n"
            "metrics (RFC 6076 SER, SEER, ISA, SCR, delays, per-method and per-code counters).\n"
            "Live, an eBPF socket filter picks SIP out of the traffic and /metrics is served on\n"
            "the listen address; offline, a capture file is read as fast as possible.\n"
            "\n"
            "Live capture (needs CAP_BPF, CAP_PERFMON and CAP_NET_RAW, or root; all capabilities\n"
            "are dropped once the capture is attached):\n"
            "  --interface LIST         interfaces, e.g. eth0,eth1, or \"any\" [any]\n"
            "  --sip-ports LIST         UDP/TCP ports, e.g. 5060,5062-5070 [5060]; offline the\n"
            "                           default is to recognise SIP on any port by its start line\n"
            "  --snaplen BYTES          bytes kept per packet, 128-262144 [262144: whole\n"
            "                           loopback and GRO frames]\n"
            "  --ringbuf-size SIZE      kernel ring buffer, a power of two [16MiB]\n"
            "  --promisc                the named interfaces in promiscuous mode while sipscope\n"
            "                           captures them, for a mirror (SPAN) port [off]\n"
            "Live and offline:\n"
            "  --decapsulate LIST       read SIP inside these [off]:\n"
            "                           vxlan (to UDP port 4789 or 8472) and gre (IP,\n"
            "                           Ethernet, ERSPAN; \"erspan\" says the same), for\n"
            "                           mirrored traffic; not on a host that ends such\n"
            "                           tunnels itself, where \"any\" would count twice;\n"
            "                           hep: HEPv3 to UDP port 9060, the copies proxies and\n"
            "                           PBXs send to HOMER (one agent per hop)\n"
            "  --dedup-window DURATION  drop a packet that copies one captured this recently:\n"
            "                           one packet seen on a bridge and on its port, on a\n"
            "                           VLAN and its parent, a bond and its slave, before\n"
            "                           and after NAT, twice from a mirror or from two HEP\n"
            "                           agents (sipscope_capture_duplicates_total); 0 keeps\n"
            "                           every copy; below --timer-t1, so that no\n"
            "                           retransmission is taken for a copy [10ms, at most\n"
            "                           half of --timer-t1, live on \"any\", several\n"
            "                           interfaces, --promisc or --decapsulate; else 0, and\n"
            "                           with --read, which reads a file as it was captured]\n"
            "Offline:\n"
            "  --read FILE              read a pcap or pcapng capture (\"-\" for stdin; a\n"
            "                           compressed one: zcat FILE.gz | sipscope --read -)\n"
            "  --print                  print the metrics exposition after the whole file\n"
            "                           (not with --events -, which writes there too)\n"
            "HTTP:\n"
            "  --web.listen-address ADDR\n"
            "                           serve /metrics, /-/healthy, /-/ready on ADDR:\n"
            "                           \":PORT\" (every address, IPv4 and IPv6), \"IPV4:PORT\"\n"
            "                           or \"[IPV6]:PORT\"; port 0 picks a free port, logged\n"
            "                           as \"listening on ADDR:PORT\"\n"
            "                           [" HTTP_DEFAULT_LISTEN
            "; offline, only when given: the final\n"
            "                           metrics are then served until SIGTERM or SIGINT;\n"
            "                           /metrics and /-/ready answer 503 while the file is\n"
            "                           read]\n"
            "  --web.enable-lifecycle   accept POST or PUT /-/reload (reloads like SIGHUP)\n"
            "Rules (Lua) and events:\n"
            "  --rules DIR              load DIR/*.lua (not *_spec.lua) in name order; SIGHUP\n"
            "                           reloads them [none: no rules run]\n"
            "  --check-rules DIR        load and validate DIR's rules, list them, exit 0 or 1\n"
            "                           (no job: not with --read, --print, --events, --rules\n"
            "                           or the web flags)\n"
            "  --lua-memory SIZE        Lua heap cap [64MiB]\n"
            "  --rule-budget DURATION   CPU time one rule call may use, 100us to 5s [5ms]\n"
            "  --max-series N           series cap of each rule metric family [1000]\n"
            "  --events FILE            one JSON line per finished call (CDR) and per\n"
            "                           registration change (\"-\": standard output); live,\n"
            "                           appended to; with --read, truncated first (the\n"
            "                           capture itself is refused)\n"
            "  --events-fields LIST     what call lines say of the signalling: all, none, or\n"
            "                           some of src_ip, src_port, dst_ip, dst_port,\n"
            "                           transport, user_agent, server, pdd, codec, hangup,\n"
            "                           q850 (comma-separated) [all]\n"
            "  --lua-script FILE ARGS   (first flag only) run a trusted Lua script in this\n"
            "                           binary's LuaJIT: the rule test harness, busted specs\n"
            "Tracking (defaults in brackets):\n"
            "  --max-calls N            calls tracked at once [1000000]\n"
            "  --max-transactions N     transactions tracked at once [2000000]\n"
            "  --max-registrations N    bindings (and REGISTER attempts) [1000000]\n"
            "  --max-call-age DURATION  calls older than this end as max_age [4h]; there is\n"
            "                           no \"no limit\": a long one is 30d\n"
            "  --timer-t1 DURATION      RFC 3261 T1 [500ms]; lingering and retry windows are\n"
            "                           64*T1\n"
            "  --timer-b DURATION       INVITE without any response times out [64*T1 = 32s]\n"
            "  --timer-c DURATION       INVITE without a final after a provisional [180s]\n"
            "  --timer-f DURATION       non-INVITE without a final times out [64*T1 = 32s]\n"
            "  Durations: 500ms, 32s, 3m, 4h, 1h30m (each unit once, the largest first);\n"
            "  these are above zero and at most 365d.\n"
            "Reassembly:\n"
            "  --max-tcp-streams N      TCP streams tracked at once, one per direction of a\n"
            "                           connection; the least recently active is evicted,\n"
            "                           streams that never carried data first [100000]\n"
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
            "  A LIST is comma-separated, each item once (a port in two ranges is twice).\n"
            "\n"
            "Signals: SIGHUP reloads the rules and opens the --events file again (after a\n"
            "rotation); SIGTERM and SIGINT stop gracefully.\n"
            "Exit status: 0 done; 1 could not run (missing file, unsupported capture, missing\n"
            "capability, unknown interface, no memory, address in use) or lines of the events\n"
            "file could not be written; 2 wrong flags; 3 ran, but the capture was cut short\n"
            "(metrics of what was read are still printed or served, and the cut is counted in\n"
            "sipscope_parse_errors_total). SIGINT or SIGTERM during a --read that serves or\n"
            "writes --events ends it by that signal (130 or 143 in a shell), the events file\n"
            "closed first. Frames cut at the snap length, and the\n"
            "SIP messages they left incomplete, are counted in one line on standard error at\n"
            "the end of a --read (the status stays 0).\n");
}

#define MAX_INTERFACES CAPTURE_BPF_MAX_IFACES

struct cli {
    const char *read_path;
    const char *check_rules;
    char *interfaces; /* comma-separated, split in place */
    const char *iface_names[MAX_INTERFACES];
    size_t n_ifaces;
    uint32_t snaplen, ringbuf_size;
    int promisc;
    int print;
    const char *listen_address; /* NULL: do not serve (offline) */
    int enable_lifecycle;
    struct portset ports;
    int have_ports;
    int timer_b_set, timer_f_set;
    int dedup_set;  /* --dedup-window given */
    int rules_set;  /* --rules given */
    int fields_set; /* --events-fields given */
    int decap_set;  /* --decapsulate given */
    const char *rule_flag; /* the last of --lua-memory, --rule-budget, --max-series given */
    int help, version;     /* --help, --version: answered once the whole line is checked */
};

/* A timer's duration: zero would end every transaction or call as it starts (a timeout, SER 0
 * on answered calls), and --max-call-age 0 is no "no limit" either. A year at most: more is a
 * typo, and deadlines are packet time plus a timer (64 x T1 for Timers B and F) in 64-bit
 * nanoseconds, which some thousands of days would wrap. Returns 0 or -EINVAL with the reason
 * in err[errlen]. */
#define MAX_TIMER_NS (365ULL * 86400 * 1000000000)
static int positive_duration(const char *flag, const char *text, uint64_t *ns, char *err,
                             size_t errlen)
{
    int rc = config_parse_duration(text, ns, err, errlen);
    if (rc == 0 && *ns == 0) {
        snprintf(err, errlen, "%s must be above zero", flag);
        rc = -EINVAL;
    } else if (rc == 0 && *ns > MAX_TIMER_NS) {
        snprintf(err, errlen, "%s must be at most 365d", flag);
        rc = -EINVAL;
    }
    return rc;
}

/* A list flag given a second time would replace the first list, silently: --interface eth0
 * --interface eth1 would capture eth1 alone where both were meant. Returns 0 when the flag is
 * given once, or -EINVAL with the reason in err[errlen]. */
static int list_once(const char *flag, bool given, char *err, size_t errlen)
{
    if (!given)
        return 0;
    snprintf(err, errlen, "%s given twice: give one comma-separated list", flag);
    return -EINVAL;
}

/* Flags that the job would ignore. A combination that cannot mean anything is refused: the
 * job asked for would not run (--check-rules with a job's flags), or would leave nothing
 * (--read with no output), or two outputs would mix (--print and --events -). A harmless one
 * runs, with one warning. Returns 0, or -EINVAL with the reason on stderr. */
static int check_combinations(const struct cli *cli, const struct engine_config *cfg)
{
    bool events_stdout = cfg->events_path && strcmp(cfg->events_path, "-") == 0;

    if (cli->check_rules) {
        /* It builds an engine: an events file would be opened, and truncated. */
        const char *job = cli->read_path          ? "--read"
                          : cli->print            ? "--print"
                          : cfg->events_path      ? "--events"
                          : cli->rules_set        ? "--rules"
                          : cli->listen_address   ? "--web.listen-address"
                          : cli->enable_lifecycle ? "--web.enable-lifecycle"
                          : cli->interfaces       ? "--interface"
                                                  : NULL;
        if (job) {
            fprintf(stderr,
                    "sipscope: --check-rules only checks the rules and exits: %s is for a job "
                    "(run it without --check-rules)\n",
                    job);
            return -EINVAL;
        }
        return 0;
    }
    if (cli->print && events_stdout) {
        fprintf(stderr, "sipscope: --print and --events - both write to standard output: give "
                        "--events a file\n");
        return -EINVAL;
    }
    if (cli->read_path && !cli->print && !cli->listen_address && !cfg->events_path) {
        fprintf(stderr, "sipscope: --read reads the capture for nothing: add --print, "
                        "--web.listen-address or --events\n");
        return -EINVAL;
    }
    /* Live, the default address is served and reloads there. */
    if (cli->read_path && cli->enable_lifecycle && !cli->listen_address)
        log_warn("main", "--web.enable-lifecycle does nothing without --web.listen-address "
                         "when reading a file (nothing is served)");
    if (cli->fields_set && !cfg->events_path)
        log_warn("main", "--events-fields does nothing without --events");
    if (cli->rule_flag && !cli->rules_set)
        log_warn("main", "%s does nothing without --rules (no rule runs)", cli->rule_flag);
    return 0;
}

static int parse_args(int argc, char **argv, struct cli *cli, struct engine_config *cfg)
{
    char err[256];
    uint64_t v;
    int opt, index = -1;

    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":", options, &index)) != -1) {
        int rc = 0;
        switch (opt) {
        case OPT_READ:
            /* The last would win: a second file given would be silently left unread. */
            if (cli->read_path) {
                snprintf(err, sizeof(err),
                         "--read given twice: one capture per run (join captures with "
                         "mergecap first)");
                rc = -EINVAL;
            }
            cli->read_path = optarg;
            break;
        case OPT_PRINT:
            cli->print = 1;
            break;
        case OPT_SIP_PORTS:
            rc = list_once("--sip-ports", cli->have_ports, err, sizeof(err));
            if (!rc)
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
            rc = positive_duration("--max-call-age", optarg, &cfg->track.max_call_age_ns, err,
                                   sizeof(err));
            break;
        case OPT_TIMER_T1:
            rc = positive_duration("--timer-t1", optarg, &cfg->track.t1_ns, err, sizeof(err));
            break;
        case OPT_TIMER_B:
            rc = positive_duration("--timer-b", optarg, &cfg->track.timer_b_ns, err, sizeof(err));
            cli->timer_b_set = 1;
            break;
        case OPT_DEDUP_WINDOW: /* "0" alone, with no unit, turns it off */
            cfg->dedup_window_ns = 0;
            rc = strcmp(optarg, "0") == 0
                     ? 0
                     : config_parse_duration(optarg, &cfg->dedup_window_ns, err, sizeof(err));
            cli->dedup_set = 1;
            break;
        case OPT_TIMER_C:
            rc = positive_duration("--timer-c", optarg, &cfg->track.timer_c_ns, err, sizeof(err));
            break;
        case OPT_TIMER_F:
            rc = positive_duration("--timer-f", optarg, &cfg->track.timer_f_ns, err, sizeof(err));
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
        case OPT_INTERFACE:
            /* Wrong flags, told before anything is attached (status 2, not 1). Two names of one
             * interface (an altname) are found only when the capture resolves them. */
            rc = list_once("--interface", cli->interfaces != NULL, err, sizeof(err));
            if (!rc)
                rc = config_list_unique(optarg, err, sizeof(err));
            cli->interfaces = optarg;
            break;
        case OPT_SNAPLEN:
            rc = config_parse_count(optarg, CAPTURE_BPF_MIN_SNAPLEN, CAPTURE_BPF_MAX_SNAPLEN, &v,
                                    err, sizeof(err));
            cli->snaplen = (uint32_t)v;
            break;
        case OPT_DECAPSULATE: {
            /* ERSPAN rides on GRE: "erspan" opens GRE, which operators may not know. */
            static const char *const names[] = {"vxlan", "gre", "erspan", "hep"};
            unsigned bits = 0;
            char why[200];
            rc = list_once("--decapsulate", cli->decap_set, err, sizeof(err));
            cli->decap_set = 1;
            if (rc)
                break;
            rc = config_parse_names(optarg, names, 4, &bits, why, sizeof(why));
            if (rc)
                snprintf(err, sizeof(err), "--decapsulate: %s", why);
            else
                rc = config_list_unique(optarg, err, sizeof(err));
            cfg->decap = ((bits & 1) ? DECODE_VXLAN : 0) | ((bits & 6) ? DECODE_GRE : 0) |
                         ((bits & 8) ? DECODE_HEP : 0);
            break;
        }
        case OPT_PROMISC:
            cli->promisc = 1;
            break;
        case OPT_RINGBUF_SIZE:
            rc = config_parse_size(optarg, &v, err, sizeof(err));
            if (!rc && (v < 4096 || v > (1u << 30) || (v & (v - 1)))) {
                snprintf(err, sizeof(err),
                         "--ringbuf-size must be a power of two from 4KiB to 1GiB");
                rc = -EINVAL;
            }
            cli->ringbuf_size = (uint32_t)v;
            break;
        case OPT_WEB_LIFECYCLE:
            cli->enable_lifecycle = 1;
            break;
        case OPT_RULES:
            cfg->rules.rules_dir = optarg;
            cli->rules_set = 1;
            break;
        case OPT_CHECK_RULES:
            cli->check_rules = optarg;
            cfg->rules.rules_dir = optarg;
            break;
        case OPT_EVENTS:
            if (cfg->events_path) {
                snprintf(err, sizeof(err), "--events given twice: the lines go to one file");
                rc = -EINVAL;
            }
            cfg->events_path = optarg;
            break;
        case OPT_EVENTS_FIELDS:
            rc = list_once("--events-fields", cli->fields_set, err, sizeof(err));
            if (!rc)
                rc = call_cdr_parse_fields(optarg, &cfg->events_fields, err, sizeof(err));
            if (!rc)
                rc = config_list_unique(optarg, err, sizeof(err));
            cli->fields_set = 1;
            break;
        case OPT_LUA_MEMORY:
            cli->rule_flag = "--lua-memory";
            rc = config_parse_size(optarg, &cfg->rules.memory_limit, err, sizeof(err));
            if (!rc && cfg->rules.memory_limit < (1u << 20)) {
                snprintf(err, sizeof(err), "--lua-memory must be at least 1MiB");
                rc = -EINVAL;
            }
            break;
        case OPT_RULE_BUDGET:
            cli->rule_flag = "--rule-budget";
            rc = config_parse_duration(optarg, &cfg->rules.budget_ns, err, sizeof(err));
            if (!rc && cfg->rules.budget_ns < LUA_BRIDGE_MIN_BUDGET_NS) {
                snprintf(err, sizeof(err), "--rule-budget must be at least 100us");
                rc = -EINVAL;
            } else if (!rc && cfg->rules.budget_ns > LUA_BRIDGE_MAX_BUDGET_NS) {
                snprintf(err, sizeof(err), "--rule-budget must be at most 5s");
                rc = -EINVAL;
            }
            break;
        case OPT_MAX_SERIES:
            cli->rule_flag = "--max-series";
            rc = config_parse_count(optarg, 1, 1000000, &v, err, sizeof(err));
            cfg->rules.max_series = (uint32_t)v;
            break;
        case OPT_HELP:
            cli->help = 1;
            break;
        case OPT_VERSION:
            cli->version = 1;
            break;
        case ':':
            fprintf(stderr, "sipscope: %s needs a value (see --help)\n", argv[optind - 1]);
            return -EINVAL;
        default:
            /* main() takes it only first: what follows it is the script's. */
            if (strncmp(argv[optind - 1], "--lua-script", 12) == 0)
                fprintf(stderr, "sipscope: --lua-script runs a script and must come first: "
                                "sipscope --lua-script FILE [ARGS...]\n");
            else
                fprintf(stderr, "sipscope: unknown flag %s (see --help)\n", argv[optind - 1]);
            return -EINVAL;
        }
        if (rc) {
            /* The value parsers do not know the flag: with several flags on a line, "invalid
             * number" alone does not say which one to fix. Messages built here name it. */
            char flag[48];
            snprintf(flag, sizeof(flag), "--%s", index >= 0 ? options[index].name : "?");
            if (strstr(err, flag))
                fprintf(stderr, "sipscope: %s\n", err);
            else
                fprintf(stderr, "sipscope: %s: %s\n", flag, err);
            return -EINVAL;
        }
        index = -1;
    }
    if (optind < argc) {
        fprintf(stderr, "sipscope: unexpected argument \"%s\" (see --help)\n", argv[optind]);
        return -EINVAL;
    }
    /* After the whole line is read, as any other flag: "--help extra" (or getopt's permuted
     * "extra --help") is a wrong command line, not a request for help. */
    if (cli->help) {
        usage(stdout);
        exit(EXIT_OK);
    }
    if (cli->version) {
        printf("sipscope %s\n", SIPSCOPE_VERSION);
        exit(EXIT_OK);
    }
    /* Timers B and F default to 64*T1 (RFC 3261 §17.1.1.2, §17.1.2.2), also for a changed T1. */
    if (!cli->timer_b_set)
        cfg->track.timer_b_ns = 64 * cfg->track.t1_ns;
    if (!cli->timer_f_set)
        cfg->track.timer_f_ns = 64 * cfg->track.t1_ns;
    if (cli->read_path && (cli->interfaces || cli->snaplen || cli->ringbuf_size || cli->promisc)) {
        fprintf(stderr, "sipscope: --read reads a file: --interface, --snaplen, --ringbuf-size "
                        "and --promisc are for live capture\n");
        return -EINVAL;
    }
    if (!cli->read_path && cli->print) {
        fprintf(stderr, "sipscope: --print needs --read FILE (live metrics are served on "
                        "--web.listen-address)\n");
        return -EINVAL;
    }
    if (cli->interfaces) {
        for (char *name = strtok(cli->interfaces, ","); name; name = strtok(NULL, ",")) {
            if (cli->n_ifaces == MAX_INTERFACES) {
                fprintf(stderr, "sipscope: more than %d interfaces\n", MAX_INTERFACES);
                return -EINVAL;
            }
            cli->iface_names[cli->n_ifaces++] = name;
        }
        for (size_t i = 0; i < cli->n_ifaces && cli->n_ifaces > 1; i++) {
            if (strcmp(cli->iface_names[i], "any") == 0) {
                fprintf(stderr, "sipscope: --interface: 'any' captures every interface and "
                                "cannot be combined with others\n");
                return -EINVAL;
            }
        }
        if (cli->n_ifaces == 0) {
            fprintf(stderr, "sipscope: --interface needs at least one name\n");
            return -EINVAL;
        }
    }
    /* Copies come from capturing several interfaces, a mirror (--promisc) or tunnels
     * (--decapsulate: mirrors, HEP agents): live there, they are dropped unless told otherwise
     * (within half of a T1 set very low). One plain interface has few (in and out of it:
     * hairpin NAT): --dedup-window there. A file is read as it was captured. */
    bool copies_likely =
        cli->n_ifaces != 1 || strcmp(cli->iface_names[0], "any") == 0 || cli->promisc || cfg->decap;
    if (!cli->dedup_set && !cli->read_path && copies_likely)
        cfg->dedup_window_ns = DEDUP_DEFAULT_WINDOW_NS < cfg->track.t1_ns / 2
                                   ? DEDUP_DEFAULT_WINDOW_NS
                                   : cfg->track.t1_ns / 2;
    if (cfg->dedup_window_ns >= cfg->track.t1_ns) {
        fprintf(stderr,
                "sipscope: --dedup-window must be below T1 (--timer-t1, %.3f ms): a "
                "retransmission would be taken for a copy and dropped\n",
                (double)cfg->track.t1_ns / 1e6);
        return -EINVAL;
    }
    if (cli->promisc && (cli->n_ifaces == 0 || strcmp(cli->iface_names[0], "any") == 0)) {
        fprintf(stderr, "sipscope: --promisc needs the interfaces named (--interface eth1,...): "
                        "\"any\" names none to put in promiscuous mode\n");
        return -EINVAL;
    }
    return check_combinations(cli, cfg);
}

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* Refuses an output that is the capture being read: the --events file (truncated before the
 * read starts: the capture would be lost) or standard output (--print, --events -) opened on
 * it, whatever the path (a symlink, a hard link: the same device and inode). Called before
 * anything is opened for writing. Only a regular file or a FIFO is compared: reading and
 * writing one character device (/dev/null) erases nothing. Standard error is not compared: the
 * refusal itself would go there. Returns 0, or -EINVAL with the reason on stderr. */
static int check_outputs(const struct cli *cli, const struct engine_config *cfg)
{
    bool from_stdin, events_stdout;
    struct stat in, out;
    const char *name;

    if (!cli->read_path)
        return 0;
    from_stdin = strcmp(cli->read_path, "-") == 0;
    name = from_stdin ? "standard input" : cli->read_path;
    if ((from_stdin ? fstat(STDIN_FILENO, &in) : stat(cli->read_path, &in)) != 0)
        return 0; /* the read says why it cannot open it */
    if (!S_ISREG(in.st_mode) && !S_ISFIFO(in.st_mode))
        return 0;
    events_stdout = cfg->events_path && strcmp(cfg->events_path, "-") == 0;
    if (cfg->events_path && !events_stdout && stat(cfg->events_path, &out) == 0 &&
        same_file(&in, &out)) {
        fprintf(stderr,
                "sipscope: --events %s is the capture that --read reads (%s): it would be "
                "erased before it is read; name another file\n",
                cfg->events_path, name);
        return -EINVAL;
    }
    if ((cli->print || events_stdout) && fstat(STDOUT_FILENO, &out) == 0 && same_file(&in, &out)) {
        fprintf(stderr,
                "sipscope: standard output is the capture that --read reads (%s): %s would "
                "write into it; redirect it to another file\n",
                name, cli->print ? "--print" : "--events -");
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

/* A signal ended the job: the process ends by that signal once everything is closed (the
 * events file flushed), as a shell and systemd expect of a process the signal stopped (status
 * 128 + its number in a shell; a clean stop for systemd). */
static void end_by_signal(int signo)
{
    sigset_t set;

    fflush(NULL);
    signal(signo, SIG_DFL);
    sigemptyset(&set);
    sigaddset(&set, signo);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    raise(signo);
}

/* The offline read's stop test while it serves or writes an events file: a SIGTERM or SIGINT
 * came (service_interruptible). */
static bool stop_pending(void *svc)
{
    return service_stop_pending(svc) != 0;
}

static const char *signal_name(int signo)
{
    return signo == SIGTERM ? "SIGTERM" : "SIGINT";
}

/* At the end of a read, one line on stderr when the capture lost bytes inside its packets: a
 * small snap length (editcap -s 200) can cut every SIP message, and a job that printed only
 * zeros with nothing said looks like a capture with no SIP. The metrics count both; the exit
 * status is unchanged (the file was read as it is). A file can also hold records longer than
 * its header's snap length (a writer that put a wrong one there): libpcap cuts them to it, and
 * so does the reader; capturing again would not help there, mending the header would (262144:
 * libpcap's largest, which the in-place reader takes). */
static void report_losses(struct engine *e, const char *path)
{
    const struct engine_losses *l = engine_losses(e);
    const char *name = strcmp(path, "-") == 0 ? "standard input" : path;
    /* Each such record is also a frame cut (wirelen above its caplen), unless the record says
     * it was shorter on the wire than in the file: malformed, and not counted as cut. */
    uint64_t header = l->overlong < l->truncated ? l->overlong : l->truncated;

    if (!l->truncated && !l->incomplete)
        return;
    if (header && header == l->truncated)
        fprintf(stderr,
                "sipscope: %s: %llu frame%s cut to the snap length of the file's header (%u "
                "bytes), %llu SIP message%s incomplete: what was lost is not counted in the "
                "metrics (the file holds them whole: its header is wrong, not the capture; "
                "libpcap cuts them too; set the header's snap length, bytes 16-19, to 262144)\n",
                name, (unsigned long long)header, header == 1 ? "" : "s", l->overlong_snaplen,
                (unsigned long long)l->incomplete, l->incomplete == 1 ? "" : "s");
    else if (header)
        fprintf(stderr,
                "sipscope: %s: %llu frame%s cut at the snap length (%llu of them by the file's "
                "header only, %u bytes, though the file holds them whole), %llu SIP message%s "
                "incomplete: what was lost is not counted in the metrics (capture with a larger "
                "snap length, e.g. tcpdump -s 0; and set the header's snap length, bytes 16-19, "
                "to 262144)\n",
                name, (unsigned long long)l->truncated, l->truncated == 1 ? "" : "s",
                (unsigned long long)header, l->overlong_snaplen, (unsigned long long)l->incomplete,
                l->incomplete == 1 ? "" : "s");
    else
        fprintf(stderr,
                "sipscope: %s: %llu frame%s cut at the snap length, %llu SIP message%s "
                "incomplete: what was lost is not counted in the metrics (capture with a larger "
                "snap length, e.g. tcpdump -s 0)\n",
                name, (unsigned long long)l->truncated, l->truncated == 1 ? "" : "s",
                (unsigned long long)l->incomplete, l->incomplete == 1 ? "" : "s");
}

/* The offline job: read the file, print and/or serve its final metrics; events: there is an
 * events file. */
static int run_offline(struct engine *e, const struct cli *cli, bool events)
{
    struct service_config sc = {.listen_address = cli->listen_address,
                                .enable_lifecycle = cli->enable_lifecycle,
                                .metrics_when_ready = true};
    struct service *svc = NULL;
    char err[512];
    int rc, status = EXIT_OK;
    bool interruptible = false;

    /* Listen before reading: a taken port fails at once, not after a long file, and /-/ready
     * tells when the metrics are final. Until then /metrics answers 503 too: the metrics of part
     * of the file, scraped and stored, would stand for the file's (a rate over them, a SER), and
     * a SIGTERM during the read leaves nothing served, as it says. Not starting the server until
     * the read ends would make a taken port fail late and /-/ready unreachable while it reads,
     * which would look like a dead exporter. Serving blocks SIGTERM and SIGINT for its signalfd
     * (service_new): during the read they are handled again, and either ends the job there,
     * with nothing printed or served (the metrics would be of part of the file) and the exit
     * status of a process the signal ended, 128 + its number. */
    if (cli->listen_address) {
        svc = service_new(e, &sc, err, sizeof(err));
        if (!svc) {
            fprintf(stderr, "sipscope: %s\n", err);
            return EXIT_FAILURE_RUNTIME;
        }
    }
    /* With an events file, a stop that does not serve ends the read the same way (the process
     * ends by the signal after the file is closed): killed at once, it lost the lines of the
     * calls that ended since the last batch was written, and could cut one it was writing. */
    if (svc || events) {
        if ((rc = service_interruptible(svc, true)) != 0) {
            fprintf(stderr, "sipscope: cannot handle SIGTERM and SIGINT: %s\n", strerror(-rc));
            service_free(svc);
            return EXIT_FAILURE_RUNTIME;
        }
        interruptible = true;
    }
    rc = engine_read_file_until(e, cli->read_path, interruptible ? stop_pending : NULL, svc, err,
                                sizeof(err));
    /* Closed while a stop is still handled: a write that waits on a reader that stalled (a pipe
     * whose reader stopped reading) then gives up at the stop instead of holding it for good.
     * Closed before the status is decided: the file's last lines, and its close, count too. */
    uint64_t lost = engine_close_events(e);
    if (interruptible)
        service_interruptible(svc, false);
    if (rc == -EINTR) {
        int signo = service_stop_pending(svc);
        log_info("main", "%s while reading %s: stopped; nothing printed or served",
                 signal_name(signo), cli->read_path);
        if (lost)
            log_warn("main", "%llu lines of the events file were lost", (unsigned long long)lost);
        service_free(svc);
        return EXIT_SIGNAL_BASE + signo;
    }
    if (rc == -EIO || rc == -EBADMSG) {
        fprintf(stderr, "sipscope: %s: %s: %s\n", cli->read_path,
                rc == -EIO ? "capture cut short" : "capture unreadable past this point", err);
        status = EXIT_INPUT_DAMAGED;
    } else if (rc < 0) {
        fprintf(stderr, "sipscope: %s\n", err);
        service_free(svc);
        return EXIT_FAILURE_RUNTIME;
    }
    report_losses(e, cli->read_path);
    /* A lost line makes the job one not done, whatever else happened (status 1 before 3). */
    if (lost) {
        fprintf(stderr, "sipscope: %llu lines of the events file could not be written\n",
                (unsigned long long)lost);
        status = EXIT_FAILURE_RUNTIME;
    }
    if (cli->print && print_metrics(e) != 0) {
        fprintf(stderr, "sipscope: cannot write the metrics to standard output\n");
        status = EXIT_FAILURE_RUNTIME;
    }
    if (interruptible && service_stop_pending(svc)) {
        /* It came as the file ended: the job is whole, and the stop asked for is done. */
        log_info("main", "%s: shutting down", signal_name(service_stop_pending(svc)));
    } else if (svc) {
        service_set_ready(svc);
        log_info("main", "%s processed; serving its metrics until SIGTERM or SIGINT",
                 cli->read_path);
        if (service_run(svc) < 0)
            status = EXIT_FAILURE_RUNTIME;
    }
    service_free(svc);
    return status;
}

/* The live job: attach the capture, drop privileges, serve until a signal. */
static int run_live(struct engine *e, struct capture_bpf *cap, const struct cli *cli)
{
    struct service_config sc = {.listen_address = cli->listen_address ? cli->listen_address
                                                                      : HTTP_DEFAULT_LISTEN,
                                .enable_lifecycle = cli->enable_lifecycle,
                                .capture = cap};
    struct service *svc;
    char err[512];
    int rc;

    svc = service_new(e, &sc, err, sizeof(err));
    if (!svc) {
        fprintf(stderr, "sipscope: %s\n", err);
        return EXIT_FAILURE_RUNTIME;
    }
    /* The program is loaded, the sockets are attached and the port is bound: nothing that
     * follows needs a capability. */
    if ((rc = service_drop_privileges()) != 0)
        log_warn("main", "cannot drop capabilities: %s", strerror(-rc));
    service_set_ready(svc);
    rc = service_run(svc);
    service_free(svc);
    /* Lines lost live do not change the status, unlike offline (run_offline): a service
     * stopped by SIGTERM that exits non-zero is a failed unit to systemd, and a full pipe or
     * disk is the events file's trouble, not the capture's. They are counted
     * (sipscope_events_errors_total) and logged as they are lost; the last line says how many
     * in all, the close's included. */
    uint64_t lost = engine_close_events(e);
    if (lost)
        log_warn("main", "stopped; %llu lines of the events file were lost in this run",
                 (unsigned long long)lost);
    return rc < 0 ? EXIT_FAILURE_RUNTIME : EXIT_OK;
}

/* --check-rules DIR: build an engine with the rules (every declaration is checked against the
 * real built-in families) and list them; no traffic. */
static int check_rules(struct engine_config *cfg)
{
    char err[1024];
    struct engine *e;
    int n;

    cfg->track.max_calls = cfg->track.max_transactions = cfg->track.max_registrations = 1;
    e = engine_new(cfg, err, sizeof(err));
    if (!e) {
        log_plain("%s", err); /* a rule's error: escaped */
        return EXIT_FAILURE_RUNTIME;
    }
    n = engine_describe_rules(e, stdout);
    printf("%d rule%s OK\n", n, n == 1 ? "" : "s");
    engine_free(e);
    return EXIT_OK;
}

static int iface_name(void *ctx, uint32_t iface, char *buf, size_t len)
{
    return capture_bpf_iface_name(ctx, iface, buf, len);
}

int main(int argc, char **argv)
{
    static struct cli cli;
    struct engine_config cfg;
    struct capture_bpf *cap = NULL;
    struct engine *e;
    char err[512];
    int status, rc;

    /* Before any table exists: their keys come from the wire (slice.h). */
    if ((rc = slice_hash_randomize()) != 0)
        log_warn("main", "no random hash key (%s): tables use one made from the clock",
                 strerror(-rc));
    if (argc >= 2 && strcmp(argv[1], "--lua-script") == 0) {
        if (argc < 3) {
            fprintf(stderr, "sipscope: --lua-script needs a FILE (see --help)\n");
            return EXIT_USAGE;
        }
        return lua_bridge_run_script(argv[2], argc - 3, argv + 3, SIPSCOPE_LUA_DIR);
    }
    engine_config_defaults(&cfg);
    if (parse_args(argc, argv, &cli, &cfg) != 0 || check_outputs(&cli, &cfg) != 0)
        return EXIT_USAGE;
    if (cli.have_ports)
        cfg.sip_ports = &cli.ports;
    if (cli.check_rules)
        return check_rules(&cfg);
    if (!cli.read_path) {
        /* Live: the kernel filter selects the ports (default 5060), so every frame that
         * arrives is on a SIP port; the kernel counts what it saw and matched. */
        struct capture_bpf_config cc = {.ifaces = cli.iface_names,
                                        .n_ifaces = cli.n_ifaces,
                                        .ports = &cli.ports,
                                        .snaplen = cli.snaplen,
                                        .ringbuf_size = cli.ringbuf_size,
                                        .promisc = cli.promisc != 0,
                                        .decap = cfg.decap};
        if (!cli.have_ports)
            portset_add(&cli.ports, 5060);
        cfg.sip_ports = &cli.ports;
        cap = capture_bpf_open(&cc, err, sizeof(err));
        if (!cap) {
            fprintf(stderr, "sipscope: %s\n", err);
            return EXIT_FAILURE_RUNTIME;
        }
        cfg.capture = "bpf";
        cfg.count_seen = false;
        cfg.events_append = true; /* a service's restart must not lose its call records */
        cfg.iface_name = iface_name;
        cfg.iface_ctx = cap;
    }
    e = engine_new(&cfg, err, sizeof(err));
    if (!e) {
        log_plain("%s", err); /* a rule's error: escaped */
        capture_bpf_free(cap);
        return EXIT_FAILURE_RUNTIME;
    }
    if (cap && cfg.dedup_window_ns)
        log_info("main",
                 "a packet captured again on another path within %.3f ms is a copy: "
                 "dropped and counted (--dedup-window)",
                 (double)cfg.dedup_window_ns / 1e6);
    status = cap ? run_live(e, cap, &cli) : run_offline(e, &cli, cfg.events_path != NULL);
    engine_free(e);
    capture_bpf_free(cap);
    if (status > EXIT_SIGNAL_BASE)
        end_by_signal(status - EXIT_SIGNAL_BASE);
    return status;
}
