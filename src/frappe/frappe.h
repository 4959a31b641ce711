/* frappe: Frappe's realtime application on top of sio/ — site namespaces,
 * the authentication middleware and its web-server backchannel, rooms and
 * client events, doc presence, and the Redis `events` bridge. The contract
 * is Frappe's Node server (shared/reference/frappe-realtime.md); deliberate
 * differences are listed in docs/frappe.md. */
#ifndef RT_FRAPPE_H
#define RT_FRAPPE_H
#include "broker/broker.h"
#include "frappe/fetch.h"
#include "sio/sio.h"

typedef struct frappe frappe_t;

typedef struct {
    const char *bench;          /* bench root (its sites/ names the sites) */
    const char *redis_url;      /* redis_queue */
    /* Where get_user_info and has_permission go: webserver_host:port when
     * set; else the client's Origin when it names a site of the bench by its
     * own name (scheme://site[:port], nothing more); else
     * 127.0.0.1:webserver_port, with X-Frappe-Site-Name as always. */
    const char *webserver_host;
    int webserver_port;
    const char *default_site;
    bool developer_mode;
    unsigned auth_timeout_ms;
    bool guest_mode;            /* demo: no web server, everyone is Guest */
    bool keep_handshake;        /* keep each client's handshake (headers, query) for an extension */
} frappe_options_t;

/* An extension sees every authenticated socket of the site namespaces:
 * the app-handler bridge (handlers/) is one. Frappe's own handling always
 * runs first. Callbacks get the extension's ud. */
typedef struct {
    /* Accepted, in its default rooms. info is a JSON object, valid during
     * the call: {"id","nsp","site","user","user_type","installed_apps",
     * "sid","authorization_header","url","handshake"} (url: where this
     * socket's callbacks go; handshake: {"headers","query","url","address",
     * "time","issued","secure","xdomain"} when keep_handshake, else null). */
    void (*socket_ready)(sio_socket_t *s, rt_slice_t info, void *ud);
    void (*socket_event)(sio_socket_t *s, const sio_event_t *ev, void *ud);
    void (*socket_room)(sio_socket_t *s, rt_slice_t room, bool joined, void *ud);
    /* After it left its rooms (any way a socket can go). */
    void (*socket_gone)(sio_socket_t *s, const char *reason, void *ud);
} frappe_ext_t;
void frappe_set_ext(frappe_t *f, const frappe_ext_t *ext, void *ud);

/* Presence shared with other processes (cluster/). viewer() is told of every
 * change of a local socket (open: doc_open; else doc_close or disconnect,
 * with last = no other local socket views it); it returns true if the list
 * will come back through frappe_viewers(), false to have it computed from
 * this process's sockets (no cluster, Redis away). */
typedef struct {
    bool (*viewer)(sio_socket_t *s, rt_slice_t dt, rt_slice_t dn, rt_slice_t user, uint64_t connected_ns, bool open,
                   bool last, void *ud);
} frappe_presence_t;
void frappe_set_presence(frappe_t *f, const frappe_presence_t *p, void *ud);
/* A document's viewers across the cluster (users one per socket, in order):
 * doc_viewers to this process's viewers, unless the only one is self_user. */
void frappe_viewers(frappe_t *f, rt_slice_t nsp, rt_slice_t dt, rt_slice_t dn, rt_slice_t self_user,
                    const rt_slice_t *users, size_t n);
/* Every (socket, open document) of this process. */
void frappe_each_viewer(frappe_t *f,
                        void (*fn)(sio_socket_t *s, rt_slice_t dt, rt_slice_t dn, rt_slice_t user,
                                   uint64_t connected_ns, void *arg),
                        void *arg);
/* The Redis links (events, the secret), for modules that share them. */
broker_t *frappe_broker(const frappe_t *f);

/* For extensions: Frappe's has_permission(doctype, name) for a socket of
 * the site namespaces through the backchannel (the socket's credentials,
 * the secret, coalescing). cb gets the answer once: allowed, or not (403,
 * errors, shutdown). */
typedef void (*frappe_perm_cb)(bool allowed, void *ud);
void frappe_has_permission(frappe_t *f, sio_socket_t *s, rt_slice_t doctype, rt_slice_t docname, frappe_perm_cb cb,
                           void *ud);
/* The socket secret, read fresh from Redis (waits for it at most the auth
 * timeout); cb once. */
void frappe_read_secret(frappe_t *f, void (*cb)(bool ok, rt_slice_t value, void *ud), void *ud);

/* Registers the namespaces and handlers on srv and connects to Redis.
 * NULL with a message in err for an invalid Redis URL. */
frappe_t *frappe_new(net_loop_t *loop, sio_server_t *srv, const frappe_options_t *opt, char *err,
                     size_t errlen);
/* Shutdown in two steps: frappe_stop() ends all I/O (Redis, web-server
 * calls) and releases in-flight operations; the sio server can then be freed
 * (its disconnect callbacks still see a valid frappe_t); frappe_free() last. */
void frappe_stop(frappe_t *f);
/* SIGHUP: the web server's host/port, default_site, developer_mode and the
 * auth timeout change for calls made from now on (strings are borrowed, as
 * in frappe_new). */
void frappe_reconfigure(frappe_t *f, const frappe_options_t *opt);
void frappe_free(frappe_t *f);

/* Routes one message from the `events` channel (exposed for tests). */
void frappe_route_event(frappe_t *f, rt_slice_t payload);

/* Connect refusals by kind, in the order of frappe_refusal_kinds[] */
enum {
    FR_REFUSED_UNAUTHORIZED, /* the web server did not vouch for the credentials */
    FR_REFUSED_BACKCHANNEL,  /* the web server or the secret could not be reached */
    FR_REFUSED_NO_CREDENTIALS,
    FR_REFUSED_INVALID_ORIGIN,
    FR_REFUSED_INVALID_NAMESPACE,
    FR_REFUSED_HEADER_TOO_LONG,
    FR_REFUSALS
};
extern const char *const frappe_refusal_kinds[FR_REFUSALS];
#define FR_LAT_MAX 256 /* events per loop turn timed individually */
typedef struct {
    uint64_t events, events_bad, auth_ok, auth_failed, perm_checks;
    uint64_t refused[FR_REFUSALS];
    uint64_t secret_failures;  /* reads of the socket secret that got no answer */
    bool secret_failing;       /* the last read of the secret failed ... */
    uint64_t secret_failed_ms; /* ... at this time (rt_now_ms): /ready heeds it 5 s */
    rt_hist_t event_latency;   /* Redis message -> its deliveries written (end of the turn) */
} frappe_stats_t;
const frappe_stats_t *frappe_stats(const frappe_t *f);
/* The web-server client's counters (calls, latency, failures); NULL once stopped. */
const fetch_stats_t *frappe_fetch_stats(const frappe_t *f);

/* Site-name helpers, pure (exposed for unit tests). hostname: the part after
 * "://" up to the next '/', then cut at the first ':'. */
rt_slice_t frappe_hostname(rt_slice_t url);
/* True if origin is exactly http(s)://host[:port] with host a plausible
 * site folder name (letters, digits, '-', '_', '.', no empty label); *host
 * gets it. No userinfo, path, query or fragment. */
bool frappe_site_origin(rt_slice_t origin, rt_slice_t *host);
/* The value of cookie `name` in a Cookie header (first occurrence; quotes
 * stripped; percent-decoded into out). Returns false when absent. */
bool frappe_cookie_get(rt_slice_t header, const char *name, rt_buf_t *out);

#endif
