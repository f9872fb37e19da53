#include "classify.h"

#include <errno.h>
#include <stdbool.h>

#include "test.h"

static int add(struct classify *c, enum classify_kind kind, const char *pattern, unsigned flags,
               int32_t class_id)
{
    char err[160];
    int rc = classify_add(c, kind, pattern, strlen(pattern), flags, class_id, err, sizeof err);
    if (rc)
        fprintf(stderr, "  add \"%s\": %s\n", pattern, err);
    return rc;
}

static int32_t look(const struct classify *c, const char *value)
{
    return classify_lookup(c, value, strlen(value));
}

TEST(empty_classifier_matches_nothing)
{
    struct classify *c = classify_new(4);
    CHECK_INT(look(c, "Asterisk PBX 18.2.0"), -1);
    CHECK_INT(look(c, ""), -1);
    CHECK_INT(classify_count(c), 0);
    classify_free(c);
    CHECK(classify_new(0) == NULL);
    CHECK(classify_new(CLASSIFY_MAX_RULES + 1) == NULL);
    classify_free(NULL);
}

TEST(exact_matches_the_whole_value_only)
{
    struct classify *c = classify_new(8);
    CHECK_INT(add(c, CLASSIFY_EXACT, "friendly-scanner", 0, 1), 0);
    CHECK_INT(add(c, CLASSIFY_EXACT, "SIPVicious", CLASSIFY_NOCASE, 2), 0);
    CHECK_INT(look(c, "friendly-scanner"), 1);
    CHECK_INT(look(c, "friendly-scanner2"), -1);
    CHECK_INT(look(c, "friendly-scanne"), -1);
    CHECK_INT(look(c, "Friendly-scanner"), -1);
    CHECK_INT(look(c, "sipvicious"), 2);
    CHECK_INT(look(c, "SIPVICIOUS"), 2);
    CHECK_INT(look(c, "sipvicious "), -1);
    classify_free(c);
}

TEST(prefix_and_suffix_respect_case_per_rule)
{
    struct classify *c = classify_new(8);
    CHECK_INT(add(c, CLASSIFY_PREFIX, "Asterisk", 0, 1), 0);
    CHECK_INT(add(c, CLASSIFY_PREFIX, "yealink", CLASSIFY_NOCASE, 2), 0);
    CHECK_INT(add(c, CLASSIFY_SUFFIX, "-UA/6.4.0.10050", 0, 3), 0);
    CHECK_INT(add(c, CLASSIFY_SUFFIX, "/4.5", CLASSIFY_NOCASE, 4), 0);
    CHECK_INT(look(c, "Asterisk PBX 18.2.0"), 1);
    CHECK_INT(look(c, "Asterisk"), 1);
    CHECK_INT(look(c, "asterisk PBX"), -1);
    CHECK_INT(look(c, "Asteris"), -1);
    CHECK_INT(look(c, "Yealink SIP-T46S 66.86.0.15"), 2);
    CHECK_INT(look(c, "YEALINK W60B"), 2);
    CHECK_INT(look(c, "PolycomVVX-VVX_410-UA/6.4.0.10050"), 3);
    CHECK_INT(look(c, "PolycomVVX-VVX_410-ua/6.4.0.10050"), -1);
    CHECK_INT(look(c, "Linphone/4.5"), 4);
    CHECK_INT(look(c, "Linphone/4.50"), -1);
    classify_free(c);
}

