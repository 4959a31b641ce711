/* Unit tests for src/http/http_parser.c. */
#include "http/http_parser.h"
#include "test.h"

#define MAXH 8192

static http_request_t req;

static int parse(const char *s, size_t max_head)
{
    return http_parse_request(s, strlen(s), 0, max_head, &req);
}

/* Parses a literal that may contain NULs (so strlen cannot be used). */
#define PARSE_LIT(lit) http_parse_request((lit), sizeof(lit) - 1, 0, MAXH, &req)

TEST(polling_get)
{
    const char *s = "GET /socket.io/?EIO=4&transport=polling&t=N8hyd6w HTTP/1.1\r\n"
                    "Host: localhost:3000\r\n"
                    "Accept: */*\r\n"
                    "\r\n";
    int rc = parse(s, MAXH);
    CHECK_EQ_INT(rc, (int)strlen(s));
    CHECK_EQ_INT(req.head_len, strlen(s));
    CHECK_SLICE(req.method, "GET");
    CHECK_SLICE(req.target, "/socket.io/?EIO=4&transport=polling&t=N8hyd6w");
    CHECK_SLICE(req.path, "/socket.io/");
    CHECK_SLICE(req.query, "EIO=4&transport=polling&t=N8hyd6w");
    CHECK_EQ_INT(req.minor_version, 1);
    CHECK_EQ_INT(req.num_headers, 2);
    CHECK_SLICE(req.headers[0].name, "Host");
    CHECK_SLICE(req.headers[0].value, "localhost:3000");
    CHECK_SLICE(req.headers[1].name, "Accept");
    CHECK_SLICE(req.headers[1].value, "*/*");
    CHECK_EQ_INT(req.content_length, -1);
    CHECK(!req.chunked);
    CHECK(req.keep_alive);
    CHECK(!req.upgrade);
    /* zero-copy: slices point into the input */
    CHECK(req.method.p == s);
    CHECK(req.headers[0].value.p == strstr(s, "localhost"));
}

TEST(no_query)
{
    CHECK_EQ_INT(parse("GET /metrics HTTP/1.0\r\n\r\n", MAXH), 25);
    CHECK_SLICE(req.path, "/metrics");
    CHECK_SLICE(req.query, "");
    CHECK(req.query.p != NULL);
    CHECK_EQ_INT(req.minor_version, 0);
    CHECK_EQ_INT(req.num_headers, 0);
    CHECK(!req.keep_alive);
    /* a '?' with nothing after it */
    CHECK_EQ_INT(parse("GET /a? HTTP/1.1\r\n\r\n", MAXH), 20);
    CHECK_SLICE(req.path, "/a");
    CHECK_SLICE(req.query, "");
    CHECK_SLICE(req.target, "/a?");
    /* only the first '?' splits */
    CHECK(parse("GET /a?b?c HTTP/1.1\r\n\r\n", MAXH) > 0);
    CHECK_SLICE(req.path, "/a");
    CHECK_SLICE(req.query, "b?c");
}

TEST(post_with_body_not_consumed)
{
    const char *s = "POST /socket.io/?EIO=4&transport=polling&sid=abc HTTP/1.1\r\n"
                    "Content-Type: text/plain;charset=UTF-8\r\n"
                    "Content-Length: 12\r\n"
                    "\r\n"
                    "40{\"a\":1}xyz";
    int rc = parse(s, MAXH);
    CHECK_EQ_INT(rc, (int)(strlen(s) - 12));
    CHECK_SLICE(req.method, "POST");
    CHECK_EQ_INT(req.content_length, 12);
    CHECK_MEM(s + rc, 12, "40{\"a\":1}xyz");
}

TEST(websocket_upgrade_byte_at_a_time)
{
    const char *s = "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                    "Host: example.com\r\n"
                    "Upgrade: websocket\r\n"
                    "Connection: keep-alive, Upgrade\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    "Sec-WebSocket-Version: 13\r\n"
                    "\r\n";
    size_t n = strlen(s);
    char *copy = malloc(n); /* exact-size heap buffer so ASan sees any overread */
    size_t last = 0;
    int rc = RT_EAGAIN;
    for (size_t i = 1; i <= n; i++) {
        memcpy(copy, s, i);
        rc = http_parse_request(copy, i, last, MAXH, &req);
        if (i < n) {
            if (rc != RT_EAGAIN) {
                CHECK_EQ_INT(rc, RT_EAGAIN);
                break;
            }
        }
        last = i;
    }
    CHECK_EQ_INT(rc, (int)n);
    CHECK(req.upgrade);
    CHECK(req.keep_alive);
    CHECK_EQ_INT(req.num_headers, 5);
    CHECK_SLICE(http_header_get(&req, "sec-websocket-key"), "dGhlIHNhbXBsZSBub25jZQ==");
    CHECK_SLICE(http_header_get(&req, "UPGRADE"), "websocket");
    free(copy);
}

