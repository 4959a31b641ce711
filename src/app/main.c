/* realtimed: startup, signals and graceful shutdown. */
#include "app.h"

#include <sysexits.h>
#include <errno.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "app_frappe.h"
#include "frappe/frappe.h"

typedef struct {
    net_io_t io;
    app_t *app;
    int sigints;
} sig_watch_t;

/* ---- SIGHUP ---- */
typedef struct {
    bool talk; /* the process that speaks for the server (alone, or the master) */
    int live, restart;
} reload_t;

static void on_change(const char *key, bool live, void *ud)
{
    reload_t *r = ud;
    if (live) r->live++;
    else r->restart++;
    if (r->talk && !live) rt_warn("app", "SIGHUP: %s changed: it takes effect after a restart", key);
    else if (r->talk) rt_notice("app", "SIGHUP: %s changed: applied", key);
}

void app_reopen_log(app_t *app)
{
    if (!app->cfg.log_file) return;
    char err[512];
    if (rt_log_open_file(app->cfg.log_file, err, sizeof err) < 0) rt_error("app", "%s: logging on where it was", err);
}

/* What the running modules take from the live settings. */
static void apply_live(app_t *app)
{
    const app_config_t *cfg = &app->cfg;
    rt_log_set_level(rt_log_level_from_name(cfg->log_level));
    rt_log_set_json(!strcmp(cfg->log_format, "json"));
    if (app->loop) net_loop_set_limits(app->loop, (size_t)cfg->out_soft_limit, (size_t)cfg->out_hard_limit);
    if (app->sio) {
        eio_options_t eo;
        sio_options_t so;
        app_protocol_options(app, &eo, &so);
        eio_server_set_limits(sio_server_eio(app->sio), eo.max_sessions, eo.max_buffered);
        sio_server_set_limits(app->sio, so.max_pending, so.attachment_timeout);
    }
    if (app->frappe) frappe_app_reconfigure(app);
    if (app->standalone) standalone_reconfigure(app);
}

void app_reload(app_t *app)
{
    app_config_t ncfg;
    bool exit_now, check_only;
    reload_t r = {.talk = app->worker < 0};
    app_config_errors_to_log(r.talk); /* the workers would only repeat them */
    int rc = app_config_load(&ncfg, app->argc, app->argv, &exit_now, &check_only);
    app_config_errors_to_log(false);
    if (rc || exit_now) {
        if (r.talk) rt_error("app", "SIGHUP: the configuration files are invalid (see above): nothing changed");
        app_config_free(&ncfg);
        return;
    }
    app_config_changes(&app->cfg, &ncfg, on_change, &r);
    app_config_take_live(&app->cfg, &ncfg);
    app_config_free(&ncfg);
    apply_live(app);
    if (r.talk)
        rt_notice("app", "SIGHUP: configuration reloaded: %d change%s applied, %d waiting for a restart", r.live,
                  r.live == 1 ? "" : "s", r.restart);
}

static void on_signal(net_loop_t *loop, net_io_t *io, uint32_t events)
{
    sig_watch_t *w = (sig_watch_t *)io;
    RT_UNUSED(events);
    struct signalfd_siginfo si;
    while (read(io->fd, &si, sizeof si) == sizeof si) {
        switch (si.ssi_signo) {
        case SIGHUP:
            app_reload(w->app);
            app_reopen_log(w->app);
            break;
        case SIGUSR1: app_reopen_log(w->app); break;
        case SIGUSR2: rt_notice("app", "SIGUSR2 received: ignored"); break;
        case SIGINT:
            if (++w->sigints > 1) {
                rt_warn("app", "second SIGINT: exiting now");
                _exit(1);
            }
            /* fall through */
        default:
            if (w->app->draining) break;
            rt_notice("app", "%s received: draining (at most %d ms)", si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT",
                      w->app->cfg.drain_timeout);
            w->app->draining = true;
            if (w->app->worker < 0) app_notify("STOPPING=1");
            net_loop_stop(loop);
        }
    }
}

/* The signals a daemon is sent: all through the loop, none fatal. */
void app_signal_mask(sigset_t *mask)
{
    sigemptyset(mask);
    sigaddset(mask, SIGTERM);
    sigaddset(mask, SIGINT);
    sigaddset(mask, SIGHUP);
    sigaddset(mask, SIGUSR1);
    sigaddset(mask, SIGUSR2);
}

/* ---- readiness: listening and subscribed to Redis ---- */
typedef struct {
    net_timer_t check, watchdog;
    app_t *app;
    uint64_t wd_ms;
} ready_watch_t;

/* What /ready waits for too: both Redis links set up. */
static bool subscribed(const app_t *app)
{
    return app->cfg.conformance || !app->frappe || broker_ready(frappe_broker(app->frappe));
}

