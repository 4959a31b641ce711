/* Engine.IO v4 packet codec: pure. A text packet is a type digit plus data;
 * a binary packet is raw bytes over WebSocket and "b"+base64 in a polling
 * payload; a polling payload joins packets with 0x1E. */
#ifndef RT_EIO_PACKET_H
#define RT_EIO_PACKET_H
#include "base/base.h"

typedef enum {
    EIO_OPEN = 0,
    EIO_CLOSE = 1,
    EIO_PING = 2,
    EIO_PONG = 3,
    EIO_MESSAGE = 4,
    EIO_UPGRADE = 5,
    EIO_NOOP = 6,
} eio_type_t;

#define EIO_RECORD_SEP '\x1e'

typedef struct {
    eio_type_t type;
    bool binary;     /* a binary message (type is EIO_MESSAGE) */
    rt_slice_t data; /* text after the type digit, or the decoded binary bytes */
} eio_packet_t;

/* Decodes one text packet (a WebSocket text frame). Returns 0 or RT_EPROTO
 * (empty, or first byte not '0'..'6'). data points into in. */
int eio_packet_decode(rt_slice_t in, eio_packet_t *pkt);

/* Decodes a polling payload (POST body), calling cb for each packet in order.
 * Binary records ("b"+base64) are decoded into scratch; their data slice is
 * valid only during the callback. Stops at the first malformed record
 * (returns RT_EPROTO) or when cb returns non-zero (returned as is). */
int eio_payload_decode(rt_slice_t body, rt_buf_t *scratch,
                       int (*cb)(void *ud, const eio_packet_t *pkt), void *ud);

/* Appends one packet to a polling payload being built in out: a 0x1E first
 * unless out is empty, then "<digit><data>" for text or "b<base64>" for binary. */
void eio_payload_append(rt_buf_t *out, const eio_packet_t *pkt);

/* ---- Engine.IO v3 (socket.io-client 2.x, behind allow_eio3) ----
 * A polling payload is "<len>:<packet>" repeated, without separators, len
 * counting the packet's UTF-16 code units (as JavaScript's .length); a
 * binary packet is "b4<base64>" (the type digit after the b). */
/* UTF-16 code units of UTF-8 text (a 4-byte sequence counts 2). */
size_t eio_utf16_len(const char *p, size_t n);
int eio3_payload_decode(rt_slice_t body, rt_buf_t *scratch,
                        int (*cb)(void *ud, const eio_packet_t *pkt), void *ud);
/* The XHR2 binary form of a v3 payload (Content-Type application/octet-
 * stream): per packet a 0 (text) or 1 (binary) byte, the length as one byte
 * per decimal digit, 0xFF, then the bytes (a binary packet's start with its
 * type, 4). */
int eio3_payload_decode_binary(rt_slice_t body, int (*cb)(void *ud, const eio_packet_t *pkt), void *ud);
/* Appends "<len>:<digit><data>" or "<len>:b4<base64>". */
void eio3_payload_append(rt_buf_t *out, const eio_packet_t *pkt);
/* Appends "<len>:" then the already encoded packet text. */
void eio3_payload_append_text(rt_buf_t *out, const char *packet, size_t n);

#endif
