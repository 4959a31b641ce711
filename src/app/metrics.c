/* Operations endpoints: GET /metrics (Prometheus text format), /health
 * (liveness: the loop answers) and /ready (503 with a reason while Redis or
 * the socket secret is unusable, or while draining).
 *
 * The counters live in the modules (net, eio, sio, frappe, fetch, broker,
 * cluster, handlers), each one increment on its own path; a scrape copies
 * them into one snapshot and renders it. With --workers each worker also
 * copies its snapshot once a second into its slot of a shared mapping the
 * master made before forking (a sequence counter guards against torn
 * reads), so whichever worker answers a scrape sums every worker: one port,
 * one target, the machine's totals. */
#include "app_frappe.h"
#include "emitter/emitter.h"

#include <dirent.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "frappe/frappe.h"
#include "handlers/handlers.h"

#define MX_SITES 128 /* namespaces listed by name; the rest are summed as "other" */
#define MX_NAME 128

typedef struct {
    char name[MX_NAME];
    uint64_t sockets;
} mx_site_t;

struct metrics_snap {
    _Atomic uint32_t seq; /* odd while its owner writes it (shared slots) */
    uint64_t taken_ms;    /* CLOCK_MONOTONIC: the same clock for every process of the machine */
    char not_ready[96];   /* "" when ready */
    bool frappe, has_handlers, has_cluster, has_recovery, has_emitter, has_events_hook;
    uint64_t rss, fds, pending;
    net_stats_t net;
    eio_stats_t eio;
    uint64_t sessions;
    sio_stats_t sio;
    sio_recovery_stats_t rec;
    emitter_stats_t em;
    events_hook_stats_t evh;
    frappe_stats_t fr;
    fetch_stats_t fetch;
    broker_stats_t broker;
    uint32_t nsnaps;                  /* processes summed */
    uint32_t redis_sub, redis_cmd;    /* processes whose link is up */
    cluster_stats_t cluster;
    handlers_stats_t handlers;
    uint32_t nsites;
    uint64_t sites_other;
    mx_site_t sites[MX_SITES];
};

