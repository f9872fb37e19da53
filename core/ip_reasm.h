/* ip_reasm: reassembly of IPv4 fragments and IPv6 fragments (Fragment extension header) into
 * the payload of the original datagram, on packet time, within a bounded table and byte budget.
 * It does not decode what it reassembles (decode_transport does) and knows nothing of SIP.
 *
 * Policy, for IPv4 and IPv6 alike:
 * - A datagram is keyed by (IP version, source, destination, identification, protocol).
 * - A fragment lying wholly inside data already held is dropped and counted, and the first
 *   copy kept: with identical bytes it is a duplicate (a resend, or the same frame captured
 *   twice), with other bytes a conflict. Linux keeps the first copy in both cases (its
 *   IPFRAG_DUP), so dropping the datagram for a conflicting copy would let a sender hide from
 *   sipscope what the endpoint takes. A fragment of a datagram completed less than a second
 *   before is a duplicate too (the last fragment's copy, captured twice).
 * - Any other overlap drops the whole datagram: RFC 5722 requires it for IPv6; for IPv4
 *   sipscope does the same (as Linux has since 2018), because overlapping fragments are an
 *   evasion technique and no honest sender produces them.
 * - A datagram not complete within the timeout (30 s of packet time, as Linux; RFC 791
 *   suggests 15 s) is dropped.
 * - A reassembled datagram is at most 65535 bytes counting the header bytes Linux counts with
 *   its payload (struct packet's frag_hdr_len): the first fragment's IPv4 header, so 65515
 *   bytes of payload at most; IPv6's payload length, so 65535 bytes after the Fragment header
 *   less the extension headers before it. Linux drops a longer one (net/ipv4/ip_fragment.c,
 *   net/ipv6/reassembly.c), so no endpoint receives it.
 * - When the table or the byte budget is full, a datagram in progress is evicted: the oldest
 *   of those holding less than an eighth of the buffer they made room for (fragments far
 *   apart: a flood's), else the oldest.
 *
 * Every give-up is reported to the error callback with one of these static reasons (the
 * engine counts them as sipscope_parse_errors_total{stage="reasm",reason}):
 *   fragment_timeout      a datagram incomplete at its deadline
 *   fragment_overlap      a fragment overlapping data held, not wholly inside it: datagram
 *                         dropped
 *   fragment_conflict     a fragment wholly inside data held, with other bytes: fragment
 *                         dropped, the first copy kept
 *   fragment_duplicate    a fragment already held, byte for byte, or of a datagram just
 *                         completed: fragment dropped
 *   fragment_too_big      header + offset + length past 65535 (as above): datagram dropped
 *   fragment_bad_length   a fragment with more-fragments set whose length is not a multiple
 *                         of 8, an empty fragment, or two different ends: dropped
 *   fragment_truncated    a fragment cut at the snap length: its datagram can never complete,
 *                         so it is dropped at once
 *   fragment_holes        more than IP_REASM_MAX_HOLES separate pieces held (a fragment flood)
 *   fragment_no_memory    a buffer could not be allocated
 * and one the engine counts itself:
 *   fragment_nested       a reassembled datagram that is a fragment again, nested deeper than
 *                         DECODE_MAX_TUNNELS + 1 levels: given up
 * Evictions (table or byte budget full) are counted in the statistics, not as reasons. */
#ifndef SIPSCOPE_IP_REASM_H
#define SIPSCOPE_IP_REASM_H

#include <stdint.h>

#include "decode.h"

#define IP_REASM_MAX_DATAGRAM 65535u /* with the header bytes counted (see above) */
#define IP_REASM_MAX_HOLES 32 /* separate received pieces of one datagram */

struct ip_reasm_config {
    uint32_t max_datagrams; /* datagrams in progress at once */
    uint64_t max_bytes;     /* buffer bytes held across all datagrams */
    uint64_t timeout_ns;    /* from the first fragment seen */
};

/* Fills cfg with the defaults: 4096 datagrams, 64 MiB, 30 s. */
void ip_reasm_config_defaults(struct ip_reasm_config *cfg);

/* Called for every give-up with a static reason string (see above). */
typedef void (*ip_reasm_error_fn)(void *ctx, const char *reason);

struct ip_reasm_stats {
    uint32_t datagrams; /* in progress */
    uint64_t bytes;     /* buffer bytes held */
    uint64_t evictions; /* datagrams evicted because the table or the byte budget was full */
    uint64_t completed; /* datagrams reassembled */
};

struct ip_reasm;

/* Creates an empty reassembler; err is called with ctx for each give-up. Returns NULL when
 * memory is short or a limit is 0. */
struct ip_reasm *ip_reasm_new(const struct ip_reasm_config *cfg, ip_reasm_error_fn err, void *ctx);

/* Frees everything held. NULL is fine. */
void ip_reasm_free(struct ip_reasm *r);

/* Adds one fragment, as decode_frame described it (DECODE_FRAGMENT: addresses, ip_version,
 * l4_proto, frag_id, frag_offset, frag_more, payload, truncated, ts_ns). Due timeouts run
 * first. Returns 1 when this fragment completed its datagram: *data and *len then give the
 * reassembled IP payload (what followed the IP header, or the IPv6 Fragment header), owned by
 * the reassembler and valid until the next call into it; 0 when the fragment is held (or was
 * dropped and counted). The fragment's bytes are copied: pkt may point into the reassembler's
 * own last output (a fragmented packet inside a reassembled tunnel). */
int ip_reasm_add(struct ip_reasm *r, const struct packet *pkt, const uint8_t **data, uint32_t *len);

/* Drops every datagram whose deadline is <= now, counting each as fragment_timeout. */
void ip_reasm_expire(struct ip_reasm *r, uint64_t now_ns);

/* The earliest deadline of a datagram in progress, UINT64_MAX when none. */
uint64_t ip_reasm_next_deadline(const struct ip_reasm *r);

void ip_reasm_get_stats(const struct ip_reasm *r, struct ip_reasm_stats *out);

#endif
