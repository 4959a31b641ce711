/* Unit tests for the JSON scanner (src/base/json.c). */
#include "base/base.h"
#include "test.h"

static rt_slice_t S(const char *s) { return rt_slice(s, strlen(s)); }

/* Validity of a slice with explicit length (for embedded NULs). */
static bool valid_n(const char *p, size_t n) { return rt_json_valid(rt_slice(p, n), NULL); }
#define VALID_LIT(lit) valid_n((lit), sizeof(lit) - 1)

static rt_json_type_t vtype(const char *s)
{
    rt_json_type_t t = RT_JSON_NULL;
    rt_json_valid(S(s), &t);
    return t;
}

TEST(valid_scalars)
{
    CHECK_EQ_INT(vtype("null"), RT_JSON_NULL);
    CHECK_EQ_INT(vtype("true"), RT_JSON_TRUE);
    CHECK_EQ_INT(vtype("false"), RT_JSON_FALSE);
    CHECK_EQ_INT(vtype("0"), RT_JSON_NUMBER);
    CHECK_EQ_INT(vtype("-0"), RT_JSON_NUMBER);
    CHECK_EQ_INT(vtype("123"), RT_JSON_NUMBER);
    CHECK_EQ_INT(vtype("-1.5e+10"), RT_JSON_NUMBER);
    CHECK_EQ_INT(vtype("0.25E-3"), RT_JSON_NUMBER);
    CHECK_EQ_INT(vtype("1e5"), RT_JSON_NUMBER);
    CHECK_EQ_INT(vtype("\"\""), RT_JSON_STRING);
    CHECK_EQ_INT(vtype(" \t\r\n\"x\" \n"), RT_JSON_STRING);
    CHECK_EQ_INT(vtype("[]"), RT_JSON_ARRAY);
    CHECK_EQ_INT(vtype("{}"), RT_JSON_OBJECT);
    CHECK_EQ_INT(vtype("[1,\"a\",{\"b\":[null,true,false]},-2.5]"), RT_JSON_ARRAY);
    CHECK_EQ_INT(vtype("{ \"a\" : 1 , \"b\" : [ ] , \"c\" : { } }"), RT_JSON_OBJECT);
}

TEST(invalid_numbers)
{
    const char *bad[] = {"01", "-01", "+1", ".5", "5.", "1.e5", "1e", "1e+", "-", "--1", "NaN",
                         "Infinity", "-Infinity", "0x10", "1.5.5", "1e5e5", "00", "- 1"};
    for (size_t i = 0; i < RT_ARRAY_LEN(bad); i++) {
        if (rt_json_valid(S(bad[i]), NULL)) fprintf(stderr, "  accepted %s\n", bad[i]);
        CHECK(!rt_json_valid(S(bad[i]), NULL));
    }
}

TEST(invalid_structure)
{
    const char *bad[] = {"",        " ",         "[",         "]",         "{",
                         "[1,]",    "[,1]",      "[1 2]",     "{\"a\"}",   "{\"a\":}",
                         "{\"a\" 1}", "{a:1}",   "{\"a\":1,}", "{,}",      "[}",
                         "{]",      "tru",       "truex",     "nul",       "True",
                         "\"abc",   "[1]]",      "{}{}",      "1 2",       "'a'",
                         "[\"a\":1]", "{\"a\":1 \"b\":2}", "[1,,2]", "\xef\xbb\xbf{}"};
    for (size_t i = 0; i < RT_ARRAY_LEN(bad); i++) {
        if (rt_json_valid(S(bad[i]), NULL)) fprintf(stderr, "  accepted %s\n", bad[i]);
        CHECK(!rt_json_valid(S(bad[i]), NULL));
    }
    rt_json_type_t t = RT_JSON_NULL;
    CHECK(!rt_json_valid(S("[1,]"), &t));
    CHECK_EQ_INT(t, RT_JSON_INVALID);
    CHECK(!rt_json_valid(RT_SLICE_NULL, &t));
    /* A NUL byte is neither whitespace nor a token. */
    CHECK(!VALID_LIT("[1]\0"));
    CHECK(!VALID_LIT("[\0]"));
}

