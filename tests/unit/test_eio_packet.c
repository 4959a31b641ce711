/* Unit tests for the Engine.IO v4 packet codec (src/eio/eio_packet.c). */
#include "eio/eio_packet.h"
#include "test.h"

static rt_slice_t S(const char *s) { return rt_slice(s, strlen(s)); }

TEST(decode_text)
{
    eio_packet_t p;
    CHECK_EQ_INT(eio_packet_decode(S("4hello"), &p), RT_OK);
    CHECK_EQ_INT(p.type, EIO_MESSAGE);
    CHECK(!p.binary);
    CHECK_SLICE(p.data, "hello");
    CHECK_EQ_INT(eio_packet_decode(S("2probe"), &p), RT_OK);
    CHECK_EQ_INT(p.type, EIO_PING);
    CHECK_SLICE(p.data, "probe");
    CHECK_EQ_INT(eio_packet_decode(S("3"), &p), RT_OK);
    CHECK_EQ_INT(p.type, EIO_PONG);
    CHECK_SLICE(p.data, "");
    const char *types = "0123456";
    for (int i = 0; i < 7; i++) {
        CHECK_EQ_INT(eio_packet_decode(rt_slice(types + i, 1), &p), RT_OK);
        CHECK_EQ_INT(p.type, i);
    }
    CHECK_EQ_INT(eio_packet_decode(S("40{\"token\":\"123\"}"), &p), RT_OK);
    CHECK_SLICE(p.data, "0{\"token\":\"123\"}");
}

TEST(decode_text_errors)
{
    eio_packet_t p;
    CHECK_EQ_INT(eio_packet_decode(S(""), &p), RT_EPROTO);
    CHECK_EQ_INT(eio_packet_decode(RT_SLICE_NULL, &p), RT_EPROTO);
    CHECK_EQ_INT(eio_packet_decode(S("abc"), &p), RT_EPROTO);
    CHECK_EQ_INT(eio_packet_decode(S("7"), &p), RT_EPROTO);
    CHECK_EQ_INT(eio_packet_decode(S("9x"), &p), RT_EPROTO);
    CHECK_EQ_INT(eio_packet_decode(S("/"), &p), RT_EPROTO); /* '0' - 1 */
    CHECK_EQ_INT(eio_packet_decode(S("bAQIDBA=="), &p), RT_EPROTO); /* only in payloads */
    CHECK_EQ_INT(eio_packet_decode(S(" 4x"), &p), RT_EPROTO);
    CHECK_EQ_INT(eio_packet_decode(S("\xff"), &p), RT_EPROTO);
}

/* Records every packet of a payload as "<t|b>:<data>|". */
typedef struct {
    rt_buf_t log;
    int calls;
    int stop_after; /* return 7 from this call on; 0 = never */
} rec_t;

static int record_cb(void *ud, const eio_packet_t *pkt)
{
    rec_t *r = ud;
    r->calls++;
    if (pkt->binary) {
        CHECK_EQ_INT(pkt->type, EIO_MESSAGE);
        rt_buf_append_cstr(&r->log, "b:");
    } else {
        rt_buf_putc(&r->log, (char)('0' + pkt->type));
        rt_buf_putc(&r->log, ':');
    }
    rt_buf_append_slice(&r->log, pkt->data);
    rt_buf_putc(&r->log, '|');
    return r->stop_after && r->calls >= r->stop_after ? 7 : 0;
}

static int run_payload(const char *body, size_t n, rec_t *r)
{
    rt_buf_t scratch = {0};
    r->log.len = 0;
    r->calls = 0;
    int rc = eio_payload_decode(rt_slice(body, n), &scratch, record_cb, r);
    rt_buf_free(&scratch);
    return rc;
}
#define RUN_LIT(lit, r) run_payload((lit), sizeof(lit) - 1, (r))

TEST(payload_decode)
{
    rec_t r = {0};
    CHECK_EQ_INT(RUN_LIT("4hello\x1e" "2\x1e" "4world", &r), RT_OK);
    CHECK_EQ_INT(r.calls, 3);
    CHECK_MEM(r.log.data, r.log.len, "4:hello|2:|4:world|");

    CHECK_EQ_INT(RUN_LIT("bAQIDBA==", &r), RT_OK);
    CHECK_EQ_INT(r.calls, 1);
    CHECK_MEM(r.log.data, r.log.len, "b:\x01\x02\x03\x04|");

    CHECK_EQ_INT(RUN_LIT("451-[\"m\",{\"_placeholder\":true,\"num\":0}]\x1e" "bAQIDBA", &r), RT_OK);
    CHECK_MEM(r.log.data, r.log.len,
              "4:51-[\"m\",{\"_placeholder\":true,\"num\":0}]|b:\x01\x02\x03\x04|");

    CHECK_EQ_INT(RUN_LIT("4test1\x1e" "4test2\x1e" "4test3", &r), RT_OK);
    CHECK_MEM(r.log.data, r.log.len, "4:test1|4:test2|4:test3|");

    CHECK_EQ_INT(RUN_LIT("1", &r), RT_OK);
    CHECK_MEM(r.log.data, r.log.len, "1:|");

    CHECK_EQ_INT(RUN_LIT("b", &r), RT_OK); /* an empty binary message */
    CHECK_MEM(r.log.data, r.log.len, "b:|");

    /* Text with multibyte UTF-8 passes through untouched. */
    CHECK_EQ_INT(RUN_LIT("42[\"h\xc3\xa9\"]\x1e" "bAA==", &r), RT_OK);
    CHECK_EQ_INT(r.calls, 2);
    CHECK(r.log.len == 15 && memcmp(r.log.data, "4:2[\"h\xc3\xa9\"]|b:\0|", 15) == 0);
    rt_buf_free(&r.log);
}

