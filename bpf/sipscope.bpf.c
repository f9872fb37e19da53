/* sipscope.bpf: socket filter for AF_PACKET sockets. Selects SIP packets (UDP or TCP with a
 * configured port, plus the IP fragments that may carry it), inside IP-in-IP tunnels and, when
 * asked, VXLAN and GRE (and HEP, whose packets it takes whole), and copies each whole frame, up to
 * the snap length, into a ring buffer. It does not parse SIP and does not reassemble; user space
 * does both. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "sipscope_event.h"

/* Load-time settings (read-only data, set by user space before the load). */
const volatile __u32 snaplen = SIPSCOPE_DEFAULT_SNAPLEN;
const volatile __u64 wakeup_backlog = SIPSCOPE_DEFAULT_WAKEUP_BACKLOG;
const volatile __u32 decap = 0; /* SIPSCOPE_DECAP_VXLAN | SIPSCOPE_DECAP_GRE | ..._HEP */

/* The time of a recent frame, for the quiet-spell wakeup. Refreshed at most once a millisecond
 * (RECENT_REFRESH_NS), so that CPUs capturing side by side do not each write this cache line per
 * packet: it may lag the last frame by that much, which only makes a wakeup likelier. */
__u64 recent_frame_ns = 0;
#define RECENT_REFRESH_NS 1000000

#define LOOPBACK_IFINDEX 1 /* the kernel gives lo index 1 in every network namespace */
#define MAX_VLAN_TAGS 8    /* inline tags followed (QinQ and deeper stacks) */
#define MAX_IP_LEVELS 5    /* the outer IP header and four tunnels, as decode follows */
#define MAX_IPV6_EXT 8     /* extension headers walked before the transport header */

#define ETH_P_QINQ_OLD 0x9100 /* pre-standard QinQ TPID still seen on some switches */
#define ETH_P_PPPOE_SESS 0x8864 /* RFC 2516 session stage: a broadband access network's links */
#define PPP_IPV4 0x0021
#define PPP_IPV6 0x0057
#define IPPROTO_AH_ 51 /* IPsec authentication header, after IPv4 as after IPv6 */
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define IPV6_HOPOPTS 0
#define IPV6_ROUTING 43
#define IPV6_FRAGMENT 44
#define IPV6_AH 51
#define IPV6_DSTOPTS 60
#define VXLAN_PORT 4789       /* RFC 7348 */
#define VXLAN_PORT_LINUX 8472 /* Linux's default before the IANA port, flannel's */
#define VXLAN_FLAG_I 0x08
#define HEP_PORT 9060 /* HOMER's */
#define GRE_CSUM 0x8000
#define GRE_ROUTING 0x4000
#define GRE_KEY 0x2000
#define GRE_SEQ 0x1000
#define GRE_VERSION 0x0007
#define GRE_PROTO_TEB 0x6558    /* transparent Ethernet bridging */
#define GRE_PROTO_ERSPAN 0x88be /* ERSPAN II (8-byte header), or I without a GRE sequence */
#define GRE_PROTO_ERSPAN3 0x22eb
#define ERSPAN_VERSION_3 2 /* version nibble of a type III header */

/* Staging area: the frame is assembled here, then copied into the ring buffer with its exact
 * length. The data array has 16 bytes of slack past the largest frame so that the masked lengths
 * below always fit (see "Verifier:" in stage_frame). */
#define STAGE_DATA (SIPSCOPE_MAX_SNAPLEN + 1 + 16)
/* A length in [1, SIPSCOPE_MAX_SNAPLEN] is unchanged by ((len - 1) & SNAP_MASK) + 1, and the
 * verifier sees the bounds of the result. */
#define SNAP_MASK (SIPSCOPE_MAX_SNAPLEN - 1)
_Static_assert((SIPSCOPE_MAX_SNAPLEN & SNAP_MASK) == 0, "the largest snap length is a power of 2");
struct stage {
    struct sipscope_event ev;
    __u8 data[STAGE_DATA];
};

