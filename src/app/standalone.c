/* The standalone mode (auth_mode jwt): realtimed as the Socket.IO server of
 * any backend, without a bench. Each namespace CONNECT carries a JWT (the
 * CONNECT payload's auth.token, else the handshake's Authorization: Bearer,
 * else ?token= with --jwt-query); a valid one admits the socket as its sub,
 * in the rooms user:<sub>, its own id, and the token's rooms. When the token
 * expires (plus the leeway) the connection is closed: socket.io-client
 * reconnects by itself, and its auth callback supplies a fresh token.
 * docs/standalone.md. */
#include "app.h"
#include "auth/jwt.h"

#include <stdio.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>

typedef struct {
    app_t *app;
    app_api_t *api;
    jwt_keys_t *keys;
    jwt_options_t jo;
    bool query;
    uint64_t admitted, refused;
} standalone_t;

typedef struct { /* per Engine.IO session: tokens of the handshake request */
    char *bearer, *query;
} st_client_t;

typedef struct { /* per admitted socket */
    net_timer_t expiry;
    uint64_t expiry_in; /* ms from the connect to exp + leeway, or 0 */
    sio_socket_t *s;
    char *rooms; /* the token's rooms claim (raw JSON array), or NULL */
    char user[];
} st_sock_t;

/* ---- configuration ---- */
/* Calls fn for each item of a list separated by commas or newlines. */
static int each_item(const char *list, int (*fn)(const char *item, size_t n, void *arg), void *arg)
{
    for (const char *a = list; a && *a;) {
        size_t n = strcspn(a, ",\n");
        const char *b = a, *e = a + n;
        while (b < e && (*b == ' ' || *b == '\t')) b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t')) e--;
        if (e > b) {
            int rc = fn(b, (size_t)(e - b), arg);
            if (rc) return rc;
        }
        a += n + (a[n] != 0);
    }
    return 0;
}

typedef struct {
    jwt_keys_t *ks;
    char *err;
    size_t errlen;
} key_arg_t;

static int add_key(const char *item, size_t n, void *arg)
{
    key_arg_t *k = arg;
    char path[4096];
    snprintf(path, sizeof path, "%.*s", (int)n, item);
    char e[512];
    if (jwt_keys_add_file(k->ks, path, NULL, e, sizeof e) < 0) {
        snprintf(k->err, k->errlen, "jwt_key %s", e);
        return -1;
    }
    return 0;
}

typedef struct {
    char *err;
    size_t errlen;
    char seen[64][256];
    int n;
} nsp_arg_t;

static int check_nsp(const char *item, size_t n, void *arg)
{
    nsp_arg_t *a = arg;
    if (item[0] != '/' || n > 255 || memchr(item, '?', n) || memchr(item, '#', n)) {
        snprintf(a->err, a->errlen, "invalid namespace '%.*s' in namespaces: a name starts with / (e.g. /chat)",
                 (int)(n > 255 ? 255 : n), item);
        return -1;
    }
    for (int i = 0; i < a->n; i++)
        if (strlen(a->seen[i]) == n && !memcmp(a->seen[i], item, n)) {
            snprintf(a->err, a->errlen, "namespace '%.*s' is listed twice in namespaces", (int)n, item);
            return -1;
        }
    if (a->n == 64) {
        snprintf(a->err, a->errlen, "more than 64 namespaces in namespaces");
        return -1;
    }
    snprintf(a->seen[a->n++], 256, "%.*s", (int)n, item);
    return 0;
}

static jwt_keys_t *load_keys(const app_config_t *cfg, char *err, size_t errlen)
{
    jwt_keys_t *ks = jwt_keys_new();
    key_arg_t k = {ks, err, errlen};
    if (each_item(cfg->jwt_key, add_key, &k) < 0) {
        jwt_keys_free(ks);
        return NULL;
    }
    if (!jwt_keys_count(ks)) {
        snprintf(err, errlen, "auth_mode jwt needs at least one --jwt-key FILE");
        jwt_keys_free(ks);
        return NULL;
    }
    return ks;
}

