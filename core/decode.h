/* decode: link, network and transport headers of one frame, down to the UDP or TCP payload. It
 * understands the link types of capture.h, 802.1Q/802.1ad tags, PPPoE, IPv4, IPv6 with extension
 * headers and IP-in-IP tunnels, and on request VXLAN, GRE (with ERSPAN) and HEP: the packet is
 * then the innermost one. It does not reassemble: IP fragments and TCP segments are handed back
 * described, for reasm. Zero-copy: every pointer in a packet points into the frame. */
#ifndef SIPSCOPE_DECODE_H
#define SIPSCOPE_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "capture.h"

#define DECODE_MAX_VLANS 4  /* tags kept in struct packet; deeper stacks are decoded, not kept */
#define DECODE_MAX_TUNNELS 4 /* nested tunnels (IP-in-IP, VXLAN, GRE, HEP) opened, at most */

/* Encapsulations decoded only on request (decode_frame's decap; --decapsulate), for captures of
 * mirrored traffic: a switch's ERSPAN session, a cloud's traffic mirror (VXLAN). They are off by
 * default because a host that ends such tunnels itself, a Kubernetes node with flannel say,
 * also shows their inner packets on the tunnel's own device: capturing on all interfaces would
 * then count each message twice. */
#define DECODE_VXLAN 0x1u /* UDP to port 4789 (IANA) or 8472 (Linux's first, flannel's) */
#define DECODE_GRE 0x2u   /* GRE version 0 with IP, Ethernet or ERSPAN (types I, II, III) */
#define DECODE_HEP                                                                                 \
    0x4u /* HEPv3 (HOMER's encapsulation) to UDP port 9060: the SIP a proxy,                       \
          * a PBX or a capture agent copied, with its original addresses */

enum decode_result {
    DECODE_UDP = 0,  /* payload is a UDP payload */
    DECODE_TCP,      /* payload is a TCP segment's payload; tcp_* fields are set */
    DECODE_FRAGMENT, /* payload is one IP fragment's data; frag_* fields are set. Only a
                      * fragment whose protocol may lead to UDP or TCP (UDP, TCP, IP-in-IP,
                      * AH, IPv6 extension headers, GRE when opened) */
    DECODE_SKIP,     /* a well-formed frame that carries neither UDP nor TCP (ARP, ICMP,
                      * a fragment of ICMP or ESP...) */
    DECODE_ERROR,    /* malformed or unsupported; error_stage and error_reason say why */
};

enum decode_stage {
    DECODE_STAGE_L2 = 0,
    DECODE_STAGE_L3,
    DECODE_STAGE_L4,
};

/* TCP flags as in the header's flag byte. */
#define DECODE_TCP_FIN 0x01
#define DECODE_TCP_SYN 0x02
#define DECODE_TCP_RST 0x04
#define DECODE_TCP_ACK 0x10

struct packet {
    uint64_t ts_ns;
    uint32_t iface;
    uint32_t link_ifindex; /* offline, the interface a Linux cooked v2 header (tcpdump -i any)
                            * names; 0 otherwise (live, iface says it) */
    uint32_t tunnel_from;  /* the source addresses of the tunnels crossed, hashed (0: none):
                            * which mirror or HEP agent sent it (dedup.h) */
    uint8_t dir;           /* enum capture_dir; offline, from a Linux cooked header if any */
    uint8_t ip_version; /* 4 or 6: the innermost IP header */
    uint8_t l4_proto;   /* IPPROTO_UDP or IPPROTO_TCP; for a fragment, the fragmented protocol */
    uint8_t n_vlans;
    uint8_t tunnels;    /* tunnel levels crossed */
    uint8_t decap;      /* DECODE_VXLAN, DECODE_GRE, DECODE_HEP: what decode_frame opens */
    uint8_t mirrored;   /* inside a tunnel that carries whole Ethernet frames (VXLAN, gretap,
                         * ERSPAN): the mirror that sent it may have cut the inner packet */
    uint8_t hep;        /* from a HEP packet: its payload holds whole messages, even when
                         * l4_proto is TCP (DECODE_UDP) */
    uint8_t truncated;  /* 1 when the innermost IP packet was cut: at the snap length (caplen <
                         * wirelen, the cut inside the packet, not in a trailer or padding after
                         * it: an FCS the capture left out), or by its mirror (shorter than its
                         * IP length) */
    uint8_t websocket;  /* set by the engine, never by decode: the SIP message handed on with
                         * this TCP segment came in a WebSocket frame (ws_frame.h) */
    uint16_t vlans[DECODE_MAX_VLANS]; /* VLAN ids, outermost first */
    uint8_t src[16], dst[16];          /* innermost addresses; IPv4 uses the first 4 bytes */
    uint16_t sport, dport;             /* host order; 0 for a fragment */
    uint16_t gso_size; /* the frame's (capture_frame.gso_size): on UDP, the payload is datagrams
                        * of this many bytes, the last one shorter; 0 for one datagram */

