/* health: the engine's own counters and the process_ collectors. */
#include "health.h"

#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define PARSE_ERROR_CACHE 128

enum table_id { T_CALLS, T_TRANSACTIONS, T_REGISTRATIONS, T_REG_ATTEMPTS, T_REASM, T_TCP, T_COUNT };

static const char *const table_names[T_COUNT] = {
    "calls", "transactions", "registrations", "registration_attempts", "reasm", "tcp"};
static const char *const result_names[HEALTH_RESULT_COUNT] = {"seen", "matched", "decoded"};
static const char *const stage_names[HEALTH_STAGE_COUNT] = {"l2", "l3", "l4", "reasm", "sip"};

struct parse_error_slot {
    const char *reason;
    uint8_t stage;
    struct metric_series *series;
};

/* The series of one interface, found by its id on every frame. */
struct iface_slot {
    uint32_t id;
    uint32_t sym;
    struct metric_series *packets[HEALTH_RESULT_COUNT];
    struct metric_series *truncated;
    struct metric_series *duplicates;
};

struct health {
    struct metrics *reg;
    struct metric_family *packets, *drops, *truncated, *duplicates, *parse_errors, *messages;
    struct metric_family *iface_up;
    struct metric_family *entries, *evictions, *clock_steps;
    health_iface_name_fn name_fn;
    void *name_ctx;
    size_t n_ifaces;
    struct iface_slot ifaces[HEALTH_MAX_IFACES + 1]; /* the last is "other" */
    struct iface_slot *last;
    struct metric_series *message_series[3][2]; /* [udp, tcp, ws][ipv6] */
    struct metric_series *entry_series[T_COUNT], *eviction_series[T_COUNT];
    uint64_t evictions_prev[T_COUNT];
    struct parse_error_slot errors[PARSE_ERROR_CACHE];
    size_t n_errors;
};

static uint32_t sym(struct metrics *reg, const char *s)
{
    return metrics_intern(reg, s, strlen(s));
}

static struct metric_family *family(struct metrics *reg, const char *name, const char *help,
                                    enum metric_type type, const char *l0, const char *l1)
{
    const char *names[2] = {l0, l1};
    size_t n = l1 ? 2 : (l0 ? 1 : 0);
    return metrics_family(reg, name, help, type, names, n, NULL, 0, 10000, 0);
}

/* --- process_ metrics, read from /proc at scrape time ---------------------------------------- */

struct proc_stat {
    double cpu_seconds, start_time, virtual_bytes, resident_bytes;
};

static int read_proc_stat(struct proc_stat *ps)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n;
    char *p;
    unsigned long utime, stime, vsize;
    unsigned long long starttime;
    long rss;
    double hz = (double)sysconf(_SC_CLK_TCK);
    double boot = 0;

    if (!f)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    if (!p || sscanf(p + 2,
                     "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d "
                     "%llu %lu %ld",
                     &utime, &stime, &starttime, &vsize, &rss) != 5)
        return -1;
    f = fopen("/proc/stat", "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof(line), f))
            if (sscanf(line, "btime %lf", &boot) == 1)
                break;
        fclose(f);
    }
    ps->cpu_seconds = (double)(utime + stime) / hz;
    ps->start_time = boot + (double)starttime / hz;
    ps->virtual_bytes = (double)vsize;
    ps->resident_bytes = (double)rss * (double)sysconf(_SC_PAGESIZE);
    return 0;
}

enum proc_metric {
    P_CPU,
    P_RSS,
    P_VSIZE,
    P_START,
    P_FDS,
    P_MAX_FDS,
    P_COUNT
};

static const struct {
    const char *name, *help;
    enum metric_type type;
} proc_defs[P_COUNT] = {
    [P_CPU] = {"process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
               METRIC_COUNTER},
    [P_RSS] = {"process_resident_memory_bytes", "Resident memory size in bytes.", METRIC_GAUGE},
    [P_VSIZE] = {"process_virtual_memory_bytes", "Virtual memory size in bytes.", METRIC_GAUGE},
    [P_START] = {"process_start_time_seconds",
                 "Start time of the process since unix epoch in seconds.", METRIC_GAUGE},
    [P_FDS] = {"process_open_fds", "Number of open file descriptors.", METRIC_GAUGE},
    [P_MAX_FDS] = {"process_max_fds", "Maximum number of open file descriptors.", METRIC_GAUGE},
};

