/* ws: WebSocket connection state on top of a net connection (see ws.h). */
#include "ws.h"

#include <stdio.h>

struct ws_conn {
    net_conn_t *c;
    const ws_handler_t *h;
    void *ud;
    bool close_sent;
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
    char accept[29];
    ws_accept_key(http_header_get(req, "sec-websocket-key"), accept);
    rt_buf_t b = {0};
    rt_buf_printf(&b,
                  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                  accept);
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
    c->ops = &ws_ops;
    c->data = ws;
    return ws;
}
