/* Socket.IO v5 packet codec. Decoding follows socket.io-parser 4.2.x field by
 * field, then checks the payload's shape for the type as its
 * Decoder.isPayloadValid does, so a packet the reference would refuse closes
 * the connection here too. */
#include "sio/sio_packet.h"

#define SIO_MAX_ACK_DIGITS 15 /* stays below 2^53, JavaScript's exact integers */

static const char *const sio_reserved_events[] = {
    "connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener",
};

static bool sio_is_digit(char c) { return c >= '0' && c <= '9'; }

bool sio_event_reserved(rt_slice_t tok)
{
    rt_slice_t raw;
    if (rt_json_string_raw(tok, &raw)) {
        for (size_t i = 0; i < RT_ARRAY_LEN(sio_reserved_events); i++)
            if (rt_slice_eq_cstr(raw, sio_reserved_events[i])) return true;
        return false;
    }
    /* Escaped names are rare; the longest reserved name is 14 chars of at most
     * 6 bytes each once escaped, so anything longer cannot match. */
    if (tok.n > 2 + 14 * 6) return false;
    rt_buf_t b = {0};
    bool hit = false;
    if (rt_json_string_decode(tok, &b) == RT_OK) {
        for (size_t i = 0; i < RT_ARRAY_LEN(sio_reserved_events) && !hit; i++)
            hit = rt_slice_eq_cstr(rt_slice(b.data, b.len), sio_reserved_events[i]);
    }
    rt_buf_free(&b);
    return hit;
}

/* The first element of an array payload, or an empty slice. */
static rt_slice_t sio_first_arg(rt_slice_t payload)
{
    rt_json_iter_t it;
    rt_slice_t v;
    if (rt_json_peek(payload) != RT_JSON_ARRAY) return RT_SLICE_NULL;
    rt_json_iter_init(&it, payload);
    return rt_json_array_next(&it, &v) ? v : RT_SLICE_NULL;
}

static int sio_check_payload(sio_type_t type, rt_slice_t payload)
{
    rt_json_type_t t = RT_JSON_INVALID;
    if (payload.n && !rt_json_valid(payload, &t)) return RT_EPROTO;
    switch (type) {
    case SIO_CONNECT:
        return payload.n == 0 || t == RT_JSON_OBJECT ? RT_OK : RT_EPROTO;
    case SIO_DISCONNECT:
        return payload.n == 0 ? RT_OK : RT_EPROTO;
    case SIO_EVENT:
    case SIO_BINARY_EVENT: {
        if (t != RT_JSON_ARRAY) return RT_EPROTO;
        rt_slice_t name = sio_first_arg(payload);
        rt_json_type_t nt = rt_json_peek(name);
        if (nt == RT_JSON_NUMBER) return RT_OK;
        return nt == RT_JSON_STRING && !sio_event_reserved(name) ? RT_OK : RT_EPROTO;
    }
    case SIO_ACK:
    case SIO_BINARY_ACK:
        return t == RT_JSON_ARRAY ? RT_OK : RT_EPROTO;
    case SIO_CONNECT_ERROR:
        break;
    }
    return RT_EPROTO;
}

/* Layout: <type>[<attachments>-][<nsp>,][<ack id>][<JSON payload>] */
int sio_packet_decode(rt_slice_t in, sio_packet_t *pkt)
{
    if (in.n == 0) return RT_EPROTO;
    const char *p = in.p, *e = in.p + in.n;
    unsigned d = (unsigned char)*p++ - '0';
    if (d > SIO_BINARY_ACK || d == SIO_CONNECT_ERROR) return RT_EPROTO;
    sio_type_t type = (sio_type_t)d;
    bool binary = type == SIO_BINARY_EVENT || type == SIO_BINARY_ACK;

    uint64_t att = 0;
    if (binary) {
        const char *dash = memchr(p, '-', (size_t)(e - p));
        if (!dash || rt_slice_to_u64(rt_slice(p, (size_t)(dash - p)), &att) != RT_OK)
            return RT_EPROTO;
        if (att < 1 || att > SIO_MAX_ATTACHMENTS) return RT_EPROTO;
        p = dash + 1;
    }

    rt_slice_t nsp = RT_SLICE("/");
    if (p < e && *p == '/') {
        const char *comma = memchr(p, ',', (size_t)(e - p));
        const char *nend = comma ? comma : e;
        nsp = rt_slice(p, (size_t)(nend - p));
        /* The namespace is echoed back in replies; keep it valid text. */
        if (!rt_utf8_valid(nsp.p, nsp.n)) return RT_EPROTO;
        p = comma ? comma + 1 : e;
    }

    int64_t id = -1;
    if (p < e && sio_is_digit(*p)) {
        const char *s = p;
        while (p < e && sio_is_digit(*p)) p++;
        if (p - s > SIO_MAX_ACK_DIGITS) return RT_EPROTO;
        uint64_t v;
        if (rt_slice_to_u64(rt_slice(s, (size_t)(p - s)), &v) != RT_OK) return RT_EPROTO;
        id = (int64_t)v;
    }
    if ((type == SIO_ACK || type == SIO_BINARY_ACK) && id < 0) return RT_EPROTO;

    rt_slice_t payload = rt_slice(p, (size_t)(e - p)); /* never NULL, even when empty */
    if (payload.n == 0 && type != SIO_CONNECT && type != SIO_DISCONNECT) return RT_EPROTO;
    if (sio_check_payload(type, payload) != RT_OK) return RT_EPROTO;

    pkt->type = type;
    pkt->nsp = nsp;
    pkt->ack_id = id;
    pkt->attachments = (uint32_t)att;
    pkt->payload = payload;
    return RT_OK;
}

void sio_packet_head(rt_buf_t *out, sio_type_t type, rt_slice_t nsp, uint32_t attachments,
                     int64_t ack_id)
{
    rt_buf_putc(out, (char)('0' + type));
    if (attachments > 0) {
        rt_buf_append_u64(out, attachments);
        rt_buf_putc(out, '-');
    }
    if (nsp.n && !rt_slice_eq_cstr(nsp, "/")) {
        rt_buf_append_slice(out, nsp);
        rt_buf_putc(out, ',');
    }
    if (ack_id >= 0) rt_buf_append_u64(out, (uint64_t)ack_id);
}

int sio_event_name(rt_slice_t payload, rt_buf_t *out)
{
    rt_slice_t name = sio_first_arg(payload);
    switch (rt_json_peek(name)) {
    case RT_JSON_STRING: return rt_json_string_decode(name, out);
    case RT_JSON_NUMBER: rt_buf_append_slice(out, name); return RT_OK;
    default: return RT_EPROTO;
    }
}
