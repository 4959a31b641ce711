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
#include "broker/broker.h"
#include "cluster/cluster.h"
#include "emitter/emitter.h"
#include "frappe/fetch.h"

#include <errno.h>
#include <stdio.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>

typedef struct {
    app_t *app;
    app_api_t *api;
    jwt_keys_t *keys;     /* auth_mode jwt */
    jwt_options_t jo;
    bool query;
    fetch_client_t *fetch; /* auth_mode webhook */
    char *webhook_url;
    char *secret_header;   /* "X-Realtimed-Secret: ..." */
    broker_t *broker;      /* --redis-queue given: the emitter protocol */
    events_hook_t *events; /* --events-webhook */
    http_server_t *api_http; /* --api-listen */
    net_listener_t *api_listener;
    uint64_t admitted, refused;
} standalone_t;

typedef struct { /* per Engine.IO session: what its handshake request said */
    char *bearer, *query;
    char *headers; /* webhook: the JSON object of the headers passed on, and the address */
    char *address;
    rt_list_t asks; /* webhook calls in flight for its sockets */
} st_client_t;

typedef struct { /* a webhook call for one socket */
    rt_list_t link;
    standalone_t *st;
    sio_socket_t *s;
    fetch_waiter_t *w;
} st_ask_t;

typedef struct { /* per admitted socket */
    net_timer_t expiry;
    uint64_t expiry_in; /* ms from the connect to exp + leeway, or 0 */
    sio_socket_t *s;
    char *rooms; /* the token's rooms claim (raw JSON array), or NULL */
    char *info;  /* the token's (or the webhook's) info (raw JSON), or NULL: GET /api/room */
    ev_socket_t *evq; /* its events on their way to the events webhook */
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

static char *secret_header(const char *path, char *err, size_t errlen);

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
    if (!strcmp(cfg->auth_mode, "webhook")) {
        if (!cfg->auth_webhook || (strncmp(cfg->auth_webhook, "http://", 7) && strncmp(cfg->auth_webhook, "https://", 8))) {
            snprintf(err, errlen, "auth_mode webhook needs --auth-webhook http(s)://...");
            return -1;
        }
        if (!cfg->webhook_secret_file) {
            snprintf(err, errlen, "auth_mode webhook needs --webhook-secret-file FILE (sent as X-Realtimed-Secret)");
            return -1;
        }
        char *h = secret_header(cfg->webhook_secret_file, err, errlen);
        if (!h) return -1;
        free(h);
    } else {
        jwt_keys_t *ks = load_keys(cfg, err, errlen);
        if (!ks) return -1;
        jwt_keys_free(ks);
    }
    if (cfg->events_webhook) {
        if (strncmp(cfg->events_webhook, "http://", 7) && strncmp(cfg->events_webhook, "https://", 8)) {
            snprintf(err, errlen, "events_webhook must be an http(s):// URL");
            return -1;
        }
        if (!cfg->webhook_secret_file) {
            snprintf(err, errlen, "events_webhook needs --webhook-secret-file FILE (sent as X-Realtimed-Secret)");
            return -1;
        }
        char *h = secret_header(cfg->webhook_secret_file, err, errlen);
        if (!h) return -1;
        free(h);
    }
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
    rt_list_init(&sc->asks);
    if (st->fetch) { /* webhook: the headers the backend may need, and the address */
        static const char *const names[] = {"cookie", "authorization", "origin", "user-agent", "x-forwarded-for"};
        rt_buf_t h = {0};
        rt_buf_putc(&h, '{');
        for (size_t i = 0; i < RT_ARRAY_LEN(names); i++) {
            rt_slice_t v = http_header_get(req, names[i]);
            if (!v.p || v.n > 8192 || !rt_utf8_valid(v.p, v.n)) continue;
            if (h.len > 1) rt_buf_putc(&h, ',');
            rt_buf_append_json_string(&h, rt_slice_cstr(names[i]));
            rt_buf_putc(&h, ':');
            rt_buf_append_json_string(&h, v);
        }
        rt_buf_putc(&h, '}');
        rt_buf_putc(&h, 0);
        sc->headers = h.data;
        char peer[128] = "";
        if (req->conn) net_conn_peer(req->conn, peer, sizeof peer);
        /* the address without the port: two tabs of one browser make the same call (coalesced) */
        char *colon = strrchr(peer, ':');
        if (colon && colon[1] && strspn(colon + 1, "0123456789") == strlen(colon + 1)) *colon = 0;
        size_t pl = strlen(peer);
        char *p = peer;
        if (pl >= 2 && p[0] == '[' && p[pl - 1] == ']') p[pl - 1] = 0, p++;
        sc->address = rt_strndup(p, strlen(p));
    }
    sio_client_set_data(c, sc);
}

