/* ws: RFC 6455 connections over net/ — handshake validation and the 101
 * answer, message dispatch, ping/pong/close handling, and sending either
 * per-connection frames or pre-framed shared chunks (one frame per broadcast,
 * referenced by every receiver). */
#ifndef RT_WS_H
#define RT_WS_H
#include "http/http.h"
#include "ws/ws_frame.h"

typedef struct ws_conn ws_conn_t;

typedef struct {
    /* A complete text or binary message; data is mutable and valid only
     * during the call. */
    void (*on_message)(ws_conn_t *ws, bool binary, char *data, size_t len);
    /* The connection is gone (peer close, error, or ws_close); called once
     * at the end of the loop turn. ws is freed after it returns. */
    void (*on_close)(ws_conn_t *ws);
} ws_handler_t;

/* Checks an Upgrade request: method GET, Upgrade: websocket, Connection:
 * upgrade, Sec-WebSocket-Version: 13, a 16-byte base64 key. Returns NULL if
 * acceptable, else a short reason for a 400 answer. */
const char *ws_handshake_check(const http_request_t *req);

/* Answers 101 and takes the connection over from HTTP. first_frame_text (may
 * be NULL) is sent as a text frame in the same write as the 101. */
ws_conn_t *ws_accept(http_conn_t *hc, const http_request_t *req, const ws_handler_t *h,
                     void *ud, size_t max_message, const char *first_frame_text, size_t first_len);

/* The same; with deflate_ok, a permessage-deflate offer is accepted (no
 * context takeover either way): client messages may then come compressed
 * (inflated here, within max_message), and ws_deflate() says the peer takes
 * frames framed with WS_RSV1 and deflated (ws_deflate_frame). */
ws_conn_t *ws_accept_ex(http_conn_t *hc, const http_request_t *req, const ws_handler_t *h, void *ud,
                        size_t max_message, bool deflate_ok, const char *first_frame_text, size_t first_len);
bool ws_deflate(const ws_conn_t *ws);
/* A Sec-WebSocket-Extensions value has an acceptable permessage-deflate offer (exposed for tests). */
bool ws_deflate_offered(rt_slice_t value);

void *ws_data(const ws_conn_t *ws);
void ws_set_data(ws_conn_t *ws, void *ud);
void ws_set_handler(ws_conn_t *ws, const ws_handler_t *h);
net_conn_t *ws_net(const ws_conn_t *ws);

/* Frames and queues a message (copies data). */
void ws_send(ws_conn_t *ws, bool binary, const void *data, size_t len);
/* Queues an already framed message: chunk bytes [off, off+len). */
void ws_send_framed(ws_conn_t *ws, rt_chunk_t *chunk, size_t off, size_t len);
/* Sends a close frame (code 0: no status) and closes once it is written. */
void ws_close(ws_conn_t *ws, uint16_t code);
bool ws_closing(const ws_conn_t *ws);

#endif
