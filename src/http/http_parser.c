/* HTTP/1.x request head parser. Two passes:
 *
 *   1. scan:  walk the bytes not seen before (from last_len - 3) looking for
 *             the CRLF CRLF that ends the head, rejecting early what can never
 *             become valid (control bytes, a bare CR or LF). At most max_head
 *             bytes are ever looked at, so a slow or endless head costs O(n).
 *   2. parse: only once the head is complete, split the request line and the
 *             header lines into slices of the caller's buffer (zero-copy).
 *
 * Line endings: CRLF only. A bare LF is rejected rather than accepted the way
 * picohttpparser does, so that we never frame a request differently from a
 * strict proxy in front of us (request smuggling). A leading empty line before
 * the request line is rejected too (RFC 9112 only says SHOULD ignore). */
#include "http/http_parser.h"

/* tchar from RFC 9110 5.6.2: "!#$%&'*+-.^_`|~" plus DIGIT and ALPHA. */
static bool http_is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
        return true;
    default:
        return false;
    }
}

/* Bytes that may never appear anywhere in a head: CTLs except HTAB, CR, LF. */
static bool http_is_bad_ctl(unsigned char c)
{
    return (c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f;
}

static char http_lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c; }

/* Pass 1. Returns the head length when buf[0..window) holds a complete head,
 * RT_EAGAIN when not (yet), RT_EPROTO on a byte that makes it invalid. */
static int http_scan_head(const char *buf, size_t window, size_t start)
{
    for (size_t i = start; i < window; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (i > 0 && buf[i - 1] == '\r' && c != '\n') return RT_EPROTO; /* bare CR */
        if (c == '\n') {
            if (i == 0 || buf[i - 1] != '\r') return RT_EPROTO; /* bare LF */
            if (i >= 3 && buf[i - 2] == '\n' && buf[i - 3] == '\r') return (int)(i + 1);
        } else if (http_is_bad_ctl(c)) {
            return RT_EPROTO;
        }
    }
    return RT_EAGAIN;
}

/* Strict Content-Length: one or more digits, no sign, no list, fits int64. */
static int http_parse_content_length(rt_slice_t v, int64_t *out)
{
    if (v.n == 0) return RT_EPROTO;
    int64_t n = 0;
    for (size_t i = 0; i < v.n; i++) {
        unsigned char c = (unsigned char)v.p[i];
        if (c < '0' || c > '9') return RT_EPROTO;
        if (n > (INT64_MAX - (c - '0')) / 10) return RT_EPROTO;
        n = n * 10 + (c - '0');
    }
    *out = n;
    return RT_OK;
}

static rt_slice_t http_trim_ows(const char *p, size_t n)
{
    while (n > 0 && (*p == ' ' || *p == '\t')) p++, n--;
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
    return rt_slice(p, n);
}

/* The last element of a comma-separated list, trimmed (may be empty). */
static rt_slice_t http_last_list_item(rt_slice_t v)
{
    size_t i = v.n;
    while (i > 0 && v.p[i - 1] != ',') i--;
    return http_trim_ows(v.p + i, v.n - i);
}

/* Parses "METHOD SP target SP HTTP/1.x" in line[0..n) (CRLF excluded). */
static int http_parse_request_line(const char *line, size_t n, http_request_t *req)
{
    size_t i = 0;
    while (i < n && http_is_tchar((unsigned char)line[i])) i++;
    if (i == 0 || i >= n || line[i] != ' ') return RT_EPROTO;
    req->method = rt_slice(line, i);
    size_t t = ++i;
    /* Only visible ASCII in the target: no CTLs, no spaces, no raw 8-bit bytes
     * (clients percent-encode them). */
    while (i < n && (unsigned char)line[i] > 0x20 && (unsigned char)line[i] < 0x7f) i++;
    if (i == t || i >= n || line[i] != ' ') return RT_EPROTO;
    req->target = rt_slice(line + t, i - t);
    i++;
    if (n - i != 8 || memcmp(line + i, "HTTP/1.", 7) != 0) return RT_EPROTO;
    if (line[i + 7] != '0' && line[i + 7] != '1') return RT_EPROTO;
    req->minor_version = line[i + 7] - '0';

    const char *q = memchr(req->target.p, '?', req->target.n);
    if (q) {
        req->path = rt_slice(req->target.p, (size_t)(q - req->target.p));
        req->query = rt_slice(q + 1, req->target.n - req->path.n - 1);
    } else {
        req->path = req->target;
        req->query = rt_slice(req->target.p + req->target.n, 0);
    }
    return RT_OK;
}

