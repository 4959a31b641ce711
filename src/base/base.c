/* base: allocation, buffers, chunks, map, time, logging, random, base64, UTF-8. */
#include "base.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

const char *rt_strerror(int err)
{
    switch (err) {
    case RT_OK: return "ok";
    case RT_EAGAIN: return "need more input";
    case RT_EPROTO: return "protocol error";
    case RT_ETOOBIG: return "too big";
    case RT_ENOTFOUND: return "not found";
    case RT_ESTATE: return "invalid state";
    case RT_EIO: return "i/o error";
    case RT_EUTF8: return "invalid utf-8";
    }
    return "unknown error";
}

static void rt_oom(size_t n)
{
    fprintf(stderr, "realtimed: out of memory allocating %zu bytes\n", n);
    abort();
}

void *rt_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) rt_oom(n);
    return p;
}

void *rt_calloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (!p) rt_oom(nmemb * size);
    return p;
}

void *rt_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) rt_oom(n);
    return q;
}

void *rt_try_malloc(size_t n) { return malloc(n ? n : 1); }

char *rt_strndup(const char *s, size_t n)
{
    char *d = rt_malloc(n + 1);
    if (n) memcpy(d, s, n);
    d[n] = 0;
    return d;
}

#if defined(__SANITIZE_ADDRESS__)
#define RT_POOL_PASSTHROUGH 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RT_POOL_PASSTHROUGH 1
#endif
#endif

void *rt_pool_alloc(rt_pool_t *p)
{
#ifdef RT_POOL_PASSTHROUGH
    return rt_calloc(1, p->size);
#else
    if (!p->free) {
        /* A new slab; its objects go on the free list, in address order. */
        enum { SLAB = 64 };
        char *mem = rt_malloc(sizeof(void *) + p->size * SLAB), *slab = mem + sizeof(void *);
        *(void **)mem = p->slabs;
        p->slabs = mem;
        for (size_t i = SLAB; i-- > 0;) {
            void *o = slab + i * p->size;
            *(void **)o = p->free;
            p->free = o;
        }
    }
    void *o = p->free;
    p->free = *(void **)o;
    memset(o, 0, p->size);
    return o;
#endif
}

void rt_pool_free(rt_pool_t *p, void *obj)
{
    if (!obj) return;
#ifdef RT_POOL_PASSTHROUGH
    RT_UNUSED(p);
    free(obj);
#else
    *(void **)obj = p->free;
    p->free = obj;
#endif
}

void rt_pool_destroy(rt_pool_t *p)
{
    while (p->slabs) {
        void *next = *(void **)p->slabs;
        free(p->slabs);
        p->slabs = next;
    }
    p->free = NULL;
}

bool rt_slice_case_eq(rt_slice_t a, const char *s) { return rt_slice_case_eq_slice(a, rt_slice_cstr(s)); }

bool rt_slice_case_eq_slice(rt_slice_t a, rt_slice_t b)
{
    size_t n = b.n;
    if (a.n != n) return false;
    for (size_t i = 0; i < n; i++) {
        char x = a.p[i], y = b.p[i];
        if (x >= 'A' && x <= 'Z') x += 32;
        if (y >= 'A' && y <= 'Z') y += 32;
        if (x != y) return false;
    }
    return true;
}

int rt_slice_to_u64(rt_slice_t s, uint64_t *out)
{
    if (s.n == 0 || s.n > 19) return RT_EPROTO;
    uint64_t v = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9') return RT_EPROTO;
        v = v * 10 + (uint64_t)(s.p[i] - '0');
    }
    *out = v;
    return RT_OK;
}

/* ---- buffers ---- */
void rt_buf_reserve(rt_buf_t *b, size_t extra)
{
    if (b->cap - b->len >= extra) return;
    size_t want = b->len + extra, cap = b->cap ? b->cap : 64;
    while (cap < want) cap *= 2;
    b->data = rt_realloc(b->data, cap);
    b->cap = cap;
}

