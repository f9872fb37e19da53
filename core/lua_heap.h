/* lua_heap: the memory behind one Lua state. Small blocks (most Lua objects: strings, tables,
 * cdata, closures) come from per-size free lists carved out of 64 KiB slabs, so that the
 * allocations a rule makes per message cost a list pop instead of a trip through malloc; larger
 * blocks go to malloc. It keeps no byte count and no cap: the caller (lua_bridge.c) does.
 *
 * Memory freed to the heap stays in its free lists for reuse by the same state (small blocks)
 * until lua_heap_free; large blocks are returned to malloc at once. */
#ifndef SIPSCOPE_LUA_HEAP_H
#define SIPSCOPE_LUA_HEAP_H

#include <stddef.h>

/* Blocks up to this many bytes come from the free lists. */
#define LUA_HEAP_SMALL_MAX 1024

struct lua_heap;

/* A new, empty heap, or NULL when out of memory. Free with lua_heap_free. */
struct lua_heap *lua_heap_new(void);

/* Frees the heap and every block still allocated from it (after lua_close). NULL is a no-op. */
void lua_heap_free(struct lua_heap *h);

/* The lua_Alloc contract without the byte count: ptr (NULL, or a block of osize bytes from this
 * heap) resized to nsize bytes, contents kept up to the smaller size. nsize == 0 frees ptr and
 * returns NULL. Returns NULL when out of memory, ptr then being unchanged. Blocks are aligned
 * to 16 bytes. osize must be the size ptr was last given with. */
void *lua_heap_realloc(struct lua_heap *h, void *ptr, size_t osize, size_t nsize);

/* The two halves of lua_heap_realloc that a Lua state uses most, without its branches: a new
 * block of n > 0 bytes (NULL when out of memory), and freeing a block of n bytes (p not NULL). */
void *lua_heap_alloc(struct lua_heap *h, size_t n);
void lua_heap_release(struct lua_heap *h, void *p, size_t n);

/* Bytes the heap holds from malloc for small blocks (slabs), used or free. */
size_t lua_heap_slab_bytes(const struct lua_heap *h);

#endif
