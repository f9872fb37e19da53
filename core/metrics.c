/* metrics: symbol interning, families, series storage and lookup, value updates. It formats
 * nothing (expo.c does) and knows no metric by name except its own overflow counter. */
#include "metrics.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "slice.h"

/* Symbols live in fixed-size chunks of entries and their bytes in arena blocks, so neither an
 * id's entry nor its bytes ever move. */
#define SYM_CHUNK_SHIFT 10
#define SYM_CHUNK (1u << SYM_CHUNK_SHIFT)
#define ARENA_BLOCK 65536 /* > METRICS_MAX_SYMBOL_LEN: every value fits in one block */
#define SERIES_CHUNK_MIN 8
#define SERIES_CHUNK_MAX 1024

struct sym {
    const char *p;
    uint32_t len;
    uint32_t hash;
};

struct sym_slot {
    uint32_t hash;
    uint32_t id1; /* id + 1; 0 = empty */
};

struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    char mem[];
};

/* A series is a fixed-size record inside a family's chunk: the value (counter or gauge value,
 * or histogram sum, as double bits), then for histograms n_buckets + 1 non-cumulative counts,
 * then the n_labels symbol ids. */
struct metric_series {
    const struct metric_family *fam;
    uint64_t bits;
    uint64_t data[];
};

struct series_chunk {
    struct series_chunk *next;
    size_t used, cap; /* used grows under the lock; readers walk under it */
    uint64_t mem[];
};

struct series_slot {
    uint64_t hash;
    struct metric_series *s; /* NULL = empty */
};

struct metric_family {
    struct metrics *reg;
    char *name;
    char *help;
    enum metric_type type;
    unsigned flags;
    size_t n_labels;
    char **label_names;
    size_t n_buckets;
    double *buckets;
    size_t series_cap;
    size_t n_series;
    size_t stride;  /* bytes per series record */
    size_t sym_off; /* index in data[] where the symbols start */

    struct series_slot *slots; /* open addressing, linear probing, load <= 1/2 */
    size_t mask;
    struct series_chunk *head, *tail;
    struct metric_series *single;           /* n_labels == 0: the one series */
    struct metric_series *overflow;         /* n_labels > 0: all labels METRICS_OVERFLOW_VALUE */
    uint8_t overflow_used;                  /* relaxed atomic: set by the writer, read by readers */
    struct metric_series *overflow_counter; /* our series in METRICS_OVERFLOW_FAMILY */

    metrics_collect_fn collect; /* non-NULL: a collector, no series */
    void *collect_ctx;
};

struct metrics {
    pthread_mutex_t lock;
    size_t symbol_cap;
    size_t n_user_symbols; /* interned through metrics_intern, bounded by symbol_cap */
    size_t n_symbols;
    struct sym **sym_chunks;
    size_t n_sym_chunks;
    struct sym_slot *sym_slots;
    size_t sym_mask;
    struct arena_block *arena;
    char scratch[3 * METRICS_MAX_SYMBOL_LEN]; /* UTF-8 repair, under the lock */
    uint32_t sym_overflow, sym_symbols;

    struct metric_family **fams;
    size_t n_fams, cap_fams;
    struct metric_family *ovf_family;
    struct metric_series *sym_ovf_counter;

    uint32_t *order, *rank; /* reader-side symbol sort (metrics_symbol_ranks) */
    size_t n_ranked, cap_ranked;
};

/* ---- values ---- */