static void ready_check(net_loop_t *loop, net_timer_t *t)
{
    ready_watch_t *rw = rt_container_of(t, ready_watch_t, check);
    app_t *app = rw->app;
    if (!subscribed(app)) {
        net_timer_start(loop, t, 50);
        return;
    }
    if (app->worker >= 0) {
        metrics_publish(app); /* the others' /ready sees this worker ready now, not in a second */
        unsigned char b = (unsigned char)(0x80 | app->worker);
        if (write(app->ready_fd, &b, 1) != 1) rt_warn("app", "cannot tell the master: %s", strerror(errno));
    } else {
        app_notify("READY=1\nSTATUS=serving");
    }
}

static void watchdog_tick(net_loop_t *loop, net_timer_t *t)
{
    ready_watch_t *rw = rt_container_of(t, ready_watch_t, watchdog);
    app_notify("WATCHDOG=1");
    net_timer_start(loop, t, rw->wd_ms / 2 ? rw->wd_ms / 2 : 1);
}

/* After SIGTERM, with the sessions closed: lets every connection write what
 * it has queued (close frames, close packets) and end. Done when every
 * connection is gone, or when nothing has been left to write for 250 ms
 * (the FINs are out; an idle browser connection may never answer), or at
 * the drain timeout. */
static void drain_connections(app_t *app)
{
    net_loop_shutdown_all(app->loop);
    uint64_t start = rt_now_ms(), deadline = start + (uint64_t)app->cfg.drain_timeout, flushed_at = 0;
    const net_stats_t *st = net_loop_stats(app->loop);
    for (;;) {
        net_loop_run_once(app->loop, 0);
        uint64_t now = rt_now_ms();
        if (!st->conns || now >= deadline) break;
        if (net_loop_output_pending(app->loop)) flushed_at = 0;
        else if (!flushed_at) flushed_at = now;
        else if (now - flushed_at >= 250) break;
        net_loop_run_once(app->loop, (int)RT_MIN(deadline - now, 50));
    }
    if (net_loop_output_pending(app->loop))
        rt_warn("app", "drain timeout: closing connections with output still queued");
    rt_info("app", "drained in %llu ms", (unsigned long long)(rt_now_ms() - start));
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "publish")) return app_publish_main(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "setup-bench")) return app_setup_bench_main(argc - 1, argv + 1);
    /* Blocked from the first instruction: a SIGHUP or SIGTERM that comes
     * while starting waits for the signalfd instead of killing us. */
    sigset_t early;
    app_signal_mask(&early);
    sigprocmask(SIG_BLOCK, &early, NULL);

    app_t app = {.worker = -1, .nworkers = 1, .listen_fd = -1, .ready_fd = -1, .handoff_in = -1};
    bool exit_now, check_only;
    int rc = app_config_load(&app.cfg, argc, argv, &exit_now, &check_only);
    if (rc || exit_now) {
        app_config_free(&app.cfg);
        return rc;
    }
    if (check_only) {
        app_config_print(&app.cfg, stdout);
        rc = app_check_config(&app.cfg);
        app_config_free(&app.cfg);
        return rc;
    }
    app.argc = argc;
    app.argv = argv;
    if (app.cfg.log_file) {
        char err[512];
        if (rt_log_open_file(app.cfg.log_file, err, sizeof err) < 0) {
            fprintf(stderr, "realtimed: %s\n", err);
            app_config_free(&app.cfg);
            return EX_CANTCREAT;
        }
    }
    rt_log_set_level(rt_log_level_from_name(app.cfg.log_level));
    rt_log_set_json(!strcmp(app.cfg.log_format, "json"));
    signal(SIGPIPE, SIG_IGN);
    app.nworkers = app_workers_count(&app.cfg);
    if ((app.listen_fd = app_activated_socket(&app.listen_unix)) != -1) {
        if (app.listen_fd == -2) {
            fprintf(stderr, "realtimed: LISTEN_FDS is set but fd 3 is not a listening stream socket\n");
            app_config_free(&app.cfg);
            return EX_OSERR;
        }
        app.activated = true;
    }
    rc = app.nworkers > 1 ? app_master_main(&app) : app_serve(&app);
    app_config_free(&app.cfg);
    return rc;
}

/* One server: the loop, the application, the listener, until SIGTERM or
 * SIGINT; then the drain. Alone, or as worker app->worker of a master. */