static void on_client_close(sio_client_t *c, void *ud)
{
    RT_UNUSED(ud);
    st_client_t *sc = sio_client_data(c);
    if (!sc) return;
    while (!rt_list_empty(&sc->asks)) { /* its webhook calls are of no use now */
        st_ask_t *a = rt_container_of(sc->asks.next, st_ask_t, link);
        rt_list_remove(&a->link);
        fetch_cancel(a->w);
        sio_socket_unref(a->s);
        free(a);
    }
    free(sc->bearer);
    free(sc->query);
    free(sc->headers);
    free(sc->address);
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

static void admit(standalone_t *st, sio_socket_t *s, rt_slice_t user_tok, rt_slice_t rooms, rt_slice_t info,
                  uint64_t expiry_in);

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
    int64_t left = cl.has_exp ? (cl.exp + st->jo.leeway - (int64_t)time(NULL)) * 1000 : 0;
    admit(st, s, cl.sub, cl.rooms, cl.info, cl.has_exp ? (left > 0 ? (uint64_t)left : 1) : 0);
    jwt_claims_free(&cl);
}

/* ---- auth_mode webhook ---- */
static void ask_done(const fetch_result_t *r, void *ud)
{
    st_ask_t *a = ud;
    standalone_t *st = a->st;
    sio_socket_t *s = a->s;
    rt_list_remove(&a->link);
    free(a);
    rt_json_type_t type;
    rt_slice_t user, rooms = RT_SLICE_NULL, m;
    bool json = r->status && rt_json_valid(r->body, &type) && type == RT_JSON_OBJECT;
    const char *why = NULL;
    rt_buf_t msg = {0};
    if (!sio_socket_client(s)) {
        /* the client went meanwhile */
    } else if (!r->status) {
        why = r->timed_out ? "auth webhook timed out" : "auth webhook unavailable";
        rt_warn_rl("standalone", "auth webhook %s: %s", st->webhook_url, r->err ? r->err : "no answer");
    } else if (r->status == 401 || r->status == 403) {
        if (json && rt_json_object_get(r->body, "message", &m) && rt_json_peek(m) == RT_JSON_STRING && m.n <= 1026 &&
            rt_json_string_decode(m, &msg) == 0 && msg.len) {
            rt_buf_putc(&msg, 0);
            why = msg.data;
        } else {
            why = "unauthorized";
        }
    } else if (r->status != 200) {
        why = "auth webhook failed";
        rt_warn_rl("standalone", "auth webhook %s answered HTTP %ld", st->webhook_url, r->status);
    } else if (!json || !rt_json_object_get(r->body, "user", &user) || rt_json_peek(user) != RT_JSON_STRING ||
               user.n <= 2 || user.n > 4096 ||
               (rt_json_object_get(r->body, "rooms", &rooms) && rt_json_peek(rooms) != RT_JSON_ARRAY)) {
        why = "auth webhook answered without a user";
        rt_warn_rl("standalone", "auth webhook %s answered 200 without {\"user\": \"...\"} (rooms, if any, an array)",
                   st->webhook_url);
    }
    if (sio_socket_client(s)) {
        if (why) {
            st->refused++;
            sio_socket_reject(s, why, RT_SLICE_NULL);
        } else {
            rt_slice_t info = RT_SLICE_NULL;
            rt_json_object_get(r->body, "info", &info);
            admit(st, s, user, rooms.p && rooms.n ? rooms : RT_SLICE_NULL, info, 0);
        }
    }
    rt_buf_free(&msg);
    sio_socket_unref(s);
}

