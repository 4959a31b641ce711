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

int main(void)
{
    RUN(decode_text);
    RUN(decode_text_errors);
    RUN(payload_decode);
    RUN(payload_errors);
    RUN(payload_cb_stop);
    RUN(payload_append);
    RUN(round_trip_binary);
    return TEST_SUMMARY("test_eio_packet");
}