static inline double load_d(const uint64_t *p)
{
    uint64_t b = __atomic_load_n(p, __ATOMIC_RELAXED);
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static inline void store_d(uint64_t *p, double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    __atomic_store_n(p, b, __ATOMIC_RELAXED);
}

static inline uint32_t *series_syms(const struct metric_family *fam, const struct metric_series *s)
{
    return (uint32_t *)(void *)((uint64_t *)s->data + fam->sym_off);
}

/* Single writer per value: a relaxed load and store, no read-modify-write instruction. */
void metric_counter_add(struct metric_series *s, double v)
{
    assert(s->fam->type == METRIC_COUNTER);
    if (!(v >= 0))
        return;
    store_d(&s->bits, load_d(&s->bits) + v);
}

void metric_gauge_set(struct metric_series *s, double v)
{
    assert(s->fam->type == METRIC_GAUGE);
    store_d(&s->bits, v);
}

void metric_gauge_add(struct metric_series *s, double v)
{
    assert(s->fam->type == METRIC_GAUGE);
    store_d(&s->bits, load_d(&s->bits) + v);
}

void metric_histogram_observe(struct metric_series *s, double v)
{
    const struct metric_family *fam = s->fam;
    size_t i = 0;

    assert(fam->type == METRIC_HISTOGRAM);
    if (isnan(v))
        return;
    while (i < fam->n_buckets && v > fam->buckets[i])
        i++;
    /* Bucket before sum: a reader may see the count ahead of the sum, never the +Inf bucket
     * and _count disagreeing (the count is derived from the buckets). */
    __atomic_store_n(&s->data[i], __atomic_load_n(&s->data[i], __ATOMIC_RELAXED) + 1,
                     __ATOMIC_RELAXED);
    store_d(&s->bits, load_d(&s->bits) + v);
}

double metric_value(const struct metric_series *s)
{
    return load_d(&s->bits);
}

uint64_t metric_histogram_count(const struct metric_series *s)
{
    uint64_t n = 0;
    for (size_t i = 0; i <= s->fam->n_buckets; i++)
        n += __atomic_load_n(&s->data[i], __ATOMIC_RELAXED);
    return n;
}

double metric_histogram_sum(const struct metric_series *s)
{
    return load_d(&s->bits);
}

uint64_t metric_histogram_bucket(const struct metric_series *s, size_t i)
{
    assert(i <= s->fam->n_buckets);
    return __atomic_load_n(&s->data[i], __ATOMIC_RELAXED);
}

/* ---- UTF-8 ---- */

size_t metrics_utf8_prefix(const char *s, size_t len, size_t *bad)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;

    while (i < len) {
        unsigned c = u[i];
        unsigned lo = 0x80, hi = 0xbf, n;

        if (c < 0x80) {
            i++;
            continue;
        }
        /* RFC 3629 §4: the second byte's range depends on the lead byte (no overlongs,
         * no surrogates, nothing past U+10FFFF); later bytes are plain continuations. */
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            if (c == 0xe0)
                lo = 0xa0;
            else if (c == 0xed)
                hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            if (c == 0xf0)
                lo = 0x90;
            else if (c == 0xf4)
                hi = 0x8f;
        } else {
            *bad = 1;
            return i;
        }
        if (i + 1 >= len || u[i + 1] < lo || u[i + 1] > hi) {
            *bad = 1;
            return i;
        }
        for (unsigned j = 2; j <= n; j++) {
            if (i + j >= len || (u[i + j] & 0xc0) != 0x80) {
                *bad = j;
                return i;
            }
        }
        i += n + 1;
    }
    *bad = 0;
    return len;
}

/* Writes s with each maximal ill-formed subsequence, and each NUL, replaced by U+FFFD into out,
 * which holds 3 * len bytes (the replacement is never shorter than what it replaces: 1 to 3
 * bytes become 3). Returns the length written. A NUL is valid UTF-8, but label values also go
 * out as C strings (metrics_emit_fn): "a\0x" and "a\0y" would both become "a" there, two series
 * with the same labels in one exposition. */
static size_t utf8_repair(const char *s, size_t len, char *out)
{
    size_t o = 0;

    while (len) {
        size_t bad, ok = metrics_utf8_prefix(s, len, &bad);
        const char *nul = memchr(s, 0, ok);
        if (nul) {
            ok = (size_t)(nul - s);
            bad = 1;
        }
        memcpy(out + o, s, ok);
        o += ok;
        if (!bad)
            break;
        memcpy(out + o, "\xef\xbf\xbd", 3);
        o += 3;
        s += ok + bad;
        len -= ok + bad;
    }
    return o;
}

/* ---- symbols ---- */

/* s[len] can be a symbol as it is: valid UTF-8 without NUL (else utf8_repair makes one). */
static bool symbol_clean(const char *s, size_t len, size_t *bad)
{
    return metrics_utf8_prefix(s, len, bad) == len && !memchr(s, 0, len);
}

static inline const struct sym *sym_at(const struct metrics *reg, uint32_t id)
{
    return &reg->sym_chunks[id >> SYM_CHUNK_SHIFT][id & (SYM_CHUNK - 1)];
}

static inline uint32_t sym_hash(const char *p, size_t len)
{
    return (uint32_t)slice_hash(slice_make(p, len), 0);
}

static uint32_t sym_lookup(const struct metrics *reg, const char *p, size_t len, uint32_t h)
{
    size_t i = h & reg->sym_mask;

    for (;;) {
        const struct sym_slot *slot = &reg->sym_slots[i];
        if (!slot->id1)
            return METRICS_NO_SYMBOL;
        if (slot->hash == h) {
            const struct sym *e = sym_at(reg, slot->id1 - 1);
            if (e->len == len && (len == 0 || memcmp(e->p, p, len) == 0))
                return slot->id1 - 1;
        }
        i = (i + 1) & reg->sym_mask;
    }
}

static char *arena_copy(struct metrics *reg, const char *p, size_t len)
{
    struct arena_block *b = reg->arena;

    if (!b || b->cap - b->used < len) {
        b = malloc(sizeof *b + ARENA_BLOCK);
        if (!b)
            return NULL;
        b->next = reg->arena;
        b->used = 0;
        b->cap = ARENA_BLOCK;
        reg->arena = b;
    }
    char *dst = b->mem + b->used;
    if (len)
        memcpy(dst, p, len);
    b->used += len;
    return dst;
}

