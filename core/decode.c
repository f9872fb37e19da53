/* decode: link, network and transport headers of one frame, down to the UDP or TCP payload.
 * Deliberately absent: reassembly (reasm does it), checksum checks (offload leaves them wrong in
 * captures taken on the sending host), tunnels other than IP-in-IP, VXLAN and GRE (Geneve,
 * GTP, MPLS, L2TP), and HEP before version 3. */
#include "decode.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>

#include "slice.h"

/*
 * Error reasons: the complete set of label values this module gives
 * sipscope_parse_errors_total{stage,reason}. Each is a static string.
 *
 *   l2  short_frame       the link header, a VLAN tag or the PPPoE header is cut short
 *   l2  unsupported_link  a link type this module does not know (a pcapng interface of such a
 *                         type: capture_pcap reads its frames and the rest of the file)
 *   l3  short_ip_header   an IP header (fixed part or IHL) is cut short, by the frame or the
 *                         snap length
 *   l3  bad_ip_version    the version nibble is not 4 or 6, or not what the link type, the
 *                         ethertype or the outer protocol number announced
 *   l3  bad_ipv4_header   IHL below 5, or total length shorter than the header
 *   l3  bad_ip_length     the IP length runs past the frame on the wire (or past the outer
 *                         IP payload, for an IP-in-IP or GRE header; a packet mirrored in
 *                         VXLAN, gretap or ERSPAN is cut instead, as by a snap length)
 *   l3  bad_ext_header    an IPv6 extension header or an AH header runs past the IP payload,
 *                         or is cut short
 *   l3  too_many_tunnels  more than DECODE_MAX_TUNNELS nested tunnels (IP-in-IP, VXLAN, GRE,
 *                         HEP)
 *   l3  short_tunnel_header  a VXLAN, GRE, ERSPAN or HEP header, or the Ethernet header inside
 *                         one, is cut short (only with that encapsulation opened)
 *   l3  bad_tunnel_header  a VXLAN header without its I flag (RFC 7348 requires it); a HEP
 *                         packet that is not HEPv3 ("HEP3", then chunks that fit its length),
 *                         or lacks an address (or has one of each family), a port, the
 *                         transport or the payload
 *   l3  hep_compressed    a HEP packet whose payload is compressed: not read
 *   l4  short_udp         fewer than 8 bytes for the UDP header
 *   l4  bad_udp_length    UDP length field below 8
 *   l4  short_tcp         fewer than 20 bytes, or fewer than the data offset, for the TCP header
 *   l4  bad_tcp_offset    TCP data offset below 5, or past the end of the segment
 *
 * Well-formed frames that carry neither UDP nor TCP are DECODE_SKIP, never errors: non-IP
 * ethertypes (ARP, LLDP, LLC), non-IP loopback families, PPP protocols other than IP, ICMP,
 * ESP (encrypted: nothing to read), IPv6 no-next-header, GRE when not opened, GRE of version 1
 * (PPTP), with source routing, or carrying another protocol, HEP that is not SIP (RTCP, logs)
 * or carries SIP over another transport than UDP or TCP, and HEP this host sends. So are IP
 * fragments of a protocol that leads to no UDP or TCP (ICMP, ESP, GRE when not opened...):
 * only those that may carry SIP are DECODE_FRAGMENT.
 */

#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_IPV6 0x86dd
#define ETHERTYPE_VLAN 0x8100     /* 802.1Q */
#define ETHERTYPE_QINQ 0x88a8     /* 802.1ad service tag */
#define ETHERTYPE_QINQ_OLD 0x9100 /* pre-standard QinQ, still seen on some switches */
#define ETHERTYPE_PPPOE_SESSION 0x8864
#define PPP_IPV4 0x0021
#define PPP_IPV6 0x0057