/* Parses one header line "name: value" in line[0..n) (CRLF excluded). */
static int http_parse_header_line(const char *line, size_t n, http_header_t *h)
{
    if (line[0] == ' ' || line[0] == '\t') return RT_EPROTO; /* obs-fold */
    size_t i = 0;
    while (i < n && http_is_tchar((unsigned char)line[i])) i++;
    /* No whitespace allowed between name and colon (RFC 9112 5.1). */
    if (i == 0 || i >= n || line[i] != ':') return RT_EPROTO;
    h->name = rt_slice(line, i);
    for (size_t j = i + 1; j < n; j++) {
        unsigned char c = (unsigned char)line[j];
        if ((c < 0x20 && c != '\t') || c == 0x7f) return RT_EPROTO;
    }
    h->value = http_trim_ows(line + i + 1, n - i - 1);
    return RT_OK;
}

/* Pass 2 over a complete head of head_len bytes (ends with CRLF CRLF). */
static int http_parse_head(const char *buf, size_t head_len, http_request_t *req)
{
    const char *end = buf + head_len - 2; /* the final empty line's CRLF */
    const char *p = buf;
    const char *eol = memchr(p, '\r', (size_t)(end - p + 1));
    if (!eol || eol[1] != '\n') return RT_EPROTO;
    int rc = http_parse_request_line(p, (size_t)(eol - p), req);
    if (rc < 0) return rc;
    p = eol + 2;

    bool conn_close = false, conn_keep_alive = false, have_te = false;
    while (p < end) {
        eol = memchr(p, '\r', (size_t)(end - p));
        if (!eol || eol[1] != '\n') return RT_EPROTO;
        if (req->num_headers == HTTP_MAX_HEADERS) return RT_ETOOBIG;
        http_header_t *h = &req->headers[req->num_headers];
        rc = http_parse_header_line(p, (size_t)(eol - p), h);
        if (rc < 0) return rc;
        req->num_headers++;
        p = eol + 2;

        if (rt_slice_case_eq(h->name, "content-length")) {
            int64_t cl;
            if (http_parse_content_length(h->value, &cl) < 0) return RT_EPROTO;
            if (req->content_length >= 0 && req->content_length != cl) return RT_EPROTO;
            req->content_length = cl;
        } else if (rt_slice_case_eq(h->name, "transfer-encoding")) {
            /* The final coding decides the framing; with any other final
             * coding the body length is unknowable (RFC 9112 6.3). */
            have_te = true;
            req->chunked = rt_slice_case_eq(http_last_list_item(h->value), "chunked");
        } else if (rt_slice_case_eq(h->name, "connection")) {
            if (http_token_list_has(h->value, "close")) conn_close = true;
            if (http_token_list_has(h->value, "keep-alive")) conn_keep_alive = true;
            if (http_token_list_has(h->value, "upgrade")) req->upgrade = true;
        }
    }
    /* Transfer-Encoding with Content-Length, on HTTP/1.0, or not ending in
     * chunked are the classic smuggling shapes: refuse them outright. */
    if (have_te && (!req->chunked || req->content_length >= 0 || req->minor_version == 0))
        return RT_EPROTO;
    req->keep_alive = req->minor_version == 1 ? !conn_close : (conn_keep_alive && !conn_close);
    req->head_len = head_len;
    return (int)head_len;
}

int http_parse_request(const char *buf, size_t len, size_t last_len, size_t max_head,
                       http_request_t *req)
{
    /* head_len is returned as an int. */
    if (max_head > INT32_MAX) max_head = INT32_MAX;
    size_t window = RT_MIN(len, max_head);
    if (last_len > len) last_len = 0;
    /* The terminator may straddle the previous end: back up 3 bytes. */
    size_t start = last_len > 3 ? last_len - 3 : 0;
    int rc = http_scan_head(buf, window, start);
    if (rc == RT_EAGAIN) return len >= max_head ? RT_ETOOBIG : RT_EAGAIN;
    if (rc < 0) return rc;

    /* Not a full memset: the 64-entry header array is filled as parsed. */
    req->method = req->target = req->path = req->query = RT_SLICE_NULL;
    req->minor_version = 0;
    req->num_headers = 0;
    req->head_len = 0;
    req->content_length = -1;
    req->chunked = req->keep_alive = req->upgrade = req->too_large = false;
    return http_parse_head(buf, (size_t)rc, req);
}