static int sym_table_grow(struct metrics *reg)
{
    size_t n = (reg->sym_mask + 1) * 2;
    struct sym_slot *slots = calloc(n, sizeof *slots);

    if (!slots)
        return -ENOMEM;
    for (size_t i = 0; i <= reg->sym_mask; i++) {
        struct sym_slot s = reg->sym_slots[i];
        if (!s.id1)
            continue;
        size_t j = s.hash & (n - 1);
        while (slots[j].id1)
            j = (j + 1) & (n - 1);
        slots[j] = s;
    }
    free(reg->sym_slots);
    reg->sym_slots = slots;
    reg->sym_mask = n - 1;
    return 0;
}

/* Adds a symbol known to be absent; under the lock. Returns its id or METRICS_NO_SYMBOL on
 * ENOMEM. */
static uint32_t sym_insert(struct metrics *reg, const char *p, size_t len, uint32_t h)
{
    size_t id = reg->n_symbols;

    if (id >= METRICS_NO_SYMBOL)
        return METRICS_NO_SYMBOL;
    if ((id + 1) * 2 > reg->sym_mask + 1 && sym_table_grow(reg) < 0)
        return METRICS_NO_SYMBOL;
    size_t c = id >> SYM_CHUNK_SHIFT;
    if (c >= reg->n_sym_chunks) {
        struct sym **chunks = realloc(reg->sym_chunks, (c + 1) * sizeof *chunks);
        if (!chunks)
            return METRICS_NO_SYMBOL;
        reg->sym_chunks = chunks;
        chunks[c] = malloc(SYM_CHUNK * sizeof **chunks);
        if (!chunks[c])
            return METRICS_NO_SYMBOL;
        reg->n_sym_chunks = c + 1;
    }
    char *copy = arena_copy(reg, p, len);
    if (!copy)
        return METRICS_NO_SYMBOL;
    reg->sym_chunks[c][id & (SYM_CHUNK - 1)] = (struct sym){copy, (uint32_t)len, h};
    size_t i = h & reg->sym_mask;
    while (reg->sym_slots[i].id1)
        i = (i + 1) & reg->sym_mask;
    reg->sym_slots[i] = (struct sym_slot){h, (uint32_t)id + 1};
    reg->n_symbols++;
    return (uint32_t)id;
}

static void count_overflow(struct metrics *reg, struct metric_series **cache, uint32_t label);

/* Under the lock. p holds valid UTF-8. capped: a caller's value, bounded by symbol_cap. */
static uint32_t intern_locked(struct metrics *reg, const char *p, size_t len, bool capped)
{
    uint32_t h = sym_hash(p, len);
    uint32_t id = sym_lookup(reg, p, len, h);

    if (id != METRICS_NO_SYMBOL)
        return id;
    if (capped && reg->n_user_symbols >= reg->symbol_cap)
        return METRICS_NO_SYMBOL;
    id = sym_insert(reg, p, len, h);
    if (id != METRICS_NO_SYMBOL && capped)
        reg->n_user_symbols++;
    return id;
}

uint32_t metrics_intern(struct metrics *reg, const char *s, size_t len)
{
    size_t bad;
    uint32_t id = METRICS_NO_SYMBOL;

    if (len <= METRICS_MAX_SYMBOL_LEN && symbol_clean(s, len, &bad)) {
        /* The common case, lock-free: the writer is the only thread that changes the table. */
        id = sym_lookup(reg, s, len, sym_hash(s, len));
        if (id != METRICS_NO_SYMBOL)
            return id;
        metrics_lock(reg);
        id = intern_locked(reg, s, len, true);
        metrics_unlock(reg);
    } else if (len <= METRICS_MAX_SYMBOL_LEN) {
        metrics_lock(reg);
        size_t n = utf8_repair(s, len, reg->scratch);
        if (n <= METRICS_MAX_SYMBOL_LEN)
            id = intern_locked(reg, reg->scratch, n, true);
        metrics_unlock(reg);
    }
    if (id == METRICS_NO_SYMBOL)
        count_overflow(reg, &reg->sym_ovf_counter, reg->sym_symbols);
    return id;
}

uint32_t metrics_symbol_find(struct metrics *reg, const char *s, size_t len)
{
    size_t bad;
    uint32_t id = METRICS_NO_SYMBOL;

    if (len > METRICS_MAX_SYMBOL_LEN)
        return METRICS_NO_SYMBOL;
    if (symbol_clean(s, len, &bad))
        return sym_lookup(reg, s, len, sym_hash(s, len));
    metrics_lock(reg);
    size_t n = utf8_repair(s, len, reg->scratch);
    if (n <= METRICS_MAX_SYMBOL_LEN)
        id = sym_lookup(reg, reg->scratch, n, sym_hash(reg->scratch, n));
    metrics_unlock(reg);
    return id;
}

