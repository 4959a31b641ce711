/* Unit tests for the Socket.IO v5 packet codec (src/sio/sio_packet.c). */
#include "sio/sio_packet.h"
#include "test.h"

static rt_slice_t S(const char *s) { return rt_slice(s, strlen(s)); }

static int dec(const char *s, sio_packet_t *p)
{
    memset(p, 0xAB, sizeof *p); /* poison: every field must be set on success */
    return sio_packet_decode(S(s), p);
}

/* Decodes s, expecting success, and checks every field. */
static void ok(const char *s, sio_type_t type, const char *nsp, int64_t id, uint32_t att,
               const char *payload)
{
    sio_packet_t p;
    int rc = dec(s, &p);
    if (rc != RT_OK) fprintf(stderr, "  rejected: %s\n", s);
    CHECK_EQ_INT(rc, RT_OK);
    if (rc != RT_OK) return;
    CHECK_EQ_INT(p.type, type);
    CHECK_SLICE(p.nsp, nsp);
    CHECK_EQ_INT(p.ack_id, id);
    CHECK_EQ_INT(p.attachments, att);
    CHECK_SLICE(p.payload, payload);
}

static void bad(const char *s)
{
    sio_packet_t p;
    int rc = dec(s, &p);
    if (rc != RT_EPROTO) fprintf(stderr, "  accepted: %s\n", s);
    CHECK_EQ_INT(rc, RT_EPROTO);
}

TEST(connect)
{
    ok("0", SIO_CONNECT, "/", -1, 0, "");
    ok("0{}", SIO_CONNECT, "/", -1, 0, "{}");
    ok("0{\"token\":\"123\"}", SIO_CONNECT, "/", -1, 0, "{\"token\":\"123\"}");
    ok("0/random", SIO_CONNECT, "/random", -1, 0, "");    /* no comma at the end */
    ok("0/custom,", SIO_CONNECT, "/custom", -1, 0, "");
    ok("0/custom,{\"a\":1}", SIO_CONNECT, "/custom", -1, 0, "{\"a\":1}");
    ok("0/", SIO_CONNECT, "/", -1, 0, "");
    ok("0/admin\xc3\xa9,", SIO_CONNECT, "/admin\xc3\xa9", -1, 0, "");
    bad("0[1]");
    bad("0\"x\"");
    bad("0null");
    bad("0{");
    bad("0{} x");
    bad("0/chat,[1]");
    bad("0/bad\xff,");
    bad("0 ");
}

TEST(connect_with_id)
{
    /* The reference parses an id on any type; "01" is CONNECT with id 1. */
    sio_packet_t p;
    CHECK_EQ_INT(dec("01{}", &p), RT_OK);
    CHECK_EQ_INT(p.ack_id, 1);
    CHECK_SLICE(p.payload, "{}");
    CHECK_EQ_INT(dec("01", &p), RT_OK);
    CHECK_EQ_INT(p.ack_id, 1);
    CHECK_EQ_INT(p.payload.n, 0);
}

TEST(disconnect)
{
    ok("1", SIO_DISCONNECT, "/", -1, 0, "");
    ok("1/custom", SIO_DISCONNECT, "/custom", -1, 0, "");
    ok("1/custom,", SIO_DISCONNECT, "/custom", -1, 0, "");
    bad("1\"x\"");
    bad("1{}");
    bad("1/custom,{}");
    bad("1[]");
}

