#include "decode.h"

#include <errno.h>
#include <netinet/in.h>

#include "test.h"

/* Frames are assembled here header by header; every length field is computed by the caller
 * from the sizes written below, so each test states the layout it decodes. */

struct fb {
    uint8_t d[2048];
    uint32_t n;
};

static void put8(struct fb *f, unsigned v)
{
    f->d[f->n++] = (uint8_t)v;
}

static void put16(struct fb *f, unsigned v)
{
    put8(f, v >> 8);
    put8(f, v);
}

static void put32(struct fb *f, uint32_t v)
{
    put16(f, v >> 16);
    put16(f, v & 0xffff);
}

static void putn(struct fb *f, const void *p, size_t n)
{
    memcpy(f->d + f->n, p, n);
    f->n += (uint32_t)n;
}

static void zeros(struct fb *f, size_t n)
{
    memset(f->d + f->n, 0, n);
    f->n += (uint32_t)n;
}

static const uint8_t SRC4[4] = {192, 0, 2, 1};
static const uint8_t DST4[4] = {198, 51, 100, 2};
static const uint8_t SRC6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
static const uint8_t DST6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
static const char SIP[] = "OPTIONS sip:a@b SIP/2.0\r\n\r\n"; /* 27 bytes */
#define SIP_LEN ((uint32_t)sizeof SIP - 1)

/* Destination and source MAC; the caller writes tags and the ethertype. */
static void eth_macs(struct fb *f)
{
    static const uint8_t macs[12] = {2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2};
    putn(f, macs, sizeof macs);
}

static void eth(struct fb *f, unsigned type)
{
    eth_macs(f);
    put16(f, type);
}

/* A VLAN tag: TPID then TCI (priority 5 set to check it is masked off). */
static void tag(struct fb *f, unsigned tpid, unsigned vid)
{
    put16(f, tpid);
    put16(f, 0xa000 | vid);
}

static void sll(struct fb *f, unsigned pkttype, unsigned proto)
{
    put16(f, pkttype);
    put16(f, 1); /* ARPHRD_ETHER */
    put16(f, 6);
    static const uint8_t addr[8] = {2, 0, 0, 0, 0, 1, 0, 0};
    putn(f, addr, 8);
    put16(f, proto);
}

static void sll2(struct fb *f, unsigned proto, unsigned pkttype)
{
    put16(f, proto);
    put16(f, 0);
    put32(f, 3); /* ifindex */
    put16(f, 1); /* ARPHRD_ETHER */
    put8(f, pkttype);
    put8(f, 6);
    static const uint8_t addr[8] = {2, 0, 0, 0, 0, 1, 0, 0};
    putn(f, addr, 8);
}

/* IPv4 header with opt_words 32-bit option words; total length = header + l4len. */
static void ip4x(struct fb *f, unsigned proto, uint32_t l4len, unsigned id, unsigned frag,
                 unsigned opt_words, const uint8_t *src, const uint8_t *dst)
{
    unsigned hl = 20 + 4 * opt_words;
    put8(f, 0x40 | (hl / 4));
    put8(f, 0);
    put16(f, hl + l4len);
    put16(f, id);
    put16(f, frag);
    put8(f, 64);
    put8(f, proto);
    put16(f, 0);
    putn(f, src, 4);
    putn(f, dst, 4);
    for (unsigned i = 0; i < opt_words; i++)
        put32(f, 0x01010101); /* NOP options */
}

static void ip4(struct fb *f, unsigned proto, uint32_t l4len)
{
    ip4x(f, proto, l4len, 0x1234, 0x4000 /* DF only: not a fragment */, 0, SRC4, DST4);
}

static void ip6x(struct fb *f, unsigned nh, uint32_t plen, const uint8_t *src, const uint8_t *dst)
{
    put32(f, 0x60000000);
    put16(f, plen);
    put8(f, nh);
    put8(f, 64);
    putn(f, src, 16);
    putn(f, dst, 16);
}

static void ip6(struct fb *f, unsigned nh, uint32_t plen)
{
    ip6x(f, nh, plen, SRC6, DST6);
}

/* Hop-by-hop, routing or destination options header of (units + 1) * 8 bytes. */
static void ext6(struct fb *f, unsigned nh, unsigned units)
{
    put8(f, nh);
    put8(f, units);
    zeros(f, (units + 1) * 8 - 2);
}

/* Authentication header of (units + 2) * 4 bytes. */
static void ah(struct fb *f, unsigned nh, unsigned units)
{
    put8(f, nh);
    put8(f, units);
    zeros(f, (units + 2) * 4 - 2);
}

static void frag6(struct fb *f, unsigned nh, unsigned offset, unsigned more, uint32_t id)
{
    put8(f, nh);
    put8(f, 0);
    put16(f, offset | more);
    put32(f, id);
}

static void udpx(struct fb *f, unsigned sport, unsigned dport, unsigned ulen)
{
    put16(f, sport);
    put16(f, dport);
    put16(f, ulen);
    put16(f, 0);
}

static void udp(struct fb *f, uint32_t plen)
{
    udpx(f, 5060, 5061, 8 + plen);
}

static void tcpx(struct fb *f, unsigned sport, unsigned dport, uint32_t seq, unsigned flags,
                 unsigned doff)
{
    put16(f, sport);
    put16(f, dport);
    put32(f, seq);
    put32(f, 0);
    put8(f, doff << 4);
    put8(f, flags);
    put16(f, 65535);
    put32(f, 0);
    for (unsigned i = 5; i < doff; i++)
        put32(f, 0x01010101);
}

static void sip(struct fb *f)
{
    putn(f, SIP, SIP_LEN);
}

static enum decode_result run(const struct fb *f, unsigned link, struct packet *pkt)
{
    struct capture_frame fr = {.data = f->d,
                               .caplen = f->n,
                               .wirelen = f->n,
                               .link = (uint16_t)link,
                               .dir = CAPTURE_DIR_UNKNOWN};
    return decode_frame(&fr, 0, pkt);
}

static enum decode_result run_decap(const struct fb *f, unsigned decap, struct packet *pkt);

#define CHECK_BYTES(a, b, n) CHECK(memcmp((a), (b), (n)) == 0)

static void check_v4_addrs(const struct packet *pkt, const uint8_t *src, const uint8_t *dst)
{
    static const uint8_t zero[12];
    CHECK_INT(pkt->ip_version, 4);
    CHECK_BYTES(pkt->src, src, 4);
    CHECK_BYTES(pkt->dst, dst, 4);
    CHECK_BYTES(pkt->src + 4, zero, 12);
    CHECK_BYTES(pkt->dst + 4, zero, 12);
}

static void check_v6_addrs(const struct packet *pkt, const uint8_t *src, const uint8_t *dst)
{
    CHECK_INT(pkt->ip_version, 6);
    CHECK_BYTES(pkt->src, src, 16);
    CHECK_BYTES(pkt->dst, dst, 16);
}

/* The SIP text as payload, at byte offset off of the frame. */
static void check_sip_payload(const struct packet *pkt, const struct fb *f, uint32_t off)
{
    CHECK(pkt->payload == f->d + off);
    CHECK_INT(pkt->payload_len, SIP_LEN);
}

static void check_error(const struct packet *pkt, enum decode_result r, int stage,
                        const char *reason)
{
    CHECK_INT(r, DECODE_ERROR);
    CHECK_INT(pkt->error_stage, stage);
    CHECK_STR(pkt->error_reason, reason);
    CHECK(pkt->payload == NULL);
    CHECK_INT(pkt->payload_len, 0);
}

/* ---- link layers ---- */

TEST(ethernet_ipv4_udp_gives_addresses_ports_and_payload)
{
    struct fb f = {0};
    eth(&f, 0x0800);
    ip4(&f, IPPROTO_UDP, 8 + SIP_LEN);
    udp(&f, SIP_LEN);
    sip(&f);
    struct capture_frame fr = {.data = f.d,
                               .caplen = f.n,
                               .wirelen = f.n,
                               .ts_ns = 1700000000123456789ull,
                               .link = CAPTURE_LINK_ETHERNET,
                               .dir = CAPTURE_DIR_OUTGOING,
                               .iface = 3};
    struct packet pkt;
    CHECK_INT(decode_frame(&fr, 0, &pkt), DECODE_UDP);
    CHECK_INT(pkt.ts_ns, 1700000000123456789ull);
    CHECK_INT(pkt.iface, 3);
    CHECK_INT(pkt.dir, CAPTURE_DIR_OUTGOING);
    check_v4_addrs(&pkt, SRC4, DST4);
    CHECK_INT(pkt.l4_proto, IPPROTO_UDP);
    CHECK_INT(pkt.sport, 5060);
    CHECK_INT(pkt.dport, 5061);
    CHECK_INT(pkt.n_vlans, 0);
    CHECK_INT(pkt.tunnels, 0);
    CHECK_INT(pkt.truncated, 0);
    CHECK_INT(pkt.frag_offset, 0);
    CHECK_INT(pkt.frag_more, 0);
    CHECK(pkt.error_reason == NULL);
    check_sip_payload(&pkt, &f, 14 + 20 + 8);
}

TEST(ethernet_padding_after_the_ip_total_length_is_not_payload)
{
    struct fb f = {0};
    eth(&f, 0x0800);
    ip4(&f, IPPROTO_UDP, 8 + 4);
    udp(&f, 4);
    putn(&f, "ping", 4);
    zeros(&f, 60 - f.n); /* 46 bytes so far: padded to the 60-byte minimum */
    struct packet pkt;
    CHECK_INT(run(&f, CAPTURE_LINK_ETHERNET, &pkt), DECODE_UDP);
    CHECK(pkt.payload == f.d + 42);
    CHECK_INT(pkt.payload_len, 4);
    CHECK_INT(pkt.truncated, 0);
}

TEST(qinq_tags_are_kept_outermost_first_with_priority_bits_masked)
{
    struct fb f = {0};
    eth_macs(&f);
    tag(&f, 0x88a8, 100);
    tag(&f, 0x8100, 4095);
    put16(&f, 0x86dd);
    ip6(&f, IPPROTO_UDP, 8 + SIP_LEN);
    udp(&f, SIP_LEN);
    sip(&f);
    struct packet pkt;
    CHECK_INT(run(&f, CAPTURE_LINK_ETHERNET, &pkt), DECODE_UDP);
    CHECK_INT(pkt.n_vlans, 2);
    CHECK_INT(pkt.vlans[0], 100);
    CHECK_INT(pkt.vlans[1], 4095);
    check_v6_addrs(&pkt, SRC6, DST6);
    check_sip_payload(&pkt, &f, 12 + 8 + 2 + 40 + 8);
}

