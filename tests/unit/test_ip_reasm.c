#include "ip_reasm.h"

#include <netinet/in.h>

#include "test.h"

#define S (1000000000ULL)

/* Every reason reported, in order, as one string "a,b,c". */
static char reasons[1024];

static void on_err(void *ctx, const char *reason)
{
    (void)ctx;
    if (reasons[0])
        strcat(reasons, ",");
    strcat(reasons, reason);
}

static struct ip_reasm *make(uint32_t max_datagrams, uint64_t max_bytes)
{
    struct ip_reasm_config cfg;
    ip_reasm_config_defaults(&cfg);
    if (max_datagrams)
        cfg.max_datagrams = max_datagrams;
    if (max_bytes)
        cfg.max_bytes = max_bytes;
    reasons[0] = 0;
    return ip_reasm_new(&cfg, on_err, NULL);
}

/* Payload byte i of datagram id is (id + i) & 0xff, so every piece is checkable. */
static uint8_t data[70000];

static void fill(uint32_t id)
{
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(id + i);
}

static struct packet frag(unsigned version, uint32_t id, uint32_t off, uint32_t len, int more,
                          uint64_t ts)
{
    struct packet p;
    memset(&p, 0, sizeof p);
    p.ts_ns = ts;
    p.ip_version = (uint8_t)version;
    p.l4_proto = IPPROTO_UDP;
    p.src[0] = 10;
    p.dst[0] = 11;
    if (version == 6) {
        p.src[15] = 1;
        p.dst[15] = 2;
    }
    p.frag_id = id;
    p.frag_offset = off;
    p.frag_more = (uint8_t)more;
    p.frag_hdr_len = version == 4 ? 20 : 0; /* as decode sets it: no options, no extensions */
    fill(id);
    p.payload = data + off;
    p.payload_len = len;
    return p;
}

static const uint8_t *out;
static uint32_t out_len;

static int add(struct ip_reasm *r, struct packet p)
{
    return ip_reasm_add(r, &p, &out, &out_len);
}

static int out_is(uint32_t id, uint32_t len)
{
    if (out_len != len)
        return 0;
    for (uint32_t i = 0; i < len; i++)
        if (out[i] != (uint8_t)(id + i))
            return 0;
    return 1;
}

static struct ip_reasm_stats stats(struct ip_reasm *r)
{
    struct ip_reasm_stats st;
    ip_reasm_get_stats(r, &st);
    return st;
}

TEST(ipv4_fragments_in_order_reassemble_to_the_payload)
{
    struct ip_reasm *r = make(0, 0);
    CHECK_INT(add(r, frag(4, 7, 0, 1480, 1, 0)), 0);
    CHECK_INT(stats(r).datagrams, 1);
    CHECK_INT(stats(r).bytes, 2048);
    CHECK_INT(add(r, frag(4, 7, 1480, 1480, 1, 1)), 0);
    CHECK_INT(add(r, frag(4, 7, 2960, 100, 0, 2)), 1);
    CHECK(out_is(7, 3060));
    CHECK_INT(stats(r).datagrams, 0);
    CHECK_INT(stats(r).bytes, 0);
    CHECK_INT(stats(r).completed, 1);
    CHECK_STR(reasons, "");
    ip_reasm_free(r);
}

TEST(fragments_in_any_order_reassemble)
{
    struct ip_reasm *r = make(0, 0);
    CHECK_INT(add(r, frag(6, 9, 2960, 100, 0, 0)), 0);
    CHECK_INT(add(r, frag(6, 9, 0, 1448, 1, 0)), 0);
    CHECK_INT(add(r, frag(6, 9, 1448, 1512, 1, 0)), 1);
    CHECK(out_is(9, 3060));
    CHECK_STR(reasons, "");
    ip_reasm_free(r);
}

TEST(versions_ids_and_protocols_keep_datagrams_apart)
{
    struct ip_reasm *r = make(0, 0);
    struct packet tcp = frag(4, 5, 8, 8, 0, 0);
    tcp.l4_proto = IPPROTO_TCP;
    CHECK_INT(add(r, frag(4, 5, 0, 8, 1, 0)), 0);
    CHECK_INT(add(r, frag(6, 5, 8, 8, 0, 0)), 0);
    CHECK_INT(add(r, frag(4, 6, 8, 8, 0, 0)), 0);
    CHECK_INT(add(r, tcp), 0);
    CHECK_INT(stats(r).datagrams, 4);
    CHECK_INT(add(r, frag(4, 5, 8, 8, 0, 0)), 1);
    CHECK(out_is(5, 16));
    CHECK_INT(stats(r).datagrams, 3);
    ip_reasm_free(r);
}