/* One slot per possible CPU, indexed by bpf_get_smp_processor_id(): a per-CPU array would do the
 * same, but per-CPU values are limited to 32 KiB and a slot holds 256 KiB. A slot is never used by
 * two programs at once: socket filters run with bottom halves disabled and migration off, so a
 * run cannot be interrupted by another run on the same CPU. User space sets max_entries. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct stage);
} stage SEC(".maps");

/* Records for user space; user space sets the size (a power of two, in pages). */
struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 16 << 20);
} events SEC(".maps");

/* SIP ports (host order); the value is unused. User space sizes and fills it before attaching. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1);
    __type(key, __u16);
    __type(value, __u8);
} sip_ports SEC(".maps");

/* Per-interface counters. User space pre-creates the keys of the interfaces it binds to and of
 * SIPSCOPE_IFINDEX_OTHER; with "any" the others are created here on first use. User space sets
 * the size (SIPSCOPE_DEFAULT_COUNTED_IFACES interfaces) and drops the keys of interfaces that
 * are gone. */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __uint(max_entries, (SIPSCOPE_DEFAULT_COUNTED_IFACES * SIPSCOPE_CNT_KINDS));
    __type(key, struct sipscope_counter_key);
    __type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 ifindex, __u32 kind)
{
    struct sipscope_counter_key key = {.ifindex = ifindex, .kind = kind};
    __u64 one = 1, *v;

    v = bpf_map_lookup_elem(&counters, &key);
    if (v) {
        *v += 1; /* this CPU's copy: no atomic needed */
        return;
    }
    /* A new per-CPU element holds 1 on this CPU and 0 on the others. If another CPU created it
     * in between, the insert fails and the lookup finds it. In a full map the count goes to the
     * keys of SIPSCOPE_IFINDEX_OTHER, which always exist: no count is lost. */
    if (bpf_map_update_elem(&counters, &key, &one, BPF_NOEXIST) == 0)
        return;
    v = bpf_map_lookup_elem(&counters, &key);
    if (!v) {
        key.ifindex = SIPSCOPE_IFINDEX_OTHER;
        v = bpf_map_lookup_elem(&counters, &key);
    }
    if (v)
        *v += 1;
}

static __always_inline int port_is_sip(__u16 port_be)
{
    __u16 port = bpf_ntohs(port_be);
    return bpf_map_lookup_elem(&sip_ports, &port) != NULL;
}

enum ip_verdict {
    IP_TRANSPORT, /* *proto and *off describe the next header */
    IP_FRAGMENT,  /* an IP fragment that may carry SIP: select it, user space reassembles */
    IP_DROP,      /* malformed, truncated, too many extension headers, or a fragment of a
                   * protocol that cannot carry SIP */
};

/* Whether a fragment of protocol proto may hold SIP once reassembled: what decode.c's
 * decode_next follows towards UDP or TCP (fragment_may_carry_sip there). Both fragment headers
 * name the protocol in every fragment, the first or not. ICMP, ESP, SCTP... are left out: user
 * space would hold them for reassembly, and a flood of them evicted SIP's fragments. */
static __always_inline int fragment_may_carry_sip(__u8 proto, int v6)
{
    switch (proto) {
    case IPPROTO_UDP:
    case IPPROTO_TCP:
    case IPPROTO_IPIP:
    case IPPROTO_IPV6:
    case IPPROTO_AH_:
        return 1;
    case IPPROTO_GRE:
        return (decap & SIPSCOPE_DECAP_GRE) != 0;
    case IPV6_HOPOPTS:
    case IPV6_ROUTING:
    case IPV6_DSTOPTS:
    case IPV6_FRAGMENT:
        return v6;
    default:
        return 0;
    }
}

