/* engine: owns and wires one pipeline instance: decode, SIP parse, tracking, built-in and health
 * metrics, the operators' Lua rules and the events file. Frames go in (from a pcap file or a
 * live capture), metrics come out of its registry.
 * One thread drives an engine; the registry may be read from another (see metrics.h). All
 * state is per engine, never global, so several engines could shard traffic later. */
#ifndef SIPSCOPE_ENGINE_H
#define SIPSCOPE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "capture.h"
#include "ip_reasm.h"
#include "lua_bridge.h"
#include "portset.h"
#include "tcp_stream.h"
#include "track.h"

struct metrics;

struct engine_config {
    struct track_config track;
    struct ip_reasm_config reasm; /* IP fragments */
    struct tcp_stream_config tcp; /* TCP streams */
    /* Frames whose ports are not in this set are ignored; NULL recognises SIP on any port by
     * its start line (the offline default, METRICS.md). */
    const struct portset *sip_ports;
    unsigned decap; /* encapsulations to open: DECODE_VXLAN | DECODE_GRE (--decapsulate) */
    /* Names frame.iface ids for the iface label; NULL names id 0 "file" (offline). */
    int (*iface_name)(void *ctx, uint32_t iface, char *buf, size_t len);
    void *iface_ctx;
    const char *capture; /* "pcap" or "bpf", for sipscope_build_info */
    /* Count every frame as seen, and one cut at the snap length as truncated (offline; live,
     * the kernel counts both, engine_kernel_counts). */
    bool count_seen;
    uint32_t symbol_cap; /* interned label values; 0 for the default */
    /* Rules: run when rules.rules_dir (--rules) or rules.rule_files is set; without them no Lua
     * state exists and no event costs anything more. */
    struct lua_bridge_config rules;
    const char *events_path; /* --events FILE: CDR and registration lines; NULL for none */
    uint32_t events_fields;  /* --events-fields: the call_cdr fields (mask) call lines carry */
    bool events_append;      /* append to the events file (live: a restart keeps the lines of
                              * the run before); otherwise it is truncated (offline reads) */
    /* --dedup-window: a packet that is a copy of one seen this recently is dropped and counted
     * (dedup.h); 0 keeps every copy (the offline default). */
    uint64_t dedup_window_ns;
};

/* Fills cfg with the defaults (track, reassembly and TCP defaults, any port, interface "file",
 * pcap, no rules, no events file, every call_cdr field on its lines). */
void engine_config_defaults(struct engine_config *cfg);

struct engine;

/* Builds an engine: registry, rule labels and metrics, built-in families, events file, trackers.
 * Returns NULL with a reason in err[errlen] (a rule that fails to load names its file). The
 * calling thread must be the one that drives the engine (the rule budget watches it). */
struct engine *engine_new(const struct engine_config *cfg, char *err, size_t errlen);
void engine_free(struct engine *e);

/* A frame older than the latest one by more than this is taken as a step back of its capture's
 * clock (engine_time in engine.c): sipscope_clock_steps_total. Frames out of order by less are
 * timed as they are, a negative delay counted as 0 (sipscope_negative_delays_total). */
#define ENGINE_CLOCK_STEP_NS 1000000000ULL

/* Processes one captured frame through the whole pipeline. Without the lookahead, the frame's
 * bytes are not read after this returns. */
void engine_frame(struct engine *e, const struct capture_frame *frame);

/* The lookahead: a UDP message is parsed when its frame comes, and tracked (its tables
 * read, its events dispatched) a few frames later, at most ENGINE_LOOKAHEAD, once its table
 * lookups have been prefetched. Messages are still tracked in capture order, several in a row;
 * only the engine's own parse counters run ahead. A frame's bytes are read until ENGINE_LOOKAHEAD
 * more frames have gone through engine_frame, or until engine_flush: the capture must keep them
 * until then. engine_read_file turns it on by itself for a mapped file, and off for a file it
 * cannot map. */
#define ENGINE_LOOKAHEAD 7

/* Turns the lookahead on for the engine's life. Returns 0 or -ENOMEM. */
int engine_lookahead_start(struct engine *e);

/* Tracks every message waiting in the lookahead; after it no frame's bytes are read. Call it
 * whenever the capture has nothing more at hand (messages must not wait for traffic). */
