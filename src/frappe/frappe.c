/* frappe: the Frappe realtime application (see frappe.h).
 *
 * Identity comes from the Engine.IO handshake request, copied once per
 * client into a refcounted fr_ident_t that the client's sockets share.
 *
 * A CONNECT to /<site> runs the middleware: the synchronous checks of the
 * contract (namespace, origin, credentials) with their exact error strings,
 * then get_user_info on the web server, preceded by a fresh read of the
 * socket secret from Redis. Identical calls in flight are coalesced by fetch.
 * Asynchronous operations hold a socket reference and are listed in f->ops so
 * that shutdown can release them. */
#include "frappe.h"

#include <stdio.h>
#include <sys/stat.h>

#include "frappe/fetch.h"
#include "http/http_parser.h"

/* One allocation per client: the strings live in `text` right after the
 * struct, each only as far as it is needed: origin only when callbacks go
 * to it (no webserver_host, and it names a site of the bench), the sid only
 * without an Authorization (which wins), and each within a bound. */
#define FR_MAX_SITE 255   /* a site folder name */
#define FR_MAX_SID 256    /* Frappe's sids are 56 characters */
#define FR_MAX_AUTH 4096  /* "token key:secret", "Bearer <token>" */
typedef struct fr_ident {
    uint32_t refs;
    bool origin_ok;     /* hostname(Host) == hostname(Origin) */
    bool has_cookie;    /* a Cookie header was sent */
    bool auth_too_long; /* an Authorization over FR_MAX_AUTH: refused at CONNECT */
    char *handshake;    /* JSON for extensions (keep_handshake), or NULL */
    rt_list_t ops;      /* backchannel calls made for this client */
    char *site;         /* resolved site name */
    char *origin;       /* Origin header (for the callback URL), or NULL */
    char *sid;          /* sid cookie, or NULL */
    char *authorization;
    char text[];
} fr_ident_t;

typedef struct {
    char *doctype, *docname;
} fr_doc_t;

typedef struct {
    fr_ident_t *id;
    fr_doc_t *open_docs; /* doc_open pairs still open (duplicates allowed) */
    uint32_t nopen, capopen;
    bool system_user;
    bool handlers;       /* the "frappe" app is installed: rooms and events */
    bool ext;            /* announced to the extension */
    uint16_t perms;      /* permission checks in flight */
    uint64_t connected_ns; /* when it was accepted: the viewers' order across the cluster */
    char *utype, *apps;  /* get_user_info's, for the extension, until on_connect */
    char user[];
} fr_socket_t;

typedef enum { OP_AUTH, OP_PERM } fr_op_kind_t;
typedef enum { PERM_DOCTYPE, PERM_DOC, PERM_OPEN, PERM_EXT } fr_perm_kind_t;

typedef struct fr_op {
    rt_list_t link;  /* in f->ops */
    rt_list_t ilink; /* in id->ops: dropped with the client */
    frappe_t *f;
    fr_op_kind_t kind;
    sio_socket_t *s;
    fr_ident_t *id;
    fetch_waiter_t *waiter;
    bool waiting_secret; /* a broker GET holds it: freed when that answers */
    bool orphan;         /* its client is gone: free it then */
    int attempt;
    fr_perm_kind_t perm;
    bool query_empty; /* has_permission gets name="" (Node's `name || ""`) */
    char *doctype, *docname;
    frappe_perm_cb ext_cb; /* PERM_EXT */
    void *ext_ud;
} fr_op_t;

struct frappe {
    net_loop_t *loop;
    sio_server_t *srv;
    frappe_options_t opt;
    char *webserver_base; /* http://host:port when webserver_host is set */
    char *local_base;     /* http://127.0.0.1:webserver_port: callbacks for other origins */
    broker_t *broker;
    fetch_client_t *fetch;
    rt_list_t ops;
    bool stopping;
    rt_buf_t tmp;
    frappe_ext_t ext;
    void *ext_ud;
    bool has_ext;
    frappe_presence_t presence;
    void *presence_ud;
    frappe_stats_t stats;
    /* the web server's outage: logged when it starts, reminded with backoff, and when it ends */
    uint64_t web_down_since, web_remind_at, web_failed;
    unsigned web_remind_ms;
    /* Redis event -> end of the turn that wrote its deliveries */
    net_task_t lat_task;
    uint32_t nlat;
    uint64_t lat_t0[FR_LAT_MAX];
};

static const char SECRET_KEY[] = "socketio_auth_secret";
static const char SECRET_UNAVAILABLE[] = "the socket secret could not be read from Redis";

/* ---- pure helpers ---- */
rt_slice_t frappe_hostname(rt_slice_t url)
{
    if (!url.n) return RT_SLICE(""); /* an absent header: no pointer to scan */
    const char *p = url.p, *end = url.p + url.n;
    for (const char *s = p; s + 2 < end; s++) {
        if (s[0] == ':' && s[1] == '/' && s[2] == '/') {
            p = s + 3;
            const char *slash = memchr(p, '/', (size_t)(end - p));
            if (slash) end = slash;
            break;
        }
    }
    const char *colon = memchr(p, ':', (size_t)(end - p));
    if (colon) end = colon;
    return rt_slice(p, (size_t)(end - p));
}

