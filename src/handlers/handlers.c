/* handlers: app-handler hosts (see handlers.h; protocol in docs/handlers.md).
 *
 *   realtimed                                   host (node or python)
 *   ---------                                   ----
 *   socketpair fd  <-- [u32 length LE][JSON] -->  fd 3
 *
 * Each host is a child process watched through a pidfd. Messages to it are
 * appended to one buffer during the loop turn and written by a
 * NET_PHASE_FLUSH task (one write per turn); past max_queue bytes waiting,
 * new ones are dropped and counted. Frames from it are read into a buffer
 * bounded by max_frame. A host that exits, sends garbage or misses three
 * pings is killed and restarted with backoff (100 ms doubling to 10 s); the
 * new one gets every current socket with its rooms (replay).
 *
 * Per socket (only sockets on sites with an app served by a host): its
 * description, kept for replays, and per host the event names its handlers
 * listen to (interned ids). */
#include "handlers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

enum { HOST_NODE, HOST_PY, NHOSTS };
static const char *const host_lang[NHOSTS] = {"node", "python"};
#define MAX_NAMES 4096 /* distinct event names hosts may listen to */

typedef struct handlers_host host_t;

typedef struct {
    uint16_t *ids;
    uint16_t n, cap;
} name_set_t;

/* Events that arrive before a host has run the apps' setup for the socket
 * (right after connect, or while a host restarts) are held, at most
 * HOLD_MAX bytes, and offered once it has: records of
 *   [u32 length][u8 hosts still to offer it to]{"e":..,"a":[..][,"b":[..]][,"k":N]} */
#define HOLD_MAX (64 * 1024)

typedef struct hs_socket {
    char id[21];
    sio_socket_t *s;
    uint8_t hosts;   /* bit per host */
    uint8_t pending; /* hosts that have not finished its setup */
    char *info;      /* the description, for replays */
    size_t info_len;
    rt_buf_t *held;
    name_set_t listen[NHOSTS];
} hs_socket_t;

/* A request a host made (permission, secret, ack of an emit to a client)
 * waiting for its answer; it outlives a host restart and the handlers_t
 * (orphaned: host == NULL). */
typedef struct hs_req {
    rt_list_t link;   /* in h->reqs */
    host_t *host;
    uint32_t gen;     /* the host incarnation that asked */
    char kind;        /* 'p' permission, 's' secret, 'a' ack */
    char sock[21];
    char *reqid;      /* the host's id, raw JSON */
} hs_req_t;

struct handlers_host {
    handlers_t *h;
    int lang;
    char **apps;
    size_t napps;
    char *argv[8];
    pid_t pid;
    net_io_t io;          /* the socket pair */
    net_io_t pidio;       /* pidfd: readable when the child exits */
    rt_buf_t in, out;
    size_t out_off;       /* written part of out */
    net_task_t flush;
    net_timer_t restart_timer, ping_timer;
    unsigned backoff_ms;
    unsigned missed_pings;
    uint32_t gen;
    uint64_t started_ms;
    bool ready;
    bool stopping;
    bool remote;          /* another worker's host, reached at share_path */
    bool was_connected;   /* remote: it answered once (else its absence is quiet) */
    char share_path[108]; /* <share_dir>/<lang>.sock, or "" */
};

struct handlers {
    net_loop_t *loop;
    sio_server_t *srv;
    handlers_options_t opt;
    handlers_app_t app;
    void *app_ud;
    char *bench;
    host_t *hosts[NHOSTS];
    rt_map_t sockets;     /* id -> hs_socket_t */
    rt_map_t names;       /* event name -> id + 1 (as a pointer) */
    char **name_list;
    size_t nnames;
    rt_list_t reqs;
    host_t *origin;       /* the host whose join/leave is being executed */
    rt_buf_t tmp, tmp2;
    handlers_stats_t stats;
};

void handlers_options_default(handlers_options_t *o)
{
    memset(o, 0, sizeof *o);
    o->mode = "auto";
    o->max_queue = 16 << 20;
    o->max_frame = 4 << 20;
    o->ping_ms = 5000;
}

/* ---- small helpers ---- */
static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool is_exec(const char *path)
{
    return access(path, X_OK) == 0 && is_file(path);
}

/* name on PATH, into out; false if absent. */
static bool find_on_path(const char *name, char *out, size_t n)
{
    if (strchr(name, '/')) {
        snprintf(out, n, "%s", name);
        return is_exec(out);
    }
    const char *path = getenv("PATH");
    if (!path) path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *colon = strchr(path, ':');
        size_t len = colon ? (size_t)(colon - path) : strlen(path);
        snprintf(out, n, "%.*s/%s", (int)len, path, name);
        if (len && is_exec(out)) return true;
        path += len + (colon ? 1 : 0);
    }
    return false;
}

/* The folder holding the host scripts: host_dir, else next to the binary
 * (<prefix>/bin/realtimed -> <prefix>/share/realtimed/host, or the
 * repository's build/realtimed -> host/). */
static bool find_host_dir(const char *opt, const char *script, char *out, size_t n)
{
    char p[PATH_MAX];
    if (opt) {
        snprintf(p, sizeof p, "%s/%s", opt, script);
        snprintf(out, n, "%s", opt);
        return is_file(p);
    }
    char exe[PATH_MAX];
    if (!rt_exe_dir(exe, sizeof exe)) return false;
    static const char *const rel[] = {"../share/realtimed/host", "../host"};
    for (size_t i = 0; i < RT_ARRAY_LEN(rel); i++) {
        if (snprintf(out, n, "%s/%s", exe, rel[i]) >= (int)n) continue;
        if (snprintf(p, sizeof p, "%s/%s", out, script) >= (int)sizeof p) continue;
        if (is_file(p)) {
            char real[PATH_MAX];
            if (realpath(out, real)) snprintf(out, n, "%s", real);
            return true;
        }
    }
    return false;
}

static void buf_json_str(rt_buf_t *b, rt_slice_t s) { rt_buf_append_json_string(b, s); }

/* path made absolute without resolving symlinks (benches symlink apps, and
 * handlers resolve modules through the bench's paths): relative to $PWD
 * when that names the working directory, else to getcwd(). */
static char *absolute_path(const char *path)
{
    if (path[0] == '/') return rt_strndup(path, strlen(path));
    char cwd[PATH_MAX];
    const char *pwd = getenv("PWD");
    struct stat a, b;
    if (!(pwd && pwd[0] == '/' && stat(pwd, &a) == 0 && stat(".", &b) == 0 && a.st_dev == b.st_dev &&
          a.st_ino == b.st_ino)) {
        if (!getcwd(cwd, sizeof cwd)) return rt_strndup(path, strlen(path));
        pwd = cwd;
    }
    rt_buf_t out = {0};
    rt_buf_append_cstr(&out, pwd);
    if (strcmp(path, ".") != 0) {
        const char *p = path;
        while (p[0] == '.' && p[1] == '/') p += 2;
        rt_buf_putc(&out, '/');
        rt_buf_append_cstr(&out, p);
    }
    rt_buf_putc(&out, 0);
    return out.data;
}

