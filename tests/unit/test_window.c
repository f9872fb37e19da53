#include "window.h"

#include <errno.h>

#include "test.h"

#define MS 1000000ull
#define SEC 1000000000ull

static uint64_t add(struct window *w, const char *key, uint64_t t, uint32_t n)
{
    return window_add(w, key, strlen(key), t, n);
}

static uint64_t count(const struct window *w, const char *key, uint64_t t)
{
    return window_count(w, key, strlen(key), t);
}

TEST(new_refuses_bad_geometry_with_einval)
{
    errno = 0;
    CHECK(window_new(0, 1, 1) == NULL);
    CHECK_INT(errno, EINVAL);
    CHECK(window_new(10, 3, 1) == NULL); /* not a multiple of the buckets */
    CHECK(window_new(10, 0, 1) == NULL);
    CHECK(window_new(SEC, 1, 0) == NULL);
    CHECK(window_new(2048, WINDOW_MAX_BUCKETS + 1, 1) == NULL);
    CHECK(window_new(SEC, 10, WINDOW_MAX_KEYS + 1) == NULL);
    struct window *w = window_new(1024, WINDOW_MAX_BUCKETS, 1);
    CHECK(w != NULL);
    window_free(w);
    window_free(NULL);
}

TEST(add_returns_the_count_of_its_own_key)
{
    struct window *w = window_new(SEC, 10, 8);
    CHECK_INT(add(w, "10.0.0.1", 0, 1), 1);
    CHECK_INT(add(w, "10.0.0.1", 50 * MS, 2), 3);
    CHECK_INT(add(w, "10.0.0.2", 60 * MS, 1), 1);
    CHECK_INT(add(w, "10.0.0.1", 150 * MS, 0), 3); /* n = 0 only reads */
    CHECK_INT(add(w, "10.0.0.9", 150 * MS, 0), 0); /* and creates no key */
    CHECK_INT(count(w, "10.0.0.1", 160 * MS), 3);
    CHECK_INT(count(w, "10.0.0.2", 160 * MS), 1);
    CHECK_INT(count(w, "10.0.0.3", 160 * MS), 0);
    CHECK_INT(window_keys(w), 2);
    CHECK_INT(window_evictions(w), 0);
    window_free(w);
}

TEST(an_event_at_a_bucket_start_counts_for_exactly_window_ns)
{
    struct window *w = window_new(SEC, 10, 4); /* buckets of 100 ms */
    CHECK_INT(add(w, "a", 0, 1), 1);
    CHECK_INT(count(w, "a", SEC - 1), 1);
    CHECK_INT(count(w, "a", SEC), 0);
    /* One inside its bucket leaves with its bucket: 950 ms after it, not 1 s. */
    CHECK_INT(add(w, "b", 2 * SEC + 50 * MS, 1), 1);
    CHECK_INT(count(w, "b", 3 * SEC - 1), 1);
    CHECK_INT(count(w, "b", 3 * SEC), 0);
    CHECK_INT(add(w, "c", 2 * SEC + 950 * MS, 1), 1);
    CHECK_INT(count(w, "c", 3 * SEC + 900 * MS - 1), 1);
    CHECK_INT(count(w, "c", 3 * SEC + 900 * MS), 0);
    window_free(w);
}

TEST(the_window_slides_one_bucket_at_a_time)
{
    struct window *w = window_new(SEC, 10, 4);
    /* One event at the start of each 100 ms bucket, 0 .. 900 ms, then two at 1 s. */
    for (uint64_t i = 0; i < 10; i++)
        CHECK_INT(add(w, "k", i * 100 * MS, 1), i + 1);
    CHECK_INT(count(w, "k", 999 * MS), 10);
    CHECK_INT(count(w, "k", 1000 * MS), 9);
    CHECK_INT(add(w, "k", 1000 * MS, 2), 11);
    CHECK_INT(count(w, "k", 1099 * MS), 11);
    /* At 1.5 s the buckets of 600 .. 900 ms and 1.0 s remain: 4 + 2. */
    CHECK_INT(count(w, "k", 1500 * MS), 6);
    CHECK_INT(add(w, "k", 1500 * MS, 1), 7);
    CHECK_INT(count(w, "k", 1999 * MS), 3); /* 1.0 s (2) and 1.5 s (1) */
    CHECK_INT(count(w, "k", 2000 * MS), 1);
    CHECK_INT(count(w, "k", 2500 * MS), 0);
    CHECK_INT(add(w, "k", 60 * SEC, 4), 4); /* long silence: a fresh start */
    window_free(w);
}

