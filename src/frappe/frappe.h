/* frappe: Frappe's realtime application on top of sio/ — site namespaces,
 * the authentication middleware and its web-server backchannel, rooms and
 * client events, doc presence, and the Redis `events` bridge. The contract
 * is Frappe's Node server (shared/reference/frappe-realtime.md); deliberate
 * differences are listed in docs/frappe.md. */
#ifndef RT_FRAPPE_H
#define RT_FRAPPE_H
#include "broker/broker.h"
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
} frappe_options_t;

/* Registers the namespaces and handlers on srv and connects to Redis.
 * NULL with a message in err for an invalid Redis URL. */
frappe_t *frappe_new(net_loop_t *loop, sio_server_t *srv, const frappe_options_t *opt, char *err,
                     size_t errlen);
/* Shutdown in two steps: frappe_stop() ends all I/O (Redis, web-server
 * calls) and releases in-flight operations; the sio server can then be freed
 * (its disconnect callbacks still see a valid frappe_t); frappe_free() last. */
void frappe_stop(frappe_t *f);
void frappe_free(frappe_t *f);

/* Routes one message from the `events` channel (exposed for tests). */
void frappe_route_event(frappe_t *f, rt_slice_t payload);

typedef struct {
    uint64_t events, events_bad, auth_ok, auth_failed, perm_checks;
} frappe_stats_t;
const frappe_stats_t *frappe_stats(const frappe_t *f);

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
