/* ws: WebSocket connection state on top of a net connection (see ws.h). */
#include "ws.h"

#include <stdio.h>
#include <zlib.h>

struct ws_conn {
    net_conn_t *c;
    const ws_handler_t *h;
    void *ud;
    bool close_sent;
    bool deflate; /* permessage-deflate, no context takeover either way */
    ws_decoder_t dec;
};

/* WebSocket structs come from a pool the loop owns (ws/ has no server
 * object of its own). */
static rt_pool_t *ws_pool(net_loop_t *loop) { return net_loop_pool(loop, sizeof(ws_conn_t)); }

const char *ws_handshake_check(const http_request_t *req)
{
    if (!rt_slice_eq_cstr(req->method, "GET")) return "WebSocket upgrade needs GET";
    rt_slice_t up = http_header_get(req, "upgrade");
    if (!up.p || !http_token_list_has(up, "websocket")) return "Missing Upgrade: websocket";
    if (!req->upgrade) return "Missing Connection: upgrade";
    rt_slice_t ver = http_header_get(req, "sec-websocket-version");
    if (!rt_slice_eq_cstr(ver, "13")) return "Unsupported WebSocket version";
    rt_slice_t key = http_header_get(req, "sec-websocket-key");
    uint8_t raw[32];
    if (!key.p || key.n != 24 || rt_base64_decode(raw, key.p, key.n) != 16)
        return "Invalid Sec-WebSocket-Key";
    return NULL;
}

void *ws_data(const ws_conn_t *ws) { return ws->ud; }
void ws_set_data(ws_conn_t *ws, void *ud) { ws->ud = ud; }
void ws_set_handler(ws_conn_t *ws, const ws_handler_t *h) { ws->h = h; }
net_conn_t *ws_net(const ws_conn_t *ws) { return ws->c; }
bool ws_closing(const ws_conn_t *ws) { return ws->close_sent || net_conn_closing(ws->c); }
bool ws_deflate(const ws_conn_t *ws) { return ws->deflate; }

/* ---- permessage-deflate (RFC 7692) ----
 * Accepted as "permessage-deflate; server_no_context_takeover;
 * client_no_context_takeover": every message is compressed on its own, so
 * the server keeps no zlib state per connection (a broadcast is compressed
 * once and the same frame goes to every member), and inflates each client
 * message with a fresh stream. */
static const char DEFLATE_RESPONSE[] =
    "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n";

/* Is one of the offers in a Sec-WebSocket-Extensions value a permessage-deflate we can take? */
bool ws_deflate_offered(rt_slice_t v)
{
    const char *p = v.p, *end = v.p + v.n;
    while (p && p < end) {
        const char *e = memchr(p, ',', (size_t)(end - p));
        if (!e) e = end;
        bool ok = true, named = false;
        for (const char *q = p; q < e && ok;) {
            const char *sc = memchr(q, ';', (size_t)(e - q));
            if (!sc) sc = e;
            rt_slice_t param = rt_slice_trim(rt_slice(q, (size_t)(sc - q)));
            const char *eq = memchr(param.p, '=', param.n);
            rt_slice_t name = rt_slice_trim(rt_slice(param.p, eq ? (size_t)(eq - param.p) : param.n));
            rt_slice_t val = eq ? rt_slice_trim(rt_slice(eq + 1, param.n - (size_t)(eq + 1 - param.p))) : RT_SLICE_NULL;
            if (val.n >= 2 && val.p[0] == '"' && val.p[val.n - 1] == '"') val = rt_slice(val.p + 1, val.n - 2);
            if (!named) {
                ok = rt_slice_case_eq(name, "permessage-deflate") && !eq;
                named = true;
            } else if (rt_slice_case_eq(name, "server_no_context_takeover") ||
                       rt_slice_case_eq(name, "client_no_context_takeover")) {
                ok = !eq;
            } else if (rt_slice_case_eq(name, "client_max_window_bits")) {
                ok = true; /* a limit for the client's own window: no context kept anyway */
            } else if (rt_slice_case_eq(name, "server_max_window_bits")) {
                ok = rt_slice_eq_cstr(val, "15"); /* we compress with the full window */
            } else {
                ok = false;
            }
            q = sc + 1;
        }
        if (ok && named) return true;
        p = e + 1;
    }
    return false;
}