/* Appends base64 strings of the attachments as a JSON array. */
static void buf_b64_array(rt_buf_t *b, const rt_slice_t *att, uint32_t n)
{
    rt_buf_putc(b, '[');
    for (uint32_t i = 0; i < n; i++) {
        if (i) rt_buf_putc(b, ',');
        rt_buf_reserve(b, 2 + (att[i].n + 2) / 3 * 4);
        b->data[b->len++] = '"';
        b->len += rt_base64_encode(b->data + b->len, (const uint8_t *)att[i].p, att[i].n);
        b->data[b->len++] = '"';
    }
    rt_buf_putc(b, ']');
}

/* ---- event names ---- */
static int name_id(handlers_t *h, rt_slice_t name, bool create)
{
    void *v = rt_map_get(&h->names, name);
    if (v) return (int)((uintptr_t)v - 1);
    if (!create || h->nnames >= MAX_NAMES) {
        if (create) rt_warn_rl("handlers", "more than %d distinct event names: '%.*s' not listened to", MAX_NAMES,
                               (int)RT_MIN(name.n, 64), name.p);
        return -1;
    }
    char *copy = rt_strndup(name.p, name.n);
    h->name_list = rt_realloc(h->name_list, (h->nnames + 1) * sizeof *h->name_list);
    h->name_list[h->nnames] = copy;
    rt_map_put(&h->names, rt_slice(copy, name.n), (void *)(uintptr_t)(h->nnames + 1));
    return (int)h->nnames++;
}

static bool set_has(const name_set_t *s, int id)
{
    for (uint16_t i = 0; i < s->n; i++)
        if (s->ids[i] == id) return true;
    return false;
}

static void set_add(name_set_t *s, int id)
{
    if (id < 0 || set_has(s, id)) return;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4;
        s->ids = rt_realloc(s->ids, s->cap * sizeof *s->ids);
    }
    s->ids[s->n++] = (uint16_t)id;
}

static void set_del(name_set_t *s, int id)
{
    for (uint16_t i = 0; i < s->n; i++)
        if (s->ids[i] == id) {
            s->ids[i] = s->ids[--s->n];
            return;
        }
}

/* ---- framing to a host ---- */
static void host_flush_task(net_loop_t *loop, net_task_t *t);

/* Starts a message: reserves the length prefix. Returns the offset of the
 * frame, or SIZE_MAX when the host is down or its queue is full (dropped). */
static size_t frame_begin(host_t *ho)
{
    if (ho->io.fd < 0 || ho->stopping) return SIZE_MAX;
    if (ho->out.len - ho->out_off > ho->h->opt.max_queue) {
        ho->h->stats.dropped++;
        rt_warn_rl("handlers", "the %s host is not reading: a message to it was dropped", host_lang[ho->lang]);
        return SIZE_MAX;
    }
    size_t at = ho->out.len;
    rt_buf_append(&ho->out, "\0\0\0\0", 4);
    return at;
}

static void frame_end(host_t *ho, size_t at)
{
    uint32_t n = (uint32_t)(ho->out.len - at - 4);
    unsigned char *p = (unsigned char *)ho->out.data + at;
    p[0] = (unsigned char)n, p[1] = (unsigned char)(n >> 8), p[2] = (unsigned char)(n >> 16),
    p[3] = (unsigned char)(n >> 24);
    ho->h->stats.to_host++;
    if (!net_task_queued(&ho->flush)) net_defer(ho->h->loop, &ho->flush, NET_PHASE_FLUSH);
}

/* Sends a complete JSON text. */
static void host_send(host_t *ho, rt_slice_t json)
{
    size_t at = frame_begin(ho);
    if (at == SIZE_MAX) return;
    rt_buf_append_slice(&ho->out, json);
    frame_end(ho, at);
}

static void host_io_cb(net_loop_t *loop, net_io_t *io, uint32_t events);

static void host_flush_task(net_loop_t *loop, net_task_t *t)
{
    host_t *ho = rt_container_of(t, host_t, flush);
    RT_UNUSED(loop);
    while (ho->io.fd >= 0 && ho->out_off < ho->out.len) {
        ssize_t w = send(ho->io.fd, ho->out.data + ho->out_off, ho->out.len - ho->out_off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) ho->out_off = ho->out.len; /* dead: EOF handling restarts */
            break;
        }
        ho->out_off += (size_t)w;
    }
    if (ho->out_off == ho->out.len) {
        ho->out.len = ho->out_off = 0;
        if (ho->out.cap > (1 << 20)) rt_buf_free(&ho->out);
    } else if (ho->out_off > (1 << 20)) {
        rt_buf_consume(&ho->out, ho->out_off);
        ho->out_off = 0;
    }
    if (ho->io.fd >= 0)
        net_io_set(ho->h->loop, &ho->io, NET_READ | (ho->out_off < ho->out.len ? NET_WRITE : 0));
}

/* ---- sockets ---- */
static hs_socket_t *sock_get(handlers_t *h, rt_slice_t id) { return id.n == 20 ? rt_map_get(&h->sockets, id) : NULL; }

static void room_name(rt_slice_t room, void *arg)
{
    rt_buf_t *b = arg;
    if (b->data[b->len - 1] != '[') rt_buf_putc(b, ',');
    buf_json_str(b, room);
}

/* {"t":"connect","s":id,"info":{...},"rooms":[...]} */
static void send_connect(host_t *ho, hs_socket_t *hs)
{
    hs->pending |= (uint8_t)(1u << ho->lang);
    rt_buf_t *b = &ho->h->tmp;
    b->len = 0;
    rt_buf_append_cstr(b, "{\"t\":\"connect\",\"s\":\"");
    rt_buf_append_cstr(b, hs->id);
    rt_buf_append_cstr(b, "\",\"info\":");
    rt_buf_append(b, hs->info, hs->info_len);
    rt_buf_append_cstr(b, ",\"rooms\":[");
    sio_socket_rooms_each(hs->s, room_name, b);
    rt_buf_append_cstr(b, "]}");
    host_send(ho, rt_slice(b->data, b->len));
}

static void sock_free(handlers_t *h, hs_socket_t *hs)
{
    rt_map_del(&h->sockets, rt_slice(hs->id, 20));
    for (int i = 0; i < NHOSTS; i++) free(hs->listen[i].ids);
    sio_socket_unref(hs->s);
    if (hs->held) {
        rt_buf_free(hs->held);
        free(hs->held);
    }
    free(hs->info);
    free(hs);
    h->stats.sockets--;
}

void handlers_socket_ready(sio_socket_t *s, rt_slice_t info, void *ud)
{
    handlers_t *h = ud;
    rt_slice_t apps;
    if (!rt_json_object_get(info, "installed_apps", &apps) || rt_json_peek(apps) != RT_JSON_ARRAY) return;
    uint8_t hosts = 0;
    rt_json_iter_t it;
    rt_slice_t a;
    rt_json_iter_init(&it, apps);
    rt_buf_t *name = &h->tmp2;
    while (rt_json_array_next(&it, &a)) {
        name->len = 0;
        if (rt_json_peek(a) != RT_JSON_STRING || rt_json_string_decode(a, name) < 0) continue;
        for (int k = 0; k < NHOSTS; k++) {
            host_t *ho = h->hosts[k];
            for (size_t i = 0; ho && i < ho->napps; i++)
                if (rt_slice_eq_cstr(rt_slice(name->data, name->len), ho->apps[i])) hosts |= (uint8_t)(1u << k);
        }
    }
    if (!hosts) return; /* no app of this site has handlers: nothing to mirror */
    hs_socket_t *hs = rt_calloc(1, sizeof *hs);
    memcpy(hs->id, sio_socket_id(s), 20);
    hs->s = s;
    sio_socket_ref(s);
    hs->hosts = hosts;
    hs->info = rt_strndup(info.p, info.n);
    hs->info_len = info.n;
    rt_map_put(&h->sockets, rt_slice(hs->id, 20), hs);
    h->stats.sockets++;
    for (int k = 0; k < NHOSTS; k++)
        if (hosts & (1u << k)) send_connect(h->hosts[k], hs);
}