TEST(old_9100_qinq_tag_is_followed)
{
    struct fb f = {0};
    eth_macs(&f);
    tag(&f, 0x9100, 7);
    tag(&f, 0x8100, 8);
    put16(&f, 0x0800);
    ip4(&f, IPPROTO_UDP, 8 + SIP_LEN);
    udp(&f, SIP_LEN);
    sip(&f);
    struct packet pkt;
    CHECK_INT(run(&f, CAPTURE_LINK_ETHERNET, &pkt), DECODE_UDP);
    CHECK_INT(pkt.n_vlans, 2);
    CHECK_INT(pkt.vlans[0], 7);
    CHECK_INT(pkt.vlans[1], 8);
    check_sip_payload(&pkt, &f, 12 + 8 + 2 + 20 + 8);
}

TEST(six_vlan_tags_keep_the_outer_four_and_still_decode)
{
    struct fb f = {0};
    eth_macs(&f);
    for (unsigned i = 1; i <= 6; i++)
        tag(&f, i == 1 ? 0x88a8 : 0x8100, i * 10);
    put16(&f, 0x0800);
    ip4(&f, IPPROTO_UDP, 8 + SIP_LEN);
    udp(&f, SIP_LEN);
    sip(&f);
    struct packet pkt;
    CHECK_INT(run(&f, CAPTURE_LINK_ETHERNET, &pkt), DECODE_UDP);
    CHECK_INT(pkt.n_vlans, DECODE_MAX_VLANS);
    CHECK_INT(pkt.vlans[0], 10);
    CHECK_INT(pkt.vlans[1], 20);
    CHECK_INT(pkt.vlans[2], 30);
    CHECK_INT(pkt.vlans[3], 40);
    check_sip_payload(&pkt, &f, 12 + 6 * 4 + 2 + 20 + 8);
}

TEST(vlan_tag_cut_short_is_a_short_frame)
{
    struct fb f = {0};
    eth_macs(&f);
    put16(&f, 0x8100);
    put16(&f, 5); /* TCI but no inner ethertype */
    struct packet pkt;
    check_error(&pkt, run(&f, CAPTURE_LINK_ETHERNET, &pkt), DECODE_STAGE_L2, "short_frame");
}

TEST(non_ip_ethertypes_are_skipped_not_errors)
{
    static const unsigned types[] = {0x0806 /* ARP */, 0x88cc /* LLDP */, 0x0026 /* 802.3 length */,
                                     0x8863 /* PPPoE discovery */};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        struct fb f = {0};
        eth(&f, types[i]);
        zeros(&f, 28);
        struct packet pkt;
        CHECK_INT(run(&f, CAPTURE_LINK_ETHERNET, &pkt), DECODE_SKIP);
        CHECK(pkt.error_reason == NULL);
        CHECK(pkt.payload == NULL);
    }
}

TEST(short_ethernet_header_is_a_short_frame)
{
    struct fb f = {0};
    eth_macs(&f);
    put8(&f, 0x08);
    struct packet pkt;
    check_error(&pkt, run(&f, CAPTURE_LINK_ETHERNET, &pkt), DECODE_STAGE_L2, "short_frame");
}

TEST(pppoe_session_carries_ipv4_and_other_ppp_protocols_are_skipped)
{
    struct fb f = {0};
    eth(&f, 0x8864);
    put8(&f, 0x11);
    put8(&f, 0);
    put16(&f, 0x0b0c);
    put16(&f, 2 + 20 + 8 + SIP_LEN);
    put16(&f, 0x0021);
    ip4(&f, IPPROTO_UDP, 8 + SIP_LEN);
    udp(&f, SIP_LEN);
    sip(&f);
    struct packet pkt;
    CHECK_INT(run(&f, CAPTURE_LINK_ETHERNET, &pkt), DECODE_UDP);
    check_v4_addrs(&pkt, SRC4, DST4);
    check_sip_payload(&pkt, &f, 14 + 8 + 20 + 8);

    f.d[14 + 6] = 0xc0; /* PPP LCP 0xc021 */
    CHECK_INT(run(&f, CAPTURE_LINK_ETHERNET, &pkt), DECODE_SKIP);
    f.d[14 + 6] = 0x00;
    f.d[14 + 7] = 0x57; /* IPv6 announced, IPv4 inside */
    check_error(&pkt, run(&f, CAPTURE_LINK_ETHERNET, &pkt), DECODE_STAGE_L3, "bad_ip_version");
}

TEST(linux_cooked_v1_uses_the_protocol_field_and_packet_type)
{
    struct fb f = {0};
    sll(&f, 4 /* outgoing */, 0x86dd);
    ip6(&f, IPPROTO_UDP, 8 + SIP_LEN);
    udp(&f, SIP_LEN);
    sip(&f);
    struct packet pkt;
    CHECK_INT(run(&f, CAPTURE_LINK_LINUX_SLL, &pkt), DECODE_UDP);
    CHECK_INT(pkt.dir, CAPTURE_DIR_OUTGOING);
    check_v6_addrs(&pkt, SRC6, DST6);
    CHECK_INT(pkt.sport, 5060);
    check_sip_payload(&pkt, &f, 16 + 40 + 8);

    /* A live source's own direction wins over the cooked header. */
    struct capture_frame fr = {.data = f.d,
                               .caplen = f.n,
                               .wirelen = f.n,
                               .link = CAPTURE_LINK_LINUX_SLL,
                               .dir = CAPTURE_DIR_HOST};
    CHECK_INT(decode_frame(&fr, 0, &pkt), DECODE_UDP);
    CHECK_INT(pkt.dir, CAPTURE_DIR_HOST);
}

TEST(linux_cooked_v1_with_a_vlan_tag_after_the_header)
{
    struct fb f = {0};
    sll(&f, 0, 0x8100);
    put16(&f, 42);
    put16(&f, 0x0800);
    ip4(&f, IPPROTO_UDP, 8 + SIP_LEN);
    udp(&f, SIP_LEN);
    sip(&f);
    struct packet pkt;
    CHECK_INT(run(&f, CAPTURE_LINK_LINUX_SLL, &pkt), DECODE_UDP);
    CHECK_INT(pkt.dir, CAPTURE_DIR_HOST);
    CHECK_INT(pkt.n_vlans, 1);
    CHECK_INT(pkt.vlans[0], 42);
    check_sip_payload(&pkt, &f, 16 + 4 + 20 + 8);
}

TEST(linux_cooked_v1_non_ip_protocol_is_skipped_and_short_header_is_an_error)
{
    struct fb f = {0};
    sll(&f, 0, 0x0004); /* ETH_P_802_2 */
    zeros(&f, 10);
    struct packet pkt;
    CHECK_INT(run(&f, CAPTURE_LINK_LINUX_SLL, &pkt), DECODE_SKIP);
    f.n = 15;
    check_error(&pkt, run(&f, CAPTURE_LINK_LINUX_SLL, &pkt), DECODE_STAGE_L2, "short_frame");
}

TEST(linux_cooked_v2_ipv4_tcp_gives_ifindex_seq_flags_and_payload)
{
    struct fb f = {0};
    sll2(&f, 0x0800, 3 /* otherhost */);
    ip4(&f, IPPROTO_TCP, 32 + SIP_LEN);
    tcpx(&f, 40000, 5060, 0xdeadbeef, DECODE_TCP_ACK | 0x08 /* PSH */, 8);
    sip(&f);
    struct packet pkt;
    CHECK_INT(run(&f, CAPTURE_LINK_LINUX_SLL2, &pkt), DECODE_TCP);
    CHECK_INT(pkt.dir, CAPTURE_DIR_OTHERHOST);
    CHECK_INT(pkt.link_ifindex, 3); /* the interface tcpdump -i any saw it on (dedup.h) */
    check_v4_addrs(&pkt, SRC4, DST4);
    CHECK_INT(pkt.l4_proto, IPPROTO_TCP);
    CHECK_INT(pkt.sport, 40000);
    CHECK_INT(pkt.dport, 5060);
    CHECK_INT(pkt.tcp_seq, 0xdeadbeefu);
    CHECK_INT(pkt.tcp_flags, 0x18);
    check_sip_payload(&pkt, &f, 20 + 20 + 32);
    f.n = 19;
    check_error(&pkt, run(&f, CAPTURE_LINK_LINUX_SLL2, &pkt), DECODE_STAGE_L2, "short_frame");
}

TEST(raw_link_takes_the_version_from_the_first_nibble)
{
    struct fb f = {0};
    ip4(&f, IPPROTO_UDP, 8 + SIP_LEN);
    udp(&f, SIP_LEN);
    sip(&f);
    struct packet pkt;
    CHECK_INT(run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_UDP);
    check_v4_addrs(&pkt, SRC4, DST4);
    check_sip_payload(&pkt, &f, 28);
    CHECK_INT(run(&f, CAPTURE_LINK_IPV4, &pkt), DECODE_UDP);
    check_error(&pkt, run(&f, CAPTURE_LINK_IPV6, &pkt), DECODE_STAGE_L3, "bad_ip_version");

    struct fb g = {0};
    ip6(&g, IPPROTO_UDP, 8 + SIP_LEN);
    udp(&g, SIP_LEN);
    sip(&g);
    CHECK_INT(run(&g, CAPTURE_LINK_RAW, &pkt), DECODE_UDP);
    check_v6_addrs(&pkt, SRC6, DST6);
    check_sip_payload(&pkt, &g, 48);
    CHECK_INT(run(&g, CAPTURE_LINK_IPV6, &pkt), DECODE_UDP);
    check_error(&pkt, run(&g, CAPTURE_LINK_IPV4, &pkt), DECODE_STAGE_L3, "bad_ip_version");

    g.d[0] = 0x50;
    check_error(&pkt, run(&g, CAPTURE_LINK_RAW, &pkt), DECODE_STAGE_L3, "bad_ip_version");
    g.n = 0;
    check_error(&pkt, run(&g, CAPTURE_LINK_RAW, &pkt), DECODE_STAGE_L3, "short_ip_header");
}

/* A NULL/LOOP frame: 4-byte family as the four given bytes, then IP. */
static void loopback_frame(struct fb *f, const uint8_t fam[4], int v6)
{
    f->n = 0;
    putn(f, fam, 4);
    if (v6)
        ip6(f, IPPROTO_UDP, 8 + SIP_LEN);
    else
        ip4(f, IPPROTO_UDP, 8 + SIP_LEN);
    udp(f, SIP_LEN);
    sip(f);
}