TEST(one_bucket_window_is_a_fixed_window)
{
    struct window *w = window_new(10 * SEC, 1, 2);
    CHECK_INT(add(w, "x", 1 * SEC, 1), 1);
    CHECK_INT(add(w, "x", 9 * SEC, 1), 2);
    CHECK_INT(add(w, "x", 10 * SEC, 1), 1);
    CHECK_INT(count(w, "x", 19 * SEC), 1);
    CHECK_INT(count(w, "x", 20 * SEC), 0);
    window_free(w);
}

TEST(time_going_backwards_counts_at_the_latest_time)
{
    struct window *w = window_new(SEC, 10, 4);
    CHECK_INT(add(w, "a", 5 * SEC, 1), 1);
    CHECK_INT(add(w, "a", 1 * SEC, 1), 2); /* taken as 5 s */
    CHECK_INT(add(w, "b", 2 * SEC, 1), 1); /* a new key in the past: also 5 s */
    CHECK_INT(count(w, "a", 0), 2);
    CHECK_INT(count(w, "a", 5 * SEC + 999 * MS), 2);
    CHECK_INT(count(w, "a", 6 * SEC), 0);
    CHECK_INT(count(w, "b", 6 * SEC - 1), 1);
    CHECK_INT(count(w, "b", 6 * SEC), 0);
    /* Counting at a later time does not move the clock: a late add still lands at 5 s. */
    CHECK_INT(add(w, "a", 3 * SEC, 1), 3);
    CHECK_INT(add(w, "a", 5 * SEC + 500 * MS, 1), 4);
    CHECK_INT(count(w, "a", 6 * SEC), 1);
    /* n = 0 moves the clock: a later add at 1 s lands at 6 s. */
    CHECK_INT(add(w, "a", 6 * SEC, 0), 1);
    CHECK_INT(add(w, "a", 1 * SEC, 1), 2);
    CHECK_INT(count(w, "a", 0), 2);
    window_free(w);
}

TEST(full_window_evicts_the_least_recently_updated_key)
{
    struct window *w = window_new(SEC, 10, 3); /* buckets of 100 ms */
    CHECK_INT(add(w, "a", 0, 1), 1);
    CHECK_INT(add(w, "b", 100 * MS, 1), 1);
    CHECK_INT(add(w, "c", 200 * MS, 1), 1);
    CHECK_INT(add(w, "a", 300 * MS, 1), 2); /* order now b, c, a */
    CHECK_INT(count(w, "b", 300 * MS), 1);  /* a read does not refresh b */
    CHECK_INT(add(w, "d", 400 * MS, 5), 5); /* evicts b */
    CHECK_INT(window_evictions(w), 1);
    CHECK_INT(count(w, "b", 400 * MS), 0);
    CHECK_INT(count(w, "a", 400 * MS), 2);
    CHECK_INT(count(w, "c", 400 * MS), 1);
    CHECK_INT(add(w, "e", 500 * MS, 1), 1); /* evicts c */
    CHECK_INT(window_evictions(w), 2);
    CHECK_INT(count(w, "c", 500 * MS), 0);
    CHECK_INT(count(w, "a", 500 * MS), 2);
    CHECK_INT(add(w, "a", 600 * MS, 0), 2); /* n = 0 does not refresh a */
    CHECK_INT(add(w, "b", 600 * MS, 1), 1); /* b starts again from zero; evicts a */
    CHECK_INT(window_evictions(w), 3);
    CHECK_INT(count(w, "a", 600 * MS), 0);
    CHECK_INT(window_keys(w), 3);
    window_free(w);
}

TEST(recency_has_bucket_resolution)
{
    struct window *w = window_new(SEC, 10, 3); /* buckets of 100 ms */
    CHECK_INT(add(w, "a", 0, 1), 1);
    CHECK_INT(add(w, "b", 10 * MS, 1), 1);
    CHECK_INT(add(w, "c", 20 * MS, 1), 1);
    CHECK_INT(add(w, "a", 30 * MS, 1), 2); /* same bucket as its first update: stays first */
    CHECK_INT(add(w, "d", 40 * MS, 1), 1); /* evicts a, with two events */
    CHECK_INT(window_evictions(w), 1);
    CHECK_INT(count(w, "a", 40 * MS), 0);
    CHECK_INT(add(w, "b", 100 * MS, 1), 2); /* a later bucket: b moves behind c and d */
    CHECK_INT(add(w, "e", 110 * MS, 1), 1); /* evicts c */
    CHECK_INT(count(w, "c", 110 * MS), 0);
    CHECK_INT(count(w, "b", 110 * MS), 2);
    CHECK_INT(count(w, "d", 110 * MS), 1);
    window_free(w);
}

