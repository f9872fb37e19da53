/* config: parsing of command-line values (durations, counts, sizes, name lists) with clear
 * errors. It knows no flag names; main.c maps flags to values. */
#ifndef SIPSCOPE_CONFIG_H
#define SIPSCOPE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

/* Parses a duration like Go and Prometheus write them: one or more number+unit pairs, units
 * ns, us, ms, s, m, h, d ("500ms", "32s", "1h30m", "0.5s"), each unit at most once and the
 * larger first, as Prometheus requires ("1s1s" and "1m2h" are refused). Returns 0 and sets *ns,
 * or -EINVAL (no unit, unknown unit, a unit twice or out of order, negative, or overflow) with
 * a reason in err[errlen]. */
int config_parse_duration(const char *text, uint64_t *ns, char *err, size_t errlen);

/* Parses a whole number in [min, max]. Returns 0 or -EINVAL with a reason. */
int config_parse_count(const char *text, uint64_t min, uint64_t max, uint64_t *out, char *err,
                       size_t errlen);

/* Parses a byte size: a number with an optional unit B, KiB, MiB, GiB (or K, M, G, powers of
 * 1024). Returns 0 or -EINVAL with a reason. */
int config_parse_size(const char *text, uint64_t *bytes, char *err, size_t errlen);

/* Parses a comma-separated list of names out of names[0..n) ("vxlan,gre"): sets bit i of *bits
 * for names[i]. Returns 0, or -EINVAL for an empty list, an empty item or an unknown name, with
 * a reason that lists the known ones. */
int config_parse_names(const char *text, const char *const *names, unsigned n, unsigned *bits,
                       char *err, size_t errlen);

/* Checks that no item of a comma-separated list repeats an earlier one, byte for byte
 * ("lo,eth0,lo": 'lo'). Empty items are not compared: the list's own parser refuses or skips
 * them. A repeat on a command line is a typo (an item meant, another forgotten), whatever the
 * list names. Returns 0, or -EINVAL with "'ITEM' is listed twice" in err[errlen]. */
int config_list_unique(const char *text, char *err, size_t errlen);

#endif