/* The body of an event message after {"t":"event","s":"<id>", :
 * "e":..,"a":[..][,"b":[..]][,"k":N]} */
static void event_body(rt_buf_t *b, const sio_event_t *ev, bool with_ack)
{
    rt_buf_append_cstr(b, "\"e\":");
    buf_json_str(b, ev->name);
    rt_buf_append_cstr(b, ",\"a\":[");
    rt_buf_append_slice(b, ev->args);
    rt_buf_putc(b, ']');
    if (ev->nattach) {
        rt_buf_append_cstr(b, ",\"b\":");
        buf_b64_array(b, ev->attachments, ev->nattach);
    }
    if (with_ack) rt_buf_printf(b, ",\"k\":%lld", (long long)ev->ack_id);
    rt_buf_putc(b, '}');
}

static void send_event_body(host_t *ho, hs_socket_t *hs, rt_slice_t body)
{
    size_t at = frame_begin(ho);
    if (at == SIZE_MAX) return;
    rt_buf_append_cstr(&ho->out, "{\"t\":\"event\",\"s\":\"");
    rt_buf_append(&ho->out, hs->id, 20);
    rt_buf_append(&ho->out, "\",", 2);
    rt_buf_append_slice(&ho->out, body);
    frame_end(ho, at);
}

void handlers_socket_event(sio_socket_t *s, const sio_event_t *ev, void *ud)
{
    handlers_t *h = ud;
    hs_socket_t *hs = rt_map_get(&h->sockets, rt_slice(sio_socket_id(s), 20));
    if (!hs) return;
    int id = name_id(h, ev->name, false);
    bool ack_given = false;
    rt_buf_t *b = &h->tmp;
    for (int k = 0; k < NHOSTS; k++) {
        host_t *ho = h->hosts[k];
        if (!(hs->hosts & (1u << k)) || (hs->pending & (1u << k)) || id < 0 || !set_has(&hs->listen[k], id)) continue;
        b->len = 0;
        /* One answer, as in socket.io: the first host that listens gets the ack id. */
        event_body(b, ev, ev->ack_id >= 0 && !ack_given);
        ack_given |= ev->ack_id >= 0;
        send_event_body(ho, hs, rt_slice(b->data, b->len));
    }
    uint8_t waiting = hs->pending & hs->hosts;
    if (!waiting) return;
    /* Not set up yet on some host: hold it for them. */
    b->len = 0;
    rt_buf_putc(b, '{');
    event_body(b, ev, ev->ack_id >= 0 && !ack_given);
    if (!hs->held) hs->held = rt_calloc(1, sizeof *hs->held);
    if (hs->held->len + 5 + b->len > HOLD_MAX) {
        h->stats.dropped++;
        rt_warn_rl("handlers", "socket %s sent events faster than the handler host set it up: one dropped", hs->id);
        return;
    }
    unsigned char head[5] = {(unsigned char)b->len, (unsigned char)(b->len >> 8), (unsigned char)(b->len >> 16),
                             (unsigned char)(b->len >> 24), waiting};
    rt_buf_append(hs->held, head, 5);
    rt_buf_append(hs->held, b->data, b->len);
}

/* A host finished the apps' setup for hs: offer it what was held. */
static void release_held(host_t *ho, hs_socket_t *hs)
{
    hs->pending &= (uint8_t)~(1u << ho->lang);
    rt_buf_t *held = hs->held;
    if (!held) return;
    uint8_t bit = (uint8_t)(1u << ho->lang);
    bool any_left = false;
    for (size_t off = 0; off + 5 <= held->len;) {
        unsigned char *p = (unsigned char *)held->data + off;
        uint32_t n = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        rt_slice_t rec = rt_slice((char *)p + 5, n);
        if (p[4] & bit) {
            p[4] &= (uint8_t)~bit;
            rt_slice_t e;
            rt_buf_t *name = &ho->h->tmp2;
            name->len = 0;
            if (rt_json_object_get(rec, "e", &e) && rt_json_string_decode(e, name) == 0) {
                int id = name_id(ho->h, rt_slice(name->data, name->len), false);
                if (id >= 0 && set_has(&hs->listen[ho->lang], id))
                    send_event_body(ho, hs, rt_slice(rec.p + 1, rec.n - 1));
            }
        }
        any_left |= p[4] != 0;
        off += 5 + n;
    }
    if (!any_left) {
        rt_buf_free(held);
        free(held);
        hs->held = NULL;
    }
}

void handlers_socket_room(sio_socket_t *s, rt_slice_t room, bool joined, void *ud)
{
    handlers_t *h = ud;
    hs_socket_t *hs = rt_map_get(&h->sockets, rt_slice(sio_socket_id(s), 20));
    if (!hs) return;
    for (int k = 0; k < NHOSTS; k++) {
        host_t *ho = h->hosts[k];
        if (!(hs->hosts & (1u << k)) || ho == h->origin) continue; /* the host did it: it knows */
        rt_buf_t *b = &h->tmp;
        b->len = 0;
        rt_buf_append_cstr(b, "{\"t\":\"room\",\"s\":\"");
        rt_buf_append_cstr(b, hs->id);
        rt_buf_append_cstr(b, "\",\"r\":");
        buf_json_str(b, room);
        rt_buf_append_cstr(b, joined ? ",\"j\":true}" : ",\"j\":false}");
        host_send(ho, rt_slice(b->data, b->len));
    }
}

void handlers_socket_gone(sio_socket_t *s, const char *reason, void *ud)
{
    handlers_t *h = ud;
    hs_socket_t *hs = rt_map_get(&h->sockets, rt_slice(sio_socket_id(s), 20));
    if (!hs) return;
    for (int k = 0; k < NHOSTS; k++) {
        if (!(hs->hosts & (1u << k))) continue;
        rt_buf_t *b = &h->tmp;
        b->len = 0;
        rt_buf_append_cstr(b, "{\"t\":\"disconnect\",\"s\":\"");
        rt_buf_append_cstr(b, hs->id);
        rt_buf_append_cstr(b, "\",\"reason\":");
        buf_json_str(b, rt_slice_cstr(reason));
        rt_buf_putc(b, '}');
        host_send(h->hosts[k], rt_slice(b->data, b->len));
    }
    sock_free(h, hs);
}

/* ---- requests a host made ---- */
static hs_req_t *req_new(host_t *ho, char kind, rt_slice_t sock, rt_slice_t reqid)
{
    hs_req_t *r = rt_calloc(1, sizeof *r);
    r->host = ho;
    r->gen = ho->gen;
    r->kind = kind;
    if (sock.n == 20) memcpy(r->sock, sock.p, 20);
    r->reqid = rt_strndup(reqid.p ? reqid.p : "null", reqid.p ? reqid.n : 4);
    rt_list_insert_tail(&ho->h->reqs, &r->link);
    return r;
}

