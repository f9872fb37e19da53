#include "cidr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "test.h"

static int32_t look(const struct cidr *set, const char *addr)
{
    return cidr_lookup_text(set, addr, strlen(addr));
}

static int add(struct cidr *set, const char *text, int32_t value)
{
    char err[160];
    return cidr_add(set, text, value, err, sizeof err);
}

TEST(empty_set_matches_nothing)
{
    struct cidr *set = cidr_new(4);
    CHECK_INT(look(set, "10.0.0.1"), -1);
    CHECK_INT(look(set, "2001:db8::1"), -1);
    CHECK_INT(cidr_count(set), 0);
    cidr_free(set);
}

TEST(new_rejects_zero_and_oversized_caps)
{
    CHECK(cidr_new(0) == NULL);
    CHECK(cidr_new(CIDR_MAX_PREFIXES + 1) == NULL);
    cidr_free(NULL);
}

static void check_nested_v4(const struct cidr *set)
{
    CHECK_INT(look(set, "10.1.2.3"), 4);
    CHECK_INT(look(set, "10.1.2.4"), 3);
    CHECK_INT(look(set, "10.1.2.255"), 3);
    CHECK_INT(look(set, "10.1.3.0"), 2);
    CHECK_INT(look(set, "10.1.255.255"), 2);
    CHECK_INT(look(set, "10.2.0.0"), 1);
    CHECK_INT(look(set, "10.255.255.255"), 1);
    CHECK_INT(look(set, "10.0.0.0"), 1);
    CHECK_INT(look(set, "9.255.255.255"), -1);
    CHECK_INT(look(set, "11.0.0.0"), -1);
}

TEST(longest_prefix_wins_whatever_the_insertion_order)
{
    struct cidr *a = cidr_new(8), *b = cidr_new(8);
    CHECK_INT(add(a, "10.0.0.0/8", 1), 0);
    CHECK_INT(add(a, "10.1.0.0/16", 2), 0);
    CHECK_INT(add(a, "10.1.2.0/24", 3), 0);
    CHECK_INT(add(a, "10.1.2.3", 4), 0);
    check_nested_v4(a);
    /* Longest first: the shorter prefixes must not overwrite what is below them. */
    CHECK_INT(add(b, "10.1.2.3/32", 4), 0);
    CHECK_INT(add(b, "10.1.2.0/24", 3), 0);
    CHECK_INT(add(b, "10.1.0.0/16", 2), 0);
    CHECK_INT(add(b, "10.0.0.0/8", 1), 0);
    check_nested_v4(b);
    CHECK_INT(cidr_count(a), 4);
    CHECK_INT(cidr_count(b), 4);
    cidr_free(a);
    cidr_free(b);
}

TEST(lengths_off_the_stride_boundaries_match_exactly_their_range)
{
    struct cidr *set = cidr_new(16);
    CHECK_INT(add(set, "128.0.0.0/1", 1), 0);
    CHECK_INT(add(set, "192.168.0.0/23", 2), 0);
    CHECK_INT(add(set, "172.16.0.0/12", 3), 0);
    CHECK_INT(add(set, "100.64.0.0/10", 4), 0);
    CHECK_INT(add(set, "203.0.113.128/25", 5), 0);
    CHECK_INT(add(set, "198.51.100.6/31", 6), 0);
    CHECK_INT(add(set, "10.10.128.0/17", 7), 0);
    CHECK_INT(look(set, "127.255.255.255"), -1);
    CHECK_INT(look(set, "128.0.0.0"), 1);
    CHECK_INT(look(set, "255.255.255.255"), 1);
    CHECK_INT(look(set, "192.168.0.0"), 2);
    CHECK_INT(look(set, "192.168.1.255"), 2);
    CHECK_INT(look(set, "192.168.2.0"), 1); /* outside the /23, inside 128/1 */
    CHECK_INT(look(set, "172.15.255.255"), 1);
    CHECK_INT(look(set, "172.16.0.0"), 3);
    CHECK_INT(look(set, "172.31.255.255"), 3);
    CHECK_INT(look(set, "172.32.0.0"), 1);
    CHECK_INT(look(set, "100.63.255.255"), -1);
    CHECK_INT(look(set, "100.64.0.0"), 4);
    CHECK_INT(look(set, "100.127.255.255"), 4);
    CHECK_INT(look(set, "100.128.0.0"), -1);
    CHECK_INT(look(set, "203.0.113.127"), 1);
    CHECK_INT(look(set, "203.0.113.128"), 5);
    CHECK_INT(look(set, "203.0.113.255"), 5);
    CHECK_INT(look(set, "198.51.100.5"), 1);
    CHECK_INT(look(set, "198.51.100.6"), 6);
    CHECK_INT(look(set, "198.51.100.7"), 6);
    CHECK_INT(look(set, "198.51.100.8"), 1);
    CHECK_INT(look(set, "10.10.127.255"), -1);
    CHECK_INT(look(set, "10.10.128.0"), 7);
    CHECK_INT(look(set, "10.10.255.255"), 7);
    CHECK_INT(look(set, "10.11.0.0"), -1);
    cidr_free(set);
}