#define VXLAN_PORT 4789         /* RFC 7348 */
#define VXLAN_PORT_LINUX 8472   /* Linux's default before the IANA port, flannel's */
#define VXLAN_FLAG_I 0x08       /* the VNI is valid: always set */
#define GRE_CSUM 0x8000         /* RFC 2784, 2890: a checksum word follows the base header */
#define GRE_ROUTING 0x4000      /* RFC 1701 source routing, long unused */
#define GRE_KEY 0x2000          /* a key word follows */
#define GRE_SEQ 0x1000          /* a sequence number word follows */
#define GRE_VERSION 0x0007      /* 0; 1 is PPTP's enhanced GRE */
#define GRE_PROTO_TEB 0x6558    /* transparent Ethernet bridging (gretap) */
#define GRE_PROTO_ERSPAN 0x88be /* ERSPAN type II, or type I without a GRE sequence number */
#define GRE_PROTO_ERSPAN3 0x22eb
#define ERSPAN2_HEADER 8
#define ERSPAN3_HEADER 12
#define ERSPAN_VERSION_3 2 /* the version nibble of a type III header (type II: 1) */
#define ERSPAN3_FLAG_O 0x01 /* last bit of the third word: an 8-byte subheader follows */
#define ERSPAN3_SUBHEADER 8
#define HEP_PORT 9060 /* HOMER's */

/* BSD loopback address families: AF_INET is 2 everywhere; AF_INET6 is 24 (NetBSD, OpenBSD),
 * 28 (FreeBSD, DragonFly) or 30 (macOS) depending on the capturing system. */
#define NULL_AF_INET 2

/* Bytes of the frame still to decode. cap is what was captured, len what the headers so far
 * say is there (bounded by the wire length). cap <= len always; cap < len only when the
 * frame was cut at the snap length. */
struct span {
    const uint8_t *p;
    uint32_t cap;
    uint32_t len;
};

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Requires n <= s->cap. */
static void span_skip(struct span *s, uint32_t n)
{
    s->p += n;
    s->cap -= n;
    s->len -= n;
}

/* Drops whatever lies past n bytes (Ethernet padding, bytes outside a length field). */
static void span_limit(struct span *s, uint32_t n)
{
    if (s->len > n)
        s->len = n;
    if (s->cap > n)
        s->cap = n;
}

static enum decode_result fail(struct packet *pkt, enum decode_stage stage, const char *reason)
{
    pkt->error_stage = (uint8_t)stage;
    pkt->error_reason = reason;
    pkt->payload = NULL;
    pkt->payload_len = 0;
    return DECODE_ERROR;
}

static enum decode_result decode_ip(struct span *s, unsigned want_version, struct packet *pkt);
static enum decode_result decode_ethertype(uint16_t type, struct span *s, struct packet *pkt);

/* The tunnels' functions below are kept out of line and cold: every frame's path through
 * decode_udp and decode_next stays as short as it was without them (callgrind counted 19 more
 * instructions per frame with them inlined). */

/* One more tunnel level: false (and pkt failed) past DECODE_MAX_TUNNELS. */
static bool enter_tunnel(struct packet *pkt)
{
    if (pkt->tunnels >= DECODE_MAX_TUNNELS) {
        fail(pkt, DECODE_STAGE_L3, "too_many_tunnels");
        return false;
    }
    pkt->tunnels++;
    /* The tunnel's source (pkt->src is still the outer header's): two HEP agents or mirrors
     * that send the same packet are two paths to it. */
    uint64_t lo, hi;
    memcpy(&lo, pkt->src, sizeof(lo));
    memcpy(&hi, pkt->src + 8, sizeof(hi));
    uint64_t from = hash_mix(hash_mix(pkt->tunnel_from, lo), hi);
    pkt->tunnel_from = (uint32_t)(from ^ from >> 32) | 1;
    return true;
}

/* An Ethernet frame inside a tunnel (VXLAN, gretap, ERSPAN), after skipping hl bytes of the
 * tunnel's own header. */
__attribute__((noinline, cold)) static enum decode_result
decode_inner_ethernet(struct span *s, uint32_t hl, struct packet *pkt)
{
    if (s->cap < hl + 14)
        return fail(pkt, DECODE_STAGE_L3, "short_tunnel_header");
    if (!enter_tunnel(pkt))
        return DECODE_ERROR;
    pkt->mirrored = 1;
    uint16_t type = rd16(s->p + hl + 12);
    span_skip(s, hl + 14);
    return decode_ethertype(type, s, pkt);
}

/* RFC 7348: flags (I set), 24 reserved bits, the VNI and 8 more; then an Ethernet frame. */
__attribute__((noinline, cold)) static enum decode_result decode_vxlan(struct span *s,
                                                                       struct packet *pkt)
{
    if (s->cap >= 1 && !(s->p[0] & VXLAN_FLAG_I))
        return fail(pkt, DECODE_STAGE_L3, "bad_tunnel_header");
    return decode_inner_ethernet(s, 8, pkt);
}

