/* Frappe mode: the sio server on /socket.io/, the frappe module
 * and `realtimed publish`. */
#include "app_frappe.h"
#include "emitter/emitter.h"

#include <sysexits.h>
#include <hiredis/hiredis.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "cluster/cluster.h"
#include "frappe/frappe.h"
#include "handlers/handlers.h"

static void frappe_options(const app_config_t *cfg, frappe_options_t *fo)
{
    memset(fo, 0, sizeof *fo);
    fo->bench = cfg->bench;
    fo->redis_url = cfg->redis_queue;
    fo->webserver_host = cfg->webserver_host;
    fo->webserver_port = cfg->webserver_port;
    fo->default_site = cfg->default_site;
    fo->developer_mode = cfg->developer_mode;
    fo->auth_timeout_ms = (unsigned)cfg->auth_timeout;
    fo->guest_mode = !strcmp(cfg->auth_mode, "guest");
}

/* ---- apps' realtime handlers (handlers/) plugged into frappe ---- */
static void ext_permission(sio_socket_t *s, rt_slice_t dt, rt_slice_t dn, void (*cb)(bool, void *), void *cbud,
                           void *ud)
{
    frappe_has_permission(((app_t *)ud)->frappe, s, dt, dn, cb, cbud);
}

static void ext_secret(void (*cb)(bool, rt_slice_t, void *), void *cbud, void *ud)
{
    frappe_read_secret(((app_t *)ud)->frappe, cb, cbud);
}

static void handlers_options(const app_config_t *cfg, handlers_options_t *ho)
{
    handlers_options_default(ho);
    ho->bench = cfg->bench;
    ho->node = cfg->node;
    ho->python = cfg->python;
    ho->mode = cfg->app_handlers;
    ho->host_dir = cfg->host_dir;
    ho->max_frame = 4 * (size_t)cfg->max_payload + 65536;
}

/* ---- presence across processes and machines (cluster/) ---- */
static bool presence_viewer(sio_socket_t *s, rt_slice_t dt, rt_slice_t dn, rt_slice_t user, uint64_t connected_ns,
                            bool open, bool last, void *ud)
{
    app_t *app = ud;
    return cluster_viewer(app->cluster, sio_nsp_name(sio_socket_nsp(s)), dt, dn, rt_slice_cstr(sio_socket_id(s)), user,
                          connected_ns, open, last);
}

static void cluster_viewers(rt_slice_t nsp, rt_slice_t dt, rt_slice_t dn, rt_slice_t self_user, const rt_slice_t *users,
                            size_t n, void *ud)
{
    app_t *app = ud;
    frappe_viewers(app->frappe, nsp, dt, dn, self_user, users, n);
}

static void resync_one(sio_socket_t *s, rt_slice_t dt, rt_slice_t dn, rt_slice_t user, uint64_t connected_ns, void *arg)
{
    app_t *app = arg;
    cluster_viewer(app->cluster, sio_nsp_name(sio_socket_nsp(s)), dt, dn, rt_slice_cstr(sio_socket_id(s)), user,
                   connected_ns, true, false);
}

static void cluster_resync(void *ud)
{
    app_t *app = ud;
    frappe_each_viewer(app->frappe, resync_one, app);
}

/* app handlers' broadcasts reach the members on every node */
static void cluster_message(rt_slice_t msg, void *ud)
{
    app_t *app = ud;
    handlers_broadcast_in(app->handlers, msg);
}

static void handlers_bcast_out(rt_slice_t msg, void *ud)
{
    app_t *app = ud;
    if (app->cluster && !cluster_send(app->cluster, msg))
        rt_warn_rl("handlers", "Redis unavailable: a handler's broadcast reached this node's members only");
}

static void start_cluster(app_t *app)
{
    static const cluster_handler_t ch = {cluster_viewers, cluster_resync, cluster_message};
    app->cluster = cluster_new(app->loop, frappe_broker(app->frappe), &ch, app);
    app->recovery = cluster_recovery_new(app->cluster, app->sio);
    static const frappe_presence_t fp = {presence_viewer};
    frappe_set_presence(app->frappe, &fp, app);
}