TEST(contains_finds_the_pattern_anywhere)
{
    struct classify *c = classify_new(8);
    CHECK_INT(add(c, CLASSIFY_CONTAINS, "scanner", 0, 1), 0);
    CHECK_INT(add(c, CLASSIFY_CONTAINS, "mod_sofia", CLASSIFY_NOCASE, 2), 0);
    CHECK_INT(add(c, CLASSIFY_CONTAINS, "#", 0, 3), 0);
    CHECK_INT(add(c, CLASSIFY_CONTAINS, "q", CLASSIFY_NOCASE, 4), 0);
    CHECK_INT(look(c, "scanner"), 1);
    CHECK_INT(look(c, "friendly-scanner"), 1);
    CHECK_INT(look(c, "scanner v2"), 1);
    CHECK_INT(look(c, "a Scanner"), -1);
    CHECK_INT(look(c, "scanne"), -1);
    CHECK_INT(look(c, "FreeSWITCH-mod_sofia/1.10.7"), 2);
    CHECK_INT(look(c, "FreeSWITCH-MOD_SOFIA/1.10.7"), 2);
    CHECK_INT(look(c, "mod_sofi"), -1);
    CHECK_INT(look(c, "x#y"), 3);
    CHECK_INT(look(c, "#"), 3);
    CHECK_INT(look(c, "Q"), 4);
    CHECK_INT(look(c, "abcQ"), 4);
    classify_free(c);
}

TEST(first_rule_added_wins_whatever_its_kind)
{
    struct classify *a = classify_new(8), *b = classify_new(8);
    /* A general prefix before a specific exact value: the exact rule never wins. */
    CHECK_INT(add(a, CLASSIFY_PREFIX, "Asterisk", 0, 1), 0);
    CHECK_INT(add(a, CLASSIFY_EXACT, "Asterisk PBX 18.2.0", 0, 2), 0);
    CHECK_INT(add(a, CLASSIFY_CONTAINS, "PBX", 0, 3), 0);
    CHECK_INT(look(a, "Asterisk PBX 18.2.0"), 1);
    CHECK_INT(look(a, "FreePBX"), 3);
    /* Specific first. */
    CHECK_INT(add(b, CLASSIFY_EXACT, "Asterisk PBX 18.2.0", 0, 2), 0);
    CHECK_INT(add(b, CLASSIFY_CONTAINS, "PBX", 0, 3), 0);
    CHECK_INT(add(b, CLASSIFY_PREFIX, "Asterisk", 0, 1), 0);
    CHECK_INT(look(b, "Asterisk PBX 18.2.0"), 2);
    CHECK_INT(look(b, "Asterisk PBX 16.0.0"), 3); /* contains rule 1 before prefix rule 2 */
    CHECK_INT(look(b, "Asterisk 16"), 1);
    classify_free(a);
    classify_free(b);
}

TEST(first_wins_across_tries_contains_and_globs)
{
    struct classify *c = classify_new(16);
    CHECK_INT(add(c, CLASSIFY_GLOB, "*T4?S*", 0, 10), 0);  /* rule 0: general glob */
    CHECK_INT(add(c, CLASSIFY_SUFFIX, "15", 0, 11), 0);    /* rule 1 */
    CHECK_INT(add(c, CLASSIFY_CONTAINS, "SIP", 0, 12), 0); /* rule 2 */
    CHECK_INT(add(c, CLASSIFY_PREFIX, "yealink", CLASSIFY_NOCASE, 13), 0); /* rule 3 */
    CHECK_INT(add(c, CLASSIFY_GLOB, "*6?.*", 0, 14), 0); /* rule 4: general glob */
    CHECK_INT(look(c, "Yealink SIP-T46S 66.86.0.15"), 10);
    CHECK_INT(look(c, "Yealink SIP-T48G 66.86.0.15"), 11);
    CHECK_INT(look(c, "Yealink SIP-T48G 66.86.0.16"), 12);
    CHECK_INT(look(c, "Yealink T48G 66.86.0.16"), 13);
    CHECK_INT(look(c, "Grandstream GXP2170 1.0.66.1"), 14);
    CHECK_INT(look(c, "Grandstream GXP2170 1.0.7"), -1);
    classify_free(c);
}

TEST(duplicate_rules_keep_the_first_class)
{
    struct classify *c = classify_new(8);
    CHECK_INT(add(c, CLASSIFY_PREFIX, "Linphone", 0, 1), 0);
    CHECK_INT(add(c, CLASSIFY_PREFIX, "Linphone", 0, 2), 0);
    CHECK_INT(add(c, CLASSIFY_CONTAINS, "phone", 0, 3), 0);
    CHECK_INT(add(c, CLASSIFY_CONTAINS, "phone", 0, 4), 0);
    CHECK_INT(look(c, "Linphone/4.5"), 1);
    CHECK_INT(look(c, "Zoiper phone"), 3);
    CHECK_INT(classify_count(c), 4);
    classify_free(c);
}