/* HEPv3 (HOMER's EEP): "HEP3", the packet's length, then chunks of vendor (0: generic), type
 * and length (its 6 header bytes included). The generic types read here. */
enum hep_chunk {
    HEP_FAMILY = 1,    /* u8: the sender's AF_INET or AF_INET6 (not read) */
    HEP_TRANSPORT = 2, /* u8: IPPROTO_UDP, IPPROTO_TCP */
    HEP_SRC4 = 3,      /* 4 bytes */
    HEP_DST4 = 4,
    HEP_SRC6 = 5, /* 16 bytes */
    HEP_DST6 = 6,
    HEP_SPORT = 7, /* u16 */
    HEP_DPORT = 8,
    HEP_PROTO_TYPE = 11, /* u8: 1 SIP */
    HEP_PAYLOAD = 15,
    HEP_PAYLOAD_GZIP = 16,
};

/* The SIP message a HEP packet carries, as if it had come on its own with the addresses, ports
 * and transport the packet gives: pkt's network fields become those, the payload the message.
 * Its time stays the frame's: agents' clocks differ, and packet time must not go back. */
__attribute__((noinline, cold)) static enum decode_result decode_hep(struct span *s,
                                                                     struct packet *pkt)
{
    /* Copies this host sends (to a HOMER elsewhere) are of SIP it handles itself: a capture
     * here sees that SIP, and would count it twice. */
    if (pkt->dir == CAPTURE_DIR_OUTGOING)
        return DECODE_SKIP;
    if (s->len < 6 || (s->cap >= 4 && memcmp(s->p, "HEP3", 4) != 0))
        return fail(pkt, DECODE_STAGE_L3, "bad_tunnel_header");
    if (s->cap < 6)
        return fail(pkt, DECODE_STAGE_L3, "short_tunnel_header");
    uint32_t total = rd16(s->p + 4);
    if (total < 6 || total > s->len)
        return fail(pkt, DECODE_STAGE_L3, "bad_tunnel_header");
    if (total > s->cap)
        return fail(pkt, DECODE_STAGE_L3, "short_tunnel_header");
    const uint8_t *src = NULL, *dst = NULL, *payload = NULL;
    unsigned transport = 0, proto_type = 1, src_len = 0, dst_len = 0, have = 0;
    uint32_t payload_len = 0;
    uint16_t sport = 0, dport = 0;
    bool compressed = false;
    for (uint32_t off = 6; off < total;) {
        if (total - off < 6)
            return fail(pkt, DECODE_STAGE_L3, "bad_tunnel_header");
        uint32_t vendor = rd16(s->p + off), type = rd16(s->p + off + 2);
        uint32_t len = rd16(s->p + off + 4);
        if (len < 6 || len > total - off)
            return fail(pkt, DECODE_STAGE_L3, "bad_tunnel_header");
        const uint8_t *d = s->p + off + 6;
        uint32_t n = len - 6;
        off += len;
        if (vendor != 0)
            continue;
        switch (type) {
        case HEP_TRANSPORT:
        case HEP_PROTO_TYPE:
            if (n != 1)
                return fail(pkt, DECODE_STAGE_L3, "bad_tunnel_header");
            if (type == HEP_TRANSPORT)
                transport = d[0];
            else
                proto_type = d[0];
            break;
        case HEP_SRC4:
        case HEP_DST4:
        case HEP_SRC6:
        case HEP_DST6:
            if (n != (type <= HEP_DST4 ? 4u : 16u))
                return fail(pkt, DECODE_STAGE_L3, "bad_tunnel_header");
            if (type == HEP_SRC4 || type == HEP_SRC6) {
                src = d;
                src_len = n;
            } else {
                dst = d;
                dst_len = n;
            }
            break;
        case HEP_SPORT:
        case HEP_DPORT:
            if (n != 2)
                return fail(pkt, DECODE_STAGE_L3, "bad_tunnel_header");
            if (type == HEP_SPORT)
                sport = rd16(d);
            else
                dport = rd16(d);
            have |= type == HEP_SPORT ? 1 : 2;
            break;
        case HEP_PAYLOAD:
            payload = d;
            payload_len = n;
            break;
        case HEP_PAYLOAD_GZIP:
            compressed = true;
            break;
        default: /* the family (1) too: the address chunks' types say it, and agents write
                  * their own system's AF_INET6 there (28 on FreeBSD) */
            break;
        }
    }
    if (proto_type != 1)
        return DECODE_SKIP; /* RTCP, logs, QoS reports: not SIP */
    if (transport != IPPROTO_UDP && transport != IPPROTO_TCP && transport != 0)
        return DECODE_SKIP; /* SCTP, TLS as its own number: not read */
    if (compressed && !payload)
        return fail(pkt, DECODE_STAGE_L3, "hep_compressed");
    if (!src || !dst || src_len != dst_len || have != 3 || !payload || transport == 0)
        return fail(pkt, DECODE_STAGE_L3, "bad_tunnel_header");
    if (!enter_tunnel(pkt))
        return DECODE_ERROR;
    pkt->hep = 1;
    pkt->ip_version = src_len == 4 ? 4 : 6;
    memset(pkt->src, 0, sizeof pkt->src);
    memset(pkt->dst, 0, sizeof pkt->dst);
    memcpy(pkt->src, src, src_len);
    memcpy(pkt->dst, dst, dst_len);
    pkt->l4_proto = (uint8_t)transport;
    pkt->sport = sport;
    pkt->dport = dport;
    pkt->payload = payload;
    pkt->payload_len = payload_len;
    return DECODE_UDP;
}