const char *metrics_symbol(const struct metrics *reg, uint32_t id, size_t *len)
{
    assert(id < reg->n_symbols);
    const struct sym *e = sym_at(reg, id);
    *len = e->len;
    return e->p;
}

static int sym_cmp(const void *a, const void *b, void *ctx)
{
    const struct metrics *reg = ctx;
    const struct sym *x = sym_at(reg, *(const uint32_t *)a);
    const struct sym *y = sym_at(reg, *(const uint32_t *)b);
    size_t n = x->len < y->len ? x->len : y->len;
    int c = n ? memcmp(x->p, y->p, n) : 0;

    if (c)
        return c;
    return (x->len > y->len) - (x->len < y->len);
}

/* Symbols are only ever added, so the order is kept by sorting the new ids alone and merging
 * them into the old order: O(n) per scrape after a change instead of O(n log n). */
const uint32_t *metrics_symbol_ranks(struct metrics *reg)
{
    size_t n = reg->n_symbols, old = reg->n_ranked;

    if (n == old && reg->rank)
        return reg->rank;
    if (n > reg->cap_ranked || !reg->rank) {
        size_t cap = n > 64 ? n + n / 2 : 64;
        uint32_t *order = realloc(reg->order, cap * sizeof *order);
        if (!order)
            return NULL;
        reg->order = order;
        uint32_t *rank = realloc(reg->rank, cap * sizeof *rank);
        if (!rank)
            return NULL;
        reg->rank = rank;
        reg->cap_ranked = cap;
    }
    uint32_t *order = reg->order, *tmp = reg->rank;
    for (size_t i = old; i < n; i++)
        order[i] = (uint32_t)i;
    qsort_r(order + old, n - old, sizeof *order, sym_cmp, reg);
    size_t a = 0, b = old, o = 0;
    while (a < old && b < n)
        tmp[o++] = sym_cmp(&order[b], &order[a], reg) < 0 ? order[b++] : order[a++];
    while (a < old)
        tmp[o++] = order[a++];
    while (b < n)
        tmp[o++] = order[b++];
    memcpy(order, tmp, n * sizeof *order);
    for (size_t i = 0; i < n; i++)
        reg->rank[order[i]] = (uint32_t)i;
    reg->n_ranked = n;
    return reg->rank;
}

/* ---- families ---- */

static bool valid_name(const char *s, bool colon)
{
    if (!s || !*s)
        return false;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (colon && c == ':') || (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

static bool valid_labels(const char *const *names, size_t n, enum metric_type type)
{
    if (n > METRICS_MAX_LABELS || (n && !names))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!valid_name(names[i], false) || strncmp(names[i], "__", 2) == 0)
            return false;
        if (type == METRIC_HISTOGRAM && strcmp(names[i], "le") == 0)
            return false;
        for (size_t j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0)
                return false;
    }
    return true;
}

static struct metric_family *family_find_locked(const struct metrics *reg, const char *name)
{
    for (size_t i = 0; i < reg->n_fams; i++)
        if (strcmp(reg->fams[i]->name, name) == 0)
            return reg->fams[i];
    return NULL;
}

static bool same_schema(const struct metric_family *f, enum metric_type type,
                        const char *const *label_names, size_t n_labels, const double *buckets,
                        size_t n_buckets)
{
    if (f->collect || f->type != type || f->n_labels != n_labels || f->n_buckets != n_buckets)
        return false;
    for (size_t i = 0; i < n_labels; i++)
        if (strcmp(f->label_names[i], label_names[i]) != 0)
            return false;
    for (size_t i = 0; i < n_buckets; i++)
        if (f->buckets[i] != buckets[i])
            return false;
    return true;
}

static void family_free(struct metric_family *f)
{
    if (!f)
        return;
    for (struct series_chunk *c = f->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(f->slots);
    free(f->overflow);
    free(f->name);
    free(f->help);
    free(f->label_names);
    free(f->buckets);
    free(f);
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d)
        memcpy(d, s, n + 1);
    return d;
}

/* help is configuration, not packet bytes, but it comes from rules: repair it like values. */
static char *dup_help(const char *s)
{
    size_t n = s ? strlen(s) : 0, bad;

    if (metrics_utf8_prefix(s, n, &bad) == n)
        return dup_str(s ? s : "");
    char *d = malloc(3 * n + 1);
    if (d)
        d[utf8_repair(s, n, d)] = '\0';
    return d;
}

