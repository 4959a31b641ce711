/* Unit tests for src/base/base.c: slices, buffers, JSON string output, chunks,
 * lists, the hash map, base64 and UTF-8. */
#include "base/base.h"
#include "test.h"

#include <stdio.h>

static rt_slice_t S(const char *s) { return rt_slice(s, strlen(s)); }

TEST(strerror_names)
{
    CHECK(strcmp(rt_strerror(RT_OK), "ok") == 0);
    CHECK(strcmp(rt_strerror(RT_EPROTO), "protocol error") == 0);
    CHECK(strcmp(rt_strerror(RT_EUTF8), "invalid utf-8") == 0);
    CHECK(strcmp(rt_strerror(-99), "unknown error") == 0);
}

TEST(slices)
{
    CHECK(rt_slice_eq(S("abc"), RT_SLICE("abc")));
    CHECK(!rt_slice_eq(S("abc"), S("abd")));
    CHECK(!rt_slice_eq(S("abc"), S("ab")));
    CHECK(rt_slice_eq(RT_SLICE_NULL, S("")));
    CHECK(rt_slice_eq_cstr(S("x"), "x"));
    CHECK_EQ_INT(rt_slice_cstr(NULL).n, 0);
    CHECK(rt_slice_case_eq(S("Content-Type"), "content-type"));
    CHECK(rt_slice_case_eq(S("WEBSOCKET"), "websocket"));
    CHECK(!rt_slice_case_eq(S("websockets"), "websocket"));
    CHECK(!rt_slice_case_eq(S("web[ocket"), "web{ocket")); /* not a blind |0x20 */
    char *d = rt_strndup("hello world", 5);
    CHECK(strcmp(d, "hello") == 0);
    rt_free(d);
}

TEST(slice_to_u64)
{
    uint64_t v = 7;
    CHECK_EQ_INT(rt_slice_to_u64(S("0"), &v), RT_OK);
    CHECK_EQ_INT(v, 0);
    CHECK_EQ_INT(rt_slice_to_u64(S("12345"), &v), RT_OK);
    CHECK_EQ_INT(v, 12345);
    CHECK_EQ_INT(rt_slice_to_u64(S("007"), &v), RT_OK);
    CHECK_EQ_INT(v, 7);
    CHECK_EQ_INT(rt_slice_to_u64(S("9999999999999999999"), &v), RT_OK); /* 19 digits */
    CHECK(v == 9999999999999999999ULL);
    v = 42;
    CHECK_EQ_INT(rt_slice_to_u64(S("18446744073709551615"), &v), RT_EPROTO); /* 20 digits */
    CHECK_EQ_INT(rt_slice_to_u64(S(""), &v), RT_EPROTO);
    CHECK_EQ_INT(rt_slice_to_u64(RT_SLICE_NULL, &v), RT_EPROTO);
    CHECK_EQ_INT(rt_slice_to_u64(S("-1"), &v), RT_EPROTO);
    CHECK_EQ_INT(rt_slice_to_u64(S("+1"), &v), RT_EPROTO);
    CHECK_EQ_INT(rt_slice_to_u64(S(" 1"), &v), RT_EPROTO);
    CHECK_EQ_INT(rt_slice_to_u64(S("1 "), &v), RT_EPROTO);
    CHECK_EQ_INT(rt_slice_to_u64(S("1a"), &v), RT_EPROTO);
    CHECK_EQ_INT(rt_slice_to_u64(S("\xb1"), &v), RT_EPROTO);
    CHECK_EQ_INT(v, 42); /* untouched on error */
    CHECK_EQ_INT(rt_slice_to_u64(rt_slice("123456", 3), &v), RT_OK);
    CHECK_EQ_INT(v, 123);
}