TEST(null_link_accepts_the_family_in_either_byte_order)
{
    static const struct {
        uint8_t fam[4];
        int v6;
    } ok[] = {
        {{2, 0, 0, 0}, 0},  {{0, 0, 0, 2}, 0},  {{24, 0, 0, 0}, 1}, {{0, 0, 0, 24}, 1},
        {{28, 0, 0, 0}, 1}, {{0, 0, 0, 28}, 1}, {{30, 0, 0, 0}, 1}, {{0, 0, 0, 30}, 1},
    };
    struct fb f;
    struct packet pkt;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        loopback_frame(&f, ok[i].fam, ok[i].v6);
        CHECK_INT(run(&f, CAPTURE_LINK_NULL, &pkt), DECODE_UDP);
        CHECK_INT(pkt.ip_version, ok[i].v6 ? 6 : 4);
        check_sip_payload(&pkt, &f, ok[i].v6 ? 52 : 32);
    }
    static const uint8_t appletalk[4] = {16, 0, 0, 0};
    loopback_frame(&f, appletalk, 0);
    CHECK_INT(run(&f, CAPTURE_LINK_NULL, &pkt), DECODE_SKIP);
    static const uint8_t inet_v6inside[4] = {2, 0, 0, 0};
    loopback_frame(&f, inet_v6inside, 1);
    check_error(&pkt, run(&f, CAPTURE_LINK_NULL, &pkt), DECODE_STAGE_L3, "bad_ip_version");
    f.n = 3;
    check_error(&pkt, run(&f, CAPTURE_LINK_NULL, &pkt), DECODE_STAGE_L2, "short_frame");
}

TEST(loop_link_family_is_in_network_order_only)
{
    struct fb f;
    struct packet pkt;
    static const uint8_t be2[4] = {0, 0, 0, 2}, le2[4] = {2, 0, 0, 0}, be24[4] = {0, 0, 0, 24};
    loopback_frame(&f, be2, 0);
    CHECK_INT(run(&f, CAPTURE_LINK_LOOP, &pkt), DECODE_UDP);
    check_v4_addrs(&pkt, SRC4, DST4);
    loopback_frame(&f, be24, 1);
    CHECK_INT(run(&f, CAPTURE_LINK_LOOP, &pkt), DECODE_UDP);
    check_v6_addrs(&pkt, SRC6, DST6);
    loopback_frame(&f, le2, 0);
    CHECK_INT(run(&f, CAPTURE_LINK_LOOP, &pkt), DECODE_SKIP);
}

TEST(unknown_link_type_is_an_l2_error)
{
    struct fb f = {0};
    ip4(&f, IPPROTO_UDP, 8);
    udp(&f, 0);
    struct packet pkt;
    check_error(&pkt, run(&f, 147, &pkt), DECODE_STAGE_L2, "unsupported_link");
}

/* ---- IPv4 ---- */

TEST(ipv4_options_are_skipped_by_ihl)
{
    struct fb f = {0};
    ip4x(&f, IPPROTO_UDP, 8 + SIP_LEN, 1, 0, 3, SRC4, DST4);
    udp(&f, SIP_LEN);
    sip(&f);
    struct packet pkt;
    CHECK_INT(run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_UDP);
    check_sip_payload(&pkt, &f, 32 + 8);
}

TEST(ipv4_header_checks_name_the_fault)
{
    struct fb f = {0};
    ip4(&f, IPPROTO_UDP, 8 + SIP_LEN);
    udp(&f, SIP_LEN);
    sip(&f);
    struct packet pkt;

    f.d[0] = 0x44; /* IHL 4 */
    check_error(&pkt, run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_STAGE_L3, "bad_ipv4_header");
    f.d[0] = 0x45;
    f.d[2] = 0;
    f.d[3] = 19; /* total length below the header */
    check_error(&pkt, run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_STAGE_L3, "bad_ipv4_header");
    f.d[3] = (uint8_t)(f.n + 1); /* one byte past a frame that was not cut */
    check_error(&pkt, run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_STAGE_L3, "bad_ip_length");
    f.d[3] = (uint8_t)f.n;
    f.d[0] = 0x4f; /* IHL 15: a 60-byte header in a 50-byte frame */
    f.n = 50;
    check_error(&pkt, run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_STAGE_L3, "short_ip_header");
    f.n = 19;
    f.d[0] = 0x45;
    check_error(&pkt, run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_STAGE_L3, "short_ip_header");
}

TEST(ipv4_total_length_zero_takes_the_frame_length)
{
    /* What TSO and BIG TCP leave in captures: tot_len 0. */
    struct fb f = {0};
    ip4(&f, IPPROTO_TCP, 20 + SIP_LEN);
    tcpx(&f, 5060, 5060, 1, DECODE_TCP_ACK, 5);
    sip(&f);
    f.d[2] = f.d[3] = 0;
    struct packet pkt;
    CHECK_INT(run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_TCP);
    check_sip_payload(&pkt, &f, 40);
}

TEST(ipv4_first_fragment_with_mf_and_offset_zero_is_a_fragment)
{
    struct fb f = {0};
    eth(&f, 0x0800);
    ip4x(&f, IPPROTO_UDP, 8 + SIP_LEN, 0xbeef, 0x2000, 0, SRC4, DST4);
    udp(&f, 500); /* the UDP length covers the whole datagram, not this fragment */
    sip(&f);
    struct packet pkt;
    CHECK_INT(run(&f, CAPTURE_LINK_ETHERNET, &pkt), DECODE_FRAGMENT);
    check_v4_addrs(&pkt, SRC4, DST4);
    CHECK_INT(pkt.l4_proto, IPPROTO_UDP);
    CHECK_INT(pkt.frag_id, 0xbeef);
    CHECK_INT(pkt.frag_offset, 0);
    CHECK_INT(pkt.frag_more, 1);
    CHECK_INT(pkt.sport, 0);
    CHECK_INT(pkt.dport, 0);
    CHECK(pkt.payload == f.d + 34);
    CHECK_INT(pkt.payload_len, 8 + SIP_LEN);
}

/* The header length counts in the 65535-byte limit of a reassembled datagram (ip_reasm.h). */
TEST(ipv4_fragment_gives_its_header_length_options_included)
{
    struct fb f = {0};
    ip4x(&f, IPPROTO_UDP, SIP_LEN, 7, 0x2000, 2, SRC4, DST4);
    sip(&f);
    struct packet pkt;
    CHECK_INT(run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_FRAGMENT);
    CHECK_INT(pkt.frag_hdr_len, 28);
    check_sip_payload(&pkt, &f, 28);
    f.n = 0;
    ip4x(&f, IPPROTO_UDP, SIP_LEN, 7, 185, 0, SRC4, DST4);
    sip(&f);
    CHECK_INT(run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_FRAGMENT);
    CHECK_INT(pkt.frag_hdr_len, 20);
}

TEST(ipv4_middle_and_last_fragments_give_offset_in_bytes)
{
    struct fb f = {0};
    ip4x(&f, IPPROTO_TCP, SIP_LEN, 7, 0x2000 | 185, 0, SRC4, DST4); /* 185 * 8 = 1480 */
    sip(&f);
    struct packet pkt;
    CHECK_INT(run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_FRAGMENT);
    CHECK_INT(pkt.l4_proto, IPPROTO_TCP);
    CHECK_INT(pkt.frag_id, 7);
    CHECK_INT(pkt.frag_offset, 1480);
    CHECK_INT(pkt.frag_more, 1);
    check_sip_payload(&pkt, &f, 20);

    f.n = 0;
    ip4x(&f, IPPROTO_UDP, SIP_LEN, 8, 0x4000 | 0x1fff, 0, SRC4, DST4); /* DF ignored, last */
    sip(&f);
    CHECK_INT(run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_FRAGMENT);
    CHECK_INT(pkt.frag_id, 8);
    CHECK_INT(pkt.frag_offset, 65528);
    CHECK_INT(pkt.frag_more, 0);
    check_sip_payload(&pkt, &f, 20);
}

TEST(icmp_and_gre_are_skipped)
{
    struct fb f = {0};
    ip4(&f, IPPROTO_ICMP, 8);
    zeros(&f, 8);
    struct packet pkt;
    CHECK_INT(run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_SKIP);
    f.n = 0;
    ip4(&f, 47, 8);
    zeros(&f, 8);
    CHECK_INT(run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_SKIP);
}

/* A fragment of a protocol that cannot carry SIP (ICMP, ESP, SCTP...) is skipped like the whole
 * packet would be, not handed to reassembly: a flood of them filled the table and evicted the
 * fragments of SIP datagrams. What decode_next follows stays a fragment: UDP, TCP, IP-in-IP,
 * AH, IPv6 extension headers after IPv6, GRE when opened. The socket filter selects the same. */
TEST(fragments_are_handed_on_only_when_their_protocol_may_carry_sip)
{
    static const struct {
        int v6;
        unsigned proto, decap;
        enum decode_result want;
    } cases[] = {
        {0, IPPROTO_UDP, 0, DECODE_FRAGMENT},
        {0, IPPROTO_TCP, 0, DECODE_FRAGMENT},
        {0, IPPROTO_IPIP, 0, DECODE_FRAGMENT},
        {0, IPPROTO_IPV6, 0, DECODE_FRAGMENT},
        {0, IPPROTO_AH, 0, DECODE_FRAGMENT},
        {0, IPPROTO_GRE, DECODE_GRE, DECODE_FRAGMENT},
        {0, IPPROTO_GRE, DECODE_VXLAN, DECODE_SKIP},
        {0, IPPROTO_ICMP, 0, DECODE_SKIP},
        {0, IPPROTO_ESP, 0, DECODE_SKIP},
        {0, IPPROTO_SCTP, 0, DECODE_SKIP},
        {0, IPPROTO_DSTOPTS, 0, DECODE_SKIP}, /* an IPv6 number after IPv4 */
        {1, IPPROTO_UDP, 0, DECODE_FRAGMENT},
        {1, IPPROTO_TCP, 0, DECODE_FRAGMENT},
        {1, IPPROTO_DSTOPTS, 0, DECODE_FRAGMENT},
        {1, IPPROTO_IPIP, 0, DECODE_FRAGMENT},
        {1, IPPROTO_GRE, DECODE_GRE, DECODE_FRAGMENT},
        {1, IPPROTO_GRE, 0, DECODE_SKIP},
        {1, IPPROTO_ICMPV6, 0, DECODE_SKIP},
        {1, IPPROTO_ESP, 0, DECODE_SKIP},
        {1, IPPROTO_NONE, 0, DECODE_SKIP},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (unsigned first = 0; first < 2; first++) {
            struct fb f = {0};
            struct packet pkt;
            eth(&f, cases[i].v6 ? 0x86dd : 0x0800);
            if (cases[i].v6) {
                ip6(&f, IPPROTO_FRAGMENT, 8 + 64);
                frag6(&f, cases[i].proto, first ? 0 : 1480, 1, 0x5150);
            } else {
                ip4x(&f, cases[i].proto, 64, 0x5150, first ? 0x2000 : 185, 0, SRC4, DST4);
            }
            zeros(&f, 64);
            enum decode_result r = run_decap(&f, cases[i].decap, &pkt);
            if (r != cases[i].want)
                TEST_FAIL_AT("IPv%d protocol %u decap %u, %s fragment: %d, want %d",
                             cases[i].v6 ? 6 : 4, cases[i].proto, cases[i].decap,
                             first ? "first" : "later", r, cases[i].want);
            CHECK(pkt.error_reason == NULL);
        }
    }
}

/* ---- IPv6 ---- */