/* ---- what this process knows ---- */
static uint64_t proc_rss(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    unsigned long size = 0, res = 0;
    int n = fscanf(f, "%lu %lu", &size, &res);
    fclose(f);
    return n == 2 ? (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
}

static uint64_t proc_fds_walk(pid_t pid);
/* At most one walk a second per process: on kernels before 6.2 counting
 * means reading every entry of /proc/<pid>/fd inside the loop. */
static uint64_t proc_fds(pid_t pid)
{
    static struct {
        pid_t pid;
        uint64_t at, n;
    } cache[2];
    uint64_t now = rt_now_ms();
    int k = pid == getpid() ? 0 : 1;
    if (cache[k].pid == pid && now - cache[k].at < 1000) return cache[k].n;
    cache[k].pid = pid, cache[k].at = now, cache[k].n = proc_fds_walk(pid);
    return cache[k].n;
}

static uint64_t proc_fds_walk(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    /* Linux >= 6.2 gives the count as the folder's size: no walk over
     * 100,000 entries in the middle of the loop */
    struct stat st;
    if (stat(path, &st) == 0 && st.st_size > 0) return (uint64_t)st.st_size;
    DIR *d = opendir(path);
    if (!d) return 0;
    uint64_t n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n > 0 ? n - 1 : 0; /* not the one opendir holds */
}

static void site_one(sio_nsp_t *nsp, void *arg)
{
    metrics_snap_t *m = arg;
    size_t n = sio_nsp_sockets(nsp);
    if (!n) return;
    rt_slice_t name = sio_nsp_name(nsp);
    if (m->nsites == MX_SITES || name.n >= MX_NAME) {
        m->sites_other += n;
        return;
    }
    mx_site_t *s = &m->sites[m->nsites++];
    memcpy(s->name, name.p, name.n);
    s->name[name.n] = 0;
    s->sockets = n;
}

/* Why this process should not get traffic, or "" */
static void readiness(const app_t *app, char *out, size_t n)
{
    out[0] = 0;
    if (app->draining) {
        snprintf(out, n, "draining");
        return;
    }
    if (app->standalone) { /* with --redis-queue: the API and the emitter need it */
        broker_t *sb = standalone_broker(app);
        if (sb && !broker_ready(sb)) snprintf(out, n, "redis: link down (the API cannot reach the other nodes)");
        return;
    }
    if (app->cfg.conformance || !app->frappe) return;
    broker_t *b = frappe_broker(app->frappe);
    const frappe_stats_t *fs = frappe_stats(app->frappe);
    if (!b || !broker_subscribed(b)) snprintf(out, n, "redis: not subscribed to 'events'");
    else if (!broker_command_ready(b)) snprintf(out, n, "redis: command link down (the socket secret cannot be read)");
    /* a failed read counts for 5 s: with no client authenticating, nothing
     * else would ever clear it, and a balancer would keep the node out */
    else if (fs->secret_failing && rt_now_ms() - fs->secret_failed_ms < 5000)
        snprintf(out, n, "redis: the last read of the socket secret failed");
}

static void collect(const app_t *app, metrics_snap_t *m)
{
    memset((char *)m + sizeof m->seq, 0, sizeof *m - sizeof m->seq);
    m->taken_ms = rt_now_ms();
    m->nsnaps = 1;
    readiness(app, m->not_ready, sizeof m->not_ready);
    m->rss = proc_rss(getpid());
    m->fds = proc_fds(getpid());
    m->net = *net_loop_stats(app->loop);
    if (app->sio) {
        eio_server_t *eio = sio_server_eio(app->sio);
        m->eio = *eio_server_stats(eio);
        m->sessions = eio_server_sessions(eio);
        m->sio = *sio_server_stats(app->sio);
        m->pending = sio_server_pending(app->sio);
        if (app->emitter) m->has_emitter = true, m->em = *emitter_stats(app->emitter);
        if (app->events_hook) m->has_events_hook = true, m->evh = *events_hook_stats(app->events_hook);
        const sio_recovery_stats_t *rs = sio_server_recovery_stats(app->sio);
        if (rs) m->has_recovery = true, m->rec = *rs;
        sio_server_each_nsp(app->sio, site_one, m);
    }
    if (app->frappe) {
        m->frappe = true;
        m->fr = *frappe_stats(app->frappe);
        const fetch_stats_t *fe = frappe_fetch_stats(app->frappe);
        if (fe) m->fetch = *fe;
        broker_t *b = frappe_broker(app->frappe);
        if (b) {
            m->broker = *broker_stats(b);
            m->redis_sub = broker_subscribed(b);
            m->redis_cmd = broker_command_ready(b);
        }
    }
    if (app->cluster) {
        m->has_cluster = true;
        m->cluster = *cluster_stats(app->cluster);
    }
    if (app->handlers) {
        m->has_handlers = true;
        handlers_stats(app->handlers, &m->handlers);
    }
}

/* ---- summing snapshots ---- */
#define ADD(f) (t->f += m->f)
static void hist_add(rt_hist_t *t, const rt_hist_t *m)
{
    ADD(count), ADD(sum_us);
    for (int i = 0; i <= RT_HIST_BUCKETS; i++) ADD(bucket[i]);
}

static void sum_into(metrics_snap_t *t, const metrics_snap_t *m)
{
    if (m->not_ready[0] && !t->not_ready[0]) memcpy(t->not_ready, m->not_ready, sizeof t->not_ready);
    t->frappe |= m->frappe, t->has_handlers |= m->has_handlers, t->has_cluster |= m->has_cluster;
    t->has_recovery |= m->has_recovery;
    t->has_emitter |= m->has_emitter;
    t->has_events_hook |= m->has_events_hook;
    ADD(evh.posted), ADD(evh.delivered), ADD(evh.failed), ADD(evh.overflow);
    ADD(em.broadcasts), ADD(em.requests), ADD(em.invalid), ADD(em.ignored);
    ADD(rec.kept), ADD(rec.recovered), ADD(rec.recovered_remote), ADD(rec.exported), ADD(rec.packets_replayed);
    ADD(rec.sessions_evicted), ADD(rec.log_entries), ADD(rec.log_bytes), ADD(rec.sessions), ADD(rec.session_bytes);
    for (int i = 0; i < SIO_REC_REASONS; i++) ADD(rec.refused[i]);
    ADD(rss), ADD(fds), ADD(pending), ADD(sessions), ADD(nsnaps), ADD(redis_sub), ADD(redis_cmd);
    ADD(net.accepted), ADD(net.closed), ADD(net.bytes_in), ADD(net.bytes_out), ADD(net.slow_closed);
    ADD(net.handed_off), ADD(net.conns);
    for (int i = 0; i < 2; i++) ADD(eio.handshakes[i]);
    ADD(eio.upgrades), ADD(eio.refused_full), ADD(eio.polling_overflow), ADD(eio.ws_sessions);
    ADD(eio.compressed), ADD(eio.compressed_in), ADD(eio.compressed_out);
    ADD(eio.deflated), ADD(eio.deflated_in), ADD(eio.deflated_out), ADD(eio.deflate_sessions);
    for (int i = 0; i < EIO_REASONS; i++) ADD(eio.closes[i]);
    ADD(sio.connects), ADD(sio.connect_errors), ADD(sio.disconnects), ADD(sio.events_in), ADD(sio.broadcasts);
    ADD(sio.deliveries), ADD(sio.protocol_errors), ADD(sio.evicted), ADD(sio.invalid_namespace);
    ADD(sio.too_many_namespaces);
    for (int i = 0; i < SIO_REASONS; i++) ADD(sio.disconnects_by[i]);
    ADD(fr.events), ADD(fr.events_bad), ADD(fr.perm_checks), ADD(fr.secret_failures);
    for (int i = 0; i < FR_REFUSALS; i++) ADD(fr.refused[i]);
    hist_add(&t->fr.event_latency, &m->fr.event_latency);
    ADD(fetch.requests), ADD(fetch.coalesced), ADD(fetch.failures), ADD(fetch.in_flight);
    for (int i = 0; i < FETCH_FAILS; i++) ADD(fetch.failed[i]);
    hist_add(&t->fetch.latency, &m->fetch.latency);
    ADD(broker.messages), ADD(broker.reconnects), ADD(broker.dropped_publishes);
    ADD(cluster.changes), ADD(cluster.resyncs), ADD(cluster.cleanups), ADD(cluster.failed);
    ADD(handlers.to_host), ADD(handlers.from_host), ADD(handlers.dropped), ADD(handlers.restarts);
    t->handlers.up[0] |= m->handlers.up[0], t->handlers.up[1] |= m->handlers.up[1];
    ADD(sites_other);
    for (uint32_t i = 0; i < m->nsites; i++) {
        uint32_t j = 0;
        while (j < t->nsites && strcmp(t->sites[j].name, m->sites[i].name)) j++;
        if (j == t->nsites) {
            if (j == MX_SITES) {
                t->sites_other += m->sites[i].sockets;
                continue;
            }
            t->nsites++;
            memcpy(t->sites[j].name, m->sites[i].name, MX_NAME);
        }
        t->sites[j].sockets += m->sites[i].sockets;
    }
}
#undef ADD

/* ---- shared slots (--workers) ---- */
void *metrics_slots_new(int nworkers)
{
    size_t len = (size_t)nworkers * sizeof(metrics_snap_t);
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void slot_write(metrics_snap_t *slot, const metrics_snap_t *m)
{
    uint32_t s = atomic_load_explicit(&slot->seq, memory_order_relaxed);
    s += s & 1; /* odd: a predecessor was killed in the middle of a copy */
    atomic_store_explicit(&slot->seq, s + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    memcpy((char *)slot + sizeof slot->seq, (const char *)m + sizeof m->seq, sizeof *m - sizeof m->seq);
    atomic_store_explicit(&slot->seq, s + 2, memory_order_release);
}

static bool slot_read(const metrics_snap_t *slot, metrics_snap_t *out)
{
    for (int tries = 0; tries < 100; tries++) {
        uint32_t s = atomic_load_explicit(&slot->seq, memory_order_acquire);
        if (s & 1) {
            sched_yield();
            continue;
        }
        memcpy((char *)out + sizeof out->seq, (const char *)slot + sizeof slot->seq, sizeof *out - sizeof out->seq);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&slot->seq, memory_order_relaxed) == s) return s != 0;
    }
    return false;
}

struct metrics {
    app_t *app;
    metrics_snap_t *slots; /* [nworkers] in shared memory, or NULL alone */
    metrics_snap_t tmp, total;
    metrics_snap_t *last;  /* [nworkers]: each other worker's last good copy */
    net_timer_t publish;
    http_server_t *own_http; /* --metrics-listen */
    net_listener_t *own_listener;
    rt_buf_t out;
};

/* The machine's totals: this process now, the other workers as of their
 * last copy. Returns the number of workers whose copy is older than 3 s
 * (stuck or restarting); *first names one. */
static int gather(metrics_t *mx, int *first)
{
    app_t *app = mx->app;
    metrics_snap_t *t = &mx->total;
    collect(app, t);
    int stale = 0;
    if (!mx->slots) return 0;
    slot_write(&mx->slots[app->worker], t);
    uint64_t now = rt_now_ms();
    for (int i = 0; i < app->nworkers; i++) {
        if (i == app->worker) continue;
        /* a copy being written (another worker publishing): its last good one */
        if (slot_read(&mx->slots[i], &mx->tmp)) memcpy(&mx->last[i], &mx->tmp, sizeof mx->tmp);
        const metrics_snap_t *w = &mx->last[i];
        if (!w->taken_ms || now - w->taken_ms > 3000)
            if (!stale++) *first = i;
        if (w->taken_ms) sum_into(t, w);
    }
    pid_t master = getppid();
    t->rss += proc_rss(master);
    t->fds += proc_fds(master);
    return stale;
}

static void publish_tick(net_loop_t *loop, net_timer_t *tm)
{
    metrics_t *mx = rt_container_of(tm, metrics_t, publish);
    collect(mx->app, &mx->tmp);
    slot_write(&mx->slots[mx->app->worker], &mx->tmp);
    net_timer_start(loop, tm, 1000);
}

void metrics_publish(app_t *app)
{
    metrics_t *mx = app->metrics;
    if (!mx || !mx->slots) return;
    collect(app, &mx->tmp);
    slot_write(&mx->slots[app->worker], &mx->tmp);
}

/* ---- rendering ---- */
static void head(rt_buf_t *b, const char *name, const char *type, const char *help)
{
    rt_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(rt_buf_t *b, const char *name, const char *type, const char *help, uint64_t v)
{
    head(b, name, type, help);
    rt_buf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

/* A label value: backslash, quote and newline escaped */
static void label_value(rt_buf_t *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"') rt_buf_putc(b, '\\');
        if (*v == '\n') {
            rt_buf_append_cstr(b, "\\n");
            continue;
        }
        rt_buf_putc(b, *v);
    }
}

/* name{label="value"} v; "transport close" -> transport_close */
static void reason_label(rt_buf_t *b, const char *name, const char *label, const char *value, uint64_t v)
{
    rt_buf_printf(b, "%s{%s=\"", name, label);
    for (const char *p = value; *p; p++) rt_buf_putc(b, *p == ' ' ? '_' : *p);
    rt_buf_printf(b, "\"} %llu\n", (unsigned long long)v);
}

static void hist(rt_buf_t *b, const char *name, const char *help, const rt_hist_t *h)
{
    head(b, name, "histogram", help);
    uint64_t cum = 0;
    for (int i = 0; i < RT_HIST_BUCKETS; i++) {
        cum += h->bucket[i];
        rt_buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, rt_hist_bounds_us[i] / 1e6, (unsigned long long)cum);
    }
    rt_buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->count);
    rt_buf_printf(b, "%s_sum %.6f\n%s_count %llu\n", name, h->sum_us / 1e6, name, (unsigned long long)h->count);
}