TEST(buf_basic)
{
    rt_buf_t b = {0};
    rt_buf_append(&b, "abc", 3);
    rt_buf_append(&b, NULL, 0);
    rt_buf_putc(&b, 'd');
    rt_buf_append_cstr(&b, "ef");
    rt_buf_append_slice(&b, S("gh"));
    CHECK_MEM(b.data, b.len, "abcdefgh");
    CHECK(b.cap >= b.len);
    rt_buf_consume(&b, 3);
    CHECK_MEM(b.data, b.len, "defgh");
    rt_buf_consume(&b, 0);
    CHECK_MEM(b.data, b.len, "defgh");
    rt_buf_consume(&b, 100);
    CHECK_EQ_INT(b.len, 0);
    rt_buf_reserve(&b, 1000);
    CHECK(b.cap >= 1000);
    size_t cap = b.cap;
    rt_buf_reserve(&b, 10); /* no shrink, no realloc needed */
    CHECK_EQ_INT(b.cap, cap);
    rt_buf_free(&b);
    CHECK(b.data == NULL && b.len == 0 && b.cap == 0);

    /* Growth keeps every byte across many reallocations. */
    for (int i = 0; i < 100000; i++) rt_buf_putc(&b, (char)('a' + i % 26));
    CHECK_EQ_INT(b.len, 100000);
    int bad = 0;
    for (int i = 0; i < 100000; i++) bad += b.data[i] != (char)('a' + i % 26);
    CHECK_EQ_INT(bad, 0);
    rt_buf_free(&b);
}

TEST(buf_numbers_printf)
{
    rt_buf_t b = {0};
    rt_buf_append_u64(&b, 0);
    rt_buf_putc(&b, ',');
    rt_buf_append_u64(&b, 1234567890);
    rt_buf_putc(&b, ',');
    rt_buf_append_u64(&b, UINT64_MAX);
    CHECK_MEM(b.data, b.len, "0,1234567890,18446744073709551615");
    b.len = 0;
    rt_buf_printf(&b, "%s=%d", "n", -5);
    CHECK_MEM(b.data, b.len, "n=-5");
    /* Longer than printf's 256-byte stack buffer: the second pass. */
    char big[600];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    b.len = 0;
    rt_buf_append_cstr(&b, "<");
    rt_buf_printf(&b, "%s>", big);
    CHECK_EQ_INT(b.len, 1 + 599 + 1);
    CHECK(b.data[0] == '<' && b.data[1] == 'x' && b.data[599] == 'x' && b.data[600] == '>');
    /* Exactly 255 and 256 characters, around the boundary. */
    b.len = 0;
    rt_buf_printf(&b, "%.*s", 255, big);
    CHECK_EQ_INT(b.len, 255);
    b.len = 0;
    rt_buf_printf(&b, "%.*s", 256, big);
    CHECK_EQ_INT(b.len, 256);
    rt_buf_free(&b);
}

static void json_str(const char *in, size_t n, const char *want)
{
    rt_buf_t b = {0};
    rt_buf_append_json_string(&b, rt_slice(in, n));
    CHECK_MEM(b.data, b.len, want);
    CHECK(rt_json_valid(rt_slice(b.data, b.len), NULL));
    /* Decoding gives the input back. */
    rt_buf_t d = {0};
    CHECK_EQ_INT(rt_json_string_decode(rt_slice(b.data, b.len), &d), RT_OK);
    CHECK(d.len == n && (n == 0 || memcmp(d.data, in, n) == 0));
    rt_buf_free(&d);
    rt_buf_free(&b);
}

TEST(buf_json_string)
{
    json_str("", 0, "\"\"");
    json_str("plain", 5, "\"plain\"");
    json_str("a\"b\\c", 5, "\"a\\\"b\\\\c\"");
    json_str("\n\r\t\b\f", 5, "\"\\n\\r\\t\\b\\f\"");
    json_str("\x01\x1f", 2, "\"\\u0001\\u001f\"");
    json_str("\0x", 2, "\"\\u0000x\"");
    json_str("/\x7f", 2, "\"/\x7f\"");               /* '/' and DEL stay raw */
    json_str("h\xc3\xa9\xf0\x9f\x98\x80", 7, "\"h\xc3\xa9\xf0\x9f\x98\x80\""); /* UTF-8 as is */
    /* Appends to existing contents. */
    rt_buf_t b = {0};
    rt_buf_append_cstr(&b, "{\"k\":");
    rt_buf_append_json_string(&b, S("v"));
    rt_buf_putc(&b, '}');
    CHECK_MEM(b.data, b.len, "{\"k\":\"v\"}");
    rt_buf_free(&b);
    /* Every control character. */
    for (int c = 0; c < 0x20; c++) {
        char in = (char)c;
        rt_buf_append_json_string(&b, rt_slice(&in, 1));
        CHECK(rt_json_valid(rt_slice(b.data, b.len), NULL));
        b.len = 0;
    }
    rt_buf_free(&b);
}