/* The request's host, if it is still the incarnation that asked; the
 * record is unlinked and must be freed by the caller (req_free). */
static host_t *req_take(hs_req_t *r)
{
    if (rt_list_linked(&r->link)) rt_list_remove(&r->link);
    host_t *ho = r->host;
    return ho && ho->gen == r->gen && !ho->stopping ? ho : NULL;
}

static void req_free(hs_req_t *r)
{
    free(r->reqid);
    free(r);
}

static void on_perm(bool allowed, void *ud)
{
    hs_req_t *r = ud;
    host_t *ho = req_take(r);
    if (ho) {
        rt_buf_t *b = &ho->h->tmp;
        b->len = 0;
        rt_buf_printf(b, "{\"t\":\"perm\",\"id\":%s,\"ok\":%s}", r->reqid, allowed ? "true" : "false");
        host_send(ho, rt_slice(b->data, b->len));
    }
    req_free(r);
}

static void on_secret(bool ok, rt_slice_t value, void *ud)
{
    hs_req_t *r = ud;
    host_t *ho = req_take(r);
    if (ho) {
        rt_buf_t *b = &ho->h->tmp;
        b->len = 0;
        rt_buf_printf(b, "{\"t\":\"secret\",\"id\":%s,\"ok\":%s,\"v\":", r->reqid, ok ? "true" : "false");
        if (ok && value.p) buf_json_str(b, value);
        else rt_buf_append_cstr(b, "null");
        rt_buf_putc(b, '}');
        host_send(ho, rt_slice(b->data, b->len));
    }
    req_free(r);
}

/* The client answered an emit the host made with an ack. */
static void on_client_ack(sio_socket_t *s, rt_slice_t args, const rt_slice_t *att, uint32_t natt, bool closed,
                          void *ud)
{
    RT_UNUSED(s);
    hs_req_t *r = ud;
    host_t *ho = req_take(r);
    if (ho) {
        size_t at = frame_begin(ho);
        if (at != SIZE_MAX) {
            rt_buf_t *b = &ho->out;
            rt_buf_append_cstr(b, "{\"t\":\"ack\",\"s\":\"");
            rt_buf_append(b, r->sock, 20);
            rt_buf_printf(b, "\",\"k\":%s", r->reqid);
            if (closed) {
                rt_buf_append_cstr(b, ",\"closed\":true");
            } else {
                rt_buf_append_cstr(b, ",\"a\":[");
                rt_buf_append_slice(b, args);
                rt_buf_putc(b, ']');
                if (natt) {
                    rt_buf_append_cstr(b, ",\"b\":");
                    buf_b64_array(b, att, natt);
                }
            }
            rt_buf_putc(b, '}');
            frame_end(ho, at);
        }
    }
    req_free(r);
}

/* ---- messages from a host ---- */
/* Decodes "b" (base64 strings) into attachments; returns the count or -1. */
static int decode_attachments(rt_slice_t msg, rt_buf_t *store, rt_slice_t *att)
{
    rt_slice_t b;
    if (!rt_json_object_get(msg, "b", &b) || rt_json_peek(b) != RT_JSON_ARRAY) return 0;
    rt_json_iter_t it;
    rt_slice_t v;
    int n = 0;
    size_t offs[SIO_MAX_ATTACHMENTS], lens[SIO_MAX_ATTACHMENTS];
    store->len = 0;
    rt_json_iter_init(&it, b);
    while (rt_json_array_next(&it, &v)) {
        rt_slice_t raw;
        if (n >= SIO_MAX_ATTACHMENTS || !rt_json_string_raw(v, &raw)) return -1;
        rt_buf_reserve(store, raw.n / 4 * 3 + 3);
        ssize_t k = rt_base64_decode((uint8_t *)store->data + store->len, raw.p, raw.n);
        if (k < 0) return -1;
        offs[n] = store->len, lens[n] = (size_t)k;
        store->len += (size_t)k;
        n++;
    }
    for (int i = 0; i < n; i++) att[i] = rt_slice(store->data + offs[i], lens[i]);
    return n;
}

/* The args of a message ("a": a JSON array) without the brackets. */
static rt_slice_t msg_args(rt_slice_t msg)
{
    rt_slice_t a;
    if (!rt_json_object_get(msg, "a", &a) || rt_json_peek(a) != RT_JSON_ARRAY) return RT_SLICE("");
    a = rt_json_trim(a);
    return rt_json_trim(rt_slice(a.p + 1, a.n - 2));
}

/* A string field decoded into out (NUL-terminated); false if absent. */
static bool msg_str(rt_slice_t msg, const char *key, rt_buf_t *out)
{
    rt_slice_t v;
    out->len = 0;
    if (!rt_json_object_get(msg, key, &v) || rt_json_peek(v) != RT_JSON_STRING || rt_json_string_decode(v, out) < 0)
        return false;
    rt_buf_putc(out, 0);
    out->len--;
    return true;
}

static void host_listen(host_t *ho, rt_slice_t msg, hs_socket_t *hs)
{
    static const char *const keys[2] = {"add", "del"};
    for (int i = 0; i < 2; i++) {
        rt_slice_t arr, v;
        if (!rt_json_object_get(msg, keys[i], &arr) || rt_json_peek(arr) != RT_JSON_ARRAY) continue;
        rt_json_iter_t it;
        rt_json_iter_init(&it, arr);
        while (rt_json_array_next(&it, &v)) {
            rt_buf_t *n = &ho->h->tmp2;
            n->len = 0;
            if (rt_json_peek(v) != RT_JSON_STRING || rt_json_string_decode(v, n) < 0) continue;
            int id = name_id(ho->h, rt_slice(n->data, n->len), i == 0);
            if (i == 0) set_add(&hs->listen[ho->lang], id);
            else if (id >= 0) set_del(&hs->listen[ho->lang], id);
        }
    }
}

/* "rooms" (array) or "r" (string) of a message, decoded into names/rooms. */
static size_t msg_rooms(rt_slice_t msg, rt_buf_t *names, rt_slice_t *rooms, size_t max)
{
    size_t offs[64], lens[64], n = 0;
    names->len = 0;
    rt_slice_t arr, v;
    if (rt_json_object_get(msg, "rooms", &arr) && rt_json_peek(arr) == RT_JSON_ARRAY) {
        rt_json_iter_t it;
        rt_json_iter_init(&it, arr);
        while (n < max && n < 64 && rt_json_array_next(&it, &v)) {
            if (rt_json_peek(v) != RT_JSON_STRING) continue;
            size_t start = names->len;
            if (rt_json_string_decode(v, names) < 0) continue;
            offs[n] = start, lens[n] = names->len - start, n++;
        }
    } else if (rt_json_object_get(msg, "r", &v) && rt_json_peek(v) == RT_JSON_STRING) {
        if (rt_json_string_decode(v, names) == 0) offs[0] = 0, lens[0] = names->len, n = 1;
    }
    for (size_t i = 0; i < n; i++) rooms[i] = rt_slice(names->data + offs[i], lens[i]);
    return n;
}

typedef struct {
    rt_map_t seen; /* socket ids served already (several rooms) */
    sio_socket_t *except;
    rt_slice_t event, args;
    const rt_slice_t *att;
    uint32_t natt;
} bin_bcast_t;

