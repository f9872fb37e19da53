#include "lua_heap.h"

#include <stdint.h>

#include "test.h"

static int aligned(const void *p)
{
    return ((uintptr_t)p & 15) == 0;
}

TEST(a_freed_small_block_is_reused_for_the_same_size_class)
{
    struct lua_heap *h = lua_heap_new();
    void *a = lua_heap_realloc(h, NULL, 0, 40);
    void *b;
    CHECK(a != NULL);
    CHECK(aligned(a));
    CHECK(lua_heap_realloc(h, a, 40, 0) == NULL);
    b = lua_heap_realloc(h, NULL, 0, 48); /* 33..48 bytes share a class */
    CHECK(b == a);
    lua_heap_free(h);
}

TEST(blocks_of_one_slab_do_not_overlap)
{
    struct lua_heap *h = lua_heap_new();
    unsigned char *p[64];
    for (int i = 0; i < 64; i++) {
        p[i] = lua_heap_realloc(h, NULL, 0, 16 + 16 * (size_t)(i % 8));
        CHECK(aligned(p[i]));
        memset(p[i], i, 16 + 16 * (size_t)(i % 8));
    }
    for (int i = 0; i < 64; i++)
        for (size_t j = 0; j < 16 + 16 * (size_t)(i % 8); j++)
            if (p[i][j] != i)
                TEST_FAIL_AT("block %d byte %zu was overwritten", i, j);
    CHECK_INT(lua_heap_slab_bytes(h), 64 << 10);
    lua_heap_free(h);
}

TEST(growing_keeps_the_contents_across_classes_and_into_malloc)
{
    struct lua_heap *h = lua_heap_new();
    char *p = lua_heap_realloc(h, NULL, 0, 10);
    memcpy(p, "0123456789", 10);
    p = lua_heap_realloc(h, p, 10, 12); /* same class: in place */
    CHECK(memcmp(p, "0123456789", 10) == 0);
    p = lua_heap_realloc(h, p, 12, 500);
    CHECK(memcmp(p, "0123456789", 10) == 0);
    p = lua_heap_realloc(h, p, 500, 5000);
    CHECK(memcmp(p, "0123456789", 10) == 0);
    p = lua_heap_realloc(h, p, 5000, 9000);
    CHECK(memcmp(p, "0123456789", 10) == 0);
    p = lua_heap_realloc(h, p, 9000, 4); /* back into a small class: the first 4 bytes */
    CHECK(memcmp(p, "0123", 4) == 0);
    CHECK(aligned(p));
    lua_heap_realloc(h, p, 4, 0);
    lua_heap_free(h);
}

TEST(a_block_the_size_of_the_small_limit_is_small_and_one_byte_more_is_not)
{
    struct lua_heap *h = lua_heap_new();
    void *a = lua_heap_realloc(h, NULL, 0, LUA_HEAP_SMALL_MAX);
    void *b = lua_heap_realloc(h, NULL, 0, LUA_HEAP_SMALL_MAX + 1);
    CHECK_INT(lua_heap_slab_bytes(h), 64 << 10); /* only a took slab space */
    lua_heap_realloc(h, a, LUA_HEAP_SMALL_MAX, 0);
    lua_heap_realloc(h, b, LUA_HEAP_SMALL_MAX + 1, 0);
    lua_heap_free(h);
}

TEST(a_new_slab_is_taken_when_the_first_is_used_up)
{
    struct lua_heap *h = lua_heap_new();
    /* 64 KiB less the 16-byte header holds 63 blocks of 1024 bytes, not 64. */
    for (int i = 0; i < 63; i++)
        CHECK(lua_heap_realloc(h, NULL, 0, 1024) != NULL);
    CHECK_INT(lua_heap_slab_bytes(h), 64 << 10);
    CHECK(lua_heap_realloc(h, NULL, 0, 1024) != NULL);
    CHECK_INT(lua_heap_slab_bytes(h), 128 << 10);
    lua_heap_free(h); /* frees the blocks still allocated */
    lua_heap_free(NULL);
}

TEST_MAIN()