int app_serve(app_t *app)
{
    int rc;
    net_options_t no;
    net_options_default(&no);
    no.out_soft_limit = (size_t)app->cfg.out_soft_limit;
    no.out_hard_limit = (size_t)app->cfg.out_hard_limit;
    /* a whole request must fit while it arrives: max_payload of body (and
     * chunked framing), the head, and slack */
    size_t need = (size_t)app->cfg.max_payload + (256 << 10);
    if (no.max_retained < need) no.max_retained = need;
    app->loop = net_loop_new(&no);
    if (!app->loop) {
        fprintf(stderr, "realtimed: cannot create the event loop\n");
        return EX_OSERR;
    }
    http_options_t ho;
    http_options_default(&ho);
    ho.max_body = (size_t)app->cfg.max_payload;
    ho.cors = true; /* Frappe: cors {origin: true, credentials: true} */
    ho.cors_origins = app->cfg.cors_origin;
    app->http = http_server_new(app->loop, &ho);

    sig_watch_t sw = {.app = app};
    sw.io.fd = -1;
    ready_watch_t rw = {.app = app};
    net_timer_init(&rw.check, ready_check);
    net_timer_init(&rw.watchdog, watchdog_tick);
    rc = app->cfg.conformance ? conformance_start(app) : app_standalone(&app->cfg) ? standalone_start(app) : frappe_start(app);
    if (rc) goto out;

    app->bundle = app_bundle_new(app, app->http, app->cfg.path);
    char err[256];
    if (metrics_start(app, err, sizeof err) < 0) {
        fprintf(stderr, "realtimed: %s\n", err);
        rc = app->metrics && strstr(err, "invalid value") ? EX_CONFIG : EX_UNAVAILABLE;
        goto out;
    }
    if (app->listen_fd >= 0)
        app->listener = net_listen_fd(app->loop, app->listen_fd, app->listen_unix, http_server_accept,
                                      app->http, err, sizeof err);
    else if (app->cfg.socketio_uds)
        app->listener = net_listen_unix(app->loop, app->cfg.socketio_uds, app_uds_mode(&app->cfg),
                                        http_server_accept, app->http, err, sizeof err);
    else
        app->listener = net_listen_tcp(app->loop, app->cfg.listen_host, app->cfg.socketio_port, http_server_accept,
                                       app->http, err, sizeof err);
    if (!app->listener) {
        fprintf(stderr, "realtimed: %s\n", err);
        rc = EX_UNAVAILABLE;
        goto out;
    }
    if (app->worker >= 0 && (rc = app_worker_start(app))) goto out;

    sigset_t mask;
    app_signal_mask(&mask);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    sw.io.fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    sw.io.cb = on_signal;
    if (sw.io.fd < 0 || net_io_set(app->loop, &sw.io, NET_READ) < 0) {
        /* Without it SIGTERM could not drain: refuse to run half-deaf. */
        fprintf(stderr, "realtimed: cannot watch signals: %s\n", strerror(errno));
        rc = EX_OSERR;
        goto out;
    }
    if (app->worker >= 0) {
        unsigned char me = (unsigned char)app->worker; /* the master announces the port */
        if (write(app->ready_fd, &me, 1) != 1) rt_warn("app", "cannot tell the master: %s", strerror(errno));
    } else if (app->activated) {
        rt_notice("app", "Realtime service listening on: the socket systemd passed%s", app->listen_unix ? " (unix)" : "");
    } else if (app->cfg.socketio_uds) {
        rt_notice("app", "Realtime service listening on: %s", app->cfg.socketio_uds);
    } else {
        rt_notice("app", "Realtime service listening on: %d", net_listener_port(app->listener));
    }
    ready_check(app->loop, &rw.check);
    if (app->worker < 0 && (rw.wd_ms = app_watchdog_ms())) watchdog_tick(app->loop, &rw.watchdog);

    net_loop_run(app->loop);
    net_timer_stop(&rw.check);
    net_timer_stop(&rw.watchdog);

    /* Drain: stop accepting, close every session (clients see a close
     * packet / close frame), flush, then free everything. */
    net_listener_close(app->listener);
    app->listener = NULL;
    metrics_stop(app);
out:
    /* From here the handlers are freed while connections drain: a request
     * on a kept-alive connection must not reach one. */
    http_server_drain(app->http);
    metrics_drain(app);
    net_timer_stop(&rw.check);
    net_timer_stop(&rw.watchdog);
    app_worker_stop(app);
    if (sw.io.fd >= 0) {
        net_io_set(app->loop, &sw.io, 0);
        close(sw.io.fd);
    }
    bool frappe_mode = !app->cfg.conformance && !app_standalone(&app->cfg);
    if (frappe_mode) frappe_app_stop(app);
    else if (!app->cfg.conformance) standalone_stop(app);
    sio_server_free(app->sio);
    app->sio = NULL;
    if (frappe_mode) frappe_app_release(app);
    else if (!app->cfg.conformance) standalone_release(app);
    eio_server_free(app->eio_echo);
    drain_connections(app);
    net_loop_close_all(app->loop); /* what did not finish in time */
    net_listener_close(app->listener);
    metrics_free(app);
    app_bundle_free(app->bundle);
    http_server_free(app->http);
    net_loop_free(app->loop);
    return rc;
}
