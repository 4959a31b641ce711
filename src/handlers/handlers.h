/* handlers: the bridge to the app-handler hosts. Frappe apps add events in
 * apps/<app>/realtime/handlers.js (Node) or <app>/realtime/handlers.py
 * (Python); realtimed runs them, unchanged, in a host process per language
 * that it starts, supervises and talks to over a socket pair with the
 * framed protocol of docs/handlers.md. The hot path never goes there: only
 * sockets of sites where such an app is installed are mirrored, only the
 * events their handlers listen to are forwarded, and what a host sends back
 * (emit, broadcast, join, leave, ack, disconnect) is executed here with the
 * same encode-once broadcast as Redis events.
 *
 * The module knows Socket.IO (sio/) but not Frappe: the application gives
 * it each socket's description (a JSON object) and answers permission and
 * secret requests through handlers_app_t. */
#ifndef RT_HANDLERS_H
#define RT_HANDLERS_H
#include "sio/sio.h"

typedef struct handlers handlers_t;

typedef struct {
    const char *bench;     /* bench root: apps/ is scanned */
    const char *node;      /* Node.js binary (NULL: "node" on PATH) */
    const char *python;    /* Python binary (NULL: <bench>/env/bin/python, else python3 on PATH) */
    const char *mode;      /* an app with both files: "auto" (handlers.py when the bench's
                              Frappe has apps/frappe/frappe/realtime/registry.py), "js", "py" */
    const char *host_dir;  /* where handlers-host.js / handlers_host.py are (NULL: found) */
    size_t max_queue;      /* bytes queued to a host beyond which messages are dropped (16 MiB) */
    size_t max_frame;      /* largest message accepted from a host (4 MiB) */
    unsigned ping_ms;      /* liveness check (5000); no answer for 3 periods restarts the host */
    /* One host per machine for --workers: the owner (worker 0) starts the
     * hosts and has them listen on <share_dir>/<lang>.sock as well; the
     * other workers connect there (and again, replaying their sockets,
     * whenever that connection ends). NULL: this process has its own. */
    const char *share_dir;
    bool share_owner;
} handlers_options_t;
void handlers_options_default(handlers_options_t *o);

/* What the application answers for hosts. Both callbacks call cb exactly
 * once, now or later. */
typedef struct {
    void (*permission)(sio_socket_t *s, rt_slice_t doctype, rt_slice_t docname,
                       void (*cb)(bool allowed, void *cbud), void *cbud, void *ud);
    void (*secret)(void (*cb)(bool ok, rt_slice_t value, void *cbud), void *cbud, void *ud);
    /* A host's broadcast (a "bcast" message, valid JSON) for the other
     * nodes' members, after it was delivered here (optional). */
    void (*bcast_out)(rt_slice_t msg, void *ud);
} handlers_app_t;

/* Scans the bench's apps and starts a host for each language some app
 * needs (logging which file each app uses). *out is NULL when no app has
 * handlers: nothing runs, nothing is spent. Returns 0, or -1 with a message
 * in err (a host is needed but cannot be found). */
int handlers_new(net_loop_t *loop, sio_server_t *srv, const handlers_options_t *opt, const handlers_app_t *app,
                 void *app_ud, handlers_t **out, char *err, size_t errlen);
/* --check-config: each host imports every app's handlers file it would run
 * (their errors go to stderr); 0 if all load, -1 otherwise. */
int handlers_check(const handlers_options_t *opt);
/* Stops the hosts (they see EOF and exit; killed after 1 s) and frees. */
void handlers_free(handlers_t *h);
/* A broadcast another node's host made (bcast_out there): to this node's
 * members of its rooms. */
void handlers_broadcast_in(handlers_t *h, rt_slice_t msg);

/* The application's socket events (frappe's extension callbacks; ud is the
 * handlers_t). info: {"id","nsp","installed_apps",...}, see frappe.h. */
void handlers_socket_ready(sio_socket_t *s, rt_slice_t info, void *ud);
void handlers_socket_event(sio_socket_t *s, const sio_event_t *ev, void *ud);
void handlers_socket_room(sio_socket_t *s, rt_slice_t room, bool joined, void *ud);
void handlers_socket_gone(sio_socket_t *s, const char *reason, void *ud);

typedef struct {
    uint64_t to_host, from_host, dropped, restarts, sockets;
    bool up[2]; /* node, python host running and ready */
} handlers_stats_t;
void handlers_stats(const handlers_t *h, handlers_stats_t *out);

#endif
