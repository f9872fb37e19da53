/* classify: ordered header-value rules compiled into radix tries, a bigram-indexed substring
 * table and a list of general globs. Rules are only ever appended. */
#include "classify.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slice.h"

#define NONE UINT32_MAX
#define BIGRAMS 4096
/* Work units (classify_cost): a byte compared is one; trying a contains pattern or a glob
 * segment at a place of the value costs STEP_COST more (measured: about 4 ns a try, whatever
 * its bytes, with a one-byte pattern). The four trie walks stop at the longest pattern. */
#define STEP_COST 4
#define TRIE_COST (4 * CLASSIFY_MAX_PATTERN)

/* Exact, prefix and suffix rules live in path-compressed byte tries (radix trees): a node is
 * reached through an edge keyed by (parent, first byte) and carries the rest of its edge's
 * bytes as a segment, so a walk costs one edge probe per branching point and a memcmp-like
 * loop over the bytes in between. A node remembers the lowest rule ending there (prefix rules,
 * or suffix rules in a reversed trie, match any value that gets that far; exact rules only a
 * value that ends there) and the lowest rule in its whole subtree, which stops a walk as soon
 * as nothing below could beat the best match found so far. */
struct tnode {
    uint32_t prefix_rule, exact_rule;
    uint32_t sub_min;
    uint32_t seg_off, seg_len; /* the edge's bytes in walk order, in the trie's segment arena */
};

/* Edges live in one open-addressing table keyed by (parent node, byte): no per-node child
 * arrays, and a probe costs one multiply and usually one load. */
struct edge {
    uint32_t key;   /* parent << 8 | first byte of the child's segment */
    uint32_t child; /* 0: empty slot (the root is nobody's child) */
};

struct trie {
    struct tnode *nodes;
    struct edge *edges;
    uint8_t *seg;
    uint32_t nnodes, node_cap;
    uint32_t nedges, edge_bits; /* table of 2^edge_bits slots, at most half full */
    uint32_t seg_len, seg_cap;
    uint32_t min_rule; /* the root's sub_min, NONE while empty */
};

/* Tries by direction and case: [reverse * 2 + nocase]. */
enum { FWD_CASE, FWD_NOCASE, REV_CASE, REV_NOCASE, NTRIES };

struct contains {
    uint32_t rule, next; /* next entry of the same index chain, in rule order */
    uint32_t off;        /* pattern bytes in the arena, folded when nocase */
    uint16_t len;
    uint8_t nocase;
};

/* A general glob: len elements of two arena bytes each (op, literal byte). Its stars cut it
 * into segments of literals and '?': the head (before the first star) is anchored at the value's
 * start, the tail (after the last star) at its end, and each segment between stars is found at
 * its leftmost place after the one before: with no character classes, leftmost is never worse. */
enum { OP_LIT, OP_ANY, OP_STAR };

struct glob {
    uint32_t rule, off;
    uint16_t len, min_len; /* elements; bytes a value needs at least (non-star elements) */
    uint16_t head, tail;   /* elements before the first star and after the last (len: none) */
    uint8_t nocase;
};

/* A value classify_lookup_memo saw, with its result (len MEMO_EMPTY: unused). */
struct memo_entry {
    uint64_t hash;
    uint32_t len;
    int32_t result;
    uint8_t bytes[CLASSIFY_MEMO_BYTES];
};
#define MEMO_EMPTY UINT32_MAX

