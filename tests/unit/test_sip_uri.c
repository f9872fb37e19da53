#include "sip_uri.h"

#include <sys/mman.h>
#include <unistd.h>

#include "test.h"

/* Inputs are copied so that they end right before a PROT_NONE page: a read past the URI's end
 * faults instead of passing silently. */
#define GUARD_DATA (128 * 1024)

static char *guard_end; /* first byte of the trailing guard page */

static const char *guarded(const char *src, size_t n)
{
    if (!guard_end) {
        size_t page = (size_t)sysconf(_SC_PAGESIZE), len = (GUARD_DATA + page - 1) / page * page;
        char *m =
            mmap(NULL, len + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED || mprotect(m + len, page, PROT_NONE)) {
            perror("mmap");
            exit(2);
        }
        guard_end = m + len;
    }
    if (n > GUARD_DATA) {
        fprintf(stderr, "input too large for the guard region\n");
        exit(2);
    }
    memcpy(guard_end - n, src, n);
    return guard_end - n;
}

struct key {
    uint64_t hash, check;
    bool parsed;
};

static struct key key_n(const char *uri, size_t n, enum sip_uri_form form)
{
    struct key k;
    struct hash2 h = hash2_start(7);
    hash2_add(&h, SLICE_LIT("prefix")); /* keys are built after other parts, as in sip_reg */
    k.parsed = sip_uri_hash(&h, slice_make(guarded(uri, n), n), form);
    hash2_finish(&h, &k.hash, &k.check);
    return k;
}

static struct key key_of(const char *uri, enum sip_uri_form form)
{
    return key_n(uri, strlen(uri), form);
}

static bool same(struct key a, struct key b)
{
    return a.hash == b.hash && a.check == b.check;
}

/* Both halves differ: a key is identified by both (table hash and check). */
static bool differ(struct key a, struct key b)
{
    return a.hash != b.hash && a.check != b.check;
}

struct pair {
    const char *a, *b;
};

static void check_pairs(const struct pair *pairs, size_t n, enum sip_uri_form form, bool equal)
{
    for (size_t i = 0; i < n; i++) {
        struct key a = key_of(pairs[i].a, form), b = key_of(pairs[i].b, form);
        if (equal ? !same(a, b) : !differ(a, b))
            TEST_FAIL_AT("%s and %s should be %s (form %d)", pairs[i].a, pairs[i].b,
                         equal ? "equal" : "different", (int)form);
        if (!a.parsed || !b.parsed)
            TEST_FAIL_AT("%s or %s did not parse", pairs[i].a, pairs[i].b);
    }
}

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* RFC 3261 §19.1.4's equivalent pairs, and the cases of the registration bugs. */
static const struct pair contacts_equal[] = {
    {"sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"},
    {"sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"},
    {"sip:carol@chicago.com", "sip:carol@chicago.com;security=on"},
    {"sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
     "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"},
    {"sip:alice@atlanta.com?subject=project%20x&priority=urgent",
     "sip:alice@atlanta.com?priority=urgent&subject=project%20x"},
    {"sip:alice@Example.COM", "sip:alice@example.com"},
    {"SIP:alice@example.com", "sip:alice@example.com"},
    {"SIPS:alice@example.com", "sips:alice@example.com"},
    {"sip:alice@192.0.2.10:5060;transport=UDP", "sip:alice@192.0.2.10:5060;transport=udp"},
    {"sip:alice@192.0.2.10;transport=%55DP", "sip:alice@192.0.2.10;transport=udp"},
    {"sip:alice@192.0.2.10;TRANSPORT=udp", "sip:alice@192.0.2.10;transport=udp"},
    {"sip:dave@[2001:DB8::10]:5060", "sip:dave@[2001:db8:0::10]:5060"},
    {"sip:dave@[2001:db8::10]", "sip:dave@[2001:0db8:0000:0000:0000:0000:0000:0010]"},
    {"sip:dave@[::ffff:192.0.2.1]", "sip:dave@[::FFFF:c000:201]"},
    {"sip:a@h.example;user=phone;ttl=15;maddr=239.0.0.1;method=INVITE;transport=udp",
     "sip:a@h.example;transport=UDP;method=INVITE;MADDR=239.0.0.1;ttl=15;user=PHONE;lr"},
    {"sip:a@h.example;transport=udp;transport=tcp", "sip:a@h.example;transport=udp"},
    {"sip:a@h.example;lr;ob;+sip.instance=\"<urn:uuid:1>\"", "sip:a@h.example;reg-id=1"},
    {"sip:a@h.example:05060", "sip:a@h.example:5060"},
    {"sip:alice:secret@h.example", "sip:%61lice:s%65cret@h.example"},
    {"sip:a%3bb@h.example", "sip:a%3Bb@h.example"},
    {"sip:a@h.example?Subject=hi", "sip:a@h.example?subject=h%69"},
};