void rt_buf_append(rt_buf_t *b, const void *p, size_t n)
{
    if (!n) return;
    rt_buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void rt_buf_printf(rt_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        rt_buf_append(b, tmp, (size_t)n);
        return;
    }
    rt_buf_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void rt_buf_append_u64(rt_buf_t *b, uint64_t v)
{
    char tmp[24];
    int i = 24;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    rt_buf_append(b, tmp + i, (size_t)(24 - i));
}

void rt_buf_consume(rt_buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void rt_buf_free(rt_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void rt_buf_append_json_string(rt_buf_t *b, rt_slice_t s)
{
    static const char hex[] = "0123456789abcdef";
    rt_buf_reserve(b, s.n + 2);
    rt_buf_putc(b, '"');
    for (size_t i = 0; i < s.n; i++) {
        unsigned char c = (unsigned char)s.p[i];
        switch (c) {
        case '"': rt_buf_append(b, "\\\"", 2); break;
        case '\\': rt_buf_append(b, "\\\\", 2); break;
        case '\n': rt_buf_append(b, "\\n", 2); break;
        case '\r': rt_buf_append(b, "\\r", 2); break;
        case '\t': rt_buf_append(b, "\\t", 2); break;
        case '\b': rt_buf_append(b, "\\b", 2); break;
        case '\f': rt_buf_append(b, "\\f", 2); break;
        default:
            if (c < 0x20) {
                char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                rt_buf_append(b, e, 6);
            } else {
                rt_buf_putc(b, (char)c);
            }
        }
    }
    rt_buf_putc(b, '"');
}

/* ---- chunks ---- */
rt_chunk_t *rt_chunk_new(size_t len)
{
    rt_chunk_t *c = rt_malloc(sizeof *c + len);
    c->refcnt = 1;
    c->len = (uint32_t)len;
    return c;
}

rt_chunk_t *rt_chunk_from(const void *p, size_t len)
{
    rt_chunk_t *c = rt_chunk_new(len);
    if (len) memcpy(c->data, p, len);
    return c;
}

rt_chunk_t *rt_chunk_from_buf(rt_buf_t *b) { return rt_chunk_from(b->data, b->len); }

/* ---- hash map ---- */
static inline uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

#define ROTL64(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1, v1 = ROTL64(v1, 13), v1 ^= v0, v0 = ROTL64(v0, 32);                              \
        v2 += v3, v3 = ROTL64(v3, 16), v3 ^= v2;                                                   \
        v0 += v3, v3 = ROTL64(v3, 21), v3 ^= v0;                                                   \
        v2 += v1, v1 = ROTL64(v1, 17), v1 ^= v2, v2 = ROTL64(v2, 32);                              \
    } while (0)

uint64_t rt_siphash(const void *data, size_t n, const uint8_t key[16])
{
    const uint8_t *p = data;
    uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
    size_t blocks = n & ~(size_t)7;
    for (size_t i = 0; i < blocks; i += 8) {
        uint64_t m;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        memcpy(&m, p + i, 8);
#else
        m = load_le64(p + i);
#endif
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)n << 56;
    for (size_t i = n & 7; i > 0; i--) b |= (uint64_t)p[blocks + i - 1] << (8 * (i - 1));
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t rt_hash(const void *p, size_t n)
{
    /* Drawn on first use; immutable afterwards (forked workers share it,
     * which is harmless: it never leaves the process). */
    static uint8_t key[16];
    static bool keyed;
    if (RT_UNLIKELY(!keyed)) {
        rt_random_bytes(key, sizeof key);
        keyed = true;
    }
    uint64_t h = rt_siphash(n ? p : "", n, key);
    return h < 2 ? h + 2 : h; /* 0 and 1 stay free for callers' markers */
}

void rt_map_init(rt_map_t *m) { memset(m, 0, sizeof *m); }

void rt_map_free(rt_map_t *m)
{
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* Slot hashes are 32 bits; 0 and 1 mark empty and deleted slots. */
static uint32_t slot_hash(rt_slice_t key)
{
    uint32_t h = (uint32_t)(rt_hash(key.p, key.n) >> 32);
    return h < 2 ? h + 2 : h;
}

static rt_map_entry_t *rt_map_find(const rt_map_t *m, rt_slice_t key, uint32_t h)
{
    if (!m->cap) return NULL;
    uint32_t mask = m->cap - 1;
    for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
        rt_map_entry_t *e = &m->slots[i];
        if (e->hash == 0) return NULL;
        /* key.n == 0 guard: an empty key may come with a NULL pointer. */
        if (e->hash == h && e->keylen == key.n && (key.n == 0 || memcmp(e->key, key.p, key.n) == 0))
            return e;
    }
}

void *rt_map_get(const rt_map_t *m, rt_slice_t key)
{
    rt_map_entry_t *e = rt_map_find(m, key, slot_hash(key));
    return e ? e->value : NULL;
}

static void rt_map_grow(rt_map_t *m)
{
    uint32_t ncap = m->cap ? m->cap : 8;
    while ((m->count + 1) * 4 >= ncap * 3) ncap *= 2; /* load <= 0.75 after insert */
    rt_map_entry_t *old = m->slots;
    uint32_t ocap = m->cap;
    m->slots = rt_calloc(ncap, sizeof *m->slots);
    m->cap = ncap;
    m->used = m->count;
    uint32_t mask = ncap - 1;
    for (uint32_t j = 0; j < ocap; j++) {
        if (old[j].hash < 2) continue;
        uint32_t i = (uint32_t)old[j].hash & mask;
        while (m->slots[i].hash) i = (i + 1) & mask;
        m->slots[i] = old[j];
    }
    free(old);
}

void rt_map_put(rt_map_t *m, rt_slice_t key, void *value)
{
    uint32_t h = slot_hash(key);
    rt_map_entry_t *e = rt_map_find(m, key, h);
    if (e) {
        e->key = key.p;
        e->value = value;
        return;
    }
    if ((m->used + 1) * 4 >= m->cap * 3) rt_map_grow(m);
    uint32_t mask = m->cap - 1, i = (uint32_t)h & mask;
    while (m->slots[i].hash >= 2) i = (i + 1) & mask;
    if (m->slots[i].hash == 0) m->used++;
    m->slots[i] = (rt_map_entry_t){h, (uint32_t)key.n, key.p, value};
    m->count++;
}

void *rt_map_del(rt_map_t *m, rt_slice_t key)
{
    rt_map_entry_t *e = rt_map_find(m, key, slot_hash(key));
    if (!e) return NULL;
    void *v = e->value;
    e->hash = 1;
    e->key = NULL;
    e->value = NULL;
    m->count--;
    if (m->count == 0) { /* cheap full reset keeps probe chains short */
        memset(m->slots, 0, m->cap * sizeof *m->slots);
        m->used = 0;
    }
    return v;
}

bool rt_map_next(const rt_map_t *m, uint32_t *iter, rt_slice_t *key, void **value)
{
    for (uint32_t i = *iter; i < m->cap; i++) {
        if (m->slots[i].hash >= 2) {
            if (key) *key = rt_slice(m->slots[i].key, m->slots[i].keylen);
            if (value) *value = m->slots[i].value;
            *iter = i + 1;
            return true;
        }
    }
    *iter = m->cap;
    return false;
}

/* ---- time ---- */
uint64_t rt_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}
uint64_t rt_now_ms(void) { return rt_now_ns() / 1000000ULL; }
uint64_t rt_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000ULL + (uint64_t)ts.tv_nsec / 1000000ULL;
}

/* ---- logging ---- */
int rt_log_level = RT_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "notice", "warning", "error", "silent"};