static const enum proc_metric proc_ids[P_COUNT] = {P_CPU, P_RSS, P_VSIZE, P_START, P_FDS,
                                                   P_MAX_FDS};

static double count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    double n = 0;
    if (!d)
        return 0;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory stream's own descriptor */
}

static void collect_process(void *ctx, struct metrics *reg, metrics_emit_fn emit, void *emit_ctx)
{
    enum proc_metric which = *(const enum proc_metric *)ctx;
    struct proc_stat ps;
    struct rlimit rl;
    (void)reg;

    switch (which) {
    case P_FDS:
        emit(emit_ctx, NULL, count_fds());
        return;
    case P_MAX_FDS:
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
            emit(emit_ctx, NULL, (double)rl.rlim_cur);
        return;
    default:
        break;
    }
    if (read_proc_stat(&ps) != 0)
        return;
    emit(emit_ctx, NULL,
         which == P_CPU     ? ps.cpu_seconds
         : which == P_RSS   ? ps.resident_bytes
         : which == P_VSIZE ? ps.virtual_bytes
                            : ps.start_time);
}

struct health *health_new(struct metrics *reg, const char *version, const char *luajit,
                          const char *capture, health_iface_name_fn name_fn, void *name_ctx)
{
    struct health *h = calloc(1, sizeof(*h));
    static const char *const info_labels[] = {"version", "luajit", "capture"};
    struct metric_family *info;

    if (!h)
        return NULL;
    h->reg = reg;
    info = metrics_family(reg, "sipscope_build_info",
                          "Build information; the value is always 1.", METRIC_GAUGE, info_labels,
                          3, NULL, 0, 1, 0);
    h->packets = family(reg, "sipscope_packets_total",
                        "Packets per interface: seen (captured), matched (SIP port filter), "
                        "decoded (yielded SIP).",
                        METRIC_COUNTER, "iface", "result");
    h->drops = family(reg, "sipscope_capture_drops_total",
                      "Packets the capture lost before user space (ringbuf full).",
                      METRIC_COUNTER, "iface", "reason");
    h->iface_up = family(reg, "sipscope_capture_interface_up",
                         "1 while a captured interface is up with a carrier; 0 while it is down "
                         "or removed (an interface created again under its name is captured).",
                         METRIC_GAUGE, "iface", NULL);
    h->truncated = family(reg, "sipscope_capture_truncated_total",
                          "Packets longer than the snap length, delivered cut (or cut by the "
                          "mirror that tunnelled them, with --decapsulate).",
                          METRIC_COUNTER, "iface", NULL);
    h->duplicates = family(reg, "sipscope_capture_duplicates_total",
                           "Packets dropped as copies of one captured on another path (interface, "
                           "direction, VLAN tags, tunnel source) less than --dedup-window "
                           "before.",
                           METRIC_COUNTER, "iface", NULL);
    h->parse_errors = family(reg, "sipscope_parse_errors_total",
                             "Malformed or unsupported input and accepted anomalies, by stage.",
                             METRIC_COUNTER, "stage", "reason");
    h->messages = family(reg, "sipscope_sip_messages_total",
                         "SIP messages parsed, by transport and IP version.", METRIC_COUNTER,
                         "transport", "ip");
    h->entries = family(reg, "sipscope_table_entries", "Entries in use per tracking table.",
                        METRIC_GAUGE, "table", NULL);
    h->clock_steps = metrics_family(
        reg, "sipscope_clock_steps_total",
        "Times the capture's clock went back by more than a second (a stepped host clock, files "
        "joined out of order); the packets after each are timed as if it had not.",
        METRIC_COUNTER, NULL, 0, NULL, 0, 1, 0);
    h->evictions = family(reg, "sipscope_table_evictions_total",
                          "Entries evicted because their table was full.", METRIC_COUNTER,
                          "table", NULL);
    if (!info || !h->packets || !h->drops || !h->truncated || !h->duplicates || !h->parse_errors ||
        !h->messages || !h->entries || !h->evictions || !h->clock_steps) {
        free(h);
        return NULL;
    }
    {
        uint32_t k[3] = {sym(reg, version), sym(reg, luajit), sym(reg, capture)};
        metric_gauge_set(metrics_series(info, k), 1);
    }
    h->name_fn = name_fn;
    h->name_ctx = name_ctx;
    h->ifaces[HEALTH_MAX_IFACES].id = UINT32_MAX;
    h->ifaces[HEALTH_MAX_IFACES].sym = sym(reg, "other");
    for (int t = 0; t < T_COUNT; t++) {
        uint32_t k = sym(reg, table_names[t]);
        h->entry_series[t] = metrics_series(h->entries, &k);
        h->eviction_series[t] = metrics_series(h->evictions, &k);
    }
    for (int p = 0; p < P_COUNT; p++)
        metrics_collector(reg, proc_defs[p].name, proc_defs[p].help, proc_defs[p].type, NULL, 0,
                          METRIC_TIMING, collect_process, (void *)&proc_ids[p]);
    return h;
}

