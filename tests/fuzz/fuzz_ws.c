/* Fuzz target for the WebSocket frame decoder. The input is a byte stream of
 * frames, decoded with require_mask on and off. Checks memory safety, the
 * error contract (close code matches the error), that feeding the same
 * stream in small pieces yields the same events, and that a re-encoded data
 * message decodes back to itself. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ws/ws_frame.h"

#define FUZZ_MAX_MESSAGE 4096
#define FUZZ_MAX_EVENTS 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    int rc;
    ws_event_type_t type;
    size_t len;
    uint16_t close_code;
    uint64_t hash;
} fuzz_ev_t;

static void fuzz_require(bool cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_ws: invariant failed: %s\n", what);
        abort();
    }
}

static uint64_t fuzz_hash(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 1099511628211ULL;
    return h;
}

static void fuzz_check_event(const ws_decoder_t *d, const uint8_t *frame, int rc,
                             const ws_event_t *ev)
{
    const char *f = (const char *)frame;
    bool in_frame = ev->data >= f && ev->data + ev->len <= f + rc;
    bool in_msg = d->msg.data && ev->data >= d->msg.data &&
                  ev->data + ev->len <= d->msg.data + d->msg.len;
    fuzz_require(in_frame || in_msg, "event data bounds");
    fuzz_require(ev->len <= FUZZ_MAX_MESSAGE, "event over max_message");
    if (ev->type == WS_EV_TEXT) fuzz_require(rt_utf8_valid(ev->data, ev->len), "text utf8");
    if (ev->type == WS_EV_CLOSE)
        fuzz_require(ev->close_code == WS_CLOSE_NO_STATUS ||
                         (ev->close_code >= 1000 && ev->close_code != 1004 &&
                          ev->close_code != 1005 && ev->close_code != 1006 &&
                          ev->close_code < 5000),
                     "close code");
}

/* Re-encodes a data message as one unmasked frame and decodes it back. */
static void fuzz_roundtrip(const ws_event_t *ev)
{
    uint8_t *buf = malloc(WS_MAX_HEADER + ev->len + 1);
    uint8_t *payload = buf + WS_MAX_HEADER;
    if (ev->len) memcpy(payload, ev->data, ev->len);
    uint8_t op = ev->type == WS_EV_TEXT ? WS_OP_TEXT : WS_OP_BINARY;
    size_t hn = ws_frame_header_before(payload, op, ev->len);
    ws_decoder_t d = {.max_message = FUZZ_MAX_MESSAGE, .require_mask = false};
    ws_event_t back;
    uint16_t cc = 0;
    int rc = ws_decode(&d, payload - hn, hn + ev->len, &back, &cc);
    fuzz_require(rc == (int)(hn + ev->len), "roundtrip consumed");
    fuzz_require(back.type == ev->type && back.len == ev->len, "roundtrip event");
    fuzz_require(back.data == (const char *)payload, "roundtrip in place");
    ws_decoder_free(&d);
    free(buf);
}

/* Decodes the whole stream with steps of at most `step` new bytes per call
 * (0: everything at once), recording events. Returns how many. */
static size_t fuzz_run(const uint8_t *data, size_t size, bool require_mask, size_t step,
                       fuzz_ev_t *out, bool check)
{
    uint8_t *buf = malloc(size ? size : 1);
    if (size) memcpy(buf, data, size);
    ws_decoder_t d = {.max_message = FUZZ_MAX_MESSAGE, .require_mask = require_mask};
    size_t off = 0, avail = step ? 0 : size, n = 0;
    for (;;) {
        ws_event_t ev;
        uint16_t cc = 0;
        int rc = ws_decode(&d, buf + off, avail - off, &ev, &cc);
        if (rc == RT_EAGAIN && avail < size) {
            avail = RT_MIN(size, avail + step);
            continue;
        }
        fuzz_ev_t rec = {.rc = rc};
        if (rc > 0) {
            fuzz_require((size_t)rc <= avail - off, "consumed past input");
            if (check) fuzz_check_event(&d, buf + off, rc, &ev);
            if (check && (ev.type == WS_EV_TEXT || ev.type == WS_EV_BINARY)) fuzz_roundtrip(&ev);
            rec.type = ev.type;
            rec.len = ev.len;
            rec.close_code = ev.close_code;
            rec.hash = fuzz_hash(ev.data, ev.len);
            off += (size_t)rc;
        } else if (rc != RT_EAGAIN) {
            fuzz_require((rc == RT_EPROTO && cc == WS_CLOSE_PROTOCOL) ||
                             (rc == RT_ETOOBIG && cc == WS_CLOSE_TOO_BIG) ||
                             (rc == RT_EUTF8 && cc == WS_CLOSE_INVALID_DATA),
                         "error/close code mismatch");
            rec.close_code = cc;
        }
        if (n < FUZZ_MAX_EVENTS) out[n] = rec;
        n++;
        if (rc <= 0) break;
    }
    ws_decoder_free(&d);
    fuzz_require(d.msg.data == NULL, "decoder_free");
    free(buf);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fuzz_ev_t a[FUZZ_MAX_EVENTS], b[FUZZ_MAX_EVENTS];
    for (int mask = 0; mask <= 1; mask++) {
        size_t na = fuzz_run(data, size, mask, 0, a, true);
        size_t step = size ? (size_t)(data[0] % 7) + 1 : 1;
        size_t nb = fuzz_run(data, size, mask, step, b, false);
        fuzz_require(na == nb, "piecewise event count");
        for (size_t i = 0; i < RT_MIN(na, (size_t)FUZZ_MAX_EVENTS); i++)
            fuzz_require(a[i].rc == b[i].rc && a[i].type == b[i].type && a[i].len == b[i].len &&
                             a[i].close_code == b[i].close_code && a[i].hash == b[i].hash,
                         "piecewise event differs");
    }
    char key[29];
    ws_accept_key(rt_slice((const char *)data, RT_MIN(size, (size_t)64)), key);
    fuzz_require(strlen(key) == 28, "accept key length");
    return 0;
}