static void webhook_request(sio_socket_t *s, rt_slice_t auth, void *ud)
{
    standalone_t *st = ud;
    st_client_t *sc = sio_client_data(sio_socket_client(s));
    rt_buf_t b = {0};
    rt_buf_append_cstr(&b, "{\"namespace\":");
    rt_buf_append_json_string(&b, sio_nsp_name(sio_socket_nsp(s)));
    rt_buf_append_cstr(&b, ",\"auth\":");
    rt_buf_append_slice(&b, rt_json_trim(auth));
    rt_buf_append_cstr(&b, ",\"headers\":");
    rt_buf_append_cstr(&b, sc && sc->headers ? sc->headers : "{}");
    rt_buf_append_cstr(&b, ",\"address\":");
    rt_buf_append_json_string(&b, rt_slice_cstr(sc && sc->address ? sc->address : ""));
    rt_buf_putc(&b, '}');
    const char *headers[] = {"Content-Type: application/json", st->secret_header, NULL};
    st_ask_t *a = rt_calloc(1, sizeof *a);
    a->st = st;
    a->s = s;
    sio_socket_ref(s);
    rt_list_insert_tail(&sc->asks, &a->link);
    a->w = fetch_post(st->fetch, st->webhook_url, headers, rt_slice(b.data, b.len), ask_done, a);
    rt_buf_free(&b);
}

/* Admits s as the user (a JSON string token) with these rooms (a JSON
 * array, or empty); the connection closes expiry_in ms after the connect (0: never). */
#define ST_MAX_INFO 16384

static void admit(standalone_t *st, sio_socket_t *s, rt_slice_t user_tok, rt_slice_t rooms, rt_slice_t info,
                  uint64_t expiry_in)
{
    rt_buf_t user = {0};
    rt_json_string_decode(user_tok, &user);
    st_sock_t *ss = rt_calloc(1, sizeof *ss + user.len + 1);
    if (user.len) memcpy(ss->user, user.data, user.len);
    ss->s = s;
    if (rooms.n) ss->rooms = rt_strndup(rooms.p, rooms.n);
    info = info.p ? rt_json_trim(info) : info;
    if (info.n > ST_MAX_INFO) rt_warn_rl("standalone", "an info of %zu bytes is not kept (at most %d)", info.n, ST_MAX_INFO);
    else if (info.n) ss->info = rt_strndup(info.p, info.n);
    net_timer_init(&ss->expiry, expired);
    ss->expiry_in = expiry_in; /* the timer starts once connected */
    sio_socket_set_identity(s, rt_slice(user.data ? user.data : "", user.len));
    rt_buf_free(&user);
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

static void on_event(sio_socket_t *s, const sio_event_t *ev, void *ud)
{
    standalone_t *st = ud;
    st_sock_t *ss = sio_socket_data(s);
    if (!ss || !st->events) return;
    events_hook_event(st->events, &ss->evq, s, ss->user, ev);
}

static void on_disconnect(sio_socket_t *s, const char *reason, void *ud)
{
    standalone_t *st = ud;
    RT_UNUSED(reason);
    st_sock_t *ss = sio_socket_data(s);
    if (!ss) return;
    if (st->events) events_hook_socket_gone(st->events, &ss->evq);
    sio_socket_set_data(s, NULL);
    net_timer_stop(&ss->expiry);
    free(ss->rooms);
    free(ss->info);
    free(ss);
}

static void nothing(rt_slice_t channel, rt_slice_t payload, void *ud)
{
    RT_UNUSED(channel), RT_UNUSED(payload), RT_UNUSED(ud);
}

static const char *socket_user(sio_socket_t *s, const char **info, void *ud)
{
    RT_UNUSED(ud);
    st_sock_t *ss = sio_socket_data(s);
    *info = ss ? ss->info : NULL;
    return ss ? ss->user : NULL;
}

/* ---- life ---- */
static int register_nsp(const char *item, size_t n, void *arg)
{
    standalone_t *st = arg;
    static const sio_nsp_handler_t jwt_h = {.on_connect_request = on_connect_request, .on_connect = on_connect,
                                            .on_event = on_event, .on_disconnect = on_disconnect};
    static const sio_nsp_handler_t hook_h = {.on_connect_request = webhook_request, .on_connect = on_connect,
                                             .on_event = on_event, .on_disconnect = on_disconnect};
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)n, item);
    sio_server_of(st->app->sio, name, st->fetch ? &hook_h : &jwt_h, st);
    return 0;
}

