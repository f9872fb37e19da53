/* Unit test of the engine's lookahead contract (engine.h): with the lookahead on, a frame's bytes
 * are read until ENGINE_LOOKAHEAD more frames have gone through engine_frame, or until
 * engine_flush, and never after. Each frame here sits in a buffer of its own, freed as soon as
 * the contract allows it: under ASan (scripts/test.sh runs the unit tests under it) a later read
 * fails. The exposition must be that of an engine without the lookahead fed the same frames. */
#include "engine.h"

#include "capture_pcap.h"
#include "expo.h"
#include "harness.h"
#include "health.h"
#include "metrics.h"
#include "test.h"

#define MAX_FRAMES 4096

struct stream {
    struct capture_frame f[MAX_FRAMES];
    size_t n;
};

static void add_frame(struct stream *s, const struct capture_frame *fr, const uint8_t *bytes)
{
    uint8_t *copy;

    if (s->n == MAX_FRAMES || !(copy = malloc(fr->caplen ? fr->caplen : 1))) {
        TEST_FAIL_AT("stream full or out of memory");
        return;
    }
    memcpy(copy, bytes, fr->caplen);
    s->f[s->n] = *fr;
    s->f[s->n++].data = copy;
}

/* Appends the frames of a fixture capture; after every third, a UDP frame that is not SIP (the
 * first frame with its payload made RTP-like): frames that age the messages waiting without
 * adding any. */
static void add_capture(struct stream *s, const char *name)
{
    char path[512], err[256];
    struct capture_frame fr;
    struct capture_pcap *cap;
    uint8_t junk[2048];
    uint32_t junk_len = 0;
    size_t i = 0;

    snprintf(path, sizeof(path), "%s/tests/fixtures/pcap/%s", SIPSCOPE_SOURCE_DIR, name);
    if (!(cap = capture_pcap_open(path, err, sizeof(err)))) {
        TEST_FAIL_AT("%s: %s", path, err);
        return;
    }
    while (capture_pcap_next(cap, &fr, err, sizeof(err)) == 1) {
        add_frame(s, &fr, fr.data);
        if (i == 0 && fr.caplen > 42 && fr.caplen <= sizeof(junk)) {
            memcpy(junk, fr.data, fr.caplen);
            memset(junk + 42, 0x80, fr.caplen - 42); /* Ethernet, IPv4, UDP: 42 bytes */
            junk_len = fr.caplen;
        }
        if (++i % 3 == 0 && junk_len) {
            struct capture_frame j = fr;
            j.caplen = j.wirelen = junk_len;
            add_frame(s, &j, junk);
        }
    }
    capture_pcap_free(cap);
}

static char *render(struct engine *e)
{
    struct expo_buf b;
    char *text;

    expo_buf_init(&b);
    CHECK_INT(expo_render(engine_metrics(e), EXPO_DETERMINISTIC, &b), 0);
    text = strndup(b.data, b.len);
    expo_buf_fini(&b);
    return text;
}

static struct engine *new_engine(void)
{
    struct engine_config cfg;
    char err[256];
    struct engine *e;

    engine_config_defaults(&cfg);
    if (!(e = engine_new(&cfg, err, sizeof(err))))
        TEST_FAIL_AT("engine_new: %s", err);
    return e;
}

TEST(lookahead_reads_no_frame_past_its_bound_and_changes_nothing)
{
    static struct stream s;
    struct engine *plain = new_engine(), *ahead = new_engine();
    char *want, *got;

    if (!plain || !ahead)
        return;
    s.n = 0;
    add_capture(&s, "mix-udp4.pcap");     /* deferred: UDP */
    add_capture(&s, "mix-tcp4.pcap");     /* tracked at once, after a flush: TCP */
    add_capture(&s, "mix-udp6.pcap");
    add_capture(&s, "answered-udp4.pcap");
    /* 135 + 279 + 135 + 21 frames (tshark -r counts them), and a junk frame after every third
     * of each file: 45 + 93 + 45 + 7. */
    CHECK_INT(s.n, 760);
    for (size_t i = 0; i < s.n; i++)
        engine_frame(plain, &s.f[i]);
    engine_flush(plain);

    CHECK_INT(engine_lookahead_start(ahead), 0);
    for (size_t i = 0; i < s.n; i++) {
        engine_frame(ahead, &s.f[i]);
        /* Frame i - ENGINE_LOOKAHEAD has now seen ENGINE_LOOKAHEAD frames after it: done. */
        if (i >= ENGINE_LOOKAHEAD) {
            free((void *)s.f[i - ENGINE_LOOKAHEAD].data);
            s.f[i - ENGINE_LOOKAHEAD].data = NULL;
        }
    }
    engine_flush(ahead);
    for (size_t i = 0; i < s.n; i++)
        free((void *)s.f[i].data);

    want = render(plain);
    got = render(ahead);
    CHECK(strstr(want, "sipscope_sip_messages_total") != NULL);
    CHECK(strcmp(want, got) == 0);
    free(want);
    free(got);
    engine_free(plain);
    engine_free(ahead);
}