bool frappe_site_origin(rt_slice_t origin, rt_slice_t *host)
{
    rt_slice_t rest;
    if (origin.n > 7 && !memcmp(origin.p, "http://", 7)) rest = rt_slice(origin.p + 7, origin.n - 7);
    else if (origin.n > 8 && !memcmp(origin.p, "https://", 8)) rest = rt_slice(origin.p + 8, origin.n - 8);
    else return false;
    size_t i = 0;
    /* A hostname: letters, digits, '-', '_' and '.', not starting with a
     * dot and with no empty label (no "..": it names a folder). */
    for (; i < rest.n && rest.p[i] != ':'; i++) {
        char ch = rest.p[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  ch == '-' || ch == '_' || (ch == '.' && i > 0 && rest.p[i - 1] != '.');
        if (!ok) return false;
    }
    if (i == 0 || i > FR_MAX_SITE || rest.p[i - 1] == '.') return false;
    *host = rt_slice(rest.p, i);
    if (i == rest.n) return true;
    size_t digits = rest.n - i - 1; /* after ':' only a port */
    if (digits < 1 || digits > 5) return false;
    for (size_t k = i + 1; k < rest.n; k++)
        if (rest.p[k] < '0' || rest.p[k] > '9') return false;
    return true;
}

bool frappe_cookie_get(rt_slice_t h, const char *name, rt_buf_t *out)
{
    size_t nlen = strlen(name);
    const char *p = h.p, *end = h.p + h.n;
    while (p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *pe = semi ? semi : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        if (eq) {
            const char *k = p, *ke = eq;
            while (k < ke && (*k == ' ' || *k == '\t')) k++;
            while (ke > k && (ke[-1] == ' ' || ke[-1] == '\t')) ke--;
            if ((size_t)(ke - k) == nlen && memcmp(k, name, nlen) == 0) {
                const char *v = eq + 1, *ve = pe;
                while (v < ve && (*v == ' ' || *v == '\t')) v++;
                while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
                if (ve - v >= 2 && *v == '"' && ve[-1] == '"') v++, ve--;
                out->len = 0;
                if (rt_url_decode(rt_slice(v, (size_t)(ve - v)), false, out) < 0) {
                    out->len = 0;
                    rt_buf_append(out, v, (size_t)(ve - v)); /* as cookie's tryDecode */
                }
                return true;
            }
        }
        p = pe + 1;
    }
    return false;
}

/* Appends JavaScript's String(value) for a raw JSON value: strings as text,
 * objects "[object Object]", arrays their elements joined by "," (null
 * elements empty), everything else its JSON text. */
static void js_string_append(rt_slice_t v, rt_buf_t *out, int depth)
{
    switch (rt_json_peek(v)) {
    case RT_JSON_STRING: rt_json_string_decode(v, out); break;
    case RT_JSON_OBJECT: rt_buf_append_cstr(out, "[object Object]"); break;
    case RT_JSON_ARRAY: {
        if (depth > 16) break; /* the value was validated; bound the recursion anyway */
        rt_json_iter_t it;
        rt_slice_t e;
        bool first = true;
        rt_json_iter_init(&it, v);
        while (rt_json_array_next(&it, &e)) {
            if (!first) rt_buf_putc(out, ',');
            first = false;
            if (rt_json_peek(e) != RT_JSON_NULL) js_string_append(e, out, depth + 1);
        }
        break;
    }
    default: rt_buf_append_slice(out, rt_json_trim(v)); break;
    }
}

static void js_string(rt_slice_t v, rt_buf_t *out)
{
    out->len = 0;
    if (!v.p) rt_buf_append_cstr(out, "undefined");
    else js_string_append(v, out, 0);
}

/* ---- identity ---- */
static void ident_unref(fr_ident_t *id)
{
    if (id && --id->refs == 0) {
        free(id->handshake);
        free(id);
    }
}

/* Copies s (NUL-terminated) to *at and advances it; NULL for an absent s. */
static char *pack(char **at, rt_slice_t s, bool present)
{
    if (!present) return NULL;
    char *p = *at;
    if (s.n) memcpy(p, s.p, s.n);
    p[s.n] = 0;
    *at = p + s.n + 1;
    return p;
}

/* The handshake as socket.io's socket.handshake shows it, for extensions:
 * headers (names lower-cased, repeats joined by ", "), the decoded query,
 * the request target, the peer address, the time. */
static char *handshake_json(const http_request_t *req)
{
    rt_buf_t b = {0}, v = {0};
    rt_buf_append_cstr(&b, "{\"headers\":{");
    for (size_t i = 0; i < req->num_headers; i++) {
        const http_header_t *h = &req->headers[i];
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++) seen = rt_slice_case_eq_slice(req->headers[j].name, h->name);
        if (seen) continue;
        v.len = 0;
        for (size_t k = 0; k < h->name.n; k++) {
            char ch = h->name.p[k];
            rt_buf_putc(&v, ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch);
        }
        if (i) rt_buf_putc(&b, ',');
        rt_buf_append_json_string(&b, rt_slice(v.data, v.len));
        rt_buf_putc(&b, ':');
        v.len = 0;
        for (size_t j = i; j < req->num_headers; j++) {
            if (!rt_slice_case_eq_slice(req->headers[j].name, h->name)) continue;
            if (v.len) rt_buf_append(&v, ", ", 2);
            rt_buf_append_slice(&v, req->headers[j].value);
        }
        rt_buf_append_json_string(&b, rt_slice(v.data, v.len));
    }
    rt_buf_append_cstr(&b, "},\"query\":{");
    /* key=value pairs, decoded (a key seen again: the last value) */
    const char *p = req->query.p, *end = req->query.p + req->query.n;
    bool first = true;
    while (req->query.n && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        rt_slice_t k = rt_slice(p, (size_t)((eq ? eq : pe) - p));
        rt_slice_t val = eq ? rt_slice(eq + 1, (size_t)(pe - eq - 1)) : RT_SLICE("");
        if (k.n) {
            if (!first) rt_buf_putc(&b, ',');
            first = false;
            v.len = 0;
            if (rt_url_decode(k, true, &v) < 0) rt_buf_append_slice(&v, k);
            rt_buf_append_json_string(&b, rt_slice(v.data, v.len));
            rt_buf_putc(&b, ':');
            v.len = 0;
            if (rt_url_decode(val, true, &v) < 0) rt_buf_append_slice(&v, val);
            rt_buf_append_json_string(&b, rt_slice(v.data, v.len));
        }
        p = pe + 1;
    }
    char peer[64];
    http_request_peer(req, peer, sizeof peer);
    rt_buf_append_cstr(&b, "},\"url\":");
    rt_buf_append_json_string(&b, req->target);
    rt_buf_append_cstr(&b, ",\"address\":");
    rt_buf_append_json_string(&b, rt_slice_cstr(peer));
    rt_buf_printf(&b, ",\"issued\":%llu,\"secure\":false,\"xdomain\":%s}", (unsigned long long)rt_wall_ms(),
                  http_header_get(req, "origin").p ? "true" : "false");
    rt_buf_putc(&b, 0);
    rt_buf_free(&v);
    return b.data;
}

/* True if sites/<name>/site_config.json exists in the bench: name is a
 * site folder (not "assets", not a path: frappe_site_origin checked it). */
