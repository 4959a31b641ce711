/* emitter: MessagePack to JSON (msgpack.h). One recursive pass over the
 * input with a depth bound; nothing is allocated but the output. */
#include "msgpack.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct {
    const uint8_t *p, *end;
    rt_buf_t *out;
    rt_slice_t *att;
    uint32_t *natt, maxatt;
    size_t max_out;
    int err;
} mp_t;

static bool need(mp_t *m, size_t n)
{
    if ((size_t)(m->end - m->p) < n) {
        m->err = RT_EPROTO;
        return false;
    }
    return true;
}

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}

static void put_double(rt_buf_t *out, double d)
{
    if (!isfinite(d)) {
        rt_buf_append_cstr(out, "null"); /* JSON.stringify(NaN) */
        return;
    }
    if (d == floor(d) && fabs(d) < 9007199254740992.0) {
        rt_buf_printf(out, "%.0f", d == 0 ? 0.0 : d); /* -0 is 0 in JSON.stringify */
        return;
    }
    char tmp[40];
    for (int prec = 15; prec <= 17; prec++) { /* the shortest that reads back the same */
        snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (strtod(tmp, NULL) == d) break;
    }
    rt_buf_append_cstr(out, tmp);
}

/* Date.prototype.toJSON: "YYYY-MM-DDTHH:MM:SS.mmmZ" */
static void put_date(rt_buf_t *out, double ms)
{
    if (!isfinite(ms) || fabs(ms) > 8.64e15) {
        rt_buf_append_cstr(out, "null");
        return;
    }
    double s = floor(ms / 1000);
    int frac = (int)(ms - s * 1000);
    time_t t = (time_t)s;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        rt_buf_append_cstr(out, "null");
        return;
    }
    rt_buf_printf(out, "\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

/* 1: wrote a value; 0: it was `undefined` (nothing written); -1: error */
static int value(mp_t *m, int depth);

static int container(mp_t *m, int depth, uint64_t n, bool map)
{
    if (depth >= MP_MAX_DEPTH) {
        m->err = RT_EPROTO;
        return -1;
    }
    /* every element takes at least one byte: a count beyond the input is malformed */
    if (n > (uint64_t)(m->end - m->p) / (map ? 2 : 1)) {
        m->err = RT_EPROTO;
        return -1;
    }
    rt_buf_putc(m->out, map ? '{' : '[');
    bool first = true;
    for (uint64_t i = 0; i < n; i++) {
        size_t mark = m->out->len;
        if (!first) rt_buf_putc(m->out, ',');
        if (map) {
            /* the key: a string, or an integer written as one */
            if (!need(m, 1)) return -1;
            uint8_t b = *m->p;
            if ((b >= 0xa0 && b <= 0xbf) || b == 0xd9 || b == 0xda || b == 0xdb) {
                if (value(m, depth + 1) < 0) return -1;
            } else if (b <= 0x7f || b >= 0xe0 || (b >= 0xcc && b <= 0xd3)) {
                rt_buf_putc(m->out, '"');
                if (value(m, depth + 1) < 0) return -1;
                rt_buf_putc(m->out, '"');
            } else {
                m->err = RT_EPROTO;
                return -1;
            }
            rt_buf_putc(m->out, ':');
        }
        int r = value(m, depth + 1);
        if (r < 0) return -1;
        if (r == 0) {
            if (map) m->out->len = mark; /* {k: undefined}: the key goes too */
            else rt_buf_append_cstr(m->out, "null");
        }
        if (m->out->len != mark) first = false;
        if (m->out->len > m->max_out) {
            m->err = RT_ETOOBIG;
            return -1;
        }
    }
    rt_buf_putc(m->out, map ? '}' : ']');
    return 1;
}

static int value(mp_t *m, int depth)
{
    if (!need(m, 1)) return -1;
    uint8_t b = *m->p++;
    uint64_t n;
    if (b <= 0x7f) {
        rt_buf_append_u64(m->out, b);
        return 1;
    }
    if (b >= 0xe0) {
        rt_buf_printf(m->out, "%d", (int)(int8_t)b);
        return 1;
    }
    if (b >= 0x80 && b <= 0x8f) return container(m, depth, b & 0x0f, true);
    if (b >= 0x90 && b <= 0x9f) return container(m, depth, b & 0x0f, false);
    if (b >= 0xa0 && b <= 0xbf) {
        n = b & 0x1f;
        goto str;
    }
    switch (b) {
    case 0xc0: rt_buf_append_cstr(m->out, "null"); return 1;
    case 0xc2: rt_buf_append_cstr(m->out, "false"); return 1;
    case 0xc3: rt_buf_append_cstr(m->out, "true"); return 1;
    case 0xc4: case 0xc5: case 0xc6: { /* bin: an attachment */
        int w = b == 0xc4 ? 1 : b == 0xc5 ? 2 : 4;
        if (!need(m, (size_t)w)) return -1;
        n = be(m->p, w);
        m->p += w;
        if (!need(m, n)) return -1;
        if (*m->natt >= m->maxatt) {
            m->err = RT_ETOOBIG;
            return -1;
        }
        m->att[*m->natt] = rt_slice((const char *)m->p, (size_t)n);
        rt_buf_printf(m->out, "{\"_placeholder\":true,\"num\":%u}", (*m->natt)++);
        m->p += n;
        return 1;
    }
    case 0xc7: case 0xc8: case 0xc9: case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: { /* ext */
        int w = b == 0xc7 ? 1 : b == 0xc8 ? 2 : b == 0xc9 ? 4 : 0;
        if (w) {
            if (!need(m, (size_t)w)) return -1;
            n = be(m->p, w);
            m->p += w;
        } else {
            n = 1u << (b - 0xd4);
        }
        if (!need(m, n + 1)) return -1;
        int8_t type = (int8_t)m->p[0];
        const uint8_t *d = m->p + 1;
        m->p += n + 1;
        if (type == 0 && n == 1) return 0; /* notepack's undefined */
        if (type == 0 && n == 8) {          /* notepack's Date */
            uint64_t bits = be(d, 8);
            double ms;
            memcpy(&ms, &bits, 8);
            put_date(m->out, ms);
            return 1;
        }
        rt_buf_append_cstr(m->out, "null");
        return 1;
    }
    case 0xca: {
        if (!need(m, 4)) return -1;
        uint32_t bits = (uint32_t)be(m->p, 4);
        float f;
        memcpy(&f, &bits, 4);
        m->p += 4;
        put_double(m->out, f);
        return 1;
    }
    case 0xcb: {
        if (!need(m, 8)) return -1;
        uint64_t bits = be(m->p, 8);
        double d;
        memcpy(&d, &bits, 8);
        m->p += 8;
        put_double(m->out, d);
        return 1;
    }
    case 0xcc: case 0xcd: case 0xce: case 0xcf: {
        int w = 1 << (b - 0xcc);
        if (!need(m, (size_t)w)) return -1;
        rt_buf_append_u64(m->out, be(m->p, w));
        m->p += w;
        return 1;
    }
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        int w = 1 << (b - 0xd0);
        if (!need(m, (size_t)w)) return -1;
        uint64_t u = be(m->p, w);
        m->p += w;
        int64_t v = w == 1 ? (int8_t)u : w == 2 ? (int16_t)u : w == 4 ? (int32_t)u : (int64_t)u;
        rt_buf_printf(m->out, "%lld", (long long)v);
        return 1;
    }
    case 0xd9: case 0xda: case 0xdb: {
        int w = b == 0xd9 ? 1 : b == 0xda ? 2 : 4;
        if (!need(m, (size_t)w)) return -1;
        n = be(m->p, w);
        m->p += w;
        goto str;
    }
    case 0xdc: case 0xdd: case 0xde: case 0xdf: {
        int w = (b == 0xdc || b == 0xde) ? 2 : 4;
        if (!need(m, (size_t)w)) return -1;
        n = be(m->p, w);
        m->p += w;
        return container(m, depth, n, b >= 0xde);
    }
    default: m->err = RT_EPROTO; return -1; /* 0xc1 */
    }
str:
    if (!need(m, n)) return -1;
    if (!rt_utf8_valid((const char *)m->p, (size_t)n)) {
        m->err = RT_EPROTO;
        return -1;
    }
    rt_buf_append_json_string(m->out, rt_slice((const char *)m->p, (size_t)n));
    m->p += n;
    if (m->out->len > m->max_out) {
        m->err = RT_ETOOBIG;
        return -1;
    }
    return 1;
}

ssize_t mp_to_json(rt_slice_t in, rt_buf_t *out, rt_slice_t *att, uint32_t *natt, uint32_t maxatt, size_t max_out)
{
    mp_t m = {(const uint8_t *)in.p, (const uint8_t *)in.p + in.n, out, att, natt, maxatt, max_out, 0};
    *natt = 0;
    int r = value(&m, 0);
    if (r < 0) return m.err ? m.err : RT_EPROTO;
    if (r == 0) rt_buf_append_cstr(out, "null");
    return (ssize_t)(m.p - (const uint8_t *)in.p);
}
