/* cidr: a set of IPv4 and IPv6 prefixes, each mapped to a small integer chosen by the caller
 * (a carrier or trunk id), with longest-prefix match. Rules build a set at load time and look
 * source addresses up per SIP message. Prefixes cannot be removed: a reload builds a new set.
 *
 * Each family is a multibit trie with leaf pushing: a 16-bit root, then 4-bit levels of 16
 * slots (one 64-byte cache line). An IPv4 lookup reads at most 5 slots, an IPv6 lookup at most
 * 29; it never allocates and never writes. Memory grows only in cidr_add and is bounded by
 * max_prefixes: a family in use holds a root of 2^16 slots (336 KiB with bookkeeping), and each
 * prefix adds at most 4 (IPv4) or 28 (IPv6) nodes of 84 bytes; capacity doubles as it grows.
 * cidr_bytes reports the real figure.
 *
 * Text forms (cidr_add): "10.0.0.0/8", "2001:db8::/32", or a bare address, which means /32 or
 * /128. Addresses are what inet_pton(3) accepts: dotted quad without leading zeros, RFC 4291
 * IPv6 text; no zone ("%eth0"), no brackets. ASCII spaces and tabs around the text are ignored.
 *
 * Decisions:
 * - Host bits set ("10.1.2.3/8") is an error (-EINVAL, the reason names the network the text
 *   probably meant), not silently masked: in an operator's list it is more likely a typo in the
 *   length than a wish for 10.0.0.0/8.
 * - IPv4-mapped IPv6 (::ffff:0:0/96) is IPv4. A prefix written inside it with length >= 96
 *   ("::ffff:10.0.0.0/104") is stored as the IPv4 prefix (10.0.0.0/8): it is the same prefix,
 *   counts once, and replaces or is replaced by the IPv4 spelling. A lookup of a mapped IPv6
 *   address consults the IPv4 prefixes only, so IPv6 prefixes shorter than /96 that cover
 *   ::ffff:0:0 (::/0 included) never match it; add 0.0.0.0/0 for an IPv4 default.
 * - /0 is allowed in each family and is that family's default. */
#ifndef SIPSCOPE_CIDR_H
#define SIPSCOPE_CIDR_H

#include <stddef.h>
#include <stdint.h>

#define CIDR_VALUE_MAX 0x7ffffffe    /* values are 0..CIDR_VALUE_MAX */
#define CIDR_MAX_PREFIXES (1u << 20) /* keeps the worst case (all IPv6 /128) under 2^30 slots */

struct cidr;

/* A new empty set that holds at most max_prefixes distinct prefixes (both families together,
 * 1..CIDR_MAX_PREFIXES). Returns NULL on a bad cap or out of memory. Owned by the caller;
 * release with cidr_free. */
struct cidr *cidr_new(uint32_t max_prefixes);

/* Frees the set; NULL is fine. */
void cidr_free(struct cidr *set);

/* Adds the prefix in the NUL-terminated text with the given value (0..CIDR_VALUE_MAX). Adding a
 * prefix that is already in the set replaces its value and does not count again. Returns 0;
 * -EINVAL with a one-line reason in err[errlen] (not an address, bad or too long length, host
 * bits set, value out of range); -ENOSPC when the set already holds max_prefixes other
 * prefixes; -ENOMEM. The set is unchanged on any error. err may be NULL when errlen is 0. */
int cidr_add(struct cidr *set, const char *text, int32_t value, char *err, size_t errlen);

/* Longest-prefix match of one address in network byte order: 4 bytes for AF_INET, 16 for
 * AF_INET6 (an IPv4-mapped one is looked up as IPv4). Returns the value of the longest prefix
 * that contains it, or -1 when none does or the family is neither. Never allocates; the set is
 * only read, so lookups may run while nobody adds. */
int32_t cidr_lookup(const struct cidr *set, int family, const uint8_t *addr);

/* The same for an address in text (p, len; no NUL needed, no prefix length). Returns the value,
 * -1 when no prefix matches, or -EINVAL when the text is not an IPv4 or IPv6 address. */
int32_t cidr_lookup_text(const struct cidr *set, const char *p, size_t len);

/* Number of distinct prefixes in the set. */
uint32_t cidr_count(const struct cidr *set);

/* Bytes of memory the set holds (trie slots and bookkeeping). */
size_t cidr_bytes(const struct cidr *set);

#endif
