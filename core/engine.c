/* engine: the frame-to-metrics pipeline and its ownership. */
#include "engine.h"

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builtin.h"
#include "capture_pcap.h"
#include "decode.h"
#include "events.h"
#include "health.h"
#include "log.h"
#include "lua_bridge.h"
#include "metrics.h"
#include "oplabel.h"
#include "sip_parse.h"

#ifndef SIPSCOPE_VERSION
#define SIPSCOPE_VERSION "0.0.0"
#endif

#define PUBLISH_EVERY 4096 /* frames between table-size updates */

struct engine {
    struct engine_config cfg;
    struct portset ports; /* copy of cfg.sip_ports when set */
    struct metrics *reg;
    struct oplabel_set *ops;
    struct builtin *builtin;
    struct health *health;
    struct track *track;
    struct lua_bridge *rules;   /* NULL without --rules */
    const uint8_t *routes;      /* lua_bridge_routes(rules), or NULL */
    struct events *events;      /* NULL without --events */
    volatile sig_atomic_t reload_requested;
    uint32_t frames_since_publish;
    struct sip_header hdrs[SIP_MAX_HEADERS];
};

static const char *const default_ifaces[] = {"file"};

void engine_config_defaults(struct engine_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    track_config_defaults(&cfg->track);
    cfg->iface_names = default_ifaces;
    cfg->n_ifaces = 1;
    cfg->capture = "pcap";
    cfg->count_seen = true;
    lua_bridge_config_defaults(&cfg->rules);
}

/* Without rules or an events file, the sink is the built-in metrics alone: decided once. */
static void sink_emit_builtin(void *ctx, const struct track_event *ev)
{
    struct engine *e = ctx;
    builtin_on_event(e->builtin, ev);
}

/* With rules and/or events: built-in metrics first, then the hooks (a routes byte per event
 * type says whether any rule wants it), then the events line with what rules added. */
static void sink_emit(void *ctx, const struct track_event *ev)
{
    struct engine *e = ctx;
    const char *fields = "";
    size_t n = 0;

    builtin_on_event(e->builtin, ev);
    if (e->routes && e->routes[ev->type]) {
        lua_bridge_event(e->rules, ev);
        if (e->events && (ev->type == TRACK_CALL_END || ev->type == TRACK_REG_BINDING))
            fields = lua_bridge_event_fields(e->rules, &n);
    }
    if (e->events && (ev->type == TRACK_CALL_END || ev->type == TRACK_REG_BINDING))
        events_on_event(e->events, ev, fields, n);
}

static void sink_label(void *ctx, const struct sip_msg *msg, const struct packet *pkt,
                       uint16_t *labels)
{
    struct engine *e = ctx;
    lua_bridge_label(e->rules, msg, pkt, labels);
}

struct engine *engine_new(const struct engine_config *cfg, char *err, size_t errlen)
{
    struct engine *e = calloc(1, sizeof(*e));
    struct track_sink sink;
    bool want_rules = cfg->rules.rules_dir || cfg->rules.n_rule_files;

