/* call_fields: rules' fields of calls' event lines, one packed buffer per call slot. */
#include "call_fields.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* An entry: this head, the name, the value (a string's bytes, a number's 8 bytes, nothing for a
 * boolean or null), padding to 4 bytes. */
struct entry {
    uint32_t size; /* the whole entry */
    uint32_t value_len;
    uint16_t name_len;
    uint8_t type;
    uint8_t boolean;
};

#define ALIGN 4u
#define MIN_BUFFER 128u
#define PREFETCH_MAX 512u

struct slot_buf {
    char *p;
    uint32_t len, cap; /* bytes used, bytes allocated */
    uint32_t n;        /* fields */
    /* A bit per name_bit of the names set since the slot was cleared: a name whose bit is not
     * set is new, and a set does not walk the buffer for it (rules mostly write each field
     * once, and the walk touched every cache line of a buffer that had gone cold between the
     * call's events). */
    uint64_t names;
};

struct call_fields {
    struct slot_buf *slots; /* [slot], 0 unused */
    uint32_t n_slots;
    uint64_t bytes;
    /* A slot's first buffer: the power of two (MIN_BUFFER..CALL_FIELDS_KEEP) that the last
     * cleared call's fields needed. Rules write much the same fields on every call, so a new
     * slot's buffer is allocated once instead of growing by reallocations as they are written:
     * with many calls up at once, most calls are a slot's first. */
    uint32_t learned_cap;
};

struct call_fields *call_fields_new(void)
{
    return calloc(1, sizeof(struct call_fields));
}

void call_fields_free(struct call_fields *cf)
{
    if (!cf)
        return;
    for (uint32_t i = 0; i < cf->n_slots; i++)
        free(cf->slots[i].p);
    free(cf->slots);
    free(cf);
}

static uint64_t value_len(const struct event_field *f)
{
    return f->type == EVENT_FIELD_STRING ? f->str_len
           : f->type == EVENT_FIELD_NUMBER ? sizeof(double)
                                           : 0;
}

static uint64_t entry_size(size_t name_len, uint64_t value_len)
{
    uint64_t n = sizeof(struct entry) + (uint64_t)name_len + value_len;
    return (n + ALIGN - 1) & ~(uint64_t)(ALIGN - 1);
}

static const char *entry_name(const struct entry *e)
{
    return (const char *)(e + 1);
}

static uint64_t name_bit(const char *name, size_t len)
{
    return 1ull << (((unsigned char)name[0] * 7u + (unsigned char)name[len - 1] * 13u +
                     (unsigned)len) & 63u);
}

/* The entry of that name in the buffer, or NULL. */
static struct entry *find(const struct slot_buf *sb, const char *name, size_t len)
{
    if (len == 0 || !(sb->names & name_bit(name, len)))
        return NULL;
    for (uint32_t off = 0; off < sb->len;) {
        struct entry *e = (struct entry *)(void *)(sb->p + off);
        if (e->name_len == len && memcmp(entry_name(e), name, len) == 0)
            return e;
        off += e->size;
    }
    return NULL;
}

static void entry_read(const struct entry *e, struct event_field *out)
{
    const char *value = entry_name(e) + e->name_len;

    out->name = entry_name(e);
    out->name_len = e->name_len;
    out->type = (enum event_field_type)e->type;
    out->str = value;
    out->str_len = e->type == EVENT_FIELD_STRING ? e->value_len : 0;
    out->num = 0;
    if (e->type == EVENT_FIELD_NUMBER)
        memcpy(&out->num, value, sizeof(double));
    out->boolean = e->boolean;
}

static void entry_remove(struct slot_buf *sb, struct entry *e)
{
    uint32_t off = (uint32_t)((char *)e - sb->p), size = e->size;
    memmove(sb->p + off, sb->p + off + size, sb->len - off - size);
    sb->len -= size;
    sb->n--;
}

/* The size of a slot's first buffer: what the last call needed, when room allows. */
static uint64_t first_buffer(const struct call_fields *cf, uint64_t room)
{
    return cf->learned_cap > MIN_BUFFER && cf->learned_cap <= room ? cf->learned_cap : MIN_BUFFER;
}

/* Makes slot a valid index, the index growing by doubling. */
static int reserve_slots(struct call_fields *cf, uint32_t slot, uint64_t *room)
{
    uint32_t n = cf->n_slots ? cf->n_slots : 1024;
    struct slot_buf *p;
    uint64_t grow;

    if (slot < cf->n_slots)
        return 0;
    while (n <= slot)
        n *= 2;
    grow = (uint64_t)(n - cf->n_slots) * sizeof(*p);
    if (grow > *room)
        return -ENOMEM;
    if (!(p = realloc(cf->slots, (size_t)n * sizeof(*p))))
        return -ENOMEM;
    memset(p + cf->n_slots, 0, (size_t)(n - cf->n_slots) * sizeof(*p));
    cf->slots = p;
    cf->n_slots = n;
    cf->bytes += grow;
    *room -= grow;
    return 0;
}

