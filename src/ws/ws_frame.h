/* RFC 6455 codec: pure frame decoding with message reassembly, server frame
 * header encoding, and the handshake accept key. No I/O. */
#ifndef RT_WS_FRAME_H
#define RT_WS_FRAME_H
#include "base/base.h"

enum {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

enum {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_UNSUPPORTED = 1003,
    WS_CLOSE_NO_STATUS = 1005,
    WS_CLOSE_INVALID_DATA = 1007, /* e.g. invalid UTF-8 in a text message */
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_INTERNAL = 1011,
};

/* OR'ed into an opcode for ws_frame_header: the frame's payload is
 * compressed (permessage-deflate, RFC 7692). */
#define WS_RSV1 0x40

/* Largest server frame header: 2 + 8 bytes (no mask). */
#define WS_MAX_HEADER 10

typedef enum {
    WS_EV_NONE = 0, /* a frame was consumed but produced no message (a non-final fragment) */
    WS_EV_TEXT,
    WS_EV_BINARY,
    WS_EV_PING,
    WS_EV_PONG,
    WS_EV_CLOSE,
} ws_event_type_t;

typedef struct {
    ws_event_type_t type;
    const char *data; /* payload (unmasked); for CLOSE the reason after the code */
    size_t len;
    uint16_t close_code; /* CLOSE: the code sent, or WS_CLOSE_NO_STATUS when none */
    bool compressed;     /* TEXT/BINARY: RSV1 was set (permessage-deflate): data is deflated and,
                            for text, not yet checked for UTF-8 */
} ws_event_t;

/* Decoder state for one connection. Zero-initialise, set max_message.
 * msg holds a fragmented message while it is being reassembled (freed by
 * ws_decoder_free; empty and unallocated when no fragment is pending). */
typedef struct {
    size_t max_message;  /* largest message (sum of fragments) accepted */
    bool require_mask;   /* true on a server: client frames must be masked */
    bool allow_rsv1;     /* permessage-deflate negotiated: RSV1 marks a compressed message */
    bool msg_compressed; /* the message being reassembled is */
    uint8_t msg_opcode;  /* opcode of the message being reassembled, 0 if none */
    rt_buf_t msg;
} ws_decoder_t;

/* Decodes at most one frame from buf[0..len). buf is mutable: payloads are
 * unmasked in place. Returns:
 *   > 0       bytes consumed; *ev filled (type WS_EV_NONE for a non-final
 *             fragment). ev->data points into buf or into d->msg and is
 *             valid until the next call.
 *   RT_EAGAIN the frame is incomplete. The header alone is enough to reject
 *             an oversize frame, so a caller never buffers more than
 *             max_message + WS_MAX_HEADER + 4 bytes.
 *   < 0       error; *close_code says which close code to send: 1002 for a
 *             protocol violation (RSV bits, unknown opcode, unmasked client
 *             frame, fragmented or >125-byte control frame, continuation
 *             without a start, new data frame inside a fragmented message,
 *             bad close payload), 1009 for a message over max_message, 1007
 *             for a text message (or close reason) that is not valid UTF-8. */
int ws_decode(ws_decoder_t *d, uint8_t *buf, size_t len, ws_event_t *ev, uint16_t *close_code);
void ws_decoder_free(ws_decoder_t *d);

/* Writes an unmasked FIN frame header for a payload of len bytes into out;
 * returns the header length (2, 4 or 10). */
size_t ws_frame_header(uint8_t out[WS_MAX_HEADER], uint8_t opcode, uint64_t len);

/* Writes the header right-aligned so that it ends at `end` (the payload
 * follows directly); returns the header length. Used to frame a payload
 * that was encoded first, with WS_MAX_HEADER bytes reserved before it. */
size_t ws_frame_header_before(uint8_t *end, uint8_t opcode, uint64_t len);

/* Sec-WebSocket-Accept for a client key: base64(SHA-1(key + GUID)), 28
 * chars written to out plus a NUL. Uses OpenSSL's libcrypto. */
void ws_accept_key(rt_slice_t key, char out[29]);

#endif
