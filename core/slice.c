/* slice: number parsing and hashing of byte views. */
#include "slice.h"

#include <errno.h>

int slice_to_u32(struct slice s, uint32_t *out)
{
    uint64_t v = 0;

    if (s.len == 0)
        return -EINVAL;
    for (size_t i = 0; i < s.len; i++) {
        unsigned d = (unsigned char)s.p[i] - '0';
        if (d > 9)
            return -EINVAL;
        v = v * 10 + d;
        if (v > UINT32_MAX)
            return -ERANGE;
    }
    *out = (uint32_t)v;
    return 0;
}

static inline uint64_t load64(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint64_t mul_fold(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

/* Eight bytes a step with a 64x64->128 multiply fold: fast on short keys (Call-IDs, tags,
 * branches are 10 to 100 bytes) and well mixed in every output bit. */
uint64_t slice_hash(struct slice s, uint64_t seed)
{
    const uint64_t k0 = 0xa0761d6478bd642fULL, k1 = 0xe7037ed1a0b428dbULL;
    const char *p = s.p;
    size_t n = s.len;
    uint64_t h = seed ^ k0 ^ (uint64_t)n;

    while (n >= 8) {
        h = mul_fold(h ^ load64(p), k1);
        p += 8;
        n -= 8;
    }
    if (n) {
        uint64_t tail = 0;
        memcpy(&tail, p, n);
        h = mul_fold(h ^ tail ^ ((uint64_t)n << 56), k1);
    }
    return mul_fold(h, k0);
}
