/* portset: a set of TCP/UDP ports parsed from "5060,5062-5070", as a 64 Kibit bitmap so that
 * membership costs one bit test. Used by the offline port filter and to fill the BPF port map. */
#ifndef SIPSCOPE_PORTSET_H
#define SIPSCOPE_PORTSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct portset {
    uint64_t bits[65536 / 64];
    uint32_t count; /* ports in the set */
};

/* Parses a comma-separated list of ports and inclusive ranges (1..65535) into set, which is
 * cleared first. Spaces around items are allowed. Returns 0, or -EINVAL with a one-line reason
 * in err[errlen] (empty item, not a number, port 0 or above 65535, range backwards, a port in two
 * items: "5060,5060", "5060-5070,5065"). */
int portset_parse(struct portset *set, const char *text, char *err, size_t errlen);

static inline bool portset_has(const struct portset *set, uint16_t port)
{
    return (set->bits[port >> 6] >> (port & 63)) & 1;
}

void portset_add(struct portset *set, uint16_t port);

#endif
