/* Fuzz target for the JSON scanner. Valid input: walk every value with the
 * iterators, decode every string, check object_get against a manual "last
 * key wins" search, and check that compact output is valid and a fixed point.
 * Any input: run every function on it anyway, since they promise to stay
 * inside the slice even when handed garbage. */
#include "base/base.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static rt_json_type_t type_of(rt_slice_t v)
{
    rt_json_type_t t;
    rt_assert(rt_json_valid(v, &t));
    rt_assert(rt_json_peek(v) == t);
    return t;
}

/* Decodes a valid string token and checks what the decoder promises. */
static void check_string(rt_slice_t tok, rt_buf_t *out)
{
    out->len = 0;
    rt_assert(rt_json_string_decode(tok, out) == RT_OK);
    rt_assert(out->len <= tok.n - 2);
    rt_assert(out->len == 0 || rt_utf8_valid(out->data, out->len)); /* no lone surrogates */
    rt_slice_t raw;
    if (rt_json_string_raw(tok, &raw)) rt_assert(rt_slice_eq(raw, rt_slice(out->data, out->len)));
    /* Re-encoding the text gives a token that decodes to the same text. */
    rt_buf_t enc = {0}, back = {0};
    rt_buf_append_json_string(&enc, rt_slice(out->data, out->len));
    rt_assert(type_of(rt_slice(enc.data, enc.len)) == RT_JSON_STRING);
    rt_assert(rt_json_string_decode(rt_slice(enc.data, enc.len), &back) == RT_OK);
    rt_assert(rt_slice_eq(rt_slice(back.data, back.len), rt_slice(out->data, out->len)));
    rt_buf_free(&enc);
    rt_buf_free(&back);
}

/* Checks rt_json_object_get for one key against a linear "last wins" search. */
static void check_get(rt_slice_t obj, rt_slice_t name)
{
    if (name.n && memchr(name.p, 0, name.n)) return; /* not expressible as a C string */
    char *cname = rt_strndup(name.p, name.n);
    rt_slice_t want = RT_SLICE_NULL, got, k, v;
    bool found = false;
    rt_buf_t kb = {0};
    rt_json_iter_t it;
    rt_json_iter_init(&it, obj);
    while (rt_json_object_next(&it, &k, &v)) {
        kb.len = 0;
        rt_assert(rt_json_string_decode(k, &kb) == RT_OK);
        if (rt_slice_eq(rt_slice(kb.data, kb.len), name)) {
            want = v;
            found = true;
        }
    }
    rt_assert(found);
    rt_assert(rt_json_object_get(obj, cname, &got));
    rt_assert(got.p == want.p && got.n == want.n);
    rt_buf_free(&kb);
    rt_free(cname);
}

static void walk(rt_slice_t v, int depth, rt_buf_t *tmp)
{
    rt_assert(depth <= RT_JSON_MAX_DEPTH);
    rt_json_type_t t = type_of(v);
    rt_json_iter_t it;
    rt_slice_t k, e;
    if (t == RT_JSON_STRING) {
        check_string(v, tmp);
    } else if (t == RT_JSON_ARRAY) {
        rt_json_iter_init(&it, v);
        while (rt_json_array_next(&it, &e)) walk(e, depth + 1, tmp);
        rt_assert(it.p == it.end); /* the iterator reached the closing bracket */
    } else if (t == RT_JSON_OBJECT) {
        int keys = 0;
        rt_json_iter_init(&it, v);
        while (rt_json_object_next(&it, &k, &e)) {
            rt_assert(type_of(k) == RT_JSON_STRING);
            check_string(k, tmp);
            /* A handful of keys per object keeps the quadratic check cheap. */
            if (keys++ < 8) {
                rt_buf_t name = {0};
                rt_buf_append(&name, tmp->data, tmp->len);
                check_get(v, rt_slice(name.data, name.len));
                rt_buf_free(&name);
            }
            walk(e, depth + 1, tmp);
        }
        rt_assert(it.p == it.end);
    }
}

/* Functions that only promise safety on garbage: run them for ASan's sake. */
static void poke_garbage(rt_slice_t s)
{
    rt_buf_t b = {0};
    rt_json_iter_t it;
    rt_slice_t k, v;
    rt_json_iter_init(&it, s);
    for (int i = 0; i < 64 && rt_json_array_next(&it, &v); i++) rt_assert(v.n > 0);
    rt_json_iter_init(&it, s);
    for (int i = 0; i < 64 && rt_json_object_next(&it, &k, &v); i++) rt_assert(k.n >= 2);
    rt_json_object_get(s, "a", &v);
    rt_json_string_decode(s, &b);
    rt_json_string_raw(s, &v);
    b.len = 0;
    rt_json_compact(s, &b);
    rt_assert(b.len <= s.n);
    rt_json_peek(s);
    rt_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A heap copy of exactly size bytes, so ASan sees any read past the end. */
    char *copy = rt_malloc(size);
    if (size) memcpy(copy, data, size);
    rt_slice_t s = rt_slice(copy, size);

    size_t end = 0;
    rt_json_type_t st = rt_json_scan(s.p, s.n, &end);
    if (st != RT_JSON_INVALID) rt_assert(end <= size);
    rt_json_type_t t;
    bool ok = rt_json_valid(s, &t);
    rt_assert(ok == (t != RT_JSON_INVALID));
    rt_assert(!ok || st == t);

    poke_garbage(s);
    if (ok) {
        rt_buf_t tmp = {0}, c1 = {0}, c2 = {0};
        walk(rt_json_trim(s), 0, &tmp);
        rt_json_compact(s, &c1);
        rt_json_type_t ct;
        rt_assert(rt_json_valid(rt_slice(c1.data, c1.len), &ct) && ct == t);
        rt_assert(c1.len <= size);
        rt_json_compact(rt_slice(c1.data, c1.len), &c2);
        rt_assert(rt_slice_eq(rt_slice(c1.data, c1.len), rt_slice(c2.data, c2.len)));
        rt_buf_free(&tmp);
        rt_buf_free(&c1);
        rt_buf_free(&c2);
    }
    rt_free(copy);
    return 0;
}