static void render(const metrics_t *mx, const metrics_snap_t *t, rt_buf_t *b)
{
    const app_t *app = mx->app;
    head(b, "realtimed_build_info", "gauge", "Version and mode of the running server.");
    rt_buf_printf(b, "realtimed_build_info{version=\"%s\",mode=\"%s\"} 1\n", REALTIMED_VERSION,
                  app->cfg.conformance ? "conformance" : app->cfg.auth_mode);
    one(b, "realtimed_workers", "gauge", "Event loops (worker processes) serving the port.", (uint64_t)app->nworkers);
    one(b, "realtimed_ready", "gauge", "1 when /ready answers 200.", t->not_ready[0] ? 0 : 1);

    head(b, "realtimed_connections", "gauge", "Open Engine.IO sessions by transport.");
    uint64_t ws = RT_MIN(t->eio.ws_sessions, t->sessions);
    reason_label(b, "realtimed_connections", "transport", "websocket", ws);
    reason_label(b, "realtimed_connections", "transport", "polling", (t->sessions - ws));
    one(b, "realtimed_connections_unauthenticated", "gauge",
        "Sessions that have not joined a namespace yet (authentication pending).", t->pending);
    head(b, "realtimed_sockets", "gauge",
         "Connected Socket.IO sockets by namespace (one namespace per site in Frappe mode).");
    for (uint32_t i = 0; i < t->nsites; i++) {
        rt_buf_append_cstr(b, "realtimed_sockets{namespace=\"");
        label_value(b, t->sites[i].name);
        rt_buf_printf(b, "\"} %llu\n", (unsigned long long)t->sites[i].sockets);
    }
    if (t->sites_other)
        rt_buf_printf(b, "realtimed_sockets{namespace=\"(other)\"} %llu\n", (unsigned long long)t->sites_other);
    one(b, "realtimed_tcp_connections", "gauge", "Open TCP (or Unix) connections.", t->net.conns);
    one(b, "realtimed_tcp_accepted_total", "counter", "Connections accepted.", t->net.accepted);
    one(b, "realtimed_handed_off_total", "counter", "Connections handed to the worker owning their session.",
        t->net.handed_off);

    head(b, "realtimed_handshakes_total", "counter", "Engine.IO sessions opened, by transport of the handshake.");
    reason_label(b, "realtimed_handshakes_total", "transport", "polling", t->eio.handshakes[0]);
    reason_label(b, "realtimed_handshakes_total", "transport", "websocket", t->eio.handshakes[1]);
    one(b, "realtimed_handshakes_refused_total", "counter", "Handshakes answered 503: max_sessions reached.",
        t->eio.refused_full);
    one(b, "realtimed_upgrades_total", "counter", "Polling sessions upgraded to WebSocket.", t->eio.upgrades);
    head(b, "realtimed_session_closes_total", "counter", "Engine.IO sessions ended, by reason.");
    for (int i = 0; i < EIO_REASONS; i++)
        reason_label(b, "realtimed_session_closes_total", "reason", eio_reasons[i], t->eio.closes[i]);

    one(b, "realtimed_connects_total", "counter", "Sockets admitted to a namespace.", t->sio.connects);
    head(b, "realtimed_connect_errors_total", "counter", "Namespace connections refused (CONNECT_ERROR), by reason.");
    uint64_t other = t->sio.connect_errors - t->sio.invalid_namespace - t->sio.too_many_namespaces;
    for (int i = 0; i < FR_REFUSALS; i++) {
        uint64_t v = t->fr.refused[i] + (i == FR_REFUSED_INVALID_NAMESPACE ? t->sio.invalid_namespace : 0);
        if (t->frappe || i == FR_REFUSED_INVALID_NAMESPACE)
            reason_label(b, "realtimed_connect_errors_total", "reason", frappe_refusal_kinds[i], v);
        other -= RT_MIN(other, t->fr.refused[i]);
    }
    reason_label(b, "realtimed_connect_errors_total", "reason", "too_many_namespaces", t->sio.too_many_namespaces);
    reason_label(b, "realtimed_connect_errors_total", "reason", "other", other);
    head(b, "realtimed_disconnects_total", "counter", "Sockets disconnected, by reason.");
    for (int i = 0; i < SIO_REASONS; i++)
        reason_label(b, "realtimed_disconnects_total", "reason", sio_reasons[i], t->sio.disconnects_by[i]);
    one(b, "realtimed_unauthenticated_evicted_total", "counter",
        "Unauthenticated sessions closed to stay within max_pending.", t->sio.evicted);
    one(b, "realtimed_protocol_errors_total", "counter", "Sessions closed for a malformed Socket.IO packet.",
        t->sio.protocol_errors);

    one(b, "realtimed_events_in_total", "counter", "Events received from clients.", t->sio.events_in);
    one(b, "realtimed_broadcasts_total", "counter", "Messages fanned out to rooms.", t->sio.broadcasts);
    one(b, "realtimed_deliveries_total", "counter", "Messages queued to sockets by broadcasts.", t->sio.deliveries);
    if (t->has_emitter) {
        head(b, "realtimed_emitter_messages_total", "counter",
             "Messages of the socket.io Redis emitter protocol, by what became of them.");
        reason_label(b, "realtimed_emitter_messages_total", "kind", "broadcast", t->em.broadcasts);
        reason_label(b, "realtimed_emitter_messages_total", "kind", "request", t->em.requests);
        reason_label(b, "realtimed_emitter_messages_total", "kind", "invalid", t->em.invalid);
        reason_label(b, "realtimed_emitter_messages_total", "kind", "ignored", t->em.ignored);
    }
    if (t->has_events_hook) {
        head(b, "realtimed_events_webhook_total", "counter",
             "Client events for the events webhook: posted, delivered (2xx), failed, overflow (not sent).");
        reason_label(b, "realtimed_events_webhook_total", "result", "posted", t->evh.posted);
        reason_label(b, "realtimed_events_webhook_total", "result", "delivered", t->evh.delivered);
        reason_label(b, "realtimed_events_webhook_total", "result", "failed", t->evh.failed);
        reason_label(b, "realtimed_events_webhook_total", "result", "overflow", t->evh.overflow);
    }
    if (t->has_recovery) {
        one(b, "realtimed_recovery_kept_total", "counter",
            "Sockets whose transport went, kept recoverable for the recovery window.", t->rec.kept);
        head(b, "realtimed_recovery_total", "counter",
             "CONNECTs asking to recover a session, by result (recovered, or why not).");
        reason_label(b, "realtimed_recovery_total", "result", "recovered", t->rec.recovered);
        for (int i = 0; i < SIO_REC_REASONS; i++)
            reason_label(b, "realtimed_recovery_total", "result", sio_rec_reasons[i], t->rec.refused[i]);
        one(b, "realtimed_recovery_remote_total", "counter",
            "Sessions recovered from another worker or node (through Redis).", t->rec.recovered_remote);
        one(b, "realtimed_recovery_exported_total", "counter",
            "Sessions handed to another worker or node that asked for them.", t->rec.exported);
        one(b, "realtimed_recovery_replayed_total", "counter", "Missed packets replayed to recovered sockets.",
            t->rec.packets_replayed);
        one(b, "realtimed_recovery_evicted_sessions_total", "counter",
            "Kept sessions dropped early to stay within recovery_max_bytes.", t->rec.sessions_evicted);
        one(b, "realtimed_recovery_sessions", "gauge", "Sessions kept recoverable now.", t->rec.sessions);
        one(b, "realtimed_recovery_events", "gauge", "Event packets kept for recovery now.", t->rec.log_entries);
        one(b, "realtimed_recovery_bytes", "gauge", "Memory the kept sessions and events take (recovery_max_bytes).",
            t->rec.log_bytes + t->rec.session_bytes);
    }
    one(b, "realtimed_http_compressed_total", "counter", "Polling responses sent gzip/deflate compressed.",
        t->eio.compressed);
    head(b, "realtimed_http_compressed_bytes_total", "counter", "Bytes of those responses before and after compression.");
    reason_label(b, "realtimed_http_compressed_bytes_total", "stage", "before", t->eio.compressed_in);
    reason_label(b, "realtimed_http_compressed_bytes_total", "stage", "after", t->eio.compressed_out);
    one(b, "realtimed_ws_deflate_connections", "gauge", "WebSocket sessions that negotiated permessage-deflate.",
        t->eio.deflate_sessions);
    one(b, "realtimed_ws_deflated_total", "counter", "WebSocket messages deflated (a broadcast counts once).",
        t->eio.deflated);
    head(b, "realtimed_ws_deflated_bytes_total", "counter", "Bytes of those messages before and after deflate.");
    reason_label(b, "realtimed_ws_deflated_bytes_total", "stage", "before", t->eio.deflated_in);
    reason_label(b, "realtimed_ws_deflated_bytes_total", "stage", "after", t->eio.deflated_out);
    one(b, "realtimed_bytes_received_total", "counter", "Bytes read from clients.", t->net.bytes_in);
    one(b, "realtimed_bytes_sent_total", "counter", "Bytes written to clients.", t->net.bytes_out);
    one(b, "realtimed_slow_consumer_closes_total", "counter",
        "Connections closed for not reading their output (out_soft_limit for 10 s, or out_hard_limit).",
        t->net.slow_closed);
    head(b, "realtimed_dropped_messages_total", "counter", "Messages not delivered, by where they were dropped.");
    reason_label(b, "realtimed_dropped_messages_total", "where", "polling_queue", t->eio.polling_overflow);
    reason_label(b, "realtimed_dropped_messages_total", "where", "redis_publish", t->broker.dropped_publishes);
    reason_label(b, "realtimed_dropped_messages_total", "where", "handler_host", t->handlers.dropped);

    if (t->frappe) {
        head(b, "realtimed_redis_up", "gauge", "Redis links set up (AUTH, SELECT, SUBSCRIBE done).");
        rt_buf_printf(b, "realtimed_redis_up{link=\"subscriber\"} %d\n", t->redis_sub == t->nsnaps);
        rt_buf_printf(b, "realtimed_redis_up{link=\"command\"} %d\n", t->redis_cmd == t->nsnaps);
        one(b, "realtimed_redis_reconnects_total", "counter", "Redis links re-established after a loss.",
            t->broker.reconnects);
        one(b, "realtimed_redis_events_total", "counter", "Messages received on the 'events' channel.", t->fr.events);
        one(b, "realtimed_redis_events_invalid_total", "counter", "Messages on 'events' skipped as malformed.",
            t->fr.events_bad);
        hist(b, "realtimed_event_delivery_seconds",
             "From a Redis event read to the end of the loop turn that wrote its deliveries.", &t->fr.event_latency);
        one(b, "realtimed_secret_read_failures_total", "counter", "Reads of socketio_auth_secret that got no answer.",
            t->fr.secret_failures);
        one(b, "realtimed_auth_requests_total", "counter",
            "Calls to the Frappe web server (get_user_info, has_permission) made.", t->fetch.requests);
        one(b, "realtimed_auth_requests_coalesced_total", "counter",
            "Calls answered by an identical call already in flight.", t->fetch.coalesced);
        one(b, "realtimed_auth_requests_in_flight", "gauge", "Calls to the web server waiting for an answer.",
            t->fetch.in_flight);
        head(b, "realtimed_auth_failures_total", "counter", "Calls to the web server that got no HTTP answer, by kind.");
        for (int i = 0; i < FETCH_FAILS; i++)
            reason_label(b, "realtimed_auth_failures_total", "kind", fetch_failure_kinds[i], t->fetch.failed[i]);
        hist(b, "realtimed_auth_request_duration_seconds", "Duration of calls to the Frappe web server.",
             &t->fetch.latency);
        one(b, "realtimed_permission_checks_total", "counter", "has_permission calls for doc rooms.",
            t->fr.perm_checks);
    }
    if (t->has_cluster) {
        one(b, "realtimed_presence_changes_total", "counter", "Viewer changes sent to Redis.", t->cluster.changes);
        one(b, "realtimed_presence_resyncs_total", "counter", "Full presence re-syncs after Redis came back.",
            t->cluster.resyncs);
        one(b, "realtimed_presence_failures_total", "counter", "Presence scripts Redis did not run.", t->cluster.failed);
    }
    if (t->has_handlers) {
        head(b, "realtimed_handler_host_up", "gauge", "App handler host running and ready, by language.");
        rt_buf_printf(b, "realtimed_handler_host_up{lang=\"js\"} %d\n", t->handlers.up[0]);
        rt_buf_printf(b, "realtimed_handler_host_up{lang=\"py\"} %d\n", t->handlers.up[1]);
        one(b, "realtimed_handler_host_restarts_total", "counter", "Handler host restarts.", t->handlers.restarts);
        head(b, "realtimed_handler_messages_total", "counter", "Messages between realtimed and the handler hosts.");
        reason_label(b, "realtimed_handler_messages_total", "direction", "to_host", t->handlers.to_host);
        reason_label(b, "realtimed_handler_messages_total", "direction", "from_host", t->handlers.from_host);
    }
    one(b, "realtimed_process_resident_memory_bytes", "gauge", "Resident memory of every realtimed process.", t->rss);
    one(b, "realtimed_process_open_fds", "gauge", "Open file descriptors of every realtimed process.", t->fds);
}