static bool site_exists(frappe_t *f, rt_slice_t name)
{
    if (!f->opt.bench) return false;
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/sites/%.*s/site_config.json", f->opt.bench, (int)name.n, name.p);
    struct stat st;
    return n > 0 && (size_t)n < sizeof path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static void on_client(sio_client_t *c, const http_request_t *req, void *ud)
{
    frappe_t *f = ud;
    rt_slice_t host = http_header_get(req, "host"), origin = http_header_get(req, "origin");
    rt_slice_t xsite = http_header_get(req, "x-frappe-site-name");
    rt_slice_t cookie = http_header_get(req, "cookie"), auth = http_header_get(req, "authorization");
    rt_slice_t hh = frappe_hostname(host);
    /* Site resolution, in the contract's order. */
    rt_slice_t site;
    if (xsite.p && xsite.n) site = frappe_hostname(xsite);
    else if (f->opt.default_site && (rt_slice_eq_cstr(hh, "localhost") || rt_slice_eq_cstr(hh, "127.0.0.1")))
        site = rt_slice_cstr(f->opt.default_site);
    else if (origin.p && origin.n) site = frappe_hostname(origin);
    else site = hh.p ? hh : RT_SLICE("");
    if (site.n > FR_MAX_SITE) site = RT_SLICE(""); /* no site folder is named so: Invalid namespace */
    bool has_auth = auth.p && auth.n;
    bool auth_too_long = has_auth && auth.n > FR_MAX_AUTH;
    if (auth_too_long) has_auth = false;
    rt_buf_t sid = {0};
    bool has_sid = !has_auth && !auth_too_long && cookie.p && frappe_cookie_get(cookie, "sid", &sid) &&
                   sid.len && sid.len <= FR_MAX_SID;
    /* The decoded sid goes into a header of the callback: a value with
     * control bytes (%0d%0a...) would inject headers. It is no sid at all. */
    for (size_t i = 0; has_sid && i < sid.len; i++)
        if ((unsigned char)sid.data[i] < 0x20 || sid.data[i] == 0x7f) has_sid = false;
    /* Credentials and the secret go to the client's Origin only when it is
     * a site of this bench by its own name; any other goes to the local web
     * server (callback_url). */
    rt_slice_t ohost;
    bool keep_origin = origin.p && !f->webserver_base && frappe_site_origin(origin, &ohost) &&
                       site_exists(f, ohost);
    size_t text = site.n + 1 + (keep_origin ? origin.n + 1 : 0) + (has_sid ? sid.len + 1 : 0) +
                  (has_auth ? auth.n + 1 : 0);
    fr_ident_t *id = rt_malloc(sizeof *id + text);
    char *at = id->text;
    id->refs = 1;
    id->origin_ok = origin.p && rt_slice_eq(hh, frappe_hostname(origin));
    id->has_cookie = cookie.p && cookie.n;
    id->auth_too_long = auth_too_long;
    rt_list_init(&id->ops);
    id->handshake = f->opt.keep_handshake ? handshake_json(req) : NULL;
    id->site = pack(&at, site, true);
    id->origin = pack(&at, origin, keep_origin);
    id->sid = pack(&at, rt_slice(sid.data, sid.len), has_sid);
    id->authorization = pack(&at, auth, has_auth);
    rt_buf_free(&sid);
    sio_client_set_data(c, id);
}

static void op_free(fr_op_t *op);

/* The client is gone: its calls to the web server are of no use any more
 * and are dropped (fetch cancels them; a flood of clients that leave must
 * not leave their calls behind). One waiting for the secret is freed when
 * that answers. */
static void on_client_close(sio_client_t *c, void *ud)
{
    RT_UNUSED(ud);
    fr_ident_t *id = sio_client_data(c);
    if (!id) return; /* the client's own reference keeps id alive meanwhile */
    rt_list_t *it, *nx;
    rt_list_foreach_safe(it, nx, &id->ops)
    {
        fr_op_t *op = rt_container_of(it, fr_op_t, ilink);
        if (op->waiting_secret) {
            op->orphan = true;
            continue;
        }
        if (op->ext_cb) {
            frappe_perm_cb cb = op->ext_cb;
            op->ext_cb = NULL;
            cb(false, op->ext_ud);
        }
        op_free(op);
    }
    ident_unref(id);
}

/* ---- web server calls ---- */
/* Builds the callback URL for path (and form-encoded args). */
static void callback_url(frappe_t *f, const fr_ident_t *id, const char *path, rt_buf_t *url)
{
    url->len = 0;
    if (f->webserver_base) {
        rt_buf_append_cstr(url, f->webserver_base);
    } else if (!id->origin) {
        rt_buf_append_cstr(url, f->local_base);
    } else {
        const char *o = id->origin;
        if (f->opt.developer_mode) {
            /* Node: [protocol, host, port] = origin.split(":"), port swapped */
            const char *c1 = strchr(o, ':');
            const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
            size_t keep = c2 ? (size_t)(c2 - o) : strlen(o);
            rt_buf_append(url, o, keep);
            rt_buf_printf(url, ":%d", f->opt.webserver_port);
        } else {
            rt_buf_append_cstr(url, o);
        }
    }
    rt_buf_append_cstr(url, path);
}

static void op_free(fr_op_t *op)
{
    if (op->kind == OP_PERM && op->s) {
        fr_socket_t *fs = sio_socket_data(op->s);
        if (fs && fs->perms) fs->perms--;
    }
    rt_list_remove(&op->link);
    rt_list_remove(&op->ilink);
    if (op->waiter) fetch_cancel(op->waiter);
    if (op->s) sio_socket_unref(op->s);
    ident_unref(op->id);
    free(op->doctype);
    free(op->docname);
    free(op);
}

static void op_send(fr_op_t *op, rt_slice_t secret);

static void on_fetch(const fetch_result_t *r, void *ud);

static void on_secret(bool ok, rt_slice_t value, void *ud)
{
    fr_op_t *op = ud;
    op->waiting_secret = false;
    if (op->f->stopping) return; /* released by frappe_free */
    if (op->orphan) {
        if (op->ext_cb) {
            frappe_perm_cb cb = op->ext_cb;
            op->ext_cb = NULL;
            cb(false, op->ext_ud);
        }
        op_free(op);
        return;
    }
    op->f->stats.secret_failing = !ok;
    if (!ok) op->f->stats.secret_failed_ms = rt_now_ms();
    if (!ok) op->f->stats.secret_failures++;
    if (!ok) {
        /* Redis did not give the secret within the auth timeout (logged by
         * the broker). Calling without it would only earn a misleading
         * refusal from a v16 web server: say what is wrong. */
        fetch_result_t r = {0, SECRET_UNAVAILABLE, false, RT_SLICE_NULL};
        on_fetch(&r, op);
        return;
    }
    op_send(op, value);
}

/* Reads the secret fresh (the contract: before every callback), then calls.
 * While Redis is down the read waits for it, at most auth_timeout. */
static void op_start(fr_op_t *op)
{
    op->waiting_secret = true;
    broker_get(op->f->broker, SECRET_KEY, op->f->opt.auth_timeout_ms, on_secret, op);
}

static void auth_done(fr_op_t *op, const fetch_result_t *r);
static void perm_done(fr_op_t *op, const fetch_result_t *r);

/* One line when calls to the web server start failing, reminders at 10 s,
 * 20 s, ... 5 min, one line when it answers again. */
static void web_outage(frappe_t *f, const fr_op_t *op, const fetch_result_t *r)
{
    uint64_t now = rt_now_ms();
    if (!r->status && r->err != SECRET_UNAVAILABLE) {
        f->web_failed++;
        if (!f->web_down_since) {
            f->web_down_since = now;
            f->web_remind_ms = 10000;
            f->web_remind_at = now + f->web_remind_ms;
            rt_warn("frappe", "the web server does not answer (site %s: %s): connections cannot be "
                              "authenticated until it does", op->id->site, r->err);
        } else if (now >= f->web_remind_at) {
            rt_warn("frappe", "the web server still does not answer after %llu s (%llu calls failed; last, site %s: %s)",
                    (unsigned long long)((now - f->web_down_since) / 1000), (unsigned long long)f->web_failed,
                    op->id->site, r->err);
            f->web_remind_ms = RT_MIN(f->web_remind_ms * 2, 300000u);
            f->web_remind_at = now + f->web_remind_ms;
        }
    } else if (r->status && f->web_down_since) {
        rt_notice("frappe", "the web server answers again (site %s) after %llu.%03llu s; %llu calls failed meanwhile",
                  op->id->site, (unsigned long long)((now - f->web_down_since) / 1000),
                  (unsigned long long)((now - f->web_down_since) % 1000), (unsigned long long)f->web_failed);
        f->web_down_since = f->web_failed = 0;
    }
}

static void on_fetch(const fetch_result_t *r, void *ud)
{
    fr_op_t *op = ud;
    op->waiter = NULL;
    web_outage(op->f, op, r);
    if (op->kind == OP_AUTH) auth_done(op, r);
    else perm_done(op, r);
}

static void op_send(fr_op_t *op, rt_slice_t secret)
{
    frappe_t *f = op->f;
    fr_ident_t *id = op->id;
    rt_buf_t url = {0}, h1 = {0}, h2 = {0}, h3 = {0};
    if (op->kind == OP_AUTH) {
        callback_url(f, id, "/api/method/frappe.realtime.get_user_info", &url);
    } else {
        callback_url(f, id, "/api/method/frappe.realtime.has_permission?doctype=", &url);
        rt_form_encode(rt_slice_cstr(op->doctype), &url);
        rt_buf_append_cstr(&url, "&name=");
        if (!op->query_empty) rt_form_encode(rt_slice_cstr(op->docname), &url);
    }
    rt_buf_putc(&url, 0);
    const char *headers[4];
    int nh = 0;
    /* Authorization wins over the sid cookie (Frappe PRs #26766/#31864). */
    if (id->authorization) rt_buf_printf(&h1, "Authorization: %s", id->authorization);
    else rt_buf_printf(&h1, "Cookie: sid=%s", id->sid ? id->sid : "");
    rt_buf_putc(&h1, 0);
    headers[nh++] = h1.data;
    rt_buf_printf(&h2, "X-Frappe-Site-Name: %s", id->site);
    rt_buf_putc(&h2, 0);
    headers[nh++] = h2.data;
    if (secret.p) {
        rt_buf_printf(&h3, "X-Frappe-Socket-Secret: %.*s", (int)secret.n, secret.p);
        rt_buf_putc(&h3, 0);
        headers[nh++] = h3.data;
    }
    headers[nh] = NULL;
    op->waiter = fetch_get(f->fetch, url.data, headers, on_fetch, op);
    rt_buf_free(&url);
    rt_buf_free(&h1);
    rt_buf_free(&h2);
    rt_buf_free(&h3);
}

static fr_op_t *op_new(frappe_t *f, fr_op_kind_t kind, sio_socket_t *s, fr_ident_t *id)
{
    fr_op_t *op = rt_calloc(1, sizeof *op);
    op->f = f;
    op->kind = kind;
    op->s = s;
    sio_socket_ref(s);
    op->id = id;
    id->refs++;
    rt_list_insert_tail(&f->ops, &op->link);
    rt_list_insert_tail(&id->ops, &op->ilink);
    return op;
}

/* ---- authentication ---- */
static void fr_socket_free(fr_socket_t *fs)
{
    if (!fs) return;
    for (uint32_t i = 0; i < fs->nopen; i++) {
        free(fs->open_docs[i].doctype);
        free(fs->open_docs[i].docname);
    }
    free(fs->open_docs);
    free(fs->utype);
    free(fs->apps);
    ident_unref(fs->id);
    free(fs);
}

static void join_default_rooms(frappe_t *f, sio_socket_t *s, fr_socket_t *fs)
{
    rt_buf_t *b = &f->tmp;
    b->len = 0;
    rt_buf_append_cstr(b, "user:");
    rt_buf_append_cstr(b, fs->user);
    sio_join(s, rt_slice(b->data, b->len));
    sio_join(s, RT_SLICE("website"));
    if (fs->system_user) sio_join(s, RT_SLICE("all"));
}

/* Tells the extension about a socket that was just accepted. */
static void ext_announce(frappe_t *f, sio_socket_t *s, fr_socket_t *fs, rt_slice_t utype, rt_slice_t apps)
{
    fr_ident_t *id = fs->id;
    rt_buf_t b = {0}, url = {0};
    rt_slice_t nsp = sio_nsp_name(sio_socket_nsp(s));
    rt_buf_append_cstr(&b, "{\"id\":");
    rt_buf_append_json_string(&b, rt_slice_cstr(sio_socket_id(s)));
    rt_buf_append_cstr(&b, ",\"nsp\":");
    rt_buf_append_json_string(&b, nsp);
    rt_buf_append_cstr(&b, ",\"site\":");
    rt_buf_append_json_string(&b, rt_slice_cstr(id->site));
    rt_buf_append_cstr(&b, ",\"user\":");
    rt_buf_append_json_string(&b, rt_slice_cstr(fs->user));
    rt_buf_append_cstr(&b, ",\"user_type\":");
    rt_buf_append_slice(&b, utype.p && rt_json_peek(utype) == RT_JSON_STRING ? rt_json_trim(utype) : RT_SLICE("null"));
    rt_buf_append_cstr(&b, ",\"installed_apps\":");
    rt_buf_append_slice(&b, apps.p && rt_json_peek(apps) == RT_JSON_ARRAY ? rt_json_trim(apps) : RT_SLICE("[]"));
    rt_buf_append_cstr(&b, ",\"sid\":");
    if (id->sid) rt_buf_append_json_string(&b, rt_slice_cstr(id->sid));
    else rt_buf_append_cstr(&b, "null");
    rt_buf_append_cstr(&b, ",\"authorization_header\":");
    if (id->authorization) rt_buf_append_json_string(&b, rt_slice_cstr(id->authorization));
    else rt_buf_append_cstr(&b, "null");
    callback_url(f, id, "", &url);
    rt_buf_append_cstr(&b, ",\"url\":");
    rt_buf_append_json_string(&b, rt_slice(url.data, url.len));
    rt_buf_append_cstr(&b, ",\"handshake\":");
    rt_buf_append_cstr(&b, id->handshake ? id->handshake : "null");
    rt_buf_putc(&b, '}');
    fs->ext = true;
    f->ext.socket_ready(s, rt_slice(b.data, b.len), f->ext_ud);
    rt_buf_free(&b);
    rt_buf_free(&url);
}

static char *json_copy(rt_slice_t v, rt_json_type_t want, const char *otherwise)
{
    rt_slice_t t = v.p && rt_json_peek(v) == want ? rt_json_trim(v) : rt_slice_cstr(otherwise);
    return rt_strndup(t.p, t.n);
}

static void accept_as(frappe_t *f, sio_socket_t *s, fr_ident_t *id, rt_slice_t user, bool system_user,
                      bool frappe_app, rt_slice_t utype, rt_slice_t apps)
{
    fr_socket_t *fs = rt_calloc(1, sizeof *fs + user.n + 1);
    fs->id = id;
    id->refs++;
    memcpy(fs->user, user.p, user.n);
    fs->system_user = system_user;
    fs->connected_ns = rt_now_ns();
    /* Frappe's own handlers (rooms and events) are the "frappe" app's; a
     * site without it gets none, as in Node. */
    fs->handlers = frappe_app;
    if (f->has_ext) {
        fs->utype = json_copy(utype, RT_JSON_STRING, "null");
        fs->apps = json_copy(apps, RT_JSON_ARRAY, "[]");
    }
    sio_socket_set_data(s, fs);
    /* A kept session is recovered only by the same user of the same site. */
    rt_buf_t who = {0};
    rt_buf_append_cstr(&who, id->site);
    rt_buf_putc(&who, 0);
    rt_buf_append_slice(&who, user);
    sio_socket_set_identity(s, rt_slice(who.data, who.len));
    rt_buf_free(&who);
    sio_socket_accept(s); /* on_connect follows, now or once a recovery is settled */
}

/* A recovered socket is back in the rooms it had: its open documents are
 * viewers again. */
static void reopen_room(rt_slice_t room, void *arg)
{
    sio_socket_t *s = arg;
    fr_socket_t *fs = sio_socket_data(s);
    if (room.n <= 9 || memcmp(room.p, "open_doc:", 9)) return;
    const char *sl = memchr(room.p + 9, '/', room.n - 9);
    if (!sl) return;
    if (fs->nopen == fs->capopen) {
        fs->capopen = fs->capopen ? fs->capopen * 2 : 4;
        fs->open_docs = rt_realloc(fs->open_docs, fs->capopen * sizeof *fs->open_docs);
    }
    fs->open_docs[fs->nopen++] = (fr_doc_t){rt_strndup(room.p + 9, (size_t)(sl - room.p - 9)),
                                            rt_strndup(sl + 1, (size_t)(room.p + room.n - sl - 1))};
}

static void notify_viewers(frappe_t *f, sio_socket_t *s, const fr_socket_t *fs, const char *dt, const char *dn,
                           bool opened);

static void on_connect(sio_socket_t *s, rt_slice_t auth, void *ud)
{
    frappe_t *f = ud;
    RT_UNUSED(auth);
    fr_socket_t *fs = sio_socket_data(s);
    if (!fs) return;
    f->stats.auth_ok++;
    eio_session_t *es = sio_client_session(sio_socket_client(s));
    bool recovered = sio_socket_recovered(s);
    rt_info_rl("frappe", "connect: site %s, user %s, %s, socket %s%s", fs->id->site, fs->user,
               es && eio_session_is_websocket(es) ? "websocket" : "polling", sio_socket_id(s),
               recovered ? " (recovered)" : "");
    if (fs->handlers) join_default_rooms(f, s, fs);
    if (recovered) {
        sio_socket_rooms_each(s, reopen_room, s);
        for (uint32_t i = 0; i < fs->nopen && sio_socket_connected(s); i++)
            notify_viewers(f, s, fs, fs->open_docs[i].doctype, fs->open_docs[i].docname, true);
    }
    /* the host learns the rooms (a recovered socket's too) with the socket */
    if (f->has_ext && sio_socket_connected(s)) ext_announce(f, s, fs, rt_slice_cstr(fs->utype), rt_slice_cstr(fs->apps));
    free(fs->utype);
    free(fs->apps);
    fs->utype = fs->apps = NULL;
}

const char *const frappe_refusal_kinds[FR_REFUSALS] = {"unauthorized",  "backchannel",       "no_credentials",
                                                       "invalid_origin", "invalid_namespace", "header_too_long"};

static void reject(frappe_t *f, sio_socket_t *s, int kind, const char *msg)
{
    f->stats.auth_failed++;
    f->stats.refused[kind]++;
    sio_socket_reject(s, msg, RT_SLICE_NULL);
}

/* Node's JSON.parse message for a body that is not JSON (V8 wording). */
static void syntax_error_text(rt_slice_t body, rt_buf_t *out)
{
    if (!body.n) {
        rt_buf_append_cstr(out, "Unauthorized: SyntaxError: Unexpected end of JSON input");
        return;
    }
    char tok = body.p[0];
    rt_buf_printf(out, "Unauthorized: SyntaxError: Unexpected token '%c', \"", tok);
    size_t n = RT_MIN(body.n, 10);
    for (size_t i = 0; i < n; i++) {
        char c = body.p[i];
        if (c == '\n') rt_buf_append_cstr(out, "\\n");
        else if ((unsigned char)c < 0x20) rt_buf_putc(out, ' ');
        else rt_buf_putc(out, c);
    }
    rt_buf_append_cstr(out, body.n > 10 ? "\"... is not valid JSON" : "\" is not valid JSON");
}

static void auth_done(fr_op_t *op, const fetch_result_t *r)
{
    frappe_t *f = op->f;
    sio_socket_t *s = op->s;
    rt_buf_t msg = {0};
    if (!sio_socket_client(s)) goto out; /* the client went away meanwhile */
    if (!r->status) {
        rt_debug("frappe", "get_user_info for site %s failed: %s", op->id->site, r->err);
        reject(f, s, FR_REFUSED_BACKCHANNEL,
               r->timed_out                    ? "Unauthorized: TimeoutError: The operation was aborted due to timeout"
               : r->err == SECRET_UNAVAILABLE ? "Unauthorized: Error: the socket secret could not be read from Redis"
                                              : "Unauthorized: TypeError: fetch failed");
        goto out;
    }
    rt_json_type_t type;
    if (!rt_json_valid(r->body, &type)) {
        syntax_error_text(rt_json_trim(r->body), &msg);
        rt_buf_putc(&msg, 0);
        reject(f, s, FR_REFUSED_UNAUTHORIZED, msg.data);
        goto out;
    }
    rt_slice_t m = RT_SLICE_NULL, apps = RT_SLICE_NULL, user = RT_SLICE_NULL, utype = RT_SLICE_NULL;
    bool has_m = type == RT_JSON_OBJECT && rt_json_object_get(r->body, "message", &m);
    if (has_m && rt_json_peek(m) == RT_JSON_OBJECT) {
        rt_json_object_get(m, "installed_apps", &apps);
        rt_json_object_get(m, "user", &user);
        rt_json_object_get(m, "user_type", &utype);
    }
    if (!apps.p && op->attempt == 0) {
        /* One retry: the first call of a fresh site creates the secret. */
        op->attempt = 1;
        op_start(op);
        return;
    }
    if (!has_m || rt_json_peek(m) == RT_JSON_NULL) {
        reject(f, s, FR_REFUSED_UNAUTHORIZED,
               "Unauthorized: TypeError: Cannot read properties of undefined (reading 'installed_apps')");
        goto out;
    }
    rt_buf_t u = {0};
    if (!user.p || rt_json_peek(user) != RT_JSON_STRING || rt_json_string_decode(user, &u) < 0 || !u.len) {
        /* Node accepts this `{}` answer (secret mismatch) as a deaf socket. */
        rt_warn_rl("frappe", "get_user_info for site %s returned no user: is socketio_auth_secret on "
                          "redis_queue the one the web server uses?", op->id->site);
        rt_buf_free(&u);
        reject(f, s, FR_REFUSED_UNAUTHORIZED, "Unauthorized: Error: get_user_info returned no user");
        goto out;
    }
    bool system_user = utype.p && rt_slice_eq_cstr(utype, "\"System User\"");
    bool frappe_app = false;
    if (apps.p && rt_json_peek(apps) == RT_JSON_ARRAY) {
        rt_json_iter_t it;
        rt_slice_t a;
        rt_json_iter_init(&it, apps);
        while (rt_json_array_next(&it, &a))
            if (rt_slice_eq_cstr(a, "\"frappe\"")) frappe_app = true;
    }
    accept_as(f, s, op->id, rt_slice(u.data, u.len), system_user, frappe_app, utype, apps);
    rt_buf_free(&u);
out:
    rt_buf_free(&msg);
    op_free(op);
}

static void on_connect_request(sio_socket_t *s, rt_slice_t auth, void *ud)
{
    frappe_t *f = ud;
    RT_UNUSED(auth); /* the handshake auth payload is ignored, as in Frappe */
    sio_client_t *c = sio_socket_client(s);
    fr_ident_t *id = sio_client_data(c);
    rt_slice_t nsp = sio_nsp_name(sio_socket_nsp(s));
    rt_slice_t site = rt_slice(nsp.p + 1, nsp.n - 1);
    if (!rt_slice_eq_cstr(site, id->site)) {
        reject(f, s, FR_REFUSED_INVALID_NAMESPACE, "Invalid namespace");
        return;
    }
    if (f->opt.guest_mode) {
        accept_as(f, s, id, RT_SLICE("Guest"), false, true, RT_SLICE("\"Website User\""), RT_SLICE("[\"frappe\"]"));
        return;
    }
    if (!id->origin_ok) {
        reject(f, s, FR_REFUSED_INVALID_ORIGIN, "Invalid origin");
        return;
    }
    if (id->auth_too_long) {
        reject(f, s, FR_REFUSED_HEADER_TOO_LONG, "Unauthorized: Error: Authorization header too long");
        return;
    }
    if (!id->has_cookie && !id->authorization) {
        reject(f, s, FR_REFUSED_NO_CREDENTIALS,
               "Missing cookie and authorization header. Either one needed for authentication.");
        return;
    }
    if (!id->sid && !id->authorization) {
        reject(f, s, FR_REFUSED_NO_CREDENTIALS, "No authentication method used. Use cookie or authorization header.");
        return;
    }
    op_start(op_new(f, OP_AUTH, s, id));
}

/* ---- permission checks and client events ---- */
static void doc_room(rt_buf_t *b, const char *prefix, const char *dt, const char *dn)
{
    b->len = 0;
    rt_buf_append_cstr(b, prefix);
    rt_buf_append_cstr(b, dt);
    if (dn) {
        rt_buf_putc(b, '/');
        rt_buf_append_cstr(b, dn);
    }
}

typedef struct {
    sio_socket_t **v;
    size_t n, cap;
} sock_vec_t;

static void collect(sio_socket_t *s, void *arg)
{
    sock_vec_t *sv = arg;
    if (sv->n == sv->cap) {
        sv->cap = sv->cap ? sv->cap * 2 : 16;
        sv->v = rt_realloc(sv->v, sv->cap * sizeof *sv->v);
    }
    sv->v[sv->n++] = s;
}

static int by_seq(const void *a, const void *b)
{
    uint64_t x = sio_socket_seq(*(sio_socket_t *const *)a), y = sio_socket_seq(*(sio_socket_t *const *)b);
    return x < y ? -1 : x > y;
}

/* doc_viewers {doctype, docname, users} to open_doc:<dt>/<dn> of nsp:
 * users[] one per viewing socket in order, de-duplicated here; nothing when
 * the only viewer is self's own user. */
static void broadcast_viewers(sio_nsp_t *nsp, rt_slice_t dt, rt_slice_t dn, rt_slice_t self_user,
                              const rt_slice_t *users, size_t n)
{
    if (n == 1 && rt_slice_eq(users[0], self_user)) return;
    rt_buf_t room = {0};
    rt_buf_append_cstr(&room, "open_doc:");
    rt_buf_append_slice(&room, dt);
    rt_buf_putc(&room, '/');
    rt_buf_append_slice(&room, dn);
    rt_buf_t body = {0};
    rt_buf_append_cstr(&body, "\"doc_viewers\",{\"doctype\":");
    rt_buf_append_json_string(&body, dt);
    rt_buf_append_cstr(&body, ",\"docname\":");
    rt_buf_append_json_string(&body, dn);
    rt_buf_append_cstr(&body, ",\"users\":[");
    size_t listed = 0;
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++) seen = rt_slice_eq(users[j], users[i]);
        if (seen) continue;
        if (listed++) rt_buf_putc(&body, ',');
        rt_buf_append_json_string(&body, users[i]);
    }
    rt_buf_append_cstr(&body, "]}");
    /* Only the latest list matters: a polling viewer that has not fetched
     * the previous one gets just this (its queue holds one per document). */
    size_t room_len = room.len;
    rt_buf_putc(&room, 0);
    rt_buf_append_slice(&room, sio_nsp_name(nsp));
    uint64_t key = rt_hash(room.data, room.len);
    rt_slice_t r = rt_slice(room.data, room_len);
    sio_broadcast_latest(nsp, &r, 1, NULL, rt_slice(body.data, body.len), key);
    rt_buf_free(&body);
    rt_buf_free(&room);
}