TEST(slash_zero_is_the_default_of_its_family_only)
{
    struct cidr *set = cidr_new(8);
    CHECK_INT(add(set, "10.0.0.0/8", 1), 0);
    CHECK_INT(add(set, "0.0.0.0/0", 9), 0); /* added after a longer prefix */
    CHECK_INT(look(set, "10.9.9.9"), 1);
    CHECK_INT(look(set, "11.0.0.0"), 9);
    CHECK_INT(look(set, "0.0.0.0"), 9);
    CHECK_INT(look(set, "255.255.255.255"), 9);
    CHECK_INT(look(set, "2001:db8::1"), -1);
    CHECK_INT(add(set, "::/0", 6), 0);
    CHECK_INT(look(set, "2001:db8::1"), 6);
    CHECK_INT(look(set, "11.0.0.0"), 9);
    CHECK_INT(cidr_count(set), 3);
    cidr_free(set);
}

TEST(adding_the_same_prefix_again_replaces_its_value_and_counts_once)
{
    struct cidr *set = cidr_new(2);
    CHECK_INT(add(set, "10.0.0.0/8", 1), 0);
    CHECK_INT(add(set, "10.1.0.0/16", 2), 0);
    CHECK_INT(add(set, " 10.0.0.0/8\t", 5), 0); /* same prefix, spaces ignored */
    CHECK_INT(cidr_count(set), 2);
    CHECK_INT(look(set, "10.2.0.0"), 5);
    CHECK_INT(look(set, "10.1.0.0"), 2);
    CHECK_INT(add(set, "10.1.0.0/16", 7), 0); /* at the cap, still a replacement */
    CHECK_INT(look(set, "10.1.0.0"), 7);
    cidr_free(set);
}

TEST(a_prefix_shadowed_by_longer_ones_is_still_known_as_present)
{
    struct cidr *set = cidr_new(3);
    CHECK_INT(add(set, "10.0.0.0/24", 1), 0);
    CHECK_INT(add(set, "10.0.1.0/24", 2), 0);
    CHECK_INT(add(set, "10.0.0.0/23", 3), 0); /* every address in it is under a /24 */
    CHECK_INT(add(set, "10.0.0.0/23", 4), 0); /* a replacement, not a fourth prefix */
    CHECK_INT(cidr_count(set), 3);
    CHECK_INT(look(set, "10.0.0.1"), 1);
    CHECK_INT(look(set, "10.0.1.1"), 2);
    cidr_free(set);
}

TEST(full_set_refuses_a_new_prefix_and_stays_unchanged)
{
    char err[160];
    struct cidr *set = cidr_new(2);
    CHECK_INT(add(set, "10.0.0.0/8", 1), 0);
    CHECK_INT(add(set, "2001:db8::/32", 2), 0);
    CHECK_INT(cidr_add(set, "192.168.0.0/16", 3, err, sizeof err), -ENOSPC);
    CHECK_STR(err, "\"192.168.0.0/16\": the set is full (2 prefixes)");
    CHECK_INT(look(set, "192.168.1.1"), -1);
    CHECK_INT(cidr_count(set), 2);
    cidr_free(set);
}

