/* engine: the frame-to-metrics pipeline and its ownership. */
#include "engine.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builtin.h"
#include "call_cdr.h"
#include "capture_pcap.h"
#include "decode.h"
#include "dedup.h"
#include "events.h"
#include "health.h"
#include "log.h"
#include "lua_bridge.h"
#include "metrics.h"
#include "oplabel.h"
#include "sip_dialog.h"
#include "sip_frame.h"
#include "sip_parse.h"
#include "ws_frame.h"

#ifndef SIPSCOPE_VERSION
#define SIPSCOPE_VERSION "0.0.0"
#endif

#define PUBLISH_EVERY 4096 /* frames between table-size updates */

/* With the lookahead on, a UDP message is tracked 3 to ENGINE_LOOKAHEAD frames after its own
 * (sooner at a flush), so that its table lookups find their cache lines loaded (track_prepare,
 * track_prefetch): see lookahead_step, where the frame just handled is of age 1. */
#define LOOKAHEAD ENGINE_LOOKAHEAD
#define TRACK_AGE 4 /* the age tracking starts at: the prefetch steps take ages 1 to 3 */
#define RING_SLOTS (LOOKAHEAD + 1) /* a power of two: slots are found with a mask */
_Static_assert(TRACK_AGE <= LOOKAHEAD, "a message is tracked within the frames held");
_Static_assert((RING_SLOTS & (RING_SLOTS - 1)) == 0, "RING_SLOTS must be a power of two");

/* A message parsed and waiting to be tracked. */
struct deferred {
    uint32_t frame; /* engine.frames when its frame came */
    struct packet pkt;
    struct sip_msg msg;
    struct track_hint hint;
    struct sip_header hdrs[SIP_MAX_HEADERS];
};

struct engine {
    struct engine_config cfg;
    struct portset ports; /* copy of cfg.sip_ports when set */
    struct metrics *reg;
    struct oplabel_set *ops;
    struct builtin *builtin;
    struct health *health;
    struct track *track;
    struct lua_bridge *rules; /* NULL without --rules */
    const uint8_t *routes;    /* lua_bridge_routes(rules), or NULL */
    struct events *events;    /* NULL without --events */
    struct ip_reasm *reasm;
    struct tcp_stream *tcp;
    const struct packet *seg_pkt; /* the TCP segment being handed to the framer */
    uint32_t seg_msgs;            /* SIP messages framed from it */
    uint64_t next_deadline;       /* earliest reassembly deadline, checked per frame */
    uint32_t frames_since_publish;
    struct sip_header hdrs[SIP_MAX_HEADERS];
    uint8_t ws_buf[WS_FRAME_MAX_MESSAGE]; /* a WebSocket message unmasked (ws_frame_consume) */
    /* The lookahead (engine_lookahead_start): a ring of RING_SLOTS messages, NULL when off. */
    struct deferred *ring;
    unsigned ring_first, ring_len;
    uint32_t frames; /* frames seen, wrapping: the age of a message waiting */
    struct dedup *dedup; /* NULL: copies are kept (--dedup-window 0) */
    /* The packet clock (engine_time): the latest time handed on, and what is added to a frame's
     * own time since its capture's clock stepped back. */
    uint64_t latest_ns, time_offset;
    int64_t wall_step; /* engine_set_clock_step's, which the events file follows too */
    struct engine_losses losses; /* engine_losses */
};

static int file_iface_name(void *ctx, uint32_t iface, char *buf, size_t len)
{
    (void)ctx;
    if (iface != 0)
        return -ENOENT;
    snprintf(buf, len, "file");
    return 0;
}

void engine_config_defaults(struct engine_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    track_config_defaults(&cfg->track);
    ip_reasm_config_defaults(&cfg->reasm);
    tcp_stream_config_defaults(&cfg->tcp);
    cfg->iface_name = file_iface_name;
    cfg->capture = "pcap";
    cfg->count_seen = true;
    cfg->events_fields = CALL_CDR_ALL;
    lua_bridge_config_defaults(&cfg->rules);
}

