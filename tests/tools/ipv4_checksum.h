/* ipv4_checksum: the header checksum of RFC 791 (one's complement sum of 16-bit words), for the
 * capture generators that write IPv4 packets. n is even. */
#ifndef SIPSCOPE_TESTS_IPV4_CHECKSUM_H
#define SIPSCOPE_TESTS_IPV4_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

static inline uint16_t ip_checksum(const uint8_t *h, size_t n)
{
    uint32_t sum = 0;
    for (size_t i = 0; i < n; i += 2)
        sum += (uint32_t)(h[i] << 8 | h[i + 1]);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

#endif
