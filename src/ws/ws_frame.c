/* RFC 6455 frame codec. A frame on the wire:
 *
 *   byte 0: FIN RSV1 RSV2 RSV3 opcode(4)
 *   byte 1: MASK len7(7)     len7 126 -> 16-bit length follows, 127 -> 64-bit
 *   [2 or 8 bytes extended length, big-endian] [4 bytes mask key] payload
 *
 * Everything that can be rejected from the header is rejected before the
 * payload is waited for, so an attacker cannot make us buffer a frame we will
 * refuse anyway. Unfragmented messages are returned in place (no copy); only
 * fragmented ones are gathered in d->msg, which is released on the call after
 * the message was handed out so idle connections hold no buffer. */
/* The low-level SHA-1 API runs without OpenSSL 3 providers: the EVP path
 * (SHA1()) loads the configuration and the default provider, ~2 MB of RSS
 * for one hash per WebSocket handshake. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "ws/ws_frame.h"

#include <limits.h>
#include <openssl/sha.h>

static bool ws_close_code_valid(uint16_t code)
{
    /* 1004 is reserved; 1005, 1006 and 1015 must never be sent on the wire. */
    if (code >= 1000 && code <= 1003) return true;
    if (code >= 1007 && code <= 1014) return true;
    return code >= 3000 && code <= 4999;
}

static int ws_fail(uint16_t *close_code, uint16_t code, int err)
{
    *close_code = code;
    return err;
}

/* XORs the payload with the 4-byte key; the key index restarts at 0 for every
 * frame, so no state is carried between calls. */
static void ws_unmask(uint8_t *p, size_t n, const uint8_t key[4])
{
    size_t i = 0;
    uint32_t k32;
    memcpy(&k32, key, 4);
    for (; i + 4 <= n; i += 4) {
        uint32_t w;
        memcpy(&w, p + i, 4);
        w ^= k32;
        memcpy(p + i, &w, 4);
    }
    for (; i < n; i++) p[i] ^= key[i & 3];
}