TEST(keys_whose_window_has_passed_are_dropped_without_counting_an_eviction)
{
    struct window *w = window_new(SEC, 10, 3);
    CHECK_INT(add(w, "a", 0, 1), 1);
    CHECK_INT(add(w, "b", 0, 1), 1);
    CHECK_INT(add(w, "c", 500 * MS, 1), 1);
    /* At 1.2 s a and b hold nothing: both are dropped by this add, c stays. */
    CHECK_INT(add(w, "c", 1200 * MS, 1), 2);
    CHECK_INT(window_keys(w), 1);
    CHECK_INT(window_evictions(w), 0);
    /* Full again with c, d, e; c still holds two events in the window. */
    CHECK_INT(add(w, "d", 1300 * MS, 1), 1);
    CHECK_INT(add(w, "e", 1400 * MS, 1), 1);
    CHECK_INT(window_keys(w), 3);
    CHECK_INT(add(w, "f", 1450 * MS, 1), 1); /* c (live: 2 events) evicted */
    CHECK_INT(window_evictions(w), 1);
    CHECK_INT(add(w, "g", 2350 * MS, 1), 1); /* d left the window at 2.3 s: quiet */
    CHECK_INT(window_evictions(w), 1);
    CHECK_INT(window_keys(w), 3);
    CHECK_INT(count(w, "e", 2350 * MS), 1);
    window_free(w);
}

TEST(long_keys_are_distinct_by_length_prefix_and_hash)
{
    char k1[100], k2[100];
    struct window *w = window_new(SEC, 10, 8);
    memset(k1, 'x', sizeof k1);
    memset(k2, 'x', sizeof k2);
    k2[80] = 'y'; /* differs past WINDOW_KEY_MAX */
    CHECK_INT(window_add(w, k1, sizeof k1, 0, 1), 1);
    CHECK_INT(window_add(w, k2, sizeof k2, 0, 2), 2);
    CHECK_INT(window_add(w, k1, sizeof k1, 0, 1), 2);
    CHECK_INT(window_add(w, k1, WINDOW_KEY_MAX, 0, 4), 4);
    CHECK_INT(window_add(w, k1, WINDOW_KEY_MAX + 1, 0, 8), 8);
    CHECK_INT(window_count(w, k1, sizeof k1, 0), 2);
    CHECK_INT(window_count(w, k2, sizeof k2, 0), 2);
    CHECK_INT(window_count(w, k1, WINDOW_KEY_MAX, 0), 4);
    CHECK_INT(window_keys(w), 4);
    window_free(w);
}

TEST(keys_are_bytes_not_strings)
{
    struct window *w = window_new(SEC, 10, 8);
    CHECK_INT(window_add(w, "", 0, 0, 1), 1);
    CHECK_INT(window_add(w, NULL, 0, 0, 1), 2); /* the same empty key */
    CHECK_INT(window_add(w, "a\0b", 3, 0, 1), 1);
    CHECK_INT(window_add(w, "a\0c", 3, 0, 1), 1);
    CHECK_INT(window_add(w, "a", 1, 0, 1), 1);
    CHECK_INT(window_count(w, "a\0b", 3, 0), 1);
    CHECK_INT(window_count(w, "", 0, 0), 2);
    window_free(w);
}

TEST(buckets_saturate_and_the_window_sums_past_32_bits)
{
    struct window *w = window_new(SEC, 10, 2);
    CHECK_INT(add(w, "k", 0, UINT32_MAX), 4294967295ll);
    CHECK_INT(add(w, "k", 0, 7), 4294967295ll);
    CHECK_INT(add(w, "k", 100 * MS, 1), 4294967296ll);
    CHECK_INT(count(w, "k", SEC), 1);
    window_free(w);
}

TEST(keys_never_exceed_the_cap)
{
    char key[16];
    struct window *w = window_new(SEC, 4, 100);
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(key, sizeof key, "10.0.%d.%d", i / 256, i % 256);
        window_add(w, key, (size_t)n, (uint64_t)i * MS, 1);
    }
    CHECK_INT(window_keys(w), 100);
    CHECK_INT(window_evictions(w), 900);
    CHECK_INT(count(w, "10.0.3.231", 999 * MS), 1); /* i = 999 */
    CHECK_INT(count(w, "10.0.3.131", 999 * MS), 0); /* i = 899, evicted */
    CHECK_INT(count(w, "10.0.3.132", 999 * MS), 1); /* i = 900, kept */
    window_free(w);
}

TEST_MAIN()
