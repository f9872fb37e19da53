/* oplabel: declared operator labels and their interned values. */
#include "oplabel.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct oplabel {
    char *name;
    uint32_t max_values; /* ids 1..max_values; 0 is the default */
    uint32_t n_values;
    uint32_t *symbols; /* id -> registry symbol, max_values + 1 entries */
    uint32_t *slots;   /* open addressing: registry symbol + 1 -> id, 0 = empty */
    uint16_t *slot_ids;
    uint32_t slot_mask;
    struct metric_series *overflow;
};

struct oplabel_set {
    struct metrics *reg;
    struct metric_family *overflow_family;
    struct oplabel labels[TRACK_MAX_LABELS];
    size_t n;
};

/* Label names the built-in families, the exposition or Prometheus itself already use. */
static const char *const reserved[] = {
    "method", "code",   "kind",   "state",  "reason",   "outcome", "iface",   "le",
    "job",    "instance", "table", "family", "stage",   "transport", "ip",    "result",
    "rule",   "hook",   "version", "luajit", "capture", "label",   "quantile", NULL,
};

int oplabel_is_reserved(const char *name)
{
    for (int i = 0; reserved[i]; i++)
        if (strcmp(reserved[i], name) == 0)
            return 1;
    return strncmp(name, "__", 2) == 0;
}

static int valid_name(const char *s)
{
    if (!s || !*s || strnlen(s, METRICS_MAX_LABEL_NAME_LEN + 1) > METRICS_MAX_LABEL_NAME_LEN)
        return 0;
    for (const char *p = s; *p; p++) {
        int alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_';
        if (!alpha && !(p != s && *p >= '0' && *p <= '9'))
            return 0;
    }
    return 1;
}

struct oplabel_set *oplabel_new(struct metrics *reg)
{
    static const char *const names[] = {"label"};
    struct oplabel_set *set = calloc(1, sizeof(*set));

    if (!set)
        return NULL;
    set->reg = reg;
    set->overflow_family = metrics_family(
        reg, "sipscope_label_overflow_total",
        "Rule label values that fell back to the default: the label reached max_values, or the "
        "value was longer than 1,024 bytes.",
        METRIC_COUNTER, names, 1, NULL, 0, TRACK_MAX_LABELS, 0);
    if (!set->overflow_family) {
        free(set);
        return NULL;
    }
    return set;
}

void oplabel_free(struct oplabel_set *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->n; i++) {
        free(set->labels[i].name);
        free(set->labels[i].symbols);
        free(set->labels[i].slots);
        free(set->labels[i].slot_ids);
    }
    free(set);
}

int oplabel_declare(struct oplabel_set *set, const char *name, const char *default_value,
                    uint32_t max_values)
{
    struct oplabel *l;
    uint32_t nslots = 2;
    uint32_t sym;

    if (!valid_name(name) || oplabel_is_reserved(name) || !default_value || max_values == 0 ||
        max_values > OPLABEL_MAX_VALUES)
        return -EINVAL;
    if (oplabel_find(set, name) >= 0)
        return -EEXIST;
    if (set->n == TRACK_MAX_LABELS)
        return -ENOSPC;
    while (nslots < 2 * (max_values + 1))
        nslots <<= 1;
    l = &set->labels[set->n];
    memset(l, 0, sizeof(*l));
    l->name = strdup(name);
    l->symbols = calloc((size_t)max_values + 1, sizeof(uint32_t));
    l->slots = calloc(nslots, sizeof(uint32_t));
    l->slot_ids = calloc(nslots, sizeof(uint16_t));
    sym = metrics_intern(set->reg, default_value, strlen(default_value));
    if (!l->name || !l->symbols || !l->slots || !l->slot_ids || sym == METRICS_NO_SYMBOL) {
        free(l->name);
        free(l->symbols);
        free(l->slots);
        free(l->slot_ids);
        return -ENOMEM;
    }
    l->max_values = max_values;
    l->slot_mask = nslots - 1;
    l->symbols[0] = sym;
    l->overflow = NULL;
    return (int)set->n++;
}

size_t oplabel_count(const struct oplabel_set *set)
{
    return set->n;
}

const char *oplabel_name(const struct oplabel_set *set, size_t idx)
{
    return set->labels[idx].name;
}

int oplabel_find(const struct oplabel_set *set, const char *name)
{
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->labels[i].name, name) == 0)
            return (int)i;
    return -ENOENT;
}

static uint32_t slot_of(const struct oplabel *l, uint32_t sym)
{
    uint32_t i = (sym * 0x9e3779b1u) & l->slot_mask;
    while (l->slots[i] != 0 && l->slots[i] != sym + 1)
        i = (i + 1) & l->slot_mask;
    return i;
}

uint16_t oplabel_value(struct oplabel_set *set, size_t idx, const char *s, size_t len)
{
    struct oplabel *l = &set->labels[idx];
    uint32_t sym = metrics_symbol_find(set->reg, s, len);
    uint32_t slot;

    if (sym == l->symbols[0])
        return 0;
    if (sym != METRICS_NO_SYMBOL) {
        slot = slot_of(l, sym);
        if (l->slots[slot])
            return l->slot_ids[slot];
    }
    if (l->n_values == l->max_values ||
        (sym == METRICS_NO_SYMBOL &&
         (sym = metrics_intern(set->reg, s, len)) == METRICS_NO_SYMBOL)) {
        if (!l->overflow) {
            uint32_t name_sym = metrics_intern(set->reg, l->name, strlen(l->name));
            l->overflow = metrics_series(set->overflow_family, &name_sym);
        }
        metric_counter_add(l->overflow, 1);
        return 0;
    }
    slot = slot_of(l, sym);
    l->n_values++;
    l->symbols[l->n_values] = sym;
    l->slots[slot] = sym + 1;
    l->slot_ids[slot] = (uint16_t)l->n_values;
    return (uint16_t)l->n_values;
}

uint32_t oplabel_symbol(const struct oplabel_set *set, size_t idx, uint16_t id)
{
    const struct oplabel *l = &set->labels[idx];
    return id <= l->n_values ? l->symbols[id] : l->symbols[0];
}

const char *oplabel_text(const struct oplabel_set *set, size_t idx, uint16_t id, size_t *len)
{
    return metrics_symbol(set->reg, oplabel_symbol(set, idx, id), len);
}