void rt_log_set_level(int level) { rt_log_level = level; }

static char log_tag[16];
void rt_log_set_tag(const char *tag) { snprintf(log_tag, sizeof log_tag, "%s%s", tag ? tag : "", tag ? "/" : ""); }

int rt_log_level_from_name(const char *name)
{
    for (int i = 0; i < (int)RT_ARRAY_LEN(level_names); i++)
        if (strcmp(name, level_names[i]) == 0) return i;
    if (strcmp(name, "warn") == 0) return RT_LOG_WARN;
    return -1;
}

static bool log_json;
void rt_log_set_json(bool on) { log_json = on; }

/* {"time":...,"level":...,"process":...,"module":...,"msg":...}: one object per line */
static size_t log_json_line(char *out, size_t cap, const char *time, int level, const char *module, const char *msg)
{
    size_t n = (size_t)snprintf(out, cap, "{\"time\":\"%s\",\"level\":\"%s\",", time, level_names[level]);
    if (log_tag[0]) n += (size_t)snprintf(out + n, cap - n, "\"process\":\"%.*s\",", (int)strlen(log_tag) - 1, log_tag);
    n += (size_t)snprintf(out + n, cap - n, "\"module\":\"%s\",\"msg\":\"", module);
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)msg; *p && n + 8 < cap; p++) {
        if (*p == '"' || *p == '\\') out[n++] = '\\', out[n++] = (char)*p;
        else if (*p < 0x20 || *p == 0x7f) {
            memcpy(out + n, "\\u00", 4);
            out[n + 4] = hex[*p >> 4], out[n + 5] = hex[*p & 15];
            n += 6;
        } else out[n++] = (char)*p;
    }
    memcpy(out + n, "\"}", 2);
    return n + 2;
}

