/* oplabel: the operator label dimensions that rules declare (sip.label{...}) and that every
 * built-in sip_ family carries. It interns each label's values into small ids (0 = the default)
 * with a per-label cap, and maps ids to registry symbols for the exposition. It does not run
 * rules: the Lua bridge computes values and hands them here. */
#ifndef SIPSCOPE_OPLABEL_H
#define SIPSCOPE_OPLABEL_H

#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "track_event.h"

#define OPLABEL_MAX_VALUES 65535 /* ids are uint16 in the trackers' compact state */

struct oplabel_set;

/* Creates an empty set bound to reg (for symbols and sipscope_label_overflow_total). NULL on
 * allocation failure. */
struct oplabel_set *oplabel_new(struct metrics *reg);
void oplabel_free(struct oplabel_set *set);

/* Declares a label. Returns its index (0..TRACK_MAX_LABELS-1), or -EEXIST for a duplicate name,
 * -EINVAL for an invalid name (also one longer than METRICS_MAX_LABEL_NAME_LEN: it is printed
 * on every sample of every sip_ family), a built-in label name or max_values outside
 * 1..OPLABEL_MAX_VALUES, -ENOSPC past TRACK_MAX_LABELS labels. Declarations happen before any
 * traffic. */
int oplabel_declare(struct oplabel_set *set, const char *name, const char *default_value,
                    uint32_t max_values);

/* Number of declared labels and their names, in declaration order. */
size_t oplabel_count(const struct oplabel_set *set);
const char *oplabel_name(const struct oplabel_set *set, size_t idx);

/* Index of a declared label by name, or -ENOENT. */
int oplabel_find(const struct oplabel_set *set, const char *name);

/* The id of value s[len] of label idx, interning it if new. Past the label's max_values, or
 * when the value equals the default, returns 0 (the default); overflow is counted in
 * sipscope_label_overflow_total{label}. */
uint16_t oplabel_value(struct oplabel_set *set, size_t idx, const char *s, size_t len);

/* The registry symbol of value id of label idx (id 0: the default's). */
uint32_t oplabel_symbol(const struct oplabel_set *set, size_t idx, uint16_t id);

/* The value's text; *len is set. Lives as long as the set. */
const char *oplabel_text(const struct oplabel_set *set, size_t idx, uint16_t id, size_t *len);

/* True when name is reserved for built-in labels (method, code, kind, state, reason, outcome,
 * iface, le, job, instance, ...). */
int oplabel_is_reserved(const char *name);

#endif