static const struct pair contacts_different[] = {
    {"SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"},
    {"sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"},
    {"sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"},
    {"sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"},
    {"sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"},
    {"sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"},
    {"sip:alice@example.com", "sips:alice@example.com"},
    {"sip:alice@example.com", "sip:example.com"},
    {"sip:alice@example.com", "sip:alice:pw@example.com"},
    {"sip:dave@[2001:db8::10]", "sip:dave@[2001:db8::11]"},
    {"sip:a@h.example:5060", "sip:a@h.example:5061"},
    {"sip:a@h.example;transport=udp", "sip:a@h.example;transport=tcp"},
    {"sip:a@h.example;user=phone", "sip:a@h.example;user=ip"},
    {"sip:a@h.example;ttl=1", "sip:a@h.example;ttl=2"},
    {"sip:a@h.example;method=INVITE", "sip:a@h.example"},
    {"sip:a@h.example;maddr=239.0.0.1", "sip:a@h.example;maddr=239.0.0.2"},
    {"sip:a@h.example;transport", "sip:a@h.example;transport="},
    {"sip:a@h.example;transport=udp", "sip:a@h.example;transport=udp;user=phone"},
    /* An escaped reserved character is not the character, nor an escaped '%' an escape. */
    {"sip:a%3Bb@h.example", "sip:a;b@h.example"},
    {"sip:a%253Bb@h.example", "sip:a%3Bb@h.example"},
    {"sip:ab@c.example", "sip:a@bc.example"},
    {"sip:a@h.example?x=1&y=2", "sip:a@h.example?x=2&y=1"},
    {"sip:a@h.example?x=1", "sip:a@h.example?x=1&x=1"},
    {"sip:a@h.example?", "sip:a@h.example"},
};

TEST(contacts_equal_by_rfc3261_rules_give_one_key)
{
    check_pairs(contacts_equal, N_OF(contacts_equal), SIP_URI_FULL, true);
}

TEST(contacts_different_by_rfc3261_rules_give_different_keys)
{
    check_pairs(contacts_different, N_OF(contacts_different), SIP_URI_FULL, false);
}

/* §10.3 step 5: URI parameters removed (user= included), escapes decoded, host case ignored;
 * the user part and the port still count. */
static const struct pair aors_equal[] = {
    {"sip:alice@Example.COM", "sip:alice@example.com"},
    {"sip:%61lice@example.com", "sip:alice@example.com"},
    {"sip:alice@example.com;transport=udp", "sip:alice@example.com"},
    {"sip:+15551234@example.com;user=phone", "sip:+15551234@example.com"},
    {"sip:alice@example.com;maddr=239.0.0.1?subject=x", "sip:alice@example.com"},
    {"sip:alice@[2001:DB8::10]", "sip:alice@[2001:db8:0::10]"},
};

static const struct pair aors_different[] = {
    {"sip:ALICE@example.com", "sip:alice@example.com"},
    {"sip:alice@example.com:5060", "sip:alice@example.com"},
    {"sips:alice@example.com", "sip:alice@example.com"},
    {"sip:alice@example.com", "sip:alice@example.org"},
};

TEST(aors_compare_without_parameters_and_with_host_case_ignored)
{
    check_pairs(aors_equal, N_OF(aors_equal), SIP_URI_AOR, true);
    check_pairs(aors_different, N_OF(aors_different), SIP_URI_AOR, false);
}

TEST(aor_and_full_forms_differ_only_by_parameters_and_headers)
{
    /* The same URI in both forms: the AoR drops transport, the full form keeps it. */
    CHECK(same(key_of("sip:a@h.example;transport=udp", SIP_URI_AOR),
               key_of("sip:a@h.example", SIP_URI_AOR)));
    CHECK(differ(key_of("sip:a@h.example;transport=udp", SIP_URI_FULL),
                 key_of("sip:a@h.example", SIP_URI_FULL)));
}

/* What does not parse falls back to its raw bytes: it equals the same bytes only, and never a
 * URI that parsed. None of these reads past the URI (the guard page would fault). */