/* GRE version 0 (RFC 2784, 2890) and what it carries: IP, Ethernet (transparent bridging), or
 * mirrored Ethernet behind an ERSPAN header (type I: none; II: 8 bytes; III: 12, or 20 with its
 * optional subheader). */
__attribute__((noinline, cold)) static enum decode_result decode_gre(struct span *s,
                                                                     struct packet *pkt)
{
    if (s->cap < 4)
        return fail(pkt, DECODE_STAGE_L3, "short_tunnel_header");
    uint16_t flags = rd16(s->p), proto = rd16(s->p + 2);
    if ((flags & GRE_VERSION) != 0 || (flags & GRE_ROUTING) != 0)
        return DECODE_SKIP;
    uint32_t hl = 4 + ((flags & GRE_CSUM) ? 4 : 0) + ((flags & GRE_KEY) ? 4 : 0) +
                  ((flags & GRE_SEQ) ? 4 : 0);
    switch (proto) {
    case ETHERTYPE_IPV4:
    case ETHERTYPE_IPV6:
        if (s->cap < hl)
            return fail(pkt, DECODE_STAGE_L3, "short_tunnel_header");
        if (!enter_tunnel(pkt))
            return DECODE_ERROR;
        span_skip(s, hl);
        return decode_ip(s, proto == ETHERTYPE_IPV4 ? 4 : 6, pkt);
    case GRE_PROTO_TEB:
        return decode_inner_ethernet(s, hl, pkt);
    case GRE_PROTO_ERSPAN:
        if (!(flags & GRE_SEQ))
            return decode_inner_ethernet(s, hl, pkt); /* type I */
        /* Type II, or type III sent under II's protocol number: the version tells. */
        if (s->cap < hl + 1)
            return fail(pkt, DECODE_STAGE_L3, "short_tunnel_header");
        if (s->p[hl] >> 4 != ERSPAN_VERSION_3)
            return decode_inner_ethernet(s, hl + ERSPAN2_HEADER, pkt);
        /* fall through */
    case GRE_PROTO_ERSPAN3:
        if (s->cap < hl + ERSPAN3_HEADER)
            return fail(pkt, DECODE_STAGE_L3, "short_tunnel_header");
        hl += ERSPAN3_HEADER;
        if (s->p[hl - 1] & ERSPAN3_FLAG_O)
            hl += ERSPAN3_SUBHEADER;
        return decode_inner_ethernet(s, hl, pkt);
    default:
        return DECODE_SKIP;
    }
}

