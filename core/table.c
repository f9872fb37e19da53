/* table: bounded entry pool, chained hash index, age lists, and deadlines in a 4-ary heap or in
 * first-in first-out lanes. */
#include "table.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Under MemorySanitizer (the fuzz build of scripts/test.sh), table_insert marks the bytes of an
 * entry it does not zero (past clear_size) as never written: code that reads them before
 * writing them, such as a call's text that still holds the call before's, is then reported
 * instead of reading stale bytes quietly. */
#if defined(__has_feature)
#if __has_feature(memory_sanitizer)
#include <sanitizer/msan_interface.h>
#define TABLE_POISON_UNCLEARED 1
#endif
#endif

#define HUGE_PAGE (2u << 20)

/* Buckets in use at first; the index doubles past one entry for two buckets, which keeps most
 * chains at one entry: a lookup of a new key then reads one bucket and at most one link. */
#define MIN_BUCKETS 1024u

/* A table's arrays are anonymous mappings of their own: untouched parts cost no resident memory,
 * and the kernel may back them with huge pages (transparent huge pages, madvise mode). Lookups
 * land anywhere in a large table: with 4 KiB pages nearly each would miss the TLB. The first
 * HUGE_PAGE bytes keep small pages: a table that stays small (a few registration attempts, no
 * TCP) would otherwise have 2 MiB zeroed per array for a few entries, and a process touching
 * 100 MiB spent a fifth of its time in the kernel zeroing pages. Zero-filled like calloc.
 * Returns NULL when the mapping fails. */