TEST(chunks)
{
    rt_chunk_t *c = rt_chunk_from("hello", 5);
    CHECK_EQ_INT(c->refcnt, 1);
    CHECK_MEM(c->data, c->len, "hello");
    CHECK(rt_chunk_ref(c) == c);
    CHECK_EQ_INT(c->refcnt, 2);
    rt_chunk_unref(c);
    CHECK_EQ_INT(c->refcnt, 1);
    rt_chunk_unref(c);
    rt_chunk_unref(NULL);
    rt_buf_t b = {0};
    rt_buf_append_cstr(&b, "42[\"x\"]");
    c = rt_chunk_from_buf(&b);
    CHECK_MEM(c->data, c->len, "42[\"x\"]");
    rt_chunk_unref(c);
    rt_buf_free(&b);
    c = rt_chunk_from(NULL, 0);
    CHECK_EQ_INT(c->len, 0);
    rt_chunk_unref(c);
}

typedef struct {
    int v;
    rt_list_t link;
} item_t;

TEST(lists)
{
    rt_list_t head;
    item_t it[3] = {{1, {0}}, {2, {0}}, {3, {0}}};
    rt_list_init(&head);
    CHECK(rt_list_empty(&head));
    for (int i = 0; i < 3; i++) rt_list_insert_tail(&head, &it[i].link);
    CHECK(!rt_list_empty(&head));
    CHECK(rt_list_linked(&it[1].link));
    rt_list_remove(&it[1].link);
    CHECK(!rt_list_linked(&it[1].link));
    rt_list_t *n, *tmp;
    int sum = 0, order = 0;
    rt_list_foreach_safe(n, tmp, &head)
    {
        item_t *x = rt_container_of(n, item_t, link);
        order = order * 10 + x->v;
        sum += x->v;
        rt_list_remove(n); /* removal during iteration is safe */
    }
    CHECK_EQ_INT(order, 13);
    CHECK_EQ_INT(sum, 4);
    CHECK(rt_list_empty(&head));
}

TEST(map_basic)
{
    rt_map_t m;
    rt_map_init(&m);
    int a = 1, b = 2, c = 3;
    CHECK(rt_map_get(&m, S("x")) == NULL); /* empty map, no slots */
    CHECK(rt_map_del(&m, S("x")) == NULL);
    rt_map_put(&m, S("room:a"), &a);
    rt_map_put(&m, S("room:b"), &b);
    CHECK(rt_map_get(&m, S("room:a")) == &a);
    CHECK(rt_map_get(&m, S("room:b")) == &b);
    CHECK(rt_map_get(&m, S("room:c")) == NULL);
    CHECK(rt_map_get(&m, S("room:")) == NULL);
    CHECK_EQ_INT(m.count, 2);
    rt_map_put(&m, S("room:a"), &c); /* replace */
    CHECK(rt_map_get(&m, S("room:a")) == &c);
    CHECK_EQ_INT(m.count, 2);
    /* Keys are compared by bytes, not by pointer. */
    char key[] = "room:b";
    CHECK(rt_map_get(&m, rt_slice(key, 6)) == &b);
    /* The empty key is a key like any other. */
    rt_map_put(&m, S(""), &a);
    CHECK(rt_map_get(&m, S("")) == &a);
    CHECK(rt_map_get(&m, RT_SLICE_NULL) == &a);
    CHECK(rt_map_del(&m, RT_SLICE_NULL) == &a);
    /* Binary keys with NUL bytes. */
    rt_map_put(&m, rt_slice("a\0b", 3), &b);
    CHECK(rt_map_get(&m, rt_slice("a\0b", 3)) == &b);
    CHECK(rt_map_get(&m, rt_slice("a\0c", 3)) == NULL);
    CHECK(rt_map_del(&m, rt_slice("a\0b", 3)) == &b);

    CHECK(rt_map_del(&m, S("room:a")) == &c);
    CHECK(rt_map_del(&m, S("room:a")) == NULL);
    CHECK(rt_map_get(&m, S("room:a")) == NULL);
    CHECK_EQ_INT(m.count, 1);
    CHECK(rt_map_del(&m, S("room:b")) == &b);
    CHECK_EQ_INT(m.count, 0);
    CHECK_EQ_INT(m.used, 0); /* the last delete wipes the tombstones */
    rt_map_free(&m);
    CHECK(m.slots == NULL && m.cap == 0);
}