/* A compressed message's data, inflated into out (at most max bytes). */
static int ws_inflate(const char *in, size_t n, size_t max, rt_buf_t *out)
{
    static const unsigned char tail[4] = {0x00, 0x00, 0xff, 0xff};
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, -15) != Z_OK) return RT_EPROTO;
    int rc = 0;
    for (int part = 0; part < 2 && !rc; part++) {
        z.next_in = (Bytef *)(uintptr_t)(part ? (const char *)tail : in);
        z.avail_in = (uInt)(part ? sizeof tail : n);
        while (z.avail_in && !rc) {
            if (out->len >= max + 1) {
                rc = RT_ETOOBIG;
                break;
            }
            size_t room = RT_MIN((size_t)16384, max + 1 - out->len);
            rt_buf_reserve(out, room);
            z.next_out = (Bytef *)out->data + out->len;
            z.avail_out = (uInt)room;
            int r = inflate(&z, Z_SYNC_FLUSH);
            out->len += room - z.avail_out;
            if (r == Z_STREAM_END) break;
            if (r != Z_OK && r != Z_BUF_ERROR) rc = RT_EPROTO;
            else if (r == Z_BUF_ERROR && z.avail_out) break; /* needs more input: none is left */
        }
    }
    /* output zlib still holds when the buffer filled up exactly */
    while (!rc && out->len <= max) {
        size_t room = RT_MIN((size_t)16384, max + 1 - out->len);
        rt_buf_reserve(out, room);
        z.next_out = (Bytef *)out->data + out->len;
        z.avail_out = (uInt)room;
        int r = inflate(&z, Z_SYNC_FLUSH);
        out->len += room - z.avail_out;
        if (z.avail_out == room || r == Z_STREAM_END) break;
        if (r != Z_OK && r != Z_BUF_ERROR) rc = RT_EPROTO;
    }
    inflateEnd(&z);
    if (!rc && out->len > max) rc = RT_ETOOBIG;
    return rc;
}

static void ws_send_control(ws_conn_t *ws, uint8_t op, const void *p, size_t n)
{
    uint8_t frame[WS_MAX_HEADER + 125];
    size_t h = ws_frame_header(frame, op, n);
    if (n) memcpy(frame + h, p, n);
    net_conn_write(ws->c, frame, h + n);
}

void ws_send(ws_conn_t *ws, bool binary, const void *data, size_t len)
{
    if (ws->close_sent) return;
    rt_chunk_t *ch = rt_chunk_new(WS_MAX_HEADER + len);
    size_t h = ws_frame_header((uint8_t *)ch->data, binary ? WS_OP_BINARY : WS_OP_TEXT, len);
    if (len) memcpy(ch->data + h, data, len);
    net_conn_write_chunk(ws->c, ch, 0, h + len);
    rt_chunk_unref(ch);
}

void ws_send_framed(ws_conn_t *ws, rt_chunk_t *chunk, size_t off, size_t len)
{
    if (ws->close_sent) return;
    net_conn_write_chunk(ws->c, chunk, off, len);
}

void ws_close(ws_conn_t *ws, uint16_t code)
{
    if (ws->close_sent || net_conn_closing(ws->c)) return;
    ws->close_sent = true;
    uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    ws_send_control(ws, WS_OP_CLOSE, p, code ? 2 : 0);
    net_conn_shutdown(ws->c);
}

