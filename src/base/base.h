/* base: allocation policy, slices, byte buffers, refcounted chunks, intrusive
 * lists, a string-keyed hash map, monotonic time, logging and the error enum.
 * Depends on libc only. Every other module includes this header. */
#ifndef RT_BASE_H
#define RT_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#define RT_UNUSED(x) ((void)(x))
#define RT_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define RT_MIN(a, b) ((a) < (b) ? (a) : (b))
#define RT_MAX(a, b) ((a) > (b) ? (a) : (b))
#define rt_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define RT_LIKELY(x) __builtin_expect(!!(x), 1)
#define RT_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* ---- errors: 0 or a negative code from this enum ---- */
enum {
    RT_OK = 0,
    RT_EAGAIN = -1,    /* need more input */
    RT_EPROTO = -2,    /* malformed input */
    RT_ETOOBIG = -3,   /* a size limit was hit */
    RT_ENOTFOUND = -4, /* unknown id / name */
    RT_ESTATE = -5,    /* operation invalid in this state */
    RT_EIO = -6,       /* system call failed (errno kept) */
    RT_EUTF8 = -7,     /* invalid UTF-8 */
};
const char *rt_strerror(int err);

/* ---- allocation: abort on OOM; rt_try_malloc for client-sized blocks ---- */
void *rt_malloc(size_t n);
void *rt_calloc(size_t nmemb, size_t size);
void *rt_realloc(void *p, size_t n);
char *rt_strndup(const char *s, size_t n);
void *rt_try_malloc(size_t n);
#define rt_free(p) free(p)

/* ---- fixed-size object pools ----
 * Per-connection structs (connection, WebSocket, session, socket, room
 * membership) come from pools: no malloc header and no size-class rounding
 * per object, which is most of the difference between ~1.1 KiB and < 1 KiB
 * per idle connection. Objects are carved from 64-object slabs and recycled
 * through a free list; slabs are kept for reuse. Under AddressSanitizer the
 * pool is plain calloc/free so use-after-free stays detectable. One pool is
 * used from one thread (the loop's). */
typedef struct {
    size_t size; /* object size, rounded up to 8 */
    void *free;  /* free list through the objects' first word */
    void *slabs; /* slab list through each slab's first word */
} rt_pool_t;
#define RT_POOL_INIT(type) {((sizeof(type) + 7) & ~(size_t)7), NULL, NULL}
void *rt_pool_alloc(rt_pool_t *p); /* zeroed */
void rt_pool_free(rt_pool_t *p, void *obj);
/* Frees every slab (all objects must be dead); for owners that go away. */
void rt_pool_destroy(rt_pool_t *p);

/* ---- slices: non-owning (ptr, len) views ---- */
typedef struct {
    const char *p;
    size_t n;
} rt_slice_t;
#define RT_SLICE(lit) ((rt_slice_t){(lit), sizeof(lit) - 1})
#define RT_SLICE_NULL ((rt_slice_t){NULL, 0})
static inline rt_slice_t rt_slice(const char *p, size_t n) { return (rt_slice_t){p, n}; }
static inline rt_slice_t rt_slice_cstr(const char *s) { return (rt_slice_t){s, s ? strlen(s) : 0}; }
/* Without leading and trailing spaces and tabs. */
static inline rt_slice_t rt_slice_trim(rt_slice_t s)
{
    while (s.n && (s.p[0] == ' ' || s.p[0] == '\t')) s.p++, s.n--;
    while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t')) s.n--;
    return s;
}
static inline bool rt_slice_eq(rt_slice_t a, rt_slice_t b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}
static inline bool rt_slice_eq_cstr(rt_slice_t a, const char *s) { return rt_slice_eq(a, rt_slice_cstr(s)); }
bool rt_slice_case_eq(rt_slice_t a, const char *s); /* ASCII case-insensitive */
bool rt_slice_case_eq_slice(rt_slice_t a, rt_slice_t b);
/* Parses a non-negative decimal integer that must fill the whole slice. */
int rt_slice_to_u64(rt_slice_t s, uint64_t *out);