    uint32_t tcp_seq; /* host order */
    uint32_t tcp_ack; /* host order; read by dedup (NAT leaves it alone) and by tcp_stream (a
                       * hole the peer acknowledged is given up) */
    uint8_t tcp_flags;

    uint32_t frag_id;     /* IPv4 identification or IPv6 fragment identification */
    uint32_t frag_offset; /* in bytes */
    uint8_t frag_more;    /* more-fragments flag */
    /* The header bytes that count with the reassembled payload in the 65535-byte limit
     * (ip_reasm.h): IPv4, this fragment's header length; IPv6, the extension headers between
     * the fixed header and the Fragment header. */
    uint32_t frag_hdr_len;

    const uint8_t *payload;
    uint32_t payload_len;
    /* TCP: the segment's payload bytes on the wire, more than payload_len when the frame was
     * cut at the snap length (the sequence space the segment covers). 0 otherwise. */
    uint32_t payload_wire_len;

    uint8_t error_stage;      /* enum decode_stage, on DECODE_ERROR */
    const char *error_reason; /* static snake_case string, on DECODE_ERROR */
};

/* Decodes a frame, opening the encapsulations in decap (DECODE_VXLAN | DECODE_GRE | DECODE_HEP,
 * or 0). A HEP packet decodes as DECODE_UDP, whatever transport the SIP in it came over: its
 * payload holds whole messages (one, or several for TCP); l4_proto says that transport.
 * Returns an enum decode_result and fills pkt; pkt->payload points into frame->data. Never
 * reads past frame->caplen. */
enum decode_result decode_frame(const struct capture_frame *frame, unsigned decap,
                                struct packet *pkt);

/* Decodes a transport header found in a reassembled IP payload: pkt already holds the network
 * fields (addresses, version, l4_proto) of the fragments; this sets ports, TCP fields and payload
 * (pointing into data). Returns DECODE_UDP, DECODE_TCP, DECODE_SKIP or DECODE_ERROR.
 * IPv6 extension headers that followed the fragment header are skipped, and an l4_proto of 4 or
 * 41 (a fragmented IP-in-IP packet) is followed into the inner header, whose addresses then
 * replace pkt's; only then can DECODE_FRAGMENT come back (the inner packet is a fragment).
 * pkt->decap, from decode_frame, says which other encapsulations are opened. */
enum decode_result decode_transport(const uint8_t *data, uint32_t len, struct packet *pkt);

/* Formats pkt's source or destination address ("192.0.2.1", "2001:db8::1") into buf. Returns
 * the length written, without the NUL; -EINVAL when pkt has no IP version, -ENOSPC when buf is
 * too small (INET6_ADDRSTRLEN bytes always suffice). */
int decode_addr_format(const struct packet *pkt, int which_dst, char *buf, size_t buflen);

/* The same for an address kept apart from its packet: ip_version 4 (addr's first 4 bytes) or 6. */
int decode_addr_text(uint8_t ip_version, const uint8_t addr[16], char *buf, size_t buflen);

#endif