/* Allocates the family record with copies of its schema; no series yet. */
static struct metric_family *family_alloc(struct metrics *reg, const char *name, const char *help,
                                          enum metric_type type, const char *const *label_names,
                                          size_t n_labels, const double *buckets, size_t n_buckets)
{
    struct metric_family *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->reg = reg;
    f->type = type;
    f->n_labels = n_labels;
    f->n_buckets = n_buckets;
    f->name = dup_str(name);
    f->help = dup_help(help);
    /* One block: the pointer array, then the strings. */
    size_t bytes = n_labels * sizeof(char *);
    for (size_t i = 0; i < n_labels; i++)
        bytes += strlen(label_names[i]) + 1;
    f->label_names = malloc(bytes ? bytes : 1);
    if (n_buckets)
        f->buckets = malloc(n_buckets * sizeof *buckets);
    if (!f->name || !f->help || !f->label_names || (n_buckets && !f->buckets)) {
        family_free(f);
        return NULL;
    }
    char *p = (char *)(f->label_names + n_labels);
    for (size_t i = 0; i < n_labels; i++) {
        size_t n = strlen(label_names[i]) + 1;
        memcpy(p, label_names[i], n);
        f->label_names[i] = p;
        p += n;
    }
    if (n_buckets)
        memcpy(f->buckets, buckets, n_buckets * sizeof *buckets);
    f->sym_off = type == METRIC_HISTOGRAM ? n_buckets + 1 : 0;
    f->stride = sizeof(struct metric_series) + f->sym_off * sizeof(uint64_t) +
                ((n_labels * sizeof(uint32_t) + 7) & ~(size_t)7);
    return f;
}

static int fams_append(struct metrics *reg, struct metric_family *f)
{
    if (reg->n_fams == reg->cap_fams) {
        size_t cap = reg->cap_fams ? reg->cap_fams * 2 : 32;
        struct metric_family **fams = realloc(reg->fams, cap * sizeof *fams);
        if (!fams)
            return -ENOMEM;
        reg->fams = fams;
        reg->cap_fams = cap;
    }
    reg->fams[reg->n_fams++] = f;
    return 0;
}

/* Takes room for one series from the family's last chunk, adding a chunk when it is full. The
 * record is zeroed and owned by the family; not yet visible to readers (used is not bumped). */
static struct metric_series *series_alloc(struct metric_family *f)
{
    struct series_chunk *c = f->tail;

    if (!c || c->used == c->cap) {
        size_t cap = c ? c->cap * 2 : SERIES_CHUNK_MIN;
        if (cap > SERIES_CHUNK_MAX)
            cap = SERIES_CHUNK_MAX;
        if (f->series_cap - f->n_series < cap)
            cap = f->series_cap - f->n_series;
        c = calloc(1, sizeof *c + cap * f->stride);
        if (!c)
            return NULL;
        c->cap = cap;
        if (f->tail)
            f->tail->next = c;
        else
            f->head = c;
        f->tail = c;
    }
    struct metric_series *s = (void *)((char *)c->mem + c->used * f->stride);
    s->fam = f;
    return s;
}

static int series_table_grow(struct metric_family *f)
{
    size_t n = f->slots ? (f->mask + 1) * 2 : 8;
    struct series_slot *slots = calloc(n, sizeof *slots);

    if (!slots)
        return -ENOMEM;
    for (size_t i = 0; f->slots && i <= f->mask; i++) {
        if (!f->slots[i].s)
            continue;
        size_t j = f->slots[i].hash & (n - 1);
        while (slots[j].s)
            j = (j + 1) & (n - 1);
        slots[j] = f->slots[i];
    }
    free(f->slots);
    f->slots = slots;
    f->mask = n - 1;
    return 0;
}

/* Builds a new family with its first series (n_labels == 0) or its overflow series, and adds
 * it to the registry; under the lock. Returns NULL on ENOMEM, leaving nothing behind. */
static struct metric_family *family_create(struct metrics *reg, const char *name, const char *help,
                                           enum metric_type type, const char *const *label_names,
                                           size_t n_labels, const double *buckets, size_t n_buckets,
                                           size_t series_cap, unsigned flags)
{
    struct metric_family *f =
        family_alloc(reg, name, help, type, label_names, n_labels, buckets, n_buckets);

    if (!f)
        return NULL;
    f->flags = flags;
    f->series_cap = n_labels ? series_cap : 1;
    if (n_labels == 0) {
        f->single = series_alloc(f);
        if (!f->single)
            goto fail;
        f->tail->used++;
        f->n_series = 1;
    } else {
        /* Allocated now so that metrics_series can return it whatever happens later. */
        f->overflow = calloc(1, f->stride);
        if (!f->overflow || series_table_grow(f) < 0)
            goto fail;
        f->overflow->fam = f;
        uint32_t *syms = series_syms(f, f->overflow);
        for (size_t i = 0; i < n_labels; i++)
            syms[i] = reg->sym_overflow;
    }
    if (fams_append(reg, f) < 0)
        goto fail;
    return f;
fail:
    family_free(f);
    return NULL;
}

