/* classify: maps a header value (User-Agent, Server, the user part of To...) to a class id chosen
 * by the caller, by an ordered list of rules: exact, prefix, suffix, contains or glob, each
 * optionally ASCII case-insensitive. It compares bytes: no Unicode folding, no normalisation
 * of spaces, no regular expressions.
 *
 * Order: rules are numbered in the order they are added, and a lookup returns the class of the
 * lowest-numbered rule that matches, whatever the kinds. A rule is never preferred for being
 * longer or more specific: put "exact Asterisk PBX 18" before "prefix Asterisk" for it to win.
 *
 * Rules are compiled as they are added: exact and prefix rules into a byte trie walked from the
 * front of the value, suffix rules into one walked from the back (one pair for case-sensitive
 * rules, one for folded ones); contains rules into chains indexed by their first two bytes, so
 * a lookup reads each byte of the value once per index; globs that are really one of the other
 * kinds ("abc*", "*abc", "*abc*", no wildcard) are compiled as that kind. Remaining globs are
 * matched one by one, in order, only while they could still beat the best match found. A lookup
 * never allocates and never writes. Memory: about 42 KiB of fixed indexes and memo per
 * classifier, plus about 50 bytes and the pattern's bytes per rule.
 *
 * Glob syntax: '*' matches any run of bytes (also none), '?' exactly one byte, '\' makes the
 * next byte literal ("\*", "\?", "\\"); a trailing lone '\' is an error. No character classes.
 *
 * Empty patterns are allowed: exact "" matches only the empty value; prefix, suffix and contains
 * "" match every value, as does glob "*".
 *
 * Bounded work: values come from packets (a header may be 64 KiB), and a lookup runs inside a
 * rule's time budget without a chance to stop. So a lookup looks at the first
 * CLASSIFY_MAX_VALUE bytes of a value only, as if it ended there: the header values worth
 * classifying (User-Agent, Server, a URI) are well under 1 KiB, which also keeps four times
 * the longest pattern in view. And a rule whose addition would let a lookup's worst case (any
 * value, see classify_cost) pass CLASSIFY_MAX_COST is refused: the trie walks are short
 * whatever the rules; contains chains that share their first two bytes, and globs with
 * segments between stars, cost in proportion to the value and are what the limit counts. */
#ifndef SIPSCOPE_CLASSIFY_H
#define SIPSCOPE_CLASSIFY_H

#include <stddef.h>
#include <stdint.h>

enum classify_kind {
    CLASSIFY_EXACT,
    CLASSIFY_PREFIX,
    CLASSIFY_SUFFIX,
    CLASSIFY_CONTAINS,
    CLASSIFY_GLOB,
};

#define CLASSIFY_NOCASE 1u       /* flag: compare with ASCII letters folded */
#define CLASSIFY_MAX_PATTERN 256 /* bytes of a pattern as written (escapes included) */
#define CLASSIFY_MAX_RULES 4096  /* keeps trie node numbers within 24 bits */
#define CLASSIFY_MEMO_ENTRIES 256 /* classify_lookup_memo's results kept */
#define CLASSIFY_MEMO_BYTES 48    /* values longer than this are not kept */
#define CLASSIFY_MAX_VALUE 1024   /* bytes of a value a lookup looks at (see classify_lookup) */
#define CLASSIFY_MAX_COST 524288  /* a lookup's worst-case work, classify_cost's unit */

struct classify;

/* A new classifier that accepts at most max_rules rules (1..CLASSIFY_MAX_RULES). Returns NULL
 * on a bad cap or out of memory. Owned by the caller; release with classify_free. */
struct classify *classify_new(uint32_t max_rules);

/* Frees the classifier; NULL is fine. */
void classify_free(struct classify *c);

/* Appends a rule: a value matching pattern[0..len) as `kind` gets class_id (>= 0). flags is 0
 * or CLASSIFY_NOCASE. The pattern is copied. Returns 0; -EINVAL with a one-line reason in
 * err[errlen] (unknown kind or flag, negative class, pattern longer than CLASSIFY_MAX_PATTERN,
 * trailing '\' in a glob); -E2BIG, with the reason, when the rule would raise classify_cost
 * past CLASSIFY_MAX_COST; -ENOSPC when max_rules rules are already in; -ENOMEM. The classifier
 * is unchanged on error. err may be NULL when errlen is 0. */
int classify_add(struct classify *c, enum classify_kind kind, const char *pattern, size_t len,
                 unsigned flags, int32_t class_id, char *err, size_t errlen);

/* Class of the first rule (in the order added) that matches the value p[0..len), which needs
 * no NUL and may be empty; -1 when no rule matches. A value longer than CLASSIFY_MAX_VALUE is
 * matched as its first CLASSIFY_MAX_VALUE bytes (a suffix or a glob's tail at byte 1024, a
 * contains pattern only within them). Never allocates; does at most classify_cost work. */
int32_t classify_lookup(const struct classify *c, const char *p, size_t len);

/* classify_lookup through a memo of the last results (CLASSIFY_MEMO_ENTRIES values of at most
 * CLASSIFY_MEMO_BYTES bytes, direct-mapped by a hash, checked byte for byte): header values
 * such as User-Agent repeat, and a hash and a compare cost less than the matcher (about a
 * quarter of it on a 29-rule list). The same result as classify_lookup; it writes the memo,
 * which classify_add empties. */
int32_t classify_lookup_memo(struct classify *c, const char *value, size_t len);

/* Parses a kind name ("exact", "prefix", "suffix", "contains", "glob"; exact spelling) for
 * bindings. Returns the kind or -EINVAL. */
int classify_kind_parse(const char *name, size_t len);

/* Number of rules added. */
uint32_t classify_count(const struct classify *c);

/* An upper bound on a lookup's work with the rules added, whatever the value, in units of
 * about a nanosecond (release build): a byte compared is one unit, and trying a contains
 * pattern or a glob segment at a place of the value 4 more. Contains patterns in one index
 * chain (the same first two bytes, folded, or a hash collision of them) may all be tried, and
 * compared in full, at every place of the value; a glob's segments between stars may be tried
 * at every place. So: 4 * CLASSIFY_MAX_PATTERN (the trie walks) + CLASSIFY_MAX_VALUE * (2 +
 * the longest one-byte chain + the longest chain, each pattern counting its bytes + 4) + for
 * each general glob, CLASSIFY_MAX_VALUE * (its longest segment between stars + 4) when it has
 * one, + its elements. CLASSIFY_MAX_COST keeps the worst case near half a millisecond
 * (tests/bench/bench_helpers.c, classifiers at the limit: 0.1 to 0.6 ms with -O2, up to 1.9 ms
 * in a Debug build), a tenth of the default rule budget: a rule may classify two headers in
 * one call and still have most of its budget. */
uint64_t classify_cost(const struct classify *c);

#endif
