/* metrics: the registry of metric families and series shared by built-in metrics, rule metrics
 * and the exposition. One engine thread writes values; scrapes read them from another thread.
 * Values are read and written with relaxed atomics (single writer per value); creating a series
 * or a family takes the registry lock, which a reader holds while it walks the series lists.
 * Series never move once created, so a series pointer stays valid for the registry's life.
 *
 * Label values are interned: a series is found by an array of symbol ids, one per label, so the
 * per-message path compares integers, not strings.
 *
 * Threads: the writer (the engine thread) may call everything. Any other thread may read values
 * (metric_value...), call the functions that take the lock themselves (metrics_family_find,
 * metrics_series_each, metrics_lock) and, while it holds the lock, every lookup and read-side
 * accessor (metrics_symbol, metrics_symbol_find, metrics_series_find, metrics_family_*,
 * metrics_symbol_ranks). Only the writer interns, creates families and series, and updates
 * values; a lookup of an existing series takes no lock. */
#ifndef SIPSCOPE_METRICS_H
#define SIPSCOPE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_MAX_LABELS 12       /* labels per family, operator labels included */
#define METRICS_MAX_BUCKETS 24      /* histogram buckets, +Inf excluded */
#define METRICS_NO_SYMBOL UINT32_MAX
#define METRICS_OVERFLOW_VALUE "_overflow_" /* every label of a family's overflow series */

#define METRICS_MAX_SYMBOL_LEN 1024 /* longest label value, in bytes after UTF-8 repair */
/* Names and help are printed on every scrape (label names on every sample line), so they are
 * capped. Prometheus sets no limit by default, but a scrape's label_name_length_limit refuses
 * the whole scrape past its own, and services that take Prometheus data have limits: 100
 * characters for a label key in Google Cloud Monitoring (where Managed Prometheus stores), 200
 * for a metric name in Datadog. The longest built-in name is under 50 bytes, the longest help
 * about 110. */
#define METRICS_MAX_NAME_LEN 200       /* bytes of a family name */
#define METRICS_MAX_LABEL_NAME_LEN 100 /* bytes of a label name */
#define METRICS_MAX_HELP_LEN 1024      /* bytes of a family's help, before UTF-8 repair */
#define METRICS_OVERFLOW_FAMILY "sipscope_series_overflow_total" /* declared by the registry */

enum metric_type {
    METRIC_COUNTER = 0,
    METRIC_GAUGE,
    METRIC_HISTOGRAM,
};

/* Family flags. */
enum metric_flag {
    METRIC_TIMING = 1u << 0, /* wall-clock dependent: left out of deterministic output (--print) */
    METRIC_HIDDEN = 1u << 1, /* bookkeeping for a collector: counted like any family, never shown
                              * (also a rule family no running rule declares, for a while) */
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
 * sipscope_series_overflow_total{family="_symbols_"}). Ids are dense, from 0.
 * Label values must be valid UTF-8 in the exposition, so this is where bytes are repaired: each
 * maximal ill-formed subsequence (Unicode §3.9) is replaced by U+FFFD before lookup, and the
 * repaired bytes are stored; "a\xff" and "a\xef\xbf\xbd" are one symbol. A value longer than
 * METRICS_MAX_SYMBOL_LEN after repair is refused like a full table (METRICS_NO_SYMBOL, counted).
 * symbol_cap counts the values callers intern; the registry's own (METRICS_OVERFLOW_VALUE,
 * "_symbols_", family names used as overflow labels) come on top. */
uint32_t metrics_intern(struct metrics *reg, const char *s, size_t len);

/* Looks a label value up without interning it (the same repair applies). Returns its id or
 * METRICS_NO_SYMBOL. */
uint32_t metrics_symbol_find(struct metrics *reg, const char *s, size_t len);

/* The bytes of a symbol (valid UTF-8, not NUL-terminated); *len is set. The pointer lives as
 * long as the registry. */
const char *metrics_symbol(const struct metrics *reg, uint32_t id, size_t *len);