void engine_flush(struct engine *e);

/* Advances the engine clock with no packet (live idle tick), running due timers. Messages still
 * waiting in the lookahead are tracked first: their frames must still be readable. */
void engine_tick(struct engine *e, uint64_t now_ns);

/* Publishes table sizes to the registry; called after a batch of frames. */
void engine_publish(struct engine *e);

/* Closes the events file now, its waiting lines written: offline, once the read is done, so
 * that the exit status can tell of lines that could not be written, or of a close that failed
 * (events_close). Returns the lines lost in all (events_lost); 0 without an events file. No
 * later event writes a line. */
uint64_t engine_close_events(struct engine *e);

/* Reads a whole capture file through the engine. Returns 0 at a clean end, -EIO when the file
 * was cut short, -EBADMSG when a block past the start could not be read (in both cases
 * everything before was processed, and the end is counted: capture_file_truncated or
 * capture_file_unreadable), or another -errno when it could not be opened; err[errlen] then
 * says why. */
int engine_read_file(struct engine *e, const char *path, char *err, size_t errlen);

/* engine_read_file that can end early: stop(ctx) is asked after every frame (a flag's read:
 * the caller's signal handler sets it), and after the file could not be opened or read; when it
 * returns true the read ends there with -EINTR (what was read is tracked and published, as at
 * the end of the file). A signal whose handler is installed without SA_RESTART makes a read
 * that waits on a pipe return, so a silent writer does not hold the stop. The events file takes
 * stop too (events_set_stop): a write to its reader that stalled gives up at the stop, also when
 * the file is closed after the read, so ctx must live until engine_close_events. stop may be
 * NULL. */
int engine_read_file_until(struct engine *e, const char *path, bool (*stop)(void *ctx), void *ctx,
                           char *err, size_t errlen);

/* Adds the kernel's capture counts of one interface since the last call (live mode,
 * capture_bpf_counter_deltas). */
void engine_kernel_counts(struct engine *e, uint32_t iface, uint64_t seen, uint64_t matched,
                          uint64_t ringbuf_full, uint64_t truncated);

/* Publishes whether a captured interface is up (live mode). */
void engine_iface_up(struct engine *e, uint32_t iface, bool up);

/* Reloads the rules from their directory on the engine thread, swapping them in only when they
 * all load (messages waiting in the lookahead go to the old ones first, as in engine_tick).
 * Returns 0 with a summary, or -errno with the reason, in msg[msglen]: -EINVAL when the new
 * rules fail (the old ones keep running), -EBUSY when they would change the labels (see
 * lua_bridge_reload). Without rules there is nothing to reload: 0. */
int engine_reload_rules(struct engine *e, char *msg, size_t msglen);

/* Opens the events file again after a rotation (events_reopen), on the engine thread. Returns
 * 0, or -errno with the reason in msg[msglen]. Without an events file: 0. */
int engine_reopen_events(struct engine *e, char *msg, size_t msglen);

/* The wall clock's step since the packets' clock was set (capture_bpf_clock_step): the times the
 * events file writes from now on are moved by it. Without an events file: nothing. */
void engine_set_clock_step(struct engine *e, int64_t ns);

/* Prints the loaded rules (lua_bridge_describe) to out; returns their number, 0 without rules. */
int engine_describe_rules(struct engine *e, FILE *out);

/* The engine's rules, or NULL without rules. Owned by the engine. */
struct lua_bridge *engine_rules(struct engine *e);

/* The registry holding every family of this engine. Owned by the engine. */
struct metrics *engine_metrics(struct engine *e);

/* What the capture lost inside the packets, since engine_new: frames cut short, at the snap
 * length or by a mirror (sipscope_capture_truncated_total), and SIP messages that end before
 * their header block does (sipscope_parse_errors_total{stage="sip",reason="incomplete"}). Of
 * the frames cut, overlong were whole in a file whose header gives a smaller snap length
 * (overlong_snaplen, the last such file's), cut to it on reading (capture_pcap_overlong). For
 * a summary at the end of an offline read; the view lives as long as e. */
struct engine_losses {
    uint64_t truncated, incomplete;
    uint64_t overlong;
    uint32_t overlong_snaplen;
};
const struct engine_losses *engine_losses(const struct engine *e);

#endif
