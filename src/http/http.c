/* http: per-connection request state machine (see http.h).
 *
 *   IDLE --head+body complete--> BUSY --response queued--> IDLE (keep-alive)
 *                                  |                  \--> closed (Connection: close)
 *                                  \--upgrade--> connection handed over
 *
 * While BUSY (a parked long-poll GET) further input is not parsed: the
 * connection stops reading (TCP pushes back on the client) and what was
 * read already is retained, at most HTTP_MAX_PIPELINED bytes (else the
 * connection is closed); it is offered again once the response is queued. */
#include "http.h"

#include <stdio.h>

typedef struct {
    char *prefix;
    size_t len;
    bool exact, sees_too_large;
    http_handler_cb cb;
    void *ud;
} http_route_t;

struct http_server {
    net_loop_t *loop;
    http_options_t opt;
    http_route_t routes[32];
    bool draining; /* no new request reaches a handler (they are being freed) */
    int nroutes;
};

struct http_conn {
    net_conn_t *c;
    http_server_t *srv;
    net_timer_t timer;  /* head timeout while reading, idle timeout between requests */
    bool timing_head;   /* timer is the head timeout (else the idle one, or off) */
    bool busy;          /* a request is being answered */
    bool keep_alive;    /* of the request being answered */
    bool head_method;   /* HEAD: no body in the response */
    size_t last_len;    /* parser resume hint */
    char *origin;       /* Origin of the request being answered (CORS), or NULL */
    const char *raw, *raw_end; /* during dispatch: this request's bytes and all read after it */
    const char *req_end;       /* during dispatch: where this request ends */
    void (*on_abort)(http_conn_t *hc, void *ud);
    void *abort_ud;
    uint8_t accept_enc; /* the current request's best Accept-Encoding (HTTP_ENC_*) */
};

void http_options_default(http_options_t *o)
{
    memset(o, 0, sizeof *o);
    o->max_head = 16 * 1024;
    o->max_body = 1000000;
    o->cors = false;
    o->head_timeout_ms = 10000;
    o->idle_timeout_ms = 60000;
}

http_server_t *http_server_new(net_loop_t *loop, const http_options_t *opt)
{
    http_server_t *srv = rt_calloc(1, sizeof *srv);
    srv->loop = loop;
    if (opt) srv->opt = *opt;
    else http_options_default(&srv->opt);
    return srv;
}

void http_server_free(http_server_t *srv)
{
    if (!srv) return;
    for (int i = 0; i < srv->nroutes; i++) free(srv->routes[i].prefix);
    free(srv);
}

static void route_add(http_server_t *srv, const char *prefix, unsigned flags, http_handler_cb cb, void *ud)
{
    bool exact = flags & HTTP_ROUTE_EXACT;
    rt_assert(srv->nroutes < (int)RT_ARRAY_LEN(srv->routes));
    http_route_t *r = &srv->routes[srv->nroutes++];
    r->prefix = rt_strndup(prefix, strlen(prefix));
    r->len = strlen(prefix);
    r->exact = exact;
    r->sees_too_large = flags & HTTP_ROUTE_TOO_LARGE;
    r->cb = cb;
    r->ud = ud;
}

void http_server_route(http_server_t *srv, const char *prefix, http_handler_cb cb, void *ud)
{
    route_add(srv, prefix, 0, cb, ud);
}

void http_server_route_exact(http_server_t *srv, const char *path, http_handler_cb cb, void *ud)
{
    route_add(srv, path, HTTP_ROUTE_EXACT, cb, ud);
}

void http_server_route_flags(http_server_t *srv, const char *path, unsigned flags, http_handler_cb cb, void *ud)
{
    route_add(srv, path, flags, cb, ud);
}

const http_options_t *http_server_options(const http_server_t *srv) { return &srv->opt; }
void http_server_drain(http_server_t *srv) { srv->draining = true; }
net_loop_t *http_server_loop(const http_server_t *srv) { return srv->loop; }
net_conn_t *http_conn_net(const http_conn_t *hc) { return hc->c; }
http_server_t *http_conn_server(const http_conn_t *hc) { return hc->srv; }

const char *http_status_reason(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    }
    return "Unknown";
}

static void hc_timeout(net_loop_t *loop, net_timer_t *t)
{
    http_conn_t *hc = rt_container_of(t, http_conn_t, timer);
    RT_UNUSED(loop);
    if (hc->busy) return; /* a parked request is timed by its owner */
    net_conn_close(hc->c);
}

