/* slice: number parsing and hashing of byte views. */
#include "slice.h"

#include <errno.h>
#include <stdint.h>
#include <sys/random.h>
#include <time.h>

uint64_t slice_hash_secret;

int slice_hash_randomize(void)
{
    uint64_t v;
    struct timespec ts;

    if (getrandom(&v, sizeof v, GRND_NONBLOCK) == (ssize_t)sizeof v) {
        slice_hash_secret = v;
        return 0;
    }
    /* No entropy yet (early boot): not a secret, but not the fixed key everyone knows either. */
    int rc = errno ? -errno : -EIO;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    slice_hash_secret = hash_mix((uint64_t)(uintptr_t)&v ^ (uint64_t)ts.tv_nsec,
                                 (uint64_t)ts.tv_sec ^ (uint64_t)clock());
    return rc;
}

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
    uint64_t h = seed ^ slice_hash_secret ^ k0 ^ (uint64_t)n;

    if (n == 0)
        return mul_fold(h, k0);
    for (; n > 8; p += 8, n -= 8)
        h = mul_fold(h ^ load64(p), k1);
    h = mul_fold(h ^ tail_word(p, n, s.len) ^ ((uint64_t)n << 56), k1);
    return mul_fold(h, k0);
}

uint64_t slice_hash_wide(struct slice s, uint64_t seed)
{
    const uint64_t k1 = 0xe7037ed1a0b428dbULL, k2 = 0x589965cc75374cc3ULL;
    const uint64_t k3 = 0x8ebc6af09c88c6e3ULL, k4 = 0x1d8e4e27c47d124fULL;
    const char *p = s.p;
    size_t n = s.len;
    uint64_t a = seed ^ slice_hash_secret, b = a ^ k2, c = a ^ k3, d = a ^ k4;

    if (n < 64)
        return slice_hash(s, seed);
    for (; n >= 32; p += 32, n -= 32) {
        a = mul_fold(a ^ load64(p), k1);
        b = mul_fold(b ^ load64(p + 8), k2);
        c = mul_fold(c ^ load64(p + 16), k3);
        d = mul_fold(d ^ load64(p + 24), k4);
    }
    /* The lanes, then what is left (0 to 31 bytes) with the whole length. */
    uint64_t lanes = mul_fold(a ^ mul_fold(b, k1), c ^ mul_fold(d, k2));
    return slice_hash(slice_make(p, n), lanes ^ (uint64_t)s.len);
}

/* One word into both lanes. */
static inline void hash2_word(struct hash2 *h, uint64_t w)
{
    h->a = mul_fold(h->a ^ w, 0xe7037ed1a0b428dbULL);
    h->b = mul_fold(h->b ^ w, 0x589965cc75374cc3ULL);
}

/* Words as slice_hash takes them; the length goes in first, the remainder count with the last
 * word. An empty part is a word of its own, so that it is not lost between its neighbours. */
void hash2_add(struct hash2 *h, struct slice s)
{
    const char *p = s.p;
    size_t n = s.len;

    if (n == 0) {
        hash2_word(h, 0x9e3779b97f4a7c15ULL);
        return;
    }
    h->a ^= (uint64_t)n;
    h->b ^= (uint64_t)n << 1;
    for (; n > 8; p += 8, n -= 8)
        hash2_word(h, load64(p));
    hash2_word(h, tail_word(p, n, s.len) ^ ((uint64_t)n << 56));
}

void hash2_add_u64(struct hash2 *h, uint64_t v)
{
    hash2_word(h, v ^ 0x5bd1e9955bd1e995ULL);
}

void hash2_finish(const struct hash2 *h, uint64_t *hash, uint64_t *check)
{
    *hash = mul_fold(h->a, 0xa0761d6478bd642fULL);
    *check = mul_fold(h->b, 0x8ebc6af09c88c6e3ULL);
}

void slice_hash2(struct slice s, uint64_t out[2])
{
    struct hash2 h = hash2_start(0);
    hash2_add(&h, s);
    hash2_finish(&h, &out[0], &out[1]);
}