TEST(identical_duplicate_fragment_is_dropped_and_counted)
{
    struct ip_reasm *r = make(0, 0);
    CHECK_INT(add(r, frag(4, 1, 0, 16, 1, 0)), 0);
    CHECK_INT(add(r, frag(4, 1, 0, 16, 1, 0)), 0);
    CHECK_INT(add(r, frag(4, 1, 8, 8, 1, 0)), 0); /* inside the first, same bytes */
    CHECK_STR(reasons, "fragment_duplicate,fragment_duplicate");
    CHECK_INT(add(r, frag(4, 1, 16, 4, 0, 0)), 1);
    CHECK(out_is(1, 20));
    ip_reasm_free(r);
}

/* Every frame captured twice: the last fragment's copy came after the datagram was complete,
 * opened a new one that could never complete, and timed out 30 s later. */
TEST(a_fragment_of_a_datagram_just_completed_is_a_duplicate)
{
    struct ip_reasm *r = make(0, 0);
    CHECK_INT(add(r, frag(4, 1, 0, 8, 1, 0)), 0);
    CHECK_INT(add(r, frag(4, 1, 0, 8, 1, 1000)), 0);
    CHECK_INT(add(r, frag(4, 1, 8, 8, 0, 2000)), 1);
    CHECK(out_is(1, 16));
    CHECK_INT(add(r, frag(4, 1, 8, 8, 0, 3000)), 0);
    CHECK_STR(reasons, "fragment_duplicate,fragment_duplicate");
    CHECK_INT(stats(r).datagrams, 0);
    ip_reasm_expire(r, 31 * S);
    CHECK_STR(reasons, "fragment_duplicate,fragment_duplicate");
    /* A second later the identification may be a new datagram's. */
    CHECK_INT(add(r, frag(4, 1, 8, 8, 0, 2 * S)), 0);
    CHECK_INT(stats(r).datagrams, 1);
    CHECK_INT(add(r, frag(4, 1, 0, 8, 1, 2 * S)), 1);
    CHECK(out_is(1, 16));
    CHECK_STR(reasons, "fragment_duplicate,fragment_duplicate");
    ip_reasm_free(r);
}

TEST(overlap_with_different_bytes_drops_the_datagram)
{
    struct ip_reasm *r = make(0, 0);
    struct packet p = frag(6, 2, 8, 16, 1, 0);
    static uint8_t other[16];
    CHECK_INT(add(r, frag(6, 2, 0, 16, 1, 0)), 0);
    p.payload = other; /* [8,24): overlaps [8,16) with zeros, and goes past it */
    CHECK_INT(add(r, p), 0);
    CHECK_STR(reasons, "fragment_overlap");
    CHECK_INT(stats(r).datagrams, 0);
    /* The rest of that datagram starts a new one, which never completes on its own. */
    CHECK_INT(add(r, frag(6, 2, 24, 8, 0, 0)), 0);
    CHECK_INT(stats(r).datagrams, 1);
    ip_reasm_free(r);
}

/* A copy wholly inside data held, with other bytes: dropped, and the datagram completes with
 * the first copy's bytes, as Linux delivers it (a dropped datagram would hide it from sipscope
 * and not from the endpoint). IPv4 and IPv6 alike. */
TEST(a_conflicting_copy_inside_held_data_is_dropped_and_the_first_kept)
{
    for (unsigned v = 4; v <= 6; v += 2) {
        struct ip_reasm *r = make(0, 0);
        struct packet p = frag(v, 2, 8, 8, 1, 0);
        static uint8_t other[8];
        CHECK_INT(add(r, frag(v, 2, 0, 16, 1, 0)), 0);
        p.payload = other; /* [8,16) with zeros */
        CHECK_INT(add(r, p), 0);
        CHECK_STR(reasons, "fragment_conflict");
        CHECK_INT(stats(r).datagrams, 1);
        CHECK_INT(add(r, frag(v, 2, 16, 8, 0, 0)), 1);
        CHECK(out_is(2, 24));
        CHECK_INT(stats(r).datagrams, 0);
        ip_reasm_free(r);
    }
}