int app_standalone_check(const app_config_t *cfg, char *err, size_t errlen)
{
    nsp_arg_t *na = rt_calloc(1, sizeof *na);
    na->err = err, na->errlen = errlen;
    int rc = each_item(cfg->namespaces, check_nsp, na);
    if (!rc && na->n == 0) {
        snprintf(err, errlen, "namespaces lists no namespace");
        rc = -1;
    }
    free(na);
    if (rc) return -1;
    jwt_keys_t *ks = load_keys(cfg, err, errlen);
    if (!ks) return -1;
    jwt_keys_free(ks);
    if (cfg->api_key_file) {
        uint8_t(*keys)[32] = NULL;
        size_t n = 0;
        if (app_api_load_keys(cfg->api_key_file, &keys, &n, err, errlen) < 0) return -1;
        free(keys);
    }
    return 0;
}

/* ---- clients and sockets ---- */
static void on_client(sio_client_t *c, const http_request_t *req, void *ud)
{
    standalone_t *st = ud;
    st_client_t *sc = rt_calloc(1, sizeof *sc);
    rt_slice_t a = http_header_get(req, "authorization");
    if (a.n > 7 && a.n <= JWT_MAX_TOKEN + 7 && !strncasecmp(a.p, "bearer ", 7)) {
        rt_slice_t t = rt_json_trim(rt_slice(a.p + 7, a.n - 7));
        if (t.n) sc->bearer = rt_strndup(t.p, t.n);
    }
    rt_slice_t q;
    if (st->query && http_query_get(req->query, "token", &q) && q.n <= JWT_MAX_TOKEN * 3) {
        rt_buf_t d = {0};
        if (rt_url_decode(q, true, &d) == RT_OK && d.len) sc->query = rt_strndup(d.data, d.len);
        rt_buf_free(&d);
    }
    sio_client_set_data(c, sc);
}

static void on_client_close(sio_client_t *c, void *ud)
{
    RT_UNUSED(ud);
    st_client_t *sc = sio_client_data(c);
    if (!sc) return;
    free(sc->bearer);
    free(sc->query);
    free(sc);
    sio_client_set_data(c, NULL);
}

static void expired(net_loop_t *loop, net_timer_t *t)
{
    RT_UNUSED(loop);
    st_sock_t *ss = rt_container_of(t, st_sock_t, expiry);
    sio_client_t *c = sio_socket_client(ss->s);
    rt_info_rl("standalone", "token of %s expired: closing its connection (the client reconnects with a new one)",
               ss->user);
    if (c && sio_client_session(c)) eio_session_close(sio_client_session(c));
}

static void on_connect_request(sio_socket_t *s, rt_slice_t auth, void *ud)
{
    standalone_t *st = ud;
    st_client_t *sc = sio_client_data(sio_socket_client(s));
    rt_slice_t tok = RT_SLICE_NULL, v;
    rt_buf_t dec = {0};
    const char *why = NULL;
    if (rt_json_peek(auth) == RT_JSON_OBJECT && rt_json_object_get(auth, "token", &v)) {
        if (rt_json_peek(v) != RT_JSON_STRING || v.n > JWT_MAX_TOKEN * 2 || rt_json_string_decode(v, &dec) < 0)
            why = "invalid token";
        else tok = rt_slice(dec.data ? dec.data : "", dec.len);
    } else if (sc && sc->bearer) {
        tok = rt_slice_cstr(sc->bearer);
    } else if (sc && sc->query) {
        tok = rt_slice_cstr(sc->query);
    } else {
        why = "no token";
    }
    jwt_claims_t cl;
    memset(&cl, 0, sizeof cl);
    if (!why) why = jwt_verify(st->keys, tok, (int64_t)time(NULL), &st->jo, &cl);
    rt_buf_free(&dec);
    if (why) {
        st->refused++;
        rt_info_rl("standalone", "connect refused on %.*s: %s", (int)sio_nsp_name(sio_socket_nsp(s)).n,
                   sio_nsp_name(sio_socket_nsp(s)).p, why);
        sio_socket_reject(s, why, RT_SLICE_NULL);
        return;
    }
    rt_buf_t user = {0};
    rt_json_string_decode(cl.sub, &user);
    st_sock_t *ss = rt_calloc(1, sizeof *ss + user.len + 1);
    memcpy(ss->user, user.data, user.len);
    ss->s = s;
    if (cl.rooms.n) ss->rooms = rt_strndup(cl.rooms.p, cl.rooms.n);
    net_timer_init(&ss->expiry, expired);
    if (cl.has_exp) { /* the timer starts once connected */
        int64_t left = (cl.exp + st->jo.leeway - (int64_t)time(NULL)) * 1000;
        ss->expiry_in = left > 0 ? (uint64_t)left : 1;
    }
    sio_socket_set_identity(s, rt_slice(user.data, user.len));
    rt_buf_free(&user);
    jwt_claims_free(&cl);
    sio_socket_set_data(s, ss);
    st->admitted++;
    sio_socket_accept(s); /* synchronous here: no cluster hands sessions over in this mode */
}