TEST(strings)
{
    CHECK(rt_json_valid(S("\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\""), NULL));
    CHECK(rt_json_valid(S("\"\\u0041\\u00e9\\uD83D\\uDE00\""), NULL));
    CHECK(rt_json_valid(S("\"\\uD800\""), NULL));        /* lone high surrogate, as JSON.parse */
    CHECK(rt_json_valid(S("\"\\uDC00x\""), NULL));       /* lone low surrogate */
    CHECK(rt_json_valid(S("\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\""), NULL)); /* é € 😀 */
    CHECK(rt_json_valid(S("\"\x7f\""), NULL));           /* DEL is allowed raw */
    CHECK(!rt_json_valid(S("\"\\x41\""), NULL));
    CHECK(!rt_json_valid(S("\"\\u12\""), NULL));
    CHECK(!rt_json_valid(S("\"\\u12G4\""), NULL));
    CHECK(!rt_json_valid(S("\"\\U0041\""), NULL));
    CHECK(!rt_json_valid(S("\"\\'\""), NULL));
    CHECK(!rt_json_valid(S("\"\\\""), NULL));
    CHECK(!rt_json_valid(S("\"a\tb\""), NULL));         /* raw control char */
    CHECK(!rt_json_valid(S("\"a\nb\""), NULL));
    CHECK(!rt_json_valid(S("\"\x1f\""), NULL));
    CHECK(!VALID_LIT("\"\0\""));
    CHECK(!rt_json_valid(S("\"\xc0\xaf\""), NULL));     /* overlong '/' */
    CHECK(!rt_json_valid(S("\"\xe0\x80\xaf\""), NULL)); /* overlong 3-byte */
    CHECK(!rt_json_valid(S("\"\xf0\x80\x80\xaf\""), NULL));
    CHECK(!rt_json_valid(S("\"\xed\xa0\x80\""), NULL)); /* raw UTF-8 surrogate */
    CHECK(!rt_json_valid(S("\"\xf4\x90\x80\x80\""), NULL)); /* > U+10FFFF */
    CHECK(!rt_json_valid(S("\"\xf5\x80\x80\x80\""), NULL));
    CHECK(!rt_json_valid(S("\"\xc3\""), NULL));         /* truncated before the quote */
    CHECK(!rt_json_valid(S("\"\xe2\x82\""), NULL));
    CHECK(!rt_json_valid(S("\"\x80\""), NULL));         /* lone continuation */
    CHECK(!rt_json_valid(S("\"\xff\""), NULL));
    /* Long strings take the 8-byte path; a bad byte at every offset must be seen. */
    char buf[64];
    for (size_t pos = 1; pos < 40; pos++) {
        memset(buf, 'a', sizeof buf);
        buf[0] = '"';
        buf[41] = '"';
        CHECK(valid_n(buf, 42));
        buf[pos] = '\x01';
        CHECK(!valid_n(buf, 42));
        buf[pos] = '\x80';
        CHECK(!valid_n(buf, 42));
        buf[pos] = '"';
        CHECK(!valid_n(buf, 42));
        buf[pos] = '\\';
        CHECK(!valid_n(buf, 42));
    }
}

TEST(depth_limit)
{
    char buf[2 * (RT_JSON_MAX_DEPTH + 1) + 1];
    size_t d = RT_JSON_MAX_DEPTH;
    memset(buf, '[', d);
    memset(buf + d, ']', d);
    CHECK(valid_n(buf, 2 * d));
    d = RT_JSON_MAX_DEPTH + 1;
    memset(buf, '[', d);
    memset(buf + d, ']', d);
    CHECK(!valid_n(buf, 2 * d));
    /* Mixed objects and arrays at exactly the limit. */
    rt_buf_t b = {0};
    for (int i = 0; i < RT_JSON_MAX_DEPTH / 2; i++) rt_buf_append_cstr(&b, "{\"k\":[");
    for (int i = 0; i < RT_JSON_MAX_DEPTH / 2; i++) rt_buf_append_cstr(&b, "]}");
    CHECK(valid_n(b.data, b.len));
    rt_buf_free(&b);
    /* A long flat array costs no depth. */
    for (int i = 0; i < 10000; i++) rt_buf_append_cstr(&b, i ? ",[]" : "[[]");
    rt_buf_putc(&b, ']');
    CHECK(valid_n(b.data, b.len));
    rt_buf_free(&b);
}

