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

    app_t app = {0};
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

    net_options_t no;
    net_options_default(&no);
    no.out_soft_limit = (size_t)app.cfg.out_soft_limit;
    no.out_hard_limit = (size_t)app.cfg.out_hard_limit;
    app.loop = net_loop_new(&no);
    if (!app.loop) {
        fprintf(stderr, "realtimed: cannot create the event loop\n");
        return EX_OSERR;
    }
    http_options_t ho;
    http_options_default(&ho);
    ho.max_body = (size_t)app.cfg.max_payload;
    ho.cors = true; /* Frappe: cors {origin: true, credentials: true} */
    app.http = http_server_new(app.loop, &ho);

    rc = app.cfg.conformance ? conformance_start(&app) : frappe_start(&app);
    if (rc) goto out;

    char err[256];
    if (app.cfg.socketio_uds) app.listener = net_listen_unix(app.loop, app.cfg.socketio_uds, http_server_accept, app.http, err, sizeof err);
    else app.listener = net_listen_tcp(app.loop, app.cfg.listen_host, app.cfg.socketio_port, http_server_accept, app.http, err, sizeof err);
    if (!app.listener) {
        fprintf(stderr, "realtimed: %s\n", err);
        rc = EX_UNAVAILABLE;
        goto out;
    }
    if (app.cfg.socketio_uds) rt_notice("app", "Realtime service listening on: %s", app.cfg.socketio_uds);
    else rt_notice("app", "Realtime service listening on: %d", net_listener_port(app.listener));

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    sig_watch_t sw = {.app = &app};
    sw.io.fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    sw.io.cb = on_signal;
    if (sw.io.fd < 0 || net_io_set(app.loop, &sw.io, NET_READ) < 0) {
        /* Without it SIGTERM could not drain: refuse to run half-deaf. */
        fprintf(stderr, "realtimed: cannot watch signals: %s\n", strerror(errno));
        if (sw.io.fd >= 0) close(sw.io.fd);
        rc = EX_OSERR;
        goto out;
    }

    net_loop_run(app.loop);

    /* Drain: stop accepting, close every session (clients see a close
     * packet / close frame), flush, then free everything. */
    net_listener_close(app.listener);
    app.listener = NULL;
    net_io_set(app.loop, &sw.io, 0);
    close(sw.io.fd);
out:
    if (!app.cfg.conformance) frappe_app_stop(&app);
    sio_server_free(app.sio);
    if (!app.cfg.conformance) frappe_app_release(&app);
    eio_server_free(app.eio_echo);
    /* one more turn so that close frames are written and closed
     * connections are released */
    net_loop_stop(app.loop);
    net_loop_run(app.loop);
    net_loop_close_all(app.loop); /* keep-alive HTTP connections and the like */
    net_listener_close(app.listener);
    http_server_free(app.http);
    net_loop_free(app.loop);
    app_config_free(&app.cfg);
    return rc;
}
