/* expo: renders a metrics registry as Prometheus text exposition format 0.0.4. Families are
 * sorted by name, series by label values, numbers in shortest round-trip form, so that the same
 * registry state always renders to the same bytes. It does not compress or serve. */
#ifndef SIPSCOPE_EXPO_H
#define SIPSCOPE_EXPO_H

#include <stddef.h>

#include "metrics.h"

/* A growable output buffer, owned by the caller: init, reuse across renders, fini. */
struct expo_buf {
    char *data;
    size_t len;
    size_t cap;
};

void expo_buf_init(struct expo_buf *b);
void expo_buf_fini(struct expo_buf *b);

enum expo_flag {
    EXPO_DETERMINISTIC = 1u << 0, /* leave out METRIC_TIMING families (offline --print) */
};

/* Renders every family of reg into b (replacing its contents), collectors included.
 * Returns 0, or -ENOMEM (b then holds a prefix of the output). Holds the registry lock while it
 * walks; takes no lock from the writer's lookups. data[len] is '\0' when data is not NULL.
 * A family prints nothing until it has a series (an unused overflow series does not count);
 * its "# HELP" line is left out when its help is empty;
 * with EXPO_DETERMINISTIC, METRIC_TIMING families (collectors too) are left out. */
int expo_render(struct metrics *reg, unsigned flags, struct expo_buf *b);

#define EXPO_NUMBER_MAX 32 /* room for any expo_number output and its NUL */

/* Formats v as the exposition does and returns the length written to out (NUL-terminated):
 * "NaN", "+Inf", "-Inf"; integers with |v| <= 2^53 as plain digits ("3", "-0" as "0"); others in
 * C's %g style with the fewest of 15, 16 or 17 significant digits that read back as exactly v
 * ("0.1", "1e-05", "0.3333333333333333", "1e+20"). Needs the "C" numeric locale. */
size_t expo_number(double v, char *out);

/* ns nanoseconds in seconds: the text expo_number((double)ns / 1e9, out) writes, formatted from
 * the integer. Below 10^15 ns (11.5 days) the quotient has at most 15 significant digits, so its
 * shortest exact form is its decimal digits with trailing zeros cut ("2.5", "3722.254"); from
 * that on, and below 0.0001 s (where %g turns to "5e-05"), expo_number writes it. */
size_t expo_ns_seconds(uint64_t ns, char *out);

#endif