int call_fields_set(struct call_fields *cf, uint32_t slot, const struct event_field *f,
                    uint64_t room)
{
    struct slot_buf *sb;
    struct entry *old, *e;
    uint64_t size, need;

    if (slot == 0 || slot > CALL_FIELDS_MAX_SLOTS || f->name_len == 0 ||
        f->name_len > CALL_FIELDS_MAX_NAME)
        return -EINVAL;
    if (f->type == EVENT_FIELD_NONE) {
        if (slot < cf->n_slots && (old = find(&cf->slots[slot], f->name, f->name_len)))
            entry_remove(&cf->slots[slot], old);
        return 0;
    }
    size = entry_size(f->name_len, value_len(f));
    if (size > UINT32_MAX / 2 || reserve_slots(cf, slot, &room) != 0)
        return -ENOMEM;
    sb = &cf->slots[slot];
    old = find(sb, f->name, f->name_len);
    if (old && old->size == size) { /* same room: rewritten in place */
        e = old;
    } else {
        need = sb->len - (old ? old->size : 0) + size;
        if (need > sb->cap) {
            uint64_t cap = sb->cap ? sb->cap : first_buffer(cf, room);
            char *p;
            while (cap < need)
                cap *= 2;
            if (cap > UINT32_MAX || cap - sb->cap > room || !(p = realloc(sb->p, (size_t)cap)))
                return -ENOMEM;
            cf->bytes += cap - sb->cap;
            sb->p = p;
            sb->cap = (uint32_t)cap;
            if (old) /* the buffer moved */
                old = find(sb, f->name, f->name_len);
        }
        if (old)
            entry_remove(sb, old);
        e = (struct entry *)(void *)(sb->p + sb->len);
        sb->len += (uint32_t)size;
        sb->n++;
        e->size = (uint32_t)size;
        e->name_len = (uint16_t)f->name_len;
        sb->names |= name_bit(f->name, f->name_len);
        memcpy((char *)(e + 1), f->name, f->name_len);
    }
    e->type = (uint8_t)f->type;
    e->value_len = (uint32_t)value_len(f);
    e->boolean = (uint8_t)(f->boolean != 0);
    if (f->type == EVENT_FIELD_STRING && f->str_len)
        memcpy((char *)(e + 1) + e->name_len, f->str, f->str_len);
    else if (f->type == EVENT_FIELD_NUMBER)
        memcpy((char *)(e + 1) + e->name_len, &f->num, sizeof(double));
    return 0;
}

enum event_field_type call_fields_get(const struct call_fields *cf, uint32_t slot,
                                      const char *name, size_t len, struct event_field *out)
{
    const struct entry *e;

    if (slot == 0 || slot >= cf->n_slots || !(e = find(&cf->slots[slot], name, len)))
        return EVENT_FIELD_NONE;
    entry_read(e, out);
    return out->type;
}

size_t call_fields_count(const struct call_fields *cf, uint32_t slot)
{
    return slot && slot < cf->n_slots ? cf->slots[slot].n : 0;
}

size_t call_fields_list(const struct call_fields *cf, uint32_t slot, struct event_field *out,
                        size_t max)
{
    const struct slot_buf *sb;
    size_t i = 0;

    if (slot == 0 || slot >= cf->n_slots)
        return 0;
    sb = &cf->slots[slot];
    for (uint32_t off = 0; off < sb->len && i < max; i++) {
        const struct entry *e = (const struct entry *)(const void *)(sb->p + off);
        entry_read(e, &out[i]);
        off += e->size;
    }
    return sb->n;
}

void call_fields_clear(struct call_fields *cf, uint32_t slot)
{
    struct slot_buf *sb;

    if (slot == 0 || slot >= cf->n_slots)
        return;
    sb = &cf->slots[slot];
    if (sb->len) {
        uint32_t cap = MIN_BUFFER;
        while (cap < sb->len && cap < CALL_FIELDS_KEEP)
            cap *= 2;
        cf->learned_cap = cap;
    }
    sb->len = 0;
    sb->n = 0;
    sb->names = 0;
    if (sb->cap > CALL_FIELDS_KEEP) {
        free(sb->p);
        cf->bytes -= sb->cap;
        sb->p = NULL;
        sb->cap = 0;
    }
}

void call_fields_prefetch_index(const struct call_fields *cf, uint32_t slot)
{
    if (slot < cf->n_slots)
        __builtin_prefetch(&cf->slots[slot]);
}

void call_fields_prefetch(const struct call_fields *cf, uint32_t slot)
{
    const struct slot_buf *sb;
    uint32_t end;

    if (slot >= cf->n_slots || !(sb = &cf->slots[slot])->p)
        return;
    /* The lines in use, up to PREFETCH_MAX bytes; a new call's first writes land in the first. */
    end = sb->len == 0 ? 1 : sb->len < PREFETCH_MAX ? sb->len : PREFETCH_MAX;
    for (uint32_t off = 0; off < end; off += 64)
        __builtin_prefetch(sb->p + off, 1);
}

uint64_t call_fields_bytes(const struct call_fields *cf)
{
    return cf->bytes;
}