TEST(event)
{
    ok("2[\"hello\"]", SIO_EVENT, "/", -1, 0, "[\"hello\"]");
    ok("2[\"hello\",1,{\"a\":[]}]", SIO_EVENT, "/", -1, 0, "[\"hello\",1,{\"a\":[]}]");
    ok("2/chat,12[\"msg\",\"x\"]", SIO_EVENT, "/chat", 12, 0, "[\"msg\",\"x\"]");
    ok("212[\"msg\"]", SIO_EVENT, "/", 12, 0, "[\"msg\"]");
    ok("20[\"msg\"]", SIO_EVENT, "/", 0, 0, "[\"msg\"]");
    ok("2[1,\"x\"]", SIO_EVENT, "/", -1, 0, "[1,\"x\"]");          /* numeric event name */
    ok("2[-1.5]", SIO_EVENT, "/", -1, 0, "[-1.5]");
    ok("2[ \"spaced\" ]", SIO_EVENT, "/", -1, 0, "[ \"spaced\" ]");
    ok("2[\"connected\"]", SIO_EVENT, "/", -1, 0, "[\"connected\"]");
    ok("2[\"Connect\"]", SIO_EVENT, "/", -1, 0, "[\"Connect\"]");
    ok("2[\"\"]", SIO_EVENT, "/", -1, 0, "[\"\"]");
    ok("2999999999999999[\"a\"]", SIO_EVENT, "/", 999999999999999LL, 0, "[\"a\"]");
    bad("2");
    bad("2[]");
    bad("2{}");
    bad("2\"x\"");
    bad("2[null]");
    bad("2[true]");
    bad("2[[\"a\"]]");
    bad("2[{\"a\":1}]");
    bad("2abc[\"x\"]");     /* no id, payload "abc[...]" */
    bad("2[\"x\"");
    bad("2[\"x\"]]");
    bad("2/chat");          /* the namespace swallows the rest: no payload */
    bad("2/chat,");
    bad("2/chat,12");
    bad("21234567890123456[\"a\"]"); /* 16-digit id */
    bad("2-[\"a\"]");
}

TEST(reserved_names)
{
    bad("2[\"connect\"]");
    bad("2[\"connect_error\"]");
    bad("2[\"disconnect\"]");
    bad("2[\"disconnecting\"]");
    bad("2[\"newListener\"]");
    bad("2[\"removeListener\"]");
    bad("2[\"conn\\u0065ct\"]");    /* escaped spelling is the same name */
    bad("2[\"\\u0063onnect\",1]");
    bad("2/chat,5[\"disconnect\",1]");
    bad("51-[\"connect\",{\"_placeholder\":true,\"num\":0}]");
    ok("2[\"conn\\u0065cted\"]", SIO_EVENT, "/", -1, 0, "[\"conn\\u0065cted\"]");
    ok("2[\"connect\\n\"]", SIO_EVENT, "/", -1, 0, "[\"connect\\n\"]");
}

TEST(ack)
{
    ok("31[]", SIO_ACK, "/", 1, 0, "[]");
    ok("3/chat,789[\"ok\",{}]", SIO_ACK, "/chat", 789, 0, "[\"ok\",{}]");
    ok("30[null]", SIO_ACK, "/", 0, 0, "[null]");
    bad("3");
    bad("3[]");             /* an ack needs an id */
    bad("3/chat,[]");
    bad("31");
    bad("31{}");
    bad("31\"x\"");
}

TEST(connect_error_rejected)
{
    bad("4");
    bad("4{\"message\":\"x\"}");
    bad("4abc");
    bad("4/chat,{\"message\":\"x\"}");
}

TEST(binary)
{
    ok("52-[\"m\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]",
       SIO_BINARY_EVENT, "/", -1, 2,
       "[\"m\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]");
    ok("51-/chat,7[\"up\",{\"_placeholder\":true,\"num\":0}]", SIO_BINARY_EVENT, "/chat", 7, 1,
       "[\"up\",{\"_placeholder\":true,\"num\":0}]");
    ok("510-[\"a\"]", SIO_BINARY_EVENT, "/", -1, 10, "[\"a\"]");
    ok("61-0[{\"_placeholder\":true,\"num\":0}]", SIO_BINARY_ACK, "/", 0, 1,
       "[{\"_placeholder\":true,\"num\":0}]");
    ok("62-/x,789[]", SIO_BINARY_ACK, "/x", 789, 2, "[]");
    bad("511-[\"a\"]");     /* > SIO_MAX_ATTACHMENTS */
    bad("599999999999999999999-[\"a\"]");
    bad("50-[\"a\"]");
    bad("5-[\"a\"]");
    bad("5[\"a\"]");
    bad("5[\"a-b\"]");
    bad("5x-[\"a\"]");
    bad("51-");
    bad("51-[]");
    bad("51-{}");
    bad("61-[]");           /* binary ack without an id */
    bad("61-/x,[]");
    bad("6");
}

TEST(malformed)
{
    bad("");
    bad("a");
    bad("abc");
    bad("7[\"a\"]");
    bad("9");
    bad(" 2[\"a\"]");
    bad("/2[\"a\"]");
    CHECK_EQ_INT(sio_packet_decode(RT_SLICE_NULL, &(sio_packet_t){0}), RT_EPROTO);
}