/* The viewers of a document as this process sees them: its sockets in the
 * room, in namespace connection order. */
static void notify_viewers_local(sio_nsp_t *nsp, const char *self_user, const char *dt, const char *dn)
{
    rt_buf_t room = {0};
    doc_room(&room, "open_doc:", dt, dn);
    sock_vec_t sv = {0};
    sio_room_each(nsp, rt_slice(room.data, room.len), collect, &sv);
    if (sv.n > 1) qsort(sv.v, sv.n, sizeof *sv.v, by_seq);
    rt_slice_t stack[16], *users = sv.n > 16 ? rt_calloc(sv.n, sizeof *users) : stack;
    size_t n = 0;
    for (size_t i = 0; i < sv.n; i++) {
        fr_socket_t *fs = sio_socket_data(sv.v[i]);
        if (fs) users[n++] = rt_slice_cstr(fs->user);
    }
    broadcast_viewers(nsp, rt_slice_cstr(dt), rt_slice_cstr(dn), rt_slice_cstr(self_user), users, n);
    if (users != stack) free(users);
    free(sv.v);
    rt_buf_free(&room);
}

static void count_one(sio_socket_t *s, void *arg)
{
    RT_UNUSED(s);
    ++*(size_t *)arg;
}

/* After a doc_open, doc_close or disconnect of s: through the cluster when
 * there is one (every node's viewers; the list comes back to
 * frappe_viewers), else from this process's sockets. */