TEST(ipv6_extension_headers_are_skipped_to_udp)
{
    /* hop-by-hop (8) -> routing (24) -> destination options (16) -> AH (24) -> UDP */
    struct fb f = {0};
    ip6(&f, IPPROTO_HOPOPTS, 8 + 24 + 16 + 24 + 8 + SIP_LEN);
    ext6(&f, IPPROTO_ROUTING, 0);
    ext6(&f, IPPROTO_DSTOPTS, 2);
    ext6(&f, IPPROTO_AH, 1);
    ah(&f, IPPROTO_UDP, 4);
    udp(&f, SIP_LEN);
    sip(&f);
    struct packet pkt;
    CHECK_INT(run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_UDP);
    check_v6_addrs(&pkt, SRC6, DST6);
    CHECK_INT(pkt.sport, 5060);
    check_sip_payload(&pkt, &f, 40 + 72 + 8);
}

TEST(ipv4_ah_is_skipped_to_tcp)
{
    struct fb f = {0};
    ip4(&f, IPPROTO_AH, 16 + 20 + SIP_LEN);
    ah(&f, IPPROTO_TCP, 2);
    tcpx(&f, 1, 2, 3, DECODE_TCP_SYN, 5);
    sip(&f);
    struct packet pkt;
    CHECK_INT(run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_TCP);
    CHECK_INT(pkt.tcp_flags, DECODE_TCP_SYN);
    check_sip_payload(&pkt, &f, 20 + 16 + 20);
}

TEST(ipv6_extension_header_past_the_payload_is_bad)
{
    struct fb f = {0};
    ip6(&f, IPPROTO_DSTOPTS, 16);
    ext6(&f, IPPROTO_UDP, 2); /* says 24 bytes, 16 in the payload */
    struct packet pkt;
    f.n = 40 + 16;
    check_error(&pkt, run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_STAGE_L3, "bad_ext_header");

    f.n = 0;
    ip6(&f, IPPROTO_DSTOPTS, 4); /* shorter than any extension header */
    zeros(&f, 4);
    check_error(&pkt, run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_STAGE_L3, "bad_ext_header");
}

TEST(ipv6_header_checks_name_the_fault)
{
    struct fb f = {0};
    ip6(&f, IPPROTO_UDP, 8 + SIP_LEN + 1); /* one byte more than the frame */
    udp(&f, SIP_LEN);
    sip(&f);
    struct packet pkt;
    check_error(&pkt, run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_STAGE_L3, "bad_ip_length");
    f.n = 39;
    check_error(&pkt, run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_STAGE_L3, "short_ip_header");
}

TEST(ipv6_fragment_header_gives_fragment_fields_and_data_after_it)
{
    struct fb f = {0};
    sll(&f, 0, 0x86dd);
    ip6(&f, IPPROTO_HOPOPTS, 8 + 8 + 8 + SIP_LEN);
    ext6(&f, IPPROTO_FRAGMENT, 0);
    frag6(&f, IPPROTO_UDP, 0, 1, 0xf00dcafe);
    udp(&f, 1400);
    sip(&f);
    struct packet pkt;
    CHECK_INT(run(&f, CAPTURE_LINK_LINUX_SLL, &pkt), DECODE_FRAGMENT);
    check_v6_addrs(&pkt, SRC6, DST6);
    CHECK_INT(pkt.l4_proto, IPPROTO_UDP);
    CHECK_INT(pkt.frag_id, 0xf00dcafeu);
    CHECK_INT(pkt.frag_offset, 0);
    CHECK_INT(pkt.frag_more, 1);
    CHECK_INT(pkt.frag_hdr_len, 8); /* the hop-by-hop options before the Fragment header */
    CHECK_INT(pkt.sport, 0);
    CHECK(pkt.payload == f.d + 16 + 40 + 16);
    CHECK_INT(pkt.payload_len, 8 + SIP_LEN);

    f.n = 0;
    ip6(&f, IPPROTO_FRAGMENT, 8 + SIP_LEN);
    frag6(&f, IPPROTO_DSTOPTS, 1448, 0, 9);
    sip(&f);
    CHECK_INT(run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_FRAGMENT);
    CHECK_INT(pkt.l4_proto, IPPROTO_DSTOPTS);
    CHECK_INT(pkt.frag_id, 9);
    CHECK_INT(pkt.frag_offset, 1448);
    CHECK_INT(pkt.frag_more, 0);
    CHECK_INT(pkt.frag_hdr_len, 0);
    check_sip_payload(&pkt, &f, 48);
}

TEST(ipv6_atomic_fragment_is_decoded_as_a_whole_packet)
{
    /* RFC 6946: offset 0 and M clear. */
    struct fb f = {0};
    ip6(&f, IPPROTO_FRAGMENT, 8 + 8 + SIP_LEN);
    frag6(&f, IPPROTO_UDP, 0, 0, 77);
    udp(&f, SIP_LEN);
    sip(&f);
    struct packet pkt;
    CHECK_INT(run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_UDP);
    CHECK_INT(pkt.frag_id, 0);
    CHECK_INT(pkt.sport, 5060);
    check_sip_payload(&pkt, &f, 56);
}

TEST(esp_and_no_next_header_are_skipped)
{
    struct fb f = {0};
    ip6(&f, IPPROTO_ESP, 16);
    zeros(&f, 16);
    struct packet pkt;
    CHECK_INT(run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_SKIP);
    CHECK(pkt.error_reason == NULL);
    f.n = 0;
    ip6(&f, IPPROTO_DSTOPTS, 8);
    ext6(&f, IPPROTO_NONE, 0);
    CHECK_INT(run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_SKIP);
    f.n = 0;
    ip4(&f, IPPROTO_ESP, 16);
    zeros(&f, 16);
    CHECK_INT(run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_SKIP);
}

TEST(ipv6_extension_header_numbers_mean_nothing_after_ipv4)
{
    struct fb f = {0};
    ip4(&f, IPPROTO_DSTOPTS, 16);
    ext6(&f, IPPROTO_UDP, 1);
    struct packet pkt;
    CHECK_INT(run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_SKIP);
}

/* ---- IP-in-IP ---- */

static const uint8_t OUT4S[4] = {10, 0, 0, 1}, OUT4D[4] = {10, 0, 0, 2};
static const uint8_t OUT6S[16] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
static const uint8_t OUT6D[16] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};

TEST(ipip_of_every_version_pair_reports_the_innermost_addresses)
{
    for (int outer6 = 0; outer6 < 2; outer6++) {
        for (int inner6 = 0; inner6 < 2; inner6++) {
            struct fb f = {0};
            uint32_t inner_len = (inner6 ? 40 : 20) + 8 + SIP_LEN;
            unsigned proto = inner6 ? IPPROTO_IPV6 : IPPROTO_IPIP;
            eth(&f, outer6 ? 0x86dd : 0x0800);
            if (outer6)
                ip6x(&f, proto, inner_len, OUT6S, OUT6D);
            else
                ip4x(&f, proto, inner_len, 1, 0, 0, OUT4S, OUT4D);
            if (inner6)
                ip6(&f, IPPROTO_UDP, 8 + SIP_LEN);
            else
                ip4(&f, IPPROTO_UDP, 8 + SIP_LEN);
            udp(&f, SIP_LEN);
            sip(&f);
            struct packet pkt;
            CHECK_INT(run(&f, CAPTURE_LINK_ETHERNET, &pkt), DECODE_UDP);
            CHECK_INT(pkt.tunnels, 1);
            if (inner6)
                check_v6_addrs(&pkt, SRC6, DST6);
            else
                check_v4_addrs(&pkt, SRC4, DST4);
            check_sip_payload(&pkt, &f, 14 + (outer6 ? 40 : 20) + (inner6 ? 40 : 20) + 8);
        }
    }
}

/* levels nested IPv4-in-IPv4 headers around UDP. */
static void nested(struct fb *f, unsigned levels)
{
    f->n = 0;
    for (unsigned i = 0; i < levels; i++)
        ip4x(f, IPPROTO_IPIP, (levels - i) * 20 + 8 + SIP_LEN, i, 0, 0, OUT4S, OUT4D);
    ip4(f, IPPROTO_UDP, 8 + SIP_LEN);
    udp(f, SIP_LEN);
    sip(f);
}

TEST(four_tunnel_levels_decode_and_a_fifth_is_an_error)
{
    struct fb f;
    struct packet pkt;
    nested(&f, DECODE_MAX_TUNNELS);
    CHECK_INT(run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_UDP);
    CHECK_INT(pkt.tunnels, 4);
    check_v4_addrs(&pkt, SRC4, DST4);
    check_sip_payload(&pkt, &f, 5 * 20 + 8);
    nested(&f, DECODE_MAX_TUNNELS + 1);
    check_error(&pkt, run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_STAGE_L3, "too_many_tunnels");
}

TEST(tunnel_inner_header_must_match_the_outer_protocol)
{
    struct fb f = {0};
    ip4x(&f, IPPROTO_IPV6, 20 + 8 + SIP_LEN, 1, 0, 0, OUT4S, OUT4D); /* says IPv6 inside */
    ip4(&f, IPPROTO_UDP, 8 + SIP_LEN);
    udp(&f, SIP_LEN);
    sip(&f);
    struct packet pkt;
    check_error(&pkt, run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_STAGE_L3, "bad_ip_version");
}

TEST(inner_length_past_the_outer_payload_is_bad)
{
    struct fb f = {0};
    ip4x(&f, IPPROTO_IPIP, 20 + 8 + SIP_LEN, 1, 0, 0, OUT4S, OUT4D);
    ip4(&f, IPPROTO_UDP, 8 + SIP_LEN + 1);
    udp(&f, SIP_LEN);
    sip(&f);
    struct packet pkt;
    check_error(&pkt, run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_STAGE_L3, "bad_ip_length");
}

TEST(fragmented_tunnel_packet_is_a_fragment_of_the_outer_header)
{
    struct fb f = {0};
    ip4x(&f, IPPROTO_IPIP, 20 + 8 + SIP_LEN, 99, 0x2000, 0, OUT4S, OUT4D);
    ip4(&f, IPPROTO_UDP, 8 + SIP_LEN);
    udp(&f, SIP_LEN);
    sip(&f);
    struct packet pkt;
    CHECK_INT(run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_FRAGMENT);
    CHECK_INT(pkt.l4_proto, IPPROTO_IPIP);
    CHECK_INT(pkt.tunnels, 0);
    CHECK_INT(pkt.frag_id, 99);
    check_v4_addrs(&pkt, OUT4S, OUT4D);
    CHECK(pkt.payload == f.d + 20);
    CHECK_INT(pkt.payload_len, 20 + 8 + SIP_LEN);

    /* reasm hands the reassembled data back: the inner packet is followed. */
    CHECK_INT(decode_transport(pkt.payload, pkt.payload_len, &pkt), DECODE_UDP);
    CHECK_INT(pkt.tunnels, 1);
    check_v4_addrs(&pkt, SRC4, DST4);
    CHECK_INT(pkt.sport, 5060);
    check_sip_payload(&pkt, &f, 48);
}