static void head(sio_type_t t, const char *nsp, uint32_t att, int64_t id, const char *want)
{
    rt_buf_t b = {0};
    rt_buf_append_cstr(&b, "4"); /* appends after existing bytes */
    sio_packet_head(&b, t, nsp ? S(nsp) : RT_SLICE_NULL, att, id);
    CHECK(b.len >= 1);
    if (b.len >= 1) CHECK_MEM(b.data + 1, b.len - 1, want);
    rt_buf_free(&b);
}

TEST(head_encode)
{
    head(SIO_EVENT, "/chat", 0, 12, "2/chat,12");
    head(SIO_BINARY_EVENT, "/", 2, -1, "52-");
    head(SIO_BINARY_ACK, "/", 2, 789, "62-789");
    head(SIO_BINARY_ACK, "/x", 1, 0, "61-/x,0");
    head(SIO_CONNECT, "/", 0, -1, "0");
    head(SIO_CONNECT, NULL, 0, -1, "0");
    head(SIO_CONNECT, "/admin", 0, -1, "0/admin,");
    head(SIO_DISCONNECT, "/admin", 0, -1, "1/admin,");
    head(SIO_CONNECT_ERROR, "/", 0, -1, "4");
    head(SIO_ACK, "/", 0, 0, "30");
    head(SIO_EVENT, "/", 0, 999999999999999LL, "2999999999999999");

    /* The brief's exact frames, with the Engine.IO digit in front. */
    rt_buf_t b = {0};
    rt_buf_putc(&b, '4');
    sio_packet_head(&b, SIO_BINARY_EVENT, RT_SLICE("/"), 2, -1);
    CHECK_MEM(b.data, b.len, "452-");
    b.len = 1;
    sio_packet_head(&b, SIO_BINARY_ACK, RT_SLICE("/"), 2, 789);
    CHECK_MEM(b.data, b.len, "462-789");
    rt_buf_free(&b);
}

TEST(head_round_trip)
{
    const char *in[] = {"2/chat,12[\"msg\"]", "51-/chat,7[\"up\",{}]", "62-789[]", "0/random",
                        "1/custom,", "3/x,0[1]", "0{\"token\":\"1\"}", "2[7]"};
    const char *want[] = {"2/chat,12[\"msg\"]", "51-/chat,7[\"up\",{}]", "62-789[]", "0/random,",
                          "1/custom,", "3/x,0[1]", "0{\"token\":\"1\"}", "2[7]"};
    for (size_t i = 0; i < RT_ARRAY_LEN(in); i++) {
        sio_packet_t p;
        CHECK_EQ_INT(dec(in[i], &p), RT_OK);
        rt_buf_t b = {0};
        sio_packet_head(&b, p.type, p.nsp, p.attachments, p.ack_id);
        rt_buf_append_slice(&b, p.payload);
        CHECK_MEM(b.data, b.len, want[i]);
        rt_buf_free(&b);
    }
}

static void name_is(const char *payload, int rc, const char *want)
{
    rt_buf_t b = {0};
    CHECK_EQ_INT(sio_event_name(S(payload), &b), rc);
    if (rc == RT_OK) CHECK_MEM(b.data ? b.data : "", b.len, want);
    rt_buf_free(&b);
}

TEST(event_name)
{
    name_is("[\"hello\",1]", RT_OK, "hello");
    name_is(" [ \"a\\nb\" ] ", RT_OK, "a\nb");
    name_is("[\"\\u00e9v\\ud83d\\ude00\"]", RT_OK, "\xc3\xa9v\xf0\x9f\x98\x80");
    name_is("[\"\"]", RT_OK, "");
    name_is("[42,\"x\"]", RT_OK, "42");
    name_is("[-1.5e3]", RT_OK, "-1.5e3");
    name_is("[]", RT_EPROTO, "");
    name_is("[null]", RT_EPROTO, "");
    name_is("[{}]", RT_EPROTO, "");
    name_is("{\"a\":1}", RT_EPROTO, "");
    name_is("", RT_EPROTO, "");
}

int main(void)
{
    RUN(connect);
    RUN(connect_with_id);
    RUN(disconnect);
    RUN(event);
    RUN(reserved_names);
    RUN(ack);
    RUN(connect_error_rejected);
    RUN(binary);
    RUN(malformed);
    RUN(head_encode);
    RUN(head_round_trip);
    RUN(event_name);
    return TEST_SUMMARY("test_sio_packet");
}
