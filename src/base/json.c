/* JSON scanner (RFC 8259): validates and slices JSON text in place.
 * Validation is one forward pass with an explicit container stack, so nesting
 * costs no C stack and nothing is allocated. The iterators and the decoder work
 * on text that rt_json_scan already accepted: they skip values without
 * re-validating them, but never read outside the slice they are given, even
 * when handed garbage. */
#include "base.h"

typedef const unsigned char *uptr;

static inline bool json_is_ws(unsigned c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static inline uptr skip_ws(uptr p, uptr e)
{
    /* Every whitespace byte is <= ' ', so most tokens leave after one compare. */
    while (p < e && *p <= ' ' && json_is_ws(*p)) p++;
    return p;
}

static inline bool is_digit(unsigned c) { return c - '0' < 10u; }

/* Value of the 4 hex digits at p, or -1 (also when fewer than 4 bytes remain). */
static inline int hex4(uptr p, uptr e)
{
    if (e - p < 4) return -1;
    int a = rt_hexval(p[0]), b = rt_hexval(p[1]), c = rt_hexval(p[2]), d = rt_hexval(p[3]);
    if ((a | b | c | d) < 0) return -1;
    return a << 12 | b << 8 | c << 4 | d;
}

/* ---- strings ---- */

enum { S_PLAIN = 0, S_QUOTE, S_ESC, S_CTRL, S_UTF8 };
static const uint8_t str_class[256] = {
    [0x00 ... 0x1f] = S_CTRL,
    ['"'] = S_QUOTE,
    ['\\'] = S_ESC,
    [0x80 ... 0xff] = S_UTF8,
};

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Nonzero if one of the 8 bytes in v is < 0x20, '"', '\\' or >= 0x80. The
 * zero-byte trick is exact for "is there any" once bytes >= 0x80 are ruled out
 * (they set a high bit themselves), which is all the caller asks. */
static inline uint64_t str_special8(uint64_t v)
{
    uint64_t q = v ^ (ONES * '"'), b = v ^ (ONES * '\\');
    return ((v - ONES * 0x20) | (q - ONES) | (b - ONES) | v) & HIGHS;
}

static inline uint64_t load64(uptr p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Validates a string body; p is just past the opening quote. Returns the byte
 * after the closing quote or NULL. Lone surrogate escapes are accepted, as
 * JSON.parse does. */
static uptr scan_string(uptr p, uptr e)
{
    for (;;) {
        while (e - p >= 8 && !str_special8(load64(p))) p += 8;
        while (p < e && str_class[*p] == S_PLAIN) p++;
        if (p >= e) return NULL;
        switch (str_class[*p]) {
        case S_QUOTE: return p + 1;
        case S_ESC:
            if (e - p < 2) return NULL;
            switch (p[1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                p += 2;
                break;
            case 'u':
                if (hex4(p + 2, e) < 0) return NULL;
                p += 6;
                break;
            default: return NULL;
            }
            break;
        case S_UTF8: {
            size_t k = rt_utf8_seq(p, (size_t)(e - p));
            if (!k) return NULL;
            p += k;
            break;
        }
        default: return NULL; /* raw control character */
        }
    }
}

/* Finds the end of a string body in already validated text; p is just past
 * the opening quote. A quote ends the string unless an odd run of backslashes
 * precedes it. Returns the byte after the closing quote or NULL. */
static uptr skip_string(uptr p, uptr e)
{
    while (p < e) {
        uptr q = memchr(p, '"', (size_t)(e - p));
        if (!q) return NULL;
        uptr r = q;
        while (r > p && r[-1] == '\\') r--;
        if (((q - r) & 1) == 0) return q + 1;
        p = q + 1;
    }
    return NULL;
}

static size_t utf8_put(unsigned char *u, uint32_t cp)
{
    if (cp < 0x80) {
        u[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        u[0] = (unsigned char)(0xC0 | cp >> 6);
        u[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        u[0] = (unsigned char)(0xE0 | cp >> 12);
        u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    u[0] = (unsigned char)(0xF0 | cp >> 18);
    u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    u[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes the escape at *pp (**pp == '\\') into UTF-8 in u and advances *pp.
 * A surrogate pair becomes one code point; a lone surrogate becomes U+FFFD,
 * since it has no UTF-8 form. Returns the byte count (1..4) or -1. */
static int decode_escape(uptr *pp, uptr e, unsigned char u[4])
{
    uptr p = *pp;
    if (e - p < 2) return -1;
    unsigned cp;
    switch (p[1]) {
    case '"': cp = '"'; break;
    case '\\': cp = '\\'; break;
    case '/': cp = '/'; break;
    case 'b': cp = '\b'; break;
    case 'f': cp = '\f'; break;
    case 'n': cp = '\n'; break;
    case 'r': cp = '\r'; break;
    case 't': cp = '\t'; break;
    case 'u': {
        int hi = hex4(p + 2, e);
        if (hi < 0) return -1;
        p += 6;
        cp = (unsigned)hi;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            int lo = (e - p >= 6 && p[0] == '\\' && p[1] == 'u') ? hex4(p + 2, e) : -1;
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + ((unsigned)lo - 0xDC00);
                p += 6;
            } else {
                cp = 0xFFFD; /* lo, if any, is decoded on its own next */
            }
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            cp = 0xFFFD;
        }
        *pp = p;
        return (int)utf8_put(u, cp);
    }
    default: return -1;
    }
    *pp = p + 2;
    u[0] = (unsigned char)cp;
    return 1;
}

/* ---- numbers and literals ---- */

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?  Returns the byte after it or NULL. */
static uptr scan_number(uptr p, uptr e)
{
    if (*p == '-' && ++p == e) return NULL;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        p++;
        while (p < e && is_digit(*p)) p++;
    } else {
        return NULL;
    }
    if (p < e && *p == '.') {
        p++;
        if (p == e || !is_digit(*p)) return NULL;
        while (p < e && is_digit(*p)) p++;
    }
    if (p < e && (*p | 0x20) == 'e') {
        p++;
        if (p < e && (*p == '+' || *p == '-')) p++;
        if (p == e || !is_digit(*p)) return NULL;
        while (p < e && is_digit(*p)) p++;
    }
    return p;
}

static inline uptr scan_literal(uptr p, uptr e, const char *lit, size_t n)
{
    return (size_t)(e - p) >= n && memcmp(p, lit, n) == 0 ? p + n : NULL;
}

/* ---- validation ---- */

rt_json_type_t rt_json_scan(const char *s, size_t n, size_t *end)
{
    if (n == 0) return RT_JSON_INVALID;
    uptr b = (uptr)s, p = b, e = b + n;
    unsigned char stack[RT_JSON_MAX_DEPTH]; /* '{' or '[' per open container */
    int depth = 0;
    rt_json_type_t t;

value:
    p = skip_ws(p, e);
    if (p == e) return RT_JSON_INVALID;
    switch (*p) {
    case '"':
        p = scan_string(p + 1, e);
        t = RT_JSON_STRING;
        break;
    case '{':
        if (depth == RT_JSON_MAX_DEPTH) return RT_JSON_INVALID;
        stack[depth++] = '{';
        p = skip_ws(p + 1, e);
        if (p < e && *p == '}') {
            p++;
            depth--;
            t = RT_JSON_OBJECT;
            goto after;
        }
        goto key;
    case '[':
        if (depth == RT_JSON_MAX_DEPTH) return RT_JSON_INVALID;
        stack[depth++] = '[';
        p = skip_ws(p + 1, e);
        if (p < e && *p == ']') {
            p++;
            depth--;
            t = RT_JSON_ARRAY;
            goto after;
        }
        goto value;
    case 't':
        p = scan_literal(p, e, "true", 4);
        t = RT_JSON_TRUE;
        break;
    case 'f':
        p = scan_literal(p, e, "false", 5);
        t = RT_JSON_FALSE;
        break;
    case 'n':
        p = scan_literal(p, e, "null", 4);
        t = RT_JSON_NULL;
        break;
    case '-': case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7':
    case '8': case '9':
        p = scan_number(p, e);
        t = RT_JSON_NUMBER;
        break;
    default: return RT_JSON_INVALID;
    }
    if (!p) return RT_JSON_INVALID;

after: /* a value of type t ends at p */
    if (depth == 0) {
        if (end) *end = (size_t)(p - b);
        return t;
    }
    p = skip_ws(p, e);
    if (p == e) return RT_JSON_INVALID;
    if (*p == ',') {
        p++;
        if (stack[depth - 1] == '[') goto value;
        goto key;
    }
    if (*p != (stack[depth - 1] == '{' ? '}' : ']')) return RT_JSON_INVALID;
    p++;
    t = stack[--depth] == '{' ? RT_JSON_OBJECT : RT_JSON_ARRAY;
    goto after;

key:
    p = skip_ws(p, e);
    if (p == e || *p != '"') return RT_JSON_INVALID;
    p = scan_string(p + 1, e);
    if (!p) return RT_JSON_INVALID;
    p = skip_ws(p, e);
    if (p == e || *p != ':') return RT_JSON_INVALID;
    p++;
    goto value;
}

bool rt_json_valid(rt_slice_t s, rt_json_type_t *type)
{
    size_t end = 0;
    rt_json_type_t t = rt_json_scan(s.p, s.n, &end);
    if (t != RT_JSON_INVALID) {
        uptr p = skip_ws((uptr)s.p + end, (uptr)s.p + s.n);
        if (p != (uptr)s.p + s.n) t = RT_JSON_INVALID;
    }
    if (type) *type = t;
    return t != RT_JSON_INVALID;
}

rt_slice_t rt_json_trim(rt_slice_t s)
{
    if (s.n == 0) return s;
    uptr p = (uptr)s.p, e = p + s.n;
    p = skip_ws(p, e);
    while (e > p && json_is_ws(e[-1])) e--;
    return rt_slice((const char *)p, (size_t)(e - p));
}

rt_json_type_t rt_json_peek(rt_slice_t s)
{
    s = rt_json_trim(s);
    if (s.n == 0) return RT_JSON_INVALID;
    switch (s.p[0]) {
    case '{': return RT_JSON_OBJECT;
    case '[': return RT_JSON_ARRAY;
    case '"': return RT_JSON_STRING;
    case 't': return RT_JSON_TRUE;
    case 'f': return RT_JSON_FALSE;
    case 'n': return RT_JSON_NULL;
    case '-': return RT_JSON_NUMBER;
    default: return is_digit((unsigned char)s.p[0]) ? RT_JSON_NUMBER : RT_JSON_INVALID;
    }
}

/* ---- iteration over validated text ---- */

static inline bool is_delim(unsigned c)
{
    return c == ',' || c == ']' || c == '}' || c == ':' || json_is_ws(c);
}

/* Skips one value in validated text without checking it again; bounded by e.
 * Returns the byte after the value, or NULL if the text ends first. */
static uptr skip_value(uptr p, uptr e)
{
    if (p >= e) return NULL;
    if (*p == '"') return skip_string(p + 1, e);
    if (*p == '{' || *p == '[') {
        size_t depth = 0;
        while (p < e) {
            unsigned c = *p++;
            if (c == '"') {
                p = skip_string(p, e);
                if (!p) return NULL;
            } else if (c == '{' || c == '[') {
                depth++;
            } else if (c == '}' || c == ']') {
                if (--depth == 0) return p;
            }
        }
        return NULL;
    }
    uptr q = p;
    while (q < e && !is_delim(*q)) q++;
    return q == p ? NULL : q;
}

void rt_json_iter_init(rt_json_iter_t *it, rt_slice_t container)
{
    container = rt_json_trim(container);
    it->first = true;
    if (container.n < 2 || (container.p[0] != '[' && container.p[0] != '{')) {
        it->p = it->end = container.p; /* nothing to iterate */
        return;
    }
    it->p = container.p + 1;
    it->end = container.p + container.n - 1; /* the closing bracket */
}

/* Steps past the separator before the next member; NULL at the end. */
static uptr iter_begin(rt_json_iter_t *it)
{
    uptr p = (uptr)it->p, e = (uptr)it->end;
    p = skip_ws(p, e);
    if (p >= e) return NULL;
    if (!it->first) {
        if (*p != ',') return NULL;
        p = skip_ws(p + 1, e);
    }
    return p;
}

bool rt_json_array_next(rt_json_iter_t *it, rt_slice_t *value)
{
    uptr p = iter_begin(it), q = p ? skip_value(p, (uptr)it->end) : NULL;
    if (!q) {
        it->p = it->end;
        return false;
    }
    *value = rt_slice((const char *)p, (size_t)(q - p));
    it->p = (const char *)q;
    it->first = false;
    return true;
}

bool rt_json_object_next(rt_json_iter_t *it, rt_slice_t *key, rt_slice_t *value)
{
    uptr e = (uptr)it->end, k = iter_begin(it), ke = NULL, v = NULL, ve = NULL;
    if (k && *k == '"') ke = skip_string(k + 1, e);
    if (ke) {
        v = skip_ws(ke, e);
        if (v < e && *v == ':') {
            v = skip_ws(v + 1, e);
            ve = skip_value(v, e);
        }
    }
    if (!ve) {
        it->p = it->end;
        return false;
    }
    *key = rt_slice((const char *)k, (size_t)(ke - k));
    *value = rt_slice((const char *)v, (size_t)(ve - v));
    it->p = (const char *)ve;
    it->first = false;
    return true;
}

/* True if the unescaped contents of the string token tok equal name[0..n). */
static bool key_eq(rt_slice_t tok, const char *name, size_t n)
{
    uptr p = (uptr)tok.p + 1, e = (uptr)tok.p + tok.n - 1;
    const unsigned char *nm = (const unsigned char *)name, *ne = nm + n;
    if (!memchr(p, '\\', (size_t)(e - p)))
        return (size_t)(e - p) == n && memcmp(p, name, n) == 0;
    while (p < e) {
        if (*p != '\\') {
            if (nm == ne || *nm++ != *p++) return false;
            continue;
        }
        unsigned char u[4];
        int k = decode_escape(&p, e, u);
        if (k < 0 || ne - nm < k || memcmp(nm, u, (size_t)k) != 0) return false;
        nm += k;
    }
    return nm == ne;
}

bool rt_json_object_get(rt_slice_t obj, const char *name, rt_slice_t *value)
{
    size_t n = strlen(name);
    bool found = false;
    rt_json_iter_t it;
    rt_slice_t k, v;
    rt_json_iter_init(&it, obj);
    if (it.p == it.end || *(it.p - 1) != '{') return false;
    while (rt_json_object_next(&it, &k, &v)) {
        if (key_eq(k, name, n)) {
            *value = v; /* keep going: the last duplicate wins */
            found = true;
        }
    }
    return found;
}

/* ---- strings out ---- */

int rt_json_string_decode(rt_slice_t token, rt_buf_t *out)
{
    if (token.n < 2 || token.p[0] != '"' || token.p[token.n - 1] != '"') return RT_EPROTO;
    uptr p = (uptr)token.p + 1, e = (uptr)token.p + token.n - 1;
    size_t start = out->len;
    /* Every escape decodes to no more bytes than it takes, so this is enough. */
    rt_buf_reserve(out, (size_t)(e - p));
    while (p < e) {
        uptr q = memchr(p, '\\', (size_t)(e - p));
        if (!q) q = e;
        rt_buf_append(out, p, (size_t)(q - p));
        p = q;
        if (p == e) break;
        unsigned char u[4];
        int k = decode_escape(&p, e, u);
        if (k < 0) {
            out->len = start;
            return RT_EPROTO;
        }
        rt_buf_append(out, u, (size_t)k);
    }
    return RT_OK;
}

bool rt_json_string_raw(rt_slice_t token, rt_slice_t *out)
{
    if (token.n < 2 || token.p[0] != '"' || token.p[token.n - 1] != '"') return false;
    if (memchr(token.p + 1, '\\', token.n - 2)) return false;
    *out = rt_slice(token.p + 1, token.n - 2);
    return true;
}

void rt_json_compact(rt_slice_t s, rt_buf_t *out)
{
    if (s.n == 0) return;
    uptr p = (uptr)s.p, e = p + s.n, run = p;
    rt_buf_reserve(out, s.n);
    while (p < e) {
        unsigned c = *p;
        if (c == '"') {
            uptr q = skip_string(p + 1, e);
            p = q ? q : e;
        } else if (json_is_ws(c)) {
            rt_buf_append(out, run, (size_t)(p - run));
            p = skip_ws(p + 1, e);
            run = p;
        } else {
            p++;
        }
    }
    rt_buf_append(out, run, (size_t)(p - run));
}