TEST(resume_in_chunks)
{
    /* the terminator straddles two reads: "...\r\n\r" then "\n" */
    const char *s = "GET / HTTP/1.1\r\nA: b\r\n\r\n";
    size_t n = strlen(s);
    CHECK_EQ_INT(http_parse_request(s, n - 1, 0, MAXH, &req), RT_EAGAIN);
    CHECK_EQ_INT(http_parse_request(s, n, n - 1, MAXH, &req), (int)n);
    CHECK_EQ_INT(http_parse_request(s, n - 3, 0, MAXH, &req), RT_EAGAIN);
    CHECK_EQ_INT(http_parse_request(s, n, n - 3, MAXH, &req), (int)n);
    /* a bogus last_len beyond len is treated as 0 */
    CHECK_EQ_INT(http_parse_request(s, n, n + 10, MAXH, &req), (int)n);
    CHECK_EQ_INT(http_parse_request(s, 0, 0, MAXH, &req), RT_EAGAIN);
}

TEST(header_values)
{
    const char *s = "GET / HTTP/1.1\r\n"
                    "X-A:   a b \t\r\n"
                    "X-Empty:\r\n"
                    "X-Spaces:    \r\n"
                    "X-Tab: a\tb\r\n"
                    "X-Utf8: caf\xc3\xa9\r\n"
                    "x-a: second\r\n"
                    "\r\n";
    CHECK_EQ_INT(parse(s, MAXH), (int)strlen(s));
    CHECK_EQ_INT(req.num_headers, 6);
    CHECK_SLICE(req.headers[0].value, "a b");
    CHECK_SLICE(req.headers[1].value, "");
    CHECK_SLICE(req.headers[2].value, "");
    CHECK_SLICE(req.headers[3].value, "a\tb");
    CHECK_SLICE(req.headers[4].value, "caf\xc3\xa9");
    CHECK_SLICE(http_header_get(&req, "x-a"), "a b"); /* first one wins */
    CHECK_SLICE(http_header_get(&req, "X-EMPTY"), "");
    CHECK(http_header_get(&req, "X-Empty").p != NULL);
    rt_slice_t none = http_header_get(&req, "X-Missing");
    CHECK(none.p == NULL);
    CHECK_EQ_INT(none.n, 0);
    CHECK(http_header_get(&req, "X-").p == NULL);
}