void health_free(struct health *h)
{
    free(h);
}

static struct iface_slot *iface_slot(struct health *h, uint32_t id)
{
    struct iface_slot *slot;
    char name[64];

    if (h->last && h->last->id == id)
        return h->last;
    if (id == HEALTH_IFACE_OTHER)
        return &h->ifaces[HEALTH_MAX_IFACES];
    for (size_t i = 0; i < h->n_ifaces; i++) {
        if (h->ifaces[i].id == id) {
            h->last = &h->ifaces[i];
            return h->last;
        }
    }
    if (h->n_ifaces == HEALTH_MAX_IFACES)
        return &h->ifaces[HEALTH_MAX_IFACES];
    slot = &h->ifaces[h->n_ifaces++];
    slot->id = id;
    if (!h->name_fn || h->name_fn(h->name_ctx, id, name, sizeof(name)) != 0)
        snprintf(name, sizeof(name), "%u", id);
    slot->sym = sym(h->reg, name);
    h->last = slot;
    return slot;
}

static struct metric_series *iface_series(struct health *h, struct iface_slot *slot,
                                          const char *second, struct metric_family *fam)
{
    uint32_t k[2] = {slot->sym, second ? sym(h->reg, second) : 0};
    return metrics_series(fam, k);
}

void health_packets(struct health *h, uint32_t iface, unsigned results)
{
    if (!results)
        return;
    struct iface_slot *slot = iface_slot(h, iface);
    /* All three series of an interface appear together, at 0 when not reached, so that a rate
     * over them starts from the first frame counted (offline every frame; live, where the
     * kernel counts seen and matched, the first SIP frame). */
    if (!slot->packets[HEALTH_DECODED])
        for (unsigned r = 0; r < HEALTH_RESULT_COUNT; r++)
            if (!slot->packets[r])
                slot->packets[r] = iface_series(h, slot, result_names[r], h->packets);
    for (unsigned r = 0; r < HEALTH_RESULT_COUNT; r++)
        if (results & HEALTH_BIT(r))
            metric_counter_add(slot->packets[r], 1);
}

void health_truncated(struct health *h, uint32_t iface)
{
    struct iface_slot *slot = iface_slot(h, iface);
    if (!slot->truncated)
        slot->truncated = iface_series(h, slot, NULL, h->truncated);
    metric_counter_add(slot->truncated, 1);
}

void health_duplicate(struct health *h, uint32_t iface)
{
    struct iface_slot *slot = iface_slot(h, iface);
    if (!slot->duplicates)
        slot->duplicates = iface_series(h, slot, NULL, h->duplicates);
    metric_counter_add(slot->duplicates, 1);
}