TEST(empty_patterns_match_as_documented)
{
    struct classify *c = classify_new(8);
    CHECK_INT(add(c, CLASSIFY_EXACT, "", 0, 1), 0);
    CHECK_INT(look(c, ""), 1);
    CHECK_INT(look(c, "x"), -1);
    CHECK_INT(add(c, CLASSIFY_SUFFIX, "", CLASSIFY_NOCASE, 2), 0);
    CHECK_INT(look(c, "x"), 2);
    CHECK_INT(look(c, ""), 1);
    classify_free(c);

    static const enum classify_kind all[] = {CLASSIFY_PREFIX, CLASSIFY_CONTAINS};
    for (size_t i = 0; i < 2; i++) {
        c = classify_new(2);
        CHECK_INT(add(c, all[i], "", 0, 7), 0);
        CHECK_INT(look(c, ""), 7);
        CHECK_INT(look(c, "anything at all"), 7);
        classify_free(c);
    }
    c = classify_new(2);
    CHECK_INT(add(c, CLASSIFY_GLOB, "", 0, 8), 0);
    CHECK_INT(look(c, ""), 8);
    CHECK_INT(look(c, "a"), -1);
    CHECK_INT(add(c, CLASSIFY_GLOB, "**", 0, 9), 0);
    CHECK_INT(look(c, "a"), 9);
    classify_free(c);
}

struct glob_case {
    const char *pattern, *value;
    bool match;
};