static void bin_member(sio_socket_t *s, void *arg)
{
    bin_bcast_t *bb = arg;
    rt_slice_t id = rt_slice_cstr(sio_socket_id(s));
    if (s == bb->except || rt_map_get(&bb->seen, id)) return;
    rt_map_put(&bb->seen, id, s);
    sio_emit(s, bb->event, bb->args, bb->att, bb->natt);
}

/* {"t":"bcast","nsp","rooms"|"r","except","e","a","b"}: to the union of
 * the rooms (the whole namespace without), except one socket. Text goes
 * through the encode-once broadcast; binary (rare) is sent to each member. */
static void broadcast(handlers_t *h, rt_slice_t msg, bool remote)
{
    rt_buf_t nsp = {0}, ev = {0}, names = {0}, store = {0}, body = {0}, exid = {0};
    rt_slice_t rooms[64], att[SIO_MAX_ATTACHMENTS];
    if (!msg_str(msg, "nsp", &nsp) || !msg_str(msg, "e", &ev)) goto out;
    /* other nodes' members too (the except socket is one of ours) */
    if (!remote && h->app.bcast_out) h->app.bcast_out(msg, h->app_ud);
    sio_nsp_t *n = sio_server_find(h->srv, rt_slice(nsp.data, nsp.len));
    if (!n) goto out; /* nobody there */
    size_t nr = msg_rooms(msg, &names, rooms, 64);
    hs_socket_t *except = !remote && msg_str(msg, "except", &exid) ? sock_get(h, rt_slice(exid.data, exid.len)) : NULL;
    int natt = decode_attachments(msg, &store, att);
    if (natt < 0) goto out;
    rt_slice_t args = msg_args(msg);
    if (natt > 0) {
        bin_bcast_t bb = {.except = except ? except->s : NULL, .event = rt_slice(ev.data, ev.len), .args = args,
                          .att = att, .natt = (uint32_t)natt};
        rt_map_init(&bb.seen);
        if (nr == 0) sio_nsp_each(n, bin_member, &bb);
        for (size_t i = 0; i < nr; i++) sio_room_each(n, rooms[i], bin_member, &bb);
        rt_map_free(&bb.seen);
        goto out;
    }
    buf_json_str(&body, rt_slice(ev.data, ev.len));
    if (args.n) {
        rt_buf_putc(&body, ',');
        rt_buf_append_slice(&body, args);
    }
    sio_broadcast(n, rooms, nr, except ? except->s : NULL, rt_slice(body.data, body.len));
out:
    rt_buf_free(&nsp);
    rt_buf_free(&ev);
    rt_buf_free(&names);
    rt_buf_free(&store);
    rt_buf_free(&body);
    rt_buf_free(&exid);
}

static void host_message(host_t *ho, rt_slice_t msg)
{
    handlers_t *h = ho->h;
    rt_json_type_t type;
    if (!rt_json_valid(msg, &type) || type != RT_JSON_OBJECT) {
        rt_warn_rl("handlers", "the %s host sent a message that is not a JSON object: ignored", host_lang[ho->lang]);
        return;
    }
    h->stats.from_host++;
    rt_slice_t t, sv;
    if (!rt_json_object_get(msg, "t", &t)) return;
    rt_slice_t sid = RT_SLICE_NULL;
    hs_socket_t *hs = NULL;
    if (rt_json_object_get(msg, "s", &sv) && rt_json_string_raw(sv, &sid)) hs = sock_get(h, sid);
    if (rt_slice_eq_cstr(t, "\"ready\"")) {
        ho->ready = true;
        rt_info("handlers", "%s host ready (pid %d)", host_lang[ho->lang], (int)ho->pid);
        return;
    }
    if (rt_slice_eq_cstr(t, "\"pong\"")) {
        ho->missed_pings = 0;
        return;
    }
    if (rt_slice_eq_cstr(t, "\"bcast\"")) {
        broadcast(h, msg, false);
        return;
    }
    if (rt_slice_eq_cstr(t, "\"secret\"")) {
        rt_slice_t id = RT_SLICE_NULL;
        rt_json_object_get(msg, "id", &id);
        h->app.secret(on_secret, req_new(ho, 's', RT_SLICE_NULL, id), h->app_ud);
        return;
    }
    /* Everything else names a socket; one that left meanwhile is no error. */
    if (!hs || !sio_socket_connected(hs->s)) {
        if (rt_slice_eq_cstr(t, "\"perm\"")) { /* answered: denied */
            rt_slice_t id = RT_SLICE_NULL;
            rt_json_object_get(msg, "id", &id);
            on_perm(false, req_new(ho, 'p', RT_SLICE_NULL, id));
        }
        return;
    }
    sio_socket_t *s = hs->s;
    rt_buf_t a = {0}, store = {0};
    rt_slice_t att[SIO_MAX_ATTACHMENTS];
    if (rt_slice_eq_cstr(t, "\"listen\"")) {
        host_listen(ho, msg, hs);
    } else if (rt_slice_eq_cstr(t, "\"setup\"")) {
        release_held(ho, hs);
    } else if (rt_slice_eq_cstr(t, "\"emit\"")) {
        int natt = decode_attachments(msg, &store, att);
        rt_slice_t k = RT_SLICE_NULL;
        if (natt >= 0 && msg_str(msg, "e", &a)) {
            if (rt_json_object_get(msg, "k", &k) && rt_json_peek(k) != RT_JSON_NULL)
                sio_emit_with_ack(s, rt_slice(a.data, a.len), msg_args(msg), att, (uint32_t)natt, on_client_ack,
                                  req_new(ho, 'a', sid, k));
            else
                sio_emit(s, rt_slice(a.data, a.len), msg_args(msg), att, (uint32_t)natt);
        }
    } else if (rt_slice_eq_cstr(t, "\"ack\"")) {
        rt_slice_t k;
        uint64_t id;
        int natt = decode_attachments(msg, &store, att);
        if (natt >= 0 && rt_json_object_get(msg, "k", &k) && rt_slice_to_u64(rt_json_trim(k), &id) == 0)
            sio_ack(s, (int64_t)id, msg_args(msg), att, (uint32_t)natt);
    } else if (rt_slice_eq_cstr(t, "\"join\"") || rt_slice_eq_cstr(t, "\"leave\"")) {
        rt_slice_t rooms[64];
        size_t nr = msg_rooms(msg, &a, rooms, 64);
        bool join = t.p[1] == 'j';
        h->origin = ho;
        for (size_t i = 0; i < nr; i++) {
            if (join) sio_join(s, rooms[i]);
            else sio_leave(s, rooms[i]);
        }
        h->origin = NULL;
    } else if (rt_slice_eq_cstr(t, "\"disconnect\"")) {
        rt_slice_t close;
        if (rt_json_object_get(msg, "close", &close) && rt_slice_eq_cstr(close, "true")) {
            sio_client_t *c = sio_socket_client(s);
            if (c && sio_client_session(c)) eio_session_close(sio_client_session(c));
        } else {
            sio_socket_disconnect(s);
        }
    } else if (rt_slice_eq_cstr(t, "\"perm\"")) {
        rt_slice_t id = RT_SLICE_NULL;
        rt_json_object_get(msg, "id", &id);
        rt_buf_t dn = {0};
        msg_str(msg, "dt", &a);
        bool has_dn = msg_str(msg, "dn", &dn);
        h->app.permission(s, rt_slice(a.data ? a.data : "", a.len), has_dn ? rt_slice(dn.data, dn.len) : RT_SLICE_NULL,
                          on_perm, req_new(ho, 'p', sid, id), h->app_ud);
        rt_buf_free(&dn);
    }
    rt_buf_free(&a);
    rt_buf_free(&store);
}