TEST(keep_alive_and_upgrade)
{
    CHECK(parse("GET / HTTP/1.1\r\n\r\n", MAXH) > 0);
    CHECK(req.keep_alive);
    CHECK(parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", MAXH) > 0);
    CHECK(!req.keep_alive);
    CHECK(parse("GET / HTTP/1.1\r\nConnection: Keep-Alive, CLOSE\r\n\r\n", MAXH) > 0);
    CHECK(!req.keep_alive);
    CHECK(parse("GET / HTTP/1.0\r\n\r\n", MAXH) > 0);
    CHECK(!req.keep_alive);
    CHECK(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", MAXH) > 0);
    CHECK(req.keep_alive);
    CHECK(parse("GET / HTTP/1.0\r\nconnection: KEEP-ALIVE\r\n\r\n", MAXH) > 0);
    CHECK(req.keep_alive);
    CHECK(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
                MAXH) > 0);
    CHECK(!req.keep_alive);
    CHECK(parse("GET / HTTP/1.1\r\nConnection: upgrade\r\n\r\n", MAXH) > 0);
    CHECK(req.upgrade);
    CHECK(req.keep_alive);
    CHECK(parse("GET / HTTP/1.1\r\nConnection: upgraded\r\nUpgrade: websocket\r\n\r\n",
                MAXH) > 0);
    CHECK(!req.upgrade);
    CHECK(parse("GET / HTTP/1.1\r\nX-Connection: upgrade\r\n\r\n", MAXH) > 0);
    CHECK(!req.upgrade);
}

TEST(content_length)
{
    CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", MAXH) > 0);
    CHECK_EQ_INT(req.content_length, 0);
    CHECK(parse("POST / HTTP/1.1\r\ncontent-length:  007 \r\n\r\n", MAXH) > 0);
    CHECK_EQ_INT(req.content_length, 7);
    CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", MAXH) > 0);
    CHECK_EQ_INT(req.content_length, 5);
    CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 9223372036854775807\r\n\r\n", MAXH) > 0);
    CHECK_EQ_INT(req.content_length, INT64_MAX);

    const char *bad[] = {
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 9223372036854775808\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 1a\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n",
    };
    for (size_t i = 0; i < RT_ARRAY_LEN(bad); i++) {
        int rc = parse(bad[i], MAXH);
        if (rc != RT_EPROTO) fprintf(stderr, "  case %zu\n", i);
        CHECK_EQ_INT(rc, RT_EPROTO);
    }
}

TEST(transfer_encoding)
{
    CHECK(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", MAXH) > 0);
    CHECK(req.chunked);
    CHECK_EQ_INT(req.content_length, -1);
    CHECK(parse("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n", MAXH) > 0);
    CHECK(req.chunked);
    CHECK(parse("POST / HTTP/1.1\r\n\r\n", MAXH) > 0);
    CHECK(!req.chunked);
    /* chunked not last, TE with CL, TE on 1.0: framing cannot be trusted */
    CHECK_EQ_INT(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", MAXH),
                 RT_EPROTO);
    CHECK_EQ_INT(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                       "Transfer-Encoding: identity\r\n\r\n",
                       MAXH),
                 RT_EPROTO);
    CHECK_EQ_INT(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                       "Content-Length: 3\r\n\r\n",
                       MAXH),
                 RT_EPROTO);
    CHECK_EQ_INT(parse("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", MAXH),
                 RT_EPROTO);
    CHECK_EQ_INT(parse("POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n", MAXH),
                 RT_EPROTO);
}

TEST(bad_request_lines)
{
    const char *bad[] = {
        "GET  / HTTP/1.1\r\n\r\n",         /* two spaces */
        "GET /  HTTP/1.1\r\n\r\n",
        "GET /HTTP/1.1\r\n\r\n",           /* missing target */
        "GET / HTTP/1.1 \r\n\r\n",         /* trailing space */
        " GET / HTTP/1.1\r\n\r\n",         /* leading space */
        "GET / HTTP/2.0\r\n\r\n",
        "GET / HTTP/1.2\r\n\r\n",
        "GET / HTTP/1.10\r\n\r\n",
        "GET / HTTP/1\r\n\r\n",
        "GET / http/1.1\r\n\r\n",
        "GET /\r\n\r\n",                  /* HTTP/0.9 */
        "GET\r\n\r\n",
        "G(T / HTTP/1.1\r\n\r\n",          /* method not a token */
        "G\xc3\x89T / HTTP/1.1\r\n\r\n",
        "GET /a b HTTP/1.1\r\n\r\n",
        "GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", /* raw 8-bit in target */
        "GET /a\tb HTTP/1.1\r\n\r\n",
        "GET /a\x7f HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\tx\r\n\r\n",
        "\r\nGET / HTTP/1.1\r\n\r\n",      /* leading empty line */
        "\r\n\r\n",
    };
    for (size_t i = 0; i < RT_ARRAY_LEN(bad); i++) {
        int rc = parse(bad[i], MAXH);
        if (rc != RT_EPROTO) fprintf(stderr, "  case %zu\n", i);
        CHECK_EQ_INT(rc, RT_EPROTO);
    }
    /* a control byte in the target, including NUL */
    CHECK_EQ_INT(PARSE_LIT("GET /a\x01 HTTP/1.1\r\n\r\n"), RT_EPROTO);
    CHECK_EQ_INT(PARSE_LIT("GET /a\0b HTTP/1.1\r\n\r\n"), RT_EPROTO);
    /* other token methods are fine: routing decides */
    CHECK_EQ_INT(parse("M-SEARCH * HTTP/1.1\r\n\r\n", MAXH), 23);
    CHECK_SLICE(req.method, "M-SEARCH");
    CHECK_SLICE(req.target, "*");
}

