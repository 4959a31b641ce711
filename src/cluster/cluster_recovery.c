/* cluster: connection state recovery across workers and nodes (cluster.h).
 *
 * A node that keeps a session (its socket's transport went) writes
 *   session:<pid> = <node>   PX window
 * A node asked by a CONNECT for a pid it does not keep runs one script:
 * the owner from that key, alive (node:<owner> exists), then PUBLISH on
 * realtimed:recover "<owner>\0<requester>\0<req>\0<nsp>\0<pid>\0<has>\0<offset>".
 * Every node hears it on its subscriber link, in Redis's one order of
 * messages, with the `events` and our other channels:
 *   - the requester notes its own log position there (the mark): the
 *     broadcasts it keeps after the mark are those every node got after it;
 *   - the owner exports the session with what it kept after the client's
 *     offset, up to that same point, and publishes it on the requester's
 *     realtimed:recovered:<node>.
 * The requester replays the owner's packets, then its own after the mark:
 * nothing lost in between. No answer in REPLY_TIMEOUT_MS, an owner gone or
 * Redis away: not recovered (a new session, as socket.io does). */
#include "cluster.h"

#include <hiredis/hiredis.h>
#include <stdio.h>

#define REPLY_TIMEOUT_MS 3000
#define EXPORT_MAX (2u << 20) /* under Redis's pub/sub output buffer soft limit (8 MB) */

static const char lua_ask[] =
    "local o = redis.call('GET', KEYS[1])\n"
    "if not o then return false end\n"
    "if redis.call('EXISTS', 'realtimed:node:' .. o) == 0 then return false end\n"
    "redis.call('PUBLISH', ARGV[1], o .. '\\0' .. ARGV[2])\n"
    "return o\n";

typedef struct {
    cluster_recovery_t *cr;
    sio_socket_t *s;
    net_timer_t timer;
    uint64_t mark;
    bool marked;
    bool asked; /* the script's answer is in */
    char key[24];
} ask_t;

struct cluster_recovery {
    cluster_t *c;
    broker_t *b;
    sio_server_t *srv;
    net_loop_t *loop;
    char ch_ask[48], ch_reply[64];
    uint64_t next_req;
    rt_map_t asks; /* req id (decimal) -> ask_t */
    unsigned inflight; /* scripts awaiting their reply */
    bool freed;
    rt_buf_t tmp;
};

/* The end of a request: blob (with the mark) or not recovered for why. */
static void ask_finish(ask_t *a, rt_slice_t blob, int why)
{
    cluster_recovery_t *cr = a->cr;
    uint64_t mark = a->mark;
    net_timer_stop(&a->timer);
    rt_map_del(&cr->asks, rt_slice_cstr(a->key));
    sio_socket_t *s = a->s;
    free(a);
    sio_socket_restore_remote(s, blob, mark, why);
}
static void ask_end(ask_t *a, rt_slice_t none, int why) { ask_finish(a, none, why); }

static void ask_timeout(net_loop_t *loop, net_timer_t *t)
{
    RT_UNUSED(loop);
    ask_t *a = rt_container_of(t, ask_t, timer);
    rt_warn_rl("cluster", "no answer from the node keeping a session to recover in %d ms: a new session",
               REPLY_TIMEOUT_MS);
    ask_end(a, RT_SLICE_NULL, SIO_REC_REMOTE);
}

static void maybe_release(cluster_recovery_t *cr)
{
    if (!cr->freed || cr->inflight) return;
    rt_map_free(&cr->asks);
    rt_buf_free(&cr->tmp);
    free(cr);
}

typedef struct {
    cluster_recovery_t *cr;
    char key[24];
} ask_ref_t;

static void on_ask_reply(redisReply *r, void *ud)
{
    ask_ref_t *ref = ud;
    cluster_recovery_t *cr = ref->cr;
    cr->inflight--;
    ask_t *a = cr->freed ? NULL : rt_map_get(&cr->asks, rt_slice_cstr(ref->key));
    free(ref);
    if (a) {
        if (!r || r->type == REDIS_REPLY_ERROR) {
            if (r) rt_warn_rl("cluster", "Redis refused the recovery script: %.200s", r->str);
            ask_end(a, RT_SLICE_NULL, SIO_REC_REMOTE);
        } else if (r->type != REDIS_REPLY_STRING) {
            ask_end(a, RT_SLICE_NULL, SIO_REC_UNKNOWN); /* no such session kept, or its node is gone */
        } else {
            a->asked = true; /* the owner answers on our channel */
        }
    }
    maybe_release(cr);
}