/* ---- host processes ---- */
static void host_start(host_t *ho);
static void host_stop_process(host_t *ho, bool now);

static void exit_reason(int status, char *out, size_t n)
{
    if (WIFSIGNALED(status)) snprintf(out, n, "was killed by signal %d", WTERMSIG(status));
    else snprintf(out, n, "exited with status %d", WEXITSTATUS(status));
}

static void host_restart_later(host_t *ho, const char *why)
{
    handlers_t *h = ho->h;
    /* Its connection usually ends because it died: say how. */
    int status;
    char reason[64];
    if (ho->pid > 0 && waitpid(ho->pid, &status, WNOHANG) == ho->pid) {
        ho->pid = 0;
        exit_reason(status, reason, sizeof reason);
        why = reason;
    }
    host_stop_process(ho, true);
    if (ho->stopping) return;
    h->stats.restarts++;
    if (ho->remote) {
        /* the owner restarts it; we try again until it listens */
        if (ho->was_connected)
            rt_warn("handlers", "the machine's %s host %s: clients stay connected; reconnecting", host_lang[ho->lang], why);
        else
            rt_debug("handlers", "the machine's %s host is not there yet (%s): retrying", host_lang[ho->lang], why);
        ho->was_connected = false;
        net_timer_start(h->loop, &ho->restart_timer, 200);
        return;
    }
    /* A host that lived 30 s was healthy: start over from the shortest delay. */
    if (net_loop_now(h->loop) - ho->started_ms > 30000) ho->backoff_ms = 100;
    rt_warn("handlers", "the %s host %s: clients stay connected; restarting it in %u ms", host_lang[ho->lang], why,
            ho->backoff_ms);
    net_timer_start(h->loop, &ho->restart_timer, ho->backoff_ms);
    ho->backoff_ms = ho->backoff_ms >= 5000 ? 10000 : ho->backoff_ms * 2;
}

/* Its connection ended: it is most likely dying. Stop talking to it and
 * let the pidfd say how it ended (restart then); if it does not exit within
 * a second, it is killed. */
static void host_lost(host_t *ho)
{
    if (ho->pidio.fd < 0 || ho->pid <= 0) {
        host_restart_later(ho, "closed its connection");
        return;
    }
    if (ho->io.fd >= 0) {
        net_io_set(ho->h->loop, &ho->io, 0);
        close(ho->io.fd);
        ho->io.fd = -1;
    }
    net_timer_stop(&ho->ping_timer);
    net_timer_start(ho->h->loop, &ho->restart_timer, 1000); /* restart_cb kills it if still there */
}

static void host_read(host_t *ho)
{
    for (;;) {
        rt_buf_reserve(&ho->in, 65536);
        size_t room = ho->in.cap - ho->in.len;
        ssize_t r = read(ho->io.fd, ho->in.data + ho->in.len, room);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (r <= 0) {
            host_lost(ho);
            return;
        }
        ho->in.len += (size_t)r;
        size_t off = 0;
        while (ho->in.len - off >= 4) {
            const unsigned char *p = (const unsigned char *)ho->in.data + off;
            uint32_t n = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
            if (n > ho->h->opt.max_frame) {
                host_restart_later(ho, "sent a message over the size limit");
                return;
            }
            if (ho->in.len - off - 4 < n) break;
            uint32_t gen = ho->gen;
            host_message(ho, rt_slice(ho->in.data + off + 4, n));
            if (ho->gen != gen || ho->io.fd < 0) return; /* restarted meanwhile */
            off += 4 + n;
        }
        if (off) rt_buf_consume(&ho->in, off);
        if ((size_t)r < room) break; /* a short read: the socket is empty, no need to ask again */
    }
}

static void host_io_cb(net_loop_t *loop, net_io_t *io, uint32_t events)
{
    host_t *ho = rt_container_of(io, host_t, io);
    RT_UNUSED(loop);
    if (events & NET_READ) host_read(ho);
    else if (events & (0x008 | 0x010)) host_lost(ho);
    if (ho->io.fd >= 0 && (events & NET_WRITE)) host_flush_task(ho->h->loop, &ho->flush);
}

static void host_exit_cb(net_loop_t *loop, net_io_t *io, uint32_t events)
{
    host_t *ho = rt_container_of(io, host_t, pidio);
    RT_UNUSED(loop), RT_UNUSED(events);
    int status = 0;
    pid_t p = waitpid(ho->pid, &status, WNOHANG);
    if (p != ho->pid) return;
    ho->pid = 0;
    char why[64];
    exit_reason(status, why, sizeof why);
    host_restart_later(ho, why);
}

static void ping_cb(net_loop_t *loop, net_timer_t *t)
{
    host_t *ho = rt_container_of(t, host_t, ping_timer);
    if (ho->io.fd < 0) return;
    if (++ho->missed_pings > 3) {
        host_restart_later(ho, "stopped answering");
        return;
    }
    host_send(ho, RT_SLICE("{\"t\":\"ping\"}"));
    net_timer_start(loop, t, ho->h->opt.ping_ms);
}

static void restart_cb(net_loop_t *loop, net_timer_t *t)
{
    RT_UNUSED(loop);
    host_t *ho = rt_container_of(t, host_t, restart_timer);
    if (ho->pid > 0) { /* lost its connection and did not exit */
        host_restart_later(ho, "closed its connection and did not exit");
        return;
    }
    host_start(ho);
}

/* Kills the process (SIGKILL when now, else EOF then SIGKILL after 1 s)
 * and forgets its connection and queued output. */
static void host_stop_process(host_t *ho, bool now)
{
    handlers_t *h = ho->h;
    ho->gen++;
    ho->ready = false;
    net_task_cancel(&ho->flush);
    net_timer_stop(&ho->ping_timer);
    if (ho->io.fd >= 0) {
        net_io_set(h->loop, &ho->io, 0);
        close(ho->io.fd);
        ho->io.fd = -1;
    }
    ho->in.len = 0;
    ho->out.len = ho->out_off = 0;
    if (ho->pidio.fd >= 0) {
        net_io_set(h->loop, &ho->pidio, 0);
        close(ho->pidio.fd);
        ho->pidio.fd = -1;
    }
    if (ho->pid > 0) {
        if (!now) {
            /* It sees EOF and exits; wait a little before insisting. */
            for (int i = 0; i < 100 && waitpid(ho->pid, NULL, WNOHANG) == 0; i++) usleep(10000);
        }
        kill(ho->pid, SIGKILL);
        waitpid(ho->pid, NULL, 0);
        ho->pid = 0;
    }
}

static void host_greet(host_t *ho);