TEST(bad_headers)
{
    const char *bad[] = {
        "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : x\r\n\r\n",        /* space before colon */
        "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
        "GET / HTTP/1.1\r\n: empty-name\r\n\r\n",
        "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n",      /* obs-fold */
        "GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n",
        "GET / HTTP/1.1\r\n Host: x\r\n\r\n",        /* whitespace before first header */
        "GET / HTTP/1.1\r\nA\xc3\xa9: x\r\n\r\n",    /* 8-bit in name */
        "GET / HTTP/1.1\r\nA(b): x\r\n\r\n",
        "GET / HTTP/1.1\r\nA: b\x01\r\n\r\n",        /* CTL in value */
        "GET / HTTP/1.1\r\nA: b\x1f\r\n\r\n",
        "GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n",
        "GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",         /* bare CR in value */
    };
    for (size_t i = 0; i < RT_ARRAY_LEN(bad); i++) {
        int rc = parse(bad[i], MAXH);
        if (rc != RT_EPROTO) fprintf(stderr, "  case %zu\n", i);
        CHECK_EQ_INT(rc, RT_EPROTO);
    }
    CHECK_EQ_INT(PARSE_LIT("GET / HTTP/1.1\r\nA: b\0c\r\n\r\n"), RT_EPROTO);
}

