/* app: configuration assembly, startup, signals and shutdown. The only
 * module that sees every other one. */
#ifndef RT_APP_H
#define RT_APP_H
#include "sio/sio.h"

#include <stdio.h>

/* Effective configuration. Every field is declared once in the options
 * table (config.c), which drives files, environment, flags, --help and
 * --check-config. */
typedef struct {
    /* Frappe bench settings (config.json + sites/common_site_config.json) */
    int socketio_port;
    char *socketio_uds;
    char *redis_queue;
    char *webserver_host;
    int webserver_port;
    char *default_site;
    bool developer_mode;
    /* realtimed settings */
    char *bench;
    char *listen_host;
    char *log_level;
    int ping_interval;
    int ping_timeout;
    int max_payload;
    int connect_timeout;
    int auth_timeout;
    int max_sessions;
    int max_pending;
    int attachment_timeout;
    int out_soft_limit;
    int out_hard_limit;
    char *static_dir;
    char *auth_mode;
    char *app_handlers;
    char *node;
    char *python;
    char *host_dir;
    char *node_id;   /* sid prefix naming this machine, or NULL */
    char *workers;   /* "auto" or 1..APP_MAX_WORKERS; app_workers_count() */
    char *metrics_listen; /* [host:]port of a separate /metrics listener, or NULL */
    char *config;         /* --config FILE */
    char *cors_origin;    /* origins given CORS headers ("*": reflect any) */
    char *path;           /* the Socket.IO path, normalised to /x/ */
    char *serve_client;   /* auto | on | off: the client bundle at <path>socket.io.js */
    char *client_dir;     /* where the bundle's files are, or NULL (found) */
    bool http_compression; /* gzip/deflate polling responses of 1 KB and more */
    bool per_message_deflate; /* WebSocket permessage-deflate */
    bool allow_eio3;      /* Engine.IO v3 clients (socket.io-client 2.x) */
    int recovery_window;  /* ms; 0: no connection state recovery */
    int recovery_max_bytes;
    /* standalone modes (auth_mode jwt) */
    char *namespaces;     /* comma-separated */
    char *jwt_key;        /* key files, newline- or comma-separated */
    int jwt_leeway;
    char *jwt_audience, *jwt_issuer;
    bool jwt_query;
    char *api_key_file;   /* the HTTP API's keys, or NULL (no API) */
    char *api_listen;     /* [host:]port of the API's own listener, or NULL (main listener) */
    char *auth_webhook;   /* auth_mode webhook: the URL */
    char *emitter_key;    /* the Redis emitter protocol's key, "" off */
    char *events_webhook; /* client events are POSTed here, or NULL */
    int webhook_concurrency;
    bool redis_set;       /* redis_queue was given (not the default): the standalone modes use it */
    char *webhook_secret_file;
    char *log_format;     /* text | json */
    char *log_file;       /* NULL: stderr */
    int drain_timeout;    /* ms */
    char *uds_mode;       /* octal, for socketio_uds */
    bool probe;           /* --check-config --probe */
    bool conformance;
} app_config_t;

#define APP_MAX_WORKERS 64

typedef struct {
    app_config_t cfg;
    net_loop_t *loop;
    http_server_t *http;
    net_listener_t *listener;
    eio_server_t *eio_echo; /* conformance mode only */
    sio_server_t *sio;
    void *frappe;           /* frappe module state */
    void *handlers;         /* app-handler hosts, when some app has handlers */
    void *cluster;          /* presence shared through Redis (Frappe mode) */
    void *recovery;         /* connection state recovery across nodes, or NULL */
    void *standalone;       /* the standalone mode's state (standalone.c) */
    void *emitter;          /* the socket.io Redis emitter protocol, or NULL */
    void *events_hook;      /* the standalone modes' events webhook, or NULL */
    http_static_t *statics; /* static_dir, when set */
    /* --workers: this process's place (workers.c); worker < 0 alone */
    int worker, nworkers;
    int listen_fd;          /* the listening socket the master bound (or systemd passed), or -1 */
    bool listen_unix;       /* listen_fd is a Unix socket */
    bool activated;         /* listen_fd came from systemd (socket activation) */
    int ready_fd;           /* tells the master this worker serves, or -1 */
    int handoff_in;         /* connections other workers hand to this one */
    const int *handoff_out; /* [nworkers]: where to hand a connection to worker i */
    void *workers;          /* the handoff receiver */
    const char *share_dir;  /* private folder of the machine's handler hosts' sockets */
    void *metrics;          /* /metrics, /health, /ready (metrics.c) */
    void *metrics_slots;    /* --workers: every worker's counters, shared (metrics.c) */
    bool draining;          /* SIGTERM received: /ready says so */
    struct bundle *bundle;  /* the client bundle (bundle.c), or NULL */
    int argc;               /* the command line, read again by SIGHUP */
    char **argv;
} app_t;

/* ---- the socket.io-client bundle (bundle.c) ---- */
typedef struct bundle bundle_t;
/* Routes <path>socket.io.js & co. when serve_client says so and the files exist; else NULL. */
bundle_t *app_bundle_new(app_t *app, http_server_t *http, const char *path);
void app_bundle_free(bundle_t *b);

/* ---- the service manager (notify.c): sd_notify's protocol ---- */
void app_notify(const char *msg);  /* "READY=1", "STOPPING=1", ... (no-op without NOTIFY_SOCKET) */
uint64_t app_watchdog_ms(void);    /* WATCHDOG_USEC for this process, in ms, or 0 */
/* The listening socket systemd passed (fd 3), or -1 (none), -2 (not a listening stream socket). */
int app_activated_socket(bool *is_unix);

