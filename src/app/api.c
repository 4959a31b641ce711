/* The HTTP API of the standalone mode (docs/standalone.md): a backend
 * publishes to rooms and manages sockets with an API key.
 *
 *   POST /api/publish     {"namespace","room"|"rooms","except","event","data"|"args"}
 *   POST /api/join|leave  {"namespace","user"|"sid","room"}
 *   POST /api/disconnect  {"namespace","user"|"sid"}
 *   GET  /api/room?namespace=/&room=r  -> {"sockets":N,"users":[...]}
 *
 * Keys: one per line of --api-key-file, sent as "Authorization: apikey <k>"
 * or "X-API-Key: <k>"; compared as SHA-256 digests in constant time, every
 * key every time. No key file: the API does not exist (404). */
#include "app.h"
#include "broker/broker.h"

#include <hiredis/hiredis.h>

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <strings.h>

#define API_MAX_ROOMS 64

app_api_t *app_api_current; /* the process's API, for Redis replies that outlive a request */

struct app_api {
    app_t *app;
    sio_server_t *sio;
    broker_t *broker;     /* cluster-wide: actions go through Redis to every node, this one too */
    char channel[64];
    char reply_channel[64]; /* answers to this node's room queries */
    uint64_t next_query;
    rt_list_t queries;      /* room queries waiting for the nodes' answers */
    api_user_fn user_of;
    void *ud;
    uint8_t (*keys)[SHA256_DIGEST_LENGTH];
    size_t nkeys;
    uint64_t requests, refused;
};

int app_api_load_keys(const char *path, uint8_t (**out)[SHA256_DIGEST_LENGTH], size_t *n, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "api_key_file %s: %s", path, strerror(errno));
        return -1;
    }
    char line[4096];
    *out = NULL, *n = 0;
    while (fgets(line, sizeof line, f)) {
        size_t l = strcspn(line, "\r\n");
        char *a = line;
        while (l && (*a == ' ' || *a == '\t')) a++, l--;
        while (l && (a[l - 1] == ' ' || a[l - 1] == '\t')) l--;
        if (!l || a[0] == '#') continue;
        *out = rt_realloc(*out, (*n + 1) * sizeof **out);
        SHA256((const uint8_t *)a, l, (*out)[(*n)++]);
    }
    OPENSSL_cleanse(line, sizeof line);
    fclose(f);
    if (!*n) {
        snprintf(err, errlen, "api_key_file %s has no key (one per line)", path);
        return -1;
    }
    return 0;
}

static bool authorized(const app_api_t *api, const http_request_t *req)
{
    rt_slice_t k = http_header_get(req, "x-api-key");
    if (!k.p || !k.n) {
        rt_slice_t a = http_header_get(req, "authorization");
        if (a.n > 7 && !strncasecmp(a.p, "apikey ", 7)) k = rt_json_trim(rt_slice(a.p + 7, a.n - 7));
        else k = RT_SLICE_NULL;
    }
    if (!k.p || !k.n) return false;
    uint8_t d[SHA256_DIGEST_LENGTH];
    SHA256((const uint8_t *)k.p, k.n, d);
    int ok = 0;
    for (size_t i = 0; i < api->nkeys; i++) ok |= CRYPTO_memcmp(d, api->keys[i], sizeof d) == 0;
    return ok;
}

static void reply(http_conn_t *hc, int status, const char *json)
{
    http_respond(hc, status, "application/json", json, strlen(json), NULL);
}

static void error(http_conn_t *hc, int status, const char *msg)
{
    rt_buf_t b = {0};
    rt_buf_append_cstr(&b, "{\"error\":");
    rt_buf_append_json_string(&b, rt_slice_cstr(msg));
    rt_buf_putc(&b, '}');
    http_respond(hc, status, "application/json", b.data, b.len, NULL);
    rt_buf_free(&b);
}

/* A string member, decoded (false if absent; *bad if present but not a string). */
static bool member_str(rt_slice_t obj, const char *key, rt_buf_t *out, bool *bad)
{
    rt_slice_t v;
    if (!rt_json_object_get(obj, key, &v)) return false;
    out->len = 0;
    if (rt_json_peek(v) != RT_JSON_STRING || rt_json_string_decode(v, out) < 0) {
        *bad = true;
        return false;
    }
    return true;
}