TEST(payload_errors)
{
    rec_t r = {0};
    CHECK_EQ_INT(RUN_LIT("", &r), RT_EPROTO);
    CHECK_EQ_INT(r.calls, 0);
    CHECK_EQ_INT(RUN_LIT("\x1e", &r), RT_EPROTO);
    CHECK_EQ_INT(r.calls, 0);
    /* Packets before the bad record are delivered, as the reference does. */
    CHECK_EQ_INT(RUN_LIT("4a\x1e\x1e" "4b", &r), RT_EPROTO);
    CHECK_MEM(r.log.data, r.log.len, "4:a|");
    CHECK_EQ_INT(RUN_LIT("4a\x1e", &r), RT_EPROTO); /* trailing separator */
    CHECK_EQ_INT(r.calls, 1);
    CHECK_EQ_INT(RUN_LIT("\x1e" "4a", &r), RT_EPROTO);
    CHECK_EQ_INT(r.calls, 0);
    CHECK_EQ_INT(RUN_LIT("4a\x1e" "x", &r), RT_EPROTO);
    CHECK_EQ_INT(r.calls, 1);
    CHECK_EQ_INT(RUN_LIT("4a\x1e" "8", &r), RT_EPROTO);
    CHECK_EQ_INT(RUN_LIT("b!!!!", &r), RT_EPROTO);
    CHECK_EQ_INT(RUN_LIT("bA", &r), RT_EPROTO); /* 1 char mod 4 is never valid */
    CHECK_EQ_INT(RUN_LIT("bAQ IDA==", &r), RT_EPROTO);
    CHECK_EQ_INT(RUN_LIT("4ok\x1e" "bA*==", &r), RT_EPROTO);
    CHECK_MEM(r.log.data, r.log.len, "4:ok|");
    rt_buf_free(&r.log);
}

TEST(payload_cb_stop)
{
    rec_t r = {0};
    r.stop_after = 2;
    CHECK_EQ_INT(RUN_LIT("4a\x1e" "4b\x1e" "4c", &r), 7);
    CHECK_EQ_INT(r.calls, 2);
    CHECK_MEM(r.log.data, r.log.len, "4:a|4:b|");
    /* A callback stop wins over a later malformed record. */
    CHECK_EQ_INT(RUN_LIT("4a\x1e" "4b\x1e\x1e", &r), 7);
    rt_buf_free(&r.log);
}

TEST(payload_append)
{
    rt_buf_t out = {0};
    eio_packet_t p = {EIO_MESSAGE, false, S("hello")};
    eio_payload_append(&out, &p);
    CHECK_MEM(out.data, out.len, "4hello");
    p = (eio_packet_t){EIO_PING, false, RT_SLICE_NULL};
    eio_payload_append(&out, &p);
    CHECK_MEM(out.data, out.len, "4hello\x1e" "2");
    p = (eio_packet_t){EIO_MESSAGE, true, rt_slice("\x01\x02\x03\x04", 4)};
    eio_payload_append(&out, &p);
    CHECK_MEM(out.data, out.len, "4hello\x1e" "2\x1e" "bAQIDBA==");
    p = (eio_packet_t){EIO_NOOP, false, RT_SLICE_NULL};
    eio_payload_append(&out, &p);
    CHECK_MEM(out.data, out.len, "4hello\x1e" "2\x1e" "bAQIDBA==\x1e" "6");
    rt_buf_free(&out);

    p = (eio_packet_t){EIO_MESSAGE, true, RT_SLICE_NULL};
    eio_payload_append(&out, &p);
    CHECK_MEM(out.data, out.len, "b");
    p = (eio_packet_t){EIO_OPEN, false, S("{\"sid\":\"x\"}")};
    eio_payload_append(&out, &p);
    CHECK_MEM(out.data, out.len, "b\x1e" "0{\"sid\":\"x\"}");
    rt_buf_free(&out);
}