/* The lengths, checked first: every scrape prints a family's name and help, and its label
 * names on every sample line (an operator label's on every sample of every sip_ family), so
 * one rule's name or help of megabytes became megabytes per scrape, outside --lua-memory. */
static int lengths_check(const char *name, const char *help, const char *const *label_names,
                         size_t n_labels)
{
    if (name && strnlen(name, METRICS_MAX_NAME_LEN + 1) > METRICS_MAX_NAME_LEN)
        return -ENAMETOOLONG;
    for (size_t i = 0; label_names && n_labels <= METRICS_MAX_LABELS && i < n_labels; i++)
        if (label_names[i] &&
            strnlen(label_names[i], METRICS_MAX_LABEL_NAME_LEN + 1) > METRICS_MAX_LABEL_NAME_LEN)
            return -ENAMETOOLONG;
    if (help && strnlen(help, METRICS_MAX_HELP_LEN + 1) > METRICS_MAX_HELP_LEN)
        return -EMSGSIZE;
    return 0;
}

/* 0, or metrics_family_check's error (before the schema comparison). */
static int family_args_check(const char *name, const char *help, enum metric_type type,
                             const char *const *label_names, size_t n_labels, const double *buckets,
                             size_t n_buckets, size_t series_cap)
{
    int rc = lengths_check(name, help, label_names, n_labels);

    if (rc)
        return rc;
    if (!valid_name(name, true) || type > METRIC_HISTOGRAM ||
        !valid_labels(label_names, n_labels, type) || (n_labels && series_cap == 0) ||
        (type != METRIC_HISTOGRAM && n_buckets) || n_buckets > METRICS_MAX_BUCKETS ||
        (n_buckets && !buckets))
        return -EINVAL;
    for (size_t i = 0; i < n_buckets; i++)
        if (!isfinite(buckets[i]) || (i && !(buckets[i] > buckets[i - 1])))
            return -EINVAL;
    return 0;
}

int metrics_family_check(struct metrics *reg, const char *name, const char *help,
                         enum metric_type type, const char *const *label_names, size_t n_labels,
                         const double *buckets, size_t n_buckets, size_t series_cap)
{
    struct metric_family *f;
    int rc =
        family_args_check(name, help, type, label_names, n_labels, buckets, n_buckets, series_cap);

    if (rc)
        return rc;
    metrics_lock(reg);
    f = family_find_locked(reg, name);
    if (f && !same_schema(f, type, label_names, n_labels, buckets, n_buckets))
        rc = -EEXIST;
    metrics_unlock(reg);
    return rc;
}

struct metric_family *metrics_family(struct metrics *reg, const char *name, const char *help,
                                     enum metric_type type, const char *const *label_names,
                                     size_t n_labels, const double *buckets, size_t n_buckets,
                                     size_t series_cap, unsigned flags)
{
    struct metric_family *f;
    int rc =
        family_args_check(name, help, type, label_names, n_labels, buckets, n_buckets, series_cap);

    if (rc) {
        errno = -rc;
        return NULL;
    }

    metrics_lock(reg);
    f = family_find_locked(reg, name);
    if (f) {
        /* Rules redeclare their families on every reload: same schema, same family. */
        if (!same_schema(f, type, label_names, n_labels, buckets, n_buckets)) {
            f = NULL;
            errno = EINVAL;
        }
    } else {
        f = family_create(reg, name, help, type, label_names, n_labels, buckets, n_buckets,
                          series_cap, flags);
        if (!f)
            errno = ENOMEM;
    }
    metrics_unlock(reg);
    return f;
}

void metrics_family_set_hidden(struct metric_family *fam, bool hidden)
{
    metrics_lock(fam->reg);
    fam->flags = hidden ? fam->flags | METRIC_HIDDEN : fam->flags & ~(unsigned)METRIC_HIDDEN;
    metrics_unlock(fam->reg);
}

struct metric_family *metrics_family_find(struct metrics *reg, const char *name)
{
    metrics_lock(reg);
    struct metric_family *f = family_find_locked(reg, name);
    metrics_unlock(reg);
    return f && !f->collect ? f : NULL;
}

int metrics_collector(struct metrics *reg, const char *name, const char *help,
                      enum metric_type type, const char *const *label_names, size_t n_labels,
                      unsigned flags, metrics_collect_fn fn, void *ctx)
{
    int rc = lengths_check(name, help, label_names, n_labels);

    if (rc)
        return rc;
    if (!valid_name(name, true) || !fn || (type != METRIC_COUNTER && type != METRIC_GAUGE) ||
        !valid_labels(label_names, n_labels, type))
        return -EINVAL;
    metrics_lock(reg);
    if (family_find_locked(reg, name)) {
        rc = -EEXIST;
        goto out;
    }
    struct metric_family *f = family_alloc(reg, name, help, type, label_names, n_labels, NULL, 0);
    if (!f) {
        rc = -ENOMEM;
        goto out;
    }
    f->flags = flags;
    f->collect = fn;
    f->collect_ctx = ctx;
    rc = fams_append(reg, f);
    if (rc < 0)
        family_free(f);
out:
    metrics_unlock(reg);
    return rc;
}

