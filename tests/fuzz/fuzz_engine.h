/* fuzz_engine: the engine configuration both fuzz targets give each input: tables so small that
 * the fuzzer reaches every cap and eviction path quickly, and the options of the input's first
 * byte. Header-only: each target is one source file. */
#ifndef SIPSCOPE_FUZZ_ENGINE_H
#define SIPSCOPE_FUZZ_ENGINE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "engine.h"
#include "expo.h"
#include "portset.h"

#define FUZZ_NS_PER_MS 1000000ULL

/* Options (bits of the byte): 0: --sip-ports 5060, otherwise SIP by start line; 1:
 * --decapsulate vxlan,gre,hep; 2: --events /dev/null, every call-record field; 3: --dedup-window
 * 10ms. ports must outlive the engine. */
static inline void fuzz_engine_config(struct engine_config *cfg, uint8_t options,
                                      struct portset *ports)
{
    char err[256];

    engine_config_defaults(cfg);
    cfg->track.max_calls = 32;
    cfg->track.max_transactions = 64;
    cfg->track.max_registrations = 32;
    cfg->reasm.max_datagrams = 8;
    cfg->reasm.max_bytes = 128 << 10;
    cfg->tcp.max_streams = 8;
    cfg->tcp.max_bytes = 256 << 10;
    cfg->tcp.max_ooo_bytes = 16 << 10;
    cfg->tcp.max_ooo_segments = 16;
    cfg->symbol_cap = 4096;
    if (options & 1) {
        if (portset_parse(ports, "5060", err, sizeof err) != 0)
            abort();
        cfg->sip_ports = ports;
    }
    if (options & 2)
        cfg->decap = DECODE_VXLAN | DECODE_GRE | DECODE_HEP;
    if (options & 4) /* the events writer and the calls' CDR records (call_cdr) */
        cfg->events_path = "/dev/null";
    if (options & 8) /* copies of packets dropped (dedup) */
        cfg->dedup_window_ns = 10 * FUZZ_NS_PER_MS;
#ifdef FUZZ_RULES_DIR
    cfg->rules.rules_dir = FUZZ_RULES_DIR;
    /* A budget stop would be a slow machine, not a bug: only errors of the rule's own count. */
    cfg->rules.budget_ns = 10ULL * 1000 * FUZZ_NS_PER_MS;
#endif
}

/* The engine of cfg, or abort() with the reason. */
static inline struct engine *fuzz_engine_new(const struct engine_config *cfg)
{
    char err[256];
    struct engine *e = engine_new(cfg, err, sizeof err);

    if (!e) {
        fprintf(stderr, "fuzz: %s\n", err);
        abort();
    }
    return e;
}

/* Ends an input: every timer fired (an hour past now: reassembly, transactions, calls), the
 * metrics rendered, the engine freed. With FUZZ_RULES_DIR, a rule error counted aborts. */
static inline void fuzz_engine_end(struct engine *e, uint64_t now)
{
    struct expo_buf out;

    engine_tick(e, now + 3600ULL * 1000 * FUZZ_NS_PER_MS);
    expo_buf_init(&out);
    if (expo_render(engine_metrics(e), EXPO_DETERMINISTIC, &out) != 0)
        abort();
#ifdef FUZZ_RULES_DIR
    /* The family has a series only once an error was counted (any rule, any kind). */
    static const char error_series[] = "\nsipscope_rule_errors_total{";
    if (memmem(out.data, out.len, error_series, sizeof error_series - 1)) {
        fwrite(out.data, 1, out.len, stderr);
        fprintf(stderr, "fuzz: a rule error was counted (exposition above)\n");
        abort();
    }
#endif
    expo_buf_fini(&out);
    engine_free(e);
}

#endif
