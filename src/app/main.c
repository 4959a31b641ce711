/* realtimed: startup, signals and graceful shutdown. */
#include "app.h"

#include <sysexits.h>
#include <errno.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "app_frappe.h"

typedef struct {
    net_io_t io;
    app_t *app;
    int sigints;
} sig_watch_t;

static void on_signal(net_loop_t *loop, net_io_t *io, uint32_t events)
{
    sig_watch_t *w = (sig_watch_t *)io;
    RT_UNUSED(events);
    struct signalfd_siginfo si;
    while (read(io->fd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGINT && ++w->sigints > 1) {
            rt_warn("app", "second SIGINT: exiting now");
            _exit(1);
        }
        rt_notice("app", "%s received: shutting down", si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
        net_loop_stop(loop);
    }
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "publish")) return app_publish_main(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "setup-bench")) return app_setup_bench_main(argc - 1, argv + 1);

    app_t app = {.worker = -1, .nworkers = 1, .listen_fd = -1, .ready_fd = -1, .handoff_in = -1};
    bool exit_now, check_only;
    int rc = app_config_load(&app.cfg, argc, argv, &exit_now, &check_only);
    if (rc || exit_now) {
        app_config_free(&app.cfg);
        return rc;
    }
    if (check_only) {
        app_config_print(&app.cfg, stdout);
        rc = app.cfg.conformance ? 0 : frappe_check_config(&app.cfg);
        app_config_free(&app.cfg);
        return rc;
    }
    rt_log_set_level(rt_log_level_from_name(app.cfg.log_level));
    signal(SIGPIPE, SIG_IGN);
    app.nworkers = app_workers_count(&app.cfg);
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
    app->loop = net_loop_new(&no);
    if (!app->loop) {
        fprintf(stderr, "realtimed: cannot create the event loop\n");
        return EX_OSERR;
    }
    http_options_t ho;
    http_options_default(&ho);
    ho.max_body = (size_t)app->cfg.max_payload;
    ho.cors = true; /* Frappe: cors {origin: true, credentials: true} */
    app->http = http_server_new(app->loop, &ho);

    sig_watch_t sw = {.app = app};
    sw.io.fd = -1;
    rc = app->cfg.conformance ? conformance_start(app) : frappe_start(app);
    if (rc) goto out;

    char err[256];
    if (app->listen_fd >= 0)
        app->listener = net_listen_fd(app->loop, app->listen_fd, app->cfg.socketio_uds != NULL, http_server_accept,
                                      app->http, err, sizeof err);
    else if (app->cfg.socketio_uds)
        app->listener = net_listen_unix(app->loop, app->cfg.socketio_uds, http_server_accept, app->http, err, sizeof err);
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
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
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
    } else if (app->cfg.socketio_uds) {
        rt_notice("app", "Realtime service listening on: %s", app->cfg.socketio_uds);
    } else {
        rt_notice("app", "Realtime service listening on: %d", net_listener_port(app->listener));
    }

    net_loop_run(app->loop);

    /* Drain: stop accepting, close every session (clients see a close
     * packet / close frame), flush, then free everything. */
    net_listener_close(app->listener);
    app->listener = NULL;
out:
    app_worker_stop(app);
    if (sw.io.fd >= 0) {
        net_io_set(app->loop, &sw.io, 0);
        close(sw.io.fd);
    }
    if (!app->cfg.conformance) frappe_app_stop(app);
    sio_server_free(app->sio);
    if (!app->cfg.conformance) frappe_app_release(app);
    eio_server_free(app->eio_echo);
    /* one more turn so that close frames are written and closed
     * connections are released */
    net_loop_stop(app->loop);
    net_loop_run(app->loop);
    net_loop_close_all(app->loop); /* keep-alive HTTP connections and the like */
    net_listener_close(app->listener);
    http_server_free(app->http);
    net_loop_free(app->loop);
    return rc;
}