TEST(partial_overlap_with_the_same_bytes_drops_the_datagram_too)
{
    struct ip_reasm *r = make(0, 0);
    CHECK_INT(add(r, frag(4, 3, 0, 16, 1, 0)), 0);
    CHECK_INT(add(r, frag(4, 3, 8, 16, 1, 0)), 0); /* [8,24): half new */
    CHECK_STR(reasons, "fragment_overlap");
    CHECK_INT(stats(r).datagrams, 0);
    ip_reasm_free(r);
}

TEST(incomplete_datagram_times_out_after_thirty_seconds_of_packet_time)
{
    struct ip_reasm *r = make(0, 0);
    CHECK_INT(add(r, frag(4, 1, 0, 8, 1, 100 * S)), 0);
    CHECK_INT(ip_reasm_next_deadline(r), 130 * S);
    ip_reasm_expire(r, 130 * S - 1);
    CHECK_INT(stats(r).datagrams, 1);
    /* Another datagram's fragment at the deadline runs the timer first. */
    CHECK_INT(add(r, frag(4, 2, 0, 8, 1, 130 * S)), 0);
    CHECK_STR(reasons, "fragment_timeout");
    CHECK_INT(stats(r).datagrams, 1);
    CHECK_INT(ip_reasm_next_deadline(r), 160 * S);
    ip_reasm_expire(r, 200 * S);
    CHECK_STR(reasons, "fragment_timeout,fragment_timeout");
    CHECK_INT(ip_reasm_next_deadline(r), UINT64_MAX);
    CHECK_INT(stats(r).bytes, 0);
    ip_reasm_free(r);
}

TEST(full_table_evicts_the_oldest_datagram)
{
    struct ip_reasm *r = make(2, 0);
    CHECK_INT(add(r, frag(4, 1, 0, 8, 1, 0)), 0);
    CHECK_INT(add(r, frag(4, 2, 0, 8, 1, 1)), 0);
    CHECK_INT(add(r, frag(4, 3, 0, 8, 1, 2)), 0);
    CHECK_INT(stats(r).datagrams, 2);
    CHECK_INT(stats(r).evictions, 1);
    CHECK_INT(add(r, frag(4, 2, 8, 8, 0, 3)), 1);
    CHECK(out_is(2, 16));
    /* Datagram 1 was evicted: its last fragment alone does not complete it. */
    CHECK_INT(add(r, frag(4, 1, 8, 8, 0, 4)), 0);
    CHECK_STR(reasons, "");
    ip_reasm_free(r);
}

TEST(byte_budget_evicts_the_oldest_datagram)
{
    struct ip_reasm *r = make(0, 4096); /* two first buffers of 2048 */
    CHECK_INT(add(r, frag(4, 1, 0, 8, 1, 0)), 0);
    CHECK_INT(add(r, frag(4, 2, 0, 8, 1, 0)), 0);
    CHECK_INT(stats(r).bytes, 4096);
    CHECK_INT(add(r, frag(4, 3, 0, 8, 1, 0)), 0);
    CHECK_INT(stats(r).datagrams, 2);
    CHECK_INT(stats(r).evictions, 1);
    CHECK_INT(stats(r).bytes, 4096);
    /* A datagram that alone needs more than the budget is given up. */
    CHECK_INT(add(r, frag(4, 3, 4096, 8, 0, 0)), 0); /* needs 4104 */
    CHECK_STR(reasons, "fragment_no_memory");
    CHECK_INT(stats(r).evictions, 2);
    CHECK_INT(stats(r).datagrams, 0);
    CHECK_INT(stats(r).bytes, 0);
    ip_reasm_free(r);
}

/* A flood of lone fragments far past offset 0 (8 bytes at 65504 make room for 64 KiB) filled
 * the byte budget with a few frames and evicted the honest datagram in progress, the oldest.
 * Datagrams that hold less than an eighth of the room they made go first. */
TEST(sparse_datagrams_are_evicted_before_the_others)
{
    struct ip_reasm *r = make(0, 256 << 10);         /* four 64 KiB buffers */
    CHECK_INT(add(r, frag(4, 1, 0, 1480, 1, 0)), 0); /* honest: 1480 of 2048 */
    for (uint32_t id = 100; id < 110; id++)
        CHECK_INT(add(r, frag(4, id, 65504, 8, 0, 1)), 0); /* the last IPv4 8 bytes can hold */
    CHECK_INT(stats(r).evictions, 7); /* three of the ten fit beside the honest one */
    CHECK_INT(stats(r).datagrams, 4);
    CHECK_INT(add(r, frag(4, 1, 1480, 500, 0, 2)), 1);
    CHECK(out_is(1, 1980));
    CHECK_STR(reasons, "");
    ip_reasm_free(r);
}