rt_slice_t http_header_get(const http_request_t *req, const char *name)
{
    for (size_t i = 0; i < req->num_headers; i++)
        if (rt_slice_case_eq(req->headers[i].name, name)) return req->headers[i].value;
    return RT_SLICE_NULL;
}

bool http_token_list_has(rt_slice_t value, const char *token)
{
    size_t tn = strlen(token);
    if (value.n == 0) return false; /* value.p may be NULL */
    size_t i = 0;
    while (i <= value.n) {
        size_t j = i;
        while (j < value.n && value.p[j] != ',') j++;
        rt_slice_t item = http_trim_ows(value.p + i, j - i);
        if (item.n == tn) {
            size_t k = 0;
            while (k < tn && http_lower(item.p[k]) == http_lower(token[k])) k++;
            if (k == tn) return true;
        }
        i = j + 1;
    }
    return false;
}

bool http_query_get(rt_slice_t query, const char *key, rt_slice_t *value)
{
    size_t kn = strlen(key);
    size_t i = 0;
    while (i < query.n) {
        size_t j = i;
        while (j < query.n && query.p[j] != '&') j++;
        const char *pair = query.p + i;
        size_t pn = j - i;
        const char *eq = memchr(pair, '=', pn);
        size_t name_n = eq ? (size_t)(eq - pair) : pn;
        if (name_n == kn && memcmp(pair, key, kn) == 0) {
            *value = eq ? rt_slice(eq + 1, pn - name_n - 1) : rt_slice(pair + pn, 0);
            return true;
        }
        i = j + 1;
    }
    return false;
}


/* ---- chunked bodies ---- */
#define CHUNK_LINE_MAX 4096   /* a size line with its extensions, a trailer line */
#define CHUNK_FRAMING_MAX 65536

/* The line at buf[i..) ending in CRLF: its length without CRLF, RT_EAGAIN, or RT_EPROTO. */
static int chunk_line(const char *buf, size_t len, size_t i, size_t *n)
{
    for (size_t j = i; j < len; j++) {
        if (buf[j] == '\n') return RT_EPROTO; /* a bare LF */
        if (buf[j] == '\r') {
            if (j + 1 >= len) return RT_EAGAIN;
            if (buf[j + 1] != '\n') return RT_EPROTO;
            *n = j - i;
            return 0;
        }
        if (j - i >= CHUNK_LINE_MAX) return RT_EPROTO;
    }
    return len - i >= CHUNK_LINE_MAX ? RT_EPROTO : RT_EAGAIN;
}

/* Walks the framing; with out != NULL also moves the data to out. */
static int chunked_walk(const char *buf, size_t len, size_t max_body, size_t *decoded, size_t *consumed, char *out)
{
    size_t i = 0, body = 0;
    for (;;) {
        size_t n;
        int r = chunk_line(buf, len, i, &n);
        if (r) return r;
        size_t size = 0, k = 0;
        for (; k < n; k++) {
            int d = rt_hexval((unsigned char)buf[i + k]);
            if (d < 0) break;
            if (size > (SIZE_MAX >> 4) || k >= 16) return RT_EPROTO;
            size = size << 4 | (size_t)d;
        }
        if (k == 0 || (k < n && buf[i + k] != ';' && buf[i + k] != ' ' && buf[i + k] != '\t')) return RT_EPROTO;
        i += n + 2;
        if (size == 0) break;
        if (size > max_body || body + size > max_body) return RT_ETOOBIG;
        if (i - body > max_body + CHUNK_FRAMING_MAX) return RT_ETOOBIG; /* tiny chunks: framing is the payload */
        if (len - i < size + 2) return RT_EAGAIN;
        if (buf[i + size] != '\r' || buf[i + size + 1] != '\n') return RT_EPROTO;
        if (out) memmove(out + body, buf + i, size);
        body += size;
        i += size + 2;
    }
    /* trailer fields, then the empty line */
    for (;;) {
        size_t n;
        int r = chunk_line(buf, len, i, &n);
        if (r) return r;
        i += n + 2;
        if (n == 0) break;
        if (i - body > max_body + CHUNK_FRAMING_MAX) return RT_ETOOBIG;
    }
    *decoded = body;
    *consumed = i;
    return 1;
}

int http_chunked_scan(const char *buf, size_t len, size_t max_body, size_t *decoded, size_t *consumed)
{
    return chunked_walk(buf, len, max_body, decoded, consumed, NULL);
}

void http_chunked_decode(char *buf, size_t consumed)
{
    size_t d, c;
    chunked_walk(buf, consumed, SIZE_MAX / 2, &d, &c, buf);
}
