/* clock_shift: an LD_PRELOAD library for tests that steps the wall clock of one process, as a
 * step of the system clock would (NTP setting a clock that was wrong, a VM resumed from a pause),
 * without touching the machine's: clock_gettime(CLOCK_REALTIME) returns the real time plus the
 * seconds written in the file named by CLOCK_SHIFT_FILE (a decimal, negative for a step back;
 * read again on every call; no file, or no number in it, is 0). Only clock_gettime with
 * CLOCK_REALTIME is moved (what sipscope reads the wall clock with): not time(), gettimeofday(),
 * CLOCK_REALTIME_COARSE or CLOCK_TAI, and no other clock.
 *
 *   LD_PRELOAD=libclock_shift.so CLOCK_SHIFT_FILE=FILE program ... */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define NS_PER_S 1000000000LL

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

static double shift_seconds(void)
{
    const char *path = getenv("CLOCK_SHIFT_FILE");
    FILE *f = path ? fopen(path, "re") : NULL;
    double s = 0;

    if (!f)
        return 0;
    if (fscanf(f, "%lf", &s) != 1)
        s = 0;
    fclose(f);
    return s;
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
    static clock_gettime_fn real;
    long long ns;
    int rc;

    if (!real)
        real = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
    rc = real(id, ts);
    if (rc != 0 || id != CLOCK_REALTIME)
        return rc;
    ns = (long long)ts->tv_sec * NS_PER_S + ts->tv_nsec + (long long)(shift_seconds() * 1e9);
    if (ns < 0)
        ns = 0;
    ts->tv_sec = (time_t)(ns / NS_PER_S);
    ts->tv_nsec = (long)(ns % NS_PER_S);
    return 0;
}