static void hc_free(http_conn_t *hc)
{
    net_timer_stop(&hc->timer);
    free(hc->origin);
    free(hc);
}

static void hc_on_close(net_conn_t *c)
{
    http_conn_t *hc = c->data;
    if (!hc) return;
    if (hc->busy && hc->on_abort) {
        void (*cb)(http_conn_t *, void *) = hc->on_abort;
        hc->on_abort = NULL;
        cb(hc, hc->abort_ud);
    }
    hc_free(hc);
}

static size_t hc_on_read(net_conn_t *c, char *data, size_t len);
static const net_conn_ops_t http_ops = {hc_on_read, hc_on_close};

void http_server_accept(net_listener_t *l, net_conn_t *c) { http_server_adopt(net_listener_data(l), c); }

void http_server_adopt(http_server_t *srv, net_conn_t *c)
{
    http_conn_t *hc = rt_calloc(1, sizeof *hc);
    hc->c = c;
    hc->srv = srv;
    c->ops = &http_ops;
    c->data = hc;
    net_timer_init(&hc->timer, hc_timeout);
    net_timer_start(srv->loop, &hc->timer, srv->opt.head_timeout_ms);
    hc->timing_head = true;
}

/* Appends status line, Content-Length, CORS and connection headers. */
static void build_head(http_conn_t *hc, rt_buf_t *b, int status, const char *content_type,
                       size_t len, const char *extra)
{
    rt_buf_printf(b, "HTTP/1.1 %d %s\r\n", status, http_status_reason(status));
    if (content_type) rt_buf_printf(b, "Content-Type: %s\r\n", content_type);
    if (status != 204 && status != 101) rt_buf_printf(b, "Content-Length: %zu\r\n", len);
    if (hc->srv->opt.cors && hc->origin) {
        rt_buf_printf(b, "Access-Control-Allow-Origin: %s\r\n", hc->origin);
        rt_buf_append_cstr(b, "Access-Control-Allow-Credentials: true\r\nVary: Origin\r\n");
    }
    if (extra) rt_buf_append_cstr(b, extra);
    if (!hc->keep_alive) rt_buf_append_cstr(b, "Connection: close\r\n");
    rt_buf_append(b, "\r\n", 2);
}

/* Marks the request answered; the connection reads the next one or closes. */
static void hc_finish(http_conn_t *hc)
{
    hc->busy = false;
    hc->on_abort = NULL;
    free(hc->origin);
    hc->origin = NULL;
    if (!hc->keep_alive) {
        net_conn_shutdown(hc->c);
        return;
    }
    net_timer_start(hc->srv->loop, &hc->timer, hc->srv->opt.idle_timeout_ms);
    hc->timing_head = false;
    net_conn_resume(hc->c); /* input that arrived while busy is parsed now */
}

void http_respond(http_conn_t *hc, int status, const char *content_type, const void *body,
                  size_t len, const char *extra)
{
    if (!hc->busy) return;
    rt_buf_t b = {0};
    build_head(hc, &b, status, content_type, len, extra);
    if (!hc->head_method) rt_buf_append(&b, body, len);
    rt_chunk_t *ch = rt_chunk_from_buf(&b);
    net_conn_write_chunk(hc->c, ch, 0, ch->len);
    rt_chunk_unref(ch);
    rt_buf_free(&b);
    hc_finish(hc);
}

void http_respond_chunk(http_conn_t *hc, int status, const char *content_type, rt_chunk_t *body,
                        size_t off, size_t len, const char *extra)
{
    if (!hc->busy) return;
    rt_buf_t b = {0};
    build_head(hc, &b, status, content_type, len, extra);
    net_conn_write(hc->c, b.data, b.len);
    rt_buf_free(&b);
    if (!hc->head_method) net_conn_write_chunk(hc->c, body, off, len);
    hc_finish(hc);
}

void http_respond_error(http_conn_t *hc, int status, const char *msg)
{
    if (!msg) msg = http_status_reason(status);
    http_respond(hc, status, "text/plain; charset=utf-8", msg, strlen(msg), NULL);
}

void http_conn_set_abort(http_conn_t *hc, void (*on_abort)(http_conn_t *hc, void *ud), void *ud)
{
    hc->on_abort = on_abort;
    hc->abort_ud = ud;
}

bool http_conn_has_pending(const http_conn_t *hc) { return hc->busy; }
int http_conn_encoding(const http_conn_t *hc) { return hc->accept_enc; }