static void notify_viewers(frappe_t *f, sio_socket_t *s, const fr_socket_t *fs, const char *dt, const char *dn,
                           bool open)
{
    sio_nsp_t *nsp = sio_socket_nsp(s);
    if (f->presence.viewer) {
        size_t left = 0;
        if (!open) {
            rt_buf_t room = {0};
            doc_room(&room, "open_doc:", dt, dn);
            sio_room_each(nsp, rt_slice(room.data, room.len), count_one, &left);
            rt_buf_free(&room);
        }
        if (f->presence.viewer(s, rt_slice_cstr(dt), rt_slice_cstr(dn), rt_slice_cstr(fs->user), fs->connected_ns,
                               open, left == 0, f->presence_ud))
            return;
    }
    notify_viewers_local(nsp, fs->user, dt, dn);
}

void frappe_viewers(frappe_t *f, rt_slice_t nsp_name, rt_slice_t dt, rt_slice_t dn, rt_slice_t self_user,
                    const rt_slice_t *users, size_t n)
{
    sio_nsp_t *nsp = sio_server_find(f->srv, nsp_name);
    if (nsp) broadcast_viewers(nsp, dt, dn, self_user, users, n);
}

typedef struct {
    void (*fn)(sio_socket_t *s, rt_slice_t dt, rt_slice_t dn, rt_slice_t user, uint64_t connected_ns, void *arg);
    void *arg;
} each_viewer_t;

