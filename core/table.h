/* table: a bounded pool of fixed-size entries with a hash index, age-ordered lists for eviction
 * and one deadline per entry, kept in first-in first-out lanes when it runs a fixed time from the
 * packet clock and in a min-heap otherwise. The trackers (calls, transactions,
 * registrations) are built on it so that every table has a capacity, evicts oldest-first and
 * runs its timers the same way. It knows nothing of SIP.
 *
 * Every entry starts with a struct table_node. Entries are addressed by index (uint32); the
 * pool is one anonymous mapping of capacity * entry_size, so pages are only touched as the high-water mark
 * grows, and memory is bounded by the capacity from the start. The hash index is allocated for
 * the capacity too but used only as far as the entries in use need (it doubles as they grow), so
 * that a table far below its capacity keeps its buckets in cache. Nothing allocates after
 * table_init. */
#ifndef SIPSCOPE_TABLE_H
#define SIPSCOPE_TABLE_H

#include <stddef.h>
#include <stdint.h>

#define TABLE_NONE UINT32_MAX
#define TABLE_NO_DEADLINE UINT64_MAX
#define TABLE_MAX_CLASSES 5 /* age lists per table */
#define TABLE_LANES 4       /* first-in first-out deadline lanes per table */

struct table_node {
    uint64_t hash;     /* key hash, set by table_insert */
    uint64_t check;    /* a second, independent hash of the key, or 0 when unused */
    uint64_t deadline; /* TABLE_NO_DEADLINE when no timer is due */
    uint8_t cls;       /* age list the entry is on */
    uint8_t in_use;
    uint16_t gen;      /* incremented each time the slot is reused */
};

/* An entry's place in its hash chain (or in the free list), kept apart from the entries with the
 * low half of its hash: walking a chain reads this dense array and touches an entry only when
 * its hash may match, so a lookup of a new key touches no entry at all. */
struct table_link {
    uint32_t next; /* next entry in the bucket (or free list), TABLE_NONE at the end */
    /* The entry before in the bucket, TABLE_NONE at its head: unindexing is O(1), without a
     * walk down the chain (an entry that comes due is usually the oldest, at the chain's end). */
    uint32_t prev;
    /* The low half of the hash: the bucket (hash & mask) and, in the bits above the mask, a
     * filter that spares reading the entry of most other keys of the chain. Growing the buckets
     * and unlinking an entry find its bucket here, without reading the entry. */
    uint32_t tag;
};

/* An entry's neighbours in its age list, apart from the entries: moving an entry between lists
 * (a call answered, a transaction finished) then writes this dense array, not two other
 * entries that are long out of cache. */
struct table_age {
    uint32_t prev, next;
};

/* The deadline is kept beside the index so that sifting never touches the entries. */
struct table_heap_slot {
    uint64_t deadline;
    uint32_t idx;
};

/* Where an entry's deadline is kept, apart from the entries (a small dense array). */
struct table_timer {
    uint64_t deadline; /* in a lane: the entry's deadline, so that neighbours are read here */
    uint32_t pos;      /* in the heap: its position; in a lane: the previous entry (TABLE_NONE) */
    uint32_t next;     /* in a lane: the next entry, TABLE_NONE at the tail */
    uint8_t where;     /* TABLE_TIMER_NONE, TABLE_TIMER_HEAP, or TABLE_TIMER_LANE + lane */
};

enum table_timer_where {
    TABLE_TIMER_NONE = 0,
    TABLE_TIMER_HEAP = 1,
    TABLE_TIMER_LANE = 2,
};

struct table {
    uint8_t *entries;
    uint32_t *buckets; /* index + 1 of the first entry of each bucket, 0 when empty */
    struct table_link *links; /* per entry */
    struct table_age *ages;   /* per entry */
    struct table_heap_slot *heap; /* min-heap of deadlines, 4-ary */
    /* Per entry: where its deadline is. Apart from the entries, so that sifting writes a small
     * dense array rather than one entry per level. */
    struct table_timer *timers;
    /* Lanes: lists in deadline order, for timers that run a fixed time from now. */
    uint32_t lane_head[TABLE_LANES], lane_tail[TABLE_LANES];
    uint64_t lane_first[TABLE_LANES], lane_last[TABLE_LANES]; /* deadlines of head and tail */
    uint8_t lanes_used; /* bit l: lane l is not empty */
    /* The earliest deadline of the heap and the lanes and where it is (enum table_timer_where,
     * TABLE_TIMER_LANE + lane for a lane), recomputed after a change that may move it (of a
     * lane's head, of the heap): it is read several times per packet (every table, every timer
     * run); most changes append to a lane or take an entry from its middle. */
    uint64_t first_deadline;
    uint8_t first_where;
    uint8_t first_stale; /* a change may have moved the earliest: recompute it */
    uint32_t due_fetched; /* the earliest entry when table_prefetch_due last ran */
    size_t entry_size;
    size_t clear_size; /* bytes of an entry table_insert zeroes (table_clear_only) */
    uint32_t cap, used, mask, heap_len;
    uint32_t max_mask; /* mask of the whole bucket array; mask grows up to it */
    uint32_t free_head, high_water;
    uint32_t head[TABLE_MAX_CLASSES], tail[TABLE_MAX_CLASSES];
    uint32_t class_len[TABLE_MAX_CLASSES];
};

