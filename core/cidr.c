/* cidr: longest-prefix match over a multibit trie with leaf pushing (16-bit root, 4-bit levels).
 * Building is incremental; there is no removal. */
#include "cidr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define ROOT_BITS 16
#define ROOT_SLOTS (1u << ROOT_BITS)
#define LEVEL_BITS 4
#define LEVEL_SLOTS (1u << LEVEL_BITS)
#define MAX_SLOTS (1u << 30) /* a power of two, so capacities stay multiples of 32 */
#define CHILD 0x80000000u    /* slot word: child node offset; otherwise value + 1, 0 for none */

/* One trie per family. A slot word is either CHILD | offset of a 16-slot child node, or the
 * value + 1 of the longest prefix covering the slot's address range (0: none). Leaf pushing
 * keeps that true below every slot, so a lookup stops at the first non-child word.
 * lens[i] is the length of the prefix whose value slot i holds, so that a later, shorter
 * prefix never overwrites a longer one. marks has two bits per slot, which is exactly one bit
 * per prefix that can end in a node (2^(s+1) - 1 of them for a node of 2^s slots): it tells
 * whether that exact prefix was added, which the slot words cannot (longer prefixes may
 * shadow all of its slots). */
struct trie {
    uint32_t *slots; /* 64-byte aligned, so each 16-slot node is one cache line */
    uint8_t *lens;
    uint64_t *marks;
    uint32_t used, cap; /* slots */
};

struct cidr {
    struct trie v4, v6;
    uint32_t count, max;
};

static unsigned level_base(unsigned k)
{
    return k == 0 ? 0 : ROOT_BITS + LEVEL_BITS * (k - 1);
}

static unsigned level_stride(unsigned k)
{
    return k == 0 ? ROOT_BITS : LEVEL_BITS;
}

/* The level whose node holds a prefix of length plen: lengths base+1 .. base+stride (and /0 in
 * the root). */
static unsigned level_of(unsigned plen)
{
    return plen <= ROOT_BITS ? 0 : (plen - ROOT_BITS + LEVEL_BITS - 1) / LEVEL_BITS;
}

/* Bits [pos, pos + stride) of a big-endian address, for the geometry above. */
static uint32_t addr_bits(const uint8_t *a, unsigned pos, unsigned stride)
{
    if (stride == ROOT_BITS)
        return (uint32_t)a[0] << 8 | a[1];
    return (a[pos >> 3] >> (4 - (pos & 4))) & 15;
}

struct cidr *cidr_new(uint32_t max_prefixes)
{
    struct cidr *set;

    if (max_prefixes == 0 || max_prefixes > CIDR_MAX_PREFIXES)
        return NULL;
    set = calloc(1, sizeof(*set));
    if (set)
        set->max = max_prefixes;
    return set;
}

static void trie_fini(struct trie *t)
{
    free(t->slots);
    free(t->lens);
    free(t->marks);
}

void cidr_free(struct cidr *set)
{
    if (!set)
        return;
    trie_fini(&set->v4);
    trie_fini(&set->v6);
    free(set);
}

/* Makes room for `more` slots. The arrays are replaced, never shrunk; offsets stay valid. */
static int trie_reserve(struct trie *t, uint32_t more)
{
    uint64_t want = (uint64_t)t->used + more;
    uint32_t cap = t->cap ? t->cap : ROOT_SLOTS;
    uint32_t *slots;
    uint8_t *lens;
    uint64_t *marks;

    if (want <= t->cap)
        return 0;
    if (want > MAX_SLOTS)
        return -ENOMEM;
    while (cap < want)
        cap *= 2;
    /* The slot array is aligned by hand (posix_memalign has no realloc), copied once per
     * doubling; this only happens while rules load. */
    if (posix_memalign((void **)&slots, 64, (size_t)cap * sizeof(*slots)) != 0)
        return -ENOMEM;
    lens = realloc(t->lens, cap);
    if (!lens) {
        free(slots);
        return -ENOMEM;
    }
    t->lens = lens;
    marks = realloc(t->marks, (size_t)cap / 32 * sizeof(*marks));
    if (!marks) {
        free(slots);
        return -ENOMEM;
    }
    t->marks = marks;
    memset(marks + t->cap / 32, 0, (size_t)(cap - t->cap) / 32 * sizeof(*marks));
    if (t->used)
        memcpy(slots, t->slots, (size_t)t->used * sizeof(*slots));
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return 0;
}

static size_t mark_bit(uint32_t node, unsigned r, uint32_t first, unsigned stride)
{
    return 2 * (size_t)node + ((size_t)1 << r) - 1 + (first >> (stride - r));
}