/* ---- UDP and TCP ---- */

TEST(udp_length_shorter_than_the_ip_payload_limits_the_payload)
{
    struct fb f = {0};
    ip4(&f, IPPROTO_UDP, 8 + SIP_LEN);
    udpx(&f, 1, 2, 8 + 10);
    sip(&f);
    struct packet pkt;
    CHECK_INT(run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_UDP);
    CHECK(pkt.payload == f.d + 28);
    CHECK_INT(pkt.payload_len, 10);
}

/* Receivers drop such a datagram (Linux counts it as a short packet): it was taken for the IP
 * payload's SIP, silently (a review). */
TEST(udp_length_longer_than_the_ip_payload_is_an_l4_error)
{
    struct fb f = {0};
    ip4(&f, IPPROTO_UDP, 8 + SIP_LEN);
    udpx(&f, 1, 2, 8 + SIP_LEN + 100);
    sip(&f);
    struct packet pkt;
    check_error(&pkt, run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_STAGE_L4, "bad_udp_length");
    /* One byte more than the payload is already too long; exactly the payload is fine. */
    f.n = 0;
    ip4(&f, IPPROTO_UDP, 8 + SIP_LEN);
    udpx(&f, 1, 2, 8 + SIP_LEN + 1);
    sip(&f);
    check_error(&pkt, run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_STAGE_L4, "bad_udp_length");
    f.n = 0;
    ip4(&f, IPPROTO_UDP, 8 + SIP_LEN);
    udpx(&f, 1, 2, 8 + SIP_LEN);
    sip(&f);
    CHECK_INT(run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_UDP);
    check_sip_payload(&pkt, &f, 28);
}

TEST(udp_length_below_eight_and_short_udp_header_are_l4_errors)
{
    struct fb f = {0};
    ip4(&f, IPPROTO_UDP, 8 + SIP_LEN);
    udpx(&f, 1, 2, 7);
    sip(&f);
    struct packet pkt;
    check_error(&pkt, run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_STAGE_L4, "bad_udp_length");

    f.n = 0;
    ip4(&f, IPPROTO_UDP, 7);
    zeros(&f, 7);
    check_error(&pkt, run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_STAGE_L4, "short_udp");
}

TEST(udp_with_empty_payload_is_udp)
{
    struct fb f = {0};
    ip6(&f, IPPROTO_UDP, 8);
    udp(&f, 0);
    struct packet pkt;
    CHECK_INT(run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_UDP);
    CHECK(pkt.payload == f.d + 48);
    CHECK_INT(pkt.payload_len, 0);
}

TEST(tcp_data_offset_checks_name_the_fault)
{
    struct fb f = {0};
    ip4(&f, IPPROTO_TCP, 24);
    tcpx(&f, 1, 2, 3, 0, 6);
    struct packet pkt;
    CHECK_INT(run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_TCP);
    CHECK(pkt.payload == f.d + 44);
    CHECK_INT(pkt.payload_len, 0);

    f.d[20 + 12] = 4 << 4;
    check_error(&pkt, run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_STAGE_L4, "bad_tcp_offset");
    f.d[20 + 12] = 7 << 4; /* 28 bytes in a 24-byte segment */
    check_error(&pkt, run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_STAGE_L4, "bad_tcp_offset");

    f.n = 0;
    ip4(&f, IPPROTO_TCP, 19);
    zeros(&f, 19);
    check_error(&pkt, run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_STAGE_L4, "short_tcp");
}

TEST(tcp_flags_and_sequence_number_are_host_order)
{
    struct fb f = {0};
    ip6(&f, IPPROTO_TCP, 20);
    tcpx(&f, 5061, 443, 0x01020304, DECODE_TCP_FIN | DECODE_TCP_RST | DECODE_TCP_ACK, 5);
    struct packet pkt;
    CHECK_INT(run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_TCP);
    CHECK_INT(pkt.sport, 5061);
    CHECK_INT(pkt.dport, 443);
    CHECK_INT(pkt.tcp_seq, 0x01020304);
    CHECK_INT(pkt.tcp_flags, 0x15);
}

/* ---- truncation ---- */

TEST(frame_cut_at_the_snap_length_is_flagged_and_payload_clamped)
{
    struct fb f = {0};
    eth(&f, 0x0800);
    ip4(&f, IPPROTO_UDP, 8 + SIP_LEN);
    udp(&f, SIP_LEN);
    sip(&f);
    struct capture_frame fr = {
        .data = f.d, .caplen = 14 + 20 + 8 + 5, .wirelen = f.n, .link = CAPTURE_LINK_ETHERNET};
    struct packet pkt;
    CHECK_INT(decode_frame(&fr, 0, &pkt), DECODE_UDP);
    CHECK_INT(pkt.truncated, 1);
    CHECK(pkt.payload == f.d + 42);
    CHECK_INT(pkt.payload_len, 5);
    CHECK_INT(pkt.sport, 5060);
}

/* A frame whose wire length counts bytes after the IP packet that the capture left out (the
 * FCS, which NICs strip, counted by capture devices that report it; a trailer; padding) holds
 * the whole packet: not truncated. Its fragments were dropped as fragment_truncated, and their
 * datagram lost, though every byte of it was there. */
TEST(bytes_missing_only_after_the_ip_packet_are_no_cut)
{
    struct fb f = {0};
    eth(&f, 0x0800);
    ip4x(&f, IPPROTO_UDP, 8 + SIP_LEN, 0xbeef, 0x2000, 0, SRC4, DST4);
    udp(&f, 500);
    sip(&f);
    struct capture_frame fr = {
        .data = f.d, .caplen = f.n, .wirelen = f.n + 4, .link = CAPTURE_LINK_ETHERNET};
    struct packet pkt;
    CHECK_INT(decode_frame(&fr, 0, &pkt), DECODE_FRAGMENT);
    CHECK_INT(pkt.truncated, 0);
    CHECK_INT(pkt.payload_len, 8 + SIP_LEN);
    fr.caplen = f.n - 1; /* the last byte of the fragment is cut: it is */
    CHECK_INT(decode_frame(&fr, 0, &pkt), DECODE_FRAGMENT);
    CHECK_INT(pkt.truncated, 1);
    CHECK_INT(pkt.payload_len, 8 + SIP_LEN - 1);

    struct fb g = {0}; /* IPv6, with 6 bytes of padding after the packet, cut */
    eth(&g, 0x86dd);
    ip6(&g, IPPROTO_FRAGMENT, 8 + 8 + SIP_LEN);
    frag6(&g, IPPROTO_UDP, 0, 1, 77);
    udp(&g, 500);
    sip(&g);
    uint32_t n6 = g.n;
    zeros(&g, 6);
    fr = (struct capture_frame){
        .data = g.d, .caplen = n6 + 2, .wirelen = g.n, .link = CAPTURE_LINK_ETHERNET};
    CHECK_INT(decode_frame(&fr, 0, &pkt), DECODE_FRAGMENT);
    CHECK_INT(pkt.truncated, 0);
    CHECK_INT(pkt.frag_id, 77);
    CHECK_INT(pkt.payload_len, 8 + SIP_LEN);
}

struct fixture {
    const char *name;
    unsigned link;
    enum decode_result result;
    struct fb f;
    uint32_t payload_off; /* where the payload starts */
    uint32_t payload_len; /* its full length */
};

static uint32_t build_fixtures(struct fixture *fx)
{
    uint32_t n = 0;
    struct fb *f;

    fx[n] =
        (struct fixture){"eth qinq ipv4 udp", CAPTURE_LINK_ETHERNET, DECODE_UDP, {{0}, 0}, 0, 0};
    f = &fx[n].f;
    eth_macs(f);
    tag(f, 0x88a8, 1);
    tag(f, 0x8100, 2);
    put16(f, 0x0800);
    ip4x(f, IPPROTO_UDP, 8 + SIP_LEN, 1, 0, 2, SRC4, DST4);
    udp(f, SIP_LEN);
    sip(f);
    fx[n].payload_off = 12 + 8 + 2 + 28 + 8;
    fx[n++].payload_len = SIP_LEN;

    fx[n] = (struct fixture){"eth padded udp", CAPTURE_LINK_ETHERNET, DECODE_UDP, {{0}, 0}, 42, 2};
    f = &fx[n].f;
    eth(f, 0x0800);
    ip4(f, IPPROTO_UDP, 10);
    udp(f, 2);
    putn(f, "\r\n", 2);
    zeros(f, 16);

    n++;
    fx[n] = (struct fixture){"sll ipv6 ext frag", CAPTURE_LINK_LINUX_SLL,
                             DECODE_FRAGMENT,     {{0}, 0},
                             16 + 40 + 16 + 8,    8 + SIP_LEN};
    f = &fx[n].f;
    sll(f, 0, 0x86dd);
    ip6(f, IPPROTO_HOPOPTS, 16 + 8 + 8 + SIP_LEN);
    ext6(f, IPPROTO_FRAGMENT, 1);
    frag6(f, IPPROTO_UDP, 0, 1, 5);
    udp(f, 3000);
    sip(f);

    n++;
    fx[n] = (struct fixture){"sll2 ipv6 ah tcp", CAPTURE_LINK_LINUX_SLL2, DECODE_TCP,
                             {{0}, 0},           20 + 40 + 12 + 24,       SIP_LEN};
    f = &fx[n].f;
    sll2(f, 0x86dd, 0);
    ip6(f, IPPROTO_AH, 12 + 24 + SIP_LEN);
    ah(f, IPPROTO_TCP, 1);
    tcpx(f, 1, 2, 3, 0, 6);
    sip(f);

    n++;
    fx[n] = (struct fixture){"null 6in4 udp", CAPTURE_LINK_NULL, DECODE_UDP,
                             {{0}, 0},        4 + 20 + 40 + 8,   SIP_LEN};
    f = &fx[n].f;
    put32(f, 0x02000000);
    ip4x(f, IPPROTO_IPV6, 40 + 8 + SIP_LEN, 1, 0, 0, OUT4S, OUT4D);
    ip6(f, IPPROTO_UDP, 8 + SIP_LEN);
    udp(f, SIP_LEN);
    sip(f);

    n++;
    fx[n] = (struct fixture){
        "raw ipv4 fragment", CAPTURE_LINK_RAW, DECODE_FRAGMENT, {{0}, 0}, 20, SIP_LEN};
    f = &fx[n].f;
    ip4x(f, IPPROTO_UDP, SIP_LEN, 3, 100, 0, SRC4, DST4);
    sip(f);

    n++;
    fx[n] = (struct fixture){"pppoe ipv4 tcp", CAPTURE_LINK_ETHERNET, DECODE_TCP,
                             {{0}, 0},         14 + 8 + 20 + 20,      SIP_LEN};
    f = &fx[n].f;
    eth(f, 0x8864);
    put16(f, 0x1100);
    put16(f, 1);
    put16(f, 2 + 40 + SIP_LEN);
    put16(f, 0x0021);
    ip4(f, IPPROTO_TCP, 20 + SIP_LEN);
    tcpx(f, 1, 2, 3, 0, 5);
    sip(f);
    n++;
    return n;
}