/* "room": "r" or "rooms": ["a","b"] (or "except": either), decoded into
 * names, sliced into out. -1: malformed or too many. */
static int room_list(rt_slice_t obj, const char *one, const char *many, rt_buf_t *names, rt_slice_t *out)
{
    rt_slice_t v;
    size_t ends[API_MAX_ROOMS], n = 0;
    bool has_one = rt_json_object_get(obj, one, &v);
    if (!has_one && !(many && rt_json_object_get(obj, many, &v))) return 0;
    if (rt_json_peek(v) == RT_JSON_STRING) {
        if (rt_json_string_decode(v, names) < 0) return -1;
        ends[n++] = names->len;
    } else if (rt_json_peek(v) == RT_JSON_ARRAY) {
        rt_json_iter_t it;
        rt_slice_t e;
        rt_json_iter_init(&it, v);
        while (rt_json_array_next(&it, &e)) {
            if (n == API_MAX_ROOMS || rt_json_peek(e) != RT_JSON_STRING || rt_json_string_decode(e, names) < 0) return -1;
            ends[n++] = names->len;
        }
    } else {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        size_t at = i ? ends[i - 1] : 0;
        out[i] = rt_slice(names->data + at, ends[i] - at);
    }
    return (int)n;
}

static void api_publish(app_api_t *api, http_conn_t *hc, sio_nsp_t *nsp, rt_slice_t obj)
{
    RT_UNUSED(api);
    rt_buf_t ev = {0}, rn = {0}, xn = {0}, body = {0};
    bool bad = false;
    rt_slice_t rooms[API_MAX_ROOMS], except[API_MAX_ROOMS], data, args;
    int nr = -1, nx = -1;
    if (!member_str(obj, "event", &ev, &bad) || !ev.len) {
        error(hc, 400, bad ? "'event' must be a string" : "missing 'event'");
        goto out;
    }
    if ((nr = room_list(obj, "room", "rooms", &rn, rooms)) < 0 || (nx = room_list(obj, "except", NULL, &xn, except)) < 0) {
        error(hc, 400, "'room', 'rooms' and 'except' must be a string or an array of at most 64 strings");
        goto out;
    }
    bool has_data = rt_json_object_get(obj, "data", &data), has_args = rt_json_object_get(obj, "args", &args);
    if (has_data && has_args) {
        error(hc, 400, "give 'data' or 'args', not both");
        goto out;
    }
    if (has_args && rt_json_peek(args) != RT_JSON_ARRAY) {
        error(hc, 400, "'args' must be an array");
        goto out;
    }
    rt_buf_append_json_string(&body, rt_slice(ev.data, ev.len));
    if (sio_event_reserved(rt_slice(body.data, body.len))) {
        error(hc, 400, "reserved event name");
        goto out;
    }
    if (has_data) {
        rt_buf_putc(&body, ',');
        rt_buf_append_slice(&body, rt_json_trim(data));
    } else if (has_args) {
        rt_slice_t inner = rt_json_trim(rt_slice(args.p + 1, args.n - 2));
        if (inner.n) {
            rt_buf_putc(&body, ',');
            rt_buf_append_slice(&body, inner);
        }
    }
    if (api->broker) { /* every node: {"op":"p","nsp","rooms","except","b":[body]} */
        rt_buf_t a = {0};
        rt_buf_append_cstr(&a, "{\"op\":\"p\",\"nsp\":");
        rt_buf_append_json_string(&a, sio_nsp_name(nsp));
        rt_buf_append_cstr(&a, ",\"rooms\":[");
        for (int i = 0; i < nr; i++) {
            if (i) rt_buf_putc(&a, ',');
            rt_buf_append_json_string(&a, rooms[i]);
        }
        rt_buf_append_cstr(&a, "],\"except\":[");
        for (int i = 0; i < nx; i++) {
            if (i) rt_buf_putc(&a, ',');
            rt_buf_append_json_string(&a, except[i]);
        }
        rt_buf_append_cstr(&a, "],\"b\":[");
        rt_buf_append(&a, body.data, body.len);
        rt_buf_append_cstr(&a, "]}");
        broker_publish(api->broker, api->channel, rt_slice(a.data, a.len));
        rt_buf_free(&a);
    } else if (nsp) {
        sio_broadcast_except(nsp, rooms, (size_t)nr, except, (size_t)nx, rt_slice(body.data, body.len));
    }
    reply(hc, 200, "{\"ok\":true}");
out:
    rt_buf_free(&ev);
    rt_buf_free(&rn);
    rt_buf_free(&xn);
    rt_buf_free(&body);
}