static void *array_alloc(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    if (bytes > 2 * (size_t)HUGE_PAGE) {
        /* advice only: without it, small pages */
        uintptr_t from = ((uintptr_t)p + 2 * HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
        uintptr_t to = (uintptr_t)p + bytes;
        if (to > from)
            madvise((void *)from, to - from, MADV_HUGEPAGE);
    }
    return p;
}

static void array_free(void *p, size_t bytes)
{
    if (p)
        munmap(p, bytes);
}

/* The bytes of each array of a table of t->cap entries and t->max_mask + 1 buckets. */
#define ENTRIES_BYTES(t) ((size_t)(t)->cap * (t)->entry_size)
#define BUCKETS_BYTES(t) (((size_t)(t)->max_mask + 1) * sizeof(uint32_t))
#define PER_ENTRY_BYTES(t, arr) ((size_t)(t)->cap * sizeof(*(t)->arr))

size_t table_bytes(size_t entry_size, uint32_t cap)
{
    struct table t = {.entry_size = entry_size, .cap = cap};
    uint32_t nbuckets = 1;

    while (nbuckets < cap)
        nbuckets <<= 1;
    t.max_mask = nbuckets - 1;
    return ENTRIES_BYTES(&t) + BUCKETS_BYTES(&t) + PER_ENTRY_BYTES(&t, heap) +
           PER_ENTRY_BYTES(&t, timers) + PER_ENTRY_BYTES(&t, links) + PER_ENTRY_BYTES(&t, ages);
}

int table_init(struct table *t, size_t entry_size, uint32_t cap)
{
    uint32_t nbuckets = 1;

    memset(t, 0, sizeof(*t));
    if (cap == 0 || cap > (1u << 31) || entry_size < sizeof(struct table_node) || entry_size % 8)
        return -EINVAL;
    /* About one bucket per entry keeps chains short at capacity without doubling memory. */
    while (nbuckets < cap)
        nbuckets <<= 1;
    t->entry_size = entry_size;
    t->clear_size = entry_size;
    t->cap = cap;
    t->max_mask = nbuckets - 1;
    t->entries = array_alloc(ENTRIES_BYTES(t));
    t->buckets = array_alloc(BUCKETS_BYTES(t));
    t->heap = array_alloc(PER_ENTRY_BYTES(t, heap));
    t->timers = array_alloc(PER_ENTRY_BYTES(t, timers));
    t->links = array_alloc(PER_ENTRY_BYTES(t, links));
    t->ages = array_alloc(PER_ENTRY_BYTES(t, ages));
    if (!t->entries || !t->buckets || !t->heap || !t->timers || !t->links || !t->ages) {
        table_fini(t);
        return -ENOMEM;
    }
    t->mask = (nbuckets < MIN_BUCKETS ? nbuckets : MIN_BUCKETS) - 1;
    t->free_head = TABLE_NONE;
    for (int c = 0; c < TABLE_MAX_CLASSES; c++)
        t->head[c] = t->tail[c] = TABLE_NONE;
    for (int l = 0; l < TABLE_LANES; l++) {
        t->lane_head[l] = t->lane_tail[l] = TABLE_NONE;
        t->lane_first[l] = t->lane_last[l] = TABLE_NO_DEADLINE;
    }
    t->due_fetched = TABLE_NONE;
    t->first_deadline = TABLE_NO_DEADLINE;
    t->first_where = TABLE_TIMER_NONE;
    return 0;
}

void table_clear_only(struct table *t, size_t bytes)
{
    if (bytes < sizeof(struct table_node))
        bytes = sizeof(struct table_node);
    t->clear_size = bytes < t->entry_size ? bytes : t->entry_size;
}

void table_fini(struct table *t)
{
    array_free(t->entries, ENTRIES_BYTES(t));
    array_free(t->buckets, BUCKETS_BYTES(t));
    array_free(t->heap, PER_ENTRY_BYTES(t, heap));
    array_free(t->timers, PER_ENTRY_BYTES(t, timers));
    array_free(t->links, PER_ENTRY_BYTES(t, links));
    array_free(t->ages, PER_ENTRY_BYTES(t, ages));
    memset(t, 0, sizeof(*t));
}

/* Doubles the buckets in use: each chain splits into its bucket and the one half the new size
 * above it, keeping its order, so that equal keys stay newest first. */
static void buckets_grow(struct table *t)
{
    uint32_t old = t->mask + 1;

    for (uint32_t b = 0; b < old; b++) {
        uint32_t lo = 0, hi = 0; /* tails (index + 1) of the two new chains */
        uint32_t idx = t->buckets[b] - 1;
        t->buckets[b] = 0;
        while (idx != TABLE_NONE) {
            bool up = t->links[idx].tag & old;
            uint32_t next = t->links[idx].next;
            uint32_t *tail = up ? &hi : &lo;
            if (*tail)
                t->links[*tail - 1].next = idx;
            else
                t->buckets[up ? b + old : b] = idx + 1;
            t->links[idx].prev = *tail - 1;
            *tail = idx + 1;
            t->links[idx].next = TABLE_NONE;
            idx = next;
        }
    }
    t->mask = 2 * old - 1;
}

/* The first entry from idx on (idx included) whose hash is hash. */
static inline uint32_t chain_match(const struct table *t, uint32_t idx, uint64_t hash)
{
    uint32_t tag = (uint32_t)hash;

    while (idx != TABLE_NONE &&
           (t->links[idx].tag != tag || table_node(t, idx)->hash != hash))
        idx = t->links[idx].next;
    return idx;
}

uint32_t table_find(const struct table *t, uint64_t hash)
{
    return chain_match(t, t->buckets[hash & t->mask] - 1, hash);
}

uint32_t table_find_next(const struct table *t, uint32_t idx, uint64_t hash)
{
    return chain_match(t, t->links[idx].next, hash);
}

uint32_t table_lookup(const struct table *t, uint64_t hash, uint64_t check)
{
    uint32_t idx = table_find(t, hash);
    while (idx != TABLE_NONE && table_node(t, idx)->check != check)
        idx = table_find_next(t, idx, hash);
    return idx;
}

uint32_t table_lookup_next(const struct table *t, uint32_t idx)
{
    const struct table_node *n = table_node(t, idx);
    uint64_t hash = n->hash, check = n->check;

    idx = table_find_next(t, idx, hash);
    while (idx != TABLE_NONE && table_node(t, idx)->check != check)
        idx = table_find_next(t, idx, hash);
    return idx;
}

static void list_unlink(struct table *t, uint32_t idx, uint8_t cls)
{
    struct table_age a = t->ages[idx];
    if (a.prev != TABLE_NONE)
        t->ages[a.prev].next = a.next;
    else
        t->head[cls] = a.next;
    if (a.next != TABLE_NONE)
        t->ages[a.next].prev = a.prev;
    else
        t->tail[cls] = a.prev;
    t->class_len[cls]--;
}

static void list_append(struct table *t, struct table_node *n, uint32_t idx, uint8_t cls)
{
    uint32_t tail = t->tail[cls];
    n->cls = cls;
    t->ages[idx] = (struct table_age){tail, TABLE_NONE};
    if (tail != TABLE_NONE)
        t->ages[tail].next = idx;
    else
        t->head[cls] = idx;
    t->tail[cls] = idx;
    t->class_len[cls]++;
}

uint32_t table_insert(struct table *t, uint64_t hash, uint64_t check, uint8_t cls)
{
    uint32_t idx;
    uint16_t gen;
    struct table_node *n;

    if (t->free_head != TABLE_NONE) {
        idx = t->free_head;
        t->free_head = t->links[idx].next;
    } else if (t->high_water < t->cap) {
        idx = t->high_water++;
    } else {
        return TABLE_NONE;
    }
    if (t->used >= (t->mask + 1) / 2 && t->mask < t->max_mask)
        buckets_grow(t);
    n = table_node(t, idx);
    gen = (uint16_t)(n->gen + 1);
    memset(n, 0, t->clear_size);
#ifdef TABLE_POISON_UNCLEARED
    __msan_allocated_memory((uint8_t *)n + t->clear_size, t->entry_size - t->clear_size);
#endif
    n->gen = gen;
    n->in_use = 1;
    n->hash = hash;
    n->check = check;
    n->deadline = TABLE_NO_DEADLINE;
    t->timers[idx] = (struct table_timer){TABLE_NO_DEADLINE, TABLE_NONE, TABLE_NONE,
                                          TABLE_TIMER_NONE};
    uint32_t head = t->buckets[hash & t->mask] - 1;
    t->links[idx] = (struct table_link){head, TABLE_NONE, (uint32_t)hash};
    if (head != TABLE_NONE)
        t->links[head].prev = idx;
    t->buckets[hash & t->mask] = idx + 1;
    list_append(t, n, idx, cls);
    t->used++;
    return idx;
}

/* A 4-ary min-heap of (deadline, index): shallower than a binary heap, and each level's four
 * children share a cache line. Every node remembers its position so that a deadline can change
 * in O(log n). */
#define HEAP_ARITY 4

static void heap_place(struct table *t, uint32_t pos, struct table_heap_slot slot)
{
    t->heap[pos] = slot;
    t->timers[slot.idx].pos = pos;
}

static void heap_up(struct table *t, uint32_t pos)
{
    struct table_heap_slot slot = t->heap[pos];
    while (pos > 0) {
        uint32_t parent = (pos - 1) / HEAP_ARITY;
        if (t->heap[parent].deadline <= slot.deadline)
            break;
        heap_place(t, pos, t->heap[parent]);
        pos = parent;
    }
    heap_place(t, pos, slot);
}

static void heap_down(struct table *t, uint32_t pos)
{
    struct table_heap_slot slot = t->heap[pos];
    for (;;) {
        uint32_t first = HEAP_ARITY * pos + 1, best = first;
        if (first >= t->heap_len)
            break;
        for (uint32_t c = first + 1; c < first + HEAP_ARITY && c < t->heap_len; c++)
            if (t->heap[c].deadline < t->heap[best].deadline)
                best = c;
        if (t->heap[best].deadline >= slot.deadline)
            break;
        heap_place(t, pos, t->heap[best]);
        pos = best;
    }
    heap_place(t, pos, slot);
}

static void heap_delete(struct table *t, uint32_t idx)
{
    uint32_t pos = t->timers[idx].pos;
    struct table_heap_slot last;

    t->first_stale = 1;
    last = t->heap[--t->heap_len];
    if (pos == t->heap_len)
        return;
    heap_place(t, pos, last);
    heap_up(t, pos);
    heap_down(t, t->timers[last.idx].pos);
}

static void heap_insert(struct table *t, uint32_t idx, uint64_t deadline)
{
    uint32_t pos = t->heap_len++;
    t->first_stale = 1;
    t->timers[idx].where = TABLE_TIMER_HEAP;
    t->heap[pos] = (struct table_heap_slot){deadline, idx};
    t->timers[idx].pos = pos;
    heap_up(t, pos);
}

/* Takes the entry out of its lane; the new head's or tail's deadline is read in the timers. */
static void lane_unlink(struct table *t, uint32_t idx, unsigned lane)
{
    struct table_timer *tm = &t->timers[idx];

    if (tm->pos != TABLE_NONE) {
        t->timers[tm->pos].next = tm->next;
    } else if ((t->lane_head[lane] = tm->next) != TABLE_NONE) {
        t->lane_first[lane] = t->timers[tm->next].deadline;
        t->first_stale = 1;
    } else {
        t->lane_first[lane] = TABLE_NO_DEADLINE;
        t->lanes_used &= (uint8_t)~(1u << lane);
        t->first_stale = 1;
    }
    if (tm->next != TABLE_NONE) {
        t->timers[tm->next].pos = tm->pos;
    } else {
        t->lane_tail[lane] = tm->pos;
        t->lane_last[lane] =
            tm->pos != TABLE_NONE ? t->timers[tm->pos].deadline : TABLE_NO_DEADLINE;
    }
}

static void lane_append(struct table *t, uint32_t idx, uint64_t deadline, unsigned lane)
{
    uint32_t tail = t->lane_tail[lane];

    t->timers[idx] =
        (struct table_timer){deadline, tail, TABLE_NONE, (uint8_t)(TABLE_TIMER_LANE + lane)};
    if (tail != TABLE_NONE) {
        t->timers[tail].next = idx;
    } else {
        t->lane_head[lane] = idx;
        t->lane_first[lane] = deadline;
        t->lanes_used |= (uint8_t)(1u << lane);
        t->first_stale = 1;
    }
    t->lane_tail[lane] = idx;
    t->lane_last[lane] = deadline;
}

/* Takes the entry's deadline out of wherever it is. */
static void timer_clear(struct table *t, uint32_t idx)
{
    uint8_t where = t->timers[idx].where;

    if (where == TABLE_TIMER_HEAP)
        heap_delete(t, idx);
    else if (where >= TABLE_TIMER_LANE)
        lane_unlink(t, idx, where - TABLE_TIMER_LANE);
    t->timers[idx].where = TABLE_TIMER_NONE;
}

/* Recomputes first_deadline and first_where when a change may have moved them. On a tie the
 * heap comes first, then the lowest lane. */
static void first_update(struct table *t)
{
    if (!t->first_stale)
        return;
    t->first_stale = 0;
    uint64_t d = t->heap_len ? t->heap[0].deadline : TABLE_NO_DEADLINE;
    unsigned where = t->heap_len ? TABLE_TIMER_HEAP : TABLE_TIMER_NONE;
    for (unsigned used = t->lanes_used; used; used &= used - 1) {
        unsigned l = (unsigned)__builtin_ctz(used);
        if (t->lane_first[l] < d || (t->lane_first[l] == d && where == TABLE_TIMER_NONE)) {
            d = t->lane_first[l];
            where = TABLE_TIMER_LANE + l;
        }
    }
    t->first_deadline = d;
    t->first_where = (uint8_t)where;
}

static void set_deadline(struct table *t, uint32_t idx, uint64_t deadline)
{
    struct table_node *n = table_node(t, idx);
    uint64_t old = n->deadline;
    struct table_timer *tm = &t->timers[idx];

    n->deadline = deadline;
    if (tm->where != TABLE_TIMER_HEAP) {
        timer_clear(t, idx);
        if (deadline != TABLE_NO_DEADLINE)
            heap_insert(t, idx, deadline);
        return;
    }
    if (deadline == TABLE_NO_DEADLINE) {
        timer_clear(t, idx);
        return;
    }
    t->heap[tm->pos].deadline = deadline;
    t->first_stale = 1;
    if (deadline < old)
        heap_up(t, tm->pos);
    else if (deadline > old)
        heap_down(t, tm->pos);
}

void table_set_deadline(struct table *t, uint32_t idx, uint64_t deadline)
{
    set_deadline(t, idx, deadline);
    first_update(t);
}

/* What unindexing entry idx writes besides its own records, read from those records (loaded
 * on an earlier packet): its chain neighbours' links (or its bucket) and its age neighbours. */
static void prefetch_unlink(const struct table *t, uint32_t idx)
{
    const struct table_link *l = &t->links[idx];
    const struct table_age *a = &t->ages[idx];

    if (l->prev == TABLE_NONE)
        __builtin_prefetch(&t->buckets[l->tag & t->mask]);
    else
        __builtin_prefetch(&t->links[l->prev]);
    if (l->next != TABLE_NONE)
        __builtin_prefetch(&t->links[l->next]);
    if (a->prev != TABLE_NONE)
        __builtin_prefetch(&t->ages[a->prev]);
    if (a->next != TABLE_NONE)
        __builtin_prefetch(&t->ages[a->next]);
}

/* Everything handling a due entry reads of its own: the entry and its timer, age and link
 * records. */
static void prefetch_due_entry(struct table *t, uint32_t idx)
{
    t->due_fetched = idx;
    table_prefetch_entry(t, idx);
    table_prefetch_records(t, idx);
    __builtin_prefetch(&t->links[idx]);
}

void table_prefetch_due(struct table *t)
{
    uint64_t d;
    unsigned where = table_earliest(t, &d);
    uint32_t idx;

    if (where == TABLE_TIMER_NONE)
        return;
    if (where >= TABLE_TIMER_LANE) {
        /* In a lane the order is known: the entry after the head is loaded while the head
         * waits (often it comes due on the next packet), and the head, loaded so, needs only
         * what unindexing it writes. */
        idx = t->lane_head[where - TABLE_TIMER_LANE];
        uint32_t next = t->timers[idx].next;
        prefetch_unlink(t, idx);
        if (next != TABLE_NONE && next != t->due_fetched)
            prefetch_due_entry(t, next);
        return;
    }
    idx = t->heap[0].idx;
    if (idx != t->due_fetched) {
        prefetch_due_entry(t, idx);
        return;
    }
    /* The entry was asked for on an earlier packet. */
    prefetch_unlink(t, idx);
}

void table_set_deadline_lane(struct table *t, uint32_t idx, uint64_t deadline, unsigned lane)
{
    if (t->timers[idx].where == TABLE_TIMER_LANE + lane && t->timers[idx].deadline == deadline)
        return; /* set again, unchanged (a call answered within its maximum age) */
    if (deadline == TABLE_NO_DEADLINE ||
        (t->lane_last[lane] != TABLE_NO_DEADLINE && deadline < t->lane_last[lane])) {
        table_set_deadline(t, idx, deadline);
        return;
    }
    timer_clear(t, idx);
    table_node(t, idx)->deadline = deadline;
    lane_append(t, idx, deadline, lane);
    first_update(t);
}

void table_remove(struct table *t, uint32_t idx)
{
    struct table_node *n = table_node(t, idx);
    struct table_link *l = &t->links[idx];

    if (l->prev == TABLE_NONE)
        t->buckets[l->tag & t->mask] = l->next + 1;
    else
        t->links[l->prev].next = l->next;
    if (l->next != TABLE_NONE)
        t->links[l->next].prev = l->prev;
    timer_clear(t, idx);
    first_update(t);
    list_unlink(t, idx, n->cls);
    n->in_use = 0;
    t->links[idx].next = t->free_head;
    t->free_head = idx;
    t->used--;
}

void table_set_class(struct table *t, uint32_t idx, uint8_t cls)
{
    struct table_node *n = table_node(t, idx);
    list_unlink(t, idx, n->cls);
    list_append(t, n, idx, cls);
}
