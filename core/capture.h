/* capture: the frame handed from any capture source (pcap file, BPF ringbuf) to decode. Sources
 * differ; from here on the pipeline sees only this. */
#ifndef SIPSCOPE_CAPTURE_H
#define SIPSCOPE_CAPTURE_H

#include <stdint.h>

/* The latest frame time (2^62 ns: the year 2116). Readers clamp later times to it, and earlier
 * than 1970 to 0, so that a packet time plus any deadline fits in 64 bits. */
#define CAPTURE_MAX_TS_NS (1ull << 62)

/* Link types, with the values of the pcap LINKTYPE_ registry. */
enum capture_link {
    CAPTURE_LINK_NULL = 0,          /* BSD loopback: 4-byte family in host order */
    CAPTURE_LINK_ETHERNET = 1,
    CAPTURE_LINK_RAW = 101,         /* raw IPv4 or IPv6, version from the first nibble */
    CAPTURE_LINK_LOOP = 108,        /* OpenBSD loopback: 4-byte family in network order */
    CAPTURE_LINK_LINUX_SLL = 113,
    CAPTURE_LINK_IPV4 = 228,
    CAPTURE_LINK_IPV6 = 229,
    CAPTURE_LINK_LINUX_SLL2 = 276,
};

/* Direction of a live packet (linux/if_packet.h PACKET_*); CAPTURE_DIR_UNKNOWN offline. */
enum capture_dir {
    CAPTURE_DIR_HOST = 0,
    CAPTURE_DIR_BROADCAST = 1,
    CAPTURE_DIR_MULTICAST = 2,
    CAPTURE_DIR_OTHERHOST = 3,
    CAPTURE_DIR_OUTGOING = 4,
    CAPTURE_DIR_UNKNOWN = 255,
};

/* One captured frame. data is owned by the source and valid until the next frame is read. */
struct capture_frame {
    const uint8_t *data;
    uint32_t caplen;  /* bytes in data */
    uint32_t wirelen; /* bytes on the wire; > caplen when cut at the snap length */
    uint64_t ts_ns;   /* capture time, nanoseconds since the Unix epoch, at most
                         CAPTURE_MAX_TS_NS */
    uint16_t link;    /* enum capture_link; a frame of a pcapng interface whose link type sipscope
                         does not decode has that LINKTYPE_ value, none of the enum's */
    uint8_t dir;      /* enum capture_dir */
    uint32_t iface;   /* interface index into the engine's interface names; 0 offline */
    /* Live, a super-packet the kernel handed on whole (UDP_SEGMENT, GSO, GRO): the payload
     * bytes of each of its segments, the last one shorter. A UDP super-packet is that many
     * datagrams. 0 for a plain packet, and offline (files do not say). */
    uint16_t gso_size;
};

#endif
