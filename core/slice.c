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

void slice_hash2(struct slice s, uint64_t out[2])
{
    const uint64_t k0 = 0xa0761d6478bd642fULL, k1 = 0xe7037ed1a0b428dbULL;
    const uint64_t k2 = 0x8ebc6af09c88c6e3ULL, k3 = 0x589965cc75374cc3ULL;
    const char *p = s.p;
    size_t n = s.len;
    uint64_t a = k0 ^ (uint64_t)n, b = k2 ^ ((uint64_t)n << 1);

    while (n >= 8) {
        uint64_t w = load64(p);
        a = mul_fold(a ^ w, k1);
        b = mul_fold(b ^ w, k3);
        p += 8;
        n -= 8;
    }
    if (n) {
        uint64_t tail = 0;
        memcpy(&tail, p, n);
        tail ^= (uint64_t)n << 56;
        a = mul_fold(a ^ tail, k1);
        b = mul_fold(b ^ tail, k3);
    }
    out[0] = mul_fold(a, k0);
    out[1] = mul_fold(b, k2);
}
