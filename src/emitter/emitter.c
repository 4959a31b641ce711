/* emitter: the socket.io Redis emitter protocol (emitter.h). */
#include "emitter.h"
#include "msgpack.h"

#include <stdio.h>

#define EM_MAX_ROOMS 64

struct emitter {
    broker_t *b;
    sio_server_t *srv;
    char bpat[160], rpat[160];
    size_t rprefix; /* strlen("<key>-request#") */
    size_t max;
    rt_buf_t json;
    emitter_stats_t stats;
};

/* A JSON array (or one string) of room names, decoded into names and sliced. */
static int rooms_of(rt_slice_t v, rt_buf_t *names, rt_slice_t *out)
{
    size_t ends[EM_MAX_ROOMS], n = 0;
    if (!v.p || rt_json_peek(v) == RT_JSON_NULL) return 0;
    if (rt_json_peek(v) == RT_JSON_STRING) {
        if (rt_json_string_decode(v, names) < 0) return -1;
        ends[n++] = names->len;
    } else if (rt_json_peek(v) == RT_JSON_ARRAY) {
        rt_json_iter_t it;
        rt_slice_t e;
        rt_json_iter_init(&it, v);
        while (rt_json_array_next(&it, &e)) {
            if (n == EM_MAX_ROOMS || rt_json_peek(e) != RT_JSON_STRING || rt_json_string_decode(e, names) < 0) return -1;
            ends[n++] = names->len;
        }
    } else {
        return -1;
    }
    for (size_t i = 0; i < n; i++) out[i] = rt_slice(names->data + (i ? ends[i - 1] : 0), ends[i] - (i ? ends[i - 1] : 0));
    return (int)n;
}

static void invalid(emitter_t *e, const char *why)
{
    e->stats.invalid++;
    rt_warn_rl("emitter", "skipped a Redis emitter message: %s", why);
}

/* <key>#...: [uid, packet, opts] */
static void on_broadcast(rt_slice_t channel, rt_slice_t payload, void *ud)
{
    emitter_t *e = ud;
    RT_UNUSED(channel);
    if (payload.n > e->max) {
        invalid(e, "larger than max_payload");
        return;
    }
    rt_slice_t att[SIO_MAX_ATTACHMENTS];
    uint32_t natt = 0;
    e->json.len = 0;
    ssize_t r = mp_to_json(payload, &e->json, att, &natt, SIO_MAX_ATTACHMENTS, e->max * 2 + 1024);
    if (r < 0) {
        invalid(e, r == RT_ETOOBIG ? "too large or too many binary arguments" : "not MessagePack");
        return;
    }
    rt_slice_t msg = rt_slice(e->json.data, e->json.len), uid, packet, opts = RT_SLICE_NULL, v;
    rt_json_iter_t it;
    rt_json_iter_init(&it, msg);
    if (rt_json_peek(msg) != RT_JSON_ARRAY || !rt_json_array_next(&it, &uid) || !rt_json_array_next(&it, &packet) ||
        rt_json_peek(packet) != RT_JSON_OBJECT) {
        invalid(e, "not [uid, packet, opts]");
        return;
    }
    rt_json_array_next(&it, &opts);
    rt_slice_t data, nspv, type;
    if (!rt_json_object_get(packet, "data", &data) || rt_json_peek(data) != RT_JSON_ARRAY || data.n < 3 ||
        !rt_json_object_get(packet, "nsp", &nspv) || rt_json_peek(nspv) != RT_JSON_STRING ||
        (rt_json_object_get(packet, "type", &type) && !rt_slice_eq_cstr(type, "2") && !rt_slice_eq_cstr(type, "5"))) {
        invalid(e, "the packet is not an event");
        return;
    }
    rt_buf_t nsp = {0}, rn = {0}, xn = {0};
    rt_slice_t rooms[EM_MAX_ROOMS], except[EM_MAX_ROOMS];
    int nr = 0, nx = 0;
    if (opts.p && rt_json_peek(opts) == RT_JSON_OBJECT) {
        if (rt_json_object_get(opts, "rooms", &v)) nr = rooms_of(v, &rn, rooms);
        if (nr >= 0 && rt_json_object_get(opts, "except", &v)) nx = rooms_of(v, &xn, except);
    }
    if (nr < 0 || nx < 0 || rt_json_string_decode(nspv, &nsp) < 0) {
        invalid(e, "bad rooms, except or nsp");
    } else {
        sio_nsp_t *n = sio_server_find(e->srv, rt_slice(nsp.data ? nsp.data : "", nsp.len));
        rt_slice_t body = rt_json_trim(rt_slice(data.p + 1, data.n - 2));
        e->stats.broadcasts++;
        if (n && natt) sio_broadcast_binary(n, rooms, (size_t)nr, except, (size_t)nx, body, att, natt);
        else if (n) sio_broadcast_except(n, rooms, (size_t)nr, except, (size_t)nx, body);
    }
    rt_buf_free(&nsp);
    rt_buf_free(&rn);
    rt_buf_free(&xn);
}

typedef struct {
    sio_socket_t **v;
    size_t n, cap;
    rt_map_t seen;
} targets_t;