typedef struct {
    sio_socket_t **v;
    size_t n, cap;
} sockv_t;

static void collect(sio_socket_t *s, void *arg)
{
    sockv_t *sv = arg;
    if (sv->n == sv->cap) {
        sv->cap = sv->cap ? sv->cap * 2 : 8;
        sv->v = rt_realloc(sv->v, sv->cap * sizeof *sv->v);
    }
    sio_socket_ref(s);
    sv->v[sv->n++] = s;
}

typedef struct {
    app_api_t *api;
    size_t n;
    rt_buf_t users;
    rt_map_t seen;
    rt_buf_t info;  /* "user":info pairs, for users whose first socket has one */
} room_arg_t;

static void room_member(sio_socket_t *s, void *arg)
{
    room_arg_t *a = arg;
    a->n++;
    const char *info = NULL;
    const char *u = a->api->user_of ? a->api->user_of(s, &info, a->api->ud) : NULL;
    if (!u || rt_map_get(&a->seen, rt_slice_cstr(u))) return;
    rt_map_put(&a->seen, rt_slice_cstr(u), (void *)u); /* the socket's data holds the name while we run */
    if (a->users.len > 1) rt_buf_putc(&a->users, ',');
    rt_buf_append_json_string(&a->users, rt_slice_cstr(u));
    if (info) {
        if (a->info.len) rt_buf_putc(&a->info, ',');
        rt_buf_append_json_string(&a->info, rt_slice_cstr(u));
        rt_buf_putc(&a->info, ':');
        rt_buf_append_cstr(&a->info, info);
    }
}

/* {"sockets":N,"users":[...]} of a room here, appended to out. */
static void room_json(app_api_t *api, sio_nsp_t *nsp, rt_slice_t room, rt_buf_t *out)
{
    room_arg_t a = {.api = api};
    rt_map_init(&a.seen);
    rt_buf_putc(&a.users, '[');
    sio_room_each(nsp, room, room_member, &a);
    rt_buf_putc(&a.users, ']');
    rt_buf_printf(out, "{\"sockets\":%zu,\"users\":", a.n);
    rt_buf_append(out, a.users.data, a.users.len);
    rt_buf_append_cstr(out, ",\"info\":{");
    rt_buf_append(out, a.info.data, a.info.len);
    rt_buf_append_cstr(out, "}}");
    rt_buf_free(&a.users);
    rt_buf_free(&a.info);
    rt_map_free(&a.seen);
}

/* ---- GET /api/room across the cluster: ask every node, sum the answers ---- */
#define QUERY_TIMEOUT_MS 1000
typedef struct {
    rt_list_t link;
    app_api_t *api;
    http_conn_t *hc; /* NULL once the client went */
    uint64_t id;
    long expect;     /* nodes subscribed (PUBSUB NUMSUB), -1 until known */
    long answers;
    size_t sockets;
    rt_buf_t users;  /* JSON strings joined by commas */
    rt_buf_t info;   /* "user":info pairs joined by commas */
    rt_map_t seen;
    rt_buf_t names;  /* the seen users' bytes (map keys) */
    net_timer_t timer;
    char *ask;       /* the message to publish once the count is known */
    size_t ask_len;
} query_t;

static void query_free(query_t *q)
{
    rt_list_remove(&q->link);
    net_timer_stop(&q->timer);
    rt_slice_t k;
    void *v;
    for (uint32_t it = 0; rt_map_next(&q->seen, &it, &k, &v);) free(v); /* the keys' strings */
    rt_map_free(&q->seen);
    rt_buf_free(&q->users);
    rt_buf_free(&q->info);
    free(q->ask);
    free(q);
}

static void query_answer(query_t *q)
{
    if (q->hc) {
        rt_buf_t b = {0};
        rt_buf_printf(&b, "{\"sockets\":%zu,\"users\":[", q->sockets);
        rt_buf_append(&b, q->users.data, q->users.len);
        rt_buf_append_cstr(&b, "],\"info\":{");
        rt_buf_append(&b, q->info.data, q->info.len);
        rt_buf_printf(&b, "},\"nodes\":%ld}", q->answers);
        http_conn_set_abort(q->hc, NULL, NULL);
        http_respond(q->hc, 200, "application/json", b.data, b.len, NULL);
        rt_buf_free(&b);
    }
    query_free(q);
}

