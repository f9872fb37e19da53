/* dedup: drops a packet captured again elsewhere within a short window. One packet is often seen
 * more than once by a capture of several interfaces (`any`, the live default): on a bridge's
 * port and on the bridge (Docker, libvirt, LXC), on a VLAN's parent and on the VLAN, on a bond's
 * slave and on the bond, on its way in and out of a host that routes or NATs it, inside a tunnel
 * and on the tunnel's device. Counted each time, a SIP message doubles the request and response
 * counters and shows up as a retransmission of itself; a TCP segment counts as a TCP
 * retransmission.
 *
 * A packet is a copy of one seen within the window when its contents are the same and it was
 * seen on another path. The contents: the transport payload, with the TCP sequence and
 * acknowledgement numbers and flags of a segment, and the identification, offset, flag and
 * addresses of an IP fragment (a datagram NATed on its way is told from its copy once whole:
 * the engine asks again after reassembly). Whole datagrams and segments leave addresses and
 * ports out, so that a copy NATed on its way is one too. The path: the interface (live, or a
 * Linux cooked v2 header's), the direction, the VLAN tags and the tunnels' sources (a mirror, a
 * HEP agent); addresses and ports only where nothing says the direction (a file of Ethernet
 * frames). The same bytes again on the same path were sent again (a flood, a test tool, two
 * senders) and are no copy, but from a mirror (traffic for other hosts, or in a mirroring
 * tunnel), which sends a packet twice on one path when it copies two ports the packet crosses.
 * SIP messages carry their own identifiers (branch, Call-ID, tags, CSeq), so two distinct
 * messages are never byte-identical, and a retransmission comes T1 (500 ms) or more later: a
 * window well under T1 tells copies from retransmissions. A packet cut at the snap length is
 * never taken for a copy (another interface's link header cuts it elsewhere). Fingerprints are
 * keyed 64-bit hashes (slice_hash_wide), so that nobody can craft packets that pass for copies
 * of others.
 *
 * Memory: a fixed table of DEDUP_SLOTS fingerprints (24 bytes each: 192 KiB), nothing per
 * packet. It holds the packets of the last window at the rates one engine thread takes (8,192
 * slots against about 3,600 packets in 10 ms at 360,000 a second, the most the benchmark's
 * sender offers); past that, a bucket's oldest fingerprint gives way, and a copy of it is
 * counted again, as without dedup. Small, so that more of it stays in the cache: at a few
 * thousand packets a second each lookup is a miss all the same, most of what a check costs
 * (BENCHMARK.md). Not thread-safe: one per engine. */
#ifndef SIPSCOPE_DEDUP_H
#define SIPSCOPE_DEDUP_H

#include <stdbool.h>
#include <stdint.h>

#include "decode.h"

#define DEDUP_SLOTS 8192u
#define DEDUP_DEFAULT_WINDOW_NS 10000000ull /* 10 ms: the live default (--dedup-window) */

struct dedup;

/* A table for copies up to window_ns apart (above zero). NULL when out of memory. */
struct dedup *dedup_new(uint64_t window_ns);
void dedup_free(struct dedup *d);

/* Whether the packet (decoded as r: DECODE_UDP, DECODE_TCP or DECODE_FRAGMENT; anything else is
 * never a copy) is a copy of one seen elsewhere within the window before it, at time now_ns. A
 * packet whose contents are new (or whose window is over) is remembered with where it was seen.
 * Packet times may go back (an out-of-order capture): the window is measured either way. */
bool dedup_repeat(struct dedup *d, enum decode_result r, const struct packet *pkt, uint64_t now_ns);

#endif