/* The memory a table of cap entries of entry_size bytes holds once it is full (its arrays are
 * mapped at table_init and filled in as entries are first used). */
size_t table_bytes(size_t entry_size, uint32_t cap);

/* Sets up a table of cap entries of entry_size bytes (entry_size >= sizeof(struct table_node),
 * a multiple of 8). Returns 0 or -ENOMEM; -EINVAL for cap 0 or above 2^31. */
int table_init(struct table *t, size_t entry_size, uint32_t cap);

/* table_insert zeroes only the first bytes of a new entry (at least its struct table_node; the
 * whole entry by default), for entries with a long tail that the owner initialises before it
 * reads any of it (text read up to lengths kept in the zeroed part, a record reset on insert).
 * Call it after table_init, before the first insert. */
void table_clear_only(struct table *t, size_t bytes);

/* Frees the storage. Safe on a zeroed or already finalised table. */
void table_fini(struct table *t);

static inline struct table_node *table_node(const struct table *t, uint32_t idx)
{
    return (struct table_node *)(t->entries + (size_t)idx * t->entry_size);
}

static inline void *table_entry(const struct table *t, uint32_t idx)
{
    return t->entries + (size_t)idx * t->entry_size;
}

static inline uint32_t table_index(const struct table *t, const void *entry)
{
    return (uint32_t)(((const uint8_t *)entry - t->entries) / t->entry_size);
}

/* Prefetch hints for a lookup of hash coming later: the bucket, then (once the bucket is loaded)
 * the link and the node of the chain's first entry. Neither changes anything. They are forced
 * inline: GCC 12 takes a function whose only effect is a prefetch for a pure one and deletes
 * the call. */
#define TABLE_PREFETCH_FN static inline __attribute__((always_inline)) void
TABLE_PREFETCH_FN table_prefetch_bucket(const struct table *t, uint64_t hash)
{
    __builtin_prefetch(&t->buckets[hash & t->mask]);
}

/* An entry's first 192 bytes at most: its node and the fields after it (an entry need not start
 * on a cache line). Entries keep what every packet reads there, and colder data (text) after. */
TABLE_PREFETCH_FN table_prefetch_entry(const struct table *t, uint32_t idx)
{
    const uint8_t *e = t->entries + (size_t)idx * t->entry_size;
    size_t n = t->entry_size < 192 ? t->entry_size : 192;
    __builtin_prefetch(e);
    __builtin_prefetch(e + 64);
    if (n > 128)
        __builtin_prefetch(e + 128); /* off a line boundary, 192 bytes span four lines */
    __builtin_prefetch(e + n - 1);
}

TABLE_PREFETCH_FN table_prefetch_head(const struct table *t, uint64_t hash)
{
    uint32_t idx = t->buckets[hash & t->mask] - 1;
    if (idx != TABLE_NONE) {
        __builtin_prefetch(&t->links[idx]);
        table_prefetch_entry(t, idx);
    }
}

/* An entry's records kept apart from it that updating it writes: its timer and its age-list
 * place (a found entry is usually rescheduled and moved between lists). */
TABLE_PREFETCH_FN table_prefetch_records(const struct table *t, uint32_t idx)
{
    __builtin_prefetch(&t->timers[idx]);
    __builtin_prefetch(&t->ages[idx]);
}

/* The step after table_prefetch_records (whose lines it reads): the records of the entry's
 * neighbours in its age list and deadline lane, which moving it writes. */
TABLE_PREFETCH_FN table_prefetch_neighbours(const struct table *t, uint32_t idx)
{
    const struct table_age *a = &t->ages[idx];
    const struct table_timer *tm = &t->timers[idx];

    if (a->prev != TABLE_NONE)
        __builtin_prefetch(&t->ages[a->prev]);
    if (a->next != TABLE_NONE)
        __builtin_prefetch(&t->ages[a->next]);
    if (tm->where >= TABLE_TIMER_LANE) {
        if (tm->pos != TABLE_NONE)
            __builtin_prefetch(&t->timers[tm->pos]);
        if (tm->next != TABLE_NONE)
            __builtin_prefetch(&t->timers[tm->next]);
    }
}

