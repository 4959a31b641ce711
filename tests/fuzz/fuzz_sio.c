/* Fuzz target for the Socket.IO packet codec: a packet that decodes must obey
 * the header's shape rules, and re-encoding its head plus the payload must
 * decode to the same fields. sio_event_name and sio_packet_head also run on
 * arbitrary input. */
#include "sio/sio_packet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_shape(const sio_packet_t *p)
{
    rt_json_type_t t = RT_JSON_INVALID;
    rt_assert(p->nsp.n >= 1 && p->nsp.p[0] == '/' && !memchr(p->nsp.p, ',', p->nsp.n));
    rt_assert(p->ack_id >= -1 && p->ack_id <= 999999999999999LL);
    if (p->payload.n) rt_assert(rt_json_valid(p->payload, &t));
    bool binary = p->type == SIO_BINARY_EVENT || p->type == SIO_BINARY_ACK;
    if (binary) rt_assert(p->attachments >= 1 && p->attachments <= SIO_MAX_ATTACHMENTS);
    else rt_assert(p->attachments == 0);
    rt_buf_t name = {0};
    switch (p->type) {
    case SIO_CONNECT: rt_assert(p->payload.n == 0 || t == RT_JSON_OBJECT); break;
    case SIO_DISCONNECT: rt_assert(p->payload.n == 0); break;
    case SIO_EVENT:
    case SIO_BINARY_EVENT:
        rt_assert(t == RT_JSON_ARRAY);
        rt_assert(sio_event_name(p->payload, &name) == RT_OK);
        rt_assert(name.len == 0 || rt_utf8_valid(name.data, name.len));
        rt_assert(!rt_slice_eq_cstr(rt_slice(name.data, name.len), "connect"));
        rt_assert(!rt_slice_eq_cstr(rt_slice(name.data, name.len), "disconnect"));
        break;
    case SIO_ACK:
    case SIO_BINARY_ACK: rt_assert(t == RT_JSON_ARRAY && p->ack_id >= 0); break;
    default: rt_assert(!"CONNECT_ERROR or an unknown type was accepted");
    }
    rt_buf_free(&name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = rt_malloc(size); /* exact size, so ASan sees overreads */
    if (size) memcpy(copy, data, size);
    rt_slice_t in = rt_slice(copy, size);

    sio_packet_t p;
    int rc = sio_packet_decode(in, &p);
    rt_assert(rc == RT_OK || rc == RT_EPROTO);
    if (rc == RT_OK) {
        check_shape(&p);
        rt_buf_t b = {0};
        sio_packet_head(&b, p.type, p.nsp, p.attachments, p.ack_id);
        rt_assert(b.len <= size + 1); /* at most the comma after a bare nsp is added */
        rt_buf_append_slice(&b, p.payload);
        sio_packet_t q;
        rt_assert(sio_packet_decode(rt_slice(b.data, b.len), &q) == RT_OK);
        rt_assert(q.type == p.type && q.ack_id == p.ack_id && q.attachments == p.attachments);
        rt_assert(rt_slice_eq(q.nsp, p.nsp) && rt_slice_eq(q.payload, p.payload));
        rt_buf_free(&b);
    }

    /* sio_event_name promises safety on any slice. */
    rt_buf_t name = {0};
    sio_event_name(in, &name);
    rt_buf_free(&name);

    /* The head encoder with fields taken from the input. */
    if (size >= 3) {
        rt_buf_t h = {0};
        int64_t id = (int8_t)copy[1];
        sio_packet_head(&h, (sio_type_t)((unsigned char)copy[0] % 7), rt_slice(copy + 3, size - 3),
                        (unsigned char)copy[2] % 12, id);
        rt_assert(h.len >= 1 && h.data[0] == (char)('0' + (unsigned char)copy[0] % 7));
        rt_buf_free(&h);
    }
    rt_free(copy);
    return 0;
}