static bool mark_get(const struct trie *t, size_t bit)
{
    return (t->marks[bit / 64] >> (bit % 64)) & 1;
}

/* Whether exactly this prefix (host bits clear) was added. */
static bool trie_has(const struct trie *t, const uint8_t *a, unsigned plen)
{
    unsigned k = level_of(plen), base = level_base(k), stride = level_stride(k);
    uint32_t node = 0;

    if (!t->slots)
        return false;
    for (unsigned j = 0; j < k; j++) {
        uint32_t e = t->slots[node + addr_bits(a, level_base(j), level_stride(j))];
        if (!(e & CHILD))
            return false;
        node = e & ~CHILD;
    }
    return mark_get(t, mark_bit(node, plen - base, addr_bits(a, base, stride), stride));
}

/* Writes the word of a prefix of length plen into a slot and everything below it that holds a
 * shorter (or the same) prefix. Recursion depth is at most the number of levels (29). */
static void trie_push(struct trie *t, uint32_t slot, uint8_t plen, uint32_t word)
{
    uint32_t e = t->slots[slot];

    if (e & CHILD) {
        for (uint32_t i = 0; i < LEVEL_SLOTS; i++)
            trie_push(t, (e & ~CHILD) + i, plen, word);
    } else if (t->lens[slot] <= plen) {
        t->slots[slot] = word;
        t->lens[slot] = plen;
    }
}

/* Inserts after the checks; room for the root and k nodes is reserved by the caller. */
static void trie_insert(struct trie *t, const uint8_t *a, unsigned plen, int32_t value)
{
    unsigned k = level_of(plen), base = level_base(k), stride = level_stride(k);
    unsigned r = plen - base;
    uint32_t node = 0, first, span;
    size_t bit;

    if (t->used == 0) {
        memset(t->slots, 0, ROOT_SLOTS * sizeof(*t->slots));
        memset(t->lens, 0, ROOT_SLOTS);
        t->used = ROOT_SLOTS;
    }
    for (unsigned j = 0; j < k; j++) {
        uint32_t idx = node + addr_bits(a, level_base(j), level_stride(j));
        uint32_t e = t->slots[idx];
        if (!(e & CHILD)) {
            /* The new node inherits the slot's prefix in all its slots (leaf pushing). */
            uint32_t c = t->used;
            t->used += LEVEL_SLOTS;
            for (uint32_t i = 0; i < LEVEL_SLOTS; i++) {
                t->slots[c + i] = e;
                t->lens[c + i] = t->lens[idx];
            }
            t->slots[idx] = e = CHILD | c;
        }
        node = e & ~CHILD;
    }
    first = addr_bits(a, base, stride);
    span = 1u << (stride - r);
    for (uint32_t i = 0; i < span; i++)
        trie_push(t, node + first + i, (uint8_t)plen, (uint32_t)value + 1);
    bit = mark_bit(node, r, first, stride);
    t->marks[bit / 64] |= 1ULL << (bit % 64);
}

static bool is_v4_mapped(const uint8_t *a)
{
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(a, prefix, sizeof prefix) == 0;
}

/* Parses an address of at most 45 characters (INET6_ADDRSTRLEN - 1) into a[16]. Returns
 * AF_INET (a[0..3]) or AF_INET6, or 0 when it is neither. */
