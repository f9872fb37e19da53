/* fuzz_pipeline: libFuzzer target for the whole offline pipeline: decode, IP reassembly, TCP
 * streams and SIP framing, parsing, tracking, metrics and exposition, through a fresh engine
 * with small caps per input (fuzz_engine.h).
 *
 * Input: one options byte (fuzz_engine_config: SIP ports, decapsulation, events file, dedup),
 * then frames, each with a 5-byte header:
 *   u8  link: bits 0-2 pick the link type (table below); bit 3 puts the frame on a second
 *       interface, bit 4 makes it outgoing (copies on another path, for dedup); bit 5 reloads
 *       the rules before the frame (SIGHUP; at most twice an input, a Lua state each); bit 6
 *       reopens the events file before it (a rotation); bit 7 marks the frame cut at the snap
 *       length (wire length = captured length + 100)
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

#include "fuzz_engine.h"

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
    uint64_t now = 1700000000ULL * 1000000000ULL;
    size_t pos = 1;
    int reloads = 0;
    char msg[512];

    if (size < 1)
        return 0;
    fuzz_engine_config(&cfg, data[0], &ports);
    e = fuzz_engine_new(&cfg);

    while (pos + 5 <= size) {
        uint8_t kind = data[pos];
        uint32_t step = (uint32_t)data[pos + 1] | (uint32_t)data[pos + 2] << 8;
        size_t len = (size_t)data[pos + 3] | (size_t)data[pos + 4] << 8;
        struct capture_frame frame;
        uint8_t *copy;

        pos += 5;
        /* The same rules always load again, and /dev/null always opens: a failure is a bug. */
        if ((kind & 0x20) && reloads < 2) {
            reloads++;
            if (engine_reload_rules(e, msg, sizeof msg) != 0) {
                fprintf(stderr, "fuzz_pipeline: reload: %s\n", msg);
                abort();
            }
        }
        if ((kind & 0x40) && engine_reopen_events(e, msg, sizeof msg) != 0) {
            fprintf(stderr, "fuzz_pipeline: reopen: %s\n", msg);
            abort();
        }
        if (len > size - pos)
            len = size - pos;
        copy = malloc(len ? len : 1);
        if (!copy)
            abort();
        memcpy(copy, data + pos, len);
        pos += len;
        now += step * FUZZ_NS_PER_MS;
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
    fuzz_engine_end(e, now);
    return 0;
}
