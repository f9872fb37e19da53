/* fuzz_pipeline: libFuzzer target for the whole offline pipeline: decode, IP reassembly, TCP
 * streams and SIP framing, parsing, tracking, metrics and exposition, through a fresh engine
 * with small caps per input.
 *
 * Input: one options byte (bit 0: --sip-ports 5060, otherwise SIP by start line; bit 1:
 * --decapsulate vxlan,gre,hep; bit 2: --events /dev/null, every call-record field; bit 3:
 * --dedup-window 10ms), then frames, each with a 5-byte header:
 *   u8  link: bits 0-2 pick the link type (table below); bit 3 puts the frame on a second
 *       interface, bit 4 makes it outgoing (copies on another path, for dedup); bit 7 marks the
 *       frame cut at the snap length (wire length = captured length + 100)
 *   u16 time step in milliseconds since the previous frame, little-endian
 *   u16 captured length, little-endian (clamped to what is left of the input)
 * followed by the frame bytes. tests/fuzz/make_corpus.py writes pcaps in this form. Each frame
 * is copied into a buffer of exactly its length, so a read past it is caught by ASan.
 *
 * Built with FUZZ_RULES_DIR (the target fuzz_pipeline_rules), every input also runs the rules of
 * that directory (tests/fuzz/rules: one rule calling the whole Lua API on every message and
 * event), so that the C half of the API reads the fuzzer's messages too. A rule error counted
 * there is a bug (that rule never fails by design), and the input aborts on it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "engine.h"
#include "expo.h"
#include "portset.h"

#define NS_PER_MS 1000000ULL

static const uint16_t links[8] = {
    CAPTURE_LINK_ETHERNET, CAPTURE_LINK_RAW,  CAPTURE_LINK_LINUX_SLL, CAPTURE_LINK_LINUX_SLL2,
    CAPTURE_LINK_NULL,     CAPTURE_LINK_IPV4, CAPTURE_LINK_IPV6,      CAPTURE_LINK_LOOP,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct engine_config cfg;
    struct portset ports;
    struct engine *e;
    struct expo_buf out;
    char err[256];
    uint64_t now = 1700000000ULL * 1000000000ULL;
    size_t pos = 1;

    if (size < 1)
        return 0;
    engine_config_defaults(&cfg);
    /* Small tables: the fuzzer reaches every cap and eviction path quickly. */
    cfg.track.max_calls = 32;
    cfg.track.max_transactions = 64;
    cfg.track.max_registrations = 32;
    cfg.reasm.max_datagrams = 8;
    cfg.reasm.max_bytes = 128 << 10;
    cfg.tcp.max_streams = 8;
    cfg.tcp.max_bytes = 256 << 10;
    cfg.tcp.max_ooo_bytes = 16 << 10;
    cfg.tcp.max_ooo_segments = 16;
    cfg.symbol_cap = 4096;
    if (data[0] & 1) {
        if (portset_parse(&ports, "5060", err, sizeof err) != 0)
            abort();
        cfg.sip_ports = &ports;
    }
    if (data[0] & 2)
        cfg.decap = DECODE_VXLAN | DECODE_GRE | DECODE_HEP;
    if (data[0] & 4) /* the events writer and the calls' CDR records (call_cdr) */
        cfg.events_path = "/dev/null";
    if (data[0] & 8) /* copies of packets dropped (dedup) */
        cfg.dedup_window_ns = 10 * NS_PER_MS;
#ifdef FUZZ_RULES_DIR
    cfg.rules.rules_dir = FUZZ_RULES_DIR;
    /* A budget stop would be a slow machine, not a bug: only errors of the rule's own count. */
    cfg.rules.budget_ns = 10ULL * 1000 * NS_PER_MS;
#endif
    e = engine_new(&cfg, err, sizeof err);
    if (!e) {
        fprintf(stderr, "fuzz_pipeline: %s\n", err);
        abort();
    }

    while (pos + 5 <= size) {
        uint8_t kind = data[pos];
        uint32_t step = (uint32_t)data[pos + 1] | (uint32_t)data[pos + 2] << 8;
        size_t len = (size_t)data[pos + 3] | (size_t)data[pos + 4] << 8;
        struct capture_frame frame;
        uint8_t *copy;

        pos += 5;
        if (len > size - pos)
            len = size - pos;
        copy = malloc(len ? len : 1);
        if (!copy)
            abort();
        memcpy(copy, data + pos, len);
        pos += len;
        now += step * NS_PER_MS;
        frame = (struct capture_frame){
            .data = copy,
            .caplen = (uint32_t)len,
            .wirelen = (uint32_t)len + ((kind & 0x80) ? 100 : 0),
            .ts_ns = now,
            .link = links[kind & 7],
            .dir = (kind & 0x10) ? CAPTURE_DIR_OUTGOING : CAPTURE_DIR_UNKNOWN,
            .iface = (kind & 0x08) ? 1 : 0,
        };
        engine_frame(e, &frame);
        free(copy);
    }
    /* An hour later every timer (reassembly, transactions, calls) has fired. */
    engine_tick(e, now + 3600ULL * 1000 * NS_PER_MS);
    expo_buf_init(&out);
    if (expo_render(engine_metrics(e), EXPO_DETERMINISTIC, &out) != 0)
        abort();
#ifdef FUZZ_RULES_DIR
    /* The family has a series only once an error was counted (any rule, any kind). */
    static const char error_series[] = "\nsipscope_rule_errors_total{";
    if (memmem(out.data, out.len, error_series, sizeof error_series - 1)) {
        fwrite(out.data, 1, out.len, stderr);
        fprintf(stderr, "fuzz_pipeline: a rule error was counted (exposition above)\n");
        abort();
    }
#endif
    expo_buf_fini(&out);
    engine_free(e);
    return 0;
}