static double series(struct engine *e, const char *name, const char *label, const char *value,
                     const char *label2, const char *value2)
{
    const char *names[2] = {label, label2}, *values[2] = {value, value2};
    char err[256];
    double v = -1;
    if (harness_metric(e, name, names, values, label2 ? 2 : 1, &v, err, sizeof(err)) != 0)
        return -1;
    return v;
}

/* Live, the kernel's counts come as counts since the last read (capture_bpf_counter_deltas), one
 * call per interface. The first 64 interfaces get series of their own; the counts of those past
 * them, and of what the kernel's map had no room for (HEALTH_IFACE_OTHER), add up under
 * "other". Two reads of 70 interfaces and the overflow: interface id i counted i + 1 packets seen
 * and one matched in each, those from 64 on also two dropped. */
TEST(kernel_counts_of_many_interfaces_add_up_under_other)
{
    char err[256];
    struct engine *e = harness_engine_new(NULL, NULL, NULL, NULL, err, sizeof(err));
    double other_seen = 0;

    if (!e) {
        TEST_FAIL_AT("engine: %s", err);
        return;
    }
    for (int read = 0; read < 2; read++) {
        /* First: "other" is "other" before the 64 are taken too. */
        engine_kernel_counts(e, HEALTH_IFACE_OTHER, 1000, 1000, 7, 1);
        for (uint32_t i = 0; i < 70; i++)
            engine_kernel_counts(e, i, i + 1, 1, i >= 64 ? 2 : 0, 0);
    }
    for (uint32_t i = 64; i < 70; i++)
        other_seen += 2.0 * (i + 1);
    other_seen += 2000;
    /* Ids other than 0 have no name in a capture file's engine: their number is their label. */
    CHECK_DBL(series(e, "sipscope_packets_total", "iface", "file", "result", "seen"), 2);
    CHECK_DBL(series(e, "sipscope_packets_total", "iface", "5", "result", "seen"), 12);
    CHECK_DBL(series(e, "sipscope_packets_total", "iface", "63", "result", "matched"), 2);
    CHECK_DBL(series(e, "sipscope_packets_total", "iface", "other", "result", "seen"), other_seen);
    CHECK_DBL(series(e, "sipscope_packets_total", "iface", "other", "result", "matched"),
              2 * 6 + 2000);
    CHECK_DBL(series(e, "sipscope_capture_drops_total", "iface", "other", "reason", "ringbuf_full"),
              2 * 6 * 2 + 14);
    CHECK_DBL(series(e, "sipscope_capture_drops_total", "iface", "63", "reason", "ringbuf_full"),
              0);
    CHECK_DBL(series(e, "sipscope_capture_truncated_total", "iface", "other", NULL, NULL), 2);
    CHECK_DBL(series(e, "sipscope_packets_total", "iface", "64", "result", "seen"), -1);
    engine_free(e);
}

/* An IPv4 UDP datagram from 192.0.2.1:5060 to 192.0.2.2:5060 carrying payload[len], as a raw IP
 * frame in f; returns the frame's length. */
static uint32_t udp_frame(uint8_t *f, const char *payload, uint32_t len)
{
    uint32_t total = 20 + 8 + len;

    memset(f, 0, 28);
    f[0] = 0x45;
    f[2] = (uint8_t)(total >> 8);
    f[3] = (uint8_t)total;
    f[6] = 0x40; /* don't fragment */
    f[8] = 64;
    f[9] = 17;
    memcpy(f + 12, (const uint8_t[]){192, 0, 2, 1, 192, 0, 2, 2}, 8);
    f[20] = f[22] = 5060 >> 8;
    f[21] = f[23] = 5060 & 0xff;
    f[24] = (uint8_t)((8 + len) >> 8);
    f[25] = (uint8_t)(8 + len);
    memcpy(f + 28, payload, len);
    return total;
}

static const char options_text[] = "OPTIONS sip:b@x SIP/2.0\r\n"
                                   "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKcut\r\n"
                                   "From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\n"
                                   "Call-ID: cut\r\nCSeq: 1 OPTIONS\r\n"
                                   "Content-Length: 0\r\n\r\n";

/* A frame cut at the snap length is counted truncated once. Offline the engine counts it;
 * live the kernel did (engine_kernel_counts), and the engine's own count came on top of it. */