static void each_viewer_sock(sio_socket_t *s, void *arg)
{
    each_viewer_t *e = arg;
    fr_socket_t *fs = sio_socket_data(s);
    if (!fs) return;
    for (uint32_t i = 0; i < fs->nopen; i++)
        e->fn(s, rt_slice_cstr(fs->open_docs[i].doctype), rt_slice_cstr(fs->open_docs[i].docname),
              rt_slice_cstr(fs->user), fs->connected_ns, e->arg);
}

static void each_viewer_nsp(sio_nsp_t *nsp, void *arg) { sio_nsp_each(nsp, each_viewer_sock, arg); }

void frappe_each_viewer(frappe_t *f,
                        void (*fn)(sio_socket_t *s, rt_slice_t dt, rt_slice_t dn, rt_slice_t user,
                                   uint64_t connected_ns, void *arg),
                        void *arg)
{
    each_viewer_t e = {fn, arg};
    sio_server_each_nsp(f->srv, each_viewer_nsp, &e);
}

void frappe_set_presence(frappe_t *f, const frappe_presence_t *p, void *ud)
{
    f->presence = p ? *p : (frappe_presence_t){0};
    f->presence_ud = ud;
}

static void perm_done(fr_op_t *op, const fetch_result_t *r)
{
    frappe_t *f = op->f;
    sio_socket_t *s = op->s;
    f->stats.perm_checks++;
    bool allowed = false;
    rt_slice_t m;
    if (!r->status) {
        rt_warn_rl("frappe", "Can't check permissions for %s: %s", op->doctype, r->err);
    } else if (r->status == 200 && rt_json_valid(r->body, NULL) &&
               rt_json_peek(r->body) == RT_JSON_OBJECT && rt_json_object_get(r->body, "message", &m)) {
        allowed = rt_slice_eq_cstr(m, "true");
    }
    if (op->perm == PERM_EXT) {
        frappe_perm_cb cb = op->ext_cb;
        op->ext_cb = NULL;
        cb(allowed && sio_socket_connected(s), op->ext_ud);
        op_free(op);
        return;
    }
    /* A refusal (403) is silent: no join, nothing sent back. */
    if (allowed && sio_socket_connected(s)) {
        rt_buf_t room = {0};
        fr_socket_t *fs = sio_socket_data(s);
        switch (op->perm) {
        case PERM_DOCTYPE: doc_room(&room, "doctype:", op->doctype, NULL); break;
        case PERM_DOC: doc_room(&room, "doc:", op->doctype, op->docname); break;
        case PERM_OPEN: doc_room(&room, "open_doc:", op->doctype, op->docname); break;
        case PERM_EXT: break; /* answered above */
        }
        int joined = sio_join(s, rt_slice(room.data, room.len));
        if (op->perm == PERM_OPEN && joined == RT_OK) {
            /* Once per document (Node keeps duplicates: a client opening one
             * form again and again would grow the list without bound). */
            bool known = false;
            for (uint32_t i = 0; i < fs->nopen && !known; i++)
                known = !strcmp(fs->open_docs[i].doctype, op->doctype) && !strcmp(fs->open_docs[i].docname, op->docname);
            if (!known) {
                if (fs->nopen == fs->capopen) {
                    fs->capopen = fs->capopen ? fs->capopen * 2 : 4;
                    fs->open_docs = rt_realloc(fs->open_docs, fs->capopen * sizeof *fs->open_docs);
                }
                fs->open_docs[fs->nopen++] = (fr_doc_t){op->doctype, op->docname};
                op->doctype = op->docname = NULL; /* moved */
            }
            notify_viewers(f, s, fs, known ? op->doctype : fs->open_docs[fs->nopen - 1].doctype,
                           known ? op->docname : fs->open_docs[fs->nopen - 1].docname, true);
        }
        rt_buf_free(&room);
    }
    op_free(op);
}

/* Each socket has at most FR_MAX_PERMS checks in flight, for names within
 * bounds (Frappe's doctype names are at most 61 characters, docnames 140):
 * a client cannot queue unbounded work on the backchannel. */
#define FR_MAX_PERMS 32
#define FR_MAX_DOCTYPE 256
#define FR_MAX_DOCNAME 1024

static bool perm_admissible(fr_socket_t *fs, size_t dt_len, size_t dn_len)
{
    const char *why = fs->perms >= FR_MAX_PERMS ? "too many permission checks in flight"
                      : dt_len > FR_MAX_DOCTYPE || dn_len > FR_MAX_DOCNAME ? "doctype or name too long"
                                                                          : NULL;
    if (!why) return true;
    rt_warn_rl("frappe", "permission check refused (%s) for a socket of %s", why, fs->user);
    return false;
}

static void check_permission(frappe_t *f, sio_socket_t *s, fr_perm_kind_t kind, rt_slice_t dt, rt_slice_t dn)
{
    fr_socket_t *fs = sio_socket_data(s);
    if (f->opt.guest_mode) return; /* no web server to ask: nothing is granted */
    rt_buf_t *b = &f->tmp, dname = {0};
    js_string(dt, b);
    if (kind != PERM_DOCTYPE) js_string(dn, &dname);
    if (!perm_admissible(fs, b->len, dname.len)) { /* silent to the client, like a refusal */
        rt_buf_free(&dname);
        return;
    }
    fr_op_t *op = op_new(f, OP_PERM, s, fs->id);
    fs->perms++;
    op->perm = kind;
    op->doctype = rt_strndup(b->data ? b->data : "", b->len);
    if (kind == PERM_DOCTYPE) {
        op->docname = rt_strndup("", 0);
    } else {
        op->docname = rt_strndup(dname.data ? dname.data : "", dname.len);
        /* Node asks has_permission with `name || ""`: a missing or falsy
         * docname is sent empty, while the room name keeps String(docname). */
        rt_json_type_t t = dn.p ? rt_json_peek(dn) : RT_JSON_NULL;
        op->query_empty = !dn.p || t == RT_JSON_NULL || t == RT_JSON_FALSE ||
                          (t == RT_JSON_STRING && dn.n == 2) || rt_slice_eq_cstr(rt_json_trim(dn), "0");
    }
    rt_buf_free(&dname);
    op_start(op);
}