static void hook_remote(sio_socket_t *s, rt_slice_t pid, rt_slice_t offset, void *ud)
{
    cluster_recovery_t *cr = ud;
    rt_slice_t nsp = sio_nsp_name(sio_socket_nsp(s));
    if (!cluster_ready(cr->c) || memchr(nsp.p, 0, nsp.n)) {
        sio_socket_restore_remote(s, RT_SLICE_NULL, 0, SIO_REC_REMOTE);
        return;
    }
    ask_t *a = rt_calloc(1, sizeof *a);
    a->cr = cr;
    a->s = s;
    snprintf(a->key, sizeof a->key, "%llu", (unsigned long long)++cr->next_req);
    net_timer_init(&a->timer, ask_timeout);
    rt_buf_t *m = &cr->tmp;
    m->len = 0;
    rt_buf_append_cstr(m, cluster_node(cr->c));
    rt_buf_putc(m, 0);
    rt_buf_append_cstr(m, a->key);
    rt_buf_putc(m, 0);
    rt_buf_append_slice(m, nsp);
    rt_buf_putc(m, 0);
    rt_buf_append_slice(m, pid);
    rt_buf_putc(m, 0);
    rt_buf_putc(m, offset.p ? '1' : '0');
    rt_buf_putc(m, 0);
    rt_buf_append_slice(m, offset.p ? offset : RT_SLICE(""));
    char key[96];
    snprintf(key, sizeof key, "realtimed:session:%.*s", (int)pid.n, pid.p);
    const char *argv[] = {"EVAL", lua_ask, "1", key, cr->ch_ask, m->data};
    size_t lens[] = {4, sizeof lua_ask - 1, 1, strlen(key), strlen(cr->ch_ask), m->len};
    ask_ref_t *ref = rt_malloc(sizeof *ref);
    ref->cr = cr;
    memcpy(ref->key, a->key, sizeof ref->key);
    rt_map_put(&cr->asks, rt_slice_cstr(a->key), a);
    if (!broker_command(cr->b, on_ask_reply, ref, 6, argv, lens)) {
        free(ref);
        ask_end(a, RT_SLICE_NULL, SIO_REC_REMOTE);
        return;
    }
    cr->inflight++;
    net_timer_start(cr->loop, &a->timer, REPLY_TIMEOUT_MS);
}

static void hook_kept(sio_nsp_t *nsp, const char *pid, unsigned ttl_ms, void *ud)
{
    cluster_recovery_t *cr = ud;
    RT_UNUSED(nsp);
    if (!cluster_ready(cr->c)) return; /* recoverable here only */
    char key[96], ttl[16];
    snprintf(key, sizeof key, "realtimed:session:%s", pid);
    snprintf(ttl, sizeof ttl, "%u", ttl_ms);
    const char *argv[] = {"SET", key, cluster_node(cr->c), "PX", ttl};
    broker_command(cr->b, NULL, NULL, 5, argv, NULL);
}

/* Splits payload at NULs into at most n fields; returns the count. */
static size_t fields(rt_slice_t p, rt_slice_t *f, size_t n)
{
    size_t k = 0;
    const char *a = p.p, *e = p.p + p.n;
    while (k < n) {
        const char *z = k + 1 < n ? memchr(a, 0, (size_t)(e - a)) : NULL;
        if (!z) z = e;
        f[k++] = rt_slice(a, (size_t)(z - a));
        if (z == e) break;
        a = z + 1;
    }
    return k;
}