static size_t ws_on_read(net_conn_t *c, char *data, size_t len)
{
    ws_conn_t *ws = c->data;
    size_t done = 0;
    while (done < len && !net_conn_closing(c) && !ws->close_sent) {
        ws_event_t ev;
        uint16_t code = 0;
        int r = ws_decode(&ws->dec, (uint8_t *)data + done, len - done, &ev, &code);
        if (r == RT_EAGAIN) break;
        if (r < 0) {
            rt_debug("ws", "closing with %u: %s", code, rt_strerror(r));
            ws_close(ws, code ? code : WS_CLOSE_PROTOCOL);
            return len;
        }
        done += (size_t)r;
        switch (ev.type) {
        case WS_EV_TEXT:
        case WS_EV_BINARY:
            if (ev.compressed) {
                rt_buf_t z = {0};
                int zr = ws_inflate(ev.data, ev.len, ws->dec.max_message, &z);
                if (!zr && ev.type == WS_EV_TEXT && !rt_utf8_valid(z.data, z.len)) zr = RT_EUTF8;
                if (zr) {
                    rt_buf_free(&z);
                    rt_debug("ws", "closing: a compressed message %s", zr == RT_ETOOBIG ? "inflates past the limit"
                                                                      : "does not inflate");
                    ws_close(ws, zr == RT_ETOOBIG ? WS_CLOSE_TOO_BIG : zr == RT_EUTF8 ? WS_CLOSE_INVALID_DATA
                                                                                      : WS_CLOSE_PROTOCOL);
                    return len;
                }
                ws->h->on_message(ws, ev.type == WS_EV_BINARY, z.data ? z.data : (char *)"", z.len);
                rt_buf_free(&z);
                break;
            }
            ws->h->on_message(ws, ev.type == WS_EV_BINARY, (char *)ev.data, ev.len);
            break;
        case WS_EV_PING: ws_send_control(ws, WS_OP_PONG, ev.data, ev.len); break;
        case WS_EV_CLOSE:
            /* Echo the code (RFC 6455 5.5.1) and close once it is written. */
            ws_close(ws, ev.close_code == WS_CLOSE_NO_STATUS ? 0 : ev.close_code);
            return len;
        default: break;
        }
    }
    return done;
}

static void ws_on_close(net_conn_t *c)
{
    ws_conn_t *ws = c->data;
    if (ws->h && ws->h->on_close) ws->h->on_close(ws);
    ws_decoder_free(&ws->dec);
    rt_pool_free(ws_pool(c->loop), ws);
}

static const net_conn_ops_t ws_ops = {ws_on_read, ws_on_close};

ws_conn_t *ws_accept(http_conn_t *hc, const http_request_t *req, const ws_handler_t *h,
                     void *ud, size_t max_message, const char *first, size_t first_len)
{
    return ws_accept_ex(hc, req, h, ud, max_message, false, first, first_len);
}

ws_conn_t *ws_accept_ex(http_conn_t *hc, const http_request_t *req, const ws_handler_t *h, void *ud,
                        size_t max_message, bool deflate_ok, const char *first, size_t first_len)
{
    char accept[29];
    ws_accept_key(http_header_get(req, "sec-websocket-key"), accept);
    bool deflate = deflate_ok && ws_deflate_offered(http_header_get(req, "sec-websocket-extensions"));
    rt_buf_t b = {0};
    rt_buf_printf(&b,
                  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s\r\n",
                  accept, deflate ? DEFLATE_RESPONSE : "");
    if (first) {
        uint8_t hdr[WS_MAX_HEADER];
        size_t hl = ws_frame_header(hdr, WS_OP_TEXT, first_len);
        rt_buf_append(&b, hdr, hl);
        rt_buf_append(&b, first, first_len);
    }
    net_conn_t *c = http_conn_upgrade(hc);
    net_conn_write(c, b.data, b.len);
    rt_buf_free(&b);
    ws_conn_t *ws = rt_pool_alloc(ws_pool(c->loop));
    ws->c = c;
    ws->h = h;
    ws->ud = ud;
    ws->dec.max_message = max_message;
    ws->dec.require_mask = true;
    ws->dec.allow_rsv1 = deflate;
    ws->deflate = deflate;
    c->ops = &ws_ops;
    c->data = ws;
    return ws;
}