TEST(scan_end)
{
    size_t end = 99;
    CHECK_EQ_INT(rt_json_scan("  [1, 2] rest", 13, &end), RT_JSON_ARRAY);
    CHECK_EQ_INT(end, 8);
    CHECK_EQ_INT(rt_json_scan("\"ab\"c", 5, &end), RT_JSON_STRING);
    CHECK_EQ_INT(end, 4);
    CHECK_EQ_INT(rt_json_scan("12,3", 4, &end), RT_JSON_NUMBER);
    CHECK_EQ_INT(end, 2);
    CHECK_EQ_INT(rt_json_scan("truex", 5, &end), RT_JSON_TRUE);
    CHECK_EQ_INT(end, 4);
    CHECK_EQ_INT(rt_json_scan("[1,", 3, &end), RT_JSON_INVALID);
    CHECK_EQ_INT(rt_json_scan("", 0, &end), RT_JSON_INVALID);
    CHECK_EQ_INT(rt_json_scan("{}", 2, NULL), RT_JSON_OBJECT);
}

TEST(peek_and_trim)
{
    CHECK_EQ_INT(rt_json_peek(S("  {x")), RT_JSON_OBJECT);
    CHECK_EQ_INT(rt_json_peek(S("\n[")), RT_JSON_ARRAY);
    CHECK_EQ_INT(rt_json_peek(S("\"")), RT_JSON_STRING);
    CHECK_EQ_INT(rt_json_peek(S("-")), RT_JSON_NUMBER);
    CHECK_EQ_INT(rt_json_peek(S("7")), RT_JSON_NUMBER);
    CHECK_EQ_INT(rt_json_peek(S("t")), RT_JSON_TRUE);
    CHECK_EQ_INT(rt_json_peek(S("f")), RT_JSON_FALSE);
    CHECK_EQ_INT(rt_json_peek(S("n")), RT_JSON_NULL);
    CHECK_EQ_INT(rt_json_peek(S("x")), RT_JSON_INVALID);
    CHECK_EQ_INT(rt_json_peek(S("   ")), RT_JSON_INVALID);
    CHECK_EQ_INT(rt_json_peek(RT_SLICE_NULL), RT_JSON_INVALID);
    CHECK_SLICE(rt_json_trim(S(" \t\r\n{} \n")), "{}");
    CHECK_SLICE(rt_json_trim(S("   ")), "");
    CHECK_SLICE(rt_json_trim(S("a")), "a");
    CHECK_EQ_INT(rt_json_trim(RT_SLICE_NULL).n, 0);
}

TEST(array_iter)
{
    const char *a = " [ 1 , \"a,]\\\"\" ,{\"x\":[1,2]}, [[]] ,null,-2e3 ] ";
    rt_json_iter_t it;
    rt_slice_t v;
    rt_json_iter_init(&it, S(a));
    CHECK(rt_json_array_next(&it, &v));
    CHECK_SLICE(v, "1");
    CHECK(rt_json_array_next(&it, &v));
    CHECK_SLICE(v, "\"a,]\\\"\"");
    CHECK(rt_json_array_next(&it, &v));
    CHECK_SLICE(v, "{\"x\":[1,2]}");
    CHECK(rt_json_array_next(&it, &v));
    CHECK_SLICE(v, "[[]]");
    CHECK(rt_json_array_next(&it, &v));
    CHECK_SLICE(v, "null");
    CHECK(rt_json_array_next(&it, &v));
    CHECK_SLICE(v, "-2e3");
    CHECK(!rt_json_array_next(&it, &v));
    CHECK(!rt_json_array_next(&it, &v));

    rt_json_iter_init(&it, S("[]"));
    CHECK(!rt_json_array_next(&it, &v));
    rt_json_iter_init(&it, S("[ ]"));
    CHECK(!rt_json_array_next(&it, &v));
    rt_json_iter_init(&it, S("\"notarray\""));
    CHECK(!rt_json_array_next(&it, &v));
    rt_json_iter_init(&it, RT_SLICE_NULL);
    CHECK(!rt_json_array_next(&it, &v));
    /* A string ending in an escaped backslash. */
    rt_json_iter_init(&it, S("[\"a\\\\\",2]"));
    CHECK(rt_json_array_next(&it, &v));
    CHECK_SLICE(v, "\"a\\\\\"");
    CHECK(rt_json_array_next(&it, &v));
    CHECK_SLICE(v, "2");
    CHECK(!rt_json_array_next(&it, &v));
}