TEST(map_iterate)
{
    rt_map_t m;
    rt_map_init(&m);
    static const char *keys[] = {"a", "bb", "ccc", "dddd", "eeeee"};
    int vals[5];
    for (int i = 0; i < 5; i++) {
        vals[i] = i;
        rt_map_put(&m, S(keys[i]), &vals[i]);
    }
    rt_map_del(&m, S("ccc"));
    int seen = 0, n = 0;
    rt_slice_t k;
    void *v;
    for (uint32_t i = 0; rt_map_next(&m, &i, &k, &v);) {
        int idx = *(int *)v;
        CHECK(rt_slice_eq_cstr(k, keys[idx]));
        seen |= 1 << idx;
        n++;
    }
    CHECK_EQ_INT(n, 4);
    CHECK_EQ_INT(seen, 0x1b);
    uint32_t it = 0;
    rt_map_t empty;
    rt_map_init(&empty);
    CHECK(!rt_map_next(&empty, &it, &k, &v));
    rt_map_free(&m);
}

#define BIG 100000

TEST(map_100k)
{
    static char keys[BIG][12];
    rt_map_t m;
    rt_map_init(&m);
    for (int i = 0; i < BIG; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        rt_map_put(&m, S(keys[i]), keys[i]);
    }
    CHECK_EQ_INT(m.count, BIG);
    CHECK(m.cap >= BIG * 4 / 3);
    CHECK_EQ_INT(m.cap & (m.cap - 1), 0); /* power of two */
    int miss = 0;
    for (int i = 0; i < BIG; i++) miss += rt_map_get(&m, S(keys[i])) != keys[i];
    CHECK_EQ_INT(miss, 0);
    CHECK(rt_map_get(&m, S("k100000")) == NULL);

    /* Delete the odd keys: the even ones must survive their tombstones. */
    for (int i = 1; i < BIG; i += 2) miss += rt_map_del(&m, S(keys[i])) != keys[i];
    CHECK_EQ_INT(miss, 0);
    CHECK_EQ_INT(m.count, BIG / 2);
    for (int i = 0; i < BIG; i++) miss += rt_map_get(&m, S(keys[i])) != (i % 2 ? NULL : keys[i]);
    CHECK_EQ_INT(miss, 0);
    uint32_t n = 0;
    for (uint32_t it = 0; rt_map_next(&m, &it, NULL, NULL);) n++;
    CHECK_EQ_INT(n, BIG / 2);

    /* Re-insert into tombstones, then churn: insert and delete fresh keys so
     * tombstones pile up; the table must rehash rather than fill up. */
    for (int i = 1; i < BIG; i += 2) rt_map_put(&m, S(keys[i]), keys[i]);
    CHECK_EQ_INT(m.count, BIG);
    uint32_t cap = m.cap;
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < BIG; i++) miss += rt_map_del(&m, S(keys[i])) != keys[i];
        CHECK_EQ_INT(m.count, 0);
        for (int i = 0; i < BIG; i++) rt_map_put(&m, S(keys[i]), keys[i]);
    }
    CHECK_EQ_INT(miss, 0);
    CHECK_EQ_INT(m.cap, cap); /* no runaway growth */
    for (int i = 0; i < BIG; i++) miss += rt_map_get(&m, S(keys[i])) != keys[i];
    CHECK_EQ_INT(miss, 0);
    rt_map_free(&m);
}

TEST(map_tombstone_churn)
{
    /* A small live set with many distinct keys passing through: every insert
     * lands among tombstones, and the map must stay small and correct. */
    static char keys[20000][8];
    rt_map_t m;
    rt_map_init(&m);
    int miss = 0;
    for (int i = 0; i < 20000; i++) {
        snprintf(keys[i], sizeof keys[i], "s%d", i);
        rt_map_put(&m, S(keys[i]), keys[i]);
        if (i >= 5) miss += rt_map_del(&m, S(keys[i - 5])) != keys[i - 5];
        CHECK(m.used < m.cap);
    }
    CHECK_EQ_INT(miss, 0);
    CHECK_EQ_INT(m.count, 5);
    CHECK(m.cap <= 64);
    for (int i = 19995; i < 20000; i++) CHECK(rt_map_get(&m, S(keys[i])) == keys[i]);
    CHECK(rt_map_get(&m, S(keys[19994])) == NULL);
    rt_map_free(&m);
}