TEST(round_trip_binary)
{
    /* Every length 0..300 with every byte value: encode, decode, compare. */
    uint8_t bytes[300];
    for (size_t i = 0; i < sizeof bytes; i++) bytes[i] = (uint8_t)(i * 7 + 3);
    rec_t r = {0};
    for (size_t n = 0; n <= sizeof bytes; n += (n < 10 ? 1 : 37)) {
        rt_buf_t out = {0};
        eio_packet_t p = {EIO_MESSAGE, false, S("x")};
        eio_payload_append(&out, &p);
        p = (eio_packet_t){EIO_MESSAGE, true, rt_slice((const char *)bytes, n)};
        eio_payload_append(&out, &p);
        CHECK_EQ_INT(run_payload(out.data, out.len, &r), RT_OK);
        CHECK_EQ_INT(r.calls, 2);
        CHECK_EQ_INT(r.log.len, 4 + 2 + n + 1);
        if (r.log.len == 7 + n) CHECK(memcmp(r.log.data + 6, bytes, n) == 0);
        rt_buf_free(&out);
    }
    rt_buf_free(&r.log);
}

static int collect3(void *ud, const eio_packet_t *pkt)
{
    rt_buf_t *b = ud;
    if (b->len) rt_buf_putc(b, '|');
    if (pkt->binary) {
        rt_buf_printf(b, "bin:%zu", pkt->data.n);
    } else {
        rt_buf_putc(b, (char)('0' + pkt->type));
        rt_buf_append_slice(b, pkt->data);
    }
    return 0;
}

TEST(eio3_payloads)
{
    CHECK_EQ_INT((int)eio_utf16_len("abc", 3), 3);
    CHECK_EQ_INT((int)eio_utf16_len("\xc3\xa9\xe2\x82\xac", 5), 2);       /* é€ */
    CHECK_EQ_INT((int)eio_utf16_len("\xf0\x9f\x98\x80", 4), 2);           /* an emoji: a surrogate pair */
    rt_buf_t out = {0}, scratch = {0};
    const char *body = "2:4019:42[\"message\",\"\xc3\xa9\xe2\x82\xacx\"]1:2b4AQID"; /* last: no length */
    CHECK(eio3_payload_decode(rt_slice_cstr(body), &scratch, collect3, &out) == RT_EPROTO);
    out.len = 0;
    body = "2:4019:42[\"message\",\"\xc3\xa9\xe2\x82\xacx\"]1:26:b4AQID";
    CHECK_EQ_INT(eio3_payload_decode(rt_slice_cstr(body), &scratch, collect3, &out), RT_OK);
    rt_buf_putc(&out, 0);
    CHECK(!strcmp(out.data, "40|42[\"message\",\"\xc3\xa9\xe2\x82\xacx\"]|2|bin:3"));
    /* lengths that overrun, split a character, or are missing */
    const char *bad[] = {"3:40", "x:40", ":40", "0:", "2:4", "1:\xc3\xa9", "2:40garbage", ""};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        out.len = 0;
        CHECK(eio3_payload_decode(rt_slice_cstr(bad[k]), &scratch, collect3, &out) < 0);
    }
    /* encoding */
    out.len = 0;
    eio3_payload_append_text(&out, "42[\"\xc3\xa9\"]", 8);
    eio3_payload_append(&out, &(eio_packet_t){EIO_MESSAGE, true, rt_slice("\x01\x02\x03", 3)});
    eio3_payload_append(&out, &(eio_packet_t){EIO_PONG, false, rt_slice("probe", 5)});
    rt_buf_putc(&out, 0);
    CHECK(!strcmp(out.data, "7:42[\"\xc3\xa9\"]6:b4AQID6:3probe"));
    /* the XHR2 binary form: a text packet, then a binary one */
    const unsigned char bin[] = {0, 2, 0xff, '4', '0', 1, 4, 0xff, 4, 9, 8, 7};
    out.len = 0;
    CHECK_EQ_INT(eio3_payload_decode_binary(rt_slice((const char *)bin, sizeof bin), collect3, &out), RT_OK);
    rt_buf_putc(&out, 0);
    CHECK(!strcmp(out.data, "40|bin:3"));
    const unsigned char bin_bad[] = {2, 1, 0xff, 'x'};
    CHECK(eio3_payload_decode_binary(rt_slice((const char *)bin_bad, sizeof bin_bad), collect3, &out) < 0);
    const unsigned char bin_short[] = {0, 9, 0xff, '4'};
    CHECK(eio3_payload_decode_binary(rt_slice((const char *)bin_short, sizeof bin_short), collect3, &out) < 0);
    rt_buf_free(&out);
    rt_buf_free(&scratch);
}

int main(void)
{
    RUN(eio3_payloads);
    RUN(decode_text);
    RUN(decode_text_errors);
    RUN(payload_decode);
    RUN(payload_errors);
    RUN(payload_cb_stop);
    RUN(payload_append);
    RUN(round_trip_binary);
    return TEST_SUMMARY("test_eio_packet");
}
