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
 * Returns 0, or -ENOMEM (b then holds a prefix of the output). */
int expo_render(struct metrics *reg, unsigned flags, struct expo_buf *b);

#endif