TEST(hash)
{
    CHECK(rt_hash("a", 1) >= 2);
    CHECK(rt_hash("", 0) >= 2);
    CHECK(rt_hash("a", 1) != rt_hash("b", 1));
    CHECK(rt_hash("ab", 2) == rt_hash("ab", 2));
}

/* SipHash-2-4 against the reference vectors (key 00..0f, message 00..n-1). */
TEST(siphash_vectors)
{
    uint8_t key[16], msg[64];
    for (int i = 0; i < 16; i++) key[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++) msg[i] = (uint8_t)i;
    static const struct {
        int len;
        uint64_t want;
    } v[] = {
        {0, 0x726fdb47dd0e0e31ULL}, {1, 0x74f839c593dc67fdULL},  {2, 0x0d6c8009d9a94f5aULL},
        {7, 0xab0200f58b01d137ULL}, {8, 0x93f5f5799a932462ULL},  {9, 0x9e0082df0ba9e4b0ULL},
        {15, 0xa129ca6149be45e5ULL}, {16, 0x3f2acc7f57c29bdbULL}, {63, 0x958a324ceb064572ULL},
    };
    for (size_t i = 0; i < RT_ARRAY_LEN(v); i++) CHECK(rt_siphash(msg, (size_t)v[i].len, key) == v[i].want);
    uint8_t key2[16] = {1};
    CHECK(rt_siphash(msg, 8, key2) != rt_siphash(msg, 8, key)); /* keyed */
}

/* Hash flooding: keys chosen to collide in the low bits of the slot hash of
 * the old unkeyed FNV-1a (what an attacker precomputes offline) must spread
 * over the table with the keyed hash, as random keys do. */