static enum decode_result decode_udp(struct span *s, struct packet *pkt)
{
    if (s->cap < 8)
        return fail(pkt, DECODE_STAGE_L4, "short_udp");
    uint16_t ulen = rd16(s->p + 4);
    /* A UDP length past the IP payload is a datagram that receivers drop (Linux counts it as a
     * short packet): it carried nothing. A shorter one leaves trailing bytes that are not UDP
     * payload. */
    if (ulen < 8 || ulen > s->len)
        return fail(pkt, DECODE_STAGE_L4, "bad_udp_length");
    span_limit(s, ulen);
    pkt->l4_proto = IPPROTO_UDP;
    pkt->sport = rd16(s->p);
    pkt->dport = rd16(s->p + 2);
    span_skip(s, 8);
    if ((pkt->decap & DECODE_VXLAN) && (pkt->dport == VXLAN_PORT || pkt->dport == VXLAN_PORT_LINUX))
        return decode_vxlan(s, pkt);
    if ((pkt->decap & DECODE_HEP) && pkt->dport == HEP_PORT)
        return decode_hep(s, pkt);
    pkt->payload = s->p;
    pkt->payload_len = s->cap;
    return DECODE_UDP;
}

static enum decode_result decode_tcp(struct span *s, struct packet *pkt)
{
    if (s->cap < 20)
        return fail(pkt, DECODE_STAGE_L4, "short_tcp");
    uint32_t hl = (uint32_t)(s->p[12] >> 4) * 4;
    if (hl < 20 || hl > s->len)
        return fail(pkt, DECODE_STAGE_L4, "bad_tcp_offset");
    if (hl > s->cap)
        return fail(pkt, DECODE_STAGE_L4, "short_tcp");
    pkt->l4_proto = IPPROTO_TCP;
    pkt->sport = rd16(s->p);
    pkt->dport = rd16(s->p + 2);
    pkt->tcp_seq = rd32(s->p + 4);
    pkt->tcp_ack = rd32(s->p + 8);
    pkt->tcp_flags = s->p[13];
    span_skip(s, hl);
    pkt->payload = s->p;
    pkt->payload_len = s->cap;
    pkt->payload_wire_len = s->len;
    return DECODE_TCP;
}

/* Whether a fragment of protocol proto may hold SIP once reassembled: what decode_next follows
 * towards UDP or TCP (the socket filter selects the same fragments). ICMP, ESP, SCTP... are
 * skipped as their whole packets are: held for reassembly, a flood of them would fill the table
 * and evict the fragments of SIP datagrams. */
static bool fragment_may_carry_sip(uint8_t proto, const struct packet *pkt)
{
    switch (proto) {
    case IPPROTO_UDP:
    case IPPROTO_TCP:
    case IPPROTO_IPIP:
    case IPPROTO_IPV6:
    case IPPROTO_AH:
        return true;
    case IPPROTO_GRE:
        return (pkt->decap & DECODE_GRE) != 0;
    case IPPROTO_HOPOPTS:
    case IPPROTO_ROUTING:
    case IPPROTO_DSTOPTS:
    case IPPROTO_FRAGMENT:
        return pkt->ip_version == 6;
    default:
        return false;
    }
}

static enum decode_result fragment(struct span *s, uint8_t proto, struct packet *pkt)
{
    if (!fragment_may_carry_sip(proto, pkt))
        return DECODE_SKIP;
    pkt->l4_proto = proto;
    pkt->payload = s->p;
    pkt->payload_len = s->cap;
    return DECODE_FRAGMENT;
}

/* Decodes what follows an IP header (or an extension header) whose protocol field is proto:
 * IPv6 extension headers and AH are walked, IP-in-IP is followed, UDP and TCP end the walk. */