static int parse_addr(const char *p, size_t len, uint8_t *a)
{
    char buf[INET6_ADDRSTRLEN];

    if (len == 0 || len >= sizeof buf)
        return 0;
    memcpy(buf, p, len);
    buf[len] = '\0';
    if (memchr(buf, ':', len))
        return inet_pton(AF_INET6, buf, a) == 1 ? AF_INET6 : 0;
    return inet_pton(AF_INET, buf, a) == 1 ? AF_INET : 0;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

int cidr_add(struct cidr *set, const char *text, int32_t value, char *err, size_t errlen)
{
    const char *p = text, *end, *slash;
    uint8_t a[16] = {0}, masked[16];
    unsigned plen, bits;
    int family, rc;
    bool exists;
    struct trie *t;

    if (errlen)
        err[0] = '\0';
    if (value < 0 || value > CIDR_VALUE_MAX) {
        snprintf(err, errlen, "value %d out of range 0..%d", (int)value, CIDR_VALUE_MAX);
        return -EINVAL;
    }
    while (is_blank(*p))
        p++;
    end = p + strlen(p);
    while (end > p && is_blank(end[-1]))
        end--;
    slash = memchr(p, '/', (size_t)(end - p));
    family = parse_addr(p, (size_t)((slash ? slash : end) - p), a);
    if (!family) {
        snprintf(err, errlen, "\"%s\": not an IPv4 or IPv6 address", text);
        return -EINVAL;
    }
    bits = family == AF_INET ? 32 : 128;
    plen = bits;
    if (slash) {
        const char *q = slash + 1;
        if (q == end) {
            snprintf(err, errlen, "\"%s\": prefix length missing after '/'", text);
            return -EINVAL;
        }
        plen = 0;
        for (; q < end; q++) {
            if (*q < '0' || *q > '9' || plen > bits) {
                snprintf(err, errlen, "\"%s\": prefix length must be a number 0..%u", text, bits);
                return -EINVAL;
            }
            plen = plen * 10 + (unsigned)(*q - '0');
        }
        if (plen > bits) {
            snprintf(err, errlen, "\"%s\": prefix length must be a number 0..%u", text, bits);
            return -EINVAL;
        }
    }
    memcpy(masked, a, sizeof masked);
    for (unsigned i = 0; i < bits / 8; i++) {
        unsigned keep = plen > i * 8 ? plen - i * 8 : 0;
        if (keep < 8)
            masked[i] &= (uint8_t)(0xff00u >> keep);
    }
    if (memcmp(masked, a, bits / 8) != 0) {
        char net[INET6_ADDRSTRLEN];
        inet_ntop(family, masked, net, sizeof net);
        snprintf(err, errlen, "\"%s\": host bits set after /%u (the network is %s/%u)", text, plen,
                 net, plen);
        return -EINVAL;
    }
    if (family == AF_INET6 && plen >= 96 && is_v4_mapped(a)) {
        memmove(a, a + 12, 4);
        family = AF_INET;
        plen -= 96;
    }
    t = family == AF_INET ? &set->v4 : &set->v6;
    exists = trie_has(t, a, plen);
    if (!exists && set->count >= set->max) {
        snprintf(err, errlen, "\"%s\": the set is full (%u prefixes)", text, set->max);
        return -ENOSPC;
    }
    rc = trie_reserve(t, (t->used ? 0 : ROOT_SLOTS) + level_of(plen) * LEVEL_SLOTS);
    if (rc) {
        snprintf(err, errlen, "\"%s\": out of memory", text);
        return rc;
    }
    set->count += !exists;
    trie_insert(t, a, plen, value);
    return 0;
}

static int32_t lookup4(const struct trie *t, const uint8_t *a)
{
    const uint32_t *s = t->slots;
    uint32_t x = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];
    uint32_t e;

    if (!s)
        return -1;
    e = s[x >> 16];
    /* The last level (bits 28..31) never has children, so the loop ends by shift 0. */
    for (int shift = 12; e & CHILD; shift -= 4)
        e = s[(e & ~CHILD) + ((x >> shift) & 15)];
    return (int32_t)e - 1;
}

static uint64_t load_be64(const uint8_t *a)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | a[i];
    return v;
}

static int32_t lookup6(const struct trie *t, const uint8_t *a)
{
    const uint32_t *s = t->slots;
    uint64_t hi, lo;
    uint32_t e;

    if (!s)
        return -1;
    hi = load_be64(a);
    lo = load_be64(a + 8);
    e = s[hi >> 48];
    for (int shift = 44; (e & CHILD) && shift >= 0; shift -= 4)
        e = s[(e & ~CHILD) + ((hi >> shift) & 15)];
    for (int shift = 60; e & CHILD; shift -= 4)
        e = s[(e & ~CHILD) + ((lo >> shift) & 15)];
    return (int32_t)e - 1;
}

int32_t cidr_lookup(const struct cidr *set, int family, const uint8_t *addr)
{
    if (family == AF_INET)
        return lookup4(&set->v4, addr);
    if (family != AF_INET6)
        return -1;
    if (is_v4_mapped(addr))
        return lookup4(&set->v4, addr + 12);
    return lookup6(&set->v6, addr);
}

int32_t cidr_lookup_text(const struct cidr *set, const char *p, size_t len)
{
    uint8_t a[16];
    int family = parse_addr(p, len, a);

    if (!family)
        return -EINVAL;
    return cidr_lookup(set, family, a);
}

uint32_t cidr_count(const struct cidr *set)
{
    return set->count;
}

static size_t trie_bytes(const struct trie *t)
{
    /* 4 bytes of slot word, 1 of length and 2 bits of marks per slot. */
    return (size_t)t->cap * 4 + t->cap + t->cap / 4;
}

size_t cidr_bytes(const struct cidr *set)
{
    return sizeof(*set) + trie_bytes(&set->v4) + trie_bytes(&set->v6);
}