static __always_inline enum ip_verdict parse_ipv4(struct __sk_buff *skb, __u32 *off, __u8 *proto)
{
    struct {
        __u8 ver_ihl;
        __u8 tos;
        __u16 tot_len;
        __u16 id;
        __u16 frag_off;
        __u8 ttl;
        __u8 protocol;
    } ip;

    if (bpf_skb_load_bytes(skb, *off, &ip, sizeof(ip)))
        return IP_DROP;
    if ((ip.ver_ihl >> 4) != 4 || (ip.ver_ihl & 0xf) < 5)
        return IP_DROP;
    /* A non-first fragment has no transport header, so its ports are unknown; every fragment
     * that may carry SIP is selected and user space keeps those whose reassembled datagram is. */
    if (bpf_ntohs(ip.frag_off) & (IP_MF | IP_OFFSET))
        return fragment_may_carry_sip(ip.protocol, 0) ? IP_FRAGMENT : IP_DROP;
    *off += (ip.ver_ihl & 0xf) * 4;
    *proto = ip.protocol;
    if (ip.protocol == IPPROTO_AH_) { /* transport mode: the protocol follows it */
        struct {
            __u8 nexthdr;
            __u8 len;
        } ah;
        if (bpf_skb_load_bytes(skb, *off, &ah, sizeof(ah)))
            return IP_DROP;
        *off += ((__u32)ah.len + 2) * 4; /* RFC 4302: length in 4-octet units, minus 2 */
        *proto = ah.nexthdr;
    }
    return IP_TRANSPORT;
}

static __always_inline enum ip_verdict parse_ipv6(struct __sk_buff *skb, __u32 *off, __u8 *proto)
{
    struct {
        __u32 ver_tc_flow;
        __u16 payload_len;
        __u8 nexthdr;
        __u8 hop_limit;
    } ip6;
    __u8 nh;

    if (bpf_skb_load_bytes(skb, *off, &ip6, sizeof(ip6)))
        return IP_DROP;
    if ((bpf_ntohl(ip6.ver_tc_flow) >> 28) != 6)
        return IP_DROP;
    *off += 40;
    nh = ip6.nexthdr;

    for (int i = 0; i < MAX_IPV6_EXT; i++) {
        struct {
            __u8 nexthdr;
            __u8 len;
            __u16 frag_off; /* fragment header only: offset << 3 | M */
        } ext;

        if (nh != IPV6_HOPOPTS && nh != IPV6_ROUTING && nh != IPV6_DSTOPTS && nh != IPV6_AH &&
            nh != IPV6_FRAGMENT) {
            *proto = nh;
            return IP_TRANSPORT;
        }
        if (bpf_skb_load_bytes(skb, *off, &ext, sizeof(ext)))
            return IP_DROP;
        if (nh == IPV6_FRAGMENT) {
            /* Offset 0 without M is an atomic fragment (RFC 6946): the datagram is whole. */
            if (bpf_ntohs(ext.frag_off) & 0xfff9)
                return fragment_may_carry_sip(ext.nexthdr, 1) ? IP_FRAGMENT : IP_DROP;
            *off += 8;
        } else if (nh == IPV6_AH) {
            *off += ((__u32)ext.len + 2) * 4; /* RFC 4302: length in 4-octet units, minus 2 */
        } else {
            *off += ((__u32)ext.len + 1) * 8; /* RFC 8200: length in 8-octet units, minus 1 */
        }
        nh = ext.nexthdr;
    }
    return IP_DROP;
}

/* Whether the frame has no link-layer header: a device without one (tun, WireGuard) hands the
 * filter a frame that starts at its network header. Compared with the bytes there. */
static __always_inline int no_link_header(struct __sk_buff *skb)
{
    __u64 at_data[2], at_net[2];

    if (bpf_skb_load_bytes(skb, 0, at_data, sizeof(at_data)) ||
        bpf_skb_load_bytes_relative(skb, 0, at_net, sizeof(at_net), BPF_HDR_START_NET))
        return 0;
    return at_data[0] == at_net[0] && at_data[1] == at_net[1];
}

/* An Ethernet header at *off: its VLAN tags and PPPoE are followed to IP. Sets *v6 and moves
 * *off to the IP header; returns 0, or -1 for a frame that carries no IP. */
