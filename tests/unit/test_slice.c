#include "slice.h"

#include <errno.h>

#include "test.h"

TEST(to_u32_parses_whole_slice)
{
    uint32_t v = 7;
    CHECK_INT(slice_to_u32(SLICE_LIT("4294967295"), &v), 0);
    CHECK_INT(v, 4294967295u);
    CHECK_INT(slice_to_u32(SLICE_LIT("0"), &v), 0);
    CHECK_INT(v, 0);
}

TEST(to_u32_rejects_overflow_and_garbage_without_touching_output)
{
    uint32_t v = 7;
    CHECK_INT(slice_to_u32(SLICE_LIT("4294967296"), &v), -ERANGE);
    CHECK_INT(slice_to_u32(SLICE_LIT(""), &v), -EINVAL);
    CHECK_INT(slice_to_u32(SLICE_LIT("12a"), &v), -EINVAL);
    CHECK_INT(slice_to_u32(SLICE_LIT(" 1"), &v), -EINVAL);
    CHECK_INT(v, 7);
}

TEST(eq_nocase_ignores_ascii_case_only)
{
    CHECK(slice_eq_nocase(SLICE_LIT("Call-ID"), SLICE_LIT("call-id")));
    CHECK(!slice_eq_nocase(SLICE_LIT("Call-ID"), SLICE_LIT("call-ie")));
    CHECK(!slice_eq_nocase(SLICE_LIT("a"), SLICE_LIT("ab")));
}

TEST(trim_strips_folding_whitespace)
{
    struct slice s = slice_trim(SLICE_LIT(" \t\r\n value \r\n"));
    CHECK_SLICE(s, "value");
    CHECK_INT(slice_trim(SLICE_LIT("   ")).len, 0);
}

TEST(hash_depends_on_every_byte_and_the_seed)
{
    uint64_t a = slice_hash(SLICE_LIT("abcdefghij"), 1);
    CHECK(a != slice_hash(SLICE_LIT("abcdefghik"), 1));
    CHECK(a != slice_hash(SLICE_LIT("bbcdefghij"), 1));
    CHECK(a != slice_hash(SLICE_LIT("abcdefghij"), 2));
    CHECK(a == slice_hash(SLICE_LIT("abcdefghij"), 1));
    CHECK(slice_hash(SLICE_LIT("a"), 0) != slice_hash(SLICE_LIT("a\0"), 0));
}

/* The process's secret keys both hashes: with another secret, the same key hashes elsewhere
 * (the chance that a random secret leaves all four equal is nil), and it hashes the same for
 * as long as the secret stays. */
TEST(the_secret_keys_every_hash)
{
    uint64_t saved = slice_hash_secret, h0, h1[2], k0, k1[2];

    slice_hash_secret = 0;
    h0 = slice_hash(SLICE_LIT("call-1@host"), 3);
    slice_hash2(SLICE_LIT("call-1@host"), h1);
    CHECK_INT(slice_hash_randomize(), 0);
    CHECK(slice_hash_secret != 0);
    k0 = slice_hash(SLICE_LIT("call-1@host"), 3);
    slice_hash2(SLICE_LIT("call-1@host"), k1);
    CHECK(k0 != h0);
    CHECK(k1[0] != h1[0]);
    CHECK(k1[1] != h1[1]);
    CHECK(k0 == slice_hash(SLICE_LIT("call-1@host"), 3));
    slice_hash_secret = saved;
}

TEST(hash2_gives_two_unrelated_lanes_of_every_byte)
{
    uint64_t a[2], b[2], c[2];
    slice_hash2(SLICE_LIT("branch-z9hG4bK-1234"), a);
    slice_hash2(SLICE_LIT("branch-z9hG4bK-1235"), b);
    slice_hash2(SLICE_LIT("branch-z9hG4bK-1234"), c);
    CHECK(a[0] != a[1]);
    CHECK(a[0] != b[0] && a[1] != b[1]);
    CHECK(a[0] == c[0] && a[1] == c[1]);
    slice_hash2(SLICE_LIT(""), b);
    CHECK(b[0] != b[1]);
}

static void parts_hash(const char *x, const char *y, uint64_t out[2])
{
    struct hash2 h = hash2_start(7);
    hash2_add(&h, slice_make(x, strlen(x)));
    hash2_add(&h, slice_make(y, strlen(y)));
    hash2_finish(&h, &out[0], &out[1]);
}

/* Composite keys: where one part ends counts, an empty part counts, order counts, and a state
 * copied before the last part gives the same key as one built afresh. */
