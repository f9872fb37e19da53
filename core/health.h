/* health: the engine's own sipscope_ families (packets per interface, capture losses, parse
 * errors, SIP messages per transport, table sizes, build info) and the standard process_
 * metrics. The engine calls it on every frame, so the per-frame calls are cheap: cached series,
 * no string work. */
#ifndef SIPSCOPE_HEALTH_H
#define SIPSCOPE_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decode.h"
#include "metrics.h"
#include "track.h"

#define HEALTH_MAX_IFACES 64

enum health_packet_result {
    HEALTH_SEEN = 0, /* captured */
    HEALTH_MATCHED,  /* accepted by the port filter */
    HEALTH_DECODED,  /* yielded at least one SIP message */
    HEALTH_RESULT_COUNT
};

struct health;

/* Names an interface id (frame.iface) for the iface label: writes the name into buf[len] and
 * returns 0, or a negative errno when the id is unknown (it is then labelled by its number). */
typedef int (*health_iface_name_fn)(void *ctx, uint32_t iface, char *buf, size_t len);

/* Declares the families. capture is "pcap" or "bpf"; luajit the LuaJIT version or "none".
 * Interface ids are named by name_fn the first time they are seen; at most HEALTH_MAX_IFACES
 * interfaces get their own series, later ones share the series of iface "other", and so does
 * id HEALTH_IFACE_OTHER. */
#define HEALTH_IFACE_OTHER UINT32_MAX
struct health *health_new(struct metrics *reg, const char *version, const char *luajit,
                          const char *capture, health_iface_name_fn name_fn, void *name_ctx);
void health_free(struct health *h);

/* Counts one frame of interface iface under each result it reached: results holds
 * HEALTH_BIT(result) for each. One call per frame, whatever it reached. */
#define HEALTH_BIT(result) (1u << (result))
void health_packets(struct health *h, uint32_t iface, unsigned results);
void health_truncated(struct health *h, uint32_t iface);
/* A packet of interface iface dropped as a copy of one seen just before (dedup.h). */
void health_duplicate(struct health *h, uint32_t iface);

/* The capture's clock stepped back (engine.h, ENGINE_CLOCK_STEP_NS). */
void health_clock_step(struct health *h);

/* Whether a captured interface is up (live capture, capture_bpf_iface_states). */
void health_set_iface_up(struct health *h, uint32_t iface, bool up);

/* Kernel-side counts of interface iface since the last call (capture_bpf_counter_deltas): added,
 * so that the interfaces past HEALTH_MAX_IFACES add up under "other". */
void health_add_kernel(struct health *h, uint32_t iface, uint64_t seen, uint64_t matched,
                       uint64_t ringbuf_full, uint64_t truncated);

/* Stages of sipscope_parse_errors_total; the first three equal enum decode_stage. */
enum health_stage {
    HEALTH_L2 = DECODE_STAGE_L2,
    HEALTH_L3 = DECODE_STAGE_L3,
    HEALTH_L4 = DECODE_STAGE_L4,
    HEALTH_REASM,
    HEALTH_SIP,
    HEALTH_STAGE_COUNT
};

/* A parse error or anomaly; reason is a static snake_case string (its address is the cache key,
 * so pass the same string for the same reason). */
void health_parse_error(struct health *h, enum health_stage stage, const char *reason);

/* A SIP message parsed from pkt, counted by transport ("udp", "tcp", or "ws" for a message
 * framed by WebSocket) and IP version. */
void health_sip_message(struct health *h, const struct packet *pkt);

/* Publishes the tracker table sizes and evictions. */
void health_tables(struct health *h, const struct track_stats *st);

/* Publishes the reassembly tables: "reasm" (IP datagrams in progress) and "tcp" (TCP
 * half-streams); evictions are running totals. */
void health_reasm_tables(struct health *h, uint32_t reasm_entries, uint64_t reasm_evictions,
                         uint32_t tcp_entries, uint64_t tcp_evictions);

#endif