/* Every prefix of every valid frame, in a heap block of exactly that size so that ASan sees
 * any read past caplen. Cut at the snap length (wirelen = full size), a prefix decodes to the
 * same result with the payload clamped if it holds all headers, and is an error otherwise.
 * As a whole frame (wirelen = caplen), every proper prefix is an error, except that a padded
 * frame may lose padding. */
TEST(every_prefix_of_a_valid_frame_is_an_error_or_a_clamped_payload)
{
    static struct fixture fx[16];
    uint32_t n = build_fixtures(fx);
    CHECK_INT(n, 7);
    for (uint32_t i = 0; i < n; i++) {
        const struct fb *f = &fx[i].f;
        struct packet pkt;
        struct capture_frame whole = {
            .data = f->d, .caplen = f->n, .wirelen = f->n, .link = (uint16_t)fx[i].link};
        if (decode_frame(&whole, 0, &pkt) != fx[i].result ||
            pkt.payload != f->d + fx[i].payload_off || pkt.payload_len != fx[i].payload_len)
            TEST_FAIL_AT("%s: whole frame does not decode as expected", fx[i].name);
        uint32_t end = fx[i].payload_off + fx[i].payload_len;
        for (uint32_t cap = 0; cap < f->n; cap++) {
            uint8_t *copy = malloc(cap ? cap : 1);
            memcpy(copy, f->d, cap);
            struct capture_frame fr = {
                .data = copy, .caplen = cap, .wirelen = f->n, .link = (uint16_t)fx[i].link};
            enum decode_result r = decode_frame(&fr, 0, &pkt);
            if (cap < fx[i].payload_off) {
                if (r != DECODE_ERROR || !pkt.error_reason)
                    TEST_FAIL_AT("%s cut at %u: result %d, expected an error", fx[i].name, cap, r);
            } else {
                /* Cut in the padding after the packet, it is whole: not truncated. */
                uint32_t want = (cap < end ? cap : end) - fx[i].payload_off;
                if (r != fx[i].result || pkt.payload != copy + fx[i].payload_off ||
                    pkt.payload_len != want || pkt.truncated != (cap < end))
                    TEST_FAIL_AT("%s cut at %u: result %d len %u, expected %d len %u", fx[i].name,
                                 cap, r, pkt.payload_len, fx[i].result, want);
            }
            fr.wirelen = cap;
            r = decode_frame(&fr, 0, &pkt);
            int padding_only = cap >= end;
            if (padding_only) {
                if (r != fx[i].result || pkt.payload_len != fx[i].payload_len)
                    TEST_FAIL_AT("%s short at %u: result %d", fx[i].name, cap, r);
            } else if (r != DECODE_ERROR || !pkt.error_reason || pkt.truncated != 0) {
                TEST_FAIL_AT("%s short at %u: result %d, expected an error", fx[i].name, cap, r);
            }
            free(copy);
        }
    }
}

/* ---- decode_transport ---- */

TEST(transport_of_reassembled_udp_and_tcp)
{
    struct packet pkt;
    memset(&pkt, 0, sizeof pkt);
    pkt.ip_version = 4;
    pkt.l4_proto = IPPROTO_UDP;
    memcpy(pkt.src, SRC4, 4);
    struct fb f = {0};
    udp(&f, SIP_LEN);
    sip(&f);
    CHECK_INT(decode_transport(f.d, f.n, &pkt), DECODE_UDP);
    CHECK_INT(pkt.sport, 5060);
    CHECK_INT(pkt.dport, 5061);
    check_sip_payload(&pkt, &f, 8);
    CHECK_INT(pkt.ip_version, 4);
    CHECK_BYTES(pkt.src, SRC4, 4);

    f.n = 0;
    tcpx(&f, 7, 8, 1000, DECODE_TCP_ACK, 5);
    sip(&f);
    pkt.l4_proto = IPPROTO_TCP;
    CHECK_INT(decode_transport(f.d, f.n, &pkt), DECODE_TCP);
    CHECK_INT(pkt.sport, 7);
    CHECK_INT(pkt.tcp_seq, 1000);
    check_sip_payload(&pkt, &f, 20);

    pkt.l4_proto = IPPROTO_UDP;
    check_error(&pkt, decode_transport(f.d, 7, &pkt), DECODE_STAGE_L4, "short_udp");
    pkt.l4_proto = IPPROTO_ICMP;
    CHECK_INT(decode_transport(f.d, f.n, &pkt), DECODE_SKIP);
}

TEST(transport_skips_ipv6_extension_headers_behind_the_fragment_header)
{
    struct packet pkt;
    memset(&pkt, 0, sizeof pkt);
    pkt.ip_version = 6;
    pkt.l4_proto = IPPROTO_DSTOPTS;
    struct fb f = {0};
    ext6(&f, IPPROTO_UDP, 1);
    udp(&f, SIP_LEN);
    sip(&f);
    CHECK_INT(decode_transport(f.d, f.n, &pkt), DECODE_UDP);
    check_sip_payload(&pkt, &f, 24);
}

/* ---- decode_addr_format ---- */

TEST(addresses_format_as_text)
{
    struct fb f = {0};
    ip4(&f, IPPROTO_UDP, 8);
    udp(&f, 0);
    struct packet pkt;
    CHECK_INT(run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_UDP);
    char buf[64];
    CHECK_INT(decode_addr_format(&pkt, 0, buf, sizeof buf), 9);
    CHECK_STR(buf, "192.0.2.1");
    CHECK_INT(decode_addr_format(&pkt, 1, buf, sizeof buf), 12);
    CHECK_STR(buf, "198.51.100.2");
    CHECK_INT(decode_addr_format(&pkt, 1, buf, 12), -ENOSPC);

    f.n = 0;
    ip6(&f, IPPROTO_UDP, 8);
    udp(&f, 0);
    CHECK_INT(run(&f, CAPTURE_LINK_RAW, &pkt), DECODE_UDP);
    CHECK_INT(decode_addr_format(&pkt, 0, buf, sizeof buf), 11);
    CHECK_STR(buf, "2001:db8::1");
    CHECK_INT(decode_addr_format(&pkt, 1, buf, sizeof buf), 11);
    CHECK_STR(buf, "2001:db8::2");

    memset(&pkt, 0, sizeof pkt);
    CHECK_INT(decode_addr_format(&pkt, 0, buf, sizeof buf), -EINVAL);
}

/* ---- VXLAN and GRE, opened on request (--decapsulate) ------------------------------------ */

static enum decode_result run_decap(const struct fb *f, unsigned decap, struct packet *pkt)
{
    struct capture_frame fr = {.data = f->d,
                               .caplen = f->n,
                               .wirelen = f->n,
                               .link = CAPTURE_LINK_ETHERNET,
                               .dir = CAPTURE_DIR_UNKNOWN};
    return decode_frame(&fr, decap, pkt);
}

/* The inner frame most tests carry: Ethernet, a VLAN tag 42, IPv4 SRC4 > DST4, UDP, SIP. */
#define INNER_LEN (14 + 4 + 20 + 8 + SIP_LEN)
static void inner_frame(struct fb *f)
{
    eth_macs(f);
    tag(f, 0x8100, 42);
    put16(f, 0x0800);
    ip4(f, IPPROTO_UDP, 8 + SIP_LEN);
    udp(f, SIP_LEN);
    sip(f);
}

/* An outer Ethernet + IPv4 (OUT4S > OUT4D) + UDP to dport, then a VXLAN header with flags. */
static void vxlan_outer(struct fb *f, unsigned dport, unsigned flags, uint32_t inner_len)
{
    f->n = 0;
    eth(f, 0x0800);
    ip4x(f, IPPROTO_UDP, 8 + 8 + inner_len, 7, 0, 0, OUT4S, OUT4D);
    udpx(f, 40000, dport, 8 + 8 + inner_len);
    put8(f, flags);
    zeros(f, 3);
    put32(f, 0x00abcd00); /* VNI 0xabcd, reserved */
}

static void check_inner(const struct packet *pkt, const struct fb *f, uint32_t inner_at)
{
    CHECK_INT(pkt->tunnels, 1);
    check_v4_addrs(pkt, SRC4, DST4);
    CHECK_INT(pkt->sport, 5060);
    CHECK_INT(pkt->dport, 5061);
    CHECK_INT(pkt->n_vlans, 1);
    CHECK_INT(pkt->vlans[0], 42);
    check_sip_payload(pkt, f, inner_at + INNER_LEN - SIP_LEN);
}

TEST(vxlan_is_opened_on_both_ports_only_when_asked)
{
    static const unsigned ports[] = {4789, 8472};
    struct fb f;
    struct packet pkt;
    for (unsigned i = 0; i < 2; i++) {
        vxlan_outer(&f, ports[i], 0x08, INNER_LEN);
        inner_frame(&f);
        CHECK_INT(run_decap(&f, DECODE_VXLAN, &pkt), DECODE_UDP);
        check_inner(&pkt, &f, 14 + 20 + 8 + 8);
        /* Not asked: the outer datagram, whose payload is the VXLAN header. */
        CHECK_INT(run_decap(&f, DECODE_GRE, &pkt), DECODE_UDP);
        CHECK_INT(pkt.tunnels, 0);
        check_v4_addrs(&pkt, OUT4S, OUT4D);
        CHECK_INT(pkt.dport, ports[i]);
        CHECK(pkt.payload == f.d + 14 + 20 + 8);
    }
    /* Another port is no VXLAN. */
    vxlan_outer(&f, 4790, 0x08, INNER_LEN);
    inner_frame(&f);
    CHECK_INT(run_decap(&f, DECODE_VXLAN, &pkt), DECODE_UDP);
    CHECK_INT(pkt.tunnels, 0);
    CHECK_INT(pkt.dport, 4790);
}

TEST(vxlan_without_its_i_flag_or_cut_short_is_an_error)
{
    struct fb f;
    struct packet pkt;
    vxlan_outer(&f, 4789, 0x00, INNER_LEN);
    inner_frame(&f);
    check_error(&pkt, run_decap(&f, DECODE_VXLAN, &pkt), DECODE_STAGE_L3, "bad_tunnel_header");
    /* The inner Ethernet header cut short: the UDP length says so too. */
    vxlan_outer(&f, 4789, 0x08, 13);
    zeros(&f, 13);
    check_error(&pkt, run_decap(&f, DECODE_VXLAN, &pkt), DECODE_STAGE_L3, "short_tunnel_header");
    vxlan_outer(&f, 4789, 0x08, 0);
    f.n -= 8; /* no VXLAN header at all: an empty datagram */
    f.d[14 + 2] = 0;
    f.d[14 + 3] = 28; /* IP total length */
    f.d[14 + 20 + 4] = 0;
    f.d[14 + 20 + 5] = 8; /* UDP length */
    check_error(&pkt, run_decap(&f, DECODE_VXLAN, &pkt), DECODE_STAGE_L3, "short_tunnel_header");
}