struct classify {
    struct memo_entry memo[CLASSIFY_MEMO_ENTRIES]; /* direct-mapped by hash */
    int32_t *classes; /* class of each rule, by rule number */
    uint32_t nrules, max_rules;
    /* Worst-case work of a lookup (see classify_cost): the longest chain of each contains index
     * in pattern bytes, and the globs' share. */
    uint32_t chain1_max, chain2_max;
    uint64_t glob_cost;
    struct trie tries[NTRIES];
    uint8_t *arena;
    uint32_t arena_len, arena_cap;
    struct contains *cont;
    uint32_t ncont, cont_cap, cont_min;
    bool has_single;         /* some contains pattern is one byte long */
    uint32_t head1[256];     /* one-byte patterns by folded byte */
    uint32_t head2[BIGRAMS]; /* longer patterns by hashed folded first two bytes */
    /* Raw bytes and byte pairs that can start a pattern (every case variant of a nocase one):
     * the scan tests one bit per input byte and consults a chain only on a hit. */
    uint64_t filter1[256 / 64];
    uint64_t filter2[65536 / 64];
    struct glob *globs;
    uint32_t nglobs, glob_cap;
};

static inline uint8_t fold(uint8_t b)
{
    return (uint8_t)((unsigned)b - 'A' < 26u ? b + 32 : b);
}

static inline uint32_t bigram(uint8_t a, uint8_t b)
{
    /* Only the chain index: a collision costs one more chain entry to check, never a miss. */
    return ((uint32_t)a * 31 + b) & (BIGRAMS - 1);
}

static inline uint32_t min_u32(uint32_t a, uint32_t b)
{
    return a < b ? a : b;
}

/* Grows *arr (elements of size elem) to hold at least `need`; capacity doubles. */
static int reserve(void **arr, uint32_t *cap, uint64_t need, size_t elem)
{
    uint64_t n = *cap ? *cap : 16;
    void *p;

    if (need <= *cap)
        return 0;
    while (n < need)
        n *= 2;
    if (n > UINT32_MAX)
        return -ENOMEM;
    p = realloc(*arr, (size_t)n * elem);
    if (!p)
        return -ENOMEM;
    *arr = p;
    *cap = (uint32_t)n;
    return 0;
}

static void memo_reset(struct classify *c)
{
    for (size_t i = 0; i < CLASSIFY_MEMO_ENTRIES; i++)
        c->memo[i].len = MEMO_EMPTY;
}

struct classify *classify_new(uint32_t max_rules)
{
    struct classify *c;

    if (max_rules == 0 || max_rules > CLASSIFY_MAX_RULES)
        return NULL;
    c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->classes = calloc(max_rules, sizeof(*c->classes));
    if (!c->classes) {
        free(c);
        return NULL;
    }
    c->max_rules = max_rules;
    for (int i = 0; i < NTRIES; i++)
        c->tries[i].min_rule = NONE;
    c->cont_min = NONE;
    memset(c->head1, 0xff, sizeof c->head1);
    memset(c->head2, 0xff, sizeof c->head2);
    memo_reset(c);
    return c;
}

void classify_free(struct classify *c)
{
    if (!c)
        return;
    for (int i = 0; i < NTRIES; i++) {
        free(c->tries[i].nodes);
        free(c->tries[i].edges);
        free(c->tries[i].seg);
    }
    free(c->classes);
    free(c->arena);
    free(c->cont);
    free(c->globs);
    free(c);
}

static inline uint32_t edge_hash(uint32_t key, uint32_t bits)
{
    return (key * 2654435761u) >> (32 - bits);
}

/* The slot holding key, or the empty slot where it would go. */
static inline struct edge *edge_slot(const struct trie *t, uint32_t key)
{
    uint32_t mask = (1u << t->edge_bits) - 1;

    for (uint32_t i = edge_hash(key, t->edge_bits);; i = (i + 1) & mask) {
        struct edge *e = &t->edges[i];
        if (e->child == 0 || e->key == key)
            return e;
    }
}

static inline uint32_t trie_child(const struct trie *t, uint32_t node, uint8_t b)
{
    return edge_slot(t, node << 8 | b)->child;
}

/* Makes room for one pattern of len bytes: at most one split node and one leaf (plus the root
 * the first time), two edges, len segment bytes. Nothing moves during the insert after this. */