static void leave_room(sio_socket_t *s, const char *prefix, rt_slice_t a, rt_slice_t b, bool two)
{
    rt_buf_t dt = {0}, dn = {0}, room = {0};
    js_string(a, &dt);
    rt_buf_putc(&dt, 0);
    if (two) {
        js_string(b, &dn);
        rt_buf_putc(&dn, 0);
    }
    doc_room(&room, prefix, dt.data, two ? dn.data : NULL);
    sio_leave(s, rt_slice(room.data, room.len));
    rt_buf_free(&dt);
    rt_buf_free(&dn);
    rt_buf_free(&room);
}

static void native_event(frappe_t *f, sio_socket_t *s, fr_socket_t *fs, const sio_event_t *ev);

static void on_event(sio_socket_t *s, const sio_event_t *ev, void *ud)
{
    frappe_t *f = ud;
    fr_socket_t *fs = sio_socket_data(s);
    if (!fs) return;
    if (fs->handlers) native_event(f, s, fs, ev);
    /* Apps' handlers too (as in Node, where frappe's are one app's among others). */
    if (fs->ext && sio_socket_connected(s)) f->ext.socket_event(s, ev, f->ext_ud);
}

static void native_event(frappe_t *f, sio_socket_t *s, fr_socket_t *fs, const sio_event_t *ev)
{
    rt_slice_t a[2] = {RT_SLICE_NULL, RT_SLICE_NULL}, first;
    rt_json_iter_t it;
    rt_json_iter_init(&it, ev->payload);
    rt_json_array_next(&it, &first);
    for (int i = 0; i < 2 && rt_json_array_next(&it, &a[i]); i++) {}
    rt_slice_t n = ev->name;
    if (rt_slice_eq_cstr(n, "ping")) {
        sio_emit(s, RT_SLICE("pong"), RT_SLICE(""), NULL, 0);
    } else if (rt_slice_eq_cstr(n, "doctype_subscribe")) {
        check_permission(f, s, PERM_DOCTYPE, a[0], RT_SLICE_NULL);
    } else if (rt_slice_eq_cstr(n, "doctype_unsubscribe")) {
        leave_room(s, "doctype:", a[0], RT_SLICE_NULL, false);
    } else if (rt_slice_eq_cstr(n, "task_subscribe") || rt_slice_eq_cstr(n, "progress_subscribe")) {
        rt_buf_t id = {0}, room = {0};
        js_string(a[0], &id);
        rt_buf_putc(&id, 0);
        doc_room(&room, "task_progress:", id.data, NULL);
        sio_join(s, rt_slice(room.data, room.len));
        rt_buf_free(&id);
        rt_buf_free(&room);
    } else if (rt_slice_eq_cstr(n, "task_unsubscribe")) {
        leave_room(s, "task_progress:", a[0], RT_SLICE_NULL, false);
    } else if (rt_slice_eq_cstr(n, "doc_subscribe")) {
        check_permission(f, s, PERM_DOC, a[0], a[1]);
    } else if (rt_slice_eq_cstr(n, "doc_unsubscribe")) {
        leave_room(s, "doc:", a[0], a[1], true);
    } else if (rt_slice_eq_cstr(n, "doc_open")) {
        check_permission(f, s, PERM_OPEN, a[0], a[1]);
    } else if (rt_slice_eq_cstr(n, "doc_close")) {
        rt_buf_t dt = {0}, dn = {0};
        js_string(a[0], &dt);
        rt_buf_putc(&dt, 0);
        js_string(a[1], &dn);
        rt_buf_putc(&dn, 0);
        leave_room(s, "open_doc:", a[0], a[1], true);
        /* Forget this document only (Node's filter forgot every one). */
        uint32_t k = 0;
        bool had = false;
        for (uint32_t i = 0; i < fs->nopen; i++) {
            fr_doc_t d = fs->open_docs[i];
            if (!strcmp(d.doctype, dt.data) && !strcmp(d.docname, dn.data)) {
                free(d.doctype);
                free(d.docname);
                had = true;
            } else {
                fs->open_docs[k++] = d;
            }
        }
        fs->nopen = k;
        /* Only a socket that had the document open changes its viewers: any
         * other would make every viewer of any document receive updates. */
        if (had) notify_viewers(f, s, fs, dt.data, dn.data, false);
        rt_buf_free(&dt);
        rt_buf_free(&dn);
    } else if (rt_slice_eq_cstr(n, "open_in_editor")) {
        /* Developer mode and System Users only (it opens files in the
         * developer's editor); Node's handler lets any client kill the process. */
        if (f->opt.developer_mode && fs->system_user && a[0].p && f->broker)
            broker_publish(f->broker, "open_in_editor", rt_json_trim(a[0]));
    }
    /* Unknown events are ignored, as in Frappe. */
}

static void on_disconnect(sio_socket_t *s, const char *reason, void *ud)
{
    frappe_t *f = ud;
    fr_socket_t *fs = sio_socket_data(s);
    if (!fs) return;
    sio_socket_set_data(s, NULL);
    uint64_t lived_ms = (rt_now_ns() - fs->connected_ns) / 1000000;
    rt_info_rl("frappe", "disconnect: site %s, user %s, %s after %llu.%03llu s, socket %s", fs->id->site, fs->user,
               reason, (unsigned long long)(lived_ms / 1000), (unsigned long long)(lived_ms % 1000), sio_socket_id(s));
    /* Presence for every document still open; the socket has left its rooms. */
    for (uint32_t i = 0; i < fs->nopen; i++)
        notify_viewers(f, s, fs, fs->open_docs[i].doctype, fs->open_docs[i].docname, false);
    if (fs->ext) f->ext.socket_gone(s, reason, f->ext_ud);
    fr_socket_free(fs);
}

static void on_room(sio_socket_t *s, rt_slice_t room, bool joined, void *ud)
{
    frappe_t *f = ud;
    fr_socket_t *fs = sio_socket_data(s);
    if (fs && fs->ext) f->ext.socket_room(s, room, joined, f->ext_ud);
}

/* ---- the Redis `events` bridge ---- */
typedef struct {
    rt_slice_t body;
    size_t n;
} all_sites_t;

static void broadcast_site(sio_nsp_t *nsp, void *arg)
{
    all_sites_t *a = arg;
    if (sio_nsp_name(nsp).n > 1) a->n += sio_broadcast(nsp, NULL, 0, NULL, a->body);
}

/* NET_PHASE_CLOSE: this turn's writes are done; time the events it routed. */
static void lat_task_cb(net_loop_t *loop, net_task_t *t)
{
    frappe_t *f = rt_container_of(t, frappe_t, lat_task);
    RT_UNUSED(loop);
    uint64_t now = rt_now_ns();
    for (uint32_t i = 0; i < f->nlat; i++) rt_hist_observe(&f->stats.event_latency, (now - f->lat_t0[i]) / 1000);
    f->nlat = 0;
}

/* An event that was delivered to n sockets, received at t0. */
static void lat_note(frappe_t *f, uint64_t t0, size_t n)
{
    if (!n || f->nlat == FR_LAT_MAX) return; /* a burst: the first FR_LAT_MAX of the turn stand for it */
    if (!f->nlat) net_defer(f->loop, &f->lat_task, NET_PHASE_CLOSE);
    f->lat_t0[f->nlat++] = t0;
}

