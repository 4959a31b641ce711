/* Fuzz target for the HTTP request head parser and the URL helpers.
 * Checks memory safety (each parse sees an exact-size heap buffer, so ASan
 * catches any read past len), that incremental feeding with last_len gives
 * the same answer as one call, and that form encoding round-trips. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "http/http_parser.h"

#define FUZZ_MAX_HEAD 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_require(bool cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_http: invariant failed: %s\n", what);
        abort();
    }
}

static void fuzz_check_decode(rt_slice_t s, bool plus)
{
    rt_buf_t out = {0};
    if (rt_url_decode(s, plus, &out) == RT_OK) fuzz_require(out.len <= s.n, "decode grows");
    else fuzz_require(out.len == 0, "decode error left output");
    rt_buf_free(&out);
}

/* decode(form_encode(x)) must give back x exactly. */
static void fuzz_check_roundtrip(rt_slice_t s)
{
    rt_buf_t enc = {0}, dec = {0};
    rt_form_encode(s, &enc);
    fuzz_require(rt_url_decode(rt_slice(enc.data, enc.len), true, &dec) == RT_OK,
                 "encoded text does not decode");
    fuzz_require(dec.len == s.n && (s.n == 0 || memcmp(dec.data, s.p, s.n) == 0),
                 "form round trip");
    rt_buf_free(&enc);
    rt_buf_free(&dec);
}

static void fuzz_use_request(const http_request_t *req, const char *buf, int rc)
{
    fuzz_require(req->head_len == (size_t)rc, "head_len");
    fuzz_require(req->num_headers <= HTTP_MAX_HEADERS, "num_headers");
    fuzz_require(req->minor_version == 0 || req->minor_version == 1, "version");
    fuzz_require(req->method.p == buf && req->method.n > 0, "method");
    fuzz_require(req->target.n > 0 && req->path.p == req->target.p, "target");
    for (size_t i = 0; i < req->num_headers; i++) {
        const http_header_t *h = &req->headers[i];
        fuzz_require(h->name.p >= buf && h->name.p + h->name.n <= buf + rc, "name bounds");
        fuzz_require(h->value.p >= buf && h->value.p + h->value.n <= buf + rc, "value bounds");
        (void)http_token_list_has(h->value, "upgrade");
        char name[64];
        if (h->name.n < sizeof name) {
            memcpy(name, h->name.p, h->name.n);
            name[h->name.n] = '\0';
            fuzz_require(http_header_get(req, name).p != NULL, "header_get own name");
        }
    }
    static const char *keys[] = {"EIO", "transport", "sid", "t", "b64", ""};
    for (size_t i = 0; i < RT_ARRAY_LEN(keys); i++) {
        rt_slice_t v;
        if (http_query_get(req->query, keys[i], &v)) {
            fuzz_require(v.p >= req->query.p && v.p + v.n <= req->query.p + req->query.n,
                         "query value bounds");
            fuzz_check_decode(v, true);
        }
    }
    fuzz_check_decode(req->path, false);
    fuzz_check_decode(req->query, true);
}

/* The body after a head, read as chunked: every prefix answers EAGAIN or
 * the same result as the whole; a complete body decodes in place to no more
 * bytes than it had, and the decoded data is what the scan counted. */
static void fuzz_check_chunked(const char *body, size_t n)
{
    size_t dec = 0, used = 0;
    int r = http_chunked_scan(body, n, 1 << 20, &dec, &used);
    fuzz_require(r == 1 || r == RT_EAGAIN || r == RT_EPROTO || r == RT_ETOOBIG, "chunked rc");
    for (size_t k = 0; k < n; k += 1 + k / 3) {
        char *copy = malloc(k ? k : 1);
        memcpy(copy, body, k);
        size_t d2, u2;
        int r2 = http_chunked_scan(copy, k, 1 << 20, &d2, &u2);
        if (r == 1 && k >= used) fuzz_require(r2 == 1 && d2 == dec && u2 == used, "chunked prefix after end");
        if (r == 1 && k < used) fuzz_require(r2 == RT_EAGAIN, "chunked prefix before end");
        free(copy);
    }
    if (r != 1) return;
    fuzz_require(used <= n && dec <= used, "chunked bounds");
    char *copy = malloc(used ? used : 1);
    memcpy(copy, body, used);
    http_chunked_decode(copy, used);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    http_request_t *req = malloc(sizeof *req), *req2 = malloc(sizeof *req2);

    int rc = http_parse_request(in, size, 0, FUZZ_MAX_HEAD, req);
    fuzz_require(rc > 0 || rc == RT_EAGAIN || rc == RT_EPROTO || rc == RT_ETOOBIG, "rc");
    if (rc > 0) {
        fuzz_require((size_t)rc <= size && rc <= FUZZ_MAX_HEAD, "rc bounds");
        fuzz_use_request(req, in, rc);
        fuzz_check_chunked(in + rc, size - (size_t)rc);
    }

    /* Incremental: grow the input in uneven steps, each call on an exact-size
     * copy, passing the previous length; the end result must match. */
    size_t last = 0, len = 0;
    int rc2 = RT_EAGAIN;
    while (rc2 == RT_EAGAIN && len < size) {
        len += (size_t)(data[len] % 37) + 1;
        if (len > size) len = size;
        char *copy = malloc(len);
        memcpy(copy, data, len);
        rc2 = http_parse_request(copy, len, last, FUZZ_MAX_HEAD, req2);
        free(copy);
        last = len;
    }
    fuzz_require(rc2 == rc, "incremental result differs");
    if (rc > 0) {
        fuzz_require(req2->num_headers == req->num_headers, "incremental headers");
        fuzz_require(req2->content_length == req->content_length, "incremental length");
        fuzz_require(req2->keep_alive == req->keep_alive && req2->upgrade == req->upgrade &&
                         req2->chunked == req->chunked,
                     "incremental flags");
    }

    /* A tight limit: never a success longer than it. */
    size_t small = size / 2;
    rc2 = http_parse_request(in, size, 0, small, req2);
    fuzz_require(rc2 <= 0 || (size_t)rc2 <= small, "max_head respected");

    fuzz_check_decode(rt_slice(in, size), false);
    fuzz_check_roundtrip(rt_slice(in, size));
    free(req);
    free(req2);
    return 0;
}