void rt_log_write(int level, const char *module, const char *fmt, ...)
{
    char line[2048];
    uint64_t now = rt_wall_ms();
    time_t secs = (time_t)(now / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char time[80];
    snprintf(time, sizeof time, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(now % 1000));
    va_list ap;
    va_start(ap, fmt);
    if (log_json) {
        char msg[1536], js[sizeof line];
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        size_t len = log_json_line(js, sizeof js - 1, time, level, module, msg);
        js[len++] = '\n';
        ssize_t w = write(2, js, len);
        RT_UNUSED(w);
        return;
    }
    int n = snprintf(line, sizeof line, "%s %s %s%s: ", time, level_names[level], log_tag, module);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : RT_MIN((size_t)m, sizeof line - (size_t)n - 2));
    /* One event, one line: control bytes from client-supplied text (a
     * doctype with "\n") cannot forge lines of their own. */
    for (size_t i = (size_t)n; i < len; i++)
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f) line[i] = line[i] == '\t' ? '\t' : '?';
    line[len++] = '\n';
    ssize_t w = write(2, line, len);
    RT_UNUSED(w);
}

/* --log-file: fd 2 becomes the file (appending), so that every line of
 * every process, children included, goes there. Called again to reopen it
 * after a rotation. */
int rt_log_open_file(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open log file %s: %s", path, strerror(errno));
        return -1;
    }
    if (dup2(fd, 2) < 0) {
        snprintf(err, errlen, "cannot use log file %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

bool rt_ratelimit(rt_ratelimit_t *rl, unsigned interval_ms, uint32_t *suppressed)
{
    uint64_t now = rt_now_ms();
    if (!rl->started) {
        rl->started = true;
        rl->tokens = RT_RATELIMIT_BURST;
        rl->last_ms = now;
    } else if (now - rl->last_ms >= interval_ms) {
        uint64_t add = (now - rl->last_ms) / interval_ms;
        rl->tokens = (uint32_t)RT_MIN((uint64_t)RT_RATELIMIT_BURST, rl->tokens + add);
        rl->last_ms += add * interval_ms;
    }
    if (!rl->tokens) {
        rl->suppressed++;
        return false;
    }
    rl->tokens--;
    *suppressed = rl->suppressed;
    rl->suppressed = 0;
    return true;
}

void rt_panic(const char *file, int line, const char *what)
{
    fprintf(stderr, "realtimed: assertion failed at %s:%d: %s\n", file, line, what);
    abort();
}

/* ---- randomness and base64 ---- */
void rt_random_bytes(void *p, size_t n)
{
    char *c = p;
    while (n) {
        ssize_t r = getrandom(c, n, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            fprintf(stderr, "realtimed: getrandom failed\n");
            abort();
        }
        c += r;
        n -= (size_t)r;
    }
}

static uint8_t id_pool[15 * 64];
static size_t id_left;

void rt_random_after_fork(void)
{
    memset(id_pool, 0, sizeof id_pool);
    id_left = 0;
}

void rt_random_id(char out[21])
{
    if (id_left < 15) {
        rt_random_bytes(id_pool, sizeof id_pool);
        id_left = sizeof id_pool;
    }
    id_left -= 15;
    rt_base64url(out, id_pool + id_left, 15);
    memset(id_pool + id_left, 0, 15);
    out[20] = 0;
}

static size_t b64(char *out, const uint8_t *in, size_t n, const char *alpha, bool pad)
{
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = alpha[v >> 18];
        out[o++] = alpha[(v >> 12) & 63];
        out[o++] = alpha[(v >> 6) & 63];
        out[o++] = alpha[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = alpha[v >> 18];
        out[o++] = alpha[(v >> 12) & 63];
        if (i + 1 < n) out[o++] = alpha[(v >> 6) & 63];
        else if (pad) out[o++] = '=';
        if (pad) out[o++] = '=';
    }
    return o;
}

size_t rt_base64url(char *out, const uint8_t *in, size_t n)
{
    return b64(out, in, n, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", false);
}

size_t rt_base64_encode(char *out, const uint8_t *in, size_t n)
{
    return b64(out, in, n, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", true);
}

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

ssize_t rt_base64_decode(uint8_t *out, const char *in, size_t n)
{
    while (n && in[n - 1] == '=') n--;
    if (n % 4 == 1) return -1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64val(in[i]);
        if (v < 0) return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return (ssize_t)o;
}

/* ---- percent-encoding (the one decoder: query strings, cookies, paths,
 * Redis URLs) ---- */
int rt_url_decode(rt_slice_t in, bool plus_is_space, rt_buf_t *out)
{
    size_t start_len = out->len;
    rt_buf_reserve(out, in.n); /* decoding never grows the text */
    for (size_t i = 0; i < in.n; i++) {
        char c = in.p[i];
        if (c == '%') {
            int hi = in.n - i >= 3 ? rt_hexval(in.p[i + 1]) : -1;
            int lo = hi >= 0 ? rt_hexval(in.p[i + 2]) : -1;
            if (lo < 0) {
                out->len = start_len; /* leave out as it was */
                return RT_EPROTO;
            }
            out->data[out->len++] = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            out->data[out->len++] = ' ';
        } else {
            out->data[out->len++] = c;
        }
    }
    return RT_OK;
}

void rt_form_encode(rt_slice_t in, rt_buf_t *out)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < in.n; i++) {
        unsigned char c = (unsigned char)in.p[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '*' || c == '-' || c == '.' || c == '_') {
            rt_buf_putc(out, (char)c);
        } else if (c == ' ') {
            rt_buf_putc(out, '+');
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            rt_buf_append(out, e, 3);
        }
    }
}

/* ---- UTF-8 (RFC 3629: no overlongs, no surrogates, max U+10FFFF) ---- */
bool rt_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        if (*p < 0x80) {
            p++;
            continue;
        }
        size_t len = rt_utf8_seq(p, (size_t)(end - p));
        if (!len) return false;
        p += len;
    }
    return true;
}

/* ---- latency histograms ---- */
const uint32_t rt_hist_bounds_us[RT_HIST_BUCKETS] = {500,    1000,   2500,    5000,    10000,   25000,   50000,
                                                     100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};

void rt_hist_observe(rt_hist_t *h, uint64_t us)
{
    int i = 0;
    while (i < RT_HIST_BUCKETS && us > rt_hist_bounds_us[i]) i++;
    h->bucket[i]++;
    h->count++;
    h->sum_us += us;
}

bool rt_exe_dir(char *out, size_t n)
{
    if (n < 2) return false;
    ssize_t len = readlink("/proc/self/exe", out, n - 1);
    if (len <= 0) return false;
    out[len] = 0;
    char *slash = strrchr(out, '/');
    if (!slash) return false;
    *slash = 0;
    return true;
}