static int trie_reserve(struct trie *t, size_t len)
{
    uint32_t bits = t->edge_bits ? t->edge_bits : 4;
    struct edge *edges, *old = t->edges;
    uint32_t old_size = t->edge_bits ? 1u << t->edge_bits : 0;
    int rc;

    rc = reserve((void **)&t->nodes, &t->node_cap, (uint64_t)t->nnodes + 3, sizeof(*t->nodes));
    if (!rc)
        rc = reserve((void **)&t->seg, &t->seg_cap, (uint64_t)t->seg_len + len, 1);
    if (rc)
        return rc;
    while (((uint64_t)t->nedges + 2) * 2 > (1ull << bits))
        bits++;
    if (bits == t->edge_bits)
        return 0;
    edges = calloc((size_t)1 << bits, sizeof(*edges));
    if (!edges)
        return -ENOMEM;
    t->edges = edges;
    t->edge_bits = bits;
    for (uint32_t i = 0; i < old_size; i++)
        if (old[i].child)
            *edge_slot(t, old[i].key) = old[i];
    free(old);
    return 0;
}

static uint32_t trie_node(struct trie *t, uint32_t seg_off, uint32_t seg_len, uint32_t sub_min)
{
    t->nodes[t->nnodes] = (struct tnode){NONE, NONE, sub_min, seg_off, seg_len};
    return t->nnodes++;
}

/* Inserts pattern q (in walk order: reversed for a suffix trie, folded for a nocase one).
 * Room was reserved. */
static void trie_insert(struct trie *t, const uint8_t *q, size_t m, bool exact, uint32_t rule)
{
    uint32_t node = 0;
    size_t i = 0;

    if (t->nnodes == 0)
        trie_node(t, 0, 0, NONE);
    t->nodes[0].sub_min = min_u32(t->nodes[0].sub_min, rule);
    while (i < m) {
        struct edge *e = edge_slot(t, node << 8 | q[i]);
        if (e->child == 0) {
            /* A new leaf carries the whole rest of the pattern. */
            *e = (struct edge){node << 8 | q[i], trie_node(t, t->seg_len, (uint32_t)(m - i), rule)};
            t->nedges++;
            memcpy(t->seg + t->seg_len, q + i, m - i);
            t->seg_len += (uint32_t)(m - i);
            node = e->child;
            break;
        }
        uint32_t child = e->child;
        struct tnode *cn = &t->nodes[child];
        size_t k = 1;
        while (k < cn->seg_len && i + k < m && t->seg[cn->seg_off + k] == q[i + k])
            k++;
        if (k < cn->seg_len) {
            /* Split: a new node takes the common bytes; the old one keeps the rest, its rules
             * and its children (whose edges are keyed by its number, which does not change). */
            uint32_t up = trie_node(t, cn->seg_off, (uint32_t)k, cn->sub_min);
            cn->seg_off += (uint32_t)k;
            cn->seg_len -= (uint32_t)k;
            e->child = up;
            *edge_slot(t, up << 8 | t->seg[cn->seg_off]) =
                (struct edge){up << 8 | t->seg[cn->seg_off], child};
            t->nedges++;
            child = up;
        }
        node = child;
        i += k;
        t->nodes[node].sub_min = min_u32(t->nodes[node].sub_min, rule);
    }
    if (exact)
        t->nodes[node].exact_rule = min_u32(t->nodes[node].exact_rule, rule);
    else
        t->nodes[node].prefix_rule = min_u32(t->nodes[node].prefix_rule, rule);
    t->min_rule = t->nodes[0].sub_min;
}

static int add_trie(struct classify *c, enum classify_kind kind, const uint8_t *p, size_t len,
                    bool nocase)
{
    bool reverse = kind == CLASSIFY_SUFFIX;
    struct trie *t = &c->tries[reverse * 2 + nocase];
    uint8_t rev[CLASSIFY_MAX_PATTERN];
    int rc = trie_reserve(t, len);

    if (rc)
        return rc;
    if (reverse) {
        for (size_t i = 0; i < len; i++)
            rev[i] = p[len - 1 - i];
        p = rev;
    }
    trie_insert(t, p, len, kind == CLASSIFY_EXACT, c->nrules);
    return 0;
}