/* The secret file's content (one trailing newline dropped), as a header line. */
static char *secret_header(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "webhook_secret_file %s: %s", path, strerror(errno));
        return NULL;
    }
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    if (n && buf[n - 1] == '\n') n--;
    if (n && buf[n - 1] == '\r') n--;
    buf[n] = 0;
    if (!n || strpbrk(buf, "\r\n")) {
        snprintf(err, errlen, "webhook_secret_file %s: %s", path, n ? "more than one line" : "empty");
        return NULL;
    }
    rt_buf_t h = {0};
    rt_buf_append_cstr(&h, "X-Realtimed-Secret: ");
    rt_buf_append_cstr(&h, buf);
    rt_buf_putc(&h, 0);
    return h.data;
}

int standalone_start(app_t *app)
{
    const app_config_t *cfg = &app->cfg;
    char err[512];
    standalone_t *st = rt_calloc(1, sizeof *st);
    st->app = app;
    if (cfg->webhook_secret_file && !(st->secret_header = secret_header(cfg->webhook_secret_file, err, sizeof err))) {
        fprintf(stderr, "realtimed: %s\n", err);
        free(st);
        return EX_CONFIG;
    }
    if (!strcmp(cfg->auth_mode, "webhook")) {
        st->webhook_url = rt_strndup(cfg->auth_webhook, strlen(cfg->auth_webhook));
        st->fetch = fetch_client_new(app->loop, (unsigned)cfg->auth_timeout);
    } else if (!(st->keys = load_keys(cfg, err, sizeof err))) {
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
    if (cfg->events_webhook)
        st->events = events_hook_new(app->loop, cfg->events_webhook, st->secret_header, (unsigned)cfg->auth_timeout,
                                     (unsigned)cfg->webhook_concurrency);
    app->events_hook = st->events;
    if (cfg->redis_set) {
        static const broker_handler_t bh = {nothing, NULL};
        st->broker = broker_redis_new(app->loop, cfg->redis_queue, NULL, 0, &bh, st, err, sizeof err);
        if (!st->broker) {
            fprintf(stderr, "realtimed: invalid value for redis_queue: %s\n", err);
            return EX_CONFIG;
        }
        if (cfg->emitter_key && *cfg->emitter_key)
            app->emitter = emitter_new(st->broker, app->sio, cfg->emitter_key, (size_t)cfg->max_payload);
        /* a node of the cluster: heartbeats, and recovery of sessions kept by other nodes */
        static const cluster_handler_t none = {0};
        app->cluster = cluster_new(app->loop, st->broker, &none, app);
        app->recovery = cluster_recovery_new(app->cluster, app->sio);
    }
    if (cfg->api_key_file) {
        bool own = cfg->api_listen && *cfg->api_listen;
        st->api = app_api_new(app, own ? NULL : app->http, cfg->api_key_file, socket_user, st, st->broker, err,
                              sizeof err);
        if (!st->api) {
            fprintf(stderr, "realtimed: %s\n", err);
            return EX_CONFIG;
        }
        if (own && app->worker <= 0) { /* --api-listen: a listener of its own (worker 0 with --workers) */
            char host[256] = "";
            int port;
            if (app_parse_hostport(cfg->api_listen, host, sizeof host, &port) < 0) {
                fprintf(stderr, "realtimed: invalid value for api_listen: '%s' (expected [host:]port)\n", cfg->api_listen);
                return EX_CONFIG;
            }
            http_options_t ho;
            http_options_default(&ho);
            ho.max_body = (size_t)cfg->max_payload;
            st->api_http = http_server_new(app->loop, &ho);
            app_api_route(st->api, st->api_http);
            st->api_listener = net_listen_tcp(app->loop, host[0] ? host : NULL, port, http_server_accept, st->api_http,
                                              err, sizeof err);
            if (!st->api_listener) {
                fprintf(stderr, "realtimed: api_listen: %s\n", err);
                return EX_UNAVAILABLE;
            }
            rt_notice("app", "HTTP API on %s:%d", host[0] ? host : "0.0.0.0", net_listener_port(st->api_listener));
        }
    }
    if (st->fetch) rt_notice("app", "standalone mode: webhook authentication (%s), namespaces %s", st->webhook_url,
                             cfg->namespaces);
    else rt_notice("app", "standalone mode: JWT authentication (%zu key%s), namespaces %s", jwt_keys_count(st->keys),
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
    emitter_free(app->emitter);
    app->emitter = NULL;
    cluster_recovery_free(app->recovery);
    app->recovery = NULL;
    cluster_free(app->cluster);
    app->cluster = NULL;
    if (st->api_listener) net_listener_close(st->api_listener);
    st->api_listener = NULL;
    if (st->api_http) http_server_drain(st->api_http);
}

void standalone_reconfigure(app_t *app)
{
    standalone_t *st = app->standalone;
    if (!st) return;
    const app_config_t *cfg = &app->cfg;
    char err[512];
    bool talk = app->worker <= 0; /* the workers would only repeat it */
    if (st->keys) { /* the files again, even if their names did not change: rotation */
        jwt_keys_t *ks = load_keys(cfg, err, sizeof err);
        if (!ks) {
            if (talk) rt_error("app", "SIGHUP: %s: the JWT keys stay as they were", err);
        } else {
            jwt_keys_free(st->keys);
            st->keys = ks;
            if (talk) rt_notice("app", "SIGHUP: %zu JWT key%s loaded", jwt_keys_count(ks), jwt_keys_count(ks) == 1 ? "" : "s");
        }
    }
    st->jo.leeway = cfg->jwt_leeway;
    st->jo.audience = cfg->jwt_audience; /* the strings live in the (new) configuration */
    st->jo.issuer = cfg->jwt_issuer;
    if (st->api && cfg->api_key_file) {
        if (app_api_reload(st->api, cfg->api_key_file, err, sizeof err) < 0) {
            if (talk) rt_error("app", "SIGHUP: %s: the API keys stay as they were", err);
        } else if (talk) {
            rt_notice("app", "SIGHUP: API keys loaded from %s", cfg->api_key_file);
        }
    }
}

struct broker *standalone_broker(const app_t *app)
{
    const standalone_t *st = app->standalone;
    return st ? st->broker : NULL;
}

void standalone_release(app_t *app)
{
    standalone_t *st = app->standalone;
    if (st) {
        app_api_free(st->api);
        broker_free(st->broker); /* after the API, which unsubscribes from it */
        if (st->api_http) http_server_free(st->api_http);
        fetch_client_free(st->fetch); /* after the sessions: they cancelled their calls */
        events_hook_free(st->events);
        free(st->webhook_url);
        free(st->secret_header);
    }
    free(app->standalone);
    app->standalone = NULL;
}
