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

static inline uint64_t load32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint64_t mul_fold(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

/* The last 1 to 8 bytes of a key as one word, from loads that stay inside the key rather than a
 * byte loop through memory: p points at the n remaining bytes, len is the key's whole length.
 * With len >= 8 the word is the key's last 8 bytes (overlapping words already hashed). */
static inline uint64_t tail_word(const char *p, size_t n, size_t len)
{
    if (len >= 8)
        return load64(p + n - 8);
    if (n >= 4)
        return load32(p) | load32(p + n - 4) << 32;
    return (uint64_t)(unsigned char)p[0] | (uint64_t)(unsigned char)p[n / 2] << 8 |
           (uint64_t)(unsigned char)p[n - 1] << 16;
}

/* Eight bytes a step with a 64x64->128 multiply fold: fast on short keys (Call-IDs, tags,
 * branches are 10 to 100 bytes) and well mixed in every output bit. The words before the last
 * cover bytes [0, 8 * floor((n - 1) / 8)), the last word the rest (read from the end), and the
 * length is mixed in, so equal-length inputs that differ anywhere give different word
 * sequences. */
uint64_t slice_hash(struct slice s, uint64_t seed)
{
    const uint64_t k0 = 0xa0761d6478bd642fULL, k1 = 0xe7037ed1a0b428dbULL;
    const char *p = s.p;
    size_t n = s.len;
    uint64_t h = seed ^ k0 ^ (uint64_t)n;

    if (n == 0)
        return mul_fold(h, k0);
    for (; n > 8; p += 8, n -= 8)
        h = mul_fold(h ^ load64(p), k1);
    h = mul_fold(h ^ tail_word(p, n, s.len) ^ ((uint64_t)n << 56), k1);
    return mul_fold(h, k0);
}

void slice_hash2(struct slice s, uint64_t out[2])
{
    const uint64_t k0 = 0xa0761d6478bd642fULL, k1 = 0xe7037ed1a0b428dbULL;
    const uint64_t k2 = 0x8ebc6af09c88c6e3ULL, k3 = 0x589965cc75374cc3ULL;
    const char *p = s.p;
    size_t n = s.len;
    uint64_t a = k0 ^ (uint64_t)n, b = k2 ^ ((uint64_t)n << 1);

    if (n) {
        for (; n > 8; p += 8, n -= 8) {
            uint64_t w = load64(p);
            a = mul_fold(a ^ w, k1);
            b = mul_fold(b ^ w, k3);
        }
        uint64_t w = tail_word(p, n, s.len) ^ ((uint64_t)n << 56);
        a = mul_fold(a ^ w, k1);
        b = mul_fold(b ^ w, k3);
    }
    out[0] = mul_fold(a, k0);
    out[1] = mul_fold(b, k2);
}