    if (!e) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    e->cfg = *cfg;
    e->cfg.rules.event_fields = cfg->events_path != NULL;
    if (cfg->sip_ports)
        e->ports = *cfg->sip_ports;
    /* Order matters: rules declare their labels before the built-in families get them, and
     * create their own families after, so that a collision with a built-in one is refused. */
    e->reg = metrics_new(cfg->symbol_cap ? cfg->symbol_cap : 1000000);
    e->ops = e->reg ? oplabel_new(e->reg) : NULL;
    if (!e->ops) {
        snprintf(err, errlen, "out of memory while declaring metrics");
        goto fail;
    }
    if (want_rules) {
        e->rules = lua_bridge_new(&e->cfg.rules, e->reg, e->ops, err, errlen);
        if (!e->rules)
            goto fail;
    }
    e->builtin = builtin_new(e->reg, e->ops);
    e->health = e->builtin ? health_new(e->reg, SIPSCOPE_VERSION, lua_bridge_luajit_version(),
                                        cfg->capture, cfg->iface_names, cfg->n_ifaces)
                           : NULL;
    if (!e->health) {
        snprintf(err, errlen, "out of memory while declaring metrics");
        goto fail;
    }
    if (e->rules) {
        if (lua_bridge_commit(e->rules, err, errlen) != 0)
            goto fail;
        e->routes = lua_bridge_routes(e->rules);
    }
    if (cfg->events_path) {
        e->events = events_open(cfg->events_path, e->reg, e->ops, err, errlen);
        if (!e->events)
            goto fail;
    }
    sink = (struct track_sink){.emit = (e->rules || e->events) ? sink_emit : sink_emit_builtin,
                               .label = oplabel_count(e->ops) ? sink_label : NULL,
                               .ctx = e};
    e->track = track_new(&cfg->track, &sink);
    if (!e->track) {
        snprintf(err, errlen,
                 "cannot allocate the tracking tables (%u calls, %u transactions, %u "
                 "registrations): lower --max-calls, --max-transactions or --max-registrations",
                 cfg->track.max_calls, cfg->track.max_transactions, cfg->track.max_registrations);
        goto fail;
    }
    engine_publish(e);
    return e;
fail:
    engine_free(e);
    return NULL;
}

void engine_free(struct engine *e)
{
    if (!e)
        return;
    track_free(e->track);
    events_close(e->events);
    lua_bridge_free(e->rules);
    /* The registry calls back into builtin and health when it renders: free it first. */
    metrics_free(e->reg);
    health_free(e->health);
    builtin_free(e->builtin);
    oplabel_free(e->ops);
    free(e);
}

struct metrics *engine_metrics(struct engine *e)
{
    return e->reg;
}

void engine_publish(struct engine *e)
{
    struct track_stats st;
    track_get_stats(e->track, &st);
    health_tables(e->health, &st);
    if (e->rules)
        lua_bridge_publish(e->rules);
    if (e->events)
        events_flush(e->events);
    e->frames_since_publish = 0;
}

int engine_reload_rules(struct engine *e, char *err, size_t errlen)
{
    if (!e->rules) {
        snprintf(err, errlen, "sipscope runs without rules (no --rules DIR)");
        return -ENOENT;
    }
    return lua_bridge_reload(e->rules, err, errlen);
}

void engine_request_reload(struct engine *e)
{
    e->reload_requested = 1;
}

struct lua_bridge *engine_rules(struct engine *e)
{
    return e->rules;
}

int engine_describe_rules(struct engine *e, FILE *out)
{
    return e->rules ? lua_bridge_describe(e->rules, out) : 0;
}

/* Per frame or tick, when rules run: a pending reload, then the rule clock (on_tick). */
static void rules_housekeeping(struct engine *e)
{
    if (e->reload_requested) {
        char err[512];
        e->reload_requested = 0;
        engine_reload_rules(e, err, sizeof(err)); /* logged and counted by the bridge */
    }
    if (e->routes[TRACK_EVENT_COUNT])
        lua_bridge_clock(e->rules, track_clock(e->track));
}

static void count_anomalies(struct engine *e, uint32_t anomalies)
{
    while (anomalies) {
        uint32_t bit = anomalies & -anomalies;
        health_parse_error(e->health, HEALTH_SIP, sip_anomaly_name((enum sip_anomaly)bit));
        anomalies &= ~bit;
    }
}

static bool only_line_breaks(const uint8_t *p, uint32_t len)
{
    for (uint32_t i = 0; i < len; i++)
        if (p[i] != '\r' && p[i] != '\n')
            return false;
    return true;
}

/* A start line was recognised when the parser got past it: SIP, even if broken further on. */
static bool start_line_seen(const struct sip_msg *msg)
{
    return msg->method_name.len != 0 || msg->status != 0;
}