static void query_timeout(net_loop_t *loop, net_timer_t *t)
{
    RT_UNUSED(loop);
    query_answer(rt_container_of(t, query_t, timer)); /* the nodes that answered */
}

static void query_abort(http_conn_t *hc, void *ud)
{
    RT_UNUSED(hc);
    query_t *q = ud;
    q->hc = NULL;
}

/* join, leave, disconnect the members of room key here; returns how many. */
static size_t apply_sockets(sio_nsp_t *nsp, rt_slice_t key, rt_slice_t room, char op)
{
    sockv_t sv = {0};
    sio_room_each(nsp, key, collect, &sv);
    size_t done = 0;
    for (size_t i = 0; i < sv.n; i++) {
        sio_socket_t *s = sv.v[i];
        if (sio_socket_connected(s)) {
            if (op == 'j') done += sio_join(s, room) == RT_OK;
            else if (op == 'l') sio_leave(s, room), done++;
            else sio_socket_disconnect(s), done++;
        }
        sio_socket_unref(s);
    }
    free(sv.v);
    return done;
}

/* An action another node (or this one) published: applied to the sockets here. */
static void on_action(rt_slice_t channel, rt_slice_t payload, void *ud)
{
    app_api_t *api = ud;
    RT_UNUSED(channel);
    rt_json_type_t t;
    rt_slice_t op, v;
    rt_buf_t ns = {0}, a = {0}, b = {0};
    bool bad = false;
    if (!rt_json_valid(payload, &t) || t != RT_JSON_OBJECT || !rt_json_object_get(payload, "op", &op) ||
        !member_str(payload, "nsp", &ns, &bad))
        goto out;
    sio_nsp_t *nsp = sio_server_find(api->sio, rt_slice(ns.data ? ns.data : "", ns.len));
    if (!nsp) goto out;
    if (rt_slice_eq_cstr(op, "\"p\"")) {
        rt_slice_t rooms[API_MAX_ROOMS], except[API_MAX_ROOMS];
        int nr = room_list(payload, "rooms", NULL, &a, rooms), nx = room_list(payload, "except", NULL, &b, except);
        if (nr >= 0 && nx >= 0 && rt_json_object_get(payload, "b", &v) && rt_json_peek(v) == RT_JSON_ARRAY && v.n > 2)
            sio_broadcast_except(nsp, rooms, (size_t)nr, except, (size_t)nx, rt_json_trim(rt_slice(v.p + 1, v.n - 2)));
    } else if (rt_slice_eq_cstr(op, "\"q\"")) { /* a room query: answer with ours */
        rt_slice_t id;
        if (rt_json_object_get(payload, "id", &id) && rt_json_peek(id) == RT_JSON_NUMBER && id.n < 21 &&
            member_str(payload, "reply", &a, &bad) && member_str(payload, "key", &b, &bad) && a.len < 64) {
            rt_buf_t r = {0};
            rt_buf_append_cstr(&r, "{\"id\":");
            rt_buf_append_slice(&r, id);
            rt_buf_append_cstr(&r, ",\"room\":");
            room_json(api, nsp, rt_slice(b.data ? b.data : "", b.len), &r);
            rt_buf_putc(&r, '}');
            rt_buf_putc(&a, 0);
            broker_publish(api->broker, a.data, rt_slice(r.data, r.len));
            rt_buf_free(&r);
        }
    } else if (op.n == 3 && strchr("jld", op.p[1])) {
        if (member_str(payload, "key", &a, &bad) && member_str(payload, "room", &b, &bad))
            apply_sockets(nsp, rt_slice(a.data ? a.data : "", a.len), rt_slice(b.data ? b.data : "", b.len), op.p[1]);
    }
out:
    rt_buf_free(&ns);
    rt_buf_free(&a);
    rt_buf_free(&b);
}

static query_t *query_find(app_api_t *api, uint64_t id)
{
    rt_list_t *it;
    for (it = api->queries.next; it != &api->queries; it = it->next) {
        query_t *q = rt_container_of(it, query_t, link);
        if (q->id == id) return q;
    }
    return NULL;
}

