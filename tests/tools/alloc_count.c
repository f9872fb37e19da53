/* alloc_count: an LD_PRELOAD library for tests that counts a process's heap allocations
 * (malloc, calloc, realloc, posix_memalign and aligned_alloc; glibc's strdup and stdio reach
 * malloc through its symbol, so they count too) and, at exit, writes the count as one decimal line
 * to the file named by ALLOC_COUNT_FILE (nothing without it). A test compares the counts of two
 * runs that differ only in how many packets they read: the engine's claim is that the per-packet
 * path never allocates, so the counts must be equal. mmap is not counted (only table set-up uses
 * it).
 *
 *   LD_PRELOAD=liballoc_count.so ALLOC_COUNT_FILE=FILE program ... */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

static unsigned long count;

/* dlsym itself may call calloc before the real one is known: those few come from here. */
static char early[4096];
static size_t early_used;

static void *early_alloc(size_t n)
{
    void *p;

    n = (n + 15) & ~(size_t)15;
    if (early_used + n > sizeof(early))
        return NULL;
    p = early + early_used;
    early_used += n;
    return p;
}

static int is_early(const void *p)
{
    return (const char *)p >= early && (const char *)p < early + sizeof(early);
}

void *malloc(size_t n)
{
    static void *(*real)(size_t);
    if (!real)
        real = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED);
    return real(n);
}

void *calloc(size_t a, size_t b)
{
    static void *(*real)(size_t, size_t);
    static int resolving;
    if (!real) {
        if (resolving)
            return early_alloc(a * b); /* zeroed: static storage */
        resolving = 1;
        real = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
        resolving = 0;
    }
    __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED);
    return real(a, b);
}

void *realloc(void *p, size_t n)
{
    static void *(*real)(void *, size_t);
    if (!real)
        real = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
    __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED);
    return real(p, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    static int (*real)(void **, size_t, size_t);
    if (!real)
        real = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
    __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED);
    return real(out, align, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    static void *(*real)(size_t, size_t);
    if (!real)
        real = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
    __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED);
    return real(align, n);
}

void free(void *p)
{
    static void (*real)(void *);
    if (is_early(p))
        return;
    if (!real)
        real = (void (*)(void *))dlsym(RTLD_NEXT, "free");
    real(p);
}

__attribute__((destructor)) static void write_count(void)
{
    const char *path = getenv("ALLOC_COUNT_FILE");
    FILE *f;

    if (!path || !(f = fopen(path, "we")))
        return;
    fprintf(f, "%lu\n", __atomic_load_n(&count, __ATOMIC_RELAXED));
    fclose(f);
}