/* ---- /metrics, /health, /ready (metrics.c) ---- */
typedef struct metrics_snap metrics_snap_t;
typedef struct metrics metrics_t;
/* The master's shared mapping of nworkers slots (before forking), or NULL. */
void *metrics_slots_new(int nworkers);
int metrics_start(app_t *app, char *err, size_t errlen);
void metrics_stop(app_t *app); /* closes the separate listener */
void metrics_free(app_t *app);
void metrics_drain(app_t *app); /* shutdown: its own listener's requests get 503 too */
void metrics_publish(app_t *app); /* --workers: copy this worker's counters for the others now */
/* "[host:]port" (host may be "[v6]"); -1 if malformed. */
int app_parse_hostport(const char *s, char *host, size_t hostlen, int *port);

/* Fills cfg from defaults, bench files, environment and argv (in that
 * order). Returns 0, or an exit code (0 printed --help/--version: *exit_now
 * set). Errors name the offending key on stderr. */
int app_config_load(app_config_t *cfg, int argc, char **argv, bool *exit_now, bool *check_only);
void app_config_print(const app_config_t *cfg, FILE *out);
void app_config_free(app_config_t *cfg);
/* SIGHUP: fn for each setting whose value differs between a and b (live:
 * applied without a restart); then the live ones are copied into dst. */
void app_config_changes(const app_config_t *a, const app_config_t *b,
                        void (*fn)(const char *key, bool live, void *ud), void *ud);
void app_config_take_live(app_config_t *dst, const app_config_t *src);
/* Configuration errors through the log (SIGHUP) instead of plain stderr lines. */
void app_config_errors_to_log(bool on);
/* The Engine.IO and Socket.IO options of every application, from the
 * configuration and the worker's place (sid ownership, shares of limits). */
void app_protocol_options(app_t *app, eio_options_t *eo, sio_options_t *so);
void app_usage(FILE *out);
void app_man(FILE *out); /* roff, from the same table (docs/realtimed.8) */

int conformance_start(app_t *app);
/* ---- the HTTP API of the standalone mode (api.c) ---- */
typedef struct app_api app_api_t;
/* the user a socket is (or NULL), and its info (raw JSON, or NULL) */
typedef const char *(*api_user_fn)(sio_socket_t *s, const char **info, void *ud);
struct broker;
/* http NULL: not routed yet (app_api_route); broker: calls act on every node through Redis */
app_api_t *app_api_new(app_t *app, http_server_t *http, const char *key_file, api_user_fn user_of, void *ud,
                       struct broker *broker, char *err, size_t errlen);
void app_api_route(app_api_t *api, http_server_t *http);
int app_api_reload(app_api_t *api, const char *key_file, char *err, size_t errlen); /* SIGHUP */
void app_api_free(app_api_t *api);
int app_api_load_keys(const char *path, uint8_t (**out)[32], size_t *n, char *err, size_t errlen);
/* ---- the events webhook of the standalone modes (events_hook.c) ---- */
typedef struct events_hook events_hook_t;
typedef struct ev_socket ev_socket_t;
events_hook_t *events_hook_new(net_loop_t *loop, const char *url, const char *secret_header, unsigned timeout_ms,
                               unsigned concurrency);
void events_hook_free(events_hook_t *h);
/* A client event of s (its state in *slot, created on first use). */
void events_hook_event(events_hook_t *h, ev_socket_t **slot, sio_socket_t *s, const char *user, const sio_event_t *ev);
void events_hook_socket_gone(events_hook_t *h, ev_socket_t **slot);
typedef struct {
    uint64_t posted, delivered, failed, overflow;
} events_hook_stats_t;
const events_hook_stats_t *events_hook_stats(const events_hook_t *h);
/* ---- the standalone mode (standalone.c): auth_mode jwt, no bench ---- */
bool app_standalone(const app_config_t *cfg);
int app_standalone_check(const app_config_t *cfg, char *err, size_t errlen); /* keys and namespaces */
int standalone_start(app_t *app);
void standalone_stop(app_t *app);    /* before the sio server is freed */
void standalone_release(app_t *app); /* after */
void standalone_reconfigure(app_t *app); /* SIGHUP: the key files again, the JWT options */
struct broker *standalone_broker(const app_t *app); /* its Redis (--redis-queue), or NULL */

/* ---- signals (main.c) ---- */
#include <signal.h>
void app_signal_mask(sigset_t *mask); /* TERM, INT, HUP, USR1, USR2: handled, never fatal */
/* SIGHUP: reads the files again, applies the live settings, names the others. */
void app_reload(app_t *app);
void app_reopen_log(app_t *app); /* --log-file after a rotation */

/* ---- --workers (workers.c) ----
 * With more than one worker the first process is a master: it binds the
 * listening socket, forks the workers, restarts one that dies and forwards
 * SIGTERM/SIGINT. Each worker is a complete server (own loop, sessions,
 * rooms, Redis links, backchannel) watching the shared socket. A polling
 * request or upgrade for a session another worker owns (the sid's first
 * character names the worker) is handed to it with the bytes already read. */
int app_workers_count(const app_config_t *cfg); /* -1 if the value is invalid */
int app_uds_mode(const app_config_t *cfg);       /* uds_mode as a number (validated) */
int app_master_main(app_t *app);  /* returns the exit code */
int app_serve(app_t *app);        /* main.c: one server, alone or as a worker */
/* In a worker: starts receiving handed-off connections / stops. */
int app_worker_start(app_t *app);
void app_worker_stop(app_t *app);
/* eio's foreign_sid hook (ud = app) */
bool app_worker_foreign_sid(http_conn_t *hc, rt_slice_t sid, void *ud);
/* The sid tag of worker i. */
char app_worker_tag(int i);

#endif