int ws_decode(ws_decoder_t *d, uint8_t *buf, size_t len, ws_event_t *ev, uint16_t *close_code)
{
    /* The message handed out by the previous call is no longer referenced. */
    if (d->msg_opcode == 0 && d->msg.data) rt_buf_free(&d->msg);

    if (len < 2) return RT_EAGAIN;
    bool fin = buf[0] & 0x80;
    uint8_t opcode = buf[0] & 0x0f;
    bool masked = buf[1] & 0x80;
    uint64_t plen = buf[1] & 0x7f;

    bool control = opcode & 0x8;
    /* RSV1 only with permessage-deflate, and only on a message's first frame */
    bool rsv1 = buf[0] & 0x40;
    if ((buf[0] & 0x30) || (rsv1 && (!d->allow_rsv1 || control || opcode == WS_OP_CONT)))
        return ws_fail(close_code, WS_CLOSE_PROTOCOL, RT_EPROTO);
    switch (opcode) {
    case WS_OP_CONT:
        if (d->msg_opcode == 0) return ws_fail(close_code, WS_CLOSE_PROTOCOL, RT_EPROTO);
        break;
    case WS_OP_TEXT:
    case WS_OP_BINARY:
        if (d->msg_opcode != 0) return ws_fail(close_code, WS_CLOSE_PROTOCOL, RT_EPROTO);
        break;
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG:
        if (!fin || plen > 125) return ws_fail(close_code, WS_CLOSE_PROTOCOL, RT_EPROTO);
        break;
    default:
        return ws_fail(close_code, WS_CLOSE_PROTOCOL, RT_EPROTO);
    }
    /* Without require_mask (a client-side decoder) masked frames are tolerated. */
    if (d->require_mask && !masked) return ws_fail(close_code, WS_CLOSE_PROTOCOL, RT_EPROTO);

    size_t hdr = 2;
    if (plen == 126) {
        if (len < 4) return RT_EAGAIN;
        plen = (uint64_t)buf[2] << 8 | buf[3];
        hdr = 4;
    } else if (plen == 127) {
        if (len < 10) return RT_EAGAIN;
        if (buf[2] & 0x80) return ws_fail(close_code, WS_CLOSE_PROTOCOL, RT_EPROTO);
        plen = 0;
        for (int i = 2; i < 10; i++) plen = plen << 8 | buf[i];
        hdr = 10;
    }
    /* Non-minimal length encodings are accepted: they are harmless. */

    /* The limit covers the whole message, earlier fragments included, and
     * control frames too, so the caller's buffering bound always holds. The
     * return value is an int, which caps a frame regardless of max_message. */
    uint64_t have = opcode == WS_OP_CONT ? d->msg.len : 0;
    if (have > d->max_message || plen > d->max_message - have || plen > (uint64_t)INT_MAX - 14)
        return ws_fail(close_code, WS_CLOSE_TOO_BIG, RT_ETOOBIG);

    const uint8_t *key = NULL;
    if (masked) {
        key = buf + hdr;
        hdr += 4;
    }
    if (len < hdr || len - hdr < plen) return RT_EAGAIN;

    uint8_t *payload = buf + hdr;
    size_t n = (size_t)plen;
    if (key) ws_unmask(payload, n, key);

    ev->type = WS_EV_NONE;
    ev->data = (const char *)payload;
    ev->len = n;
    ev->close_code = 0;
    ev->compressed = false;
    int consumed = (int)(hdr + n);

    if (control) {
        if (opcode == WS_OP_PING) {
            ev->type = WS_EV_PING;
        } else if (opcode == WS_OP_PONG) {
            ev->type = WS_EV_PONG;
        } else {
            ev->type = WS_EV_CLOSE;
            ev->close_code = WS_CLOSE_NO_STATUS;
            if (n == 1) return ws_fail(close_code, WS_CLOSE_PROTOCOL, RT_EPROTO);
            if (n >= 2) {
                uint16_t code = (uint16_t)(payload[0] << 8 | payload[1]);
                if (!ws_close_code_valid(code))
                    return ws_fail(close_code, WS_CLOSE_PROTOCOL, RT_EPROTO);
                if (!rt_utf8_valid((const char *)payload + 2, n - 2))
                    return ws_fail(close_code, WS_CLOSE_INVALID_DATA, RT_EUTF8);
                ev->close_code = code;
                ev->data = (const char *)payload + 2;
                ev->len = n - 2;
            }
        }
        return consumed;
    }

    if (opcode != WS_OP_CONT && fin) { /* the common case: one frame, in place */
        ev->compressed = rsv1;
        if (opcode == WS_OP_TEXT && !rsv1 && !rt_utf8_valid(ev->data, n))
            return ws_fail(close_code, WS_CLOSE_INVALID_DATA, RT_EUTF8);
        ev->type = opcode == WS_OP_TEXT ? WS_EV_TEXT : WS_EV_BINARY;
        return consumed;
    }

    /* Fragmented: gather. A text message is validated once it is complete;
     * a code point may be split across fragments anyway. */
    if (opcode != WS_OP_CONT) {
        d->msg_opcode = opcode;
        d->msg_compressed = rsv1;
    }
    rt_buf_append(&d->msg, payload, n);
    if (!fin) {
        ev->len = 0;
        return consumed;
    }
    uint8_t mop = d->msg_opcode;
    d->msg_opcode = 0; /* the next call frees d->msg */
    if (d->msg.len > 0) ev->data = d->msg.data;
    ev->len = d->msg.len;
    ev->compressed = d->msg_compressed;
    if (mop == WS_OP_TEXT && !ev->compressed && !rt_utf8_valid(ev->data, ev->len))
        return ws_fail(close_code, WS_CLOSE_INVALID_DATA, RT_EUTF8);
    ev->type = mop == WS_OP_TEXT ? WS_EV_TEXT : WS_EV_BINARY;
    return consumed;
}

void ws_decoder_free(ws_decoder_t *d)
{
    rt_buf_free(&d->msg);
    d->msg_opcode = 0;
}

size_t ws_frame_header(uint8_t out[WS_MAX_HEADER], uint8_t opcode, uint64_t len)
{
    out[0] = (uint8_t)(0x80 | (opcode & (0x0f | WS_RSV1)));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++) out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

size_t ws_frame_header_before(uint8_t *end, uint8_t opcode, uint64_t len)
{
    uint8_t tmp[WS_MAX_HEADER];
    size_t n = ws_frame_header(tmp, opcode, len);
    memcpy(end - n, tmp, n);
    return n;
}

void ws_accept_key(rt_slice_t key, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    const size_t gn = sizeof guid - 1;
    /* A well-formed key is 24 chars; longer ones (the caller should have
     * refused them) take the heap path rather than being truncated. */
    char stack[128];
    char *cat = key.n + gn <= sizeof stack ? stack : rt_malloc(key.n + gn);
    if (key.n) memcpy(cat, key.p, key.n);
    memcpy(cat + key.n, guid, gn);
    uint8_t digest[SHA_DIGEST_LENGTH];
    SHA_CTX ctx;
    SHA1_Init(&ctx);
    SHA1_Update(&ctx, cat, key.n + gn);
    SHA1_Final(digest, &ctx);
    if (cat != stack) rt_free(cat);
    size_t n = rt_base64_encode(out, digest, sizeof digest);
    out[n] = '\0';
}