static enum decode_result decode_next(uint8_t proto, struct span *s, struct packet *pkt)
{
    for (;;) {
        uint32_t hl;
        switch (proto) {
        case IPPROTO_UDP:
            return decode_udp(s, pkt);
        case IPPROTO_TCP:
            return decode_tcp(s, pkt);
        case IPPROTO_IPIP:
        case IPPROTO_IPV6:
            if (!enter_tunnel(pkt))
                return DECODE_ERROR;
            return decode_ip(s, proto == IPPROTO_IPIP ? 4 : 6, pkt);
        case IPPROTO_GRE:
            return (pkt->decap & DECODE_GRE) ? decode_gre(s, pkt) : DECODE_SKIP;
        case IPPROTO_AH: /* RFC 4302: length in 4-octet units minus 2; in IPv4 too */
        case IPPROTO_HOPOPTS:
        case IPPROTO_ROUTING:
        case IPPROTO_DSTOPTS:
        case IPPROTO_FRAGMENT:
            if (proto != IPPROTO_AH && pkt->ip_version != 6)
                return DECODE_SKIP;
            /* 8 bytes is the smallest extension header; cap <= len, so this covers both a
             * header past the IP payload and one cut at the snap length. */
            if (s->cap < 8)
                return fail(pkt, DECODE_STAGE_L3, "bad_ext_header");
            if (proto == IPPROTO_AH)
                hl = ((uint32_t)s->p[1] + 2) * 4;
            else if (proto == IPPROTO_FRAGMENT)
                hl = 8;
            else
                hl = ((uint32_t)s->p[1] + 1) * 8; /* RFC 8200: 8-octet units, first excluded */
            if (hl > s->cap)
                return fail(pkt, DECODE_STAGE_L3, "bad_ext_header");
            break;
        default: /* ESP, no next header, ICMP, SCTP...: nothing for us */
            return DECODE_SKIP;
        }
        uint8_t next = s->p[0];
        if (proto == IPPROTO_FRAGMENT) {
            uint16_t off_m = rd16(s->p + 2);
            pkt->frag_offset = off_m & 0xfff8;
            pkt->frag_more = off_m & 1;
            pkt->frag_id = rd32(s->p + 4);
            span_skip(s, hl);
            /* RFC 6946: an atomic fragment (offset 0, no more fragments) is a whole packet. */
            if (pkt->frag_offset != 0 || pkt->frag_more)
                return fragment(s, next, pkt);
            pkt->frag_id = 0;
        } else {
            span_skip(s, hl);
        }
        pkt->frag_hdr_len += hl; /* headers before a Fragment header further on */
        proto = next;
    }
}

/* An IP packet whose length (len) runs past what carries it. In a mirror's tunnel that is a cut:
 * mirrors truncate what they copy (to their MTU, or on purpose), and the packet is then read
 * as one cut at a snap length. Anywhere else it is malformed: returns false. */
__attribute__((noinline, cold)) static bool mirror_cut(struct span *s, uint32_t len,
                                                       struct packet *pkt)
{
    if (!pkt->mirrored)
        return false;
    s->len = len;
    pkt->truncated = 1;
    return true;
}

static enum decode_result decode_ipv4(struct span *s, struct packet *pkt)
{
    if (s->cap < 20)
        return fail(pkt, DECODE_STAGE_L3, "short_ip_header");
    uint32_t hl = (uint32_t)(s->p[0] & 0x0f) * 4;
    if (hl < 20)
        return fail(pkt, DECODE_STAGE_L3, "bad_ipv4_header");
    if (hl > s->cap)
        return fail(pkt, DECODE_STAGE_L3, "short_ip_header");
    uint32_t total = rd16(s->p + 2);
    /* Total length 0: TSO on the sending host or a BIG TCP aggregate over 64 KiB (Linux sets 0
     * there); the frame's own length is all there is. */
    if (total == 0)
        total = s->len;
    if (total < hl)
        return fail(pkt, DECODE_STAGE_L3, "bad_ipv4_header");
    if (total > s->len && !mirror_cut(s, total, pkt))
        return fail(pkt, DECODE_STAGE_L3, "bad_ip_length");

    pkt->ip_version = 4;
    memset(pkt->src, 0, sizeof pkt->src);
    memset(pkt->dst, 0, sizeof pkt->dst);
    memcpy(pkt->src, s->p + 12, 4);
    memcpy(pkt->dst, s->p + 16, 4);
    uint8_t proto = s->p[9];
    uint16_t frag = rd16(s->p + 6);
    uint16_t id = rd16(s->p + 4);
    span_limit(s, total);
    pkt->truncated = s->cap < s->len;
    span_skip(s, hl);

    /* MF set or a non-zero offset: a first fragment (offset 0, MF) is a fragment too. */
    if (frag & 0x3fff) {
        pkt->frag_id = id;
        pkt->frag_offset = (uint32_t)(frag & 0x1fff) * 8;
        pkt->frag_more = (frag & 0x2000) != 0;
        pkt->frag_hdr_len = hl;
        return fragment(s, proto, pkt);
    }
    return decode_next(proto, s, pkt);
}

static enum decode_result decode_ipv6(struct span *s, struct packet *pkt)
{
    if (s->cap < 40)
        return fail(pkt, DECODE_STAGE_L3, "short_ip_header");
    uint32_t plen = rd16(s->p + 4);
    /* Payload length 0: a jumbogram or a BIG TCP aggregate; the frame's length is all there
     * is. */
    if (plen == 0)
        plen = s->len - 40;
    if (plen > s->len - 40 && !mirror_cut(s, 40 + plen, pkt))
        return fail(pkt, DECODE_STAGE_L3, "bad_ip_length");