/* Adds datagram id of total payload bytes in fragments of 1480 (1448 for IPv6) in order, the
 * first fragment with hdr bytes of header counted (decode's frag_hdr_len). Returns what adding
 * the last fragment returned. */
static int whole(struct ip_reasm *r, unsigned version, uint32_t id, uint32_t total, uint32_t hdr)
{
    uint32_t step = version == 4 ? 1480 : 1448, off;
    struct packet p;

    for (off = 0; off + step < total; off += step) {
        p = frag(version, id, off, step, 1, 0);
        if (off == 0)
            p.frag_hdr_len = hdr;
        if (add(r, p) != 0)
            return -1;
    }
    return add(r, frag(version, id, off, total - off, 0, 0));
}

/* Linux counts the first fragment's header in the 65535 bytes (ip_frag_reasm: ihl + payload
 * > 65535 is refused): 65515 bytes of payload after a 20-byte header, 65511 after 24. */
TEST(ipv4_largest_datagram_counts_the_first_fragments_header)
{
    struct ip_reasm *r = make(0, 0);
    CHECK_INT(whole(r, 4, 4, 65515, 20), 1);
    CHECK(out_is(4, 65515));
    CHECK_STR(reasons, "");
    CHECK_INT(whole(r, 4, 5, 65516, 20), 0);
    CHECK_STR(reasons, "fragment_too_big");
    CHECK_INT(whole(r, 4, 6, 65511, 24), 1);
    CHECK(out_is(6, 65511));
    CHECK_INT(whole(r, 4, 7, 65512, 24), 0);
    CHECK_STR(reasons, "fragment_too_big,fragment_too_big");
    CHECK_INT(stats(r).datagrams, 0);
    CHECK_INT(stats(r).completed, 2);
    ip_reasm_free(r);
}

/* The last fragment first, within the limit for a 20-byte header; the first fragment then
 * brings options that put it over: the datagram is dropped when the first fragment comes. */
TEST(ipv4_first_fragment_with_options_after_the_last_is_too_big)
{
    struct ip_reasm *r = make(0, 0);
    struct packet first = frag(4, 8, 0, 1480, 1, 0);
    first.frag_hdr_len = 60;
    CHECK_INT(add(r, frag(4, 8, 65472, 44, 0, 0)), 0); /* ends at 65516: 20 + 65516 > 65535 */
    CHECK_STR(reasons, "fragment_too_big");
    CHECK_INT(add(r, frag(4, 9, 65472, 3, 0, 0)), 0); /* ends at 65475: 60 + 65475 = 65535 */
    first.frag_id = 9;
    CHECK_INT(add(r, first), 0);
    CHECK_STR(reasons, "fragment_too_big");
    CHECK_INT(add(r, frag(4, 10, 65472, 4, 0, 0)), 0); /* 60 + 65476 > 65535 */
    first.frag_id = 10;
    CHECK_INT(add(r, first), 0);
    CHECK_STR(reasons, "fragment_too_big,fragment_too_big");
    CHECK_INT(stats(r).datagrams, 1); /* 9 */
    ip_reasm_free(r);
}

/* IPv6 counts its payload length (ip6_frag_reasm): what follows the Fragment header, plus the
 * extension headers before it; neither the fixed header nor the Fragment header. */
TEST(ipv6_largest_datagram_counts_the_extension_headers_before_the_fragment_header)
{
    struct ip_reasm *r = make(0, 0);
    CHECK_INT(whole(r, 6, 4, 65535, 0), 1);
    CHECK(out_is(4, 65535));
    CHECK_STR(reasons, "");
    CHECK_INT(whole(r, 6, 5, 65536, 0), 0);
    CHECK_STR(reasons, "fragment_too_big");
    CHECK_INT(whole(r, 6, 6, 65527, 8), 1); /* 8 bytes of hop-by-hop options */
    CHECK(out_is(6, 65527));
    CHECK_INT(whole(r, 6, 7, 65528, 8), 0);
    CHECK_STR(reasons, "fragment_too_big,fragment_too_big");
    CHECK_INT(stats(r).datagrams, 0);
    ip_reasm_free(r);
}

