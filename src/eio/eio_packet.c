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

/* ---- Engine.IO v3 payloads ---- */
size_t eio_utf16_len(const char *p, size_t n)
{
    size_t units = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if ((c & 0xc0) != 0x80) units++; /* a lead byte or ASCII */
        if (c >= 0xf0) units++;          /* outside the BMP: a surrogate pair */
    }
    return units;
}

/* Bytes of the first `units` UTF-16 code units of p[0..n), or -1 if the
 * text ends first or the count splits a character. */
static ssize_t utf16_prefix_bytes(const char *p, size_t n, size_t units)
{
    size_t i = 0, u = 0;
    while (u < units) {
        if (i >= n) return -1;
        unsigned char c = (unsigned char)p[i];
        size_t len = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
        if (!len || i + len > n) return -1;
        u += c >= 0xf0 ? 2 : 1;
        i += len;
    }
    return u == units ? (ssize_t)i : -1;
}

int eio3_payload_decode(rt_slice_t body, rt_buf_t *scratch,
                        int (*cb)(void *ud, const eio_packet_t *pkt), void *ud)
{
    if (body.n == 0) return RT_EPROTO;
    size_t i = 0;
    while (i < body.n) {
        size_t units = 0, digits = 0;
        while (i < body.n && body.p[i] >= '0' && body.p[i] <= '9' && digits < 10)
            units = units * 10 + (size_t)(body.p[i++] - '0'), digits++;
        if (!digits || i >= body.n || body.p[i] != ':' || !units) return RT_EPROTO;
        i++;
        ssize_t bytes = utf16_prefix_bytes(body.p + i, body.n - i, units);
        if (bytes < 0) return RT_EPROTO;
        rt_slice_t rec = rt_slice(body.p + i, (size_t)bytes);
        eio_packet_t pkt;
        int rc;
        if (rec.n >= 2 && rec.p[0] == 'b') {
            if (rec.p[1] != '4') return RT_EPROTO;
            char *tmp = NULL; /* "b<base64>" as the v4 record decoder reads it */
            size_t n = rec.n - 1;
            tmp = rt_malloc(n);
            tmp[0] = 'b';
            memcpy(tmp + 1, rec.p + 2, n - 1);
            rc = eio_record_decode(rt_slice(tmp, n), scratch, &pkt);
            free(tmp);
        } else {
            rc = eio_packet_decode(rec, &pkt);
        }
        if (rc != RT_OK) return rc;
        rc = cb(ud, &pkt);
        if (rc != 0) return rc;
        i += (size_t)bytes;
    }
    return RT_OK;
}

void eio3_payload_append_text(rt_buf_t *out, const char *packet, size_t n)
{
    rt_buf_printf(out, "%zu:", eio_utf16_len(packet, n));
    rt_buf_append(out, packet, n);
}

void eio3_payload_append(rt_buf_t *out, const eio_packet_t *pkt)
{
    if (!pkt->binary) {
        rt_buf_printf(out, "%zu:%c", eio_utf16_len(pkt->data.p, pkt->data.n) + 1, (char)('0' + pkt->type));
        rt_buf_append_slice(out, pkt->data);
        return;
    }
    size_t b64 = (pkt->data.n + 2) / 3 * 4;
    rt_buf_printf(out, "%zu:b4", b64 + 2);
    rt_buf_reserve(out, b64);
    out->len += rt_base64_encode(out->data + out->len, (const uint8_t *)pkt->data.p, pkt->data.n);
}

int eio3_payload_decode_binary(rt_slice_t body, int (*cb)(void *ud, const eio_packet_t *pkt), void *ud)
{
    if (body.n == 0) return RT_EPROTO;
    const unsigned char *p = (const unsigned char *)body.p;
    size_t i = 0;
    while (i < body.n) {
        unsigned kind = p[i++];
        if (kind > 1) return RT_EPROTO;
        size_t len = 0, digits = 0;
        while (i < body.n && p[i] != 0xff) {
            if (p[i] > 9 || ++digits > 10) return RT_EPROTO;
            len = len * 10 + p[i++];
        }
        if (!digits || i >= body.n) return RT_EPROTO;
        i++; /* 0xFF */
        if (len == 0 || len > body.n - i) return RT_EPROTO;
        eio_packet_t pkt;
        int rc;
        if (kind == 0) {
            if (!rt_utf8_valid(body.p + i, len)) return RT_EPROTO;
            rc = eio_packet_decode(rt_slice(body.p + i, len), &pkt);
        } else {
            if (p[i] != EIO_MESSAGE) return RT_EPROTO;
            pkt = (eio_packet_t){EIO_MESSAGE, true, rt_slice(body.p + i + 1, len - 1)};
            rc = RT_OK;
        }
        if (rc != RT_OK) return rc;
        if ((rc = cb(ud, &pkt)) != 0) return rc;
        i += len;
    }
    return RT_OK;
}