static __always_inline int parse_ethernet(struct __sk_buff *skb, __u32 *off, int *v6)
{
    __u32 o = *off + 12;
    __u16 ethertype;

    if (bpf_skb_load_bytes(skb, o, &ethertype, sizeof(ethertype)))
        return -1;
    o += 2;
    for (int i = 0; i < MAX_VLAN_TAGS; i++) {
        if (ethertype != bpf_htons(ETH_P_8021Q) && ethertype != bpf_htons(ETH_P_8021AD) &&
            ethertype != bpf_htons(ETH_P_QINQ_OLD))
            break;
        if (bpf_skb_load_bytes(skb, o + 2, &ethertype, sizeof(ethertype)))
            return -1;
        o += 4;
    }
    if (ethertype == bpf_htons(ETH_P_PPPOE_SESS)) {
        /* Version/type, code, session id, length, then the PPP protocol (never compressed on
         * PPPoE in practice), as decode.c reads it. */
        __u16 ppp;
        if (bpf_skb_load_bytes(skb, o + 6, &ppp, sizeof(ppp)))
            return -1;
        o += 8;
        if (ppp == bpf_htons(PPP_IPV4))
            ethertype = bpf_htons(ETH_P_IP);
        else if (ppp == bpf_htons(PPP_IPV6))
            ethertype = bpf_htons(ETH_P_IPV6);
        else
            return -1;
    }
    if (ethertype == bpf_htons(ETH_P_IP))
        *v6 = 0;
    else if (ethertype == bpf_htons(ETH_P_IPV6))
        *v6 = 1;
    else
        return -1;
    *off = o;
    return 0;
}

enum gre_inner {
    GRE_NONE,     /* not version 0, source routed, or carrying something else */
    GRE_IP,       /* *off is at an IP header, *v6 set */
    GRE_ETHERNET, /* *off is at an Ethernet header */
};

/* A GRE header at *off, as decode.c reads it: the optional checksum, key and sequence words,
 * then IP, Ethernet, or Ethernet behind an ERSPAN header (I: none; II: 8 bytes; III: 12, 20
 * with its subheader). __u8 last is first the version byte, then the last of type III. */
static __always_inline enum gre_inner parse_gre(struct __sk_buff *skb, __u32 *off, int *v6)
{
    struct {
        __u16 flags;
        __u16 proto;
    } g;
    __u32 hl = 4;
    __u16 flags;
    __u8 last;

    if (bpf_skb_load_bytes(skb, *off, &g, sizeof(g)))
        return GRE_NONE;
    flags = bpf_ntohs(g.flags);
    if (flags & (GRE_VERSION | GRE_ROUTING))
        return GRE_NONE;
    hl += (flags & GRE_CSUM) ? 4 : 0;
    hl += (flags & GRE_KEY) ? 4 : 0;
    hl += (flags & GRE_SEQ) ? 4 : 0;
    switch (bpf_ntohs(g.proto)) {
    case ETH_P_IP:
    case ETH_P_IPV6:
        *v6 = g.proto == bpf_htons(ETH_P_IPV6);
        *off += hl;
        return GRE_IP;
    case GRE_PROTO_TEB:
        *off += hl;
        return GRE_ETHERNET;
    case GRE_PROTO_ERSPAN:
        if (!(flags & GRE_SEQ)) { /* type I */
            *off += hl;
            return GRE_ETHERNET;
        }
        /* Type II, or type III under II's protocol number: the version nibble tells. */
        if (bpf_skb_load_bytes(skb, *off + hl, &last, sizeof(last)))
            return GRE_NONE;
        if ((last >> 4) != ERSPAN_VERSION_3) {
            *off += hl + 8;
            return GRE_ETHERNET;
        }
        /* fall through */
    case GRE_PROTO_ERSPAN3:
        if (bpf_skb_load_bytes(skb, *off + hl + 11, &last, sizeof(last)))
            return GRE_NONE;
        *off += hl + 12 + ((last & 1) ? 8 : 0);
        return GRE_ETHERNET;
    default:
        return GRE_NONE;
    }
}

/* Returns 1 when the frame is to be captured; *no_link tells a frame without a link header.
 * Each turn of the loop reads one IP header, after the Ethernet header a tunnel (or the link)
 * put before it. */
