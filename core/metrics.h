/* metrics: the registry of metric families and series shared by built-in metrics, rule metrics
 * and the exposition. One engine thread writes values; scrapes read them from another thread.
 * Values are read and written with relaxed atomics (single writer per value); creating a series
 * or a family takes the registry lock, which a reader holds while it walks the series lists.
 * Series never move once created, so a series pointer stays valid for the registry's life.
 *
 * Label values are interned: a series is found by an array of symbol ids, one per label, so the
 * per-message path compares integers, not strings. */
#ifndef SIPSCOPE_METRICS_H
#define SIPSCOPE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_MAX_LABELS 12       /* labels per family, operator labels included */
#define METRICS_MAX_BUCKETS 24      /* histogram buckets, +Inf excluded */
#define METRICS_NO_SYMBOL UINT32_MAX
#define METRICS_OVERFLOW_VALUE "_overflow_" /* every label of a family's overflow series */

enum metric_type {
    METRIC_COUNTER = 0,
    METRIC_GAUGE,
    METRIC_HISTOGRAM,
};

/* Family flags. */
enum metric_flag {
    METRIC_TIMING = 1u << 0, /* wall-clock dependent: left out of deterministic output (--print) */
};

struct metrics;
struct metric_family;
struct metric_series;

/* Creates a registry. symbol_cap bounds the interned label values (memory bound). Returns NULL on
 * allocation failure. */
struct metrics *metrics_new(size_t symbol_cap);

/* Frees the registry, its families and series. NULL is accepted. */
void metrics_free(struct metrics *reg);

/* Interns a label value (any bytes; the exposition escapes them). Returns its symbol id, the same
 * for equal bytes; METRICS_NO_SYMBOL when the symbol table is full (counted in
 * sipscope_series_overflow_total{family="_symbols_"}). */
uint32_t metrics_intern(struct metrics *reg, const char *s, size_t len);

/* Looks a label value up without interning it. Returns its id or METRICS_NO_SYMBOL. */
uint32_t metrics_symbol_find(struct metrics *reg, const char *s, size_t len);

/* The bytes of a symbol; *len is set. The pointer lives as long as the registry. */
const char *metrics_symbol(const struct metrics *reg, uint32_t id, size_t *len);

/* Declares a family, or returns the existing one with the same name when its type, labels and
 * buckets are the same. help is copied. label_names are copied; they must be valid Prometheus
 * label names. buckets (histograms only) must be strictly increasing and finite. series_cap
 * bounds the series; further label combinations go to one overflow series. Returns NULL when a
 * family of that name exists with another schema, or when an argument is invalid (errno EINVAL)
 * or memory runs out (ENOMEM). */
struct metric_family *metrics_family(struct metrics *reg, const char *name, const char *help,
                                     enum metric_type type, const char *const *label_names,
                                     size_t n_labels, const double *buckets, size_t n_buckets,
                                     size_t series_cap, unsigned flags);

/* Finds the family of that name, or NULL. */
struct metric_family *metrics_family_find(struct metrics *reg, const char *name);

/* Finds or creates the series with these label value symbols (n_labels of them, in the family's
 * label order). Past the family's series cap, or when a symbol is METRICS_NO_SYMBOL, returns the
 * family's overflow series and counts it in sipscope_series_overflow_total{family}. Never NULL. */
struct metric_series *metrics_series(struct metric_family *fam, const uint32_t *symbols);

/* Finds a series without creating it; NULL when absent. */
struct metric_series *metrics_series_find(struct metric_family *fam, const uint32_t *symbols);

/* Value updates. Counters only go up (a negative or NaN add is ignored); gauges are set or added
 * to; histograms observe. Calling the wrong kind for the family's type is a programming error. */
void metric_counter_add(struct metric_series *s, double v);
void metric_gauge_set(struct metric_series *s, double v);
void metric_gauge_add(struct metric_series *s, double v);
void metric_histogram_observe(struct metric_series *s, double v);

/* Reads: the current value of a counter or gauge; for a histogram its count and sum, and the
 * non-cumulative count of bucket i (i == n_buckets is +Inf). */
double metric_value(const struct metric_series *s);
uint64_t metric_histogram_count(const struct metric_series *s);
double metric_histogram_sum(const struct metric_series *s);
uint64_t metric_histogram_bucket(const struct metric_series *s, size_t i);

/* Walks the series of a family in creation order (the overflow series last, if used), under the
 * registry lock: fn must not create series or families. Returns the number visited. */
size_t metrics_series_each(struct metric_family *fam,
                           void (*fn)(void *ctx, const struct metric_series *s,
                                      const uint32_t *symbols),
                           void *ctx);

/* A collector computes series at read time (ratios, process_* metrics). It runs on the reader's
 * thread, under the registry lock, and calls emit once per series with label values as strings.
 * Registering the same name twice returns -EEXIST. */
typedef void (*metrics_emit_fn)(void *emit_ctx, const char *const *label_values, double value);
typedef void (*metrics_collect_fn)(void *ctx, struct metrics *reg, metrics_emit_fn emit,
                                   void *emit_ctx);
int metrics_collector(struct metrics *reg, const char *name, const char *help,
                      enum metric_type type, const char *const *label_names, size_t n_labels,
                      unsigned flags, metrics_collect_fn fn, void *ctx);

#endif