TEST(a_frame_cut_at_the_snap_length_is_counted_truncated_once_live)
{
    static uint8_t f[2048];
    struct engine_config cfg;
    char err[256];
    uint32_t len = udp_frame(f, options_text, sizeof(options_text) - 1);
    struct capture_frame fr = {.data = f,
                               .caplen = 100,
                               .wirelen = len,
                               .ts_ns = 1000000000,
                               .link = CAPTURE_LINK_RAW,
                               .dir = CAPTURE_DIR_HOST};

    for (int live = 0; live < 2; live++) {
        engine_config_defaults(&cfg);
        cfg.count_seen = !live;
        struct engine *e = engine_new(&cfg, err, sizeof(err));
        if (!e) {
            TEST_FAIL_AT("engine_new: %s", err);
            return;
        }
        engine_frame(e, &fr);
        if (live)
            engine_kernel_counts(e, 0, 1, 1, 0, 1);
        CHECK_DBL(series(e, "sipscope_capture_truncated_total", "iface", "file", NULL, NULL), 1);
        CHECK_DBL(series(e, "sipscope_packets_total", "iface", "file", "result", "seen"), 1);
        engine_free(e);
    }
}

/* An OPTIONS of exactly len bytes (padded with an X-Pad header), Call-ID and branch numbered i. */
static void options_of_length(char *buf, int i, size_t len)
{
    int head =
        snprintf(buf, len,
                 "OPTIONS sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKg%d"
                 "\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: g%d\r\n"
                 "CSeq: 1 OPTIONS\r\nX-Pad: ",
                 i, i);
    static const char tail[] = "\r\nContent-Length: 0\r\n\r\n";

    if (head < 0 || (size_t)head + sizeof(tail) > len) {
        TEST_FAIL_AT("no OPTIONS fits in %zu bytes", len);
        return;
    }
    size_t pad = len - (size_t)head - (sizeof(tail) - 1);

    memset(buf + head, 'p', pad);
    memcpy(buf + (size_t)head + pad, tail, sizeof(tail) - 1);
}

/* A UDP super-packet (UDP_SEGMENT on the sender, or GRO) comes as one frame whose payload is
 * datagrams of gso_size bytes end to end, the last one shorter: each counts as a datagram. Read
 * as one, it was one message and a trailing_data error. Cut by the snap length, the datagrams
 * whole in it count and the one cut is read as any datagram cut. */
TEST(a_udp_super_packet_is_split_into_datagrams_of_its_gso_size)
{
    static const struct {
        uint16_t gso_size;
        uint32_t last_len, caplen; /* caplen 0: the whole frame */
        double messages, trailing, incomplete;
    } cases[] = {
        {232, 232, 0, 4, -1, -1},
        {232, 200, 0, 4, -1, -1},                /* the last one shorter */
        {0, 232, 0, 1, 1, -1},                   /* no gso_size: one datagram, as before */
        {232, 232, 28 + 2 * 232 + 94, 2, -1, 1}, /* cut inside the third one's headers */
        {232, 232, 28 + 3 * 232, 3, -1, -1},     /* cut between the third and the fourth */
    };
    static char payload[4 * 232];
    static uint8_t f[2048];
    char err[256];

    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        uint32_t len = 3 * 232 + cases[c].last_len;
        for (int i = 0; i < 4; i++)
            options_of_length(payload + 232 * i, i, i < 3 ? 232 : cases[c].last_len);
        uint32_t flen = udp_frame(f, payload, len);
        struct capture_frame fr = {.data = f,
                                   .caplen = cases[c].caplen ? cases[c].caplen : flen,
                                   .wirelen = flen,
                                   .ts_ns = 1000000000,
                                   .link = CAPTURE_LINK_RAW,
                                   .dir = CAPTURE_DIR_HOST,
                                   .gso_size = cases[c].gso_size};
        struct engine *e = harness_engine_new(NULL, NULL, NULL, "sip_ports=5060", err, sizeof(err));
        if (!e) {
            TEST_FAIL_AT("engine: %s", err);
            return;
        }
        engine_frame(e, &fr);
        engine_flush(e);
        CHECK_DBL(series(e, "sip_requests_total", "method", "OPTIONS", NULL, NULL),
                  cases[c].messages);
        CHECK_DBL(series(e, "sipscope_sip_messages_total", "transport", "udp", "ip", "4"),
                  cases[c].messages);
        CHECK_DBL(
            series(e, "sipscope_parse_errors_total", "stage", "sip", "reason", "trailing_data"),
            cases[c].trailing);
        CHECK_DBL(series(e, "sipscope_parse_errors_total", "stage", "sip", "reason", "incomplete"),
                  cases[c].incomplete);
        CHECK_DBL(series(e, "sipscope_packets_total", "iface", "file", "result", "decoded"), 1);
        engine_free(e);
    }
}

TEST_MAIN()