/* Declares a family, or returns the existing one with the same name when its type, labels and
 * buckets are the same. help is copied. label_names are copied; they must be valid Prometheus
 * label names. buckets (histograms only) must be strictly increasing and finite. series_cap
 * bounds the series; further label combinations go to one overflow series. Returns NULL when a
 * family of that name exists with another schema, or when an argument is invalid (errno EINVAL;
 * ENAMETOOLONG for a name longer than METRICS_MAX_NAME_LEN or a label name longer than
 * METRICS_MAX_LABEL_NAME_LEN, EMSGSIZE for help longer than METRICS_MAX_HELP_LEN, whatever
 * else is wrong) or memory runs out (ENOMEM).
 * Details: name matches [a-zA-Z_:][a-zA-Z0-9_:]*; label names match [a-zA-Z_][a-zA-Z0-9_]*,
 * do not start with "__", are distinct, and a histogram has no "le". help may be NULL (none); its
 * invalid UTF-8 is repaired. n_buckets <= METRICS_MAX_BUCKETS and is 0 for other types; a
 * histogram may have 0 buckets (+Inf only). series_cap >= 1 when n_labels > 0. A redeclaration
 * keeps the first help, series_cap and flags. A family with n_labels == 0 has its one series
 * from the start (value 0), which the exposition prints at once. */
struct metric_family *metrics_family(struct metrics *reg, const char *name, const char *help,
                                     enum metric_type type, const char *const *label_names,
                                     size_t n_labels, const double *buckets, size_t n_buckets,
                                     size_t series_cap, unsigned flags);

/* Whether metrics_family with these arguments would succeed, without creating anything: 0,
 * -ENAMETOOLONG or -EMSGSIZE (too long, as for metrics_family), -EINVAL (other invalid
 * arguments) or -EEXIST (the name is taken with another schema). A reload checks every family
 * first, so that a refused one leaves the registry as it was. */
int metrics_family_check(struct metrics *reg, const char *name, const char *help,
                         enum metric_type type, const char *const *label_names, size_t n_labels,
                         const double *buckets, size_t n_buckets, size_t series_cap);

/* Leaves a family out of the exposition (METRIC_HIDDEN set), or shows it again: a rule family
 * that no rule of the running set declares any more. Its series and values are kept, so that a
 * counter shown again goes on from where it was. Writer thread; takes the lock. */
void metrics_family_set_hidden(struct metric_family *fam, bool hidden);

/* Finds the family of that name, or NULL (also for a collector's name). */
struct metric_family *metrics_family_find(struct metrics *reg, const char *name);

/* Finds or creates the series with these label value symbols (n_labels of them, in the family's
 * label order; symbols may be NULL when n_labels == 0). Past the family's series cap, or when a
 * symbol is METRICS_NO_SYMBOL, or when memory runs out, returns the family's overflow series and
 * counts it in sipscope_series_overflow_total{family} (one per call). Asking for the labels of the
 * overflow series itself (all METRICS_OVERFLOW_VALUE) returns it uncounted. Never NULL. */
struct metric_series *metrics_series(struct metric_family *fam, const uint32_t *symbols);

/* Finds a series without creating it; NULL when absent. */
struct metric_series *metrics_series_find(struct metric_family *fam, const uint32_t *symbols);

/* True for a family's overflow series. A caller that keeps series pointers to skip lookups must
 * not keep this one: each metrics_series call that returns it counts an overflow. */
bool metrics_series_is_overflow(const struct metric_series *s);

/* Value updates. Counters only go up (a negative or NaN add is ignored); gauges are set or added
 * to; histograms observe (a NaN observation is ignored; v goes to the first bucket with
 * v <= bound, else +Inf). Calling the wrong kind for the family's type is a programming error. */
void metric_counter_add(struct metric_series *s, double v);
void metric_gauge_set(struct metric_series *s, double v);
void metric_gauge_add(struct metric_series *s, double v);
void metric_histogram_observe(struct metric_series *s, double v);