static int start_handlers(app_t *app)
{
    const app_config_t *cfg = &app->cfg;
    if (!strcmp(cfg->app_handlers, "off")) return 0;
    handlers_options_t ho;
    handlers_options(cfg, &ho);
    if (app->worker >= 0 && app->share_dir) { /* one host per machine: worker 0 runs it */
        ho.share_dir = app->share_dir;
        ho.share_owner = app->worker == 0;
    }
    static const handlers_app_t ha = {ext_permission, ext_secret, handlers_bcast_out};
    char err[512];
    handlers_t *h = NULL;
    if (handlers_new(app->loop, app->sio, &ho, &ha, app, &h, err, sizeof err) < 0) {
        fprintf(stderr, "realtimed: %s\n", err);
        return EX_CONFIG;
    }
    if (!h) return 0; /* no app has handlers */
    app->handlers = h;
    static const frappe_ext_t ext = {handlers_socket_ready, handlers_socket_event, handlers_socket_room,
                                     handlers_socket_gone};
    frappe_set_ext(app->frappe, &ext, h);
    return 0;
}

int frappe_start(app_t *app)
{
    const app_config_t *cfg = &app->cfg;
    int rc;
    if (!strcmp(cfg->auth_mode, "frappe") && (rc = app_bench_check(cfg))) return rc;
    eio_options_t eo;
    sio_options_t so;
    app_protocol_options(app, &eo, &so);
    app->sio = sio_server_new(app->http, cfg->path, &eo, &so);
    if (cfg->static_dir) {
        char err[256];
        app->statics = http_static_new(cfg->static_dir, err, sizeof err);
        if (!app->statics) {
            fprintf(stderr, "realtimed: %s\n", err);
            return EX_CONFIG;
        }
        http_server_route(app->http, "/", http_static_handler, app->statics);
    }
    frappe_options_t fo;
    frappe_options(cfg, &fo);
    char err[256];
    app->frappe = frappe_new(app->loop, app->sio, &fo, err, sizeof err);
    if (!app->frappe) {
        fprintf(stderr, "realtimed: invalid value for redis_queue: %s\n", err);
        return EX_CONFIG;
    }
    start_cluster(app);
    if (cfg->emitter_key && *cfg->emitter_key)
        app->emitter = emitter_new(frappe_broker(app->frappe), app->sio, cfg->emitter_key, (size_t)cfg->max_payload);
    return start_handlers(app);
}

void frappe_app_reconfigure(app_t *app)
{
    frappe_options_t fo;
    frappe_options(&app->cfg, &fo);
    frappe_reconfigure(app->frappe, &fo);
}

void frappe_app_stop(app_t *app)
{
    /* Leave the cluster first (our viewers go from Redis at once); the
     * disconnects that follow are nobody else's business. */
    if (app->frappe) frappe_set_presence(app->frappe, NULL, NULL);
    emitter_free(app->emitter);
    app->emitter = NULL;
    cluster_recovery_free(app->recovery);
    app->recovery = NULL;
    cluster_free(app->cluster);
    app->cluster = NULL;
    frappe_stop(app->frappe);
}

void frappe_app_release(app_t *app)
{
    handlers_free(app->handlers); /* after the sio server: it saw every socket go */
    app->handlers = NULL;
    frappe_free(app->frappe);
    app->frappe = NULL;
    http_static_free(app->statics);
    app->statics = NULL;
}

int frappe_check_config(const app_config_t *cfg)
{
    broker_url_t u;
    char err[256];
    if (broker_url_parse(cfg->redis_queue, &u, err, sizeof err) < 0) {
        fprintf(stderr, "realtimed: invalid value for redis_queue: %s\n", err);
        return EX_CONFIG;
    }
    broker_url_free(&u);
    if (strcmp(cfg->app_handlers, "off") != 0) {
        /* a deploy catches an app whose handlers do not load before clients do */
        handlers_options_t ho;
        handlers_options(cfg, &ho);
        if (handlers_check(&ho) < 0) return EX_CONFIG;
    }
    return 0;
}

/* ---- realtimed publish ---- */
static int publish_usage(void)
{
    fprintf(stderr, "usage: realtimed publish [--bench DIR] [--redis URL] [--site S] "
                    "[--room R | --user U | --doctype D [--docname N] | --task T] EVENT [JSON]\n");
    return EX_USAGE;
}

