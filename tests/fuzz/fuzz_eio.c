/* Fuzz target for the Engine.IO packet codec: decodes the input as one text
 * packet and as a polling payload; a payload that decodes is re-encoded with
 * eio_payload_append and must decode to the same packets again. */
#include "eio/eio_packet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Serialises each packet as <type><binary><len:4><data> into a log buffer. */
static int log_cb(void *ud, const eio_packet_t *pkt)
{
    rt_buf_t *log = ud;
    rt_assert(pkt->type <= EIO_NOOP);
    rt_assert(!pkt->binary || pkt->type == EIO_MESSAGE);
    rt_buf_putc(log, (char)pkt->type);
    rt_buf_putc(log, (char)pkt->binary);
    uint32_t n = (uint32_t)pkt->data.n;
    rt_buf_append(log, &n, sizeof n);
    rt_buf_append_slice(log, pkt->data);
    return 0;
}

/* Rebuilds a payload from a log made by log_cb; true if it holds binary. */
static bool rebuild(const rt_buf_t *log, rt_buf_t *out)
{
    size_t i = 0;
    bool binary = false;
    while (i < log->len) {
        eio_packet_t p;
        uint32_t n;
        p.type = (eio_type_t)log->data[i];
        p.binary = log->data[i + 1] != 0;
        memcpy(&n, log->data + i + 2, sizeof n);
        p.data = rt_slice(log->data + i + 6, n);
        eio_payload_append(out, &p);
        binary |= p.binary;
        i += 6 + n;
    }
    return binary;
}

static int stop_cb(void *ud, const eio_packet_t *pkt)
{
    RT_UNUSED(pkt);
    int *calls = ud;
    return ++*calls == 2 ? 99 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = rt_malloc(size); /* exact size, so ASan sees overreads */
    if (size) memcpy(copy, data, size);
    rt_slice_t in = rt_slice(copy, size);

    eio_packet_t p;
    if (eio_packet_decode(in, &p) == RT_OK) {
        rt_assert(size >= 1 && p.type == (eio_type_t)(copy[0] - '0') && !p.binary);
        rt_assert(p.data.p == copy + 1 && p.data.n == size - 1);
    } else {
        rt_assert(size == 0 || copy[0] < '0' || copy[0] > '6');
    }

    rt_buf_t scratch = {0}, log1 = {0}, log2 = {0}, body = {0};
    int rc = eio_payload_decode(in, &scratch, log_cb, &log1);
    rt_assert(rc == RT_OK || rc == RT_EPROTO);
    if (rc == RT_OK) {
        bool binary = rebuild(&log1, &body);
        rt_assert(eio_payload_decode(rt_slice(body.data, body.len), &scratch, log_cb, &log2) ==
                  RT_OK);
        rt_assert(rt_slice_eq(rt_slice(log1.data, log1.len), rt_slice(log2.data, log2.len)));
        /* Text records come back byte for byte; only base64 may differ
         * (padding, the URL alphabet and stray low bits are normalised). */
        if (!binary) rt_assert(rt_slice_eq(in, rt_slice(body.data, body.len)));
    }
    int calls = 0;
    rc = eio_payload_decode(in, &scratch, stop_cb, &calls);
    rt_assert(rc == RT_OK || rc == RT_EPROTO || (rc == 99 && calls == 2));

    rt_buf_free(&scratch);
    rt_buf_free(&log1);
    rt_buf_free(&log2);
    rt_buf_free(&body);
    rt_free(copy);
    return 0;
}