static void on_numsub(struct redisReply *r, void *ud)
{
    uint64_t id = *(uint64_t *)ud;
    free(ud);
    /* the api may be gone: find it through the query list of the one api there is */
    extern app_api_t *app_api_current;
    app_api_t *api = app_api_current;
    query_t *q = api ? query_find(api, id) : NULL;
    if (!q) return;
    q->expect = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[1]->type == REDIS_REPLY_INTEGER
                    ? (long)r->element[1]->integer
                    : -1;
    broker_publish(api->broker, api->channel, rt_slice(q->ask, q->ask_len));
}

/* {"id", "room": {"sockets", "users"}} from a node */
static void on_reply(rt_slice_t channel, rt_slice_t payload, void *ud)
{
    app_api_t *api = ud;
    RT_UNUSED(channel);
    rt_json_type_t t;
    rt_slice_t id, room, n, users, u, info = RT_SLICE_NULL, iv;
    uint64_t qid;
    if (!rt_json_valid(payload, &t) || t != RT_JSON_OBJECT || !rt_json_object_get(payload, "id", &id) ||
        rt_slice_to_u64(id, &qid) < 0 || !rt_json_object_get(payload, "room", &room) ||
        !rt_json_object_get(room, "sockets", &n) || !rt_json_object_get(room, "users", &users) ||
        rt_json_peek(users) != RT_JSON_ARRAY)
        return;
    query_t *q = query_find(api, qid);
    if (!q) return; /* too late */
    rt_json_object_get(room, "info", &info);
    if (info.p && rt_json_peek(info) != RT_JSON_OBJECT) info = RT_SLICE_NULL;
    uint64_t k;
    if (rt_slice_to_u64(n, &k) == 0) q->sockets += (size_t)k;
    rt_json_iter_t it;
    rt_json_iter_init(&it, users);
    while (rt_json_array_next(&it, &u)) {
        if (rt_json_peek(u) != RT_JSON_STRING) continue;
        /* distinct users across the nodes, in the order first seen */
        char *key = rt_strndup(u.p, u.n);
        if (rt_map_get(&q->seen, rt_slice(key, u.n))) {
            free(key);
            continue;
        }
        rt_map_put(&q->seen, rt_slice(key, u.n), key);
        if (q->users.len) rt_buf_putc(&q->users, ',');
        rt_buf_append_slice(&q->users, u);
        rt_buf_t name = {0};
        if (info.p && rt_json_string_decode(u, &name) == 0) {
            rt_buf_putc(&name, 0);
            if (rt_json_object_get(info, name.data, &iv)) {
                if (q->info.len) rt_buf_putc(&q->info, ',');
                rt_buf_append_slice(&q->info, u);
                rt_buf_putc(&q->info, ':');
                rt_buf_append_slice(&q->info, rt_json_trim(iv));
            }
        }
        rt_buf_free(&name);
    }
    q->answers++;
    if (q->expect >= 0 && q->answers >= q->expect) query_answer(q);
}

/* join, leave, disconnect: the sockets of a user (room user:<u>) or one sid. */
static void api_sockets(app_api_t *api, http_conn_t *hc, sio_nsp_t *nsp, rt_slice_t obj, char op)
{
    RT_UNUSED(api);
    rt_buf_t user = {0}, sid = {0}, room = {0}, key = {0};
    bool bad = false;
    bool has_user = member_str(obj, "user", &user, &bad), has_sid = member_str(obj, "sid", &sid, &bad);
    bool has_room = member_str(obj, "room", &room, &bad);
    sockv_t sv = {0}; /* unused here; freed below */
    if (bad) {
        error(hc, 400, "'user', 'sid' and 'room' must be strings");
        goto out;
    }
    if (has_user == has_sid) {
        error(hc, 400, has_user ? "give 'user' or 'sid', not both" : "missing 'user' or 'sid'");
        goto out;
    }
    if (op != 'd' && !has_room) {
        error(hc, 400, "missing 'room'");
        goto out;
    }
    if (has_user) rt_buf_append_cstr(&key, "user:"), rt_buf_append(&key, user.data, user.len);
    else rt_buf_append(&key, sid.data, sid.len);
    rt_slice_t k = rt_slice(key.data ? key.data : "", key.len), r = rt_slice(room.data ? room.data : "", room.len);
    if (api->broker) { /* every node: {"op","nsp","key","room"}; the count is each node's */
        rt_buf_t a = {0};
        rt_buf_printf(&a, "{\"op\":\"%c\",\"nsp\":", op);
        rt_buf_append_json_string(&a, sio_nsp_name(nsp));
        rt_buf_append_cstr(&a, ",\"key\":");
        rt_buf_append_json_string(&a, k);
        rt_buf_append_cstr(&a, ",\"room\":");
        rt_buf_append_json_string(&a, r);
        rt_buf_putc(&a, '}');
        broker_publish(api->broker, api->channel, rt_slice(a.data, a.len));
        rt_buf_free(&a);
        reply(hc, 200, "{\"ok\":true}");
        goto out;
    }
    char out[64];
    snprintf(out, sizeof out, "{\"ok\":true,\"sockets\":%zu}", apply_sockets(nsp, k, r, op));
    reply(hc, 200, out);
out:
    free(sv.v);
    rt_buf_free(&user);
    rt_buf_free(&sid);
    rt_buf_free(&room);
    rt_buf_free(&key);
}

