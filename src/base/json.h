/* JSON scanner: validates and slices JSON text without building a DOM. Used on
 * the hot path to check a Socket.IO payload or a Redis envelope and to splice
 * values from the received bytes without re-encoding them. Included by base.h. */
#ifndef RT_JSON_H
#define RT_JSON_H

typedef enum {
    RT_JSON_INVALID = 0,
    RT_JSON_NULL,
    RT_JSON_FALSE,
    RT_JSON_TRUE,
    RT_JSON_NUMBER,
    RT_JSON_STRING,
    RT_JSON_ARRAY,
    RT_JSON_OBJECT,
} rt_json_type_t;

#define RT_JSON_MAX_DEPTH 128

/* Scans one JSON value starting at p (leading whitespace allowed). On success
 * returns its type and sets *end to the first byte after the value (trailing
 * whitespace not consumed); RT_JSON_INVALID on malformed input or nesting
 * deeper than RT_JSON_MAX_DEPTH. Strings must be valid UTF-8 with valid escapes. */
rt_json_type_t rt_json_scan(const char *p, size_t n, size_t *end);

/* True if s is exactly one JSON value, optionally surrounded by whitespace;
 * *type gets its type when not NULL. */
bool rt_json_valid(rt_slice_t s, rt_json_type_t *type);

/* Type of the value at the start of s (after whitespace), from its first byte
 * only (no validation). */
rt_json_type_t rt_json_peek(rt_slice_t s);

/* Strips leading and trailing JSON whitespace. */
rt_slice_t rt_json_trim(rt_slice_t s);

/* Array iteration over an already validated array slice:
 *   rt_json_iter_t it; rt_json_iter_init(&it, arr); rt_slice_t v;
 *   while (rt_json_array_next(&it, &v)) ...      v is one element, trimmed */
typedef struct {
    const char *p, *end;
    bool first;
} rt_json_iter_t;
void rt_json_iter_init(rt_json_iter_t *it, rt_slice_t container);
bool rt_json_array_next(rt_json_iter_t *it, rt_slice_t *value);
/* Object iteration: key is the raw quoted string token, value trimmed. */
bool rt_json_object_next(rt_json_iter_t *it, rt_slice_t *key, rt_slice_t *value);

/* Looks up a key in a validated object (compares the unescaped key to name).
 * Returns true and sets *value (raw, trimmed) when found; the last occurrence
 * wins, as in JavaScript's JSON.parse. */
bool rt_json_object_get(rt_slice_t obj, const char *name, rt_slice_t *value);

/* Decodes a validated JSON string token (with quotes) into out (appended,
 * UTF-8; \u escapes and surrogate pairs converted). Returns 0 or RT_EPROTO. */
int rt_json_string_decode(rt_slice_t token, rt_buf_t *out);

/* If the token is a string without escapes, returns its contents (no copy)
 * in *out and true; false otherwise. */
bool rt_json_string_raw(rt_slice_t token, rt_slice_t *out);

/* Compact re-serialisation: appends s with insignificant whitespace removed
 * (strings copied byte for byte). For Python's indented output. */
void rt_json_compact(rt_slice_t s, rt_buf_t *out);

#endif