/* Parses and tracks one message; returns the bytes used or a negative errno from the parser. */
static int handle_message(struct engine *e, const struct packet *pkt, const uint8_t *data,
                          uint32_t len, enum sip_parse_mode mode)
{
    struct sip_msg msg;
    int n = sip_parse((const char *)data, len, mode, &msg, e->hdrs, SIP_MAX_HEADERS);

    if (n < 0) {
        /* Without a port filter, SIP is recognised by its start line: other traffic (RTP,
         * DNS...) is not an error. With one, everything on a SIP port should be SIP. */
        if (!e->cfg.sip_ports && !start_line_seen(&msg))
            return n;
        if (n == -EAGAIN && mode == SIP_PARSE_STREAM)
            return n;
        health_parse_error(e->health, HEALTH_SIP,
                           n == -EAGAIN ? "incomplete" : sip_error_name((enum sip_error)msg.error));
        return n;
    }
    if (msg.anomalies)
        count_anomalies(e, msg.anomalies);
    health_sip_message(e->health, pkt->l4_proto, pkt->ip_version);
    track_message(e->track, &msg, pkt);
    return n;
}

static bool handle_udp(struct engine *e, const struct packet *pkt)
{
    if (only_line_breaks(pkt->payload, pkt->payload_len))
        return false; /* RFC 5626 keep-alive */
    return handle_message(e, pkt, pkt->payload, pkt->payload_len, SIP_PARSE_DATAGRAM) > 0;
}

/* Until TCP streams are reassembled, the messages complete within one segment are tracked and
 * whatever is left of a segment is counted, never dropped silently. */
static bool handle_tcp_segment(struct engine *e, const struct packet *pkt)
{
    const uint8_t *p = pkt->payload;
    uint32_t left = pkt->payload_len;
    bool any = false;

    while (left) {
        int n;
        if (only_line_breaks(p, left))
            break;
        n = handle_message(e, pkt, p, left, SIP_PARSE_STREAM);
        if (n <= 0) {
            if (n == -EAGAIN && (any || e->cfg.sip_ports))
                health_parse_error(e->health, HEALTH_REASM, "tcp_not_reassembled");
            break;
        }
        any = true;
        p += n;
        left -= (uint32_t)n;
    }
    return any;
}

void engine_frame(struct engine *e, const struct capture_frame *frame)
{
    struct packet pkt;
    enum decode_result r;
    bool sip = false;

    if (e->cfg.count_seen)
        health_packet(e->health, frame->iface, HEALTH_SEEN);
    if (frame->caplen < frame->wirelen)
        health_truncated(e->health, frame->iface);
    r = decode_frame(frame, &pkt);
    switch (r) {
    case DECODE_ERROR:
        health_parse_error(e->health, (enum health_stage)pkt.error_stage, pkt.error_reason);
        return;
    case DECODE_SKIP:
        return;
    case DECODE_FRAGMENT:
        health_parse_error(e->health, HEALTH_REASM, "fragments_not_reassembled");
        return;
    case DECODE_UDP:
    case DECODE_TCP:
        break;
    }
    if (e->cfg.sip_ports && !portset_has(&e->ports, pkt.sport) &&
        !portset_has(&e->ports, pkt.dport))
        return;
    if (e->cfg.count_seen)
        health_packet(e->health, frame->iface, HEALTH_MATCHED);
    sip = r == DECODE_UDP ? handle_udp(e, &pkt) : handle_tcp_segment(e, &pkt);
    if (sip)
        health_packet(e->health, frame->iface, HEALTH_DECODED);
    if (e->rules)
        rules_housekeeping(e);
    if (++e->frames_since_publish == PUBLISH_EVERY)
        engine_publish(e);
}

void engine_tick(struct engine *e, uint64_t now_ns)
{
    track_advance(e->track, now_ns);
    if (e->rules)
        rules_housekeeping(e);
    engine_publish(e);
}

int engine_read_file(struct engine *e, const char *path, char *err, size_t errlen)
{
    struct capture_pcap *cap = capture_pcap_open(path, err, errlen);
    struct capture_frame frame;
    int rc;

    if (!cap)
        return -ENOENT;
    while ((rc = capture_pcap_next(cap, &frame, err, errlen)) == 1)
        engine_frame(e, &frame);
    if (rc < 0)
        health_parse_error(e->health, HEALTH_L2, "capture_file_truncated");
    capture_pcap_free(cap);
    engine_publish(e);
    return rc < 0 ? -EIO : 0;
}