static void filter_set(uint64_t *bits, uint32_t i)
{
    bits[i / 64] |= 1ull << (i % 64);
}

static inline bool filter_has(const uint64_t *bits, uint32_t i)
{
    return (bits[i / 64] >> (i % 64)) & 1;
}

/* The raw bytes a pattern byte stands for: itself, and its capital for a folded letter. */
static int variants(uint8_t b, bool nocase, uint8_t out[2])
{
    out[0] = b;
    if (nocase && b >= 'a' && b <= 'z') {
        out[1] = (uint8_t)(b - 32);
        return 2;
    }
    return 1;
}

/* The worst-case work of a lookup with these contains chain maxima and glob share. The scan of
 * a (cut) value tests each of its bytes in each of the two indexes and, at every place, may
 * walk the longest chain of each, comparing every pattern in it in full. */
static uint64_t cost_of(uint32_t chain1, uint32_t chain2, uint64_t globs)
{
    return TRIE_COST + (uint64_t)CLASSIFY_MAX_VALUE * (2 + chain1 + chain2) + globs;
}

/* The work of walking the chain at *head with a pattern of len bytes added to it: what a
 * lookup may do at one place of the value. */
static uint32_t chain_cost(const struct classify *c, const uint32_t *head, size_t len)
{
    uint32_t sum = (uint32_t)len + STEP_COST;

    for (uint32_t e = *head; e != NONE; e = c->cont[e].next)
        sum += c->cont[e].len + STEP_COST;
    return sum;
}

/* *cost: the lookup's worst case had the rule been added, when it is refused (-E2BIG). */
static int add_contains(struct classify *c, const uint8_t *p, size_t len, bool nocase,
                        uint64_t *cost)
{
    uint8_t v0[2], v1[2];
    int n0, n1;
    uint32_t *head, e, chain;
    int rc;

    if (len == 0) /* matches everything: the same as an empty prefix */
        return add_trie(c, CLASSIFY_PREFIX, p, 0, false);
    head = len == 1 ? &c->head1[fold(p[0])] : &c->head2[bigram(fold(p[0]), fold(p[1]))];
    chain = chain_cost(c, head, len);
    *cost =
        len == 1
            ? cost_of(chain > c->chain1_max ? chain : c->chain1_max, c->chain2_max, c->glob_cost)
            : cost_of(c->chain1_max, chain > c->chain2_max ? chain : c->chain2_max, c->glob_cost);
    if (*cost > CLASSIFY_MAX_COST)
        return -E2BIG;
    rc = reserve((void **)&c->cont, &c->cont_cap, (uint64_t)c->ncont + 1, sizeof(*c->cont));
    if (!rc)
        rc = reserve((void **)&c->arena, &c->arena_cap, (uint64_t)c->arena_len + len, 1);
    if (rc)
        return rc;
    e = c->ncont++;
    c->cont[e] = (struct contains){c->nrules, NONE, c->arena_len, (uint16_t)len, nocase};
    memcpy(c->arena + c->arena_len, p, len);
    c->arena_len += (uint32_t)len;
    n0 = variants(p[0], nocase, v0);
    if (len == 1) {
        c->has_single = true;
        c->chain1_max = chain > c->chain1_max ? chain : c->chain1_max;
        for (int i = 0; i < n0; i++)
            filter_set(c->filter1, v0[i]);
    } else {
        c->chain2_max = chain > c->chain2_max ? chain : c->chain2_max;
        n1 = variants(p[1], nocase, v1);
        for (int i = 0; i < n0; i++)
            for (int j = 0; j < n1; j++)
                filter_set(c->filter2, (uint32_t)v0[i] << 8 | v1[j]);
    }
    /* Appended at the tail, so each chain is in rule order and a scan stops at the first hit. */
    while (*head != NONE)
        head = &c->cont[*head].next;
    *head = e;
    c->cont_min = min_u32(c->cont_min, c->nrules);
    return 0;
}

