/* call_fields: the fields rules add to calls' lines in the events file (d.cdr), held in C by the
 * call's slot number (the rules state's dense per-call numbering, lua_bridge's lb_slots) until
 * the line is written. They used to be one Lua table per call: tens of thousands of live tables
 * that every garbage collection cycle traversed, and a table walk through the Lua API to encode
 * each line. Here a call's fields are one packed buffer, reused by the next call of its slot; a
 * field is set, replaced, removed and read back by name, and listed for encoding. Nothing is
 * encoded here: the caller writes JSON (lua_bridge's encoder, shared with r.event's fields).
 *
 * Memory: a slot's first buffer is the size the last ended call's fields needed (a power of two
 * from 128 bytes up to CALL_FIELDS_KEEP, within the caller's room), so that a new slot is not
 * grown by reallocations field by field. Each slot's buffer grows by doubling and is kept for
 * the slot's next call, so a steady load allocates nothing; a buffer over CALL_FIELDS_KEEP bytes
 * is freed when its call's fields are cleared. call_fields_bytes is what the buffers hold; a set
 * that would grow them by more than the room its caller grants fails with -ENOMEM and changes
 * nothing. */
#ifndef SIPSCOPE_CALL_FIELDS_H
#define SIPSCOPE_CALL_FIELDS_H

#include <stddef.h>
#include <stdint.h>

#define CALL_FIELDS_KEEP 1024 /* bytes of a slot's buffer kept for its next call */
#define CALL_FIELDS_MAX_NAME 65535
#define CALL_FIELDS_MAX_SLOTS (1u << 30)

enum event_field_type {
    EVENT_FIELD_NONE,    /* no such field; set: remove it */
    EVENT_FIELD_STRING,  /* str[str_len], any bytes (the encoder escapes them) */
    EVENT_FIELD_NUMBER,  /* num, finite (the caller checks) */
    EVENT_FIELD_BOOLEAN, /* boolean, 0 or 1 */
    EVENT_FIELD_NULL,    /* written as null (r.event values of other types) */
};

/* One field: the form fields are set in, listed in and encoded from. name and str point into
 * the caller's memory (set) or the store's (get, list: valid until the slot's next change). */
struct event_field {
    const char *name;
    size_t name_len;
    enum event_field_type type;
    const char *str;
    size_t str_len;
    double num;
    int boolean;
};

struct call_fields;

/* An empty store. NULL when out of memory. */
struct call_fields *call_fields_new(void);

/* Frees the store and every slot's buffer; NULL is fine. */
void call_fields_free(struct call_fields *cf);

/* Sets field f->name of the call in slot (1..CALL_FIELDS_MAX_SLOTS) to f's value, replacing
 * the value it had; type EVENT_FIELD_NONE removes it. The bytes are copied. Returns 0; -EINVAL
 * for a bad slot, an empty name or one over CALL_FIELDS_MAX_NAME bytes; -ENOMEM when the
 * buffers would grow by more than room bytes, or out of memory (nothing changed then). */
int call_fields_set(struct call_fields *cf, uint32_t slot, const struct event_field *f,
                    uint64_t room);

/* The field named name[len] of the call in slot, into *out (pointing into the store). Returns
 * its type, EVENT_FIELD_NONE when it has no such field. */
enum event_field_type call_fields_get(const struct call_fields *cf, uint32_t slot,
                                      const char *name, size_t len, struct event_field *out);

/* How many fields the call in slot has. */
size_t call_fields_count(const struct call_fields *cf, uint32_t slot);

/* Lists the call's fields into out[0..max), in no particular order; returns how many it has
 * (more than max: only max were listed). Pointers are valid until the slot changes. */
size_t call_fields_list(const struct call_fields *cf, uint32_t slot, struct event_field *out,
                        size_t max);

/* Removes all the call's fields (the slot's call ended, or the slot was freed). */
void call_fields_clear(struct call_fields *cf, uint32_t slot);

/* Cache hints for a call about to be dispatched (no effect on the contents). The slot's buffer
 * is read at the call's events, long after the call's last message, so it is cold by then:
 * call_fields_prefetch_index starts loading the slot's index entry (stages ahead, with the
 * call's other records), call_fields_prefetch the buffer itself (once the index entry is in, as
 * the call's event is dispatched: its first use, by a hook or at the line, comes after the
 * hooks' start). Any slot number is fine. */
void call_fields_prefetch_index(const struct call_fields *cf, uint32_t slot);
void call_fields_prefetch(const struct call_fields *cf, uint32_t slot);

/* Bytes the store holds (slot buffers and its own index). */
uint64_t call_fields_bytes(const struct call_fields *cf);

#endif
