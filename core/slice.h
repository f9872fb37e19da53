/* slice: a (pointer, length) view into bytes owned by someone else, and the few operations the
 * parsers need on it. A slice never owns memory and is never NUL-terminated. */
#ifndef SIPSCOPE_SLICE_H
#define SIPSCOPE_SLICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct slice {
    const char *p;
    size_t len;
};

#define SLICE_LIT(s) ((struct slice){(s), sizeof(s) - 1})
#define SLICE_FMT(s) (int)(s).len, (s).p /* printf("%.*s", SLICE_FMT(x)) */

static inline struct slice slice_make(const char *p, size_t len)
{
    return (struct slice){p, len};
}

/* The length of p[len] cut to at most max bytes without splitting a UTF-8 character: the cut
 * moves back over continuation bytes, at most three (a longer run is not UTF-8: cut at max). */
static inline size_t slice_utf8_cut(const char *p, size_t len, size_t max)
{
    size_t n = max;

    if (len <= max)
        return len;
    while (n > 0 && n + 3 > max && ((unsigned char)p[n] & 0xC0) == 0x80)
        n--;
    return ((unsigned char)p[n] & 0xC0) == 0x80 ? max : n;
}

static inline bool slice_empty(struct slice s)
{
    return s.len == 0;
}

static inline bool slice_eq(struct slice a, struct slice b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static inline char slice_lower_char(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

/* slice_lower_char on the eight bytes of w at once: a byte gets 0x20 when it is 'A'..'Z' (bit 7
 * of each lane of from_a says >= 'A', of past_z says > 'Z'; bytes >= 0x80 are left alone). */
static inline uint64_t slice_lower8(uint64_t w)
{
    const uint64_t low7 = 0x7f7f7f7f7f7f7f7fULL, high = 0x8080808080808080ULL;
    uint64_t from_a = (w & low7) + 0x3f3f3f3f3f3f3f3fULL; /* 0x80 - 'A' */
    uint64_t past_z = (w & low7) + 0x2525252525252525ULL; /* 0x80 - ('Z' + 1) */
    return w | ((from_a & ~past_z & ~w & high) >> 2);
}

/* ASCII case-insensitive comparison (SIP header names, parameter names, schemes). */
static inline bool slice_eq_nocase(struct slice a, struct slice b)
{
    if (a.len != b.len)
        return false;
    for (size_t i = 0; i < a.len; i++)
        if (slice_lower_char(a.p[i]) != slice_lower_char(b.p[i]))
            return false;
    return true;
}

static inline bool slice_is_lws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Strips spaces, tabs and line breaks (folded lines) at both ends. */
static inline struct slice slice_trim(struct slice s)
{
    while (s.len && slice_is_lws(s.p[0])) {
        s.p++;
        s.len--;
    }
    while (s.len && slice_is_lws(s.p[s.len - 1]))
        s.len--;
    return s;
}

/* Parses an unsigned decimal that fills the whole slice. Returns 0 and sets *out, or -EINVAL for
 * an empty slice or a non-digit, -ERANGE past UINT32_MAX; *out is unchanged on error. */
int slice_to_u32(struct slice s, uint32_t *out);

/* A secret mixed into every hash below, 0 until slice_hash_randomize. The keys of the tables
 * (Call-IDs, tags, branches, AORs, addresses and ports) come from the wire: with a known seed
 * an attacker could pick keys that all fall into one chain of a table (a hash flood, each
 * lookup then walking thousands of entries), or two keys of equal 128-bit identity. */
extern uint64_t slice_hash_secret;

/* Draws the secret from the kernel's random pool. Call it once, at start, before any table
 * holds a hash: tables keep the hashes they were given. Returns 0, or -errno when the pool had
 * nothing to give (early boot): the secret is then made of a stack address and the clocks. */
int slice_hash_randomize(void);

/* 64-bit hash of the bytes, seeded (and keyed by slice_hash_secret); not cryptographic, only
 * for in-process tables. */
uint64_t slice_hash(struct slice s, uint64_t seed);

/* The same kind of hash for inputs of hundreds of bytes (packet payloads): four lanes take 32
 * bytes a step, so that their multiplies overlap instead of waiting on each other; the rest
 * and the length go through slice_hash. Not equal to slice_hash of the same bytes. */
uint64_t slice_hash_wide(struct slice s, uint64_t seed);

/* Two independent 64-bit hashes of the bytes in one pass: out[0] and out[1] are as unrelated as
 * two seeds of slice_hash, for keys identified by 128 bits without keeping them. */
void slice_hash2(struct slice s, uint64_t out[2]);

/* The same two lanes over several byte views in turn, for composite keys (a transaction's Via
 * sent-by and branch, a call's Call-ID and tag): one pass and one finish for the whole key
 * instead of a finished hash per part folded together. Each part's length goes in with it, so
 * the parts ("ab", "c") and ("a", "bc") make different keys. A state can be copied to branch
 * off keys that share their first parts. slice_hash2(s) is hash2_start(0), hash2_add(s),
 * hash2_finish.
 *
 * A part's length is XORed into the lanes before its words, as n in one and n << 1 in the
 * other: crafted parts can cancel a length change in one lane (its output alone is then equal
 * for different keys) but never in both. Identify keys by both outputs, as the tables do
 * (hash and check); a 32-bit name of a key takes bits of both. */
struct hash2 {
    uint64_t a, b;
};

static inline struct hash2 hash2_start(uint64_t seed)
{
    seed ^= slice_hash_secret;
    return (struct hash2){0xa0761d6478bd642fULL ^ seed, 0x8ebc6af09c88c6e3ULL ^ (seed << 1)};
}

void hash2_add(struct hash2 *h, struct slice s);
void hash2_add_u64(struct hash2 *h, uint64_t v);
/* The key: the table hash (the first lane) and its check (the second). */
void hash2_finish(const struct hash2 *h, uint64_t *hash, uint64_t *check);

/* Folds another 64-bit value into a running hash (for composite keys). */
static inline uint64_t hash_mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 29;
    return h;
}

#endif