static __always_inline int select_frame(struct __sk_buff *skb, int *no_link)
{
    __u32 off = 0;
    __u8 proto = 0;
    int v6 = 0, ethernet = 1;

    *no_link = no_link_header(skb);
    if (*no_link) {
        __u8 ver;
        if (bpf_skb_load_bytes(skb, 0, &ver, sizeof(ver)))
            return 0;
        v6 = (ver >> 4) == 6;
        ethernet = 0;
    }
    for (int level = 0; level < MAX_IP_LEVELS; level++) {
        if (ethernet && parse_ethernet(skb, &off, &v6))
            return 0;
        ethernet = 0;

        enum ip_verdict r = v6 ? parse_ipv6(skb, &off, &proto) : parse_ipv4(skb, &off, &proto);
        if (r == IP_FRAGMENT)
            return 1;
        if (r == IP_DROP)
            return 0;
        if (proto == IPPROTO_IPIP || proto == IPPROTO_IPV6) {
            v6 = proto == IPPROTO_IPV6;
            continue;
        }
        if (proto == IPPROTO_GRE && (decap & SIPSCOPE_DECAP_GRE)) {
            enum gre_inner inner = parse_gre(skb, &off, &v6);
            if (inner == GRE_NONE)
                return 0;
            ethernet = inner == GRE_ETHERNET;
            continue;
        }
        if (proto != IPPROTO_UDP && proto != IPPROTO_TCP)
            return 0;

        struct {
            __u16 source;
            __u16 dest;
        } ports;
        if (bpf_skb_load_bytes(skb, off, &ports, sizeof(ports)))
            return 0;
        if (proto == IPPROTO_UDP && (decap & SIPSCOPE_DECAP_VXLAN) &&
            (ports.dest == bpf_htons(VXLAN_PORT) || ports.dest == bpf_htons(VXLAN_PORT_LINUX))) {
            __u8 flags;
            /* UDP header, then VXLAN's: flags (I set), reserved, VNI; then Ethernet. */
            if (bpf_skb_load_bytes(skb, off + 8, &flags, sizeof(flags)) || !(flags & VXLAN_FLAG_I))
                return 0;
            off += 16;
            ethernet = 1;
            continue;
        }
        /* HEP: copies of SIP sent to this host to be monitored. Its chunks are read in user
         * space, which filters on the ports they give. Copies this host sends elsewhere are of
         * SIP it handles, which the capture sees: left out, as decode does. */
        if (proto == IPPROTO_UDP && (decap & SIPSCOPE_DECAP_HEP) &&
            ports.dest == bpf_htons(HEP_PORT))
            return skb->pkt_type != PACKET_OUTGOING;
        return port_is_sip(ports.dest) || port_is_sip(ports.source);
    }
    return 0;
}

/* Copies the frame into st->data and fills st->ev. Returns the captured length, 0 on failure
 * (which the bounds make impossible: cap_len never exceeds what the skb holds). */