/* Another worker's host: connect to it. */
static void host_connect(host_t *ho)
{
    handlers_t *h = ho->h;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", ho->share_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        host_restart_later(ho, "could not get a socket");
        return;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        char why[160];
        snprintf(why, sizeof why, "connect %s: %s", ho->share_path, strerror(errno));
        close(fd);
        host_restart_later(ho, why);
        return;
    }
    ho->started_ms = net_loop_now(h->loop);
    ho->missed_pings = 0;
    ho->io.fd = fd;
    ho->io.events = 0;
    ho->io.cb = host_io_cb;
    if (net_io_set(h->loop, &ho->io, NET_READ) < 0) {
        host_restart_later(ho, "could not be watched");
        return;
    }
    host_greet(ho);
}

static void host_start(host_t *ho)
{
    handlers_t *h = ho->h;
    if (ho->remote) {
        host_connect(ho);
        return;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        host_restart_later(ho, "could not get a socket pair");
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(sv[0]);
        close(sv[1]);
        host_restart_later(ho, "could not be forked");
        return;
    }
    if (pid == 0) {
        /* child: the protocol on fd 3, stdout/stderr shared with realtimed */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (dup2(sv[1], 3) < 0) _exit(127);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        signal(SIGPIPE, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        setenv("REALTIMED_HOST_FD", "3", 1);
        setenv("REALTIMED_BENCH", h->bench, 1);
        if (ho->share_path[0]) setenv("REALTIMED_HOST_LISTEN", ho->share_path, 1);
        else unsetenv("REALTIMED_HOST_LISTEN");
        if (chdir(h->bench) < 0) _exit(127);
        execv(ho->argv[0], ho->argv);
        fprintf(stderr, "realtimed: cannot run %s: %s\n", ho->argv[0], strerror(errno));
        _exit(127);
    }
    close(sv[1]);
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    ho->pid = pid;
    ho->started_ms = net_loop_now(h->loop);
    ho->missed_pings = 0;
    ho->io.fd = sv[0];
    ho->io.events = 0;
    ho->io.cb = host_io_cb;
    ho->pidio.fd = (int)syscall(SYS_pidfd_open, pid, 0);
    ho->pidio.events = 0;
    ho->pidio.cb = host_exit_cb;
    if (net_io_set(h->loop, &ho->io, NET_READ) < 0 ||
        (ho->pidio.fd >= 0 && net_io_set(h->loop, &ho->pidio, NET_READ) < 0)) {
        host_restart_later(ho, "could not be watched");
        return;
    }
    if (ho->pidio.fd < 0) rt_warn("handlers", "pidfd_open failed (%s): host exits are seen as EOF only", strerror(errno));
    host_greet(ho);
}

/* hello, then every current socket with its rooms */
static void host_greet(host_t *ho)
{
    handlers_t *h = ho->h;
    rt_buf_t *b = &h->tmp;
    b->len = 0;
    rt_buf_append_cstr(b, "{\"t\":\"hello\",\"version\":\"" REALTIMED_VERSION "\",\"bench\":");
    buf_json_str(b, rt_slice_cstr(h->bench));
    rt_buf_append_cstr(b, ",\"apps\":[");
    for (size_t i = 0; i < ho->napps; i++) {
        if (i) rt_buf_putc(b, ',');
        buf_json_str(b, rt_slice_cstr(ho->apps[i]));
    }
    rt_buf_append_cstr(b, "]}");
    host_send(ho, rt_slice(b->data, b->len));
    rt_slice_t k;
    void *v;
    size_t replayed = 0;
    for (uint32_t it = 0; rt_map_next(&h->sockets, &it, &k, &v);) {
        hs_socket_t *hs = v;
        if (!(hs->hosts & (1u << ho->lang))) continue;
        free(hs->listen[ho->lang].ids); /* the new host tells again what it listens to */
        hs->listen[ho->lang] = (name_set_t){0};
        send_connect(ho, hs);
        replayed++;
    }
    if (replayed && ho->remote) rt_notice("handlers", "%s host (the machine's): replayed %zu sockets", host_lang[ho->lang], replayed);
    else if (replayed) rt_notice("handlers", "%s host (pid %d): replayed %zu sockets", host_lang[ho->lang], (int)ho->pid, replayed);
    net_timer_start(h->loop, &ho->ping_timer, h->opt.ping_ms);
}

static host_t *host_new(handlers_t *h, int lang, char **apps, size_t napps, const char *bin, const char *script)
{
    host_t *ho = rt_calloc(1, sizeof *ho);
    ho->h = h;
    ho->lang = lang;
    ho->apps = apps;
    ho->napps = napps;
    ho->io.fd = ho->pidio.fd = -1;
    ho->backoff_ms = 100;
    net_task_init(&ho->flush, host_flush_task);
    net_timer_init(&ho->restart_timer, restart_cb);
    net_timer_init(&ho->ping_timer, ping_cb);
    int n = 0;
    ho->argv[n++] = rt_strndup(bin, strlen(bin));
    if (lang == HOST_NODE) {
        /* resolve modules with the bench's paths, as the Node server did
         * from apps/frappe (bench symlinks apps into place) */
        ho->argv[n++] = rt_strndup("--preserve-symlinks", 19);
        ho->argv[n++] = rt_strndup("--preserve-symlinks-main", 24);
    } else {
        ho->argv[n++] = rt_strndup("-u", 2);
    }
    ho->argv[n++] = rt_strndup(script, strlen(script));
    ho->argv[n] = NULL;
    return ho;
}

static void host_free(host_t *ho)
{
    if (!ho) return;
    ho->stopping = true;
    net_timer_stop(&ho->restart_timer);
    host_stop_process(ho, false);
    rt_buf_free(&ho->in);
    rt_buf_free(&ho->out);
    for (size_t i = 0; i < ho->napps; i++) free(ho->apps[i]);
    free(ho->apps);
    for (int i = 0; ho->argv[i]; i++) free(ho->argv[i]);
    free(ho);
}

/* ---- setup ---- */
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* What the bench needs: per host, the apps it serves, and how to run it. */
typedef struct {
    char *bench;           /* absolute */
    char **apps[NHOSTS];
    size_t napps[NHOSTS];
    char bin[NHOSTS][PATH_MAX], script[NHOSTS][PATH_MAX];
} plan_t;

static void plan_free(plan_t *p)
{
    for (int k = 0; k < NHOSTS; k++) {
        for (size_t i = 0; p->apps[k] && i < p->napps[k]; i++) free(p->apps[k][i]);
        free(p->apps[k]);
    }
    free(p->bench);
}

/* Scans <bench>/apps (logging which file each app uses when quiet is
 * false) and finds the interpreters and scripts. 0 (possibly with no app),
 * or -1 with a message in err. */
static int plan_make(const handlers_options_t *o, bool quiet, plan_t *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    p->bench = absolute_path(o->bench);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/apps", p->bench);
    DIR *d = opendir(path);
    if (!d) return 0; /* no apps folder: nothing to run */
    snprintf(path, sizeof path, "%s/apps/frappe/frappe/realtime/registry.py", p->bench);
    bool prefer_py = !strcmp(o->mode, "py") || (!strcmp(o->mode, "auto") && is_file(path));
    struct dirent *e;
    char **names = NULL;
    size_t nnames = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "frappe")) continue;
        names = rt_realloc(names, (nnames + 1) * sizeof *names);
        names[nnames++] = rt_strndup(e->d_name, strlen(e->d_name));
    }
    closedir(d);
    if (nnames) qsort(names, nnames, sizeof *names, cmp_str);
    for (size_t i = 0; i < nnames; i++) {
        const char *a = names[i];
        char js[PATH_MAX], py[PATH_MAX];
        bool has_js = snprintf(js, sizeof js, "%s/apps/%s/realtime/handlers.js", p->bench, a) < (int)sizeof js &&
                      is_file(js);
        bool has_py = snprintf(py, sizeof py, "%s/apps/%s/%s/realtime/handlers.py", p->bench, a, a) < (int)sizeof py &&
                      is_file(py);
        if (!has_js && !has_py) {
            free(names[i]);
            continue;
        }
        int lang = has_js && has_py ? (prefer_py ? HOST_PY : HOST_NODE) : has_py ? HOST_PY : HOST_NODE;
        if (!quiet)
            rt_notice("handlers", "app %s: %s%s", a, lang == HOST_PY ? py : js,
                      has_js && has_py ? (lang == HOST_PY ? " (handlers.js not used)" : " (handlers.py not used)") : "");
        p->apps[lang] = rt_realloc(p->apps[lang], (p->napps[lang] + 1) * sizeof **p->apps);
        p->apps[lang][p->napps[lang]++] = names[i];
    }
    free(names);
    static const char *const scripts[NHOSTS] = {"handlers-host.js", "handlers_host.py"};
    for (int k = 0; k < NHOSTS; k++) {
        if (!p->napps[k]) continue;
        char *bin = p->bin[k], dir[PATH_MAX];
        bool have_bin;
        if (k == HOST_NODE) {
            have_bin = find_on_path(o->node ? o->node : "node", bin, PATH_MAX) ||
                       (!o->node && find_on_path("nodejs", bin, PATH_MAX));
        } else if (o->python) {
            have_bin = find_on_path(o->python, bin, PATH_MAX);
        } else {
            have_bin = (snprintf(bin, PATH_MAX, "%s/env/bin/python", p->bench) < PATH_MAX && is_exec(bin)) ||
                       find_on_path("python3", bin, PATH_MAX);
        }
        if (!have_bin) {
            snprintf(err, errlen, "%zu app(s) have realtime/handlers.%s but no %s was found (%s)", p->napps[k],
                     k == HOST_NODE ? "js" : "py", k == HOST_NODE ? "Node.js" : "Python",
                     k == HOST_NODE ? "--node PATH or REALTIMED_NODE" : "--python PATH or REALTIMED_PYTHON");
            return -1;
        }
        if (!find_host_dir(o->host_dir, scripts[k], dir, sizeof dir) ||
            snprintf(p->script[k], PATH_MAX, "%s/%s", dir, scripts[k]) >= PATH_MAX) {
            snprintf(err, errlen, "the handler host script %s was not found (install realtimed with make install, "
                                  "or pass --host-dir)", scripts[k]);
            return -1;
        }
    }
    return 0;
}