/* Compiles glob text into elements (op[i], lit[i]); returns the element count or -EINVAL. */
static int glob_parse(const uint8_t *raw, size_t len, bool nocase, uint8_t *op, uint8_t *lit)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        uint8_t b = raw[i];
        if (b == '*' && n > 0 && op[n - 1] == OP_STAR)
            continue; /* "**" is "*" */
        lit[n] = 0;
        if (b == '*') {
            op[n++] = OP_STAR;
        } else if (b == '?') {
            op[n++] = OP_ANY;
        } else {
            if (b == '\\') {
                if (++i == len)
                    return -EINVAL;
                b = raw[i];
            }
            op[n] = OP_LIT;
            lit[n++] = nocase ? fold(b) : b;
        }
    }
    return (int)n;
}

static int add_glob(struct classify *c, const uint8_t *raw, size_t len, bool nocase, uint64_t *cost)
{
    uint8_t op[CLASSIFY_MAX_PATTERN], lit[CLASSIFY_MAX_PATTERN];
    int n = glob_parse(raw, len, nocase, op, lit);
    int stars = 0, any = 0, head = -1, tail = 0, seg = 0, mid = 0, rc;
    uint16_t min_len = 0;
    uint64_t own;

    if (n < 0)
        return n;
    for (int i = 0; i < n; i++) {
        stars += op[i] == OP_STAR;
        any += op[i] == OP_ANY;
        if (op[i] != OP_STAR) {
            seg++;
            continue;
        }
        /* A segment between two stars is the only kind searched for (glob_match). */
        if (head < 0)
            head = seg;
        else if (seg > mid)
            mid = seg;
        seg = 0;
    }
    tail = head < 0 ? n : seg;
    head = head < 0 ? n : head;
    min_len = (uint16_t)(n - stars);
    /* Globs that are another kind in disguise go to that kind's index. */
    if (!any) {
        bool lead = n > 0 && op[0] == OP_STAR, trail = n > 0 && op[n - 1] == OP_STAR;
        if (stars == 0)
            return add_trie(c, CLASSIFY_EXACT, lit, (size_t)n, nocase);
        if (stars == 1 && n == 1)
            return add_trie(c, CLASSIFY_PREFIX, lit, 0, false);
        if (stars == 1 && trail)
            return add_trie(c, CLASSIFY_PREFIX, lit, (size_t)n - 1, nocase);
        if (stars == 1 && lead)
            return add_trie(c, CLASSIFY_SUFFIX, lit + 1, (size_t)n - 1, nocase);
        if (stars == 2 && lead && trail)
            return add_contains(c, lit + 1, (size_t)n - 2, nocase, cost);
    }
    /* The segments between stars are tried at CLASSIFY_MAX_VALUE places at most, together,
     * each try costing its segment's length and a step; the head and the tail are compared
     * once. */
    own = (mid ? (uint64_t)CLASSIFY_MAX_VALUE * (uint64_t)(mid + STEP_COST) : 0) + (uint64_t)n;
    *cost = cost_of(c->chain1_max, c->chain2_max, c->glob_cost + own);
    if (*cost > CLASSIFY_MAX_COST)
        return -E2BIG;
    rc = reserve((void **)&c->globs, &c->glob_cap, (uint64_t)c->nglobs + 1, sizeof(*c->globs));
    if (!rc)
        rc = reserve((void **)&c->arena, &c->arena_cap, (uint64_t)c->arena_len + 2 * n, 1);
    if (rc)
        return rc;
    c->glob_cost += own;
    c->globs[c->nglobs++] = (struct glob){.rule = c->nrules,
                                          .off = c->arena_len,
                                          .len = (uint16_t)n,
                                          .min_len = min_len,
                                          .head = (uint16_t)head,
                                          .tail = (uint16_t)tail,
                                          .nocase = nocase};
    for (int i = 0; i < n; i++) {
        c->arena[c->arena_len++] = op[i];
        c->arena[c->arena_len++] = lit[i];
    }
    return 0;
}

