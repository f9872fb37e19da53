/* lua_heap: size-class free lists over slabs for a Lua state's small objects, malloc for the
 * rest. Single-threaded, as a Lua state is. */
#include "lua_heap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define HEAP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HEAP_ASAN 1
#endif
#endif

#ifdef HEAP_ASAN
#include <sanitizer/asan_interface.h>
/* Free blocks and unused slab space are poisoned, so that the sanitizer build still catches a
 * use after free of a Lua object. */
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define GRAIN 16 /* class width and alignment: what malloc gives on x86-64, what LuaJIT expects */
#define N_CLASSES (LUA_HEAP_SMALL_MAX / GRAIN)
#define SLAB_BYTES (64u << 10)

/* A slab starts with this header (one grain), then blocks of any class, bump-allocated. */
struct slab {
    struct slab *next;
    size_t pad;
};

struct free_block {
    struct free_block *next;
};

struct lua_heap {
    struct free_block *free[N_CLASSES]; /* free[i]: blocks of (i + 1) * GRAIN bytes */
    char *bump, *end;                   /* the unused rest of the newest slab */
    struct slab *slabs;
    size_t slab_bytes;
};

_Static_assert(sizeof(struct slab) == GRAIN, "the slab header is one grain");

struct lua_heap *lua_heap_new(void)
{
    return calloc(1, sizeof(struct lua_heap));
}

void lua_heap_free(struct lua_heap *h)
{
    if (!h)
        return;
    while (h->slabs) {
        struct slab *s = h->slabs;
        UNPOISON(s, SLAB_BYTES);
        h->slabs = s->next;
        free(s);
    }
    free(h);
}

size_t lua_heap_slab_bytes(const struct lua_heap *h)
{
    return h->slab_bytes;
}

/* The class of a small size (1..LUA_HEAP_SMALL_MAX). */
static size_t class_of(size_t n)
{
    return (n - 1) / GRAIN;
}

/* A block of class cls when its free list is empty: from the newest slab, or a new one. */
static void *small_refill(struct lua_heap *h, size_t cls)
{
    size_t bytes = (cls + 1) * GRAIN;
    char *p;

    if ((size_t)(h->end - h->bump) < bytes) {
        /* The rest of the old slab (less than one block of this class) is left unused. */
        struct slab *s = malloc(SLAB_BYTES);
        if (!s)
            return NULL;
        s->next = h->slabs;
        h->slabs = s;
        h->slab_bytes += SLAB_BYTES;
        h->bump = (char *)s + sizeof(*s);
        h->end = (char *)s + SLAB_BYTES;
        POISON(h->bump, (size_t)(h->end - h->bump));
    }
    p = h->bump;
    h->bump += bytes;
    UNPOISON(p, bytes);
    return p;
}

static inline void *small_alloc(struct lua_heap *h, size_t cls)
{
    struct free_block *b = h->free[cls];

    if (!b)
        return small_refill(h, cls);
    UNPOISON(b, (cls + 1) * GRAIN);
    h->free[cls] = b->next;
    return b;
}

static inline void small_release(struct lua_heap *h, void *p, size_t cls)
{
    struct free_block *b = p;
    b->next = h->free[cls];
    h->free[cls] = b;
    POISON(p, (cls + 1) * GRAIN);
}

void *lua_heap_alloc(struct lua_heap *h, size_t n)
{
    if (n <= LUA_HEAP_SMALL_MAX)
        return small_alloc(h, class_of(n));
    return malloc(n);
}

void lua_heap_release(struct lua_heap *h, void *p, size_t n)
{
    if (n <= LUA_HEAP_SMALL_MAX)
        small_release(h, p, class_of(n));
    else
        free(p);
}

void *lua_heap_realloc(struct lua_heap *h, void *ptr, size_t osize, size_t nsize)
{
    int old_small = ptr && osize <= LUA_HEAP_SMALL_MAX;
    void *p;

    if (!ptr)
        osize = 0;
    if (nsize == 0) {
        if (old_small)
            small_release(h, ptr, class_of(osize));
        else
            free(ptr);
        return NULL;
    }
    if (nsize > LUA_HEAP_SMALL_MAX) {
        if (ptr && !old_small)
            return realloc(ptr, nsize);
        p = malloc(nsize);
    } else {
        size_t cls = class_of(nsize);
        if (old_small && class_of(osize) == cls)
            return ptr; /* the block already has room */
        p = small_alloc(h, cls);
    }
    if (!p || !ptr)
        return p;
    memcpy(p, ptr, osize < nsize ? osize : nsize);
    if (old_small)
        small_release(h, ptr, class_of(osize));
    else
        free(ptr);
    return p;
}