TEST(host_bits_set_is_refused_with_the_network_named)
{
    char err[160];
    struct cidr *set = cidr_new(4);
    CHECK_INT(cidr_add(set, "10.1.2.3/8", 1, err, sizeof err), -EINVAL);
    CHECK_STR(err, "\"10.1.2.3/8\": host bits set after /8 (the network is 10.0.0.0/8)");
    CHECK_INT(cidr_add(set, "2001:db8::1/32", 1, err, sizeof err), -EINVAL);
    CHECK_STR(err, "\"2001:db8::1/32\": host bits set after /32 (the network is 2001:db8::/32)");
    CHECK_INT(cidr_add(set, "192.168.1.0/23", 1, err, sizeof err), -EINVAL);
    CHECK_STR(err, "\"192.168.1.0/23\": host bits set after /23 (the network is 192.168.0.0/23)");
    CHECK_INT(cidr_add(set, "1.0.0.0/0", 1, err, sizeof err), -EINVAL);
    CHECK_INT(cidr_count(set), 0);
    CHECK_INT(look(set, "10.0.0.0"), -1);
    cidr_free(set);
}

TEST(malformed_prefixes_are_refused_with_a_reason)
{
    static const char *const bad[] = {
        "",
        "   ",
        "10.0.0/8",
        "10.0.0.256",
        "01.2.3.4",
        "10.0.0.0/",
        "10.0.0.0/33",
        "10.0.0.0/8x",
        "10.0.0.0/-1",
        "10.0.0.0/+8",
        "10.0.0.0 /8",
        "10.0.0.0/ 8",
        "2001:db8::/129",
        "2001:db8::/1000",
        "fe80::1%eth0",
        "[2001:db8::1]",
        "2001:db8:::1",
        "host.example",
        "10.0.0.0/8/8",
        "/8",
    };
    char err[160];
    struct cidr *set = cidr_new(4);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 'x';
        int rc = cidr_add(set, bad[i], 1, err, sizeof err);
        if (rc != -EINVAL)
            TEST_FAIL_AT("\"%s\" gave %d, expected -EINVAL", bad[i], rc);
        if (err[0] != '"')
            TEST_FAIL_AT("\"%s\" gave no reason", bad[i]);
    }
    CHECK_INT(cidr_add(set, "10.0.0.0/33", 1, err, sizeof err), -EINVAL);
    CHECK_STR(err, "\"10.0.0.0/33\": prefix length must be a number 0..32");
    CHECK_INT(cidr_add(set, "10.0.0.0/", 1, err, sizeof err), -EINVAL);
    CHECK_STR(err, "\"10.0.0.0/\": prefix length missing after '/'");
    CHECK_INT(cidr_add(set, "10.0.0/8", 1, err, sizeof err), -EINVAL);
    CHECK_STR(err, "\"10.0.0/8\": not an IPv4 or IPv6 address");
    CHECK_INT(cidr_count(set), 0);
    cidr_free(set);
}

TEST(values_outside_the_range_are_refused)
{
    char err[160];
    struct cidr *set = cidr_new(4);
    CHECK_INT(cidr_add(set, "10.0.0.0/8", -1, err, sizeof err), -EINVAL);
    CHECK_STR(err, "value -1 out of range 0..2147483646");
    CHECK_INT(cidr_add(set, "10.0.0.0/8", CIDR_VALUE_MAX + 1, NULL, 0), -EINVAL);
    CHECK_INT(add(set, "10.0.0.0/8", CIDR_VALUE_MAX), 0);
    CHECK_INT(add(set, "11.0.0.0/8", 0), 0);
    CHECK_INT(look(set, "10.0.0.1"), CIDR_VALUE_MAX);
    CHECK_INT(look(set, "11.0.0.1"), 0);
    cidr_free(set);
}