TEST(object_iter)
{
    rt_json_iter_t it;
    rt_slice_t k, v;
    rt_json_iter_init(&it, S("{ \"a\" : 1 , \"b\\\"c\":{\"d\":\"}\"},\"e\":[ ] }"));
    CHECK(rt_json_object_next(&it, &k, &v));
    CHECK_SLICE(k, "\"a\"");
    CHECK_SLICE(v, "1");
    CHECK(rt_json_object_next(&it, &k, &v));
    CHECK_SLICE(k, "\"b\\\"c\"");
    CHECK_SLICE(v, "{\"d\":\"}\"}");
    CHECK(rt_json_object_next(&it, &k, &v));
    CHECK_SLICE(k, "\"e\"");
    CHECK_SLICE(v, "[ ]");
    CHECK(!rt_json_object_next(&it, &k, &v));
    rt_json_iter_init(&it, S("{}"));
    CHECK(!rt_json_object_next(&it, &k, &v));
}

TEST(object_get)
{
    rt_slice_t v = RT_SLICE_NULL;
    const char *o = "{\"event\":\"x\",\"room\":null,\"n\":1,\"n\":2,\"m\\u0065ssage\":{\"a\":[]},"
                    "\"\\u00e9t\\u00E9\":true,\"emoji\\ud83d\\ude00\":3,\"lone\\ud800\":4}";
    CHECK(rt_json_object_get(S(o), "event", &v));
    CHECK_SLICE(v, "\"x\"");
    CHECK(rt_json_object_get(S(o), "room", &v));
    CHECK_SLICE(v, "null");
    CHECK(rt_json_object_get(S(o), "n", &v)); /* last occurrence wins */
    CHECK_SLICE(v, "2");
    CHECK(rt_json_object_get(S(o), "message", &v));
    CHECK_SLICE(v, "{\"a\":[]}");
    CHECK(rt_json_object_get(S(o), "\xc3\xa9t\xc3\xa9", &v));
    CHECK_SLICE(v, "true");
    CHECK(rt_json_object_get(S(o), "emoji\xf0\x9f\x98\x80", &v));
    CHECK_SLICE(v, "3");
    CHECK(rt_json_object_get(S(o), "lone\xef\xbf\xbd", &v));
    CHECK_SLICE(v, "4");
    CHECK(!rt_json_object_get(S(o), "a", &v)); /* nested keys are not top level */
    CHECK(!rt_json_object_get(S(o), "even", &v));
    CHECK(!rt_json_object_get(S(o), "events", &v));
    CHECK(!rt_json_object_get(S(o), "", &v));
    CHECK(!rt_json_object_get(S("[\"event\",1]"), "event", &v));
    CHECK(!rt_json_object_get(S("{}"), "event", &v));
    CHECK(rt_json_object_get(S("{\"\":5}"), "", &v));
    CHECK_SLICE(v, "5");
    /* Python's indented, key-sorted output. */
    const char *py = "{\n    \"event\": \"x\",\n    \"message\": {},\n"
                     "    \"namespace\": \"site1\",\n"
                     "    \"room\": null\n}";
    CHECK(rt_json_valid(S(py), NULL));
    CHECK(rt_json_object_get(S(py), "namespace", &v));
    CHECK_SLICE(v, "\"site1\"");
    CHECK(rt_json_object_get(S(py), "room", &v));
    CHECK_SLICE(v, "null");
    CHECK(rt_json_object_get(S(py), "message", &v));
    CHECK_SLICE(v, "{}");
}

static void check_decode(const char *tok, const char *want)
{
    rt_buf_t b = {0};
    rt_buf_append_cstr(&b, "pre:");
    CHECK_EQ_INT(rt_json_string_decode(S(tok), &b), RT_OK);
    CHECK(b.len >= 4);
    if (b.len >= 4) CHECK_MEM(b.data + 4, b.len - 4, want);
    rt_buf_free(&b);
}