static bool query_str(const http_request_t *req, const char *key, rt_buf_t *out)
{
    rt_slice_t v;
    out->len = 0;
    return http_query_get(req->query, key, &v) && rt_url_decode(v, true, out) == RT_OK;
}

static void on_numsub(struct redisReply *r, void *ud);

static void api_room(app_api_t *api, http_conn_t *hc, const http_request_t *req)
{
    rt_buf_t ns = {0}, room = {0};
    if (!query_str(req, "room", &room)) {
        error(hc, 400, "missing ?room=");
        goto out;
    }
    if (!query_str(req, "namespace", &ns) || !ns.len) rt_buf_append_cstr(&ns, "/");
    sio_nsp_t *nsp = sio_server_find(api->sio, rt_slice(ns.data, ns.len));
    if (!nsp) {
        error(hc, 400, "unknown namespace");
        goto out;
    }
    if (api->broker) { /* every node answers on our reply channel */
        query_t *q = rt_calloc(1, sizeof *q);
        q->api = api;
        q->hc = hc;
        q->id = ++api->next_query;
        q->expect = -1;
        rt_map_init(&q->seen);
        net_timer_init(&q->timer, query_timeout);
        rt_list_insert_tail(&api->queries, &q->link);
        rt_buf_t a = {0};
        rt_buf_printf(&a, "{\"op\":\"q\",\"id\":%llu,\"reply\":", (unsigned long long)q->id);
        rt_buf_append_json_string(&a, rt_slice_cstr(api->reply_channel));
        rt_buf_append_cstr(&a, ",\"nsp\":");
        rt_buf_append_json_string(&a, rt_slice(ns.data, ns.len));
        rt_buf_append_cstr(&a, ",\"key\":");
        rt_buf_append_json_string(&a, rt_slice(room.data ? room.data : "", room.len));
        rt_buf_putc(&a, '}');
        q->ask = a.data;
        q->ask_len = a.len;
        http_conn_set_abort(hc, query_abort, q);
        net_timer_start(http_server_loop(http_conn_server(hc)), &q->timer, QUERY_TIMEOUT_MS);
        /* how many nodes will answer, then the question */
        const char *argv[] = {"PUBSUB", "NUMSUB", api->channel};
        uint64_t *id = rt_malloc(sizeof *id);
        *id = q->id;
        if (!broker_command(api->broker, on_numsub, id, 3, argv, NULL)) {
            free(id);
            broker_publish(api->broker, api->channel, rt_slice(q->ask, q->ask_len));
        }
        goto out;
    }
    rt_buf_t b = {0};
    room_json(api, nsp, rt_slice(room.data ? room.data : "", room.len), &b);
    http_respond(hc, 200, "application/json", b.data, b.len, NULL);
    rt_buf_free(&b);
out:
    rt_buf_free(&ns);
    rt_buf_free(&room);
}

