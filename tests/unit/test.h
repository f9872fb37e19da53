/* test: a minimal C test runner. Each test is a function registered with TEST(name); a test file
 * ends with TEST_MAIN(). Checks record a failure and carry on; the runner prints one line per
 * failure and a closing "N passed, N failed" line, and exits 1 if any test failed. A test that
 * calls TEST_SKIP(reason) counts as skipped, and when every test of the file skipped the
 * runner exits 77 (ctest's SKIP_RETURN_CODE). */
#ifndef SIPSCOPE_TEST_H
#define SIPSCOPE_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct test_case {
    const char *name;
    void (*fn)(void);
};

#define TEST_MAX 1024
static struct test_case test_cases[TEST_MAX];
static int test_count;
static int test_failed_checks;
static int test_skipped_flag;

#define TEST(name)                                                                                 \
    static void test_##name(void);                                                                 \
    __attribute__((constructor)) static void test_register_##name(void)                            \
    {                                                                                              \
        if (test_count < TEST_MAX)                                                                 \
            test_cases[test_count++] = (struct test_case){#name, test_##name};                     \
    }                                                                                              \
    static void test_##name(void)

#define TEST_FAIL_AT(...)                                                                          \
    do {                                                                                           \
        test_failed_checks++;                                                                      \
        fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);                                          \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
    } while (0)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            TEST_FAIL_AT("CHECK(%s) failed", #cond);                                               \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long test_a_ = (long long)(a), test_b_ = (long long)(b);                              \
        if (test_a_ != test_b_)                                                                    \
            TEST_FAIL_AT("%s == %lld, expected %s == %lld", #a, test_a_, #b, test_b_);             \
    } while (0)

#define CHECK_DBL(a, b)                                                                            \
    do {                                                                                           \
        double test_a_ = (double)(a), test_b_ = (double)(b);                                       \
        if (!(test_a_ - test_b_ < 1e-9 && test_b_ - test_a_ < 1e-9))                               \
            TEST_FAIL_AT("%s == %.17g, expected %.17g", #a, test_a_, test_b_);                     \
    } while (0)

/* Compares a (pointer, length) view with a C string. */
#define CHECK_SLICE(s, str)                                                                        \
    do {                                                                                           \
        size_t test_n_ = strlen(str);                                                              \
        if ((s).len != test_n_ || (test_n_ && memcmp((s).p, (str), test_n_) != 0))                \
            TEST_FAIL_AT("%s == \"%.*s\", expected \"%s\"", #s, (int)(s).len, (s).p, (str));      \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *test_a_ = (a), *test_b_ = (b);                                                 \
        if (!test_a_ || !test_b_ || strcmp(test_a_, test_b_) != 0)                                 \
            TEST_FAIL_AT("%s == \"%s\", expected \"%s\"", #a, test_a_ ? test_a_ : "(null)",        \
                         test_b_ ? test_b_ : "(null)");                                            \
    } while (0)

#define TEST_SKIP(...)                                                                             \
    do {                                                                                           \
        test_skipped_flag = 1;                                                                     \
        fprintf(stderr, "  skipped: ");                                                            \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        return;                                                                                    \
    } while (0)

#define TEST_MAIN()                                                                                \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        int passed = 0, failed = 0, skipped = 0;                                                   \
        for (int i = 0; i < test_count; i++) {                                                     \
            if (argc > 1 && strstr(test_cases[i].name, argv[1]) == NULL)                           \
                continue;                                                                          \
            int before = test_failed_checks;                                                       \
            test_skipped_flag = 0;                                                                 \
            test_cases[i].fn();                                                                    \
            if (test_failed_checks != before) {                                                    \
                failed++;                                                                          \
                fprintf(stderr, "FAIL %s\n", test_cases[i].name);                                  \
            } else if (test_skipped_flag) {                                                        \
                skipped++;                                                                         \
                fprintf(stderr, "SKIP %s\n", test_cases[i].name);                                  \
            } else {                                                                               \
                passed++;                                                                          \
            }                                                                                      \
        }                                                                                          \
        printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);                     \
        if (failed)                                                                                \
            return 1;                                                                              \
        return (skipped && passed == 0) ? 77 : 0;                                                  \
    }

#endif
