/* emitter: MessagePack to JSON (pure), for what @socket.io/redis-emitter
 * and socket.io's Redis adapter publish (notepack.io's encoding). */
#ifndef RT_MSGPACK_H
#define RT_MSGPACK_H
#include "base/base.h"

#define MP_MAX_DEPTH 32

/* Converts one MessagePack value at the start of in into JSON text appended
 * to out, the way socket.io's JSON encoding would write the decoded value:
 * binary (bin) becomes {"_placeholder":true,"num":N} with its bytes in
 * att[N] (slices of in; at most maxatt), notepack's undefined (fixext 1 of
 * type 0) is null in an array and omitted from a map, its Date (fixext 8 of
 * type 0, ms as a double) an ISO 8601 string, NaN and infinities null,
 * other extensions null. Map keys must be strings or integers (written as
 * strings). Strings must be UTF-8. Returns the bytes of in consumed (> 0),
 * or RT_EPROTO (malformed, truncated, deeper than MP_MAX_DEPTH, a bad key
 * or string) or RT_ETOOBIG (more than maxatt binaries, or out would exceed
 * max_out bytes); out may then hold a partial value. */
ssize_t mp_to_json(rt_slice_t in, rt_buf_t *out, rt_slice_t *att, uint32_t *natt, uint32_t maxatt, size_t max_out);

#endif