static __always_inline __u32 stage_frame(struct __sk_buff *skb, struct stage *st, int no_link)
{
    __u32 wire = skb->len;
    __u32 tagged = skb->vlan_present && !no_link;
    __u32 cap, n;

    if (tagged)
        wire += 4;
    cap = wire < snaplen ? wire : snaplen;
    if (cap < 18)
        return 0; /* shorter than a tagged Ethernet header, or than an IP header */

    st->ev.ts_ns = bpf_ktime_get_ns();
    st->ev.ifindex = skb->ifindex;
    st->ev.wire_len = wire;
    st->ev.cap_len = cap;
    st->ev.pkt_type = skb->pkt_type;
    st->ev.flags = no_link ? SIPSCOPE_EVENT_NO_LINK : 0;
    st->ev.vlan_tci = 0;
    st->ev.vlan_proto = 0;
    /* skb_shinfo()->gso_size is 16 bits wide; __sk_buff widens it (Linux 5.7). */
    st->ev.gso_size = (__u16)skb->gso_size;

    if (!tagged) {
        /* Verifier: the helper's length must be provably in [1, sizeof(data)] in the register
         * passed to it. cap is in [18, SIPSCOPE_MAX_SNAPLEN]; the mask and +1 leave it unchanged
         * and give the verifier the bounds [1, SIPSCOPE_MAX_SNAPLEN] on the same register. */
        n = ((cap - 1) & SNAP_MASK) + 1;
        if (bpf_skb_load_bytes(skb, 0, st->data, n))
            return 0;
        return cap;
    }

    /* The kernel moved the outer tag into skb metadata: put it back after the MAC addresses so
     * the frame matches the wire (and what libpcap writes to a file). */
    __u16 tpid = (__u16)skb->vlan_proto; /* network order in __sk_buff */
    __u16 tci = (__u16)skb->vlan_tci;    /* host order */

    st->ev.vlan_tci = tci;
    st->ev.vlan_proto = bpf_ntohs(tpid);
    st->ev.flags = SIPSCOPE_EVENT_VLAN_REINSERTED;
    if (bpf_skb_load_bytes(skb, 0, st->data, 12))
        return 0;
    __builtin_memcpy(&st->data[12], &tpid, 2);
    tci = bpf_htons(tci);
    __builtin_memcpy(&st->data[14], &tci, 2);
    /* Verifier: as above; cap - 16 is in [2, SIPSCOPE_MAX_SNAPLEN - 16], written at data + 16
     * (the slack keeps even the mask's bound inside the slot). */
    n = ((cap - 16 - 1) & SNAP_MASK) + 1;
    if (bpf_skb_load_bytes(skb, 12, &st->data[16], n))
        return 0;
    return cap;
}

SEC("socket")
int sipscope_filter(struct __sk_buff *skb)
{
    __u32 ifindex = skb->ifindex;
    __u32 cpu, cap, size;
    struct stage *st;
    __u64 flags;

    /* On lo every packet passes twice, as PACKET_OUTGOING and again as received: keep one. */
    if (skb->pkt_type == PACKET_OUTGOING && ifindex == LOOPBACK_IFINDEX)
        return 0;
    count(ifindex, SIPSCOPE_CNT_SEEN);
    int no_link = 0;
    if (!select_frame(skb, &no_link))
        return 0;
    count(ifindex, SIPSCOPE_CNT_MATCHED);

    cpu = bpf_get_smp_processor_id();
    st = bpf_map_lookup_elem(&stage, &cpu);
    if (!st)
        return 0;
    cap = stage_frame(skb, st, no_link);
    if (!cap)
        return 0;

    /* Verifier: the record size must be provably within the staging slot. */
    size = sizeof(struct sipscope_event) + (((cap - 1) & SNAP_MASK) + 1);
    /* Wake the consumer only once a backlog has built up, or for the first frame after a quiet
     * spell: while frames come it looks every 50 ms anyway, and once none came for longer it
     * sleeps until woken. A wakeup per record costs the consumer a context switch per packet
     * (DESIGN.md §4). A time older than recent_frame_ns (another CPU's newer frame) is no
     * quiet spell. */
    __u64 recent = recent_frame_ns;
    __s64 since = (__s64)(st->ev.ts_ns - recent);
    if (since >= RECENT_REFRESH_NS)
        recent_frame_ns = st->ev.ts_ns;
    flags = since >= (__s64)SIPSCOPE_DEFAULT_QUIET_NS ||
                    bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) + size >= wakeup_backlog
                ? BPF_RB_FORCE_WAKEUP
                : BPF_RB_NO_WAKEUP;
    if (bpf_ringbuf_output(&events, st, size, flags)) {
        count(ifindex, SIPSCOPE_CNT_RINGBUF_FULL);
        return 0;
    }
    if (cap < st->ev.wire_len)
        count(ifindex, SIPSCOPE_CNT_TRUNCATED);

    /* Return 0: the socket itself queues nothing. Everything goes through the ring buffer, and a
     * non-zero return would clone each packet into a receive queue nobody reads, which fills up
     * and then drops (costing a clone per packet for nothing). */
    return 0;
}

/* No helper used here is GPL-only (checked: the program also loads as "Proprietary"). A
 * GPL-compatible string keeps GPL-only helpers such as bpf_trace_printk usable while debugging;
 * align it with the project's licence once one is chosen. */
char LICENSE[] SEC("license") = "Dual BSD/GPL";