static uint64_t tcp_deliver(void *ctx, const struct packet *pkt, struct tcp_stream_chunk *chunk);
static void reasm_error(void *ctx, const char *reason);

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
    e->cfg.rules.engine_fields = cfg->events_path ? cfg->events_fields : 0;
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
                                        cfg->capture, cfg->iface_name, cfg->iface_ctx)
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
        e->events = events_open(cfg->events_path, e->reg, e->ops, cfg->events_fields,
                                cfg->events_append, err, errlen);
        if (!e->events)
            goto fail;
    }
    sink = (struct track_sink){.emit = (e->rules || e->events) ? sink_emit : sink_emit_builtin,
                               .label = oplabel_count(e->ops) ? sink_label : NULL,
                               .ctx = e};
    /* The calls' text (Call-ID, URIs) is only read by events and rules: without them a call
     * takes 248 bytes less to keep; the call_cdr record (336 more) only by events lines. */
    struct track_config track_cfg = cfg->track;
    track_cfg.call_keep = cfg->events_path && cfg->events_fields ? SIP_DIALOG_KEEP_CDR
                          : want_rules || cfg->events_path       ? SIP_DIALOG_KEEP_TEXT
                                                                 : SIP_DIALOG_KEEP_NONE;
    e->track = track_new(&track_cfg, &sink);
    if (!e->track) {
        snprintf(err, errlen,
                 "cannot allocate the tracking tables (%u calls, %u transactions, %u "
                 "registrations): lower --max-calls, --max-transactions or --max-registrations",
                 cfg->track.max_calls, cfg->track.max_transactions, cfg->track.max_registrations);
        goto fail;
    }
    e->reasm = ip_reasm_new(&cfg->reasm, reasm_error, e);
    e->tcp = tcp_stream_new(&cfg->tcp, tcp_deliver, reasm_error, e);
    if (!e->reasm || !e->tcp) {
        snprintf(err, errlen,
                 "cannot allocate the reassembly tables (%u IP datagrams, %u TCP streams): "
                 "lower --max-tcp-streams",
                 cfg->reasm.max_datagrams, cfg->tcp.max_streams);
        goto fail;
    }
    if (cfg->dedup_window_ns && !(e->dedup = dedup_new(cfg->dedup_window_ns))) {
        snprintf(err, errlen, "out of memory for the table of --dedup-window");
        goto fail;
    }
    e->next_deadline = UINT64_MAX;
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
    free(e->ring);
    dedup_free(e->dedup);
    tcp_stream_free(e->tcp);
    ip_reasm_free(e->reasm);
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

const struct engine_losses *engine_losses(const struct engine *e)
{
    return &e->losses;
}

struct metrics *engine_metrics(struct engine *e)
{
    return e->reg;
}

/* Runs the rules' on_tick when the engine clock has passed a second since the last one. Called
 * after each message is tracked, so that a tick comes between the same messages with or without
 * the lookahead. */
static void rules_clock(struct engine *e)
{
    if (e->routes && e->routes[TRACK_EVENT_COUNT])
        lua_bridge_clock(e->rules, track_clock(e->track));
}

/* The i-th message waiting in the lookahead ring, 0 the oldest. */
static inline struct deferred *ring_slot(struct engine *e, uint32_t i)
{
    return &e->ring[(e->ring_first + i) & (RING_SLOTS - 1)];
}

/* Tracks the oldest message waiting in the lookahead ring. */
static void lookahead_track_oldest(struct engine *e)
{
    struct deferred *d = &e->ring[e->ring_first];
    track_message_prepared(e->track, &d->msg, &d->pkt, &d->hint);
    e->ring_first = (e->ring_first + 1) & (RING_SLOTS - 1);
    e->ring_len--;
    rules_clock(e);
}

/* Tracks every message waiting in the lookahead ring, oldest first. Called before anything that
 * tracks a message at once (TCP, reassembly, timers of the streams) or reads the trackers. */
static void lookahead_flush(struct engine *e)
{
    while (e->ring_len)
        lookahead_track_oldest(e);
}