static const char *const unparsable[] = {
    "",
    "sip",
    "sip:",
    "sip:@example.com",
    "sip:alice@",
    "sip:alice@:5060",
    "sip:alice@;transport=udp",
    "sip:alice@example.com:",
    "sip:alice@example.com:65536",
    "sip:alice@example.com:99999999999999999999",
    "sip:alice@example.com:50x",
    "sip:alice@example.com x",
    "sip:alice@example.com>",
    "sip:alice@exa%41mple.com",
    "sip:alice@[2001:db8::1",
    "sip:alice@[2001:db8::1]x",
    "sip:alice@[]",
    "sip:alice@[zz::1]",
    "sip:alice@[192.0.2.1]",
    "sip:alice@[2001:db8:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:1]",
    "sip:a%@example.com",
    "sip:a%4@example.com",
    "sip:a%G1@example.com",
    "sip:a%4",
    "sip:a@example.com;transport=ud%",
    "sip:a@example.com;user=%zz",
    "sip:a@example.com?subject=%",
    "sip:a@example.com?%x=1",
    "tel:+15551234",
    "mailto:alice@example.com",
    "sipx:alice@example.com",
    "<sip:alice@example.com>",
    "axxxxxxxy",
};

/* A Contact without its closing '>' leaves sip_reg an empty URI with no bytes (NULL), which
 * fuzz_pcap_file found parse() adding 0 to (UBSan: "applying zero offset to null pointer"). */
TEST(an_empty_uri_without_bytes_falls_back_to_its_raw_bytes)
{
    struct hash2 h = hash2_start(7), h2 = hash2_start(7);
    uint64_t hash, check, hash2, check2;
    CHECK(!sip_uri_hash(&h, (struct slice){NULL, 0}, SIP_URI_FULL));
    CHECK(!sip_uri_hash(&h2, SLICE_LIT(""), SIP_URI_AOR));
    hash2_finish(&h, &hash, &check);
    hash2_finish(&h2, &hash2, &check2);
    CHECK(hash == hash2 && check == check2);
}

TEST(unparsable_uris_fall_back_to_their_raw_bytes)
{
    for (size_t i = 0; i < N_OF(unparsable); i++) {
        const char *u = unparsable[i];
        struct key k = key_of(u, SIP_URI_FULL);
        if (k.parsed)
            TEST_FAIL_AT("\"%s\" parsed", u);
        if (!same(k, key_of(u, SIP_URI_FULL)))
            TEST_FAIL_AT("\"%s\" gives two keys", u);
        /* Raw bytes: a change of case is another key, as is any other URI of the list. */
        char upper[256];
        size_t n = strlen(u);
        for (size_t j = 0; j <= n; j++)
            upper[j] = (u[j] >= 'a' && u[j] <= 'z') ? (char)(u[j] - 32) : u[j];
        if (strcmp(upper, u) != 0 && !differ(k, key_of(upper, SIP_URI_FULL)))
            TEST_FAIL_AT("\"%s\" equals \"%s\"", u, upper);
        for (size_t j = 0; j < i; j++)
            if (!differ(k, key_of(unparsable[j], SIP_URI_FULL)))
                TEST_FAIL_AT("\"%s\" equals \"%s\"", u, unparsable[j]);
    }
    /* The AoR form does not look at parameters or headers, so their bad escapes do not count. */
    CHECK(key_of("sip:a@example.com;transport=ud%", SIP_URI_AOR).parsed);
    CHECK(key_of("sip:a@example.com?subject=%", SIP_URI_AOR).parsed);
    CHECK(!key_of("sip:a%4@example.com", SIP_URI_AOR).parsed);
}

TEST(a_raw_fallback_never_equals_a_parsed_uri)
{
    /* "sip:a%4@h" does not parse; neither its bytes nor what it might mean equal a parsed one. */
    struct key raw = key_of("sip:a%4@h.example", SIP_URI_FULL);
    CHECK(differ(raw, key_of("sip:a%4@h.example;x", SIP_URI_FULL)));
    CHECK(differ(raw, key_of("sip:a%254@h.example", SIP_URI_FULL)));
    CHECK(key_of("sip:a%254@h.example", SIP_URI_FULL).parsed);
}

TEST(an_absent_uri_is_an_empty_raw_key)
{
    struct hash2 h = hash2_start(1), g = hash2_start(1);
    CHECK(!sip_uri_hash(&h, slice_make(NULL, 0), SIP_URI_FULL));
    CHECK(!sip_uri_hash(&g, slice_make(NULL, 0), SIP_URI_AOR));
    CHECK(h.a == g.a && h.b == g.b);
}

TEST(port_65535_is_the_largest)
{
    CHECK(key_of("sip:a@h.example:65535", SIP_URI_FULL).parsed);
    struct key zero = key_of("sip:a@h.example:0", SIP_URI_FULL);
    CHECK(zero.parsed);
    CHECK(differ(zero, key_of("sip:a@h.example", SIP_URI_FULL)));
}

/* Every prefix of URIs with every part, each against the guard page: no read past the end, and
 * each prefix hashes the same twice. */