int classify_add(struct classify *c, enum classify_kind kind, const char *pattern, size_t len,
                 unsigned flags, int32_t class_id, char *err, size_t errlen)
{
    /* Zeroed: GCC with a profile cannot see that only len bytes are read back. */
    uint8_t folded[CLASSIFY_MAX_PATTERN] = {0};
    const uint8_t *p = (const uint8_t *)pattern;
    bool nocase = flags & CLASSIFY_NOCASE;
    uint64_t cost = 0;
    int rc;

    if (errlen)
        err[0] = '\0';
    if ((unsigned)kind > CLASSIFY_GLOB || (flags & ~CLASSIFY_NOCASE)) {
        snprintf(err, errlen, "unknown rule kind %d or flags %#x", (int)kind, flags);
        return -EINVAL;
    }
    if (class_id < 0) {
        snprintf(err, errlen, "class %d: classes are 0 or more", (int)class_id);
        return -EINVAL;
    }
    if (len > CLASSIFY_MAX_PATTERN) {
        snprintf(err, errlen, "pattern \"%.32s...\" is %zu bytes, more than %d", pattern, len,
                 CLASSIFY_MAX_PATTERN);
        return -EINVAL;
    }
    if (c->nrules >= c->max_rules) {
        snprintf(err, errlen, "pattern \"%.*s\": the classifier is full (%u rules)", (int)len,
                 pattern, c->max_rules);
        return -ENOSPC;
    }
    if (nocase && kind != CLASSIFY_GLOB) {
        for (size_t i = 0; i < len; i++)
            folded[i] = fold(p[i]);
        p = folded;
    }
    switch (kind) {
    case CLASSIFY_EXACT:
    case CLASSIFY_PREFIX:
    case CLASSIFY_SUFFIX:
        /* An empty pattern has no case: keep it in the case-sensitive trie. */
        rc = add_trie(c, kind, p, len, len ? nocase : false);
        break;
    case CLASSIFY_CONTAINS:
        rc = add_contains(c, p, len, nocase, &cost);
        break;
    default:
        rc = add_glob(c, p, len, nocase, &cost);
        break;
    }
    if (rc == -EINVAL)
        snprintf(err, errlen, "glob \"%.*s\": trailing '\\' escapes nothing", (int)len, pattern);
    else if (rc == -E2BIG)
        snprintf(err, errlen,
                 "pattern \"%.*s%s\": with it a lookup's worst case would be %llu steps, more "
                 "than %d (use fewer contains patterns that start with the same two bytes, or "
                 "shorter runs between a glob's stars)",
                 len > 40 ? 40 : (int)len, pattern, len > 40 ? "..." : "", (unsigned long long)cost,
                 CLASSIFY_MAX_COST);
    else if (rc)
        snprintf(err, errlen, "pattern \"%.*s\": out of memory", (int)len, pattern);
    if (rc)
        return rc;
    c->classes[c->nrules++] = class_id;
    memo_reset(c); /* results may change with the new rule */
    return 0;
}

/* Whether the n bytes of the value at walk positions pos .. pos + n - 1 equal seg. */
static inline bool seg_eq(const uint8_t *p, size_t len, size_t pos, const uint8_t *seg, size_t n,
                          bool reverse, bool nocase)
{
    if (!reverse && !nocase)
        return memcmp(p + pos, seg, n) == 0;
    for (size_t k = 0; k < n; k++) {
        uint8_t b = reverse ? p[len - 1 - pos - k] : p[pos + k];
        if ((nocase ? fold(b) : b) != seg[k])
            return false;
    }
    return true;
}

/* Lowest rule of trie t matching the value, or best if none is lower. Inlined per trie so that
 * reverse and nocase are constants. */