int app_publish_main(int argc, char **argv)
{
    const char *bench = NULL, *redis = NULL, *site = NULL, *room = NULL, *user = NULL, *doctype = NULL,
               *docname = NULL, *task = NULL, *event = NULL, *json = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = !strcmp(a, "--bench") ? &bench : !strcmp(a, "--redis") ? &redis
                         : !strcmp(a, "--site") ? &site : !strcmp(a, "--room") ? &room
                         : !strcmp(a, "--user") ? &user : !strcmp(a, "--doctype") ? &doctype
                         : !strcmp(a, "--docname") ? &docname : !strcmp(a, "--task") ? &task : NULL;
        if (dst) {
            if (++i >= argc) return publish_usage();
            *dst = argv[i];
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            publish_usage();
            return 0;
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "realtimed publish: unknown option %s\n", a);
            return publish_usage();
        } else if (!event) event = a;
        else if (!json) json = a;
        else return publish_usage();
    }
    if (!event) return publish_usage();
    if ((room != NULL) + (user != NULL) + (doctype != NULL) + (task != NULL) > 1 || (docname && !doctype)) {
        fprintf(stderr, "realtimed publish: choose one of --room, --user, --doctype [--docname], --task\n");
        return EX_USAGE;
    }
    rt_slice_t msg = rt_slice_cstr(json ? json : "{}");
    if (!rt_json_valid(msg, NULL)) {
        fprintf(stderr, "realtimed publish: the message is not valid JSON: %s\n", json);
        return EX_DATAERR;
    }
    /* The bench's redis_queue and default_site, like the server. */
    app_config_t cfg;
    bool exit_now, check_only;
    char *cargv[3] = {"realtimed", NULL, NULL};
    int cargc = 1;
    char benchflag[4096];
    if (bench) {
        snprintf(benchflag, sizeof benchflag, "--bench=%s", bench);
        cargv[cargc++] = benchflag;
    }
    int rc = app_config_load(&cfg, cargc, cargv, &exit_now, &check_only);
    if (rc) return rc;
    if (!site) site = cfg.default_site;
    if (!site) {
        fprintf(stderr, "realtimed publish: no site: pass --site (or set default_site / FRAPPE_SITE)\n");
        app_config_free(&cfg);
        return EX_USAGE;
    }
    rt_buf_t r = {0};
    if (room) rt_buf_append_cstr(&r, room);
    else if (user) rt_buf_printf(&r, "user:%s", user);
    else if (task) rt_buf_printf(&r, "task_progress:%s", task);
    else if (doctype && docname) rt_buf_printf(&r, "doc:%s/%s", doctype, docname);
    else if (doctype) rt_buf_printf(&r, "doctype:%s", doctype);
    else rt_buf_append_cstr(&r, "all");
    rt_buf_t env = {0};
    rt_buf_append_cstr(&env, "{\"event\":");
    rt_buf_append_json_string(&env, rt_slice_cstr(event));
    rt_buf_append_cstr(&env, ",\"message\":");
    rt_buf_append_slice(&env, rt_json_trim(msg));
    rt_buf_append_cstr(&env, ",\"room\":");
    rt_buf_append_json_string(&env, rt_slice(r.data, r.len));
    rt_buf_append_cstr(&env, ",\"namespace\":");
    rt_buf_append_json_string(&env, rt_slice_cstr(site));
    rt_buf_putc(&env, '}');

    broker_url_t u;
    char err[256];
    const char *url = redis ? redis : cfg.redis_queue;
    rc = 0;
    if (broker_url_parse(url, &u, err, sizeof err) < 0) {
        fprintf(stderr, "realtimed publish: invalid Redis URL: %s\n", err);
        rc = EX_CONFIG;
        goto out;
    }
    redisContext *c = app_redis_open(&u, false, err, sizeof err);
    if (!c) {
        fprintf(stderr, "realtimed publish: %s\n", err);
        rc = EX_UNAVAILABLE;
    } else {
        redisReply *rep = NULL;
        if (!rc) {
            rep = redisCommand(c, "PUBLISH events %b", env.data, env.len);
            if (!rep || rep->type == REDIS_REPLY_ERROR) {
                fprintf(stderr, "realtimed publish: PUBLISH failed: %s\n", rep ? rep->str : c->errstr);
                rc = EX_UNAVAILABLE;
            } else {
                printf("published %s to %.*s on site %s (%lld subscriber%s)\n", event, (int)r.len, r.data, site,
                       rep->integer, rep->integer == 1 ? "" : "s");
            }
            if (rep) freeReplyObject(rep);
        }
    }
    if (c) redisFree(c);
    broker_url_free(&u);
out:
    rt_buf_free(&r);
    rt_buf_free(&env);
    app_config_free(&cfg);
    return rc;
}