TEST(every_prefix_stays_inside_its_bytes)
{
    static const char *const uris[] = {
        "sips:%61lice:pw@[2001:DB8::10]:5061;transport=TLS;user=phone;lr;maddr=x?subject=a%20b&p=1",
        "sip:bob@Example.COM:5060;ttl=1;method=REGISTER?to=sip:bob%40biloxi.com",
    };
    for (size_t u = 0; u < N_OF(uris); u++) {
        size_t n = strlen(uris[u]);
        for (size_t len = 0; len <= n; len++) {
            for (int form = SIP_URI_AOR; form <= SIP_URI_FULL; form++) {
                struct key a = key_n(uris[u], len, form), b = key_n(uris[u], len, form);
                if (!same(a, b))
                    TEST_FAIL_AT("prefix %zu of %s gives two keys", len, uris[u]);
            }
        }
    }
}

/* A long URI (a hostile one, or a very long user part) costs time in proportion to its length
 * and is still compared by its meaning: 20,000 escapes equal the 20,000 letters they encode. */
TEST(a_long_uri_is_decoded_in_full)
{
    size_t n = 20000, len;
    char *esc = malloc(3 * n + 32), *plain = malloc(n + 32);
    CHECK(esc && plain);
    if (!esc || !plain)
        return;
    len = (size_t)sprintf(esc, "sip:");
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(esc + len, "%%61");
    strcpy(esc + len, "@h.example");
    len = (size_t)sprintf(plain, "sip:");
    memset(plain + len, 'a', n);
    strcpy(plain + len + n, "@H.EXAMPLE");
    struct key a = key_of(esc, SIP_URI_FULL), b = key_of(plain, SIP_URI_FULL);
    CHECK(a.parsed && b.parsed);
    CHECK(same(a, b));
    plain[len + n - 1] = 'b'; /* the last of 20,000 letters still counts */
    CHECK(differ(a, key_of(plain, SIP_URI_FULL)));
    /* A long run of parameters and of unterminated brackets stays linear and parses or not. */
    memset(plain, ';', n);
    memcpy(plain, "sip:a@h", 7);
    plain[n] = '\0';
    CHECK(key_of(plain, SIP_URI_FULL).parsed);
    memset(plain, '[', n);
    memcpy(plain, "sip:a@", 6);
    CHECK(!key_of(plain, SIP_URI_FULL).parsed);
    free(esc);
    free(plain);
}

/* A part without escapes is hashed eight bytes at a time, one with escapes byte by byte: both
 * must give the same words. For every byte value that can stand in a parameter value, a value
 * holding it equals the same value with another of its bytes escaped (the slow path), in
 * lengths around the 8-byte words; and a host of every letter in upper case equals it in lower
 * case. */
TEST(parts_without_escapes_hash_as_their_escaped_spellings)
{
    char a[128], b[128];
    for (unsigned v = 1; v < 256; v++) {
        if (v == ';' || v == '?' || v == '&' || v == '%' || v == '=' || v == '@')
            continue;
        for (unsigned len = 1; len <= 17; len++) {
            /* maddr=x...x<v> against maddr=%78x...x<v>: 'x' escaped is 'x'. */
            int na =
                snprintf(a, sizeof a, "sip:h;maddr=%.*s%c", (int)len, "xxxxxxxxxxxxxxxxx", (char)v);
            int nb = snprintf(b, sizeof b, "sip:h;maddr=%%78%.*s%c", (int)len - 1,
                              "xxxxxxxxxxxxxxxxx", (char)v);
            if (!same(key_n(a, (size_t)na, SIP_URI_FULL), key_n(b, (size_t)nb, SIP_URI_FULL)))
                TEST_FAIL_AT("byte 0x%02x, length %u", v, len);
        }
    }
    CHECK(same(key_of("sip:u@ABCDEFGHIJKLMNOPQRSTUVWXYZ.Example", SIP_URI_AOR),
               key_of("sip:u@abcdefghijklmnopqrstuvwxyz.example", SIP_URI_AOR)));
    CHECK(differ(key_of("sip:u@a-b_c.d", SIP_URI_AOR), key_of("sip:u@a-b_c.e", SIP_URI_AOR)));
    /* The user part keeps its case, escaped or not. */
    CHECK(same(key_of("sip:AliceSmith123@h", SIP_URI_AOR),
               key_of("sip:%41liceSmith123@h", SIP_URI_AOR)));
    CHECK(differ(key_of("sip:AliceSmith123@h", SIP_URI_AOR),
                 key_of("sip:aliceSmith123@h", SIP_URI_AOR)));
}

TEST_MAIN()