TEST(ipv6_longest_prefix_down_to_slash_128)
{
    struct cidr *set = cidr_new(8);
    CHECK_INT(add(set, "2001:db8:1:2::1", 4), 0);
    CHECK_INT(add(set, "2001:db8::/32", 1), 0);
    CHECK_INT(add(set, "2001:db8:1:2::/64", 3), 0);
    CHECK_INT(add(set, "2001:db8:1::/48", 2), 0);
    CHECK_INT(add(set, "2001:db8:1:2::ff/127", 5), -EINVAL); /* ff has its low bit set */
    CHECK_INT(add(set, "2001:db8:1:2::fe/127", 5), 0);
    CHECK_INT(look(set, "2001:db8:1:2::1"), 4);
    CHECK_INT(look(set, "2001:db8:1:2::2"), 3);
    CHECK_INT(look(set, "2001:db8:1:2::fe"), 5);
    CHECK_INT(look(set, "2001:db8:1:2::ff"), 5);
    CHECK_INT(look(set, "2001:db8:1:2::100"), 3);
    CHECK_INT(look(set, "2001:db8:1:3::1"), 2);
    CHECK_INT(look(set, "2001:db8:2::1"), 1);
    CHECK_INT(look(set, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"), 1);
    CHECK_INT(look(set, "2001:db9::"), -1);
    CHECK_INT(look(set, "10.0.0.1"), -1);
    CHECK_INT(cidr_count(set), 5);
    cidr_free(set);
}

TEST(v4_mapped_prefixes_and_addresses_are_ipv4)
{
    char err[160];
    struct cidr *set = cidr_new(4);
    CHECK_INT(add(set, "::ffff:10.0.0.0/104", 8), 0);
    CHECK_INT(cidr_count(set), 1);
    CHECK_INT(look(set, "10.1.1.1"), 8);
    CHECK_INT(look(set, "::ffff:10.1.1.1"), 8);
    CHECK_INT(add(set, "10.0.0.0/8", 9), 0); /* the same prefix spelt as IPv4 */
    CHECK_INT(cidr_count(set), 1);
    CHECK_INT(look(set, "::ffff:10.1.1.1"), 9);
    /* An IPv6 default does not cover mapped addresses: they are looked up as IPv4. */
    CHECK_INT(add(set, "::/0", 6), 0);
    CHECK_INT(look(set, "::ffff:11.0.0.1"), -1);
    CHECK_INT(look(set, "::fffe:11.0.0.1"), 6);
    CHECK_INT(add(set, "::ffff:0.0.0.0/96", 7), 0); /* = 0.0.0.0/0 */
    CHECK_INT(look(set, "11.0.0.1"), 7);
    CHECK_INT(look(set, "::ffff:11.0.0.1"), 7);
    CHECK_INT(cidr_count(set), 3);
    CHECK_INT(cidr_add(set, "::ffff:10.1.2.3/104", 1, err, sizeof err), -EINVAL);
    CHECK_STR(err, "\"::ffff:10.1.2.3/104\": host bits set after /104 (the network is "
                   "::ffff:10.0.0.0/104)");
    cidr_free(set);
}

TEST(binary_lookup_takes_family_and_network_order_bytes)
{
    static const uint8_t v4[4] = {192, 0, 2, 77};
    static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static const uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 77};
    struct cidr *set = cidr_new(4);
    CHECK_INT(add(set, "192.0.2.0/24", 3), 0);
    CHECK_INT(add(set, "2001:db8::/32", 4), 0);
    CHECK_INT(cidr_lookup(set, AF_INET, v4), 3);
    CHECK_INT(cidr_lookup(set, AF_INET6, v6), 4);
    CHECK_INT(cidr_lookup(set, AF_INET6, mapped), 3);
    CHECK_INT(cidr_lookup(set, AF_UNIX, v4), -1);
    cidr_free(set);
}

TEST(text_lookup_reads_only_its_slice_and_refuses_non_addresses)
{
    struct cidr *set = cidr_new(4);
    CHECK_INT(add(set, "10.1.2.3", 4), 0);
    CHECK_INT(cidr_lookup_text(set, "10.1.2.3xyz", 8), 4);
    CHECK_INT(cidr_lookup_text(set, "10.1.2.34", 8), 4);
    CHECK_INT(cidr_lookup_text(set, "10.1.2.34", 9), -1);
    CHECK_INT(cidr_lookup_text(set, "", 0), -EINVAL);
    CHECK_INT(cidr_lookup_text(set, "10.1.2.0/24", 11), -EINVAL);
    CHECK_INT(cidr_lookup_text(set, "example.com", 11), -EINVAL);
    CHECK_INT(look(set, "1111:2222:3333:4444:5555:6666:7777:8888:9999:0000"), -EINVAL);
    cidr_free(set);
}

TEST(memory_is_one_root_per_family_used_then_grows_by_doubling)
{
    struct cidr *set = cidr_new(8);
    size_t base = cidr_bytes(set);
    const size_t root = 65536 * 4 + 65536 + 65536 / 4; /* slot words, lengths, marks */
    CHECK_INT(add(set, "10.0.0.0/8", 1), 0);           /* fits the root: no node */
    CHECK_INT(cidr_bytes(set) - base, root);
    CHECK_INT(add(set, "10.1.2.3/32", 1), 0); /* four 16-slot nodes: capacity doubles */
    CHECK_INT(cidr_bytes(set) - base, 2 * root);
    CHECK_INT(add(set, "2001::/16", 1), 0);
    CHECK_INT(cidr_bytes(set) - base, 3 * root);
    cidr_free(set);
}

/* Cross-check against a brute-force reference: random prefixes of every length, both families,
 * looked up at random addresses and at addresses inside and next to each prefix. */
struct ref {
    uint8_t a[16];
    int family;
    unsigned plen;
    int32_t value;
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static bool ref_contains(const struct ref *r, int family, const uint8_t *a)
{
    if (r->family != family)
        return false;
    for (unsigned i = 0; i < r->plen; i++) {
        unsigned byte = i / 8, bit = 7 - i % 8;
        if (((r->a[byte] >> bit) & 1) != ((a[byte] >> bit) & 1))
            return false;
    }
    return true;
}

static int32_t ref_lookup(const struct ref *refs, size_t n, int family, const uint8_t *a)
{
    int best = -1;
    for (size_t i = 0; i < n; i++)
        if (ref_contains(&refs[i], family, a) && (best < 0 || refs[i].plen > refs[best].plen))
            best = (int)i;
    return best < 0 ? -1 : refs[best].value;
}

TEST(random_sets_agree_with_a_brute_force_reference)
{
    enum { N = 600, PROBES = 20000 };
    static struct ref refs[N];
    size_t n = 0;
    struct cidr *set = cidr_new(N);
    char text[80], err[160];

    while (n < N) {
        struct ref r = {.family = (rng() & 3) ? AF_INET : AF_INET6};
        unsigned bits = r.family == AF_INET ? 32 : 128;
        uint64_t x = rng(), y = rng();
        memcpy(r.a, &x, 8);
        memcpy(r.a + 8, &y, 8);
        /* Few distinct top bytes so that prefixes nest and overlap. */
        r.a[0] = (uint8_t)(r.family == AF_INET ? 10 + (rng() & 1) : 0x20);
        r.a[1] &= 0x3;
        if (r.family == AF_INET6 && r.a[2] == 0)
            r.a[2] = 1; /* keep clear of ::ffff:0:0/96 */
        r.plen = (unsigned)(rng() % (bits + 1));
        for (unsigned i = r.plen; i < 128; i++)
            r.a[i / 8] &= (uint8_t) ~(0x80 >> (i % 8));
        r.value = (int32_t)(rng() % 1000);
        inet_ntop(r.family, r.a, text, sizeof text);
        snprintf(text + strlen(text), sizeof text - strlen(text), "/%u", r.plen);
        if (cidr_add(set, text, r.value, err, sizeof err) != 0) {
            TEST_FAIL_AT("add %s: %s", text, err);
            break;
        }
        size_t j;
        for (j = 0; j < n; j++)
            if (refs[j].family == r.family && refs[j].plen == r.plen &&
                memcmp(refs[j].a, r.a, 16) == 0)
                break;
        refs[j] = r; /* replaces a duplicate, as the set does */
        if (j == n)
            n++;
        if (cidr_count(set) != n) {
            TEST_FAIL_AT("after %s: count %u, expected %zu", text, cidr_count(set), n);
            break;
        }
    }
    int mismatches = 0;
    for (int p = 0; p < PROBES && mismatches < 5; p++) {
        const struct ref *r = &refs[rng() % n];
        uint8_t a[16];
        int family = r->family;
        uint64_t x = rng(), y = rng();
        memcpy(a, &x, 8);
        memcpy(a + 8, &y, 8);
        if (p % 2) {
            /* Inside r, or one bit past its prefix (a sibling). */
            unsigned keep = r->plen;
            for (unsigned i = 0; i < keep; i++) {
                unsigned byte = i / 8, bit = 7 - i % 8;
                a[byte] = (uint8_t)((a[byte] & ~(1u << bit)) | (r->a[byte] & (1u << bit)));
            }
            if (p % 4 == 1 && keep > 0)
                a[(keep - 1) / 8] ^= (uint8_t)(0x80 >> ((keep - 1) % 8));
        } else {
            a[0] = (uint8_t)(family == AF_INET ? 10 + (rng() & 1) : 0x20);
            a[1] &= 0x3;
            if (family == AF_INET6 && a[2] == 0)
                a[2] = 1;
        }
        int32_t want = ref_lookup(refs, n, family, a), got = cidr_lookup(set, family, a);
        if (want != got) {
            inet_ntop(family, a, text, sizeof text);
            TEST_FAIL_AT("%s: got %d, expected %d", text, got, want);
            mismatches++;
        }
    }
    cidr_free(set);
}

TEST_MAIN()
