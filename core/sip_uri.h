/* sip_uri: the identity of a SIP or SIPS URI as RFC 3261 compares URIs (§19.1.4) and addresses
 * of record (§10.3 step 5), fed into a running hash2 as canonical bytes without copying the URI
 * or allocating. It does not produce canonical text, resolve names, or validate a URI beyond
 * what the comparison needs. */
#ifndef SIPSCOPE_SIP_URI_H
#define SIPSCOPE_SIP_URI_H

#include <stdbool.h>

#include "slice.h"

enum sip_uri_form {
    /* An address of record (§10.3 step 5): scheme, userinfo, host and port. URI parameters
     * (user= included) and headers are removed. */
    SIP_URI_AOR = 0,
    /* A URI as §19.1.4 compares two (a Contact): the AoR's parts, the parameters user, ttl,
     * method, maddr and transport, and the headers. Other parameters are ignored. */
    SIP_URI_FULL,
};

/* Adds the identity of uri in the given form to h: two URIs that RFC 3261 calls equal add the
 * same words, and in practice (up to the hash) two it calls different add different ones.
 *  - The scheme (sip or sips) and the host compare case-insensitively, the userinfo (user and
 *    password) case-sensitively.
 *  - An escape (%XX, hex digits of either case) equals the character it encodes, except a
 *    reserved character of RFC 2396 (";/?:@&=+$,") or '%' itself, which stays an escape.
 *    Escapes are decoded in the userinfo, in the values of the five parameters and in the
 *    headers; a host has none.
 *  - An IPv6 reference compares as its 16-byte address ([2001:DB8::10] = [2001:db8:0::10]);
 *    an IPv4 address or host name as written, lower-cased.
 *  - A port compares by number; a URI without a port differs from one with any (5060 too).
 *  - SIP_URI_FULL: each of user, ttl, method, maddr and transport that either URI has must be
 *    in both, with equal values (case-insensitive, escapes decoded), in any order; the first
 *    occurrence of a name counts. Every other parameter is ignored, also when both URIs have it
 *    with different values (§19.1.4 would tell ";security=on" from ";security=off" though both
 *    equal the URI without it: an equality that is not transitive cannot be a hash key). The
 *    headers (after '?') must all be in both, in any order: names case-insensitive, values as
 *    written, escapes decoded in both.
 * A URI that does not parse adds its raw bytes instead, and then equals only the same bytes and
 * never a URI that parsed: another scheme than sip/sips, no ':' after the scheme, an empty user
 * before '@', an empty host or one with a byte that is not a letter, digit, '-', '.' or '_', an
 * IPv6 reference without its ']' or that inet_pton(3) refuses, a port that is empty, not digits
 * or above 65535, anything but ';' or '?' after the host and port, or a bad escape ('%' without
 * two hex digits) where escapes are decoded.
 *
 * Reads only uri.p[0..uri.len) (an empty slice may have a NULL pointer), never writes it; the
 * work is linear in uri.len, with one bounded copy of an IPv6 reference for inet_pton. Returns
 * true when uri parsed, false when its raw bytes were added. */
bool sip_uri_hash(struct hash2 *h, struct slice uri, enum sip_uri_form form);

#endif
