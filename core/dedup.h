/* dedup: drops a packet captured again within a short window. One packet is often seen twice
 * by a capture of several interfaces (`any`, the live default): on a bridge's port and on the
 * bridge (Docker, libvirt, LXC), on a VLAN's parent and on the VLAN, on a bond's slave and on
 * the bond, on its way in and on its way out of a host that routes or NATs it. Counted twice, a
 * SIP message doubles the request and response counters and shows up as a retransmission of
 * itself; a TCP segment counts as a TCP retransmission.
 *
 * A copy is recognised by its contents, not by its addresses, so that a copy NATed on its way
 * through the host is one too: the transport payload, with the TCP sequence number and flags
 * for a TCP segment, and the identification, offset and flags for an IP fragment. SIP messages
 * carry their own identifiers (branch, Call-ID, tags, CSeq), so two distinct messages are never
 * byte-identical, and a retransmission of one comes T1 (500 ms) or more after it: a window well
 * under T1 tells copies from retransmissions. The fingerprint is a keyed 64-bit hash
 * (slice_hash), so that nobody can craft packets that pass for copies of others.
 *
 * Memory: a fixed table of DEDUP_SLOTS fingerprints (16 bytes each), nothing per packet. It holds
 * the packets of the last window at rates far beyond what one engine thread takes (32,768 slots
 * against about 3,000 packets in 10 ms at 300,000 a second); past that, a bucket's oldest
 * fingerprint gives way, and a copy of it would be counted again, as without dedup. Not
 * thread-safe: one per engine. */
#ifndef SIPSCOPE_DEDUP_H
#define SIPSCOPE_DEDUP_H

#include <stdbool.h>
#include <stdint.h>

#include "decode.h"

#define DEDUP_SLOTS 32768u
#define DEDUP_DEFAULT_WINDOW_NS 10000000ull /* 10 ms: the live default (--dedup-window) */

struct dedup;

/* A table for copies up to window_ns apart (above zero). NULL when out of memory. */
struct dedup *dedup_new(uint64_t window_ns);
void dedup_free(struct dedup *d);

/* Whether the packet (decoded as r: DECODE_UDP, DECODE_TCP or DECODE_FRAGMENT; anything else is
 * never a copy) is a copy of one seen within the window before it, at time now_ns. A packet
 * that is not is remembered. Packet times may go back (an out-of-order capture): the window is
 * measured either way. */
bool dedup_repeat(struct dedup *d, enum decode_result r, const struct packet *pkt, uint64_t now_ns);

#endif
