/* builtin: the built-in sip_ metric families of METRICS.md, updated from track events. It
 * declares the families (operator labels appended to each), turns every event into counter,
 * gauge and histogram updates, and computes the ratio gauges at scrape time. It knows nothing
 * of packets or rules. */
#ifndef SIPSCOPE_BUILTIN_H
#define SIPSCOPE_BUILTIN_H

#include "metrics.h"
#include "oplabel.h"
#include "track_event.h"

struct builtin;

/* Declares every sip_ family in reg, each with the labels of METRICS.md followed by the
 * operator labels of ops (declared before this call; they cannot change afterwards), and
 * creates at 0 the series METRICS.md exports from the start (closed label sets, operator labels
 * at their defaults). Returns NULL on allocation failure or when reg already holds a family of
 * another schema. */
struct builtin *builtin_new(struct metrics *reg, const struct oplabel_set *ops);
void builtin_free(struct builtin *b);

/* Applies one track event. Suitable as (part of) a track_sink emit function. */
void builtin_on_event(struct builtin *b, const struct track_event *ev);

/* Delays that came out negative and were clamped to zero (out-of-order captures). */
uint64_t builtin_negative_delays(const struct builtin *b);

#endif