/* ---- series ---- */

/* Multiply-xorshift per symbol: the ids are small dense integers, so the multiply spreads them
 * over the high bits and the shift brings those down to the bits the mask keeps. */
static inline uint64_t series_hash(const uint32_t *syms, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ syms[i]) * 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 31;
    }
    return h;
}

static inline struct metric_series *series_lookup(const struct metric_family *f,
                                                  const uint32_t *syms, uint64_t h)
{
    size_t i = h & f->mask;

    for (;;) {
        const struct series_slot *slot = &f->slots[i];
        if (!slot->s)
            return NULL;
        if (slot->hash == h &&
            memcmp(series_syms(f, slot->s), syms, f->n_labels * sizeof *syms) == 0)
            return slot->s;
        i = (i + 1) & f->mask;
    }
}

/* Counts one overflow in the registry's own family; the series is made on first use. */
static void count_overflow(struct metrics *reg, struct metric_series **cache, uint32_t label)
{
    if (!*cache)
        *cache = metrics_series(reg->ovf_family, &label);
    metric_counter_add(*cache, 1);
}

static struct metric_series *overflow(struct metric_family *f, bool counted)
{
    struct metrics *reg = f->reg;

    __atomic_store_n(&f->overflow_used, 1, __ATOMIC_RELAXED);
    /* The overflow family's own overflow is not counted in itself: that would recurse. */
    if (counted && f != reg->ovf_family) {
        if (!f->overflow_counter) {
            metrics_lock(reg);
            uint32_t label = intern_locked(reg, f->name, strlen(f->name), false);
            metrics_unlock(reg);
            f->overflow_counter = metrics_series(reg->ovf_family, &label);
        }
        metric_counter_add(f->overflow_counter, 1);
    }
    return f->overflow;
}

static __attribute__((noinline)) struct metric_series *
series_create(struct metric_family *f, const uint32_t *syms, uint64_t h)
{
    struct metrics *reg = f->reg;
    struct metric_series *s = NULL;
    bool all_overflow = true;

    for (size_t i = 0; i < f->n_labels; i++) {
        /* An id never interned (a caller's bug) is treated like a refused one: the renderer
         * indexes per-symbol arrays with every id it finds in a series. */
        if (syms[i] >= reg->n_symbols)
            return overflow(f, true);
        all_overflow = all_overflow && syms[i] == reg->sym_overflow;
    }
    if (all_overflow)
        return overflow(f, false);

    metrics_lock(reg);
    if (f->n_series >= f->series_cap)
        goto out;
    if ((f->n_series + 1) * 2 > f->mask + 1 && series_table_grow(f) < 0)
        goto out;
    s = series_alloc(f);
    if (!s)
        goto out;
    memcpy(series_syms(f, s), syms, f->n_labels * sizeof *syms);
    size_t i = h & f->mask;
    while (f->slots[i].s)
        i = (i + 1) & f->mask;
    f->slots[i] = (struct series_slot){h, s};
    f->tail->used++;
    f->n_series++;
out:
    metrics_unlock(reg);
    return s ? s : overflow(f, true);
}

struct metric_series *metrics_series(struct metric_family *fam, const uint32_t *symbols)
{
    assert(!fam->collect);
    if (fam->n_labels == 0)
        return fam->single;
    uint64_t h = series_hash(symbols, fam->n_labels);
    struct metric_series *s = series_lookup(fam, symbols, h);
    return s ? s : series_create(fam, symbols, h);
}

struct metric_series *metrics_series_find(struct metric_family *fam, const uint32_t *symbols)
{
    if (fam->collect)
        return NULL;
    if (fam->n_labels == 0)
        return fam->single;
    struct metric_series *s = series_lookup(fam, symbols, series_hash(symbols, fam->n_labels));
    if (s || !__atomic_load_n(&fam->overflow_used, __ATOMIC_RELAXED))
        return s;
    const uint32_t *o = series_syms(fam, fam->overflow);
    return memcmp(o, symbols, fam->n_labels * sizeof *o) == 0 ? fam->overflow : NULL;
}

bool metrics_series_is_overflow(const struct metric_series *s)
{
    return s == s->fam->overflow;
}