/* The message waiting whose frame came `age` frames ago (1: the frame just handled), or NULL.
 * With a SIP message in every frame it is the age-th newest; else the ring is searched. */
static struct deferred *waiting_of_age(struct engine *e, uint32_t age)
{
    uint32_t frame = e->frames - age;

    if (age <= e->ring_len && ring_slot(e, e->ring_len - age)->frame == frame)
        return ring_slot(e, e->ring_len - age);
    for (unsigned i = 0; i < e->ring_len; i++)
        if (ring_slot(e, i)->frame == frame)
            return ring_slot(e, i);
    return NULL;
}

/* Moves each message waiting one step closer to being tracked, by the age of its frame, so that
 * each step loads what the next one reads: its buckets at age 1, the entries they point at at 2,
 * the rest of the chains, the records of the entries found and those of their neighbours in the
 * lists at 3. One frame between steps is several times a memory load's latency. By frames, not
 * messages: frames that are not SIP (RTP beside it in a file) age the messages waiting as SIP
 * frames do.
 *
 * Messages are tracked in groups, in capture order: when the oldest is past LOOKAHEAD (the bound
 * engine.h promises the capture), every message of age TRACK_AGE or more, five when every frame
 * is SIP. The code that decodes and parses a frame and the code that tracks a message
 * and runs the rules and the events file do not fit in the level-1 instruction cache together.
 * Tracked one per frame, they evicted each other on every frame; in groups each runs several
 * times in a row (cachegrind, bundled rules and events file: level-1 instruction misses per
 * message 207 -> 149, data misses 78 -> 81; BENCHMARK.md, "Since this run"). */
static void lookahead_step(struct engine *e)
{
    struct deferred *w;

    if ((w = waiting_of_age(e, 1)))
        track_prefetch(e->track, &w->hint);
    if ((w = waiting_of_age(e, 2)))
        track_prefetch_more(e->track, &w->hint);
    if ((w = waiting_of_age(e, 3))) {
        track_prefetch_neighbours(e->track, &w->hint);
        if (e->routes) { /* rules: the call's entry is loaded by now (track_prefetch_more) */
            const struct sip_dialog *d = track_hint_call(e->track, &w->hint);
            if (d)
                lua_bridge_prefetch_call(e->rules, d);
        }
    }
    if (e->ring_len && e->frames - ring_slot(e, 0)->frame > LOOKAHEAD)
        while (e->ring_len && e->frames - ring_slot(e, 0)->frame >= TRACK_AGE)
            lookahead_track_oldest(e);
}

int engine_lookahead_start(struct engine *e)
{
    if (!e->ring && !(e->ring = malloc(RING_SLOTS * sizeof(*e->ring))))
        return -ENOMEM;
    return 0;
}

void engine_flush(struct engine *e)
{
    lookahead_flush(e);
}

