/* HTTP/1.1 request head parser: pure (bytes in, slices out, no I/O),
 * zero-copy, and resumable: call it again with more bytes after RT_EAGAIN;
 * pass the previous buffer length as last_len so it does not rescan. */
#ifndef RT_HTTP_PARSER_H
#define RT_HTTP_PARSER_H
#include "base/base.h"

#define HTTP_MAX_HEADERS 64

typedef struct {
    rt_slice_t name, value; /* value without surrounding spaces/tabs */
} http_header_t;

typedef struct {
    rt_slice_t method;      /* e.g. "GET" */
    rt_slice_t target;      /* request-target as sent: path[?query] */
    rt_slice_t path;        /* target up to '?' (not percent-decoded) */
    rt_slice_t query;       /* after '?', empty if none */
    int minor_version;      /* 0 or 1 (HTTP/1.x only) */
    size_t num_headers;
    http_header_t headers[HTTP_MAX_HEADERS];
    size_t head_len;        /* bytes of request line + headers + final CRLF CRLF */
    int64_t content_length; /* -1 when absent */
    bool chunked;           /* Transfer-Encoding: chunked present */
    bool keep_alive;        /* after Connection header and version defaults */
    bool upgrade;           /* Connection contains "upgrade" token */
    bool too_large;         /* set by the server: the body exceeds max_body (not read; see routes) */
    const struct net_conn *conn; /* set by the http server (not the parser): the peer */
} http_request_t;

/* Parses a request head from buf[0..len). Returns head_len (> 0) on success,
 * RT_EAGAIN if the head is incomplete, RT_ETOOBIG if it is longer than
 * max_head bytes (or more than HTTP_MAX_HEADERS headers) without completing,
 * RT_EPROTO if malformed (bad request line, bad header syntax, non-1.x
 * version, invalid or conflicting Content-Length, obs-fold). last_len is the
 * length at the previous RT_EAGAIN call on the same bytes (0 at first). */
int http_parse_request(const char *buf, size_t len, size_t last_len, size_t max_head,
                       http_request_t *req);

/* A chunked body (RFC 9112 7.1) at buf[0..len): chunk sizes in hex, chunk
 * extensions ignored, trailer fields skipped, CRLF required everywhere.
 * Returns 1 when complete (*decoded = body bytes, *consumed = encoded bytes
 * including the last chunk and trailers), RT_EAGAIN when more bytes are
 * needed, RT_ETOOBIG when the body would exceed max_body bytes (or the
 * framing alone passes max_body + 64 KiB), RT_EPROTO when malformed. */
int http_chunked_scan(const char *buf, size_t len, size_t max_body, size_t *decoded, size_t *consumed);
/* Rewrites the complete chunked body at buf (as scanned) into its data,
 * in place at buf[0..decoded). */
void http_chunked_decode(char *buf, size_t consumed);

/* Value of the first header named `name` (ASCII case-insensitive), or an
 * empty slice with p == NULL when absent. */
rt_slice_t http_header_get(const http_request_t *req, const char *name);

/* True if the comma-separated header value list contains token (case-insensitive). */
bool http_token_list_has(rt_slice_t value, const char *token);

/* Finds key in an application/x-www-form-urlencoded query string; *value is
 * the raw (still encoded) value. Returns false when absent. */
bool http_query_get(rt_slice_t query, const char *key, rt_slice_t *value);

/* Percent-decoding and form encoding are in base (rt_url_decode,
 * rt_form_encode): the Redis URL and the cookies use them too. */

#endif