TEST(glob_edge_cases)
{
    static const struct glob_case cases[] = {
        {"*", "", true},
        {"*", "abc", true},
        {"?", "", false},
        {"?", "a", true},
        {"?", "ab", false},
        {"a*", "a", true},
        {"*a", "a", true},
        {"*a*", "a", true},
        {"*a*", "b", false},
        {"a*b", "ab", true},
        {"a*b", "axxb", true},
        {"a*b", "axxbx", false},
        {"a*b*c", "abc", true},
        {"a*b*c", "aXbYbZc", true},
        {"a*b*c", "acb", false},
        {"*ab", "aab", true}, /* needs the star to take one byte back */
        {"*aab", "aaab", true},
        {"a*a*a*b", "aaaaaaaa", false},
        {"a*a*a*b", "aaaaaaab", true},
        {"*?", "", false},
        {"*?", "x", true},
        {"?*?", "x", false},
        {"?*?", "xy", true},
        {"*a?c*", "zzabczz", true},
        {"*a?c*", "zzaczz", false},
        {"\\*", "*", true},
        {"\\*", "x", false},
        {"\\?", "?", true},
        {"\\?", "x", false},
        {"a\\*b*", "a*bcd", true},
        {"a\\*b*", "axbcd", false},
        {"\\\\*", "\\abc", true},
        {"*.*", "1.2", true},
        {"*.*", "12", false},
        {"Yealink SIP-T4?S *", "Yealink SIP-T46S 66.86.0.15", true},
        {"Yealink SIP-T4?S *", "Yealink SIP-T46G 66.86.0.15", false},
        {"Yealink SIP-T4?S *", "Yealink SIP-T46S", false},
        {"a*b?c*d", "aXbYcZd", true},
        {"a*b?c*d", "abcd", false},
        {"*b?c*b?c*", "bxcbyc", true},
        {"*b?c*b?c*", "bxcbc", false},
        {"a*??*a", "aaa", false}, /* the segment and the tail may not share a byte */
        {"a*??*a", "aaaa", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct classify *c = classify_new(1);
        CHECK_INT(add(c, CLASSIFY_GLOB, cases[i].pattern, 0, 5), 0);
        int32_t got = look(c, cases[i].value);
        if (got != (cases[i].match ? 5 : -1))
            TEST_FAIL_AT("glob \"%s\" on \"%s\": %d", cases[i].pattern, cases[i].value, got);
        classify_free(c);
    }
}

TEST(glob_nocase_folds_letters_only)
{
    struct classify *c = classify_new(4);
    CHECK_INT(add(c, CLASSIFY_GLOB, "polycom*-ua/?.*", CLASSIFY_NOCASE, 1), 0);
    CHECK_INT(look(c, "PolycomVVX-VVX_410-UA/6.4.0.10050"), 1);
    CHECK_INT(look(c, "POLYCOMSoundPoint-UA/4.0"), 1);
    CHECK_INT(look(c, "PolycomVVX-VVX_410-UA_6.4"), -1);
    classify_free(c);
}

TEST(lookup_reads_only_its_slice)
{
    struct classify *c = classify_new(4);
    const char buf[] = "Linphone/4.5XXXX";
    CHECK_INT(add(c, CLASSIFY_SUFFIX, "4.5", 0, 1), 0);
    CHECK_INT(add(c, CLASSIFY_EXACT, "Lin", 0, 2), 0);
    CHECK_INT(classify_lookup(c, buf, 12), 1);
    CHECK_INT(classify_lookup(c, buf, 16), -1);
    CHECK_INT(classify_lookup(c, buf, 3), 2);
    CHECK_INT(classify_lookup(c, buf, 0), -1);
    classify_free(c);
}

TEST(bad_rules_are_refused_and_leave_no_trace)
{
    char err[160], longp[CLASSIFY_MAX_PATTERN + 2];
    struct classify *c = classify_new(2);

    memset(longp, 'a', sizeof longp);
    longp[sizeof longp - 1] = '\0';
    CHECK_INT(add(c, CLASSIFY_PREFIX, longp, 0, 1), -EINVAL);
    longp[CLASSIFY_MAX_PATTERN] = '\0';
    CHECK_INT(add(c, CLASSIFY_PREFIX, longp, 0, 1), 0); /* exactly the cap is fine */
    CHECK_INT(classify_add(c, CLASSIFY_GLOB, "abc\\", 4, 0, 1, err, sizeof err), -EINVAL);
    CHECK_STR(err, "glob \"abc\\\": trailing '\\' escapes nothing");
    CHECK_INT(classify_add(c, CLASSIFY_EXACT, "x", 1, 0, -1, err, sizeof err), -EINVAL);
    CHECK_STR(err, "class -1: classes are 0 or more");
    CHECK_INT(classify_add(c, (enum classify_kind)9, "x", 1, 0, 1, err, sizeof err), -EINVAL);
    CHECK_INT(classify_add(c, CLASSIFY_EXACT, "x", 1, 2, 1, NULL, 0), -EINVAL);
    CHECK_INT(classify_count(c), 1);
    CHECK_INT(look(c, "abc\\"), -1);
    CHECK_INT(add(c, CLASSIFY_EXACT, "x", 0, 2), 0);
    CHECK_INT(classify_add(c, CLASSIFY_EXACT, "y", 1, 0, 3, err, sizeof err), -ENOSPC);
    CHECK_STR(err, "pattern \"y\": the classifier is full (2 rules)");
    CHECK_INT(look(c, "y"), -1);
    CHECK_INT(look(c, "x"), 2);
    classify_free(c);
}

TEST(long_values_are_matched_by_their_first_1024_bytes)
{
    struct classify *c = classify_new(8);
    char v[5000];

    memset(v, 'x', sizeof v);
    CHECK_INT(add(c, CLASSIFY_CONTAINS, "needle", 0, 1), 0);
    CHECK_INT(add(c, CLASSIFY_SUFFIX, "tail", 0, 2), 0);
    CHECK_INT(add(c, CLASSIFY_GLOB, "x*n?dle*", 0, 3), 0);
    memcpy(v + 2000, "needle", 6);
    memcpy(v + sizeof v - 4, "tail", 4);
    CHECK_INT(classify_lookup(c, v, sizeof v), -1); /* both past byte 1024 */
    CHECK_INT(classify_lookup(c, v + 1000, sizeof v - 1000), 1);
    memcpy(v + CLASSIFY_MAX_VALUE - 6, "needle", 6); /* the last bytes looked at */
    CHECK_INT(classify_lookup(c, v, sizeof v), 1);
    CHECK_INT(classify_lookup_memo(c, v, sizeof v), 1);
    memcpy(v + CLASSIFY_MAX_VALUE - 6, "xxxxxxxxxxxx", 12);
    memcpy(v + CLASSIFY_MAX_VALUE - 5, "needle", 6); /* one byte too far */
    CHECK_INT(classify_lookup(c, v, sizeof v), -1);
    memcpy(v + 500, "nXdle", 5);
    CHECK_INT(classify_lookup(c, v, sizeof v), 3);
    memcpy(v + CLASSIFY_MAX_VALUE - 4, "tail", 4); /* the cut value ends there */
    CHECK_INT(classify_lookup(c, v, sizeof v), 2);
    classify_free(c);
}

/* The reviewer's classifier: 64 globs "*a{120}b*" (contains in disguise, one index chain) froze
 * a rule for 45 s on a 4 MiB value; 1,000 contains patterns of 200 bytes took 10.8 s on 1 MiB. */
TEST(rules_that_would_pass_the_work_bound_are_refused)
{
    struct classify *c = classify_new(64);
    char pat[124], err[320];
    int added = 0, rc = 0;

    pat[0] = '*';
    memset(pat + 1, 'a', 120);
    memcpy(pat + 121, "b*", 3);
    /* Empty: the trie walks and the two index scans of a 1024-byte value. */
    CHECK_INT(classify_cost(c), 4 * 256 + 1024 * 2);
    while (added < 64 && (rc = add(c, CLASSIFY_GLOB, pat, 0, added)) == 0)
        added++;
    CHECK_INT(added, 4);
    CHECK_INT(rc, -E2BIG);
    /* Each pattern 121 bytes and a step of 4, at each of 1024 places. */
    CHECK_INT(classify_cost(c), 3072 + 1024 * 4 * 125);
    CHECK_INT(classify_add(c, CLASSIFY_GLOB, pat, strlen(pat), 0, 9, err, sizeof err), -E2BIG);
    CHECK_STR(err, "pattern \"*aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\": with it a lookup's "
                   "worst case would be 643072 steps, more than 524288 (use fewer contains "
                   "patterns that start with the same two bytes, or shorter runs between a "
                   "glob's stars)");
    /* Refused rules leave nothing behind; patterns in other chains, tries and globs without a
     * segment between stars still go in. */
    CHECK_INT(classify_count(c), 4);
    CHECK_INT(add(c, CLASSIFY_CONTAINS, "Yealink", CLASSIFY_NOCASE, 5), 0);
    CHECK_INT(add(c, CLASSIFY_PREFIX, pat + 1, 0, 6), 0);
    CHECK_INT(add(c, CLASSIFY_GLOB, "Cisco-?*/1?.?", 0, 7), 0);
    CHECK_INT(classify_cost(c), 3072 + 1024 * 4 * 125 + 13);
    /* A glob's segment between stars is tried at every place: 1024 * (4 + 4) + 10 elements. */
    CHECK_INT(add(c, CLASSIFY_GLOB, "x*/1?.*y?", 0, 8), 0);
    CHECK_INT(classify_cost(c), 3072 + 1024 * 4 * 125 + 13 + 1024 * 8 + 9);
    CHECK_INT(look(c, "x/1a.yz"), 8);
    CHECK_INT(look(c, "Cisco-CP/1x.y"), 7);
    classify_free(c);

    /* 1,000 contains patterns of 200 bytes with the same first two bytes: 2 fit. */
    c = classify_new(1000);
    added = 0;
    for (int i = 0; i < 1000; i++) {
        char p[200];
        memset(p, 'a', sizeof p);
        snprintf(p + 196, 4, "%03d", i);
        if (classify_add(c, CLASSIFY_CONTAINS, p, sizeof p, 0, i, NULL, 0) == 0)
            added++;
    }
    CHECK_INT(added, 2);
    CHECK_INT(classify_cost(c), 3072 + 1024 * 2 * 204);
    classify_free(c);
}

TEST(kind_names_parse_exactly)
{
    CHECK_INT(classify_kind_parse("exact", 5), CLASSIFY_EXACT);
    CHECK_INT(classify_kind_parse("prefix", 6), CLASSIFY_PREFIX);
    CHECK_INT(classify_kind_parse("suffix", 6), CLASSIFY_SUFFIX);
    CHECK_INT(classify_kind_parse("contains", 8), CLASSIFY_CONTAINS);
    CHECK_INT(classify_kind_parse("glob", 4), CLASSIFY_GLOB);
    CHECK_INT(classify_kind_parse("globs", 4), CLASSIFY_GLOB);
    CHECK_INT(classify_kind_parse("Glob", 4), -EINVAL);
    CHECK_INT(classify_kind_parse("glo", 3), -EINVAL);
    CHECK_INT(classify_kind_parse("", 0), -EINVAL);
}

/* Cross-check against a naive evaluation of the rules in order, with a recursive glob matcher,
 * over a small alphabet so that prefixes, overlaps, bigram collisions and case all occur. */
struct nrule {
    enum classify_kind kind;
    char pat[8];
    size_t len;
    bool nocase;
};

static char nfold(char ch)
{
    return (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
}

static bool neq(char a, char b, bool nocase)
{
    return nocase ? nfold(a) == nfold(b) : a == b;
}

static bool nmatch_at(const char *s, const char *p, size_t n, bool nocase)
{
    for (size_t i = 0; i < n; i++)
        if (!neq(s[i], p[i], nocase))
            return false;
    return true;
}

static bool nglob(const char *p, size_t pn, const char *s, size_t sn, bool nocase)
{
    if (pn == 0)
        return sn == 0;
    if (p[0] == '*')
        return nglob(p + 1, pn - 1, s, sn, nocase) ||
               (sn > 0 && nglob(p, pn, s + 1, sn - 1, nocase));
    if (sn == 0)
        return false;
    if (p[0] == '?')
        return nglob(p + 1, pn - 1, s + 1, sn - 1, nocase);
    return neq(p[0], s[0], nocase) && nglob(p + 1, pn - 1, s + 1, sn - 1, nocase);
}

static bool nrule_matches(const struct nrule *r, const char *s, size_t n)
{
    switch (r->kind) {
    case CLASSIFY_EXACT:
        return n == r->len && nmatch_at(s, r->pat, n, r->nocase);
    case CLASSIFY_PREFIX:
        return n >= r->len && nmatch_at(s, r->pat, r->len, r->nocase);
    case CLASSIFY_SUFFIX:
        return n >= r->len && nmatch_at(s + n - r->len, r->pat, r->len, r->nocase);
    case CLASSIFY_CONTAINS:
        for (size_t i = 0; i + r->len <= n; i++)
            if (nmatch_at(s + i, r->pat, r->len, r->nocase))
                return true;
        return false;
    default:
        return nglob(r->pat, r->len, s, n, r->nocase);
    }
}

static uint64_t rng_state = 88172645463325252ULL;

static uint32_t rng(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

TEST(memo_forgets_on_add_and_skips_long_values)
{
    struct classify *c = classify_new(4);
    char lng[CLASSIFY_MEMO_BYTES + 20];
    memset(lng, 'z', sizeof lng);
    memcpy(lng, "Asterisk", 8);
    CHECK_INT(add(c, CLASSIFY_PREFIX, "Asterisk", 0, 1), 0);
    CHECK_INT(classify_lookup_memo(c, "Linphone/5", 10), -1);
    CHECK_INT(classify_lookup_memo(c, "Linphone/5", 10), -1); /* from the memo */
    CHECK_INT(classify_lookup_memo(c, "Linphone/6", 10), -1);
    CHECK_INT(classify_lookup_memo(c, "Asterisk 20", 11), 1);
    CHECK_INT(classify_lookup_memo(c, lng, sizeof lng), 1);
    /* A rule added after lookups: what the memo held is recomputed. */
    CHECK_INT(add(c, CLASSIFY_PREFIX, "Linphone/5", 0, 2), 0);
    CHECK_INT(classify_lookup_memo(c, "Linphone/5", 10), 2);
    CHECK_INT(classify_lookup_memo(c, "Linphone/6", 10), -1);
    CHECK_INT(add(c, CLASSIFY_SUFFIX, "zzz", 0, 3), 0);
    CHECK_INT(classify_lookup_memo(c, lng, sizeof lng), 1); /* rule order: Asterisk first */
    CHECK_INT(classify_lookup_memo(c, lng + 8, sizeof lng - 8), 3);
    CHECK_INT(classify_lookup_memo(c, "", 0), -1);
    classify_free(c);
}

TEST(random_rule_lists_agree_with_naive_in_order_evaluation)
{
    static const char lits[] = "abAB";
    static const char globc[] = "abAB*?";
    int mismatches = 0;

    for (int round = 0; round < 300 && mismatches < 5; round++) {
        struct nrule rules[24];
        size_t nr = 1 + rng(24);
        struct classify *c = classify_new((uint32_t)nr);
        for (size_t i = 0; i < nr; i++) {
            struct nrule *r = &rules[i];
            r->kind = (enum classify_kind)rng(5);
            r->len = rng(5);
            r->nocase = rng(2);
            for (size_t k = 0; k < r->len; k++)
                r->pat[k] = r->kind == CLASSIFY_GLOB ? globc[rng(6)] : lits[rng(4)];
            CHECK_INT(classify_add(c, r->kind, r->pat, r->len, r->nocase ? CLASSIFY_NOCASE : 0,
                                   (int32_t)i, NULL, 0),
                      0);
        }
        for (int probe = 0; probe < 200; probe++) {
            char s[8];
            size_t n = rng(8);
            for (size_t k = 0; k < n; k++)
                s[k] = lits[rng(4)];
            int32_t want = -1;
            for (size_t i = 0; i < nr && want < 0; i++)
                if (nrule_matches(&rules[i], s, n))
                    want = (int32_t)i;
            int32_t got = classify_lookup(c, s, n);
            if (got != want && mismatches++ < 5)
                TEST_FAIL_AT("round %d value \"%.*s\": got rule %d, expected %d", round, (int)n, s,
                             got, want);
            /* Values repeat across the 200 probes: the memo answers some, the matcher others. */
            got = classify_lookup_memo(c, s, n);
            if (got != want && mismatches++ < 5)
                TEST_FAIL_AT("round %d value \"%.*s\": memo got rule %d, expected %d", round,
                             (int)n, s, got, want);
        }
        classify_free(c);
    }
}

/* Longer globs and values than above: several segments between stars, each found at its
 * leftmost place, against the naive recursive matcher. */
TEST(random_long_globs_agree_with_naive_matching)
{
    static const char globc[] = "abAB*?";
    static const char lits[] = "abAB";
    int mismatches = 0;

    for (int round = 0; round < 3000 && mismatches < 5; round++) {
        char pat[12], s[24];
        size_t pn = rng(sizeof pat + 1);
        bool nocase = rng(2);
        struct classify *c = classify_new(1);
        for (size_t k = 0; k < pn; k++)
            pat[k] = globc[rng(6)];
        CHECK_INT(classify_add(c, CLASSIFY_GLOB, pat, pn, nocase ? CLASSIFY_NOCASE : 0, 1, NULL, 0),
                  0);
        for (int probe = 0; probe < 40; probe++) {
            size_t n = rng(sizeof s + 1);
            for (size_t k = 0; k < n; k++)
                s[k] = lits[rng(4)];
            bool want = nglob(pat, pn, s, n, nocase);
            if ((classify_lookup(c, s, n) == 1) != want && mismatches++ < 5)
                TEST_FAIL_AT("glob \"%.*s\"%s on \"%.*s\": expected %d", (int)pn, pat,
                             nocase ? " nocase" : "", (int)n, s, want);
        }
        classify_free(c);
    }
}

TEST_MAIN()
