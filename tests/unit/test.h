/* Tiny unit-test harness. Each test file defines tests with TEST(name) and
 * lists them in main via RUN(name); the file ends with TEST_SUMMARY(), which
 * prints the closing line "N passed, N failed" and returns the exit code. */
#ifndef RT_TEST_H
#define RT_TEST_H
#include <stdio.h>
#include <string.h>

static int test_passed, test_failed, test_cur_failed;
static const char *test_cur_name;

#define TEST(name) static void name(void)
#define RUN(name)                                                                                  \
    do {                                                                                           \
        test_cur_failed = 0;                                                                       \
        test_cur_name = #name;                                                                     \
        name();                                                                                    \
        if (test_cur_failed) test_failed++;                                                        \
        else test_passed++;                                                                        \
    } while (0)
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  FAIL %s (%s:%d): %s\n", test_cur_name, __FILE__, __LINE__, #cond);   \
            test_cur_failed = 1;                                                                   \
        }                                                                                          \
    } while (0)
#define CHECK_EQ_INT(a, b)                                                                         \
    do {                                                                                           \
        long long _a = (long long)(a), _b = (long long)(b);                                        \
        if (_a != _b) {                                                                            \
            fprintf(stderr, "  FAIL %s (%s:%d): %s == %lld, expected %lld\n", test_cur_name,      \
                    __FILE__, __LINE__, #a, _a, _b);                                               \
            test_cur_failed = 1;                                                                   \
        }                                                                                          \
    } while (0)
/* Compares a (ptr,len) against a C string literal exactly. */
#define CHECK_MEM(ptr, len, lit)                                                                   \
    do {                                                                                           \
        size_t _l = (size_t)(len);                                                                 \
        if (_l != strlen(lit) || memcmp((ptr), (lit), _l) != 0) {                                  \
            fprintf(stderr, "  FAIL %s (%s:%d): got \"%.*s\", expected \"%s\"\n", test_cur_name,  \
                    __FILE__, __LINE__, (int)_l, (const char *)(ptr), (lit));                     \
            test_cur_failed = 1;                                                                   \
        }                                                                                          \
    } while (0)
#define CHECK_SLICE(s, lit) CHECK_MEM((s).p, (s).n, lit)
#define TEST_SUMMARY(file)                                                                         \
    (printf("%s: %d passed, %d failed\n", (file), test_passed, test_failed), test_failed ? 1 : 0)
#endif