size_t metrics_series_each(struct metric_family *fam,
                           void (*fn)(void *ctx, const struct metric_series *s,
                                      const uint32_t *symbols),
                           void *ctx)
{
    size_t n = 0;

    metrics_lock(fam->reg);
    for (const struct series_chunk *c = fam->head; c; c = c->next) {
        for (size_t i = 0; i < c->used; i++) {
            const struct metric_series *s = (const void *)((const char *)c->mem + i * fam->stride);
            fn(ctx, s, series_syms(fam, s));
            n++;
        }
    }
    if (fam->overflow && __atomic_load_n(&fam->overflow_used, __ATOMIC_RELAXED)) {
        fn(ctx, fam->overflow, series_syms(fam, fam->overflow));
        n++;
    }
    metrics_unlock(fam->reg);
    return n;
}

/* ---- registry ---- */

struct metrics *metrics_new(size_t symbol_cap)
{
    static const char *const ovf_labels[] = {"family"};
    struct metrics *reg = calloc(1, sizeof *reg);
    pthread_mutexattr_t attr;

    if (!reg)
        return NULL;
    if (pthread_mutexattr_init(&attr) != 0) {
        free(reg);
        return NULL;
    }
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    int rc = pthread_mutex_init(&reg->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    if (rc != 0) {
        free(reg);
        return NULL;
    }
    reg->symbol_cap = symbol_cap;
    reg->sym_slots = calloc(64, sizeof *reg->sym_slots);
    if (!reg->sym_slots)
        goto fail;
    reg->sym_mask = 63;
    reg->sym_overflow =
        intern_locked(reg, METRICS_OVERFLOW_VALUE, sizeof METRICS_OVERFLOW_VALUE - 1, false);
    reg->sym_symbols = intern_locked(reg, "_symbols_", 9, false);
    if (reg->sym_overflow == METRICS_NO_SYMBOL || reg->sym_symbols == METRICS_NO_SYMBOL)
        goto fail;
    /* Bounded by the number of families plus one (_symbols_), not by a cap of its own. */
    reg->ovf_family =
        metrics_family(reg, METRICS_OVERFLOW_FAMILY,
                       "Label combinations that went to a family's overflow series, by family "
                       "(_symbols_: label values refused by the full symbol table or longer "
                       "than 1,024 bytes).",
                       METRIC_COUNTER, ovf_labels, 1, NULL, 0, SIZE_MAX, 0);
    if (!reg->ovf_family)
        goto fail;
    return reg;
fail:
    metrics_free(reg);
    return NULL;
}

void metrics_free(struct metrics *reg)
{
    if (!reg)
        return;
    for (size_t i = 0; i < reg->n_fams; i++)
        family_free(reg->fams[i]);
    free(reg->fams);
    for (size_t i = 0; i < reg->n_sym_chunks; i++)
        free(reg->sym_chunks[i]);
    free(reg->sym_chunks);
    free(reg->sym_slots);
    for (struct arena_block *b = reg->arena, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(reg->order);
    free(reg->rank);
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

/* ---- read side ---- */

void metrics_lock(struct metrics *reg)
{
    pthread_mutex_lock(&reg->lock);
}

void metrics_unlock(struct metrics *reg)
{
    pthread_mutex_unlock(&reg->lock);
}

size_t metrics_family_count(const struct metrics *reg)
{
    return reg->n_fams;
}

struct metric_family *metrics_family_at(const struct metrics *reg, size_t i)
{
    assert(i < reg->n_fams);
    return reg->fams[i];
}

const char *metrics_family_name(const struct metric_family *fam)
{
    return fam->name;
}

const char *metrics_family_help(const struct metric_family *fam)
{
    return fam->help;
}

enum metric_type metrics_family_type(const struct metric_family *fam)
{
    return fam->type;
}

unsigned metrics_family_flags(const struct metric_family *fam)
{
    return fam->flags;
}

const char *const *metrics_family_labels(const struct metric_family *fam, size_t *n)
{
    *n = fam->n_labels;
    return (const char *const *)fam->label_names;
}

const double *metrics_family_buckets(const struct metric_family *fam, size_t *n)
{
    *n = fam->n_buckets;
    return fam->buckets;
}

size_t metrics_family_series_count(const struct metric_family *fam)
{
    if (fam->collect)
        return 0;
    return fam->n_series +
           (fam->overflow && __atomic_load_n(&fam->overflow_used, __ATOMIC_RELAXED));
}

size_t metrics_series_bytes(const struct metric_family *fam)
{
    return fam->stride + 4 * sizeof(struct series_slot);
}

size_t metrics_symbol_bytes(size_t len)
{
    return len + sizeof(struct sym) + 4 * sizeof(struct sym_slot);
}

int metrics_family_collect(struct metric_family *fam, metrics_emit_fn emit, void *emit_ctx)
{
    if (!fam->collect)
        return -EINVAL;
    fam->collect(fam->collect_ctx, fam->reg, emit, emit_ctx);
    return 0;
}