static inline uint32_t trie_walk(const struct trie *t, const uint8_t *p, size_t len, bool reverse,
                                 bool nocase, uint32_t best)
{
    uint32_t node = 0;
    size_t pos = 0;

    if (t->min_rule >= best)
        return best;
    best = min_u32(best, t->nodes[0].prefix_rule);
    while (pos < len) {
        uint8_t b = reverse ? p[len - 1 - pos] : p[pos];
        uint32_t child = trie_child(t, node, nocase ? fold(b) : b);
        if (!child)
            return best;
        const struct tnode *cn = &t->nodes[child];
        if (cn->sub_min >= best || cn->seg_len > len - pos ||
            !seg_eq(p, len, pos + 1, t->seg + cn->seg_off + 1, cn->seg_len - 1, reverse, nocase))
            return best;
        pos += cn->seg_len;
        node = child;
        best = min_u32(best, cn->prefix_rule);
    }
    return min_u32(best, t->nodes[node].exact_rule);
}

static inline bool bytes_match(const uint8_t *s, const uint8_t *pat, size_t n, bool nocase)
{
    size_t i = 0;
    uint64_t a, b;

    if (!nocase)
        return memcmp(s, pat, n) == 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&a, s + i, 8);
        memcpy(&b, pat + i, 8);
        if (slice_lower8(a) != b) /* fold() on eight bytes at once */
            return false;
    }
    for (; i < n; i++)
        if (fold(s[i]) != pat[i])
            return false;
    return true;
}

/* Lowest contains rule starting at value offset i below best (chains are in rule order). */
/* Kept out of line: the scan loop around it stays small enough to live in registers. */
static __attribute__((noinline)) uint32_t chain_match(const struct classify *c, uint32_t e,
                                                      const uint8_t *p, size_t len, size_t i,
                                                      uint32_t best)
{
    for (; e != NONE && c->cont[e].rule < best; e = c->cont[e].next) {
        const struct contains *ce = &c->cont[e];
        if (ce->len <= len - i && bytes_match(p + i, c->arena + ce->off, ce->len, ce->nocase))
            return ce->rule;
    }
    return best;
}

static uint32_t contains_scan(const struct classify *c, const uint8_t *p, size_t len, uint32_t best)
{
    const uint64_t *f2 = c->filter2;

    if (c->has_single) {
        for (size_t i = 0; i < len && c->cont_min < best; i++)
            if (filter_has(c->filter1, p[i]))
                best = chain_match(c, c->head1[fold(p[i])], p, len, i, best);
    }
    if (len < 2)
        return best;
    /* The hot loop: one bit test per byte pair, each pair loaded afresh so that iterations do
     * not depend on each other. */
    for (size_t i = 0; i + 1 < len && c->cont_min < best; i++)
        if (filter_has(f2, (uint32_t)p[i] << 8 | p[i + 1]))
            best = chain_match(c, c->head2[bigram(fold(p[i]), fold(p[i + 1]))], p, len, i, best);
    return best;
}

/* First position >= si where the value has byte b (already folded when nocase), or len. For a
 * nocase letter, two memchr: the second only up to where the first found one. */
static inline size_t find_byte(const uint8_t *s, size_t si, size_t len, uint8_t b, bool nocase)
{
    const uint8_t *q, *u;

    if (si >= len)
        return len;
    q = memchr(s + si, b, len - si);
    if (nocase && b >= 'a' && b <= 'z') {
        size_t end = q ? (size_t)(q - s) : len;
        u = end > si ? memchr(s + si, b - 32, end - si) : NULL;
        if (u)
            q = u;
    }
    return q ? (size_t)(q - s) : len;
}

/* Whether the m elements at el (no star among them) match the m bytes at s. */
static inline bool seg_match(const uint8_t *el, size_t m, const uint8_t *s, bool nocase)
{
    for (size_t k = 0; k < m; k++) {
        uint8_t b = nocase ? fold(s[k]) : s[k];
        if (el[2 * k] == OP_LIT && el[2 * k + 1] != b)
            return false;
    }
    return true;
}

/* The head at the start, the tail at the end, then each segment between stars at its leftmost
 * place after the previous one (an earlier place never leaves less for the rest). A segment
 * that starts with a literal is looked for with memchr first. The places tried for all the
 * segments together are at most len, so the work is at most len times the longest segment
 * between two stars, plus the head and the tail: linear in the value for a given glob. */