/* The next step after table_prefetch_head (whose lines it reads): the second entry's link. */
TABLE_PREFETCH_FN table_prefetch_chain(const struct table *t, uint64_t hash)
{
    uint32_t idx = t->buckets[hash & t->mask] - 1;
    if (idx != TABLE_NONE && t->links[idx].next != TABLE_NONE)
        __builtin_prefetch(&t->links[t->links[idx].next]);
}

/* The first entry of hash's bucket when its hash and check are these, else TABLE_NONE (the
 * entry may still be further down the chain). */
static inline uint32_t table_head_match(const struct table *t, uint64_t hash, uint64_t check)
{
    uint32_t idx = t->buckets[hash & t->mask] - 1;
    if (idx == TABLE_NONE || t->links[idx].tag != (uint32_t)hash)
        return TABLE_NONE;
    const struct table_node *n = table_node(t, idx);
    return n->hash == hash && n->check == check ? idx : TABLE_NONE;
}

/* First and next entries whose key hash equals hash (the caller compares the full key).
 * Return TABLE_NONE at the end. */
uint32_t table_find(const struct table *t, uint64_t hash);
uint32_t table_find_next(const struct table *t, uint32_t idx, uint64_t hash);

/* The same for tables that identify entries by 128 bits of hash instead of keeping the key:
 * entries whose hash and check both match, newest first. Two different keys share both only
 * with a probability of about 2^-128 per pair. */
uint32_t table_lookup(const struct table *t, uint64_t hash, uint64_t check);
uint32_t table_lookup_next(const struct table *t, uint32_t idx);

/* Takes a free slot, zeroes the entry (keeping its generation, plus one), indexes it under hash
 * (with check, 0 when unused) and appends it to age list cls. Returns the index, or TABLE_NONE
 * when the table is full: the caller evicts (table_oldest, table_remove) and retries. */
uint32_t table_insert(struct table *t, uint64_t hash, uint64_t check, uint8_t cls);

/* Unindexes the entry, cancels its deadline and returns the slot to the pool. */
void table_remove(struct table *t, uint32_t idx);

/* Moves the entry to the tail of age list cls (also when it is already on it). */
void table_set_class(struct table *t, uint32_t idx, uint8_t cls);

/* Oldest entry of age list cls, or TABLE_NONE. */
static inline uint32_t table_oldest(const struct table *t, uint8_t cls)
{
    return t->head[cls];
}

/* The entry after idx in its age list (the next newer one: lists run from the oldest at their
 * head), or TABLE_NONE. */
static inline uint32_t table_age_next(const struct table *t, uint32_t idx)
{
    return t->ages[idx].next;
}

/* Sets or clears (TABLE_NO_DEADLINE) the entry's deadline. */
void table_set_deadline(struct table *t, uint32_t idx, uint64_t deadline);

/* The same for a timer that runs a fixed time from the packet clock (a SIP timer): kept in lane
 * `lane` (< TABLE_LANES), a first-in first-out list where setting and clearing cost O(1), when
 * the deadline is not earlier than the lane's last one; else (a packet out of order, a duration
 * that changed) in the heap, as table_set_deadline does. Either way deadlines come due in
 * order; equal deadlines come due heap first, then lane by lane, each in the order set. */
void table_set_deadline_lane(struct table *t, uint32_t idx, uint64_t deadline, unsigned lane);

/* Where the earliest deadline is: TABLE_TIMER_HEAP, TABLE_TIMER_LANE + lane, or
 * TABLE_TIMER_NONE when no entry has one. Sets *deadline. */
static inline unsigned table_earliest(const struct table *t, uint64_t *deadline)
{
    *deadline = t->first_deadline;
    return t->first_where;
}

/* Deadline of the earliest entry, TABLE_NO_DEADLINE when none. */
static inline uint64_t table_next_deadline(const struct table *t)
{
    uint64_t d;
    table_earliest(t, &d);
    return d;
}

/* Starts loading what handling the earliest entry will read (its entry, its place in the
 * index), for a caller that runs timers as packets come: called once per packet and after each
 * timer it runs. In a lane it loads the entry after the head while the head waits, and then
 * what unindexing the head writes; in the heap the entry first and, once that is loaded, what
 * unindexing it writes. */
void table_prefetch_due(struct table *t);

/* Index of the earliest entry if its deadline is <= now, else TABLE_NONE. The deadline stays set:
 * the caller handles the entry and then sets a new deadline, clears it or removes the entry. */
static inline uint32_t table_due(const struct table *t, uint64_t now)
{
    uint64_t d;
    unsigned where = table_earliest(t, &d);
    if (where == TABLE_TIMER_NONE || d > now)
        return TABLE_NONE;
    return where == TABLE_TIMER_HEAP ? t->heap[0].idx : t->lane_head[where - TABLE_TIMER_LANE];
}

#endif