static void join_claim_room(sio_socket_t *s, rt_slice_t v)
{
    rt_buf_t r = {0};
    if (rt_json_peek(v) == RT_JSON_STRING && rt_json_string_decode(v, &r) == 0)
        sio_join(s, rt_slice(r.data ? r.data : "", r.len));
    rt_buf_free(&r);
}

static void on_connect(sio_socket_t *s, rt_slice_t auth, void *ud)
{
    standalone_t *st = ud;
    RT_UNUSED(auth);
    st_sock_t *ss = sio_socket_data(s);
    if (!ss) return;
    rt_buf_t b = {0};
    rt_buf_append_cstr(&b, "user:");
    rt_buf_append_cstr(&b, ss->user);
    sio_join(s, rt_slice(b.data, b.len));
    rt_buf_free(&b);
    sio_join(s, rt_slice_cstr(sio_socket_id(s))); /* as socket.io: its own room */
    if (ss->rooms) {
        rt_json_iter_t it;
        rt_slice_t v;
        rt_json_iter_init(&it, rt_slice_cstr(ss->rooms));
        while (rt_json_array_next(&it, &v) && sio_socket_connected(s)) join_claim_room(s, v);
        free(ss->rooms);
        ss->rooms = NULL;
    }
    if (ss->expiry_in) net_timer_start(st->app->loop, &ss->expiry, ss->expiry_in);
}

static void on_disconnect(sio_socket_t *s, const char *reason, void *ud)
{
    RT_UNUSED(reason), RT_UNUSED(ud);
    st_sock_t *ss = sio_socket_data(s);
    if (!ss) return;
    sio_socket_set_data(s, NULL);
    net_timer_stop(&ss->expiry);
    free(ss->rooms);
    free(ss);
}

static const char *socket_user(sio_socket_t *s, void *ud)
{
    RT_UNUSED(ud);
    st_sock_t *ss = sio_socket_data(s);
    return ss ? ss->user : NULL;
}

/* ---- life ---- */
static int register_nsp(const char *item, size_t n, void *arg)
{
    standalone_t *st = arg;
    static const sio_nsp_handler_t h = {.on_connect_request = on_connect_request, .on_connect = on_connect,
                                        .on_disconnect = on_disconnect};
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)n, item);
    sio_server_of(st->app->sio, name, &h, st);
    return 0;
}

int standalone_start(app_t *app)
{
    const app_config_t *cfg = &app->cfg;
    char err[512];
    standalone_t *st = rt_calloc(1, sizeof *st);
    st->app = app;
    st->keys = load_keys(cfg, err, sizeof err);
    if (!st->keys) {
        fprintf(stderr, "realtimed: %s\n", err);
        free(st);
        return EX_CONFIG;
    }
    st->jo.leeway = cfg->jwt_leeway;
    st->jo.audience = cfg->jwt_audience;
    st->jo.issuer = cfg->jwt_issuer;
    st->query = cfg->jwt_query;
    eio_options_t eo;
    sio_options_t so;
    app_protocol_options(app, &eo, &so);
    app->sio = sio_server_new(app->http, cfg->path, &eo, &so);
    static const sio_client_handler_t ch = {on_client, on_client_close};
    sio_server_set_client_handler(app->sio, &ch, st);
    each_item(cfg->namespaces, register_nsp, st);
    app->standalone = st;
    if (cfg->api_key_file) {
        st->api = app_api_new(app, app->http, cfg->api_key_file, socket_user, st, err, sizeof err);
        if (!st->api) {
            fprintf(stderr, "realtimed: %s\n", err);
            return EX_CONFIG;
        }
    }
    rt_notice("app", "standalone mode: JWT authentication (%zu key%s), namespaces %s", jwt_keys_count(st->keys),
              jwt_keys_count(st->keys) == 1 ? "" : "s", cfg->namespaces);
    return 0;
}

void standalone_stop(app_t *app)
{
    standalone_t *st = app->standalone;
    if (!st) return;
    /* the sockets go with the sio server, after this: their data needs only the loop */
    jwt_keys_free(st->keys);
    st->keys = NULL;
}

void standalone_release(app_t *app)
{
    standalone_t *st = app->standalone;
    if (st) app_api_free(st->api);
    free(app->standalone);
    app->standalone = NULL;
}