int handlers_new(net_loop_t *loop, sio_server_t *srv, const handlers_options_t *opt, const handlers_app_t *app,
                 void *app_ud, handlers_t **out, char *err, size_t errlen)
{
    *out = NULL;
    handlers_options_t o;
    if (opt) o = *opt;
    else handlers_options_default(&o);
    plan_t p;
    if (plan_make(&o, false, &p, err, errlen) < 0) {
        plan_free(&p);
        return -1;
    }
    if (!p.napps[HOST_NODE] && !p.napps[HOST_PY]) {
        plan_free(&p);
        return 0;
    }
    handlers_t *h = rt_calloc(1, sizeof *h);
    h->loop = loop;
    h->srv = srv;
    h->opt = o;
    h->app = *app;
    h->app_ud = app_ud;
    h->bench = p.bench;
    p.bench = NULL;
    rt_map_init(&h->sockets);
    rt_map_init(&h->names);
    rt_list_init(&h->reqs);
    for (int k = 0; k < NHOSTS; k++) {
        if (!p.napps[k]) continue;
        host_t *ho = h->hosts[k] = host_new(h, k, p.apps[k], p.napps[k], p.bin[k], p.script[k]);
        if (opt->share_dir) {
            snprintf(ho->share_path, sizeof ho->share_path, "%s/%s.sock", opt->share_dir, host_lang[k]);
            ho->remote = !opt->share_owner;
        }
        if (ho->remote) rt_info("handlers", "using the machine's %s host at %s", host_lang[k], ho->share_path);
        else rt_notice("handlers", "starting the %s host (%s) for %zu app(s)", host_lang[k], p.bin[k], p.napps[k]);
        p.apps[k] = NULL;
        p.napps[k] = 0;
    }
    plan_free(&p);
    for (int k = 0; k < NHOSTS; k++)
        if (h->hosts[k]) host_start(h->hosts[k]);
    *out = h;
    return 0;
}

int handlers_check(const handlers_options_t *opt)
{
    plan_t p;
    char err[512];
    int rc = 0;
    if (plan_make(opt, true, &p, err, sizeof err) < 0) {
        fprintf(stderr, "realtimed: %s\n", err);
        plan_free(&p);
        return -1;
    }
    for (int k = 0; k < NHOSTS; k++) {
        if (!p.napps[k]) continue;
        /* the host imports every app's handlers and says which failed */
        char *argv[8 + 64];
        int n = 0;
        argv[n++] = p.bin[k];
        if (k == HOST_NODE) argv[n++] = "--preserve-symlinks";
        argv[n++] = p.script[k];
        argv[n++] = "--check";
        argv[n++] = p.bench;
        for (size_t i = 0; i < p.napps[k] && n < (int)RT_ARRAY_LEN(argv) - 1; i++) argv[n++] = p.apps[k][i];
        argv[n] = NULL;
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            if (chdir(p.bench) < 0) _exit(127);
            dup2(2, 1); /* what it says goes with our errors */
            execv(argv[0], argv);
            _exit(127);
        }
        int status = 0;
        if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "realtimed: some app's realtime/handlers.%s does not load (see above)\n",
                    k == HOST_NODE ? "js" : "py");
            rc = -1;
        }
    }
    plan_free(&p);
    return rc;
}

void handlers_free(handlers_t *h)
{
    if (!h) return;
    for (int k = 0; k < NHOSTS; k++) host_free(h->hosts[k]);
    /* Requests still waiting outlive us: their callbacks free them. */
    while (!rt_list_empty(&h->reqs)) {
        hs_req_t *r = rt_container_of(h->reqs.next, hs_req_t, link);
        rt_list_remove(&r->link);
        r->host = NULL;
    }
    rt_slice_t k;
    void *v;
    for (uint32_t it = 0; rt_map_next(&h->sockets, &it, &k, &v);) sock_free(h, v);
    rt_map_free(&h->sockets);
    rt_map_free(&h->names);
    for (size_t i = 0; i < h->nnames; i++) free(h->name_list[i]);
    free(h->name_list);
    rt_buf_free(&h->tmp);
    rt_buf_free(&h->tmp2);
    free(h->bench);
    free(h);
}

void handlers_stats(const handlers_t *h, handlers_stats_t *out)
{
    *out = h->stats;
    for (int k = 0; k < NHOSTS; k++) out->up[k] = h->hosts[k] && h->hosts[k]->ready;
}

void handlers_broadcast_in(handlers_t *h, rt_slice_t msg)
{
    rt_json_type_t type;
    if (!h || !rt_json_valid(msg, &type) || type != RT_JSON_OBJECT) return;
    broadcast(h, msg, true);
}