TEST(hash2_parts_keep_their_boundaries)
{
    const char *pairs[][2] = {{"ab", "c"}, {"a", "bc"}, {"", "abc"}, {"abc", ""}, {"c", "ab"},
                              {"", ""},    {"", "a"},   {"a", ""},   {"abcdefgh", "i"},
                              {"abcdefghi", ""}, {"abcdefg", "hi"}};
    size_t n = sizeof(pairs) / sizeof(pairs[0]);
    uint64_t h[16][2];
    for (size_t i = 0; i < n; i++)
        parts_hash(pairs[i][0], pairs[i][1], h[i]);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            CHECK(h[i][0] != h[j][0] && h[i][1] != h[j][1]);

    struct hash2 s = hash2_start(7), t;
    uint64_t a[2], b[2];
    hash2_add(&s, SLICE_LIT("call-1@host"));
    t = s;
    hash2_add(&t, SLICE_LIT("tag-b"));
    hash2_finish(&t, &a[0], &a[1]);
    parts_hash("call-1@host", "tag-b", b);
    CHECK(a[0] == b[0] && a[1] == b[1]);

    /* One part is slice_hash2. */
    t = hash2_start(0);
    hash2_add(&t, SLICE_LIT("branch-z9hG4bK-1234"));
    hash2_finish(&t, &a[0], &a[1]);
    slice_hash2(SLICE_LIT("branch-z9hG4bK-1234"), b);
    CHECK(a[0] == b[0] && a[1] == b[1]);
}

/* A length change cancelled by the data in one lane (the parts below give the same out[0])
 * still changes the other lane, which takes the length shifted: keys differ. Fails if both
 * lanes took the length alike. */
TEST(hash2_lanes_take_lengths_differently)
{
    uint64_t a[2], b[2];
    parts_hash("abcdefgh", "ijklmnopqrstuvwx", a);
    parts_hash("ybcdefg`yjklmnox", "yrstuvwx", b);
    CHECK(a[1] != b[1]);
}

/* The last word of a key is read with loads that overlap or pick bytes (no byte loop): every
 * byte of every length up to three words still counts, in both functions. */
TEST(hashes_depend_on_each_byte_at_every_length)
{
    char key[25];
    int same = 0;
    for (size_t len = 1; len <= sizeof key - 1; len++) {
        for (size_t i = 0; i < len; i++) {
            memset(key, 'k', sizeof key);
            uint64_t h = slice_hash(slice_make(key, len), 3), h2[2], g2[2];
            slice_hash2(slice_make(key, len), h2);
            key[i] = 'K';
            slice_hash2(slice_make(key, len), g2);
            same += h == slice_hash(slice_make(key, len), 3);
            same += h2[0] == g2[0];
            same += h2[1] == g2[1];
        }
        /* A byte past the end changes nothing. */
        memset(key, 'k', sizeof key);
        uint64_t h = slice_hash(slice_make(key, len), 3);
        key[len] = 'K';
        same += h != slice_hash(slice_make(key, len), 3);
    }
    CHECK_INT(same, 0);
}

/* slice_hash_wide, at the lengths around its 32-byte steps and its short-input path: every byte
 * counts, a byte past the end does not, the length and the seed count, and the secret keys it. */
TEST(wide_hash_depends_on_each_byte_length_seed_and_secret)
{
    char key[200];
    int same = 0;
    for (size_t len = 60; len <= 130; len++) {
        for (size_t i = 0; i < len; i++) {
            memset(key, 'k', sizeof key);
            uint64_t h = slice_hash_wide(slice_make(key, len), 3);
            key[i] = 'K';
            same += h == slice_hash_wide(slice_make(key, len), 3);
        }
        memset(key, 'k', sizeof key);
        uint64_t h = slice_hash_wide(slice_make(key, len), 3);
        key[len] = 'K';
        same += h != slice_hash_wide(slice_make(key, len), 3);
        same += h == slice_hash_wide(slice_make(key, len), 4);
        same += h == slice_hash_wide(slice_make(key, len - 1), 3);
    }
    CHECK_INT(same, 0);
    /* Two blocks swapped between lanes are other bytes. */
    memset(key, 'k', sizeof key);
    memcpy(key, "AAAAAAAA", 8);
    uint64_t h = slice_hash_wide(slice_make(key, 100), 3);
    memset(key, 'k', 8);
    memcpy(key + 8, "AAAAAAAA", 8);
    uint64_t swapped = slice_hash_wide(slice_make(key, 100), 3);
    CHECK(h != swapped);
    uint64_t saved = slice_hash_secret;
    slice_hash_secret ^= 1;
    CHECK(swapped != slice_hash_wide(slice_make(key, 100), 3));
    slice_hash_secret = saved;
    CHECK(swapped == slice_hash_wide(slice_make(key, 100), 3));
}

/* Cuts never split a character: back over one's continuation bytes (up to three: a 4-byte
 * one), not past a run longer than UTF-8 has (invalid: cut where asked). */
TEST(utf8_cut_keeps_whole_characters)
{
    CHECK_INT(slice_utf8_cut("abc", 3, 5), 3);                   /* fits */
    CHECK_INT(slice_utf8_cut("abcdef", 6, 4), 4);                /* ASCII */
    CHECK_INT(slice_utf8_cut("ab\xc3\xa9", 4, 3), 2);            /* é split: before it */
    CHECK_INT(slice_utf8_cut("ab\xc3\xa9x", 5, 4), 4);           /* é whole */
    CHECK_INT(slice_utf8_cut("a\xf0\x9f\x98\x80", 5, 4), 1);     /* U+1F600 split after 3 */
    CHECK_INT(slice_utf8_cut("a\xf0\x9f\x98\x80", 5, 2), 1);     /* ... after 1 */
    CHECK_INT(slice_utf8_cut("a\x80\x80\x80\x80\x80", 6, 5), 5); /* no lead byte near: as asked */
}

TEST_MAIN()