void frappe_route_event(frappe_t *f, rt_slice_t payload)
{
    rt_json_type_t type;
    f->stats.events++;
    uint64_t t0 = rt_now_ns();
    if (!rt_json_valid(payload, &type) || type != RT_JSON_OBJECT) {
        f->stats.events_bad++;
        rt_warn_rl("frappe", "skipped a message on 'events': %s", type == RT_JSON_INVALID ? "not JSON" : "not a JSON object");
        return;
    }
    rt_slice_t event = RT_SLICE_NULL, message = RT_SLICE_NULL, room = RT_SLICE_NULL, ns = RT_SLICE_NULL;
    rt_json_object_get(payload, "event", &event);
    rt_json_object_get(payload, "message", &message);
    rt_json_object_get(payload, "room", &room);
    rt_json_object_get(payload, "namespace", &ns);
    if (!event.p || rt_json_peek(event) != RT_JSON_STRING) {
        f->stats.events_bad++;
        rt_warn_rl("frappe", "skipped a message on 'events': 'event' is not a string");
        return;
    }
    /* Reserved event names (disconnect, ...) are refused by sio_broadcast
     * itself, for every application. */
    /* Room: any truthy value routes; a non-string truthy value is an error. */
    rt_json_type_t rt = room.p ? rt_json_peek(room) : RT_JSON_NULL;
    bool has_room = room.p && !(rt == RT_JSON_NULL || rt == RT_JSON_FALSE ||
                                (rt == RT_JSON_STRING && room.n == 2) ||
                                (rt == RT_JSON_NUMBER && rt_slice_eq_cstr(room, "0")));
    rt_buf_t *b = &f->tmp;
    b->len = 0;
    rt_buf_append_slice(b, event);
    rt_buf_putc(b, ',');
    if (message.p) rt_buf_append_slice(b, message);
    else rt_buf_append_cstr(b, "null"); /* Node: a missing message arrives as null */
    if (!has_room) {
        all_sites_t a = {rt_slice(b->data, b->len), 0};
        sio_server_each_nsp(f->srv, broadcast_site, &a);
        lat_note(f, t0, a.n);
        return;
    }
    if (rt != RT_JSON_STRING || !ns.p || rt_json_peek(ns) != RT_JSON_STRING || ns.n <= 2) {
        f->stats.events_bad++;
        rt_warn_rl("frappe", "skipped a message on 'events': %s",
                rt != RT_JSON_STRING ? "'room' is not a string" : "a room without a namespace");
        return;
    }
    rt_buf_t names = {0};
    rt_buf_putc(&names, '/');
    rt_json_string_decode(ns, &names);
    size_t room_off = names.len;
    rt_json_string_decode(room, &names);
    sio_nsp_t *nsp = sio_server_find(f->srv, rt_slice(names.data, room_off));
    if (nsp) {
        rt_slice_t r = rt_slice(names.data + room_off, names.len - room_off);
        lat_note(f, t0, sio_broadcast(nsp, &r, 1, NULL, rt_slice(b->data, b->len)));
    }
    rt_buf_free(&names);
}

static void on_broker_message(rt_slice_t channel, rt_slice_t payload, void *ud)
{
    RT_UNUSED(channel);
    frappe_route_event(ud, payload);
}

/* ---- setup ---- */
static bool match_site(rt_slice_t name, void *ud)
{
    RT_UNUSED(ud);
    return name.n > 1 && name.p[0] == '/';
}

/* The callback URL bases from the options. */
static void set_bases(frappe_t *f)
{
    const frappe_options_t *opt = &f->opt;
    free(f->webserver_base);
    free(f->local_base);
    f->webserver_base = NULL;
    if (opt->webserver_host && *opt->webserver_host) {
        rt_buf_t b = {0};
        const char *h = opt->webserver_host;
        if (!strstr(h, "://")) rt_buf_append_cstr(&b, "http://");
        rt_buf_append_cstr(&b, h);
        const char *hostpart = strstr(h, "://") ? strstr(h, "://") + 3 : h;
        if (!strchr(hostpart, ':')) rt_buf_printf(&b, ":%d", opt->webserver_port);
        while (b.len && b.data[b.len - 1] == '/') b.len--;
        rt_buf_putc(&b, 0);
        f->webserver_base = b.data;
    }
    rt_buf_t lb = {0};
    rt_buf_printf(&lb, "http://127.0.0.1:%d", opt->webserver_port);
    rt_buf_putc(&lb, 0);
    f->local_base = lb.data;
}

void frappe_reconfigure(frappe_t *f, const frappe_options_t *opt)
{
    f->opt.webserver_host = opt->webserver_host;
    f->opt.webserver_port = opt->webserver_port;
    f->opt.default_site = opt->default_site;
    f->opt.developer_mode = opt->developer_mode;
    f->opt.auth_timeout_ms = opt->auth_timeout_ms;
    set_bases(f);
    if (f->fetch) fetch_client_set_timeout(f->fetch, opt->auth_timeout_ms);
}

frappe_t *frappe_new(net_loop_t *loop, sio_server_t *srv, const frappe_options_t *opt, char *err,
                     size_t errlen)
{
    frappe_t *f = rt_calloc(1, sizeof *f);
    f->loop = loop;
    net_task_init(&f->lat_task, lat_task_cb);
    f->srv = srv;
    f->opt = *opt;
    rt_list_init(&f->ops);
    static const char *channels[] = {"events"};
    static const broker_handler_t bh = {on_broker_message, NULL};
    f->broker = broker_redis_new(loop, opt->redis_url, channels, 1, &bh, f, err, errlen);
    if (!f->broker) {
        free(f);
        return NULL;
    }
    set_bases(f);
    f->fetch = fetch_client_new(loop, opt->auth_timeout_ms);
    static const sio_client_handler_t ch = {on_client, on_client_close};
    sio_server_set_client_handler(srv, &ch, f);
    static const sio_nsp_handler_t main_h = {.anonymous = true}; /* gets nothing, admits no one */
    static const sio_nsp_handler_t site_h = {.on_connect_request = on_connect_request, .on_connect = on_connect,
                                             .on_event = on_event,
                                             .on_disconnect = on_disconnect, .on_room = on_room};
    sio_server_of(srv, "/", &main_h, f); /* exists in Socket.IO; gets nothing */
    sio_server_add_dynamic(srv, match_site, &site_h, f);
    if (opt->guest_mode)
        rt_warn("frappe", "auth_mode=guest: every connection is accepted as Guest without asking "
                          "a web server. For demos only; never on a real bench.");
    return f;
}

void frappe_stop(frappe_t *f)
{
    if (!f || f->stopping) return;
    f->stopping = true;
    broker_free(f->broker); /* pending GETs call back with ok = false */
    f->broker = NULL;
    fetch_client_free(f->fetch);
    f->fetch = NULL;
    while (!rt_list_empty(&f->ops)) {
        fr_op_t *op = rt_container_of(f->ops.next, fr_op_t, link);
        op->waiter = NULL; /* freed with the fetch client */
        if (op->ext_cb) op->ext_cb(false, op->ext_ud); /* an extension's check: answered, denied */
        op_free(op);
    }
}

void frappe_free(frappe_t *f)
{
    if (!f) return;
    frappe_stop(f);
    net_task_cancel(&f->lat_task);
    free(f->webserver_base);
    free(f->local_base);
    rt_buf_free(&f->tmp);
    free(f);
}

const frappe_stats_t *frappe_stats(const frappe_t *f) { return &f->stats; }
const fetch_stats_t *frappe_fetch_stats(const frappe_t *f) { return f->fetch ? fetch_client_stats(f->fetch) : NULL; }

/* ---- extensions ---- */
void frappe_set_ext(frappe_t *f, const frappe_ext_t *ext, void *ud)
{
    f->ext = *ext;
    f->ext_ud = ud;
    f->has_ext = true;
    f->opt.keep_handshake = true; /* the extension sees socket.handshake */
}

void frappe_has_permission(frappe_t *f, sio_socket_t *s, rt_slice_t doctype, rt_slice_t docname, frappe_perm_cb cb,
                           void *ud)
{
    fr_socket_t *fs = sio_socket_data(s);
    if (f->stopping || !fs || f->opt.guest_mode || !sio_socket_connected(s) ||
        !perm_admissible(fs, doctype.n, docname.n)) {
        cb(false, ud);
        return;
    }
    fr_op_t *op = op_new(f, OP_PERM, s, fs->id);
    fs->perms++;
    op->perm = PERM_EXT;
    op->ext_cb = cb;
    op->ext_ud = ud;
    op->doctype = rt_strndup(doctype.p ? doctype.p : "", doctype.n);
    op->docname = rt_strndup(docname.p ? docname.p : "", docname.n);
    op->query_empty = docname.n == 0;
    op_start(op);
}

void frappe_read_secret(frappe_t *f, void (*cb)(bool ok, rt_slice_t value, void *ud), void *ud)
{
    if (f->stopping || !f->broker) {
        cb(false, RT_SLICE_NULL, ud);
        return;
    }
    broker_get(f->broker, SECRET_KEY, f->opt.auth_timeout_ms, cb, ud);
}

broker_t *frappe_broker(const frappe_t *f) { return f->broker; }