void http_conn_no_cors(http_conn_t *hc)
{
    free(hc->origin);
    hc->origin = NULL;
}

void http_request_peer(const http_request_t *req, char *out, size_t n)
{
    if (n) out[0] = 0;
    if (req->conn) net_conn_peer(req->conn, out, n);
}

size_t http_conn_input_after(const http_conn_t *hc)
{
    return hc->raw ? (size_t)(hc->raw_end - hc->req_end) : 0;
}

int http_conn_handoff(http_conn_t *hc, rt_buf_t *input)
{
    if (!hc->raw) return -1; /* not inside the handler's call */
    net_conn_t *c = hc->c;
    rt_buf_append(input, hc->raw, (size_t)(hc->raw_end - hc->raw));
    c->data = NULL;
    c->ops = NULL;
    hc_free(hc);
    return net_conn_detach(c);
}

net_conn_t *http_conn_upgrade(http_conn_t *hc)
{
    net_conn_t *c = hc->c;
    c->data = NULL;
    c->ops = NULL; /* the caller sets its own */
    hc_free(hc);
    return c;
}

/* Answers an error on a connection whose request could not be parsed, then
 * closes it: after a framing error the byte stream cannot be trusted. */
static void hc_fail(http_conn_t *hc, int status)
{
    hc->busy = true;
    hc->keep_alive = false;
    http_respond_error(hc, status, NULL);
}

static void cors_preflight(http_conn_t *hc, const http_request_t *req)
{
    rt_buf_t extra = {0};
    rt_buf_append_cstr(&extra, "Access-Control-Allow-Methods: GET,HEAD,PUT,PATCH,POST,DELETE\r\n");
    rt_slice_t rh = http_header_get(req, "access-control-request-headers");
    if (rh.p) {
        rt_buf_append_cstr(&extra, "Access-Control-Allow-Headers: ");
        rt_buf_append_slice(&extra, rh);
        rt_buf_append_cstr(&extra, "\r\nVary: Access-Control-Request-Headers\r\n");
    }
    /* no (reflected) Origin: what the cors middleware still says */
    if (!hc->origin) rt_buf_append_cstr(&extra, "Access-Control-Allow-Credentials: true\r\nVary: Origin\r\n");
    rt_buf_putc(&extra, 0);
    http_respond(hc, 204, NULL, "", 0, extra.data);
    rt_buf_free(&extra);
}

/* --cors-origin: is origin one of the listed ones (exact, ASCII case-insensitive)? */
static bool origin_allowed(const http_server_t *srv, rt_slice_t origin)
{
    const char *list = srv->opt.cors_origins;
    if (!list || !strcmp(list, "*")) return true;
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',') p++;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ') e++;
        if ((size_t)(e - p) == origin.n && e > p && rt_slice_case_eq_slice(rt_slice(p, origin.n), origin)) return true;
        p = e;
    }
    return false;
}

static void dispatch(http_conn_t *hc, const http_request_t *req, rt_slice_t body)
{
    http_server_t *srv = hc->srv;
    hc->busy = true;
    hc->keep_alive = req->keep_alive;
    hc->head_method = rt_slice_eq_cstr(req->method, "HEAD");
    hc->accept_enc = (uint8_t)http_accepted_encoding(req);
    rt_slice_t origin = http_header_get(req, "origin");
    if (srv->opt.cors && origin.p && origin.n && origin.n < 1024 && origin_allowed(srv, origin)) {
        bool clean = true; /* never reflect CR/LF or other controls into headers */
        for (size_t i = 0; i < origin.n; i++)
            if ((unsigned char)origin.p[i] < 0x20 || origin.p[i] == 0x7f) clean = false;
        if (clean) hc->origin = rt_strndup(origin.p, origin.n);
    }
    /* Every OPTIONS is a preflight, with or without (an allowed) Origin: the
     * answer the cors middleware of socket.io gives (204, no Allow-Origin
     * for an origin it does not reflect). */
    if (srv->opt.cors && rt_slice_eq_cstr(req->method, "OPTIONS")) {
        cors_preflight(hc, req);
        return;
    }
    http_route_t *best = NULL;
    for (int i = 0; i < srv->nroutes; i++) {
        http_route_t *r = &srv->routes[i];
        if (r->exact ? req->path.n != r->len : req->path.n < r->len) continue;
        if (memcmp(req->path.p, r->prefix, r->len) == 0 && (!best || r->len > best->len || (r->exact && r->len == best->len)))
            best = r;
    }
    if (!best) {
        http_respond_error(hc, req->too_large ? 413 : 404, NULL);
        return;
    }
    if (req->too_large && !best->sees_too_large) {
        http_respond_error(hc, 413, NULL);
        return;
    }
    best->cb(hc, req, body, best->ud);
}

