/* MessagePack to JSON: every format family, notepack's undefined and Date,
 * binary as placeholders, and every way input must be refused. */
#include "emitter/msgpack.h"
#include "test.h"

static const char *conv(const void *in, size_t n, uint32_t *natt, rt_slice_t *att)
{
    static rt_buf_t out;
    out.len = 0;
    rt_slice_t a[4];
    uint32_t na = 0;
    ssize_t r = mp_to_json(rt_slice((const char *)in, n), &out, att ? att : a, natt ? natt : &na, 4, 1 << 20);
    if (r < 0) return r == RT_ETOOBIG ? "TOOBIG" : "EPROTO";
    if ((size_t)r != n) return "SHORT";
    rt_buf_putc(&out, 0);
    return out.data;
}
#define CONV(lit) conv(lit, sizeof lit - 1, NULL, NULL)

TEST(scalars)
{
    CHECK(!strcmp(CONV("\x00"), "0"));
    CHECK(!strcmp(CONV("\x7f"), "127"));
    CHECK(!strcmp(CONV("\xff"), "-1"));
    CHECK(!strcmp(CONV("\xe0"), "-32"));
    CHECK(!strcmp(CONV("\xcc\xff"), "255"));
    CHECK(!strcmp(CONV("\xcd\x01\x00"), "256"));
    CHECK(!strcmp(CONV("\xce\xff\xff\xff\xff"), "4294967295"));
    CHECK(!strcmp(CONV("\xcf\x00\x20\x00\x00\x00\x00\x00\x00"), "9007199254740992"));
    CHECK(!strcmp(CONV("\xd0\x80"), "-128"));
    CHECK(!strcmp(CONV("\xd1\x80\x00"), "-32768"));
    CHECK(!strcmp(CONV("\xd2\xff\xff\xff\xfe"), "-2"));
    CHECK(!strcmp(CONV("\xd3\xff\xff\xff\xff\xff\xff\xff\xff"), "-1"));
    CHECK(!strcmp(CONV("\xc0"), "null"));
    CHECK(!strcmp(CONV("\xc2"), "false"));
    CHECK(!strcmp(CONV("\xc3"), "true"));
    CHECK(!strcmp(CONV("\xcb\x3f\xb9\x99\x99\x99\x99\x99\x9a"), "0.1"));
    CHECK(!strcmp(CONV("\xcb\x40\x09\x21\xfb\x54\x44\x2d\x18"), "3.141592653589793"));
    CHECK(!strcmp(CONV("\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00"), "null")); /* NaN */
    CHECK(!strcmp(CONV("\xca\x3f\xc0\x00\x00"), "1.5"));
    CHECK(!strcmp(CONV("\xcb\x80\x00\x00\x00\x00\x00\x00\x00"), "0")); /* -0 */
    CHECK(!strcmp(CONV("\xa3\x61\x22\x62"), "\"a\\\"b\""));
    CHECK(!strcmp(CONV("\xd9\x02\xc3\xa9"), "\"\xc3\xa9\""));
    CHECK(!strcmp(CONV("\xa0"), "\"\""));
}

TEST(containers_and_notepack)
{
    /* ["e", {"a": 1, "u": undefined}, [undefined]] */
    CHECK(!strcmp(CONV("\x93\xa1\x65\x82\xa1\x61\x01\xa1\x75\xd4\x00\x00\x91\xd4\x00\x00"),
                  "[\"e\",{\"a\":1},[null]]"));
    /* {1: "x"}: an integer key becomes a string */
    CHECK(!strcmp(CONV("\x81\x01\xa1\x78"), "{\"1\":\"x\"}"));
    /* {"u": undefined, "b": 2}: the first pair goes, no stray comma */
    CHECK(!strcmp(CONV("\x82\xa1\x75\xd4\x00\x00\xa1\x62\x02"), "{\"b\":2}"));
    /* Date 0 ms: fixext 8, type 0, double 0 */
    CHECK(!strcmp(CONV("\xd7\x00\x00\x00\x00\x00\x00\x00\x00\x00"), "\"1970-01-01T00:00:00.000Z\""));
    CHECK(!strcmp(CONV("\xdc\x00\x02\x01\x02"), "[1,2]"));
    CHECK(!strcmp(CONV("\xde\x00\x01\xa1\x6b\x90"), "{\"k\":[]}"));
    CHECK(!strcmp(CONV("\xc7\x01\x05\x00"), "null")); /* another extension */
}

TEST(binary_placeholders)
{
    rt_slice_t att[4];
    uint32_t n = 0;
    const char in[] = "\x92\xc4\x03\x01\x02\x03\xc5\x00\x01\xff";
    const char *j = conv(in, sizeof in - 1, &n, att);
    CHECK(!strcmp(j, "[{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]"));
    CHECK_EQ_INT(n, 2);
    CHECK(att[0].n == 3 && !memcmp(att[0].p, "\x01\x02\x03", 3));
    CHECK(att[1].n == 1 && (uint8_t)att[1].p[0] == 0xff);
    /* five binaries, room for four */
    CHECK(!strcmp(CONV("\x95\xc4\x00\xc4\x00\xc4\x00\xc4\x00\xc4\x00"), "TOOBIG"));
}

TEST(refused)
{
    CHECK(!strcmp(CONV("\xc1"), "EPROTO"));
    CHECK(!strcmp(CONV("\xa3\x61"), "EPROTO"));           /* truncated string */
    CHECK(!strcmp(CONV("\xcd\x01"), "EPROTO"));           /* truncated int */
    CHECK(!strcmp(CONV("\x92\x01"), "EPROTO"));           /* missing element */
    CHECK(!strcmp(CONV("\xdd\xff\xff\xff\xff\x01"), "EPROTO")); /* a count beyond the input */
    CHECK(!strcmp(CONV("\xc6\xff\xff\xff\xff"), "EPROTO"));
    CHECK(!strcmp(CONV("\xa2\xc3\x28"), "EPROTO"));       /* invalid UTF-8 */
    CHECK(!strcmp(CONV("\x81\x90\x01"), "EPROTO"));       /* an array as a key */
    CHECK(!strcmp(CONV("\x81\xc0\x01"), "EPROTO"));       /* nil as a key */
    uint8_t deep[64];
    memset(deep, 0x91, sizeof deep);
    CHECK(!strcmp(conv(deep, sizeof deep, NULL, NULL), "EPROTO"));
    CHECK(!strcmp(conv("", 0, NULL, NULL), "EPROTO"));
    /* output bound */
    rt_buf_t out = {0};
    rt_slice_t a[1];
    uint32_t na;
    char big[300];
    big[0] = (char)0xd9, big[1] = (char)250;
    memset(big + 2, 'x', 250);
    CHECK(mp_to_json(rt_slice(big, 252), &out, a, &na, 1, 100) == RT_ETOOBIG);
    rt_buf_free(&out);
}

int main(void)
{
    RUN(scalars);
    RUN(containers_and_notepack);
    RUN(binary_placeholders);
    RUN(refused);
    return TEST_SUMMARY("test_msgpack");
}