    pkt->ip_version = 6;
    memcpy(pkt->src, s->p + 8, 16);
    memcpy(pkt->dst, s->p + 24, 16);
    uint8_t proto = s->p[6];
    span_limit(s, 40 + plen);
    pkt->truncated = s->cap < s->len;
    span_skip(s, 40);
    pkt->frag_hdr_len = 0;
    return decode_next(proto, s, pkt);
}

/* want_version: 4 or 6 when the layer below said which (ethertype, link type, protocol 4 or
 * 41), 0 when only the version nibble tells (raw IP). */
static enum decode_result decode_ip(struct span *s, unsigned want_version, struct packet *pkt)
{
    if (s->cap < 1)
        return fail(pkt, DECODE_STAGE_L3, "short_ip_header");
    unsigned version = s->p[0] >> 4;
    if ((version != 4 && version != 6) || (want_version && version != want_version))
        return fail(pkt, DECODE_STAGE_L3, "bad_ip_version");
    return version == 4 ? decode_ipv4(s, pkt) : decode_ipv6(s, pkt);
}

/* Follows VLAN tags and PPPoE to IP; type is the ethertype just read. */
static enum decode_result decode_ethertype(uint16_t type, struct span *s, struct packet *pkt)
{
    while (type == ETHERTYPE_VLAN || type == ETHERTYPE_QINQ || type == ETHERTYPE_QINQ_OLD) {
        if (s->cap < 4)
            return fail(pkt, DECODE_STAGE_L2, "short_frame");
        if (pkt->n_vlans < DECODE_MAX_VLANS)
            pkt->vlans[pkt->n_vlans++] = rd16(s->p) & 0x0fff;
        type = rd16(s->p + 2);
        span_skip(s, 4);
    }
    switch (type) {
    case ETHERTYPE_IPV4:
        return decode_ip(s, 4, pkt);
    case ETHERTYPE_IPV6:
        return decode_ip(s, 6, pkt);
    case ETHERTYPE_PPPOE_SESSION: {
        /* RFC 2516: version/type, code, session id, length; then the PPP protocol field
         * (never compressed on PPPoE in practice). */
        if (s->cap < 8)
            return fail(pkt, DECODE_STAGE_L2, "short_frame");
        uint16_t ppp = rd16(s->p + 6);
        span_skip(s, 8);
        if (ppp == PPP_IPV4)
            return decode_ip(s, 4, pkt);
        if (ppp == PPP_IPV6)
            return decode_ip(s, 6, pkt);
        return DECODE_SKIP;
    }
    default:
        return DECODE_SKIP;
    }
}

/* A Linux cooked header's packet type uses the PACKET_* values of enum capture_dir. */
static void cooked_dir(struct packet *pkt, unsigned pkttype)
{
    if (pkt->dir == CAPTURE_DIR_UNKNOWN && pkttype <= CAPTURE_DIR_OUTGOING)
        pkt->dir = (uint8_t)pkttype;
}

static enum decode_result decode_family(uint32_t family, struct span *s, struct packet *pkt)
{
    if (family == NULL_AF_INET)
        return decode_ip(s, 4, pkt);
    if (family == 24 || family == 28 || family == 30)
        return decode_ip(s, 6, pkt);
    return DECODE_SKIP;
}

enum decode_result decode_frame(const struct capture_frame *frame, unsigned decap,
                                struct packet *pkt)
{
    memset(pkt, 0, sizeof *pkt);
    pkt->decap = (uint8_t)(decap & (DECODE_VXLAN | DECODE_GRE | DECODE_HEP));
    pkt->ts_ns = frame->ts_ns;
    pkt->iface = frame->iface;
    pkt->dir = frame->dir;
    pkt->truncated = frame->caplen < frame->wirelen;
    pkt->gso_size = frame->gso_size;