static size_t hc_on_read(net_conn_t *c, char *data, size_t len)
{
    http_conn_t *hc = c->data;
    size_t done = 0;
    /* After Connection: close (shutdown) nothing more is parsed: the rest
     * of the input is discarded and c->in is already gone. */
    while (done < len && !hc->busy && !(c->flags & (NET_CONN_CLOSING | NET_CONN_SHUTDOWN))) {
        http_request_t req;
        int r = http_parse_request(data + done, len - done, hc->last_len, hc->srv->opt.max_head,
                                   &req);
        if (r == RT_EAGAIN) {
            hc->last_len = len - done;
            break;
        }
        hc->last_len = 0;
        if (r == RT_ETOOBIG) {
            hc_fail(hc, 431);
            return len;
        }
        if (r < 0) {
            hc_fail(hc, 400);
            return len;
        }
        if (req.minor_version == 1 && !http_header_get(&req, "host").p) {
            hc_fail(hc, 400);
            return len;
        }
        if (hc->srv->draining) { /* shutting down: the handlers are going away */
            hc_fail(hc, 503);
            return len;
        }
        size_t body_len = req.content_length > 0 ? (size_t)req.content_length : 0, encoded = body_len;
        int too_large = body_len > hc->srv->opt.max_body;
        if (req.chunked && !too_large) {
            int cr = http_chunked_scan(data + done + r, len - done - (size_t)r, hc->srv->opt.max_body, &body_len,
                                       &encoded);
            if (cr == RT_EPROTO) {
                hc_fail(hc, 400);
                return len;
            }
            if (cr == RT_ETOOBIG) too_large = 1;
            else if (cr == RT_EAGAIN) {
                hc->last_len = 0; /* as below: head and framing scanned again with more bytes */
                break;
            } else {
                http_chunked_decode(data + done + r, encoded);
            }
        }
        if (too_large) {
            /* Answered at once, without reading the body: by the route when
             * it wants to know (eio closes the session), else 413. CORS
             * headers go with it, so a browser sees the status. The rest of
             * the body is read and dropped until the client closes. */
            net_timer_stop(&hc->timer);
            hc->timing_head = false;
            req.too_large = true;
            req.keep_alive = false;
            req.conn = c;
            rt_warn_rl("http", "refused a request body over %zu bytes (413)", hc->srv->opt.max_body);
            dispatch(hc, &req, RT_SLICE_NULL);
            if (c->ops == &http_ops && !(c->flags & NET_CONN_CLOSING)) net_conn_shutdown(c);
            return len;
        }
        if (len - done - (size_t)r < encoded) {
            /* Wait for the whole body; the head is parsed again then (cheap,
             * and it keeps the parser free of body state). */
            hc->last_len = 0;
            break;
        }
        net_timer_stop(&hc->timer);
        hc->timing_head = false;
        rt_slice_t body = rt_slice(data + done + r, body_len);
        hc->raw = data + done;
        hc->raw_end = data + len;
        done += (size_t)r + encoded;
        hc->req_end = data + done;
        req.conn = c;
        dispatch(hc, &req, body);
        /* Upgraded or handed off: hc is freed and the rest goes to the new
         * owner. Compare ops, not data: the new owner may reuse hc's address. */
        if (c->ops != &http_ops) return done;
        hc->raw = hc->raw_end = NULL;
    }
    if (hc->busy && done < len && !(c->flags & (NET_CONN_CLOSING | NET_CONN_SHUTDOWN))) {
        /* Input behind a request still being answered. Browsers, socket.io
         * clients and proxies never pipeline behind a long-poll: a little is
         * kept, more is a client holding our memory. */
        if (len - done > HTTP_MAX_PIPELINED) {
            rt_warn_rl("http", "closing a connection that pipelined %zu bytes behind a parked request",
                       len - done);
            net_conn_close(c);
            return len;
        }
        net_conn_pause(c);
    }
    /* The first bytes of a request (also the next one on a keep-alive
     * connection, whose idle timer is running) start the head timeout. */
    if (!hc->busy && done < len && !hc->timing_head) {
        net_timer_start(hc->srv->loop, &hc->timer, hc->srv->opt.head_timeout_ms);
        hc->timing_head = true;
    }
    return done;
}
