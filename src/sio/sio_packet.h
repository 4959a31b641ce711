/* Socket.IO v5 packet codec: pure.
 *   <type>[<attachments>-][<nsp>,][<ack id>][<JSON payload>]              */
#ifndef RT_SIO_PACKET_H
#define RT_SIO_PACKET_H
#include "base/base.h"

typedef enum {
    SIO_CONNECT = 0,
    SIO_DISCONNECT = 1,
    SIO_EVENT = 2,
    SIO_ACK = 3,
    SIO_CONNECT_ERROR = 4,
    SIO_BINARY_EVENT = 5,
    SIO_BINARY_ACK = 6,
} sio_type_t;

#define SIO_MAX_ATTACHMENTS 10

typedef struct {
    sio_type_t type;
    rt_slice_t nsp;       /* "/" when absent; never includes the comma */
    int64_t ack_id;       /* -1 when absent */
    uint32_t attachments; /* binary types only */
    rt_slice_t payload;   /* raw JSON text, validated; empty slice when absent */
} sio_packet_t;

/* Decodes and validates one packet (the data of an Engine.IO text message).
 * Returns 0 or RT_EPROTO. Shape rules (the reference server's):
 *   CONNECT: payload absent or an object;  DISCONNECT: no payload;
 *   EVENT / BINARY_EVENT: non-empty array whose first element is a string
 *     (not a reserved name: connect, connect_error, disconnect, disconnecting,
 *     newListener, removeListener) or a number;
 *   ACK / BINARY_ACK: an array, and an ack id is required;
 *   CONNECT_ERROR: rejected (clients must not send it);
 *   binary types need 1..SIO_MAX_ATTACHMENTS attachments, others none;
 *   a namespace starts with '/' and ends at ',' or at the end of input;
 *   an ack id is 1..15 decimal digits. Unknown type digit -> RT_EPROTO. */
int sio_packet_decode(rt_slice_t in, sio_packet_t *pkt);

/* Appends the packet head "<type>[<n>-][<nsp>,][<id>]" to out; nsp "/" or an
 * empty slice is omitted; ack_id < 0 is omitted; attachments only when > 0. */
void sio_packet_head(rt_buf_t *out, sio_type_t type, rt_slice_t nsp, uint32_t attachments,
                     int64_t ack_id);

/* Event name of a validated EVENT payload: decodes the first array element
 * into out (a string as text, a number as its digits). Returns 0 or RT_EPROTO. */
int sio_event_name(rt_slice_t payload, rt_buf_t *out);

/* True if a JSON string token (with quotes) names an event that Socket.IO
 * reserves (connect, connect_error, disconnect, disconnecting, newListener,
 * removeListener): clients treat such a packet as a parse error and drop the
 * connection, so servers must never send one. Escapes are decoded first. */
bool sio_event_reserved(rt_slice_t token);

#endif