static void api_handler(http_conn_t *hc, const http_request_t *req, rt_slice_t body, void *ud)
{
    app_api_t *api = ud;
    api->requests++;
    if (!authorized(api, req)) {
        api->refused++;
        error(hc, 401, "unauthorized");
        return;
    }
    if (req->too_large) {
        error(hc, 413, "body too large (max_payload)");
        return;
    }
    rt_slice_t p = req->path;
    bool get = rt_slice_eq_cstr(req->method, "GET"), post = rt_slice_eq_cstr(req->method, "POST");
    char op = rt_slice_eq_cstr(p, "/api/publish") ? 'p'
              : rt_slice_eq_cstr(p, "/api/join")   ? 'j'
              : rt_slice_eq_cstr(p, "/api/leave")  ? 'l'
              : rt_slice_eq_cstr(p, "/api/disconnect") ? 'd'
              : rt_slice_eq_cstr(p, "/api/room")   ? 'r'
                                                   : 0;
    if (!op) {
        error(hc, 404, "no such endpoint");
        return;
    }
    if (op == 'r' ? !get : !post) {
        http_respond(hc, 405, "application/json", "{\"error\":\"method not allowed\"}", 31,
                     op == 'r' ? "Allow: GET\r\n" : "Allow: POST\r\n");
        return;
    }
    if (op == 'r') {
        api_room(api, hc, req);
        return;
    }
    rt_json_type_t type;
    if (!rt_json_valid(body, &type)) {
        error(hc, 400, "body is not JSON");
        return;
    }
    if (type != RT_JSON_OBJECT) {
        error(hc, 400, "body is not a JSON object");
        return;
    }
    rt_buf_t ns = {0};
    bool bad = false;
    if (!member_str(body, "namespace", &ns, &bad) || !ns.len) {
        if (bad) {
            error(hc, 400, "'namespace' must be a string");
            return;
        }
        rt_buf_append_cstr(&ns, "/");
    }
    sio_nsp_t *nsp = sio_server_find(api->sio, rt_slice(ns.data, ns.len));
    rt_buf_free(&ns);
    if (!nsp) {
        error(hc, 400, "unknown namespace");
        return;
    }
    if (api->broker && !broker_command_ready(api->broker)) {
        error(hc, 503, "Redis unavailable: the call cannot reach every node");
        return;
    }
    if (op == 'p') api_publish(api, hc, nsp, body);
    else api_sockets(api, hc, nsp, body, op);
}

app_api_t *app_api_new(app_t *app, http_server_t *http, const char *key_file, api_user_fn user_of, void *ud,
                       broker_t *broker, char *err, size_t errlen)
{
    app_api_t *api = rt_calloc(1, sizeof *api);
    if (app_api_load_keys(key_file, &api->keys, &api->nkeys, err, errlen) < 0) {
        free(api);
        return NULL;
    }
    api->app = app;
    api->sio = app->sio;
    api->user_of = user_of;
    api->ud = ud;
    if (http) http_server_route_flags(http, "/api/", HTTP_ROUTE_TOO_LARGE, api_handler, api);
    rt_list_init(&api->queries);
    if (broker) {
        api->broker = broker;
        int db = broker_db(broker);
        snprintf(api->channel, sizeof api->channel, db ? "realtimed:api:%d" : "realtimed:api", db);
        broker_subscribe(broker, api->channel, on_action, api);
        char id[21];
        rt_random_id(id);
        snprintf(api->reply_channel, sizeof api->reply_channel, "realtimed:api-reply:%s", id);
        broker_subscribe(broker, api->reply_channel, on_reply, api);
    }
    app_api_current = api;
    return api;
}

int app_api_reload(app_api_t *api, const char *key_file, char *err, size_t errlen)
{
    uint8_t(*keys)[SHA256_DIGEST_LENGTH] = NULL;
    size_t n = 0;
    if (app_api_load_keys(key_file, &keys, &n, err, errlen) < 0) return -1;
    OPENSSL_cleanse(api->keys, api->nkeys * sizeof *api->keys);
    free(api->keys);
    api->keys = keys;
    api->nkeys = n;
    return 0;
}

void app_api_route(app_api_t *api, http_server_t *http)
{
    http_server_route_flags(http, "/api/", HTTP_ROUTE_TOO_LARGE, api_handler, api);
}

void app_api_free(app_api_t *api)
{
    if (!api) return;
    if (api->broker) broker_unsubscribe(api->broker, api->channel);
    if (api->broker) broker_unsubscribe(api->broker, api->reply_channel);
    while (!rt_list_empty(&api->queries)) {
        query_t *q = rt_container_of(api->queries.next, query_t, link);
        if (q->hc) http_conn_set_abort(q->hc, NULL, NULL);
        query_free(q);
    }
    if (app_api_current == api) app_api_current = NULL;
    OPENSSL_cleanse(api->keys, api->nkeys * sizeof *api->keys);
    free(api->keys);
    free(api);
}