/* Outer Ethernet + IPv4 (protocol 47) + a GRE header with flags, protocol proto and the optional
 * words the flags ask for, then extra bytes (an ERSPAN header). */
static void gre_outer(struct fb *f, unsigned flags, unsigned proto, const uint8_t *extra,
                      uint32_t extra_len, uint32_t inner_len)
{
    uint32_t hl =
        4 + ((flags & 0x8000) ? 4 : 0) + ((flags & 0x2000) ? 4 : 0) + ((flags & 0x1000) ? 4 : 0);
    f->n = 0;
    eth(f, 0x0800);
    ip4x(f, 47, hl + extra_len + inner_len, 9, 0, 0, OUT4S, OUT4D);
    put16(f, flags);
    put16(f, proto);
    for (uint32_t i = 4; i < hl; i += 4)
        put32(f, 0x11223344);
    if (extra_len)
        putn(f, extra, extra_len);
}

TEST(gre_carrying_ip_or_ethernet_is_opened_only_when_asked)
{
    struct fb f;
    struct packet pkt;
    /* Key and sequence number: 12 bytes of GRE, then IPv4. */
    gre_outer(&f, 0x3000, 0x0800, NULL, 0, 20 + 8 + SIP_LEN);
    ip4(&f, IPPROTO_UDP, 8 + SIP_LEN);
    udp(&f, SIP_LEN);
    sip(&f);
    CHECK_INT(run_decap(&f, DECODE_GRE, &pkt), DECODE_UDP);
    CHECK_INT(pkt.tunnels, 1);
    check_v4_addrs(&pkt, SRC4, DST4);
    check_sip_payload(&pkt, &f, 14 + 20 + 12 + 20 + 8);
    CHECK_INT(run_decap(&f, DECODE_VXLAN, &pkt), DECODE_SKIP);
    /* A checksum word, then Ethernet (gretap). */
    gre_outer(&f, 0x8000, 0x6558, NULL, 0, INNER_LEN);
    inner_frame(&f);
    CHECK_INT(run_decap(&f, DECODE_GRE, &pkt), DECODE_UDP);
    check_inner(&pkt, &f, 14 + 20 + 8);
    /* Version 1 (PPTP), source routing, another protocol: nothing for us. */
    gre_outer(&f, 0x0001, 0x880b, NULL, 0, 0);
    CHECK_INT(run_decap(&f, DECODE_GRE, &pkt), DECODE_SKIP);
    gre_outer(&f, 0x4000, 0x0800, NULL, 0, 0);
    CHECK_INT(run_decap(&f, DECODE_GRE, &pkt), DECODE_SKIP);
    gre_outer(&f, 0x0000, 0x0806, NULL, 0, 0);
    CHECK_INT(run_decap(&f, DECODE_GRE, &pkt), DECODE_SKIP);
    /* Cut short: the GRE header, its optional words, the inner IP header. */
    gre_outer(&f, 0x0000, 0x0800, NULL, 0, 0);
    f.n -= 1;
    f.d[14 + 3] = 20 + 3;
    check_error(&pkt, run_decap(&f, DECODE_GRE, &pkt), DECODE_STAGE_L3, "short_tunnel_header");
    gre_outer(&f, 0x2000, 0x0800, NULL, 0, 0);
    f.n -= 2;
    f.d[14 + 3] = 20 + 6;
    check_error(&pkt, run_decap(&f, DECODE_GRE, &pkt), DECODE_STAGE_L3, "short_tunnel_header");
    gre_outer(&f, 0x0000, 0x0800, NULL, 0, 10);
    put8(&f, 0x45);
    zeros(&f, 9);
    check_error(&pkt, run_decap(&f, DECODE_GRE, &pkt), DECODE_STAGE_L3, "short_ip_header");
}

TEST(erspan_types_one_two_and_three_are_opened)
{
    static const uint8_t erspan2[8] = {0x10, 0x2a, 0x00, 0x05, 0, 0, 0, 1};
    static const uint8_t erspan3[12] = {0x20, 0x2a, 0x00, 0x05, 1, 2, 3, 4, 0, 0, 0, 0};
    static const uint8_t erspan3o[20] = {0x20, 0x2a, 0x00, 0x05, 1, 2, 3, 4, 0, 0,
                                         0,    1,    9,    9,    9, 9, 9, 9, 9, 9};
    struct fb f;
    struct packet pkt;
    /* Type I: no sequence number in GRE, no ERSPAN header. */
    gre_outer(&f, 0x0000, 0x88be, NULL, 0, INNER_LEN);
    inner_frame(&f);
    CHECK_INT(run_decap(&f, DECODE_GRE, &pkt), DECODE_UDP);
    check_inner(&pkt, &f, 14 + 20 + 4);
    /* Type II: a sequence number, then 8 bytes of ERSPAN. */
    gre_outer(&f, 0x1000, 0x88be, erspan2, 8, INNER_LEN);
    inner_frame(&f);
    CHECK_INT(run_decap(&f, DECODE_GRE, &pkt), DECODE_UDP);
    check_inner(&pkt, &f, 14 + 20 + 8 + 8);
    /* Type III: 12 bytes, or 20 when its O flag says a subheader follows. */
    gre_outer(&f, 0x1000, 0x22eb, erspan3, 12, INNER_LEN);
    inner_frame(&f);
    CHECK_INT(run_decap(&f, DECODE_GRE, &pkt), DECODE_UDP);
    check_inner(&pkt, &f, 14 + 20 + 8 + 12);
    gre_outer(&f, 0x1000, 0x22eb, erspan3o, 20, INNER_LEN);
    inner_frame(&f);
    CHECK_INT(run_decap(&f, DECODE_GRE, &pkt), DECODE_UDP);
    check_inner(&pkt, &f, 14 + 20 + 8 + 20);
    /* Type III under type II's protocol number (its version nibble is 2), as some switches
     * send it. */
    gre_outer(&f, 0x1000, 0x88be, erspan3o, 20, INNER_LEN);
    inner_frame(&f);
    CHECK_INT(run_decap(&f, DECODE_GRE, &pkt), DECODE_UDP);
    check_inner(&pkt, &f, 14 + 20 + 8 + 20);
    /* A type III header cut short. */
    gre_outer(&f, 0x1000, 0x22eb, erspan3, 11, 0);
    check_error(&pkt, run_decap(&f, DECODE_GRE, &pkt), DECODE_STAGE_L3, "short_tunnel_header");
}

/* A mirror cuts what it copies (to its MTU, or on purpose): the inner packet is shorter than its
 * IP length says. That is a cut, as by a snap length; outside a mirror's tunnel (IP-in-IP, GRE
 * carrying IP) it stays malformed. */
TEST(a_packet_its_mirror_cut_is_truncated_not_malformed)
{
    struct fb f;
    struct packet pkt;
    uint32_t cut = 10; /* bytes of SIP the mirror dropped */
    vxlan_outer(&f, 4789, 0x08, INNER_LEN - cut);
    inner_frame(&f);
    f.n -= cut;
    CHECK_INT(run_decap(&f, DECODE_VXLAN, &pkt), DECODE_UDP);
    CHECK_INT(pkt.truncated, 1);
    CHECK_INT(pkt.mirrored, 1);
    CHECK_INT(pkt.dport, 5061);
    CHECK(pkt.payload == f.d + f.n - (SIP_LEN - cut));
    CHECK_INT(pkt.payload_len, SIP_LEN - cut);
    /* TCP: the segment's length on the wire is what its IP header says. */
    uint32_t tcp_len = 14 + 20 + 20 + SIP_LEN;
    vxlan_outer(&f, 4789, 0x08, tcp_len - cut);
    eth(&f, 0x0800);
    ip4(&f, IPPROTO_TCP, 20 + SIP_LEN);
    tcpx(&f, 5060, 5061, 1000, DECODE_TCP_ACK, 5);
    sip(&f);
    f.n -= cut;
    CHECK_INT(run_decap(&f, DECODE_VXLAN, &pkt), DECODE_TCP);
    CHECK_INT(pkt.truncated, 1);
    CHECK_INT(pkt.payload_len, SIP_LEN - cut);
    CHECK_INT(pkt.payload_wire_len, SIP_LEN);
    /* GRE carrying IP: no mirror, a malformed length. */
    gre_outer(&f, 0x0000, 0x0800, NULL, 0, 20 + 8 + SIP_LEN - cut);
    ip4(&f, IPPROTO_UDP, 8 + SIP_LEN);
    udp(&f, SIP_LEN);
    sip(&f);
    f.n -= cut;
    check_error(&pkt, run_decap(&f, DECODE_GRE, &pkt), DECODE_STAGE_L3, "bad_ip_length");
}

/* HEPv3: a chunk of vendor 0, type, and n bytes of data. */
static void hep_chunk(struct fb *f, unsigned type, const void *data, uint32_t n)
{
    put16(f, 0);
    put16(f, type);
    put16(f, 6 + n);
    if (n)
        putn(f, data, n);
}

static void hep_u8(struct fb *f, unsigned type, uint8_t v)
{
    hep_chunk(f, type, &v, 1);
}

static void hep_u16(struct fb *f, unsigned type, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    hep_chunk(f, type, b, 2);
}

/* Outer Ethernet + IPv4 + UDP to dport, room for a HEP packet of hep_len bytes; the caller
 * writes it (starting "HEP3" and its length). */
static void hep_outer(struct fb *f, unsigned dport, uint32_t hep_len)
{
    f->n = 0;
    eth(f, 0x0800);
    ip4x(f, IPPROTO_UDP, 8 + hep_len, 3, 0, 0, OUT4S, OUT4D);
    udpx(f, 40000, dport, 8 + hep_len);
    putn(f, "HEP3", 4);
    put16(f, hep_len);
}

/* A whole HEPv3 packet around the SIP test message: family 2 or 10, transport, ports 5060 >
 * 5061, the addresses, and extra_chunks bytes the caller appends before the payload (counted
 * in). Returns where the payload starts. */
static uint32_t hep_packet(struct fb *f, unsigned dport, unsigned family, unsigned transport,
                           uint32_t extra)
{
    uint32_t addrs = family == 2 ? 2 * (6 + 4) : 2 * (6 + 16);
    uint32_t len = 6 + 7 + 7 + addrs + 8 + 8 + 7 + extra + 6 + SIP_LEN;
    hep_outer(f, dport, len);
    hep_u8(f, 1, (uint8_t)family);
    hep_u8(f, 2, (uint8_t)transport);
    if (family == 2) {
        hep_chunk(f, 3, SRC4, 4);
        hep_chunk(f, 4, DST4, 4);
    } else {
        hep_chunk(f, 5, SRC6, 16);
        hep_chunk(f, 6, DST6, 16);
    }
    hep_u16(f, 7, 5060);
    hep_u16(f, 8, 5061);
    hep_u8(f, 11, 1); /* SIP */
    return f->n + extra + 6;
}