/* Reads: the current value of a counter or gauge; for a histogram its count and sum, and the
 * non-cumulative count of bucket i (i == n_buckets is +Inf). The count is the sum of the bucket
 * counts, so it always agrees with them even while the writer observes. */
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
 * thread, under the registry lock, and calls emit once per series with label values as strings
 * (NUL-terminated, valid UTF-8 expected: the exposition repairs them; NULL reads as ""), each
 * label set at most once. It may read series (metrics_series_each, metrics_series_find) but
 * must not create anything. Registering the same name twice, or the name of a family, returns
 * -EEXIST; invalid names or a histogram type return -EINVAL, names or help too long
 * -ENAMETOOLONG or -EMSGSIZE (as metrics_family); -ENOMEM. Returns 0. */
typedef void (*metrics_emit_fn)(void *emit_ctx, const char *const *label_values, double value);
typedef void (*metrics_collect_fn)(void *ctx, struct metrics *reg, metrics_emit_fn emit,
                                   void *emit_ctx);
int metrics_collector(struct metrics *reg, const char *name, const char *help,
                      enum metric_type type, const char *const *label_names, size_t n_labels,
                      unsigned flags, metrics_collect_fn fn, void *ctx);

/* Read side: what the exposition needs to walk the registry. */

/* Takes and releases the registry lock (recursive: a collector or series_each callback may call
 * functions that take it again). While it is held, no symbol, family or series is created. */
void metrics_lock(struct metrics *reg);
void metrics_unlock(struct metrics *reg);

/* Families and collectors in declaration order, i < metrics_family_count (under the lock). */
size_t metrics_family_count(const struct metrics *reg);
struct metric_family *metrics_family_at(const struct metrics *reg, size_t i);

/* A family's schema; strings live as long as the registry. help is "" when none was given.
 * labels returns the label names and sets *n; buckets returns the bounds (+Inf excluded) and
 * sets *n (0 and NULL for non-histograms). */
const char *metrics_family_name(const struct metric_family *fam);
const char *metrics_family_help(const struct metric_family *fam);
enum metric_type metrics_family_type(const struct metric_family *fam);
unsigned metrics_family_flags(const struct metric_family *fam);
const char *const *metrics_family_labels(const struct metric_family *fam, size_t *n);
const double *metrics_family_buckets(const struct metric_family *fam, size_t *n);

/* The number of series metrics_series_each would visit now (under the lock); the overflow series
 * may become used right after, so a caller sizing an array adds one. 0 for collectors. */
size_t metrics_family_series_count(const struct metric_family *fam);

/* The bytes one more series of fam takes, its symbols aside: its record and its share of the
 * family's lookup table (kept at most half full, and doubled, so up to four slots a series).
 * For a caller that bounds the memory of the series it creates; series are never freed. */
size_t metrics_series_bytes(const struct metric_family *fam);

/* The bytes a new symbol of len bytes takes: its text, its entry and its share of the symbol
 * table (up to four slots, as above). */
size_t metrics_symbol_bytes(size_t len);

/* Runs a collector family's function (under the lock). Returns 0, or -EINVAL for a family that
 * is not a collector. */
int metrics_family_collect(struct metric_family *fam, metrics_emit_fn emit, void *emit_ctx);

/* Under the lock: rank[id] for every interned symbol id, its position in the bytewise order of
 * all symbols (shorter first on a common prefix), so that sorting series by label values compares
 * integers. Kept up to date incrementally; valid until the lock is released. NULL on ENOMEM. */
const uint32_t *metrics_symbol_ranks(struct metrics *reg);

/* UTF-8 (RFC 3629: no overlong forms, surrogates or code points past U+10FFFF). Returns the
 * length of the longest well-formed prefix of s; when it is < len, *bad is set to the length
 * (1 to 3) of the maximal ill-formed subsequence that starts there, else to 0. */
size_t metrics_utf8_prefix(const char *s, size_t len, size_t *bad);

#endif