/* ---- the endpoints ---- */
static void on_health(http_conn_t *hc, const http_request_t *req, rt_slice_t body, void *ud)
{
    RT_UNUSED(req), RT_UNUSED(body), RT_UNUSED(ud);
    http_conn_no_cors(hc);
    http_respond(hc, 200, "text/plain; charset=utf-8", "ok", 2, "Cache-Control: no-store\r\n");
}

static void on_ready(http_conn_t *hc, const http_request_t *req, rt_slice_t body, void *ud)
{
    metrics_t *mx = ud;
    RT_UNUSED(req), RT_UNUSED(body);
    int first = 0, stale = gather(mx, &first);
    char msg[160];
    if (mx->total.not_ready[0]) snprintf(msg, sizeof msg, "not ready: %s", mx->total.not_ready);
    else if (stale) snprintf(msg, sizeof msg, "not ready: worker %d is not answering", first);
    else snprintf(msg, sizeof msg, "ready");
    bool ok = !mx->total.not_ready[0] && !stale;
    http_conn_no_cors(hc);
    http_respond(hc, ok ? 200 : 503, "text/plain; charset=utf-8", msg, strlen(msg), "Cache-Control: no-store\r\n");
}

static void on_metrics(http_conn_t *hc, const http_request_t *req, rt_slice_t body, void *ud)
{
    metrics_t *mx = ud;
    RT_UNUSED(req), RT_UNUSED(body);
    int first = 0;
    gather(mx, &first);
    mx->out.len = 0;
    render(mx, &mx->total, &mx->out);
    http_conn_no_cors(hc); /* the site names are not for other origins' pages */
    http_respond(hc, 200, "text/plain; version=0.0.4; charset=utf-8", mx->out.data, mx->out.len,
                 "Cache-Control: no-store\r\n");
}