void engine_publish(struct engine *e)
{
    struct track_stats st;
    struct ip_reasm_stats rs;
    struct tcp_stream_stats ts;
    lookahead_flush(e);
    track_get_stats(e->track, &st);
    health_tables(e->health, &st);
    ip_reasm_get_stats(e->reasm, &rs);
    tcp_stream_get_stats(e->tcp, &ts);
    health_reasm_tables(e->health, rs.datagrams, rs.evictions, ts.streams, ts.evictions);
    if (e->rules)
        lua_bridge_publish(e->rules);
    if (e->events) {
        events_follow_path(e->events); /* first: the waiting lines go where it points now */
        events_flush(e->events);
    }
    e->frames_since_publish = 0;
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

/* Parses and tracks one message; returns the bytes used or a negative errno from the parser.
 * With defer, the message is parsed into the lookahead ring and waits there (lookahead_step).
 * Always inlined: once HEP's TCP path became a second caller, GCC stopped inlining it, and the
 * call cost the datagram path 40 instructions per message. */
static inline __attribute__((always_inline)) int
handle_message(struct engine *e, const struct packet *pkt, const uint8_t *data, uint32_t len,
               enum sip_parse_mode mode, bool defer)
{
    struct sip_msg local, *msg = &local;
    struct sip_header *hdrs = e->hdrs;
    struct deferred *slot = NULL;

    if (defer) {
        slot = ring_slot(e, e->ring_len);
        msg = &slot->msg;
        hdrs = slot->hdrs;
    }
    int n = sip_parse((const char *)data, len, mode, msg, hdrs, SIP_MAX_HEADERS);

    if (n < 0) {
        /* Without a port filter, SIP is recognised by its start line: other traffic (RTP,
         * DNS...) is not an error. With one, everything on a SIP port should be SIP. */
        if (!e->cfg.sip_ports && !start_line_seen(msg))
            return n;
        if (n == -EAGAIN && mode == SIP_PARSE_STREAM)
            return n;
        if (n == -EAGAIN)
            e->losses.incomplete++;
        health_parse_error(e->health, HEALTH_SIP,
                           n == -EAGAIN ? "incomplete" : sip_error_name((enum sip_error)msg->error));
        return n;
    }
    if (msg->anomalies)
        count_anomalies(e, msg->anomalies);
    health_sip_message(e->health, pkt);
    if (!defer) {
        lookahead_flush(e); /* a reassembled datagram keeps its place after those waiting */
        track_message(e->track, msg, pkt);
        return n;
    }
    /* It waits in the ring, its steps taken frame by frame (lookahead_step). */
    slot->frame = e->frames;
    slot->pkt = *pkt;
    track_prepare(e->track, msg, &slot->hint);
    e->ring_len++;
    return n;
}

/* Junk on UDP: a datagram carries one message from its first byte (RFC 3261 §18.3; only empty
 * lines may precede the start line, §7.5), so sipscope does not hunt for a start line inside a
 * datagram: one without a start line is not SIP. With --sip-ports it is counted (the port says
 * it should be SIP, e.g. sip/start_line); without, it is other traffic and ignored. On TCP,
 * junk before a start line is skipped by the framer and counted (sip_frame.h). */
static bool handle_udp(struct engine *e, const struct packet *pkt, bool defer)
{
    if (only_line_breaks(pkt->payload, pkt->payload_len))
        return false; /* RFC 5626 keep-alive */
    return handle_message(e, pkt, pkt->payload, pkt->payload_len, SIP_PARSE_DATAGRAM, defer) > 0;
}

/* A UDP super-packet (capture_frame.gso_size): a sender's UDP_SEGMENT, or GRO, put datagrams of
 * gso_size bytes end to end in one frame (the last one shorter), which the receiver gets one by
 * one. Each is parsed and counted as its own datagram, with the frame's addresses and time.
 * When the snap length cut the frame, the datagrams it holds whole count, the one it cut is
 * read as any datagram cut, and those past it were never captured (the frame counts as
 * truncated). Not deferred: several messages share the frame. */
__attribute__((noinline, cold)) static bool handle_udp_gso(struct engine *e,
                                                           const struct packet *pkt)
{
    struct packet dgram = *pkt;
    bool any = false;

    for (uint32_t off = 0; off < pkt->payload_len; off += pkt->gso_size) {
        uint32_t left = pkt->payload_len - off;
        dgram.payload = pkt->payload + off;
        dgram.payload_len = left < pkt->gso_size ? left : pkt->gso_size;
        any |= handle_udp(e, &dgram, false);
    }
    return any;
}

/* The payload of a HEP packet that an agent copied from TCP (decode.h): whole messages, one or
 * several (a segment as it came), parsed in turn. Line breaks between them are keep-alives. A
 * message cut at the end cannot be completed by a later HEP packet: it counts as incomplete.
 * Not deferred: several messages share the frame. */
__attribute__((noinline, cold)) static bool handle_hep_tcp(struct engine *e,
                                                           const struct packet *pkt)
{
    const uint8_t *p = pkt->payload;
    uint32_t left = pkt->payload_len;
    bool any = false;

    for (;;) {
        while (left && (*p == '\r' || *p == '\n')) {
            p++;
            left--;
        }
        if (!left)
            return any;
        int n = handle_message(e, pkt, p, left, SIP_PARSE_STREAM, false);
        if (n == -EAGAIN) {
            e->losses.incomplete++;
            health_parse_error(e->health, HEALTH_SIP, "incomplete");
        }
        if (n <= 0)
            return any;
        any = true;
        p += n;
        left -= (uint32_t)n;
    }
}

/* A framed TCP message: counted and tracked like a datagram's. */
static void frame_message(void *ctx, const struct sip_msg *msg)
{
    struct engine *e = ctx;
    if (msg->anomalies)
        count_anomalies(e, msg->anomalies);
    health_sip_message(e->health, e->seg_pkt);
    track_message(e->track, msg, e->seg_pkt);
    e->seg_msgs++;
}

static void frame_error(void *ctx, int sip, const char *reason)
{
    struct engine *e = ctx;
    health_parse_error(e->health, sip ? HEALTH_SIP : HEALTH_REASM, reason);
}

static const struct sip_frame_ops frame_ops = {frame_message, frame_error};

/* A message from a WebSocket frame: parsed and tracked as a datagram's, with the segment's
 * addresses and time, counted under transport "ws". Cold: no SIP over UDP or TCP pays for it. */
__attribute__((noinline, cold)) static void ws_message(void *ctx, const uint8_t *data, size_t len)
{
    struct engine *e = ctx;
    struct packet pkt = *e->seg_pkt;

    pkt.websocket = 1;
    if (handle_message(e, &pkt, data, (uint32_t)len, SIP_PARSE_DATAGRAM, false) > 0)
        e->seg_msgs++;
}

static void ws_error(void *ctx, const char *reason)
{
    struct engine *e = ctx;
    health_parse_error(e->health, HEALTH_REASM, reason);
}

static const struct ws_frame_ops ws_ops = {ws_message, ws_error};

/* A WebSocket stream's bytes, after skip bytes of handshake. */
__attribute__((noinline, cold)) static uint64_t
ws_deliver(struct engine *e, struct tcp_stream_chunk *chunk, size_t skip)
{
    struct tcp_stream_chunk rest = {chunk->data + skip, chunk->len - (uint32_t)skip, chunk->flags,
                                    0};
    uint64_t used = ws_frame_consume(&ws_ops, e, &rest, e->ws_buf);

    chunk->flags = rest.flags;
    chunk->mark = 0; /* the SIP framer's, whose bytes these are no longer */
    return skip + used;
}

static uint64_t tcp_deliver(void *ctx, const struct packet *pkt, struct tcp_stream_chunk *chunk)
{
    struct engine *e = ctx;
    size_t skip = 0;

    e->seg_pkt = pkt;
    /* A stream that has carried no SIP may be SIP over WebSocket: starting with its handshake,
     * or picked up mid-way. One that has carried SIP over TCP stays that (ws_frame.h). */
    if (!(chunk->flags & (WS_FRAME_ON | SIP_FRAME_SIP_SEEN)) &&
        ws_frame_detect(&ws_ops, e, chunk, &skip) == WS_FRAME_MORE) {
        /* A handshake, or a frame that may start WebSocket, is not whole yet: everything waits,
         * since the bytes before the frame may be the end of another one and must not reach
         * the SIP framer before it is decided. Only when tcp_stream holds all it can are they
         * let go, skipped, for the frame to wait alone (a frame fits: WS_FRAME_MAX_SPAN). */
        if (chunk->len < e->cfg.tcp.max_pending)
            return 0;
        chunk->flags |= SIP_FRAME_SKIPPED;
        chunk->mark = 0;
        return skip;
    }
    if (chunk->flags & WS_FRAME_ON)
        return ws_deliver(e, chunk, skip);
    /* Without a port filter any TCP stream may be something else: stay quiet until SIP. */
    return sip_frame_consume(&frame_ops, e, chunk, e->cfg.sip_ports == NULL, e->hdrs,
                             SIP_MAX_HEADERS);
}

static void reasm_error(void *ctx, const char *reason)
{
    struct engine *e = ctx;
    health_parse_error(e->health, HEALTH_REASM, reason);
}

static bool handle_tcp_segment(struct engine *e, const struct packet *pkt)
{
    e->seg_msgs = 0;
    tcp_stream_segment(e->tcp, pkt);
    return e->seg_msgs != 0;
}

static void update_deadline(struct engine *e)
{
    uint64_t a = ip_reasm_next_deadline(e->reasm), b = tcp_stream_next_deadline(e->tcp);
    e->next_deadline = a < b ? a : b;
}

/* Whether a UDP or TCP packet passes the port filter (--sip-ports; without it, every port). */
static bool on_sip_port(const struct engine *e, const struct packet *pkt)
{
    return !e->cfg.sip_ports || portset_has(&e->ports, pkt->sport) ||
           portset_has(&e->ports, pkt->dport);
}

/* Handles a decoded UDP datagram or TCP segment; returns whether it yielded SIP, and adds
 * HEALTH_MATCHED to *results when it passed the port filter. A datagram may wait in the
 * lookahead ring (defer); a TCP segment's messages are tracked at once, after those waiting. */
static bool handle_transport(struct engine *e, enum decode_result r, const struct packet *pkt,
                             bool defer, unsigned *results)
{
    if (!on_sip_port(e, pkt))
        return false;
    *results |= HEALTH_BIT(HEALTH_MATCHED);
    if (r == DECODE_UDP && pkt->hep && pkt->l4_proto == IPPROTO_TCP)
        return handle_hep_tcp(e, pkt);
    /* A HEP payload holds the agent's copy, not the frame's datagrams (an agent's super-packet
     * of several HEP packets is not split: decode reads the first). */
    if (r == DECODE_UDP && pkt->gso_size && pkt->payload_len > pkt->gso_size && !pkt->hep)
        return handle_udp_gso(e, pkt);
    if (r == DECODE_UDP)
        return handle_udp(e, pkt, defer);
    lookahead_flush(e);
    return handle_tcp_segment(e, pkt);
}

/* A copy of a packet just captured elsewhere (dedup.h) goes no further: not reassembled, not
 * matched, not parsed; it is counted, and r becomes DECODE_SKIP. Called only with e->dedup
 * (a test at the call: without copies to drop a frame pays nothing more). What the port filter
 * leaves out (RTP beside SIP, offline or inside tunnels) is not looked at, nor are keep-alives
 * (many UAs send the same bytes, and they count nowhere). */
static enum decode_result unless_copy(struct engine *e, enum decode_result r,
                                      const struct packet *pkt)
{
    if ((r != DECODE_FRAGMENT && !on_sip_port(e, pkt)) ||
        (r == DECODE_UDP && only_line_breaks(pkt->payload, pkt->payload_len)) ||
        !dedup_repeat(e->dedup, r, pkt, pkt->ts_ns))
        return r;
    health_duplicate(e->health, pkt->iface);
    return DECODE_SKIP;
}

/* The time the pipeline works with for a frame captured at ts. Timers run on the latest packet
 * time, and a deadline is set from the packet that arms it: after a step back of the capture's
 * clock (a host whose clock NTP stepped, files joined with `mergecap -a`), every deadline set
 * from the later packets would be in the past already, and every call would time out. So a
 * frame more than ENGINE_CLOCK_STEP_NS older than the latest starts an offset: the frames after
 * it are timed as if the clock had not stepped back, their delays unchanged. The offset ends when
 * a frame's own time is back at the latest, so that one frame with a wrong time (a time of 0)
 * shifts only itself. The events file keeps the frames' own times (engine_set_clock_step). A
 * forward step cannot be told from a capture's silence, and is taken as time gone by. */
static uint64_t engine_time(struct engine *e, uint64_t ts)
{
    uint64_t t = ts + e->time_offset;

    if (e->time_offset && ts + ENGINE_CLOCK_STEP_NS >= e->latest_ns) {
        t = ts; /* the frame's own clock caught up: no offset any more */
        e->time_offset = 0;
        engine_set_clock_step(e, e->wall_step);
    } else if (t + ENGINE_CLOCK_STEP_NS < e->latest_ns) {
        e->time_offset = e->latest_ns - ts;
        t = e->latest_ns;
        health_clock_step(e->health);
        engine_set_clock_step(e, e->wall_step);
    }
    if (t > e->latest_ns)
        e->latest_ns = t;
    return t;
}

void engine_frame(struct engine *e, const struct capture_frame *frame)
{
    struct packet pkt;
    enum decode_result r;
    bool reassembled = false;
    unsigned results = HEALTH_BIT(HEALTH_SEEN);
    uint64_t now = engine_time(e, frame->ts_ns);

    /* Live, the kernel counted the frames it cut (health_add_kernel), as it counts those it saw:
     * counted here too, each would count twice. */
    if (e->cfg.count_seen && frame->caplen < frame->wirelen) {
        e->losses.truncated++;
        health_truncated(e->health, frame->iface);
    }
    /* Reassembly timers run on packet time even when no fragment or segment comes. */
    if (now >= e->next_deadline) {
        lookahead_flush(e);
        ip_reasm_expire(e->reasm, now);
        tcp_stream_expire(e->tcp, now);
    }
    r = decode_frame(frame, e->cfg.decap, &pkt);
    pkt.ts_ns = now;
    if (pkt.truncated && frame->caplen >= frame->wirelen) {
        e->losses.truncated++;
        health_truncated(e->health, frame->iface); /* a mirrored packet its mirror cut */
    }
    if (e->dedup)
        r = unless_copy(e, r, &pkt);
    /* A reassembled datagram may hold a tunnelled fragment: each pass strips one level. Its
     * bytes live in the reassembly buffer, not in the frame: it is never deferred. */
    for (int depth = 0; r == DECODE_FRAGMENT && depth <= DECODE_MAX_TUNNELS; depth++) {
        const uint8_t *data;
        uint32_t len;
        reassembled = true;
        if (ip_reasm_add(e->reasm, &pkt, &data, &len) != 1) {
            r = DECODE_SKIP;
            break;
        }
        r = decode_transport(data, len, &pkt);
    }
    if (reassembled && e->dedup) /* whole, a datagram NATed on its way is told from its copy */
        r = unless_copy(e, r, &pkt);
    switch (r) {
    case DECODE_ERROR:
        health_parse_error(e->health, (enum health_stage)pkt.error_stage, pkt.error_reason);
        break;
    case DECODE_FRAGMENT: /* fragments nested deeper than the loop above follows */
        health_parse_error(e->health, HEALTH_REASM, "fragment_nested");
        break;
    case DECODE_SKIP:
        break;
    case DECODE_UDP:
    case DECODE_TCP:
        if (handle_transport(e, r, &pkt, e->ring && !reassembled, &results))
            results |= HEALTH_BIT(HEALTH_DECODED);
        break;
    }
    /* Live, the kernel counts seen and matched packets (health_add_kernel). */
    if (!e->cfg.count_seen)
        results &= HEALTH_BIT(HEALTH_DECODED);
    health_packets(e->health, frame->iface, results);
    update_deadline(e);
    if (e->ring) {
        e->frames++;
        lookahead_step(e);
    }
    rules_clock(e);
    if (++e->frames_since_publish == PUBLISH_EVERY)
        engine_publish(e);
}

void engine_tick(struct engine *e, uint64_t now_ns)
{
    now_ns += e->time_offset; /* the frames' timeline (engine_time) */
    lookahead_flush(e); /* messages waiting came before now_ns */
    ip_reasm_expire(e->reasm, now_ns);
    tcp_stream_expire(e->tcp, now_ns);
    update_deadline(e);
    track_advance(e->track, now_ns);
    if (e->routes && e->routes[TRACK_EVENT_COUNT])
        lua_bridge_clock(e->rules, track_clock(e->track)); /* on_tick */
    engine_publish(e);
}

void engine_kernel_counts(struct engine *e, uint32_t iface, uint64_t seen, uint64_t matched,
                          uint64_t ringbuf_full, uint64_t truncated)
{
    health_add_kernel(e->health, iface, seen, matched, ringbuf_full, truncated);
}

void engine_iface_up(struct engine *e, uint32_t iface, bool up)
{
    health_set_iface_up(e->health, iface, up);
}

int engine_reload_rules(struct engine *e, char *msg, size_t msglen)
{
    if (!e->rules) {
        snprintf(msg, msglen, "no rules loaded: nothing to reload");
        return 0;
    }
    lookahead_flush(e); /* the messages before the reload go to the rules of before */
    return lua_bridge_reload(e->rules, msg, msglen);
}

int engine_reopen_events(struct engine *e, char *msg, size_t msglen)
{
    return e->events ? events_reopen(e->events, msg, msglen) : 0;
}

uint64_t engine_close_events(struct engine *e)
{
    uint64_t lost;

    if (!e->events)
        return 0;
    events_flush(e->events); /* then events_close has nothing left to write: only to close */
    lost = events_lost(e->events);
    if (events_close(e->events) != 0)
        lost++; /* the close failed (counted as one line lost) */
    e->events = NULL;
    return lost;
}

void engine_set_clock_step(struct engine *e, int64_t ns)
{
    e->wall_step = ns;
    if (e->events)
        events_set_clock_step(e->events, ns - (int64_t)e->time_offset);
}

int engine_describe_rules(struct engine *e, FILE *out)
{
    return e->rules ? lua_bridge_describe(e->rules, out) : 0;
}

struct lua_bridge *engine_rules(struct engine *e)
{
    return e->rules;
}

static int stopped(char *err, size_t errlen)
{
    snprintf(err, errlen, "stopped before the end of the file");
    return -EINTR;
}

int engine_read_file(struct engine *e, const char *path, char *err, size_t errlen)
{
    return engine_read_file_until(e, path, NULL, NULL, err, errlen);
}

int engine_read_file_until(struct engine *e, const char *path, bool (*stop)(void *ctx), void *ctx,
                           char *err, size_t errlen)
{
    struct capture_pcap *cap = capture_pcap_open(path, err, errlen);
    struct capture_frame frame;
    int rc;

    if (e->events)
        events_set_stop(e->events, stop, ctx);
    if (!cap)
        return stop && stop(ctx) ? stopped(err, errlen) : -ENOENT;
    /* Lookahead needs frames that outlive the next read (a mapped file). Rules see nothing of
     * it: messages are still tracked, labelled and dispatched one by one in capture order (only
     * the engine's own parse counters run a few messages ahead); a message waiting in the ring
     * keeps its parsed headers and packet there until it is tracked. */
    struct deferred *kept = e->ring; /* a lookahead already on (engine_lookahead_start) */
    lookahead_flush(e);
    e->ring = NULL;
    if (capture_pcap_in_place(cap))
        e->ring = kept ? kept : malloc(RING_SLOTS * sizeof(*e->ring));
    while ((rc = capture_pcap_next(cap, &frame, err, errlen)) == 1) {
        engine_frame(e, &frame);
        if (stop && stop(ctx))
            break;
    }
    /* A signal that interrupted a read makes it fail: that is the stop, not a damaged file. */
    if (rc != 0 && stop && stop(ctx))
        rc = stopped(err, errlen);
    lookahead_flush(e);
    if (e->ring != kept)
        free(e->ring);
    e->ring = kept;
    if (rc < 0 && rc != -EINTR)
        health_parse_error(e->health, HEALTH_L2,
                           rc == -EIO ? "capture_file_truncated" : "capture_file_unreadable");
    uint32_t snaplen;
    uint64_t overlong = capture_pcap_overlong(cap, &snaplen);
    if (overlong) {
        e->losses.overlong += overlong;
        e->losses.overlong_snaplen = snaplen;
    }
    capture_pcap_free(cap);
    engine_publish(e);
    return rc < 0 ? rc : 0;
}