static bool glob_match(const struct glob *g, const uint8_t *el, const uint8_t *s, size_t len)
{
    size_t n = g->len, pos = g->head, end, i;
    bool nocase = g->nocase;

    if (len < g->min_len)
        return false;
    if (g->head == n) /* no star */
        return len == n && seg_match(el, n, s, nocase);
    if (!seg_match(el + 2 * (n - g->tail), g->tail, s + len - g->tail, nocase) ||
        !seg_match(el, g->head, s, nocase))
        return false;
    end = len - g->tail; /* min_len keeps the head and the tail apart */
    for (i = g->head + 1; i < n - g->tail; i++) {
        size_t m = 0, at = pos;
        const uint8_t *seg = el + 2 * i;
        while (i + m < n && seg[2 * m] != OP_STAR)
            m++;
        for (;; at++) {
            if (m && seg[0] == OP_LIT)
                at = find_byte(s, at, end, seg[1], nocase);
            if (at + m > end)
                return false;
            if (seg_match(seg, m, s + at, nocase))
                break;
        }
        pos = at + m;
        i += m; /* to the star after the segment */
    }
    return true;
}

int32_t classify_lookup(const struct classify *c, const char *value, size_t len)
{
    const uint8_t *p = (const uint8_t *)value;
    uint32_t best = NONE;

    if (len > CLASSIFY_MAX_VALUE)
        len = CLASSIFY_MAX_VALUE;

    best = trie_walk(&c->tries[FWD_CASE], p, len, false, false, best);
    best = trie_walk(&c->tries[FWD_NOCASE], p, len, false, true, best);
    best = trie_walk(&c->tries[REV_CASE], p, len, true, false, best);
    best = trie_walk(&c->tries[REV_NOCASE], p, len, true, true, best);
    if (c->cont_min < best)
        best = contains_scan(c, p, len, best);
    /* Globs are in rule order: the first that matches is the last one worth trying. */
    for (uint32_t i = 0; i < c->nglobs && c->globs[i].rule < best; i++) {
        const struct glob *g = &c->globs[i];
        if (glob_match(g, c->arena + g->off, p, len)) {
            best = g->rule;
            break;
        }
    }
    return best == NONE ? -1 : c->classes[best];
}

/* A hash of the value's length and bytes (at most CLASSIFY_MEMO_BYTES), eight at a time. */
static uint64_t memo_hash(const uint8_t *p, size_t len)
{
    uint64_t h = (uint64_t)len * 0x9e3779b97f4a7c15ull, w;
    size_t i = 0;

    for (; i + 8 <= len; i += 8) {
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    if (i < len) {
        w = 0;
        memcpy(&w, p + i, len - i);
        h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
        h ^= h >> 32;
    }
    return h;
}

int32_t classify_lookup_memo(struct classify *c, const char *value, size_t len)
{
    const uint8_t *p = (const uint8_t *)value;
    struct memo_entry *m;
    uint64_t h;

    if (len > CLASSIFY_MEMO_BYTES)
        return classify_lookup(c, value, len);
    h = memo_hash(p, len);
    m = &c->memo[h % CLASSIFY_MEMO_ENTRIES];
    if (m->len == len && m->hash == h && memcmp(m->bytes, p, len) == 0)
        return m->result;
    m->result = classify_lookup(c, value, len);
    m->hash = h;
    m->len = (uint32_t)len;
    memcpy(m->bytes, p, len);
    return m->result;
}

int classify_kind_parse(const char *name, size_t len)
{
    static const char *const names[] = {"exact", "prefix", "suffix", "contains", "glob"};

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0)
            return (int)i;
    return -EINVAL;
}

uint32_t classify_count(const struct classify *c)
{
    return c->nrules;
}

uint64_t classify_cost(const struct classify *c)
{
    return cost_of(c->chain1_max, c->chain2_max, c->glob_cost);
}