TEST(hep3_gives_the_message_with_its_own_addresses_transport_and_agent)
{
    struct fb f;
    struct packet pkt;
    uint32_t at = hep_packet(&f, 9060, 2, IPPROTO_UDP, 0);
    hep_chunk(&f, 15, SIP, SIP_LEN);
    CHECK_INT(run_decap(&f, DECODE_HEP, &pkt), DECODE_UDP);
    CHECK_INT(pkt.tunnels, 1);
    CHECK_INT(pkt.ip_version, 4);
    check_v4_addrs(&pkt, SRC4, DST4);
    CHECK_INT(pkt.l4_proto, IPPROTO_UDP);
    CHECK_INT(pkt.sport, 5060);
    CHECK_INT(pkt.dport, 5061);
    check_sip_payload(&pkt, &f, at);
    /* The agent that sent it is part of the packet's path (dedup.h): another agent's copy of
     * the same message (the outer source's last byte changed) comes from elsewhere. */
    uint32_t agent = pkt.tunnel_from;
    CHECK(agent != 0);
    f.d[14 + 15] ^= 1;
    CHECK_INT(run_decap(&f, DECODE_HEP, &pkt), DECODE_UDP);
    CHECK(pkt.tunnel_from != 0 && pkt.tunnel_from != agent);
    f.d[14 + 15] ^= 1;
    /* Not asked: a datagram to port 9060. */
    CHECK_INT(run_decap(&f, DECODE_VXLAN | DECODE_GRE, &pkt), DECODE_UDP);
    CHECK_INT(pkt.dport, 9060);
    CHECK_INT(pkt.tunnels, 0);
    CHECK_INT(pkt.tunnel_from, 0);
    /* IPv6 and TCP, with a vendor's chunk and an unknown generic one on the way: still one
     * whole message (DECODE_UDP), its transport TCP. */
    static const uint8_t vendor[6] = {0x00, 0x30, 0x00, 0x01, 0x00, 0x07};
    at = hep_packet(&f, 9060, 10, IPPROTO_TCP, 7 + 8);
    putn(&f, vendor, 6);
    put8(&f, 0x5a);
    hep_chunk(&f, 12, "\x01\x02", 2); /* capture agent id: read past */
    hep_chunk(&f, 15, SIP, SIP_LEN);
    CHECK_INT(run_decap(&f, DECODE_HEP, &pkt), DECODE_UDP);
    CHECK_INT(pkt.ip_version, 6);
    CHECK_BYTES(pkt.src, SRC6, 16);
    CHECK_BYTES(pkt.dst, DST6, 16);
    CHECK_INT(pkt.l4_proto, IPPROTO_TCP);
    check_sip_payload(&pkt, &f, at);
    /* Another port: no HEP. */
    hep_packet(&f, 9061, 2, IPPROTO_UDP, 0);
    hep_chunk(&f, 15, SIP, SIP_LEN);
    CHECK_INT(run_decap(&f, DECODE_HEP, &pkt), DECODE_UDP);
    CHECK_INT(pkt.dport, 9061);
}

TEST(hep3_that_is_not_sip_or_is_broken_is_skipped_or_counted)
{
    struct fb f;
    struct packet pkt;
    /* RTCP (protocol type 5): not SIP. */
    hep_packet(&f, 9060, 2, IPPROTO_UDP, 0);
    f.d[f.n - 1] = 5;
    hep_chunk(&f, 15, SIP, SIP_LEN);
    CHECK_INT(run_decap(&f, DECODE_HEP, &pkt), DECODE_SKIP);
    /* A compressed payload only. */
    hep_packet(&f, 9060, 2, IPPROTO_UDP, 0);
    hep_chunk(&f, 16, SIP, SIP_LEN);
    check_error(&pkt, run_decap(&f, DECODE_HEP, &pkt), DECODE_STAGE_L3, "hep_compressed");
    /* No payload, no destination port. */
    hep_packet(&f, 9060, 2, IPPROTO_UDP, 0);
    hep_chunk(&f, 12, SIP, SIP_LEN);
    check_error(&pkt, run_decap(&f, DECODE_HEP, &pkt), DECODE_STAGE_L3, "bad_tunnel_header");
    hep_packet(&f, 9060, 2, IPPROTO_UDP, 0);
    f.n -= 7;          /* the protocol type chunk out, */
    f.d[f.n - 5] = 7;  /* the destination port chunk made a second source port, */
    hep_u8(&f, 11, 1); /* the protocol type back */
    hep_chunk(&f, 15, SIP, SIP_LEN);
    check_error(&pkt, run_decap(&f, DECODE_HEP, &pkt), DECODE_STAGE_L3, "bad_tunnel_header");
    /* Not "HEP3" (HEPv2 starts with its version byte), a chunk past the packet, a length past
     * the datagram. */
    hep_packet(&f, 9060, 2, IPPROTO_UDP, 0);
    hep_chunk(&f, 15, SIP, SIP_LEN);
    f.d[14 + 20 + 8 + 3] = '2';
    check_error(&pkt, run_decap(&f, DECODE_HEP, &pkt), DECODE_STAGE_L3, "bad_tunnel_header");
    hep_packet(&f, 9060, 2, IPPROTO_UDP, 0);
    hep_chunk(&f, 15, SIP, SIP_LEN);
    f.d[f.n - SIP_LEN - 1] += 1; /* the payload chunk one byte longer than the packet */
    check_error(&pkt, run_decap(&f, DECODE_HEP, &pkt), DECODE_STAGE_L3, "bad_tunnel_header");
    hep_packet(&f, 9060, 2, IPPROTO_UDP, 0);
    hep_chunk(&f, 15, SIP, SIP_LEN);
    f.d[14 + 20 + 8 + 5] += 1; /* HEP length past the datagram */
    check_error(&pkt, run_decap(&f, DECODE_HEP, &pkt), DECODE_STAGE_L3, "bad_tunnel_header");
    /* An address of each family; a family byte of FreeBSD's AF_INET6 (28) is fine, the
     * address chunks say the family. */
    hep_packet(&f, 9060, 10, IPPROTO_UDP, 6 + 4);
    hep_chunk(&f, 3, SRC4, 4); /* replaces the IPv6 source: 4 bytes against 16 */
    hep_chunk(&f, 15, SIP, SIP_LEN);
    check_error(&pkt, run_decap(&f, DECODE_HEP, &pkt), DECODE_STAGE_L3, "bad_tunnel_header");
    hep_packet(&f, 9060, 10, IPPROTO_UDP, 0);
    f.d[14 + 20 + 8 + 6 + 6] = 28;
    hep_chunk(&f, 15, SIP, SIP_LEN);
    CHECK_INT(run_decap(&f, DECODE_HEP, &pkt), DECODE_UDP);
    CHECK_INT(pkt.ip_version, 6);
    /* SCTP: well formed, not read. */
    hep_packet(&f, 9060, 2, 132, 0);
    hep_chunk(&f, 15, SIP, SIP_LEN);
    CHECK_INT(run_decap(&f, DECODE_HEP, &pkt), DECODE_SKIP);
    /* A datagram of three bytes to the port: whole, and no HEP. */
    hep_outer(&f, 9060, 3);
    f.n -= 6;
    putn(&f, "abc", 3);
    f.d[14 + 3] = 20 + 8 + 3;
    f.d[14 + 20 + 5] = 8 + 3;
    check_error(&pkt, run_decap(&f, DECODE_HEP, &pkt), DECODE_STAGE_L3, "bad_tunnel_header");
    /* A copy this host sends elsewhere: its SIP is captured here too. */
    hep_packet(&f, 9060, 2, IPPROTO_UDP, 0);
    hep_chunk(&f, 15, SIP, SIP_LEN);
    struct capture_frame out = {.data = f.d,
                                .caplen = f.n,
                                .wirelen = f.n,
                                .link = CAPTURE_LINK_ETHERNET,
                                .dir = CAPTURE_DIR_OUTGOING};
    CHECK_INT(decode_frame(&out, DECODE_HEP, &pkt), DECODE_SKIP);
    /* Cut at a snap length inside the packet. */
    hep_packet(&f, 9060, 2, IPPROTO_UDP, 0);
    hep_chunk(&f, 15, SIP, SIP_LEN);
    struct capture_frame fr = {.data = f.d,
                               .caplen = f.n - 5,
                               .wirelen = f.n,
                               .link = CAPTURE_LINK_ETHERNET,
                               .dir = CAPTURE_DIR_UNKNOWN};
    check_error(&pkt, decode_frame(&fr, DECODE_HEP, &pkt), DECODE_STAGE_L3, "short_tunnel_header");
}

TEST(tunnels_of_every_kind_count_toward_the_same_limit)
{
    struct fb f;
    struct packet pkt;
    /* VXLAN around GRE around three IP-in-IP levels: five tunnels. */
    for (unsigned ipip = 2; ipip <= 3; ipip++) {
        uint32_t in = ipip * 20 + 20 + 8 + SIP_LEN;
        uint32_t gre = 14 + 20 + 4 + in;
        vxlan_outer(&f, 4789, 0x08, gre);
        eth(&f, 0x0800);
        ip4x(&f, 47, 4 + in, 1, 0, 0, OUT4S, OUT4D);
        put16(&f, 0);
        put16(&f, 0x0800);
        for (unsigned i = 0; i < ipip; i++)
            ip4x(&f, IPPROTO_IPIP, (ipip - i) * 20 + 8 + SIP_LEN, i, 0, 0, OUT4S, OUT4D);
        ip4(&f, IPPROTO_UDP, 8 + SIP_LEN);
        udp(&f, SIP_LEN);
        sip(&f);
        enum decode_result r = run_decap(&f, DECODE_VXLAN | DECODE_GRE, &pkt);
        if (ipip == 2) {
            CHECK_INT(r, DECODE_UDP);
            CHECK_INT(pkt.tunnels, 4);
            check_v4_addrs(&pkt, SRC4, DST4);
        } else {
            check_error(&pkt, r, DECODE_STAGE_L3, "too_many_tunnels");
        }
    }
}

TEST(vxlan_in_a_reassembled_datagram_is_opened)
{
    struct fb f;
    struct packet pkt;
    vxlan_outer(&f, 4789, 0x08, INNER_LEN);
    inner_frame(&f);
    f.d[14 + 6] = 0x20; /* MF: the first fragment of the outer datagram (all of it here) */
    CHECK_INT(run_decap(&f, DECODE_VXLAN, &pkt), DECODE_FRAGMENT);
    CHECK_INT(pkt.tunnels, 0);
    CHECK_INT(decode_transport(pkt.payload, pkt.payload_len, &pkt), DECODE_UDP);
    CHECK_INT(pkt.tunnels, 1);
    check_v4_addrs(&pkt, SRC4, DST4);
    CHECK_INT(pkt.dport, 5061);
    CHECK_INT(pkt.payload_len, SIP_LEN);
}

TEST_MAIN()