TEST(line_endings)
{
    /* bare LF is rejected (see the file comment), even before completion */
    CHECK_EQ_INT(parse("GET / HTTP/1.1\n\n", MAXH), RT_EPROTO);
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nHost: x\n\r\n", MAXH), RT_EPROTO);
    CHECK_EQ_INT(parse("GET / HTTP/1.1\n", MAXH), RT_EPROTO);
    CHECK_EQ_INT(parse("\n", MAXH), RT_EPROTO);
    /* bare CR is detected as soon as the next byte arrives */
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r", MAXH), RT_EAGAIN);
    CHECK_EQ_INT(parse("GET / HTTP/1.1\rX", MAXH), RT_EPROTO);
    /* a NUL or other CTL fails the head early, incomplete or not */
    CHECK_EQ_INT(PARSE_LIT("GET /\0"), RT_EPROTO);
    CHECK_EQ_INT(PARSE_LIT("GET / HTTP/1.1\r\nA: \x02"), RT_EPROTO);
    CHECK_EQ_INT(PARSE_LIT("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), RT_EPROTO); /* TLS */
}

TEST(max_head)
{
    const char *s = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"; /* 27 bytes */
    size_t n = strlen(s);
    CHECK_EQ_INT(n, 27);
    CHECK_EQ_INT(http_parse_request(s, n, 0, 27, &req), 27);
    CHECK_EQ_INT(http_parse_request(s, n, 0, 26, &req), RT_ETOOBIG);
    CHECK_EQ_INT(http_parse_request(s, 25, 0, 26, &req), RT_EAGAIN);
    CHECK_EQ_INT(http_parse_request(s, 26, 0, 26, &req), RT_ETOOBIG);
    CHECK_EQ_INT(http_parse_request(s, 26, 25, 26, &req), RT_ETOOBIG);
    /* bytes past max_head are not even looked at: a NUL there is not an error */
    char buf[64];
    memcpy(buf, s, n);
    buf[n] = '\0';
    CHECK_EQ_INT(http_parse_request(buf, n + 1, 0, 27, &req), 27);
    memcpy(buf, "GET /aaaa", 9);
    buf[9] = '\0';
    CHECK_EQ_INT(http_parse_request(buf, 10, 0, 9, &req), RT_ETOOBIG);
}

TEST(too_many_headers)
{
    rt_buf_t b = {0};
    rt_buf_append_cstr(&b, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < HTTP_MAX_HEADERS; i++) rt_buf_printf(&b, "X-%d: %d\r\n", i, i);
    size_t at_limit = b.len;
    rt_buf_append_cstr(&b, "\r\n");
    CHECK_EQ_INT(http_parse_request(b.data, b.len, 0, 1 << 16, &req), (int)b.len);
    CHECK_EQ_INT(req.num_headers, HTTP_MAX_HEADERS);
    CHECK_SLICE(req.headers[HTTP_MAX_HEADERS - 1].name, "X-63");
    CHECK_SLICE(req.headers[HTTP_MAX_HEADERS - 1].value, "63");
    b.len = at_limit;
    rt_buf_append_cstr(&b, "X-64: 64\r\n\r\n");
    CHECK_EQ_INT(http_parse_request(b.data, b.len, 0, 1 << 16, &req), RT_ETOOBIG);
    rt_buf_free(&b);
}

TEST(token_list)
{
    CHECK(http_token_list_has(RT_SLICE("keep-alive, Upgrade"), "upgrade"));
    CHECK(http_token_list_has(RT_SLICE("UPGRADE"), "upgrade"));
    CHECK(http_token_list_has(RT_SLICE(" a ,\tb\t, c "), "b"));
    CHECK(http_token_list_has(RT_SLICE(",,c,,"), "c"));
    CHECK(http_token_list_has(RT_SLICE("a,c"), "c"));
    CHECK(!http_token_list_has(RT_SLICE("upgraded"), "upgrade"));
    CHECK(!http_token_list_has(RT_SLICE("up grade"), "upgrade"));
    CHECK(!http_token_list_has(RT_SLICE("a, b"), "a, b"));
    CHECK(!http_token_list_has(RT_SLICE(""), "upgrade"));
    CHECK(!http_token_list_has(RT_SLICE_NULL, "upgrade"));
    CHECK(!http_token_list_has(RT_SLICE(","), "upgrade"));
}

TEST(query_get)
{
    rt_slice_t q = RT_SLICE("EIO=4&transport=polling&sid=ab%2Fc+d&flag&empty=&t=1&t=2");
    rt_slice_t v;
    CHECK(http_query_get(q, "EIO", &v));
    CHECK_SLICE(v, "4");
    CHECK(http_query_get(q, "transport", &v));
    CHECK_SLICE(v, "polling");
    CHECK(http_query_get(q, "sid", &v));
    CHECK_SLICE(v, "ab%2Fc+d"); /* raw, still encoded */
    CHECK(http_query_get(q, "flag", &v));
    CHECK_SLICE(v, "");
    CHECK(http_query_get(q, "empty", &v));
    CHECK_SLICE(v, "");
    CHECK(http_query_get(q, "t", &v));
    CHECK_SLICE(v, "1");
    CHECK(!http_query_get(q, "trans", &v));
    CHECK(!http_query_get(q, "eio", &v)); /* keys are case-sensitive */
    CHECK(!http_query_get(q, "4", &v));
    CHECK(!http_query_get(RT_SLICE(""), "a", &v));
    CHECK(!http_query_get(RT_SLICE_NULL, "a", &v));
    CHECK(http_query_get(RT_SLICE("&&a=x=y&"), "a", &v));
    CHECK_SLICE(v, "x=y");
    CHECK(http_query_get(RT_SLICE("=v&b=1"), "", &v));
    CHECK_SLICE(v, "v");
}

static int decode(const char *in, bool plus, rt_buf_t *out)
{
    return rt_url_decode(rt_slice_cstr(in), plus, out);
}

TEST(url_decode)
{
    rt_buf_t b = {0};
    CHECK_EQ_INT(decode("a%2Fb%2f", false, &b), 0);
    CHECK_MEM(b.data, b.len, "a/b/");
    b.len = 0;
    CHECK_EQ_INT(decode("a+b%20c", true, &b), 0);
    CHECK_MEM(b.data, b.len, "a b c");
    b.len = 0;
    CHECK_EQ_INT(decode("a+b", false, &b), 0);
    CHECK_MEM(b.data, b.len, "a+b");
    b.len = 0;
    CHECK_EQ_INT(decode("%e2%82%AC", false, &b), 0);
    CHECK_MEM(b.data, b.len, "\xe2\x82\xac");
    b.len = 0;
    CHECK_EQ_INT(decode("%2B", true, &b), 0); /* an encoded plus stays a plus */
    CHECK_MEM(b.data, b.len, "+");
    b.len = 0;
    CHECK_EQ_INT(decode("x%00y", false, &b), 0);
    CHECK_EQ_INT(b.len, 3);
    CHECK(memcmp(b.data, "x\0y", 3) == 0);
    b.len = 0;
    CHECK_EQ_INT(decode("", false, &b), 0);
    CHECK_EQ_INT(b.len, 0);

    /* appends, and on error leaves out exactly as it was */
    rt_buf_append_cstr(&b, "pre:");
    const char *bad[] = {"%zz", "ab%", "ab%4", "%4g", "%g4", "ok%2Fthen%", "%%41"};
    for (size_t i = 0; i < RT_ARRAY_LEN(bad); i++) {
        int rc = decode(bad[i], true, &b);
        if (rc != RT_EPROTO) fprintf(stderr, "  case %zu\n", i);
        CHECK_EQ_INT(rc, RT_EPROTO);
        CHECK_MEM(b.data, b.len, "pre:");
    }
    CHECK_EQ_INT(decode("%41%42", true, &b), 0);
    CHECK_MEM(b.data, b.len, "pre:AB");
    rt_buf_free(&b);
}

TEST(form_encode)
{
    rt_buf_t b = {0};
    rt_form_encode(RT_SLICE("abcXYZ019*-._"), &b);
    CHECK_MEM(b.data, b.len, "abcXYZ019*-._");
    b.len = 0;
    rt_form_encode(RT_SLICE("a b&c=d/e~f+g%h\xc3\xa9"), &b);
    CHECK_MEM(b.data, b.len, "a+b%26c%3Dd%2Fe%7Ef%2Bg%25h%C3%A9");
    b.len = 0;
    rt_form_encode(rt_slice("\0\n\xff", 3), &b);
    CHECK_MEM(b.data, b.len, "%00%0A%FF");
    b.len = 0;
    rt_form_encode(RT_SLICE(""), &b);
    CHECK_EQ_INT(b.len, 0);
    /* appends; round-trips through decode with plus_is_space */
    rt_buf_append_cstr(&b, "k=");
    rt_form_encode(RT_SLICE("x y/z"), &b);
    CHECK_MEM(b.data, b.len, "k=x+y%2Fz");
    rt_buf_t d = {0};
    CHECK_EQ_INT(rt_url_decode(rt_slice(b.data + 2, b.len - 2), true, &d), 0);
    CHECK_MEM(d.data, d.len, "x y/z");
    rt_buf_free(&d);
    rt_buf_free(&b);
}

static int chunked(const char *in, size_t max, char *out, size_t *dec)
{
    size_t used;
    char buf[256];
    size_t n = strlen(in);
    memcpy(buf, in, n);
    int r = http_chunked_scan(buf, n, max, dec, &used);
    if (r == 1) {
        http_chunked_decode(buf, used);
        memcpy(out, buf, *dec);
        out[*dec] = 0;
    }
    return r;
}

TEST(chunked_bodies)
{
    char out[256];
    size_t dec;
    CHECK_EQ_INT(chunked("5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n", 100, out, &dec), 1);
    CHECK(!strcmp(out, "hello world"));
    CHECK_EQ_INT(chunked("0\r\n\r\n", 100, out, &dec), 1);
    CHECK_EQ_INT((int)dec, 0);
    CHECK_EQ_INT(chunked("A\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n", 100, out, &dec), 1);
    CHECK(!strcmp(out, "0123456789"));
    CHECK_EQ_INT(chunked("5\r\nhel", 100, out, &dec), RT_EAGAIN);
    CHECK_EQ_INT(chunked("5\r\nhello\r\n0\r\n", 100, out, &dec), RT_EAGAIN);
    CHECK_EQ_INT(chunked("5\r\nhello\r\n", 4, out, &dec), RT_ETOOBIG);      /* over max_body */
    CHECK_EQ_INT(chunked("ffffffffffffffffff\r\n", 100, out, &dec), RT_EPROTO); /* overflow */
    CHECK_EQ_INT(chunked("5\nhello\r\n0\r\n\r\n", 100, out, &dec), RT_EPROTO); /* bare LF */
    CHECK_EQ_INT(chunked("5\r\nhelloX\r\n0\r\n\r\n", 100, out, &dec), RT_EPROTO);
    CHECK_EQ_INT(chunked("-1\r\n", 100, out, &dec), RT_EPROTO);
    CHECK_EQ_INT(chunked("\r\n", 100, out, &dec), RT_EPROTO);
}

int main(void)
{
    RUN(chunked_bodies);
    RUN(polling_get);
    RUN(no_query);
    RUN(post_with_body_not_consumed);
    RUN(websocket_upgrade_byte_at_a_time);
    RUN(resume_in_chunks);
    RUN(header_values);
    RUN(keep_alive_and_upgrade);
    RUN(content_length);
    RUN(transfer_encoding);
    RUN(bad_request_lines);
    RUN(bad_headers);
    RUN(line_endings);
    RUN(max_head);
    RUN(too_many_headers);
    RUN(token_list);
    RUN(query_get);
    RUN(url_decode);
    RUN(form_encode);
    return TEST_SUMMARY("test_http_parser");
}