/* ---- growable byte buffer ----
 *   data                 data+len          data+cap
 *   |<------ bytes ------>|<---- free ---->|
 */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
} rt_buf_t;
void rt_buf_reserve(rt_buf_t *b, size_t extra); /* cap >= len + extra */
void rt_buf_append(rt_buf_t *b, const void *p, size_t n);
static inline void rt_buf_append_slice(rt_buf_t *b, rt_slice_t s) { rt_buf_append(b, s.p, s.n); }
static inline void rt_buf_append_cstr(rt_buf_t *b, const char *s) { rt_buf_append(b, s, strlen(s)); }
static inline void rt_buf_putc(rt_buf_t *b, char c)
{
    if (b->len == b->cap) rt_buf_reserve(b, 1);
    b->data[b->len++] = c;
}
void rt_buf_printf(rt_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rt_buf_append_u64(rt_buf_t *b, uint64_t v);
void rt_buf_consume(rt_buf_t *b, size_t n); /* drop n bytes from the front */
void rt_buf_free(rt_buf_t *b);
/* Appends s as a JSON string literal (quotes and escapes included). */
void rt_buf_append_json_string(rt_buf_t *b, rt_slice_t s);

/* ---- refcounted immutable chunk: one allocation, shared by every queue that
 * holds it (a broadcast frame is one chunk referenced by N out-queues). ---- */
typedef struct rt_chunk {
    uint32_t refcnt;
    uint32_t len;
    char data[];
} rt_chunk_t;
rt_chunk_t *rt_chunk_new(size_t len);                       /* refcnt 1, uninitialised data */
rt_chunk_t *rt_chunk_from(const void *p, size_t len);       /* refcnt 1, copy of p */
rt_chunk_t *rt_chunk_from_buf(rt_buf_t *b);                 /* copies b->data */
static inline rt_chunk_t *rt_chunk_ref(rt_chunk_t *c)
{
    c->refcnt++;
    return c;
}
static inline void rt_chunk_unref(rt_chunk_t *c)
{
    if (c && --c->refcnt == 0) free(c);
}

/* ---- intrusive doubly linked list (circular, with a head node) ---- */
typedef struct rt_list {
    struct rt_list *prev, *next;
} rt_list_t;
static inline void rt_list_init(rt_list_t *h) { h->prev = h->next = h; }
static inline bool rt_list_empty(const rt_list_t *h) { return h->next == h; }
static inline bool rt_list_linked(const rt_list_t *n) { return n->next != NULL && n->next != n; }
static inline void rt_list_insert_tail(rt_list_t *h, rt_list_t *n)
{
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}
static inline void rt_list_remove(rt_list_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}
#define rt_list_foreach_safe(it, tmp, head)                                                        \
    for ((it) = (head)->next, (tmp) = (it)->next; (it) != (head); (it) = (tmp), (tmp) = (it)->next)

/* ---- string-keyed hash map (open addressing, keys are byte strings owned
 * by the caller's value, e.g. the room name stored in the room struct) ---- */
typedef struct {
    uint32_t hash; /* 0 = empty, 1 = tombstone; 24 bytes a slot */
    uint32_t keylen;
    const char *key;
    void *value;
} rt_map_entry_t;
typedef struct {
    rt_map_entry_t *slots;
    uint32_t cap; /* power of two or 0 */
    uint32_t count;
    uint32_t used; /* count + tombstones */
} rt_map_t;
void rt_map_init(rt_map_t *m);
void rt_map_free(rt_map_t *m);
void *rt_map_get(const rt_map_t *m, rt_slice_t key);
/* Inserts or replaces; the key bytes must stay valid while present. */
void rt_map_put(rt_map_t *m, rt_slice_t key, void *value);
void *rt_map_del(rt_map_t *m, rt_slice_t key); /* returns the removed value or NULL */
/* Iteration: for (uint32_t i = 0; rt_map_next(m, &i, &k, &v);) visits each
 * entry present for the whole loop exactly once, in no particular order.
 * While iterating, the entry just returned may be deleted (rt_map_del never
 * moves other entries nor shrinks the table), so draining a map is one
 * linear pass. Inserting while iterating is not allowed (it may grow the
 * table): collect first, insert after. */
bool rt_map_next(const rt_map_t *m, uint32_t *iter, rt_slice_t *key, void **value);
/* The map's hash: SipHash-2-4 with a random key drawn once per process, so
 * a client choosing keys (room names, task ids) cannot aim them at one
 * probe chain (hash flooding). */
uint64_t rt_hash(const void *p, size_t n);
/* SipHash-2-4 of p with a 16-byte key (pure; rt_hash uses it). */
uint64_t rt_siphash(const void *p, size_t n, const uint8_t key[16]);

/* The folder of the running binary (/proc/self/exe without its name), for
 * files installed beside it; false if unknown. */
bool rt_exe_dir(char *out, size_t n);

/* ---- time ---- */
uint64_t rt_now_ms(void);   /* CLOCK_MONOTONIC in milliseconds */
uint64_t rt_now_ns(void);   /* CLOCK_MONOTONIC in nanoseconds */
uint64_t rt_wall_ms(void);  /* CLOCK_REALTIME in milliseconds */

/* ---- latency histograms (rendered as Prometheus histograms in seconds) ----
 * Fixed buckets, one increment per observation: bounds in microseconds. */
#define RT_HIST_BUCKETS 14
extern const uint32_t rt_hist_bounds_us[RT_HIST_BUCKETS]; /* 500 µs ... 10 s; then +Inf */
typedef struct {
    uint64_t count, sum_us;
    uint64_t bucket[RT_HIST_BUCKETS + 1]; /* not cumulative; the last is +Inf */
} rt_hist_t;
void rt_hist_observe(rt_hist_t *h, uint64_t us);

/* ---- logging: `time level module: message`, level checked before formatting ---- */
enum { RT_LOG_DEBUG = 0, RT_LOG_INFO, RT_LOG_NOTICE, RT_LOG_WARN, RT_LOG_ERROR, RT_LOG_SILENT };
extern int rt_log_level;
void rt_log_set_level(int level);
/* A tag written before the module ("w1" in worker 1 of --workers), or NULL. */
void rt_log_set_tag(const char *tag);
void rt_log_set_json(bool on); /* one JSON object per line instead of text */
/* Points fd 2 at path (append, created 0640); again to reopen after rotation. */
int rt_log_open_file(const char *path, char *err, size_t errlen);
int rt_log_level_from_name(const char *name); /* -1 if unknown */
void rt_log_write(int level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define rt_log(level, module, ...)                                                                 \
    do {                                                                                           \
        if ((level) >= rt_log_level) rt_log_write((level), (module), __VA_ARGS__);                 \
    } while (0)
#define rt_debug(mod, ...) rt_log(RT_LOG_DEBUG, mod, __VA_ARGS__)
#define rt_info(mod, ...) rt_log(RT_LOG_INFO, mod, __VA_ARGS__)
#define rt_notice(mod, ...) rt_log(RT_LOG_NOTICE, mod, __VA_ARGS__)
#define rt_warn(mod, ...) rt_log(RT_LOG_WARN, mod, __VA_ARGS__)
#define rt_error(mod, ...) rt_log(RT_LOG_ERROR, mod, __VA_ARGS__)
/* Rate-limited logging for lines a client can trigger at will (refused
 * joins, bad packets, slow consumers): per call site a burst of
 * RT_RATELIMIT_BURST lines, then one per second; the next line that passes
 * says how many were suppressed. The limiter state is per call site and per
 * process, like the log level. */
#define RT_RATELIMIT_BURST 10
typedef struct {
    uint64_t last_ms;   /* when tokens were last added */
    uint32_t tokens;
    uint32_t suppressed;
    bool started;
} rt_ratelimit_t;
/* True if a line may go out now; *suppressed gets the count held back. */
bool rt_ratelimit(rt_ratelimit_t *rl, unsigned interval_ms, uint32_t *suppressed);
#define rt_log_rl(level, module, fmt, ...)                                                         \
    do {                                                                                           \
        static rt_ratelimit_t rl_;                                                                 \
        uint32_t sup_;                                                                             \
        if ((level) >= rt_log_level && rt_ratelimit(&rl_, 1000, &sup_)) {                         \
            if (sup_)                                                                              \
                rt_log_write((level), (module), fmt " (and %u more like it)", ##__VA_ARGS__, sup_); \
            else                                                                                   \
                rt_log_write((level), (module), fmt, ##__VA_ARGS__);                               \
        }                                                                                          \
    } while (0)
#define rt_warn_rl(mod, ...) rt_log_rl(RT_LOG_WARN, mod, __VA_ARGS__)
#define rt_info_rl(mod, ...) rt_log_rl(RT_LOG_INFO, mod, __VA_ARGS__)
#define rt_assert(cond)                                                                            \
    do {                                                                                           \
        if (RT_UNLIKELY(!(cond))) rt_panic(__FILE__, __LINE__, #cond);                            \
    } while (0)
void rt_panic(const char *file, int line, const char *what) __attribute__((noreturn));

/* ---- randomness (getrandom(2)); aborts if the kernel cannot supply it ---- */
void rt_random_bytes(void *p, size_t n);
/* A 20-character URL-safe id from 15 random bytes (Engine.IO sids, Socket.IO
 * socket ids: bearer tokens). Drawn from a pool refilled 64 ids at a time;
 * used bytes are wiped. Single-threaded, like the loop. */
void rt_random_id(char out[21]);
/* Drops the pool: a forked child must not hand out its parent's ids. */
void rt_random_after_fork(void);
/* Writes ceil(4n/3) chars of URL-safe base64, never padded; returns the count. */
size_t rt_base64url(char *out, const uint8_t *in, size_t n);
/* Standard base64 with padding; out needs 4*ceil(n/3) bytes. Returns length. */
size_t rt_base64_encode(char *out, const uint8_t *in, size_t n);
/* Decodes standard base64 (padding optional); returns decoded length or -1. out needs 3*n/4+3. */
ssize_t rt_base64_decode(uint8_t *out, const char *in, size_t n);

/* ---- hex and percent-encoding ---- */
/* Value of a hex digit, or -1. */
static inline int rt_hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}
/* Percent-decodes (and '+' -> ' ' when plus_is_space) into out (appended).
 * Returns 0, or RT_EPROTO on a bad escape with out left as it was. */
int rt_url_decode(rt_slice_t in, bool plus_is_space, rt_buf_t *out);
/* Appends in, form-encoded like URLSearchParams (space -> '+', unreserved
 * *-._ and alphanumerics kept, everything else %XX uppercase). */
void rt_form_encode(rt_slice_t in, rt_buf_t *out);

/* ---- UTF-8 ---- */
bool rt_utf8_valid(const char *p, size_t n);
/* Length of the valid multibyte sequence at p[0] (>= 0x80) within left
 * bytes, or 0 if it is malformed, overlong, a surrogate, above U+10FFFF or
 * truncated. rt_utf8_valid and the JSON scanner share it. */
static inline size_t rt_utf8_seq(const unsigned char *p, size_t left)
{
    unsigned c = p[0];
    if (c >= 0xC2 && c <= 0xDF) return left >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (left < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && p[1] < 0xA0) return 0;  /* overlong */
        if (c == 0xED && p[1] >= 0xA0) return 0; /* U+D800..U+DFFF */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (left < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
        if (c == 0xF0 && p[1] < 0x90) return 0;  /* overlong */
        if (c == 0xF4 && p[1] >= 0x90) return 0; /* above U+10FFFF */
        return 4;
    }
    return 0;
}


#include "json.h"

#endif
