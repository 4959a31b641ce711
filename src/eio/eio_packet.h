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

#endif