TEST(string_decode)
{
    check_decode("\"\"", "");
    check_decode("\"plain\"", "plain");
    check_decode("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\/\b\f\n\r\t");
    check_decode("\"\\u0041\\u00e9\\u20AC\"", "A\xc3\xa9\xe2\x82\xac");
    check_decode("\"\\ud83d\\ude00!\"", "\xf0\x9f\x98\x80!");
    check_decode("\"\\uDBFF\\uDFFF\"", "\xf4\x8f\xbf\xbf");
    check_decode("\"\\ud800\"", "\xef\xbf\xbd");                         /* lone high */
    check_decode("\"\\udc00\"", "\xef\xbf\xbd");                         /* lone low */
    check_decode("\"\\ud800x\"", "\xef\xbf\xbdx");
    check_decode("\"\\ud800\\u0041\"", "\xef\xbf\xbd" "A");              /* high + non-low */
    check_decode("\"\\ud800\\ud800\\udc00\"", "\xef\xbf\xbd\xf0\x90\x80\x80");
    check_decode("\"\\udc00\\ud800\"", "\xef\xbf\xbd\xef\xbf\xbd");      /* reversed pair */
    check_decode("\"a\xc3\xa9" "b\"", "a\xc3\xa9" "b");
    check_decode("\"\\u007f\\u0080\\u07ff\\u0800\\uffff\"",
                 "\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf");

    rt_buf_t b = {0};
    CHECK_EQ_INT(rt_json_string_decode(S("\"\\u0000\""), &b), RT_OK);
    CHECK_EQ_INT(b.len, 1);
    CHECK(b.len == 1 && b.data[0] == 0);
    b.len = 0;
    rt_buf_append_cstr(&b, "keep");
    CHECK_EQ_INT(rt_json_string_decode(S("abc"), &b), RT_EPROTO);
    CHECK_EQ_INT(rt_json_string_decode(S("\""), &b), RT_EPROTO);
    CHECK_EQ_INT(rt_json_string_decode(S("\"ab\\\""), &b), RT_EPROTO);
    CHECK_EQ_INT(rt_json_string_decode(S("\"ab\\q\""), &b), RT_EPROTO);
    CHECK_EQ_INT(rt_json_string_decode(S("\"ab\\u12\""), &b), RT_EPROTO);
    CHECK_MEM(b.data, b.len, "keep"); /* nothing appended on error */
    rt_buf_free(&b);
}

TEST(string_raw)
{
    rt_slice_t r;
    CHECK(rt_json_string_raw(S("\"chat\""), &r));
    CHECK_SLICE(r, "chat");
    CHECK(rt_json_string_raw(S("\"\""), &r));
    CHECK_SLICE(r, "");
    CHECK(!rt_json_string_raw(S("\"a\\nb\""), &r));
    CHECK(!rt_json_string_raw(S("12"), &r));
    CHECK(!rt_json_string_raw(S("\""), &r));
    CHECK(!rt_json_string_raw(RT_SLICE_NULL, &r));
}

static void check_compact(const char *in, const char *want)
{
    rt_buf_t b = {0};
    rt_json_compact(S(in), &b);
    CHECK_MEM(b.data ? b.data : "", b.len, want);
    CHECK(rt_json_valid(rt_slice(b.data, b.len), NULL));
    rt_buf_free(&b);
}

TEST(compact)
{
    check_compact("{\n    \"event\": \"x\",\n    \"message\": {},\n    \"namespace\": \"site1\",\n"
                  "    \"room\": null\n}",
                  "{\"event\":\"x\",\"message\":{},\"namespace\":\"site1\",\"room\":null}");
    check_compact(" [ 1 , \"a b\\\" c\" , { \"k\" : [ true , false ] } ] ",
                  "[1,\"a b\\\" c\",{\"k\":[true,false]}]");
    check_compact("\"  spaced \\\\\"", "\"  spaced \\\\\"");
    check_compact("[\"\\\\\", \" x \"]", "[\"\\\\\",\" x \"]");
    check_compact("{}", "{}");
    check_compact("\t\r\n 42 \t", "42");
    rt_buf_t b = {0};
    rt_json_compact(RT_SLICE_NULL, &b);
    CHECK_EQ_INT(b.len, 0);
    rt_buf_append_cstr(&b, "x");
    rt_json_compact(S("[ 1 ]"), &b); /* appends */
    CHECK_MEM(b.data, b.len, "x[1]");
    rt_buf_free(&b);
}

TEST(realistic)
{
    CHECK(rt_json_valid(S("[\"message\",{\"text\":\"h\xc3\xa9llo\",\"n\":[1,2.5,-3e2]}]"), NULL));
    CHECK(rt_json_valid(S("{\"sid\":\"lv_VI97HAXpY6yYWAAAC\",\"upgrades\":[\"websocket\"],"
                          "\"pingInterval\":25000,\"pingTimeout\":20000,\"maxPayload\":1000000}"),
                        NULL));
    CHECK(rt_json_valid(S("[\"m\",{\"_placeholder\":true,\"num\":0}]"), NULL));
}

int main(void)
{
    RUN(valid_scalars);
    RUN(invalid_numbers);
    RUN(invalid_structure);
    RUN(strings);
    RUN(depth_limit);
    RUN(scan_end);
    RUN(peek_and_trim);
    RUN(array_iter);
    RUN(object_iter);
    RUN(object_get);
    RUN(string_decode);
    RUN(string_raw);
    RUN(compact);
    RUN(realistic);
    return TEST_SUMMARY("test_json");
}
