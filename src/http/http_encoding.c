/* Content-Encoding for responses: which one a request accepts, and one-shot
 * gzip/deflate of a whole body with zlib. Compression runs once per body
 * that is worth it (the polling payloads over a threshold, the client
 * bundle once per process), never per delivery of a broadcast. */
#include "http.h"

#include <zlib.h>

/* Accept-Encoding: gzip, deflate;q=0.5, br;q=0 -> the best of ours with q > 0
 * (gzip wins a tie, as the `accepts` module orders them for socket.io). */
int http_accepted_encoding(const http_request_t *req)
{
    rt_slice_t v = http_header_get(req, "accept-encoding");
    if (!v.p) return HTTP_ENC_IDENTITY;
    int best = HTTP_ENC_IDENTITY;
    int best_q = 0;
    const char *p = v.p, *end = v.p + v.n;
    while (p < end) {
        const char *e = memchr(p, ',', (size_t)(end - p));
        if (!e) e = end;
        const char *semi = memchr(p, ';', (size_t)(e - p));
        rt_slice_t name = rt_slice_trim(rt_slice(p, (size_t)((semi ? semi : e) - p)));
        int q = 1000; /* thousandths */
        if (semi) {
            rt_slice_t params = rt_slice(semi + 1, (size_t)(e - semi - 1));
            const char *qp = NULL;
            for (size_t i = 0; i + 1 < params.n; i++)
                if ((params.p[i] == 'q' || params.p[i] == 'Q') && params.p[i + 1] == '=') qp = params.p + i + 2;
            if (qp) {
                q = 0;
                int digits = 0, frac = 0;
                for (const char *c = qp; c < e && (*c == '.' || (*c >= '0' && *c <= '9')); c++) {
                    if (*c == '.') frac = 1;
                    else if (!frac) q = (*c - '0') * 1000;
                    else if (digits < 3) q += (*c - '0') * (digits == 0 ? 100 : digits == 1 ? 10 : 1), digits++;
                }
            }
        }
        int enc = rt_slice_case_eq(name, "gzip") || rt_slice_case_eq(name, "x-gzip") ? HTTP_ENC_GZIP
                  : rt_slice_case_eq(name, "deflate")                               ? HTTP_ENC_DEFLATE
                  : rt_slice_case_eq(name, "*")                                     ? HTTP_ENC_GZIP
                                                                                    : HTTP_ENC_IDENTITY;
        if (enc != HTTP_ENC_IDENTITY && q > 0 && (q > best_q || (q == best_q && enc == HTTP_ENC_GZIP))) {
            best = enc;
            best_q = q;
        }
        p = e + 1;
    }
    return best;
}

const char *http_encoding_name(int enc)
{
    return enc == HTTP_ENC_GZIP ? "gzip" : enc == HTTP_ENC_DEFLATE ? "deflate" : "identity";
}

int http_compress(int enc, const void *in, size_t n, rt_buf_t *out)
{
    if (enc != HTTP_ENC_GZIP && enc != HTTP_ENC_DEFLATE) return -1;
    z_stream z;
    memset(&z, 0, sizeof z);
    /* gzip: a gzip header (15 + 16); deflate: HTTP's "deflate" is zlib format */
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, enc == HTTP_ENC_GZIP ? 15 + 16 : 15, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    size_t bound = deflateBound(&z, (uLong)n);
    rt_buf_reserve(out, bound);
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)out->data + out->len;
    z.avail_out = (uInt)bound;
    int r = deflate(&z, Z_FINISH);
    size_t produced = bound - z.avail_out;
    deflateEnd(&z);
    if (r != Z_STREAM_END) return -1;
    out->len += produced;
    return 0;
}

/* ---- a reusable compressor: deflateInit allocates and clears ~256 KiB,
 * deflateReset only what a new stream needs ---- */
struct http_compressor {
    z_stream z[2]; /* gzip, deflate */
    bool init[2];
};

http_compressor_t *http_compressor_new(void) { return rt_calloc(1, sizeof(http_compressor_t)); }

void http_compressor_free(http_compressor_t *c)
{
    if (!c) return;
    for (int i = 0; i < 2; i++)
        if (c->init[i]) deflateEnd(&c->z[i]);
    free(c);
}

int http_compressor_run(http_compressor_t *c, int enc, const void *in, size_t n, rt_buf_t *out)
{
    if (enc != HTTP_ENC_GZIP && enc != HTTP_ENC_DEFLATE) return -1;
    int i = enc == HTTP_ENC_GZIP ? 0 : 1;
    z_stream *z = &c->z[i];
    if (!c->init[i]) {
        if (deflateInit2(z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, i == 0 ? 15 + 16 : 15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            return -1;
        c->init[i] = true;
    } else if (deflateReset(z) != Z_OK) {
        return -1;
    }
    size_t bound = deflateBound(z, (uLong)n);
    rt_buf_reserve(out, bound);
    z->next_in = (Bytef *)(uintptr_t)in;
    z->avail_in = (uInt)n;
    z->next_out = (Bytef *)out->data + out->len;
    z->avail_out = (uInt)bound;
    int r = deflate(z, Z_FINISH);
    if (r != Z_STREAM_END) return -1;
    out->len += bound - z->avail_out;
    return 0;
}
