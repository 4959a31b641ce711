/* Engine.IO v4 packet codec: text packets, polling payloads, binary records. */
#include "eio/eio_packet.h"

int eio_packet_decode(rt_slice_t in, eio_packet_t *pkt)
{
    if (in.n == 0) return RT_EPROTO;
    unsigned d = (unsigned char)in.p[0] - '0';
    if (d > EIO_NOOP) return RT_EPROTO;
    pkt->type = (eio_type_t)d;
    pkt->binary = false;
    pkt->data = rt_slice(in.p + 1, in.n - 1);
    return RT_OK;
}

/* One record of a payload: "b<base64>" (decoded into scratch) or a text packet. */
static int eio_record_decode(rt_slice_t rec, rt_buf_t *scratch, eio_packet_t *pkt)
{
    if (rec.n == 0) return RT_EPROTO;
    if (rec.p[0] != 'b') return eio_packet_decode(rec, pkt);
    size_t n = rec.n - 1;
    scratch->len = 0;
    rt_buf_reserve(scratch, n / 4 * 3 + 3);
    ssize_t got = rt_base64_decode((uint8_t *)scratch->data, rec.p + 1, n);
    if (got < 0) return RT_EPROTO;
    scratch->len = (size_t)got;
    pkt->type = EIO_MESSAGE;
    pkt->binary = true;
    pkt->data = rt_slice(scratch->data, (size_t)got);
    return RT_OK;
}

int eio_payload_decode(rt_slice_t body, rt_buf_t *scratch,
                       int (*cb)(void *ud, const eio_packet_t *pkt), void *ud)
{
    if (body.n == 0) return RT_EPROTO;
    const char *p = body.p, *e = body.p + body.n;
    for (;;) {
        const char *sep = memchr(p, EIO_RECORD_SEP, (size_t)(e - p));
        const char *rec_end = sep ? sep : e;
        eio_packet_t pkt;
        int rc = eio_record_decode(rt_slice(p, (size_t)(rec_end - p)), scratch, &pkt);
        if (rc != RT_OK) return rc;
        rc = cb(ud, &pkt);
        if (rc != 0) return rc;
        if (!sep) return RT_OK;
        p = sep + 1; /* a trailing separator leaves an empty record: rejected above */
    }
}

void eio_payload_append(rt_buf_t *out, const eio_packet_t *pkt)
{
    if (out->len) rt_buf_putc(out, EIO_RECORD_SEP);
    if (!pkt->binary) {
        rt_buf_putc(out, (char)('0' + pkt->type));
        rt_buf_append_slice(out, pkt->data);
        return;
    }
    rt_buf_reserve(out, 1 + (pkt->data.n + 2) / 3 * 4);
    out->data[out->len++] = 'b';
    out->len += rt_base64_encode(out->data + out->len, (const uint8_t *)pkt->data.p, pkt->data.n);
}