static void add_delta(struct metric_series *s, uint64_t now, uint64_t *prev)
{
    if (now > *prev)
        metric_counter_add(s, (double)(now - *prev));
    *prev = now;
}

void health_add_kernel(struct health *h, uint32_t iface, uint64_t seen, uint64_t matched,
                       uint64_t ringbuf_full, uint64_t truncated)
{
    struct iface_slot *slot = iface_slot(h, iface);

    if (!slot->packets[HEALTH_SEEN])
        slot->packets[HEALTH_SEEN] = iface_series(h, slot, "seen", h->packets);
    if (!slot->packets[HEALTH_MATCHED])
        slot->packets[HEALTH_MATCHED] = iface_series(h, slot, "matched", h->packets);
    if (!slot->truncated)
        slot->truncated = iface_series(h, slot, NULL, h->truncated);
    metric_counter_add(slot->packets[HEALTH_SEEN], (double)seen);
    metric_counter_add(slot->packets[HEALTH_MATCHED], (double)matched);
    metric_counter_add(iface_series(h, slot, "ringbuf_full", h->drops), (double)ringbuf_full);
    metric_counter_add(slot->truncated, (double)truncated);
}

void health_clock_step(struct health *h)
{
    metric_counter_add(metrics_series(h->clock_steps, NULL), 1);
}

void health_set_iface_up(struct health *h, uint32_t iface, bool up)
{
    metric_gauge_set(iface_series(h, iface_slot(h, iface), NULL, h->iface_up), up ? 1 : 0);
}

void health_parse_error(struct health *h, enum health_stage stage, const char *reason)
{
    struct parse_error_slot *slot = NULL;

    for (size_t i = 0; i < h->n_errors; i++) {
        if (h->errors[i].reason == reason && h->errors[i].stage == stage) {
            slot = &h->errors[i];
            break;
        }
    }
    if (!slot) {
        uint32_t k[2] = {sym(h->reg, stage_names[stage]), sym(h->reg, reason)};
        struct metric_series *s = metrics_series(h->parse_errors, k);
        if (h->n_errors == PARSE_ERROR_CACHE) {
            metric_counter_add(s, 1);
            return;
        }
        slot = &h->errors[h->n_errors++];
        *slot = (struct parse_error_slot){reason, (uint8_t)stage, s};
    }
    metric_counter_add(slot->series, 1);
}

void health_sip_message(struct health *h, const struct packet *pkt)
{
    static const char *const transports[] = {"udp", "tcp", "ws"};
    int t = pkt->websocket ? 2 : pkt->l4_proto == IPPROTO_TCP, v6 = pkt->ip_version == 6;
    struct metric_series **s = &h->message_series[t][v6];
    if (!*s) {
        uint32_t k[2] = {sym(h->reg, transports[t]), sym(h->reg, v6 ? "6" : "4")};
        *s = metrics_series(h->messages, k);
    }
    metric_counter_add(*s, 1);
}

void health_tables(struct health *h, const struct track_stats *st)
{
    uint32_t entries[T_REASM] = {st->calls, st->transactions, st->registrations, st->reg_attempts};
    uint64_t evictions[T_REASM] = {st->call_evictions, st->transaction_evictions,
                                   st->registration_evictions, st->reg_attempt_evictions};
    for (int t = 0; t < T_REASM; t++) {
        metric_gauge_set(h->entry_series[t], entries[t]);
        add_delta(h->eviction_series[t], evictions[t], &h->evictions_prev[t]);
    }
}

void health_reasm_tables(struct health *h, uint32_t reasm_entries, uint64_t reasm_evictions,
                         uint32_t tcp_entries, uint64_t tcp_evictions)
{
    metric_gauge_set(h->entry_series[T_REASM], reasm_entries);
    add_delta(h->eviction_series[T_REASM], reasm_evictions, &h->evictions_prev[T_REASM]);
    metric_gauge_set(h->entry_series[T_TCP], tcp_entries);
    add_delta(h->eviction_series[T_TCP], tcp_evictions, &h->evictions_prev[T_TCP]);
}
