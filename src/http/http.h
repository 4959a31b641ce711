/* http: HTTP/1.1 server on net/ connections — request framing with
 * Content-Length bodies, keep-alive, limits, CORS, a prefix router, parked
 * (long-poll) requests and the hand-off of a connection on Upgrade. */
#ifndef RT_HTTP_H
#define RT_HTTP_H
#include "http/http_parser.h"
#include "net/net.h"

typedef struct http_server http_server_t;

/* Bytes of further input held while a request is parked (see http.c). */
#define HTTP_MAX_PIPELINED (64 * 1024)
typedef struct http_conn http_conn_t;

typedef struct {
    size_t max_head;          /* request line + headers (default 16 KiB) -> 431 */
    size_t max_body;          /* Content-Length limit (default 1,000,000) -> 413 */
    bool cors;                /* reflect Origin with credentials, answer preflights */
    const char *cors_origins; /* with cors: comma-separated origins reflected (others get no CORS
                                 headers); NULL or "*": every origin. Borrowed. */
    unsigned head_timeout_ms; /* a request head must complete within (default 10 s) */
    unsigned idle_timeout_ms; /* keep-alive idle connections are closed after (default 60 s) */
} http_options_t;
void http_options_default(http_options_t *o);

/* A complete request: req and body point into the read buffer and are valid
 * only during the call. The handler answers with http_respond*(), parks the
 * request (answer later, from any callback), or takes the connection over
 * with http_conn_upgrade(). */
typedef void (*http_handler_cb)(http_conn_t *hc, const http_request_t *req, rt_slice_t body,
                                void *ud);

http_server_t *http_server_new(net_loop_t *loop, const http_options_t *opt);
void http_server_free(http_server_t *srv);
/* Routes requests whose path starts with prefix (longest prefix wins). */
void http_server_route(http_server_t *srv, const char *prefix, http_handler_cb cb, void *ud);
/* Routes requests for exactly this path (before any prefix of the same length). */
void http_server_route_exact(http_server_t *srv, const char *path, http_handler_cb cb, void *ud);
/* With flags: HTTP_ROUTE_EXACT, and HTTP_ROUTE_TOO_LARGE: the handler also
 * gets requests whose body exceeds max_body (req->too_large, empty body;
 * it answers, the connection then closes); others get 413 for them. */
enum { HTTP_ROUTE_EXACT = 1, HTTP_ROUTE_TOO_LARGE = 2 };
void http_server_route_flags(http_server_t *srv, const char *path, unsigned flags, http_handler_cb cb, void *ud);
/* Accept callback for net listeners (listener data must be the server). */
void http_server_accept(net_listener_t *l, net_conn_t *c);
/* The same for a connection adopted from another process (net_conn_adopt),
 * before net_conn_start(). */
void http_server_adopt(http_server_t *srv, net_conn_t *c);
const http_options_t *http_server_options(const http_server_t *srv);
/* Shutdown: every request parsed from now on is answered 503 and its
 * connection closed; no handler is called (they may be freed). */
void http_server_drain(http_server_t *srv);
net_loop_t *http_server_loop(const http_server_t *srv);

/* Response with a body. content_type may be NULL (no header). extra is
 * additional header lines, each ending in "\r\n", or NULL. */
void http_respond(http_conn_t *hc, int status, const char *content_type, const void *body,
                  size_t len, const char *extra);
/* Sends a response head declaring len body bytes, then the body as a chunk
 * reference (no copy). */
void http_respond_chunk(http_conn_t *hc, int status, const char *content_type, rt_chunk_t *body,
                        size_t off, size_t len, const char *extra);
/* Plain-text error response (status reason as the body unless msg given). */
void http_respond_error(http_conn_t *hc, int status, const char *msg);
const char *http_status_reason(int status);

/* ---- Content-Encoding (http_encoding.c) ---- */
enum { HTTP_ENC_IDENTITY = 0, HTTP_ENC_GZIP, HTTP_ENC_DEFLATE };
/* The best encoding of ours the request's Accept-Encoding allows. */
int http_accepted_encoding(const http_request_t *req);
const char *http_encoding_name(int enc);
/* Appends the whole of in, compressed (gzip, or zlib-wrapped deflate), to out; -1 on failure. */
int http_compress(int enc, const void *in, size_t n, rt_buf_t *out);
/* The same with streams kept between calls (for bodies compressed often). */
typedef struct http_compressor http_compressor_t;
http_compressor_t *http_compressor_new(void);
void http_compressor_free(http_compressor_t *c);
int http_compressor_run(http_compressor_t *c, int enc, const void *in, size_t n, rt_buf_t *out);

/* Parking: after returning from the handler without responding, the request
 * stays open. on_abort (if set) is called once if the client goes away
 * before the answer; hc is invalid after it returns. */
void http_conn_set_abort(http_conn_t *hc, void (*on_abort)(http_conn_t *hc, void *ud), void *ud);
bool http_conn_has_pending(const http_conn_t *hc);
/* The request's best accepted Content-Encoding (HTTP_ENC_*), kept while it is parked. */
int http_conn_encoding(const http_conn_t *hc);
/* This answer carries no CORS headers (whatever the server's option): a web
 * page of another origin cannot read it. */
void http_conn_no_cors(http_conn_t *hc);

/* The peer address of the request's connection as text ("127.0.0.1",
 * "unix"), or "" when unknown. */
void http_request_peer(const http_request_t *req, char *out, size_t n);

/* Takes the connection over for another protocol (WebSocket). The caller
 * sets c->ops and c->data; hc is freed. Bytes after the request head are
 * offered to the new ops immediately. */
net_conn_t *http_conn_upgrade(http_conn_t *hc);
/* From a handler, during its call: gives the connection up for another
 * process. Appends the bytes of this request and everything read after it
 * to input and returns the descriptor (see net_conn_detach), or -1 if the
 * connection could not be handed over (it is closed). hc is freed. */
int http_conn_handoff(http_conn_t *hc, rt_buf_t *input);
/* During a handler's call: bytes already read behind this request
 * (pipelined). */
size_t http_conn_input_after(const http_conn_t *hc);
net_conn_t *http_conn_net(const http_conn_t *hc);
http_server_t *http_conn_server(const http_conn_t *hc);

/* ---- static files ----
 * Serves GET/HEAD for files under root (index.html for directories), with a
 * content type from the extension. Paths are percent-decoded; "..", NUL and
 * anything that resolves (through symlinks) outside root get 404. Other
 * methods get 405. */
typedef struct http_static http_static_t;
http_static_t *http_static_new(const char *root, char *err, size_t errlen);
void http_static_free(http_static_t *st);
void http_static_handler(http_conn_t *hc, const http_request_t *req, rt_slice_t body, void *ud);

#endif