static void routes(metrics_t *mx, http_server_t *http, bool with_metrics)
{
    http_server_route_exact(http, "/health", on_health, mx);
    http_server_route_exact(http, "/ready", on_ready, mx);
    if (with_metrics) http_server_route_exact(http, "/metrics", on_metrics, mx);
}

int metrics_start(app_t *app, char *err, size_t errlen)
{
    metrics_t *mx = rt_calloc(1, sizeof *mx);
    mx->app = app;
    app->metrics = mx;
    const char *ml = app->cfg.metrics_listen;
    bool separate = ml && *ml;
    routes(mx, app->http, !separate);
    if (app->worker >= 0 && app->metrics_slots) {
        mx->slots = app->metrics_slots;
        mx->last = rt_calloc((size_t)app->nworkers, sizeof *mx->last);
        net_timer_init(&mx->publish, publish_tick);
        publish_tick(app->loop, &mx->publish);
    }
    /* --metrics-listen: its own port (one process: the only one, or worker 0) */
    if (separate && app->worker <= 0) {
        http_options_t ho;
        http_options_default(&ho);
        ho.max_body = 0;
        mx->own_http = http_server_new(app->loop, &ho);
        routes(mx, mx->own_http, true);
        char host[256] = "";
        int port;
        if (app_parse_hostport(ml, host, sizeof host, &port) < 0) {
            snprintf(err, errlen, "invalid value for metrics_listen: '%s' (expected [host:]port)", ml);
            return -1;
        }
        mx->own_listener = net_listen_tcp(app->loop, host[0] ? host : NULL, port, http_server_accept, mx->own_http,
                                          err, errlen);
        if (!mx->own_listener) return -1;
        rt_notice("app", "metrics on %s:%d", host[0] ? host : "0.0.0.0", net_listener_port(mx->own_listener));
    }
    return 0;
}

