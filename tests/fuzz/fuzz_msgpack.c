/* Fuzz target for the MessagePack to JSON converter. Checks memory safety,
 * that a success is valid JSON within the output bound, that every
 * attachment is a slice of the input, and that the result does not depend
 * on bytes after the value. */
#include "emitter/msgpack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rt_buf_t out = {0}, out2 = {0};
    rt_slice_t att[8], att2[8];
    uint32_t n = 0, n2 = 0;
    rt_slice_t in = rt_slice((const char *)data, size);
    ssize_t r = mp_to_json(in, &out, att, &n, 8, 1 << 16);
    if (r > 0) {
        rt_assert((size_t)r <= size);
        rt_assert(out.len <= (1 << 16) + 64);
        rt_json_type_t t;
        rt_assert(rt_json_valid(rt_slice(out.data, out.len), &t));
        rt_assert(n <= 8);
        for (uint32_t i = 0; i < n; i++)
            rt_assert(att[i].p >= in.p && att[i].p + att[i].n <= in.p + (size_t)r);
        /* the value alone converts the same */
        ssize_t r2 = mp_to_json(rt_slice(in.p, (size_t)r), &out2, att2, &n2, 8, 1 << 16);
        rt_assert(r2 == r && n2 == n && out2.len == out.len && !memcmp(out.data, out2.data, out.len));
    } else {
        rt_assert(r == RT_EPROTO || r == RT_ETOOBIG);
    }
    rt_buf_free(&out);
    rt_buf_free(&out2);
    return 0;
}