/* realtimed:recover: owner, requester, req, nsp, pid, has offset, offset */
static void on_ask(rt_slice_t channel, rt_slice_t payload, void *ud)
{
    cluster_recovery_t *cr = ud;
    RT_UNUSED(channel);
    rt_slice_t f[7];
    if (fields(payload, f, 7) != 7) return;
    const char *me = cluster_node(cr->c);
    if (rt_slice_eq_cstr(f[1], me)) { /* our own request: the mark */
        char key[24];
        snprintf(key, sizeof key, "%.*s", (int)(f[2].n < 20 ? f[2].n : 20), f[2].p);
        ask_t *a = rt_map_get(&cr->asks, rt_slice_cstr(key));
        if (a && !a->marked) {
            a->mark = sio_recovery_position(cr->srv);
            a->marked = true;
        }
    }
    if (!rt_slice_eq_cstr(f[0], me)) return;
    rt_buf_t *out = &cr->tmp;
    out->len = 0;
    rt_buf_append_slice(out, f[2]);
    rt_buf_putc(out, 0);
    size_t at = out->len + 2;
    rt_buf_append_cstr(out, "ok");
    rt_buf_putc(out, 0);
    int rc = sio_recovery_export(cr->srv, f[3], f[4], f[5].n == 1 && f[5].p[0] == '1' ? f[6] : RT_SLICE_NULL, out,
                                 EXPORT_MAX);
    if (rc != RT_OK) {
        out->len = at - 2;
        rt_buf_append_cstr(out, rc == RT_ESTATE ? "evicted" : rc == RT_ETOOBIG ? "too_big" : "unknown");
        rt_buf_putc(out, 0);
    }
    char ch[96];
    snprintf(ch, sizeof ch, "realtimed:recovered:%.*s", (int)(f[1].n < 40 ? f[1].n : 40), f[1].p);
    broker_publish(cr->b, ch, rt_slice(out->data, out->len));
}

/* realtimed:recovered:<us>: req, status, blob */
static void on_reply(rt_slice_t channel, rt_slice_t payload, void *ud)
{
    cluster_recovery_t *cr = ud;
    RT_UNUSED(channel);
    rt_slice_t f[3];
    if (fields(payload, f, 3) != 3) return;
    char key[24];
    snprintf(key, sizeof key, "%.*s", (int)(f[0].n < 20 ? f[0].n : 20), f[0].p);
    ask_t *a = rt_map_get(&cr->asks, rt_slice_cstr(key));
    if (!a) return; /* too late */
    if (!a->marked) { /* cannot be: the request precedes its answer on our link */
        ask_end(a, RT_SLICE_NULL, SIO_REC_REMOTE);
        return;
    }
    if (rt_slice_eq_cstr(f[1], "ok")) ask_finish(a, f[2], SIO_REC_REMOTE);
    else ask_end(a, RT_SLICE_NULL,
                 rt_slice_eq_cstr(f[1], "evicted")   ? SIO_REC_EVICTED
                 : rt_slice_eq_cstr(f[1], "too_big") ? SIO_REC_TOO_BIG
                                                     : SIO_REC_UNKNOWN);
}

cluster_recovery_t *cluster_recovery_new(cluster_t *c, sio_server_t *srv)
{
    if (!sio_server_recovery_stats(srv)) return NULL; /* recovery is off */
    cluster_recovery_t *cr = rt_calloc(1, sizeof *cr);
    cr->c = c;
    cr->b = cluster_broker(c);
    cr->srv = srv;
    cr->loop = cluster_loop(c);
    rt_map_init(&cr->asks);
    int db = broker_db(cr->b);
    snprintf(cr->ch_ask, sizeof cr->ch_ask, db ? "realtimed:recover:%d" : "realtimed:recover", db);
    snprintf(cr->ch_reply, sizeof cr->ch_reply, "realtimed:recovered:%s", cluster_node(c));
    broker_subscribe(cr->b, cr->ch_ask, on_ask, cr);
    broker_subscribe(cr->b, cr->ch_reply, on_reply, cr);
    static const sio_recovery_hooks_t h = {hook_remote, hook_kept};
    sio_server_set_recovery_hooks(srv, &h, cr);
    return cr;
}

void cluster_recovery_free(cluster_recovery_t *cr)
{
    if (!cr) return;
    static const sio_recovery_hooks_t none = {0};
    sio_server_set_recovery_hooks(cr->srv, &none, NULL);
    broker_unsubscribe(cr->b, cr->ch_ask);
    broker_unsubscribe(cr->b, cr->ch_reply);
    rt_slice_t k;
    void *v;
    for (uint32_t it = 0; rt_map_next(&cr->asks, &it, &k, &v);) ask_end(v, RT_SLICE_NULL, SIO_REC_REMOTE);
    cr->freed = true;
    maybe_release(cr);
}