void metrics_stop(app_t *app)
{
    metrics_t *mx = app->metrics;
    if (!mx) return;
    net_timer_stop(&mx->publish);
    if (mx->own_listener) net_listener_close(mx->own_listener);
    mx->own_listener = NULL;
}

void metrics_drain(app_t *app)
{
    metrics_t *mx = app->metrics;
    if (mx && mx->own_http) http_server_drain(mx->own_http);
}

void metrics_free(app_t *app)
{
    metrics_t *mx = app->metrics;
    if (!mx) return;
    metrics_stop(app);
    if (mx->own_http) http_server_free(mx->own_http);
    rt_buf_free(&mx->out);
    free(mx->last);
    free(mx);
    app->metrics = NULL;
}

/* [host:]port, host may be [v6] */
int app_parse_hostport(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon = strrchr(s, ':');
    const char *p = colon ? colon + 1 : s;
    char *end;
    long v = strtol(p, &end, 10);
    if (!*p || *end || v < 0 || v > 65535) return -1;
    *port = (int)v;
    host[0] = 0;
    if (colon) {
        const char *h = s;
        size_t n = (size_t)(colon - s);
        if (n >= 2 && h[0] == '[' && h[n - 1] == ']') h++, n -= 2;
        if (n >= hostlen) return -1;
        memcpy(host, h, n);
        host[n] = 0;
    }
    return 0;
}