static void add_target(sio_socket_t *s, void *arg)
{
    targets_t *t = arg;
    rt_slice_t id = rt_slice_cstr(sio_socket_id(s));
    if (rt_map_get(&t->seen, id)) return;
    rt_map_put(&t->seen, id, s);
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->v = rt_realloc(t->v, t->cap * sizeof *t->v);
    }
    sio_socket_ref(s);
    t->v[t->n++] = s;
}

static void mark_except(sio_socket_t *s, void *arg)
{
    rt_map_t *x = arg;
    rt_map_put(x, rt_slice_cstr(sio_socket_id(s)), s);
}

/* <key>-request#<nsp>#: JSON */
static void on_request(rt_slice_t channel, rt_slice_t payload, void *ud)
{
    emitter_t *e = ud;
    rt_json_type_t jt;
    rt_slice_t type, opts = RT_SLICE_NULL, v;
    if (payload.n > e->max || !rt_json_valid(payload, &jt) || jt != RT_JSON_OBJECT ||
        !rt_json_object_get(payload, "type", &type) || channel.n < e->rprefix + 2 ||
        channel.p[channel.n - 1] != '#') {
        invalid(e, "a request that is not {type, ...} on <key>-request#<nsp>#");
        return;
    }
    bool join = rt_slice_eq_cstr(type, "2"), leave = rt_slice_eq_cstr(type, "3"), disc = rt_slice_eq_cstr(type, "4");
    if (!join && !leave && !disc) {
        e->stats.ignored++; /* fetchSockets, serverSideEmit, ...: a socket.io server's business */
        return;
    }
    rt_slice_t nspname = rt_slice(channel.p + e->rprefix, channel.n - e->rprefix - 1);
    sio_nsp_t *nsp = sio_server_find(e->srv, nspname);
    e->stats.requests++;
    if (!nsp) return;
    rt_buf_t rn = {0}, xn = {0}, an = {0};
    rt_slice_t rooms[EM_MAX_ROOMS], except[EM_MAX_ROOMS], act[EM_MAX_ROOMS];
    int nr = 0, nx = 0, na = 0;
    rt_json_object_get(payload, "opts", &opts);
    if (opts.p && rt_json_peek(opts) == RT_JSON_OBJECT) {
        if (rt_json_object_get(opts, "rooms", &v)) nr = rooms_of(v, &rn, rooms);
        if (nr >= 0 && rt_json_object_get(opts, "except", &v)) nx = rooms_of(v, &xn, except);
    }
    if (!disc && nr >= 0 && nx >= 0) na = rt_json_object_get(payload, "rooms", &v) ? rooms_of(v, &an, act) : -1;
    bool close = disc && rt_json_object_get(payload, "close", &v) && rt_slice_eq_cstr(v, "true");
    if (nr < 0 || nx < 0 || na < 0) {
        invalid(e, "a request with bad rooms");
        goto out;
    }
    targets_t t = {0};
    rt_map_init(&t.seen);
    rt_map_t x;
    rt_map_init(&x);
    for (int i = 0; i < nx; i++) sio_room_each(nsp, except[i], mark_except, &x);
    if (nr == 0) sio_nsp_each(nsp, add_target, &t);
    for (int i = 0; i < nr; i++) sio_room_each(nsp, rooms[i], add_target, &t);
    for (size_t i = 0; i < t.n; i++) {
        sio_socket_t *s = t.v[i];
        if (sio_socket_connected(s) && !rt_map_get(&x, rt_slice_cstr(sio_socket_id(s)))) {
            for (int k = 0; k < na && sio_socket_connected(s); k++) {
                if (join) sio_join(s, act[k]);
                else sio_leave(s, act[k]);
            }
            if (disc) {
                sio_client_t *c = sio_socket_client(s);
                if (close && c && sio_client_session(c)) eio_session_close(sio_client_session(c));
                else sio_socket_disconnect(s);
            }
        }
        sio_socket_unref(s);
    }
    free(t.v);
    rt_map_free(&t.seen);
    rt_map_free(&x);
out:
    rt_buf_free(&rn);
    rt_buf_free(&xn);
    rt_buf_free(&an);
}

emitter_t *emitter_new(broker_t *b, sio_server_t *srv, const char *key, size_t max)
{
    if (!key || !*key || strlen(key) > 100 || strpbrk(key, "*?[]\\")) return NULL;
    emitter_t *e = rt_calloc(1, sizeof *e);
    e->b = b;
    e->srv = srv;
    e->max = max;
    snprintf(e->bpat, sizeof e->bpat, "%s#*", key);
    snprintf(e->rpat, sizeof e->rpat, "%s-request#*", key);
    e->rprefix = strlen(key) + strlen("-request#");
    broker_psubscribe(b, e->bpat, on_broadcast, e);
    broker_psubscribe(b, e->rpat, on_request, e);
    rt_info("emitter", "the socket.io Redis emitter protocol on %s and %s", e->bpat, e->rpat);
    return e;
}

void emitter_free(emitter_t *e)
{
    if (!e) return;
    broker_unsubscribe(e->b, e->bpat);
    broker_unsubscribe(e->b, e->rpat);
    rt_buf_free(&e->json);
    free(e);
}

const emitter_stats_t *emitter_stats(const emitter_t *e) { return &e->stats; }
