/* sipscope_event: the record the socket filter writes into the ring buffer and the counter keys,
 * shared by the BPF program and its user-space consumer. Layout only; no logic. */
#ifndef SIPSCOPE_EVENT_H
#define SIPSCOPE_EVENT_H

#include <linux/types.h>

/* Largest snap length, 256 KiB (tcpdump's too), a power of two (the program masks lengths with
 * it). GRO and loopback deliver frames larger than 64 KiB: lo's MTU is 65,536, so a full TCP
 * segment or the largest UDP datagram there is a frame of 14 + 65,536 bytes or nearly, and a
 * GRO aggregate holds 64 KiB of payload plus its headers; 64 KiB - 1 cut both. BIG TCP (an
 * administrator's gro_max_size or gso_max_size past 64 KiB, Linux 5.19 for IPv6, 6.3 for IPv4) can
 * go up to 512 KiB: past this the frame is cut and counted as truncated, and its stream has a gap.
 * Each CPU's staging slot holds one frame of this size (bpf/sipscope.bpf.c). */
#define SIPSCOPE_MAX_SNAPLEN (256 * 1024)
/* Smallest snap length: room for Ethernet, four VLAN tags, IPv6 and a TCP header. */
#define SIPSCOPE_MIN_SNAPLEN 128
/* The whole frame, as the ring buffer holds records of their own length: a small packet takes
 * no more room for a large snap length. */
#define SIPSCOPE_DEFAULT_SNAPLEN SIPSCOPE_MAX_SNAPLEN
/* Ring buffer backlog in bytes past which the program asks for a wakeup of the consumer. */
#define SIPSCOPE_DEFAULT_WAKEUP_BACKLOG (256 * 1024)
/* A frame that comes this long after the one before it wakes the consumer too, so that a
 * consumer who saw no frame for a while may sleep until one comes (capture_bpf.h). */
#define SIPSCOPE_DEFAULT_QUIET_NS (40ULL * 1000000)

/* Load-time setting decap: the tunnels the program looks into for SIP (--decapsulate), with
 * the values of decode.h's DECODE_VXLAN, DECODE_GRE and DECODE_HEP. */
#define SIPSCOPE_DECAP_VXLAN 0x1
#define SIPSCOPE_DECAP_GRE 0x2
#define SIPSCOPE_DECAP_HEP 0x4

/* event.flags: the tag the kernel had stripped into skb metadata is back in the frame. */
#define SIPSCOPE_EVENT_VLAN_REINSERTED 0x01
/* event.flags: the frame has no link-layer header and starts with its IP header (tun,
 * WireGuard: devices of type ARPHRD_NONE). */
#define SIPSCOPE_EVENT_NO_LINK 0x02

/* One ring buffer record: this header, then cap_len bytes of the frame starting at the Ethernet
 * header. When the kernel had stripped a VLAN tag into skb metadata (vlan_present), the program
 * puts the tag back into the copied frame after the MAC addresses, as libpcap does, so the frame
 * looks as it did on the wire; wire_len and cap_len then count those 4 bytes. */
struct sipscope_event {
    __u64 ts_ns;      /* bpf_ktime_get_ns(): CLOCK_MONOTONIC, not wall time */
    __u32 ifindex;    /* interface the packet was seen on */
    __u32 wire_len;   /* length of the whole frame (skb->len, + 4 when a tag was reinserted) */
    __u32 cap_len;    /* bytes of frame that follow: min(wire_len, snap length) */
    __u16 vlan_tci;   /* tag from skb metadata (priority, DEI, VLAN id); 0 when none */
    __u16 vlan_proto; /* its TPID, host order (0x8100 or 0x88a8); 0 when none */
    __u8 pkt_type;    /* PACKET_HOST, PACKET_OUTGOING... (linux/if_packet.h) */
    __u8 flags;       /* SIPSCOPE_EVENT_* */
    /* skb->gso_size: the frame is a super-packet that the stack segments later or built by
     * GRO (UDP_SEGMENT, GSO, GRO), of segments this long (the payload of each, the last one
     * shorter); 0 for a plain packet. A UDP one carries that many bytes per datagram. */
    __u16 gso_size;
    __u8 pad[4];
};

/* Counter kinds, per interface. A per-CPU hash map keyed by struct sipscope_counter_key holds one
 * __u64 per CPU; user space sums them. */
enum sipscope_counter_kind {
    SIPSCOPE_CNT_SEEN = 0,     /* packets the filter ran on (loopback's outgoing copies excluded) */
    SIPSCOPE_CNT_MATCHED,      /* packets selected for capture (SIP port, or an IP fragment
                                * of a protocol that may carry SIP) */
    SIPSCOPE_CNT_RINGBUF_FULL, /* selected but lost: no room in the ring buffer */
    SIPSCOPE_CNT_TRUNCATED,    /* selected and delivered cut at the snap length */
    SIPSCOPE_CNT_KINDS
};

struct sipscope_counter_key {
    __u32 ifindex;
    __u32 kind; /* enum sipscope_counter_kind */
};

/* The keys of ifindex 0 (no interface has it) count what no key of its own could take: an
 * interface seen once the map is full. User space creates them before the program runs. */
#define SIPSCOPE_IFINDEX_OTHER 0
/* Interfaces the counters map holds by default (user space sizes it), the keys of
 * SIPSCOPE_IFINDEX_OTHER included. */
#define SIPSCOPE_DEFAULT_COUNTED_IFACES 1025

#endif