static uint64_t old_fnv_mix(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

TEST(hash_flooding)
{
    enum { N = 2000, MASK = 4095 };
    static char keys[N][40];
    int found = 0;
    for (uint64_t i = 0; found < N; i++) {
        char k[40];
        int n = snprintf(k, sizeof k, "task_progress:%llu", (unsigned long long)i);
        if (((old_fnv_mix(k, (size_t)n) >> 32) & MASK) == 0) memcpy(keys[found++], k, (size_t)n + 1);
    }
    static uint8_t seen[MASK + 1];
    memset(seen, 0, sizeof seen);
    int distinct = 0;
    for (int i = 0; i < N; i++) {
        unsigned b = (unsigned)((rt_hash(keys[i], strlen(keys[i])) >> 32) & MASK);
        if (!seen[b]++) distinct++;
    }
    /* 2000 random draws into 4096 buckets: ~1600 distinct (old hash: 1) */
    CHECK(distinct > 1300);
    /* and the map stays fast: every key found with short probes */
    rt_map_t m;
    rt_map_init(&m);
    for (int i = 0; i < N; i++) rt_map_put(&m, S(keys[i]), keys[i]);
    int miss = 0;
    for (int i = 0; i < N; i++) miss += rt_map_get(&m, S(keys[i])) != keys[i];
    CHECK_EQ_INT(miss, 0);
    rt_map_free(&m);
}

/* The iteration contract (base.h): deleting the entry just returned keeps
 * the walk going; every entry is visited once, and draining is linear. */
TEST(map_delete_while_iterating)
{
    static char keys[5000][8];
    rt_map_t m;
    rt_map_init(&m);
    for (int i = 0; i < 5000; i++) {
        snprintf(keys[i], sizeof keys[i], "d%d", i);
        rt_map_put(&m, S(keys[i]), keys[i]);
    }
    static uint8_t visits[5000];
    memset(visits, 0, sizeof visits);
    rt_slice_t k;
    void *v;
    uint32_t steps = 0, last = 0;
    bool monotonic = true;
    for (uint32_t it = 0; rt_map_next(&m, &it, &k, &v); steps++) {
        if (it <= last && steps) monotonic = false;
        last = it;
        visits[(char(*)[8])v - keys]++;
        if (steps % 2 == 0) CHECK(rt_map_del(&m, k) == v);
    }
    CHECK(monotonic); /* one pass over the slots */
    CHECK_EQ_INT(steps, 5000);
    int twice = 0;
    for (int i = 0; i < 5000; i++) twice += visits[i] != 1;
    CHECK_EQ_INT(twice, 0);
    CHECK_EQ_INT(m.count, 2500);
    /* drain the rest: the last delete resets the table under the iterator */
    steps = 0;
    for (uint32_t it = 0; rt_map_next(&m, &it, &k, &v); steps++) CHECK(rt_map_del(&m, k) == v);
    CHECK_EQ_INT(steps, 2500);
    CHECK_EQ_INT(m.count, 0);
    rt_map_free(&m);
}

static void b64_std(const char *in, const char *want)
{
    char out[64];
    size_t n = strlen(in);
    size_t k = rt_base64_encode(out, (const uint8_t *)in, n);
    CHECK_MEM(out, k, want);
    CHECK_EQ_INT(k, (n + 2) / 3 * 4);
    uint8_t dec[64];
    ssize_t d = rt_base64_decode(dec, want, strlen(want));
    CHECK_EQ_INT(d, (ssize_t)n);
    if (d == (ssize_t)n) CHECK_MEM(dec, n, in);
}

TEST(base64_rfc4648)
{
    /* RFC 4648 section 10 test vectors. */
    b64_std("", "");
    b64_std("f", "Zg==");
    b64_std("fo", "Zm8=");
    b64_std("foo", "Zm9v");
    b64_std("foob", "Zm9vYg==");
    b64_std("fooba", "Zm9vYmE=");
    b64_std("foobar", "Zm9vYmFy");
}

TEST(base64_decode_edges)
{
    uint8_t o[16];
    CHECK_EQ_INT(rt_base64_decode(o, "AQIDBA==", 8), 4);
    CHECK(memcmp(o, "\x01\x02\x03\x04", 4) == 0);
    CHECK_EQ_INT(rt_base64_decode(o, "AQIDBA", 6), 4); /* padding optional */
    CHECK_EQ_INT(rt_base64_decode(o, "Zm8", 3), 2);
    CHECK_EQ_INT(rt_base64_decode(o, "", 0), 0);
    CHECK_EQ_INT(rt_base64_decode(o, "+/+/", 4), 3);
    CHECK(memcmp(o, "\xfb\xff\xbf", 3) == 0);
    CHECK_EQ_INT(rt_base64_decode(o, "Z", 1), -1);     /* 6 bits cannot make a byte */
    CHECK_EQ_INT(rt_base64_decode(o, "Zm9vY", 5), -1);
    CHECK_EQ_INT(rt_base64_decode(o, "Zm 9v", 5), -1);
    CHECK_EQ_INT(rt_base64_decode(o, "Zm9v\n", 5), -1);
    CHECK_EQ_INT(rt_base64_decode(o, "Zm=v", 4), -1);  /* '=' only at the end */
    CHECK_EQ_INT(rt_base64_decode(o, "Zm9*", 4), -1);
    CHECK_EQ_INT(rt_base64_decode(o, "====", 4), 0);
}

TEST(base64_round_trip)
{
    uint8_t in[256], dec[400];
    char enc[400], url[400];
    for (int i = 0; i < 256; i++) in[i] = (uint8_t)(255 - i);
    for (size_t n = 0; n <= 256; n++) {
        size_t k = rt_base64_encode(enc, in, n);
        CHECK_EQ_INT(k, (n + 2) / 3 * 4);
        ssize_t d = rt_base64_decode(dec, enc, k);
        CHECK_EQ_INT(d, (ssize_t)n);
        CHECK(d == (ssize_t)n && memcmp(dec, in, n) == 0);
        /* URL-safe: same digits with -_ and no padding. */
        size_t u = rt_base64url(url, in, n);
        CHECK_EQ_INT(u, (n * 4 + 2) / 3);
        int same = 1;
        for (size_t i = 0; i < u; i++) {
            char e = enc[i] == '+' ? '-' : enc[i] == '/' ? '_' : enc[i];
            same &= url[i] == e;
        }
        CHECK(same);
        for (size_t i = u; i < k; i++) CHECK(enc[i] == '=');
        CHECK(memchr(url, '=', u) == NULL);
        d = rt_base64_decode(dec, url, u); /* the decoder also reads the URL alphabet */
        CHECK(d == (ssize_t)n && memcmp(dec, in, n) == 0);
    }
    char sid[32];
    const uint8_t raw[15] = {0xfb, 0xff, 0xfe, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    size_t k = rt_base64url(sid, raw, 15);
    CHECK_MEM(sid, k, "-__-AAECAwQFBgcICQoL");
}

TEST(utf8)
{
#define U(lit) rt_utf8_valid((lit), sizeof(lit) - 1)
    CHECK(U(""));
    CHECK(U("ascii only \x7f"));
    CHECK(U("\0"));
    CHECK(U("\xc2\x80"));             /* U+0080 */
    CHECK(U("\xdf\xbf"));             /* U+07FF */
    CHECK(U("\xe0\xa0\x80"));         /* U+0800 */
    CHECK(U("\xed\x9f\xbf"));         /* U+D7FF */
    CHECK(U("\xee\x80\x80"));         /* U+E000 */
    CHECK(U("\xef\xbf\xbf"));         /* U+FFFF */
    CHECK(U("\xf0\x90\x80\x80"));     /* U+10000 */
    CHECK(U("\xf4\x8f\xbf\xbf"));     /* U+10FFFF */
    CHECK(U("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"));
    /* Overlongs. */
    CHECK(!U("\xc0\x80"));
    CHECK(!U("\xc1\xbf"));
    CHECK(!U("\xe0\x80\x80"));
    CHECK(!U("\xe0\x9f\xbf"));
    CHECK(!U("\xf0\x80\x80\x80"));
    CHECK(!U("\xf0\x8f\xbf\xbf"));
    /* Surrogates. */
    CHECK(!U("\xed\xa0\x80"));
    CHECK(!U("\xed\xbf\xbf"));
    CHECK(!U("\xed\xa0\xbd\xed\xb8\x80")); /* CESU-8 pair */
    /* Above U+10FFFF and bytes that never appear. */
    CHECK(!U("\xf4\x90\x80\x80"));
    CHECK(!U("\xf5\x80\x80\x80"));
    CHECK(!U("\xf8\x88\x80\x80\x80"));
    CHECK(!U("\xfe"));
    CHECK(!U("\xff"));
    /* Truncated and broken sequences. */
    CHECK(!U("\xc3"));
    CHECK(!U("\xe2\x82"));
    CHECK(!U("\xf0\x9f\x98"));
    CHECK(!U("a\xf0\x9f\x98"));
    CHECK(!U("\x80"));
    CHECK(!U("\xbf"));
    CHECK(!U("\xc3\x28"));
    CHECK(!U("\xe2\x28\xa1"));
    CHECK(!U("\xe2\x82\x28"));
    CHECK(!U("\xf0\x28\x8c\xbc"));
    CHECK(!U("\xc3\xa9\xc3"));
    /* A length that cuts a valid sequence. */
    CHECK(!rt_utf8_valid("\xe2\x82\xac", 2));
    CHECK(rt_utf8_valid("\xe2\x82\xac", 3));
#undef U
}

TEST(log_levels)
{
    CHECK_EQ_INT(rt_log_level_from_name("debug"), RT_LOG_DEBUG);
    CHECK_EQ_INT(rt_log_level_from_name("warning"), RT_LOG_WARN);
    CHECK_EQ_INT(rt_log_level_from_name("warn"), RT_LOG_WARN);
    CHECK_EQ_INT(rt_log_level_from_name("silent"), RT_LOG_SILENT);
    CHECK_EQ_INT(rt_log_level_from_name("loud"), -1);
}

int main(void)
{
    RUN(strerror_names);
    RUN(slices);
    RUN(slice_to_u64);
    RUN(buf_basic);
    RUN(buf_numbers_printf);
    RUN(buf_json_string);
    RUN(chunks);
    RUN(lists);
    RUN(map_basic);
    RUN(map_iterate);
    RUN(map_100k);
    RUN(map_tombstone_churn);
    RUN(hash);
    RUN(siphash_vectors);
    RUN(hash_flooding);
    RUN(map_delete_while_iterating);
    RUN(base64_rfc4648);
    RUN(base64_decode_edges);
    RUN(base64_round_trip);
    RUN(utf8);
    RUN(log_levels);
    return TEST_SUMMARY("test_base");
}
