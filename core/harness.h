/* harness: the C entry points of the Lua test harness (lua/sipscope/testing.lua), which calls
 * them through FFI in `sipscope --lua-script` mode: build an engine from plain arguments, feed it
 * SIP text as synthetic UDP or TCP frames, read metric values and the exposition back. The
 * daemon does not use it. Every function runs on the engine's thread. */
#ifndef SIPSCOPE_HARNESS_H
#define SIPSCOPE_HARNESS_H

#include <stddef.h>
#include <stdint.h>

struct engine;

/* Builds an engine with the rules of rules_dir, or else of rule_files (paths separated by
 * newlines; NULL or "" for none), writing events to events_path (NULL for none). options are
 * "key=value" lines overriding the defaults: t1, timer_b, timer_c, timer_f, max_call_age
 * (durations like "500ms"), max_calls, max_transactions, max_registrations, max_series,
 * breaker_errors, breaker_timeouts (counts), lua_memory (a size like "16MiB"), rule_budget (a
 * duration), sip_ports (a port list), events_fields (as --events-fields), jit_log (1: record
 * trace events, see harness_jit_log). Timers
 * B and F follow T1 unless set. Returns NULL with a reason in err[errlen]. Free with engine_free.
 */
struct engine *harness_engine_new(const char *rules_dir, const char *rule_files,
                                  const char *events_path, const char *options, char *err,
                                  size_t errlen);

/* Feeds text[len] as one UDP datagram (tcp = 0) or TCP segment (tcp = 1) captured at t_ns, from
 * src to dst, each "192.0.2.1:5060" or "[2001:db8::1]:5060". Returns 0, or -EINVAL with a reason
 * for a bad address or a payload over 65,000 bytes. */
int harness_feed(struct engine *e, const char *text, size_t len, uint64_t t_ns, const char *src,
                 const char *dst, int tcp, char *err, size_t errlen);

/* The value of one series: family `name` (a histogram's name_count, name_sum, or name_bucket
 * with an "le" label, cumulative as exposed) with exactly its labels given as n name/value
 * pairs, in any order. Ratio gauges are computed as a scrape would. Returns 0 with *out set,
 * -ENOENT when the series does not exist (yet), -EINVAL when no family has that name or the
 * label names do not match its labels (err says which). */
int harness_metric(struct engine *e, const char *name, const char *const *label_names,
                   const char *const *label_values, size_t n, double *out, char *err,
                   size_t errlen);

/* Renders the exposition (deterministic: timing families left out when deterministic != 0).
 * Returns a malloc'd NUL-terminated text the caller frees with harness_free, *len set; NULL on
 * ENOMEM. */
char *harness_exposition(struct engine *e, int deterministic, size_t *len);
void harness_free(void *p);

/* The rules' JIT trace log (lua_bridge_jit_log), malloc'd like harness_exposition; NULL without
 * rules or memory. */
char *harness_jit_log(struct engine *e, size_t *len);

#endif