    struct span s = {frame->data, frame->caplen,
                     frame->wirelen > frame->caplen ? frame->wirelen : frame->caplen};
    switch (frame->link) {
    case CAPTURE_LINK_ETHERNET:
        if (s.cap < 14)
            return fail(pkt, DECODE_STAGE_L2, "short_frame");
        {
            uint16_t type = rd16(s.p + 12);
            span_skip(&s, 14);
            return decode_ethertype(type, &s, pkt);
        }
    case CAPTURE_LINK_LINUX_SLL: /* packet type, ARPHRD, address length, address[8], protocol */
        if (s.cap < 16)
            return fail(pkt, DECODE_STAGE_L2, "short_frame");
        {
            cooked_dir(pkt, rd16(s.p));
            uint16_t type = rd16(s.p + 14);
            span_skip(&s, 16);
            return decode_ethertype(type, &s, pkt);
        }
    case CAPTURE_LINK_LINUX_SLL2: /* protocol, reserved, ifindex, ARPHRD, packet type, ... */
        if (s.cap < 20)
            return fail(pkt, DECODE_STAGE_L2, "short_frame");
        {
            cooked_dir(pkt, s.p[10]);
            pkt->link_ifindex = rd32(s.p + 4);
            uint16_t type = rd16(s.p);
            span_skip(&s, 20);
            return decode_ethertype(type, &s, pkt);
        }
    case CAPTURE_LINK_RAW:
        return decode_ip(&s, 0, pkt);
    case CAPTURE_LINK_IPV4:
        return decode_ip(&s, 4, pkt);
    case CAPTURE_LINK_IPV6:
        return decode_ip(&s, 6, pkt);
    case CAPTURE_LINK_NULL:
        if (s.cap < 4)
            return fail(pkt, DECODE_STAGE_L2, "short_frame");
        {
            /* Host order of the machine that captured, which need not be ours: the family
             * values are small, so the byte-swapped reading of one order is never valid. */
            uint32_t be = rd32(s.p);
            uint32_t le =
                (uint32_t)s.p[3] << 24 | (uint32_t)s.p[2] << 16 | (uint32_t)s.p[1] << 8 | s.p[0];
            span_skip(&s, 4);
            return decode_family(be <= 0xffff ? be : le, &s, pkt);
        }
    case CAPTURE_LINK_LOOP:
        if (s.cap < 4)
            return fail(pkt, DECODE_STAGE_L2, "short_frame");
        {
            uint32_t family = rd32(s.p);
            span_skip(&s, 4);
            return decode_family(family, &s, pkt);
        }
    default:
        return fail(pkt, DECODE_STAGE_L2, "unsupported_link");
    }
}

enum decode_result decode_transport(const uint8_t *data, uint32_t len, struct packet *pkt)
{
    struct span s = {data, len, len};
    pkt->sport = 0;
    pkt->dport = 0;
    pkt->tcp_seq = 0;
    pkt->tcp_flags = 0;
    pkt->payload = NULL;
    pkt->payload_len = 0;
    pkt->error_stage = 0;
    pkt->error_reason = NULL;
    return decode_next(pkt->l4_proto, &s, pkt);
}

/* Dotted decimal without printf: inet_ntop formats through it, about 150 ns of the 200 a rule
 * paid per m.src_ip. buf has room for 15 bytes. */
static int format_ipv4(const uint8_t *a, char *buf)
{
    char *p = buf;
    for (int i = 0; i < 4; i++) {
        unsigned v = a[i];
        if (i)
            *p++ = '.';
        if (v >= 100) {
            *p++ = (char)('0' + v / 100);
            v %= 100;
            *p++ = (char)('0' + v / 10);
        } else if (v >= 10) {
            *p++ = (char)('0' + v / 10);
        }
        *p++ = (char)('0' + v % 10);
    }
    return (int)(p - buf);
}

int decode_addr_text(uint8_t ip_version, const uint8_t addr[16], char *buf, size_t buflen)
{
    if (ip_version == 4) {
        char text[16];
        int n = format_ipv4(addr, text);
        text[n] = 0;
        if ((size_t)n >= buflen)
            return -ENOSPC;
        memcpy(buf, text, (size_t)n + 1);
        return n;
    }
    if (ip_version != 6)
        return -EINVAL;
    if (buflen > INET6_ADDRSTRLEN)
        buflen = INET6_ADDRSTRLEN;
    if (!inet_ntop(AF_INET6, addr, buf, (socklen_t)buflen))
        return -ENOSPC;
    return (int)strlen(buf);
}

int decode_addr_format(const struct packet *pkt, int which_dst, char *buf, size_t buflen)
{
    return decode_addr_text(pkt->ip_version, which_dst ? pkt->dst : pkt->src, buf, buflen);
}