TEST(bad_lengths_are_counted_and_dropped)
{
    struct ip_reasm *r = make(0, 0);
    CHECK_INT(add(r, frag(6, 1, 0, 12, 1, 0)), 0); /* not a multiple of 8 with more */
    CHECK_INT(add(r, frag(6, 1, 0, 0, 0, 0)), 0);  /* empty */
    CHECK_STR(reasons, "fragment_bad_length,fragment_bad_length");
    CHECK_INT(stats(r).datagrams, 0);
    CHECK_INT(add(r, frag(6, 2, 16, 8, 0, 0)), 0); /* ends at 24 */
    CHECK_INT(add(r, frag(6, 2, 24, 8, 0, 0)), 0); /* another end: dropped */
    CHECK_STR(reasons, "fragment_bad_length,fragment_bad_length,fragment_bad_length");
    CHECK_INT(stats(r).datagrams, 0);
    /* Offset 0 without more fragments is whole at once (decode never hands those over). */
    CHECK_INT(add(r, frag(6, 3, 0, 8, 0, 0)), 1);
    CHECK(out_is(3, 8));
    ip_reasm_free(r);
}

TEST(fragment_past_a_known_end_drops_the_datagram)
{
    struct ip_reasm *r = make(0, 0);
    CHECK_INT(add(r, frag(4, 1, 8, 8, 0, 0)), 0);
    CHECK_INT(add(r, frag(4, 1, 16, 8, 1, 0)), 0);
    CHECK_STR(reasons, "fragment_bad_length");
    CHECK_INT(stats(r).datagrams, 0);
    ip_reasm_free(r);
}

TEST(too_many_separate_pieces_drop_the_datagram)
{
    struct ip_reasm *r = make(0, 0);
    for (uint32_t i = 0; i < IP_REASM_MAX_HOLES; i++)
        CHECK_INT(add(r, frag(4, 1, i * 16, 8, 1, 0)), 0);
    CHECK_STR(reasons, "");
    CHECK_INT(add(r, frag(4, 1, IP_REASM_MAX_HOLES * 16, 8, 1, 0)), 0);
    CHECK_STR(reasons, "fragment_holes");
    CHECK_INT(stats(r).datagrams, 0);
    ip_reasm_free(r);
}

TEST(filling_every_hole_merges_the_pieces)
{
    struct ip_reasm *r = make(0, 0);
    for (uint32_t i = 0; i < IP_REASM_MAX_HOLES; i++)
        CHECK_INT(add(r, frag(4, 1, i * 16, 8, 1, 0)), 0);
    for (uint32_t i = 0; i + 1 < IP_REASM_MAX_HOLES; i++)
        CHECK_INT(add(r, frag(4, 1, i * 16 + 8, 8, 1, 0)), 0);
    CHECK_INT(add(r, frag(4, 1, IP_REASM_MAX_HOLES * 16 - 8, 8, 0, 0)), 1);
    CHECK(out_is(1, IP_REASM_MAX_HOLES * 16));
    CHECK_STR(reasons, "");
    ip_reasm_free(r);
}

TEST(truncated_fragment_drops_its_datagram_at_once)
{
    struct ip_reasm *r = make(0, 0);
    struct packet p = frag(4, 1, 8, 8, 1, 0);
    CHECK_INT(add(r, frag(4, 1, 0, 8, 1, 0)), 0);
    p.truncated = 1;
    CHECK_INT(add(r, p), 0);
    CHECK_STR(reasons, "fragment_truncated");
    CHECK_INT(stats(r).datagrams, 0);
    CHECK_INT(stats(r).evictions, 0);
    ip_reasm_free(r);
}

TEST(fragment_may_point_into_the_previous_output)
{
    struct ip_reasm *r = make(0, 0);
    struct packet inner;
    CHECK_INT(add(r, frag(4, 1, 0, 16, 1, 0)), 0);
    CHECK_INT(add(r, frag(4, 1, 16, 16, 0, 0)), 1);
    /* A fragment of an inner datagram carried in the one just reassembled. */
    inner = frag(6, 2, 0, 8, 1, 0);
    inner.payload = out + 8;
    CHECK_INT(add(r, inner), 0);
    inner = frag(6, 2, 8, 8, 0, 0);
    CHECK_INT(add(r, inner), 1);
    CHECK_INT(out_len, 16);
    CHECK_INT(out[0], (uint8_t)(1 + 8)); /* bytes 8..15 of datagram 1 */
    CHECK_INT(out[8], (uint8_t)(2 + 8));
    ip_reasm_free(r);
}

TEST_MAIN()
