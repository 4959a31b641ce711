/* Configuration: one table declares every setting (key, type, default,
 * bounds, environment variable, help); the same table reads the Frappe bench
 * files, the environment and the command line, prints --help and
 * --check-config. Precedence: default < bench files < environment < flags. */
#include "app.h"

#include <sysexits.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <unistd.h>

typedef enum { T_INT, T_STR, T_BOOL } opt_type_t;
enum { F_BENCH = 1, F_SECRET = 2, F_LIVE = 4 /* applied by SIGHUP without a restart */,
       F_MULTI = 8 /* repeatable: the values are kept joined by newlines */ };

typedef struct {
    const char *key;   /* bench file key; flag is --key with '_' -> '-' */
    const char *alias; /* extra flag name, or NULL */
    const char *env;   /* environment override, or NULL */
    opt_type_t type;
    size_t off;
    const char *def;
    long min, max;
    unsigned flags;
    const char *help;
} opt_t;

#define O(f) offsetof(app_config_t, f)
static const opt_t opts[] = {
    {"socketio_port", "port", "FRAPPE_SOCKETIO_PORT", T_INT, O(socketio_port), "9000", 0, 65535,
     F_BENCH, "TCP port to listen on (all interfaces unless --listen-host)"},
    {"socketio_uds", "uds", "FRAPPE_SOCKETIO_UDS", T_STR, O(socketio_uds), NULL, 0, 0, F_BENCH,
     "listen on this Unix socket path instead of the TCP port"},
    {"redis_queue", "redis", "FRAPPE_REDIS_QUEUE", T_STR, O(redis_queue), "redis://127.0.0.1:11000",
     0, 0, F_BENCH | F_SECRET,
     "Redis URL (redis://[:password@]host:port[/db] or unix:///path[?db=N]) carrying the "
     "'events' channel and the socket secret"},
    {"webserver_host", NULL, NULL, T_STR, O(webserver_host), NULL, 0, 0, F_BENCH | F_LIVE,
     "Frappe web server host for auth callbacks (with webserver_port); otherwise the "
     "client's Origin is used"},
    {"webserver_port", NULL, NULL, T_INT, O(webserver_port), "8000", 1, 65535, F_BENCH | F_LIVE,
     "Frappe web server port (callbacks with webserver_host, or in developer_mode)"},
    {"default_site", NULL, "FRAPPE_SITE", T_STR, O(default_site), NULL, 0, 0, F_BENCH | F_LIVE,
     "site used when Host is localhost or 127.0.0.1"},
    {"developer_mode", NULL, NULL, T_BOOL, O(developer_mode), "0", 0, 1, F_BENCH | F_LIVE,
     "enables open_in_editor; callbacks go to Origin with webserver_port"},
    {"bench", NULL, "FRAPPE_BENCH_ROOT", T_STR, O(bench), NULL, 0, 0, 0,
     "Frappe bench root (default: the working directory)"},
    {"listen_host", NULL, "REALTIMED_LISTEN_HOST", T_STR, O(listen_host), NULL, 0, 0, 0,
     "address to bind: IPv4 or IPv6 (::1, [::1]); default every interface, IPv6 and IPv4 on "
     "one socket, as Node's server (IPv4 only where the machine has no IPv6)"},
    {"log_level", NULL, "REALTIMED_LOG_LEVEL", T_STR, O(log_level), "info", 0, 0, F_LIVE,
     "debug, info, notice, warning or error"},
    {"ping_interval", NULL, NULL, T_INT, O(ping_interval), "25000", 10, 3600000, 0,
     "Engine.IO pingInterval in ms"},
    {"ping_timeout", NULL, NULL, T_INT, O(ping_timeout), "20000", 10, 3600000, 0,
     "Engine.IO pingTimeout in ms"},
    {"max_payload", NULL, NULL, T_INT, O(max_payload), "1000000", 1024, 100000000, 0,
     "largest HTTP body or WebSocket message in bytes (maxHttpBufferSize)"},
    {"connect_timeout", NULL, NULL, T_INT, O(connect_timeout), "45000", 100, 3600000, 0,
     "ms a new connection may stay without joining a namespace"},
    {"auth_timeout", NULL, "REALTIMED_AUTH_TIMEOUT", T_INT, O(auth_timeout), "10000", 100,
     600000, F_LIVE, "ms allowed for each call to the Frappe web server (or to the auth webhook)"},
    {"max_sessions", NULL, "REALTIMED_MAX_SESSIONS", T_INT, O(max_sessions), "100000", 0, INT_MAX, F_LIVE,
     "Engine.IO sessions at most; further handshakes get 503 (0: no limit)"},
    {"max_pending", NULL, NULL, T_INT, O(max_pending), "10000", 0, INT_MAX, F_LIVE,
     "sessions not yet admitted to a namespace (unauthenticated); beyond, the oldest is "
     "closed (0: no limit)"},
    {"attachment_timeout", NULL, NULL, T_INT, O(attachment_timeout), "10000", 100, 600000, F_LIVE,
     "ms a binary event's attachments may take to arrive (they total at most max_payload)"},
    {"out_soft_limit", NULL, NULL, T_INT, O(out_soft_limit), "1048576", 4096, INT_MAX, F_LIVE,
     "bytes queued to one client tolerated for 10 s before it is closed"},
    {"out_hard_limit", NULL, NULL, T_INT, O(out_hard_limit), "16777216", 65536, INT_MAX, F_LIVE,
     "bytes queued to one client (WebSocket, or polling without a GET) that close it at once"},
    {"static_dir", NULL, "REALTIMED_STATIC_DIR", T_STR, O(static_dir), NULL, 0, 0, 0,
     "serve files from this folder at / (the demo page, the JS client)"},
    {"auth_mode", NULL, "REALTIMED_AUTH_MODE", T_STR, O(auth_mode), "frappe", 0, 0, 0,
     "frappe (every connection authenticated by the web server), guest (demo: no web "
     "server; every connection is a Guest in the 'website' room); standalone, without a bench "
     "(docs/standalone.md): jwt (a signed token per connection) or webhook (your backend "
     "decides each connection)"},
    {"auth_webhook", NULL, "REALTIMED_AUTH_WEBHOOK", T_STR, O(auth_webhook), NULL, 0, 0, 0,
     "auth_mode webhook: each namespace connection is POSTed here; 200 {\"user\"} admits"},
    {"webhook_secret_file", NULL, "REALTIMED_WEBHOOK_SECRET_FILE", T_STR, O(webhook_secret_file), NULL, 0, 0, 0,
     "its content goes with every webhook call (auth and events) as X-Realtimed-Secret"},
    {"namespaces", NULL, "REALTIMED_NAMESPACES", T_STR, O(namespaces), "/", 0, 0, 0,
     "standalone modes: the namespaces clients may join, comma-separated (others get "
     "CONNECT_ERROR \"Invalid namespace\")"},
    {"jwt_key", NULL, "REALTIMED_JWT_KEY", T_STR, O(jwt_key), NULL, 0, 0, F_MULTI | F_LIVE,
     "auth_mode jwt: a key file, repeatable (rotation): an HMAC secret (its bytes, one trailing "
     "newline dropped) or a PEM public key (RSA: RS256/384/512, EC P-256: ES256, Ed25519: EdDSA); "
     "its kid is the file name without extension"},
    {"jwt_leeway", NULL, NULL, T_INT, O(jwt_leeway), "30", 0, 86400, F_LIVE,
     "seconds of tolerance on a token's exp and nbf"},
    {"jwt_audience", NULL, NULL, T_STR, O(jwt_audience), NULL, 0, 0, F_LIVE,
     "a token's aud must be (or contain) this"},
    {"jwt_issuer", NULL, NULL, T_STR, O(jwt_issuer), NULL, 0, 0, F_LIVE, "a token's iss must be this"},
    {"events_webhook", NULL, "REALTIMED_EVENTS_WEBHOOK", T_STR, O(events_webhook), NULL, 0, 0, 0,
     "standalone modes: every client event is POSTed here ({namespace, user, sid, event, args}); a 2xx "
     "{\"ack\": [...]} answers the client's acknowledgement (needs --webhook-secret-file)"},
    {"webhook_concurrency", NULL, NULL, T_INT, O(webhook_concurrency), "64", 1, 4096, 0,
     "events webhook calls in flight at most (one per socket at a time, in order)"},
    {"emitter_key", NULL, "REALTIMED_EMITTER_KEY", T_STR, O(emitter_key), "socket.io", 0, 0, 0,
     "act on what @socket.io/redis-emitter (and its ports) publish with this key (socket.io's "
     "`key`) on the Redis of redis_queue; empty: off. The standalone modes use Redis only "
     "when --redis-queue is given"},
    {"api_listen", NULL, "REALTIMED_API_LISTEN", T_STR, O(api_listen), NULL, 0, 0, 0,
     "serve the HTTP API on this [host:]port only (not on the main listener): keep it private"},
    {"api_key_file", NULL, "REALTIMED_API_KEY_FILE", T_STR, O(api_key_file), NULL, 0, 0, F_LIVE,
     "standalone modes: the HTTP API's keys, one per line (all valid: rotation); without it "
     "/api/ answers 404"},
    {"jwt_query", NULL, NULL, T_BOOL, O(jwt_query), "0", 0, 1, 0,
     "also take the token from the handshake's ?token= (URLs end up in logs: off by default)"},
    {"app_handlers", NULL, "REALTIMED_APP_HANDLERS", T_STR, O(app_handlers), "auto", 0, 0, 0,
     "apps' realtime/handlers.js and handlers.py: auto (an app with both runs handlers.py when "
     "the bench's Frappe has the Python realtime server, else handlers.js), js, py, or off"},
    {"node", NULL, "REALTIMED_NODE", T_STR, O(node), NULL, 0, 0, 0,
     "Node.js for the handlers.js host (default: node on PATH)"},
    {"python", NULL, "REALTIMED_PYTHON", T_STR, O(python), NULL, 0, 0, 0,
     "Python for the handlers.py host (default: <bench>/env/bin/python)"},
    {"host_dir", NULL, "REALTIMED_HOST_DIR", T_STR, O(host_dir), NULL, 0, 0, 0,
     "folder of the handler host scripts (default: installed beside the binary)"},
    {"node_id", NULL, "REALTIMED_NODE_ID", T_STR, O(node_id), NULL, 0, 0, 0,
     "1 to 8 letters or digits that start every session id of this machine, so that a proxy in "
     "front of several machines can route a session's requests to its owner (docs/scaling.md)"},
    {"workers", NULL, "REALTIMED_WORKERS", T_STR, O(workers), "1", 0, 0, 0,
     "event loops (processes) sharing the port: a number up to 64, or auto (one per online "
     "core). Each has its own sessions, rooms and Redis links; requests of a session are "
     "handed to the worker that owns it"},
    {"cors_origin", NULL, "REALTIMED_CORS_ORIGIN", T_STR, O(cors_origin), "*", 0, 0, 0,
     "origins whose pages may use the server (CORS headers reflected), comma-separated, e.g. "
     "https://erp.example.com; * reflects any Origin, as Frappe's Node server does"},
    {"path", NULL, "REALTIMED_PATH", T_STR, O(path), "/socket.io/", 0, 0, 0,
     "the Socket.IO path (socket.io's `path` option); nginx must route it here"},
    {"serve_client", NULL, "REALTIMED_SERVE_CLIENT", T_STR, O(serve_client), "auto", 0, 0, 0,
     "serve the socket.io-client bundle at <path>socket.io.js, .min.js, .esm.min.js (and maps), as "
     "socket.io does: on, off, or auto (on, except in Frappe mode: the desk bundles its own client)"},
    {"client_dir", NULL, "REALTIMED_CLIENT_DIR", T_STR, O(client_dir), NULL, 0, 0, 0,
     "folder of the socket.io-client dist files (default: share/realtimed/client beside the binary, "
     "or the repository's tests/node_modules/socket.io-client/dist)"},
    {"http_compression", NULL, NULL, T_BOOL, O(http_compression), "1", 0, 1, 0,
     "gzip or deflate long-polling responses of 1 KB and more when the client accepts it, as "
     "socket.io's httpCompression (a broadcast is compressed once for its polling members)"},
    {"per_message_deflate", NULL, NULL, T_BOOL, O(per_message_deflate), "0", 0, 1, 0,
     "accept WebSocket permessage-deflate (off, as in socket.io): text messages of 1 KB and more go "
     "out compressed, without context takeover, so a broadcast is compressed once and the same "
     "frame is shared by every member that negotiated it"},
    {"allow_eio3", NULL, "REALTIMED_ALLOW_EIO3", T_BOOL, O(allow_eio3), "0", 0, 1, 0,
     "also serve Engine.IO v3 clients (socket.io-client 2.x, common in older mobile apps), as "
     "socket.io's allowEIO3 (off, as there and in Frappe's Node server)"},
    {"recovery_window", NULL, "REALTIMED_RECOVERY_WINDOW", T_INT, O(recovery_window), "0", 0, 86400000, 0,
     "connection state recovery (socket.io's connectionStateRecovery.maxDisconnectionDuration), "
     "in ms; 0: off, as in socket.io and Frappe's Node server. A client that lost its connection "
     "and comes back within it gets its id, rooms and every missed event (socket.recovered), on "
     "any worker or node; every kept event then carries its offset as a last argument"},
    {"recovery_max_bytes", NULL, NULL, T_INT, O(recovery_max_bytes), "67108864", 65536, INT_MAX, 0,
     "memory for recovery per worker: the events kept and the disconnected sessions (at most half); "
     "what was evicted is answered \"not recovered\""},
    {"metrics_listen", NULL, "REALTIMED_METRICS_LISTEN", T_STR, O(metrics_listen), NULL, 0, 0, 0,
     "serve /metrics (and /health, /ready) on this [host:]port instead of the main listener; "
     "with --workers, worker 0 serves it, summing every worker"},
    {"config", NULL, "REALTIMED_CONFIG", T_STR, O(config), NULL, 0, 0, 0,
     "JSON file of settings keyed by these long option names (read after the bench files, "
     "before the environment; SIGHUP reads it again)"},
    {"log_format", NULL, "REALTIMED_LOG_FORMAT", T_STR, O(log_format), "text", 0, 0, F_LIVE,
     "text (time level module: message) or json (one object per line)"},
    {"log_file", NULL, "REALTIMED_LOG_FILE", T_STR, O(log_file), NULL, 0, 0, F_LIVE,
     "append the log to this file instead of stderr; reopened on SIGHUP and SIGUSR1 (logrotate)"},
    {"drain_timeout", NULL, "REALTIMED_DRAIN_TIMEOUT", T_INT, O(drain_timeout), "10000", 0, 600000, F_LIVE,
     "ms SIGTERM waits for clients to receive their close and for output to flush before exiting"},
    {"uds_mode", NULL, "REALTIMED_UDS_MODE", T_STR, O(uds_mode), "0666", 0, 0, 0,
     "permissions of the socketio_uds socket (octal): nginx runs as another user and needs write "
     "access"},
    {"probe", NULL, NULL, T_BOOL, O(probe), "0", 0, 1, 0,
     "with --check-config: also connect to Redis (AUTH, the socket secret) and ask each site's "
     "web server for get_user_info"},
    {"conformance", NULL, NULL, T_BOOL, O(conformance), "0", 0, 1, 0,
     "serve the protocol test-suite application (/engine.io/ echo and /socket.io/ sample "
     "app, pingInterval 300, pingTimeout 200) instead of Frappe"},
};
#undef O

static const char *sources[RT_ARRAY_LEN(opts)];

/* Errors go to stderr at startup; once the log is set up (SIGHUP) through it,
 * so that --log-format json stays JSON. */
static bool errors_to_log;
void app_config_errors_to_log(bool on) { errors_to_log = on; }

__attribute__((format(printf, 1, 2))) static void cfg_error(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (errors_to_log) rt_error("config", "%s", msg);
    else fprintf(stderr, "realtimed: %s\n", msg);
}

/* The flag for a key: "--" + key with '_' -> '-'. */
static const char *flag_name(const opt_t *o, char *buf, size_t n)
{
    snprintf(buf, n, "--%s", o->key);
    for (char *p = buf; *p; p++)
        if (*p == '_') *p = '-';
    return buf;
}

static size_t opt_index(const char *key)
{
    for (size_t i = 0; i < RT_ARRAY_LEN(opts); i++)
        if (!strcmp(opts[i].key, key)) return i;
    rt_panic(__FILE__, __LINE__, key);
}

static void set_str(app_config_t *cfg, const opt_t *o, const char *v)
{
    char **p = (char **)((char *)cfg + o->off);
    free(*p);
    *p = v ? rt_strndup(v, strlen(v)) : NULL;
}

/* Parses v for option o into cfg. Returns 0 or prints an error naming the
 * key and the place and returns 78 (EX_CONFIG). */
static int set_value(app_config_t *cfg, const opt_t *o, const char *v, const char *where)
{
    switch (o->type) {
    case T_STR: set_str(cfg, o, v); return 0;
    case T_BOOL: {
        bool b;
        if (!v || !strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on")) b = true;
        else if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off") || !*v) b = false;
        else {
            cfg_error("invalid value '%s' for %s (%s): expected true or false", v, o->key, where);
            return EX_CONFIG;
        }
        *(bool *)((char *)cfg + o->off) = b;
        return 0;
    }
    case T_INT: {
        char *end;
        errno = 0;
        long n = v ? strtol(v, &end, 10) : 0;
        if (!v || !*v || *end || errno || n < o->min || n > o->max) {
            cfg_error("invalid value '%s' for %s (%s): expected an integer %ld..%ld",
                    v ? v : "", o->key, where, o->min, o->max);
            return EX_CONFIG;
        }
        *(int *)((char *)cfg + o->off) = (int)n;
        return 0;
    }
    }
    return 0;
}

/* A configuration file: a regular file of at most 1 MiB, opened without
 * blocking (SIGHUP reads it inside the loop: a FIFO or /dev/zero there
 * must not hang the server). NULL with err filled. */
#define CONFIG_FILE_MAX (1 << 20)
static json_t *load_json_file(const char *path, json_error_t *err)
{
    memset(err, 0, sizeof *err);
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(err->text, sizeof err->text, "%s", strerror(errno));
        if (fd >= 0) close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > CONFIG_FILE_MAX) {
        snprintf(err->text, sizeof err->text, "%s", !S_ISREG(st.st_mode) ? "not a regular file" : "larger than 1 MiB");
        close(fd);
        return NULL;
    }
    char *buf = rt_malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    json_t *root = json_loadb(buf, got, 0, err);
    free(buf);
    return root;
}

/* A file that must hold a JSON object; NULL after saying why ("cannot read
 * <what><path>: ..."). */
static json_t *load_json_object(const char *path, const char *what)
{
    json_error_t err;
    json_t *root = load_json_file(path, &err);
    if (!root) {
        cfg_error("cannot read %s%s: %s (line %d)", what, path, err.text, err.line);
        return NULL;
    }
    if (!json_is_object(root)) {
        cfg_error("cannot read %s%s: not a JSON object", what, path);
        json_decref(root);
        return NULL;
    }
    return root;
}

/* Frappe's get_conf: later files win, and only truthy values are copied. */
static int read_bench_file(app_config_t *cfg, const char *bench, const char *rel)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", bench, rel);
    if (access(path, F_OK) != 0) return 0;
    json_t *root = load_json_object(path, "");
    if (!root) return EX_CONFIG;
    int rc = 0;
    for (size_t i = 0; i < RT_ARRAY_LEN(opts) && !rc; i++) {
        const opt_t *o = &opts[i];
        if (!(o->flags & F_BENCH)) continue;
        json_t *v = json_object_get(root, o->key);
        if (!v || json_is_null(v) || json_is_false(v)) continue;
        char buf[64];
        const char *s = NULL;
        if (json_is_string(v)) {
            s = json_string_value(v);
            if (!*s) continue; /* "" is falsy */
        } else if (json_is_integer(v)) {
            if (json_integer_value(v) == 0) continue;
            snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
            s = buf;
        } else if (json_is_real(v)) {
            if (json_real_value(v) == 0) continue;
            snprintf(buf, sizeof buf, "%.0f", json_real_value(v));
            s = buf;
        } else if (json_is_true(v)) {
            s = "1";
        } else {
            s = o->type == T_BOOL ? "1" : NULL; /* objects/arrays are truthy */
            if (!s) {
                cfg_error("invalid value for %s in %s: expected a %s", o->key, path,
                        o->type == T_INT ? "number" : "string");
                rc = EX_CONFIG;
                break;
            }
        }
        if (o->type == T_BOOL) s = "1"; /* any truthy JSON value, as in JavaScript */
        rc = set_value(cfg, o, s, path);
        sources[i] = rel;
    }
    json_decref(root);
    return rc;
}

/* --config FILE: a JSON object keyed by long option names ("max_sessions"
 * or "max-sessions"); every value is taken as given (false, 0 and "" too). */
static json_t *load_config_file(const char *path) { return load_json_object(path, "config file "); }

static const opt_t *find_flag(const char *name, size_t n);

static int apply_config_file(app_config_t *cfg, json_t *root, const char *path)
{
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        const opt_t *o = find_flag(key, strlen(key));
        if (!o || !strcmp(o->key, "config") || !strcmp(o->key, "probe")) {
            cfg_error("unknown key '%s' in config file %s (see --help)", key, path);
            return EX_CONFIG;
        }
        char buf[64];
        const char *s = NULL;
        if (json_is_null(v)) continue;
        if (json_is_string(v)) s = json_string_value(v);
        else if (json_is_integer(v)) snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v)), s = buf;
        else if (json_is_boolean(v)) s = json_is_true(v) ? "1" : "0";
        else {
            cfg_error("invalid value for %s in config file %s: expected a %s", key, path,
                    o->type == T_INT ? "number" : o->type == T_BOOL ? "boolean" : "string");
            return EX_CONFIG;
        }
        int rc = set_value(cfg, o, s, path);
        if (rc) return rc;
        sources[o - opts] = path;
    }
    return 0;
}

void app_usage(FILE *out)
{
    fprintf(out,
            "Usage: realtimed [options]\n"
            "       realtimed publish [--bench DIR] [--redis URL] [--site S]\n"
            "                 [--room R | --user U | --doctype D [--docname N] | --task T] EVENT [JSON]\n"
            "       realtimed setup-bench [--bench DIR] [--binary PATH] [--dry-run] [--check]\n"
            "\n"
            "A Socket.IO v4 realtime server for Frappe benches: a drop-in for\n"
            "`node apps/frappe/socketio.js`. Start it with the bench root as working\n"
            "directory; it reads config.json and sites/common_site_config.json like the\n"
            "Node server (only truthy values, later file wins), then the environment,\n"
            "then --config FILE, the environment, then these flags (--key value or --key=value):\n\n");
    for (size_t i = 0; i < RT_ARRAY_LEN(opts); i++) {
        const opt_t *o = &opts[i];
        char flag[64];
        flag_name(o, flag, sizeof flag);
        fprintf(out, "  %s%s%s%s\n", flag, o->alias ? ", --" : "", o->alias ? o->alias : "",
                o->type == T_BOOL ? "" : o->type == T_INT ? " N" : " VALUE");
        fprintf(out, "      %s", o->help);
        if (o->def) fprintf(out, " (default %s)", o->type == T_BOOL ? (strcmp(o->def, "0") ? "on" : "off") : o->def);
        if (o->flags & F_BENCH) fprintf(out, " [bench key %s]", o->key);
        if (o->env) fprintf(out, " [env %s]", o->env);
        if (o->flags & F_LIVE) fprintf(out, " [SIGHUP applies it]");
        fprintf(out, "\n");
    }
    fprintf(out, "\n  --check-config     print the effective configuration (secrets masked) and exit;\n"
                 "                     non-zero with a message naming the key when it is invalid or the\n"
                 "                     server could not start (not a bench, bad listen address or socket\n"
                 "                     folder); with --probe also 69 when Redis or a web server does not answer\n"
                 "  -h, --help         this help\n"
                 "  -v, --version      version\n"
                 "\nEndpoints: /health (liveness), /ready (503 with a reason while Redis or the socket secret\n"
                 "is unusable, or while draining), /metrics (Prometheus; see docs/operations.md).\n"
                 "Signals: SIGTERM/SIGINT drain: clients are told to reconnect, output is flushed, exit 0\n"
                 "within --drain-timeout (a second SIGINT exits at once). SIGHUP re-reads the bench files\n"
                 "and --config, applies what can change live and logs the keys that need a restart; SIGHUP\n"
                 "and SIGUSR1 reopen --log-file; SIGUSR2 is ignored. Under systemd (Type=notify) READY=1\n"
                 "is sent once listening and subscribed to Redis, then STOPPING=1, and WATCHDOG=1.\n"
                 "Exit codes: 0 ok, 64 bad command line, 69 cannot listen, 73 cannot open the log file,\n"
                 "78 bad configuration.\n");
}

/* roff for a backslash-free, dash-escaped line. */
static void roff_text(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '-') fputs("\\-", out);
        else if (*s == '\\') fputs("\\e", out);
        else fputc(*s, out);
    }
}

/* The man page (docs/realtimed.8), generated from the same table as --help
 * so the two cannot drift; a test compares the committed copy. */
void app_man(FILE *out)
{
    fputs(".TH REALTIMED 8 \"\" \"realtimed " REALTIMED_VERSION "\" \"System Manager's Manual\"\n"
          ".SH NAME\nrealtimed \\- Socket.IO v4 realtime server, a drop\\-in for Frappe's Node socketio service\n"
          ".SH SYNOPSIS\n.B realtimed\n[\\fIoptions\\fR]\n.br\n.B realtimed publish\n"
          "[\\fB\\-\\-bench\\fR \\fIDIR\\fR] [\\fB\\-\\-redis\\fR \\fIURL\\fR] [\\fB\\-\\-site\\fR \\fIS\\fR] "
          "[\\fB\\-\\-room\\fR \\fIR\\fR | \\fB\\-\\-user\\fR \\fIU\\fR | \\fB\\-\\-doctype\\fR \\fID\\fR "
          "[\\fB\\-\\-docname\\fR \\fIN\\fR] | \\fB\\-\\-task\\fR \\fIT\\fR] \\fIEVENT\\fR [\\fIJSON\\fR]\n"
          ".br\n.B realtimed setup-bench\n[\\fB\\-\\-bench\\fR \\fIDIR\\fR] [\\fB\\-\\-binary\\fR \\fIPATH\\fR] "
          "[\\fB\\-\\-dry\\-run\\fR] [\\fB\\-\\-check\\fR]\n"
          ".SH DESCRIPTION\nStarted in a Frappe bench root, realtimed reads config.json and\n"
          "sites/common_site_config.json like Frappe's Node server (later file wins, only truthy\n"
          "values are copied), then \\-\\-config FILE, the environment, then the options below. Every site is the\n"
          "Socket.IO namespace /<site>; connections are authenticated through the Frappe web\n"
          "server; events published on the Redis channel \\fIevents\\fR are relayed to rooms.\n"
          "See docs/frappe.md for the contract and every deliberate difference.\n"
          ".SH OPTIONS\n", out);
    for (size_t i = 0; i < RT_ARRAY_LEN(opts); i++) {
        const opt_t *o = &opts[i];
        char flag[64];
        flag_name(o, flag, sizeof flag);
        fputs(".TP\n.B ", out);
        roff_text(out, flag);
        if (o->alias) {
            fputs(", --", out);
            roff_text(out, o->alias);
        }
        if (o->type != T_BOOL) fputs(o->type == T_INT ? " \\fIN\\fR" : " \\fIVALUE\\fR", out);
        fputs("\n", out);
        roff_text(out, o->help);
        if (o->def) {
            fputs(". Default: ", out);
            roff_text(out, o->type == T_BOOL ? (strcmp(o->def, "0") ? "on" : "off") : o->def);
        }
        if (o->flags & F_BENCH) fprintf(out, ". Bench key: %s", o->key);
        if (o->env) fprintf(out, ". Environment: %s", o->env);
        if (o->flags & F_LIVE) fputs(". SIGHUP applies a new value", out);
        fputs(".\n", out);
    }
    fputs(".TP\n.B \\-\\-check\\-config\nPrint the effective configuration (secrets masked) and exit; "
          "non\\-zero with a message naming the key when it is invalid or the server could not start; with "
          "\\-\\-probe, 69 when Redis or a site's web server does not answer.\n"
          ".TP\n.B \\-h, \\-\\-help\nUsage.\n.TP\n.B \\-v, \\-\\-version\nVersion.\n"
          ".SH ENDPOINTS\n/health answers ok while the loop turns; /ready answers 503 with a reason while the Redis "
          "subscription or the socket secret is unusable, or while draining; /metrics is Prometheus text "
          "(docs/operations.md).\n"
          ".SH SIGNALS\nSIGTERM and SIGINT drain: clients are told to reconnect, output is flushed, and the process "
          "exits 0 within \\-\\-drain\\-timeout; a second SIGINT exits at once. SIGHUP re\\-reads the bench files and "
          "\\-\\-config, applies the settings that can change live and logs those that need a restart. SIGHUP and "
          "SIGUSR1 reopen \\-\\-log\\-file. SIGUSR2 is ignored. Under systemd (Type=notify): READY=1 once listening and "
          "subscribed to Redis, STOPPING=1, WATCHDOG=1.\n"
          ".SH EXIT STATUS\n0 ok; 1 setup\\-bench \\-\\-check found a file still starting another server; 64 bad command "
          "line; 65 bad JSON (publish); 69 cannot listen or reach Redis (publish, \\-\\-probe); 73 cannot open the log "
          "file; 78 bad configuration.\n"
          ".SH FILES\n<bench>/config.json, <bench>/sites/common_site_config.json\n"
          ".SH SEE ALSO\nredis\\-server(1), docs/frappe.md, docs/performance.md\n", out);
}

static const opt_t *find_flag(const char *name, size_t n)
{
    for (size_t i = 0; i < RT_ARRAY_LEN(opts); i++) {
        const opt_t *o = &opts[i];
        char buf[64];
        const char *flag = flag_name(o, buf, sizeof buf) + 2;
        if ((strlen(flag) == n && !memcmp(flag, name, n)) ||
            (o->alias && strlen(o->alias) == n && !memcmp(o->alias, name, n)) ||
            (strlen(o->key) == n && !memcmp(o->key, name, n)))
            return o;
    }
    return NULL;
}

static int validate(const app_config_t *cfg)
{
    if (rt_log_level_from_name(cfg->log_level) < 0) {
        cfg_error("invalid value '%s' for log_level: expected debug, info, notice, warning or error",
                cfg->log_level);
        return EX_CONFIG;
    }
    if (cfg->redis_queue && strncmp(cfg->redis_queue, "redis://", 8) != 0 &&
        strncmp(cfg->redis_queue, "unix://", 7) != 0) {
        cfg_error("invalid value for redis_queue: expected a redis:// or unix:// URL");
        return EX_CONFIG;
    }
    if (strcmp(cfg->app_handlers, "auto") && strcmp(cfg->app_handlers, "js") && strcmp(cfg->app_handlers, "py") &&
        strcmp(cfg->app_handlers, "off")) {
        cfg_error("invalid value '%s' for app_handlers: expected auto, js, py or off",
                cfg->app_handlers);
        return EX_CONFIG;
    }
    if (cfg->node_id) {
        size_t n = strlen(cfg->node_id), ok = n >= 1 && n <= 8;
        for (size_t i = 0; i < n && ok; i++) ok = isalnum((unsigned char)cfg->node_id[i]) != 0;
        if (!ok) {
            cfg_error("invalid value '%s' for node_id: expected 1 to 8 letters or digits",
                    cfg->node_id);
            return EX_CONFIG;
        }
    }
    if (app_workers_count(cfg) < 0) {
        cfg_error("invalid value '%s' for workers: expected auto or 1..%d", cfg->workers,
                APP_MAX_WORKERS);
        return EX_CONFIG;
    }
    size_t pl = strlen(cfg->path);
    if (!pl || cfg->path[0] != '/' || pl > 200 || strspn(cfg->path, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                                    "0123456789-._~/") != pl ||
        strstr(cfg->path, "//")) {
        cfg_error("invalid value '%s' for path: expected an absolute URL path such as /socket.io/", cfg->path);
        return EX_CONFIG;
    }
    if (strcmp(cfg->serve_client, "auto") && strcmp(cfg->serve_client, "on") && strcmp(cfg->serve_client, "off")) {
        cfg_error("invalid value '%s' for serve_client: expected auto, on or off", cfg->serve_client);
        return EX_CONFIG;
    }
    if (strcmp(cfg->log_format, "text") && strcmp(cfg->log_format, "json")) {
        cfg_error("invalid value '%s' for log_format: expected text or json", cfg->log_format);
        return EX_CONFIG;
    }
    size_t ml = strlen(cfg->uds_mode);
    if (ml < 3 || ml > 4 || strspn(cfg->uds_mode, "01234567") != ml || (ml == 4 && cfg->uds_mode[0] != '0')) {
        cfg_error("invalid value '%s' for uds_mode: expected octal permissions such as 0666 or 0660",
                cfg->uds_mode);
        return EX_CONFIG;
    }
    if (cfg->socketio_uds && !*cfg->socketio_uds) {
        cfg_error("invalid value for socketio_uds: an empty path");
        return EX_CONFIG;
    }
    if (cfg->metrics_listen && *cfg->metrics_listen) {
        char host[256];
        int port;
        if (app_parse_hostport(cfg->metrics_listen, host, sizeof host, &port) < 0) {
            cfg_error("invalid value '%s' for metrics_listen: expected [host:]port",
                    cfg->metrics_listen);
            return EX_CONFIG;
        }
    }
    if (strcmp(cfg->auth_mode, "frappe") != 0 && strcmp(cfg->auth_mode, "guest") != 0 &&
        strcmp(cfg->auth_mode, "jwt") != 0 && strcmp(cfg->auth_mode, "webhook") != 0) {
        cfg_error("invalid value '%s' for auth_mode: expected frappe, guest, jwt or webhook", cfg->auth_mode);
        return EX_CONFIG;
    }
    char err[512];
    if (app_standalone(cfg) && app_standalone_check(cfg, err, sizeof err) < 0) {
        cfg_error("%s", err);
        return EX_CONFIG;
    }
    return 0;
}

bool app_standalone(const app_config_t *cfg)
{
    return !cfg->conformance && (!strcmp(cfg->auth_mode, "jwt") || !strcmp(cfg->auth_mode, "webhook"));
}

static int load_args(app_config_t *cfg, int argc, char **argv, bool *exit_now, bool *check_only,
                     const char **flag_vals, bool *flag_set, char **multi, size_t *nmultip);

int app_config_load(app_config_t *cfg, int argc, char **argv, bool *exit_now, bool *check_only)
{
    memset(cfg, 0, sizeof *cfg);
    *exit_now = *check_only = false;
    int rc;
    for (size_t i = 0; i < RT_ARRAY_LEN(opts); i++) {
        sources[i] = "default";
        if (opts[i].def && (rc = set_value(cfg, &opts[i], opts[i].def, "default"))) return rc;
    }
    /* Flags are parsed twice: first to find --bench (and errors), then
     * applied last so that they override files and environment. */
    const char *flag_vals[RT_ARRAY_LEN(opts)] = {0};
    bool flag_set[RT_ARRAY_LEN(opts)] = {0};
    char *multi[64] = {0}; /* joined values of repeated flags */
    size_t nmulti = 0;
    rc = load_args(cfg, argc, argv, exit_now, check_only, flag_vals, flag_set, multi, &nmulti);
    for (size_t i = 0; i < RT_ARRAY_LEN(multi); i++) free(multi[i]);
    return rc;
}

static int load_args(app_config_t *cfg, int argc, char **argv, bool *exit_now, bool *check_only,
                     const char **flag_vals, bool *flag_set, char **multi, size_t *nmultip)
{
    int rc;
    size_t nmulti = *nmultip;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            app_usage(stdout);
            *exit_now = true;
            return 0;
        }
        if (!strcmp(a, "--help-man")) {
            app_man(stdout);
            *exit_now = true;
            return 0;
        }
        if (!strcmp(a, "-v") || !strcmp(a, "--version")) {
            printf("realtimed %s\n", REALTIMED_VERSION);
            *exit_now = true;
            return 0;
        }
        if (!strcmp(a, "--check-config")) {
            *check_only = true;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            cfg_error("unexpected argument '%s' (see --help)", a);
            return EX_USAGE;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t n = eq ? (size_t)(eq - name) : strlen(name);
        const opt_t *o = find_flag(name, n);
        if (!o) {
            cfg_error("unknown option '%.*s' (see --help)", (int)n + 2, a);
            return EX_USAGE;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (!v && o->type != T_BOOL) {
            if (i + 1 >= argc) {
                cfg_error("option '%s' needs a value", a);
                return EX_USAGE;
            }
            v = argv[++i];
        }
        size_t idx = (size_t)(o - opts);
        if (flag_set[idx] && (o->flags & F_MULTI)) { /* repeated: joined by newlines */
            rt_buf_t j = {0};
            rt_buf_append_cstr(&j, flag_vals[idx]);
            rt_buf_putc(&j, '\n');
            rt_buf_append_cstr(&j, v);
            rt_buf_putc(&j, 0);
            free(multi[nmulti]);
            multi[nmulti] = j.data;
            v = j.data;
            if (nmulti < 63) nmulti++; /* multi[64] */
        }
        flag_vals[idx] = v;
        flag_set[idx] = true;
    }
    /* --config FILE (or REALTIMED_CONFIG): loaded first, applied after the bench files */
    size_t config_idx = opt_index("config");
    const char *config = flag_set[config_idx] ? flag_vals[config_idx] : getenv("REALTIMED_CONFIG");
    json_t *file = NULL;
    if (config && *config && !(file = load_config_file(config))) return EX_CONFIG;
    /* Bench root: --bench, else FRAPPE_BENCH_ROOT, else the config file's, else the working directory. */
    size_t bench_idx = opt_index("bench");
    const char *bench = flag_set[bench_idx] ? flag_vals[bench_idx] : getenv("FRAPPE_BENCH_ROOT");
    json_t *fb = file ? json_object_get(file, "bench") : NULL;
    if (!bench && json_is_string(fb)) bench = json_string_value(fb);
    bool conformance = flag_set[opt_index("conformance")];
    json_t *fc = file ? json_object_get(file, "conformance") : NULL;
    if (json_is_true(fc)) conformance = true;
    /* auth_mode jwt needs no bench: its files are not read (flags, then
     * environment, then the config file decide, as for every key) */
    size_t am = opt_index("auth_mode");
    const char *mode = flag_set[am] ? flag_vals[am] : getenv("REALTIMED_AUTH_MODE");
    json_t *fm = file ? json_object_get(file, "auth_mode") : NULL;
    if (!mode && json_is_string(fm)) mode = json_string_value(fm);
    bool standalone = mode && (!strcmp(mode, "jwt") || !strcmp(mode, "webhook"));
    if (bench) {
        struct stat st;
        if (stat(bench, &st) != 0 || !S_ISDIR(st.st_mode)) {
            cfg_error("bench directory %s does not exist", bench);
            json_decref(file);
            return EX_CONFIG;
        }
    }
    if (!conformance && !standalone) {
        const char *root = bench ? bench : ".";
        set_str(cfg, &opts[bench_idx], root);
        if ((rc = read_bench_file(cfg, cfg->bench, "config.json")) ||
            (rc = read_bench_file(cfg, cfg->bench, "sites/common_site_config.json"))) {
            json_decref(file);
            return rc;
        }
    }
    if (file) {
        char *root = cfg->bench ? rt_strndup(cfg->bench, strlen(cfg->bench)) : NULL;
        rc = apply_config_file(cfg, file, config);
        if (!rc && root) set_str(cfg, &opts[bench_idx], root); /* the bench was chosen above */
        free(root);
        json_decref(file);
        if (rc) return rc;
        set_str(cfg, &opts[config_idx], config);
    }
    for (size_t i = 0; i < RT_ARRAY_LEN(opts); i++) {
        const char *e = opts[i].env ? getenv(opts[i].env) : NULL;
        if (e && *e && opts[i].off != opts[bench_idx].off) {
            if ((rc = set_value(cfg, &opts[i], e, opts[i].env))) return rc;
            sources[i] = opts[i].env;
        }
    }
    for (size_t i = 0; i < RT_ARRAY_LEN(opts); i++) {
        if (!flag_set[i]) continue;
        if ((rc = set_value(cfg, &opts[i], flag_vals[i], "command line"))) return rc;
        sources[i] = "command line";
    }
    /* the standalone modes use Redis only when told where it is */
    cfg->redis_set = strcmp(sources[opt_index("redis_queue")], "default") != 0;
    if (cfg->conformance) {
        /* the values the official test suites assert */
        if (!flag_set[opt_index("ping_interval")]) cfg->ping_interval = 300;
        if (!flag_set[opt_index("ping_timeout")]) cfg->ping_timeout = 200;
        if (!flag_set[opt_index("connect_timeout")]) cfg->connect_timeout = 1000;
    }
    if ((rc = validate(cfg))) return rc;
    size_t pl = strlen(cfg->path);
    if (cfg->path[pl - 1] != '/') { /* socket.io's "/x" serves /x/ */
        char *p = rt_malloc(pl + 2);
        memcpy(p, cfg->path, pl);
        p[pl] = '/', p[pl + 1] = 0;
        free(cfg->path);
        cfg->path = p;
    }
    return 0;
}

/* Prints a Redis URL with its password masked, wherever it is: in the
 * credentials (up to the last '@' before the query, as the parser reads
 * them) and in a `password=` query parameter. */
static void print_masked_url(FILE *out, const char *url)
{
    const char *scheme = strstr(url, "://");
    if (!scheme) {
        fputs(url, out);
        return;
    }
    const char *cred = scheme + 3, *q = strchr(cred, '?'), *end = q ? q : cred + strlen(cred);
    const char *at = NULL;
    for (const char *p = cred; p < end; p++)
        if (*p == '@') at = p;
    fwrite(url, 1, (size_t)(cred - url), out);
    if (at) {
        const char *colon = memchr(cred, ':', (size_t)(at - cred));
        if (colon) fwrite(cred, 1, (size_t)(colon - cred), out), fputs(":****", out);
        else fputs("****", out);
        fwrite(at, 1, (size_t)(end - at), out);
    } else {
        fwrite(cred, 1, (size_t)(end - cred), out);
    }
    for (const char *p = q; p && *p;) {
        const char *amp = strchr(p + 1, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        if (n >= 10 && !strncmp(p + 1, "password=", 9)) fprintf(out, "%c%s", *p, "password=****");
        else fwrite(p, 1, n, out);
        p = amp;
    }
}

void app_config_print(const app_config_t *cfg, FILE *out)
{
    for (size_t i = 0; i < RT_ARRAY_LEN(opts); i++) {
        const opt_t *o = &opts[i];
        const char *p = (const char *)cfg + o->off;
        fprintf(out, "%-16s = ", o->key);
        switch (o->type) {
        case T_INT: fprintf(out, "%d", *(const int *)p); break;
        case T_BOOL: fprintf(out, "%s", *(const bool *)p ? "true" : "false"); break;
        case T_STR: {
            const char *s = *(char *const *)p;
            if (!s) fprintf(out, "(unset)");
            else if (o->flags & F_SECRET) print_masked_url(out, s);
            else fprintf(out, "%s", s);
        }
        }
        fprintf(out, "  (%s)\n", sources[i]);
    }
}

int app_workers_count(const app_config_t *cfg)
{
    const char *v = cfg->workers ? cfg->workers : "1";
    if (!strcmp(v, "auto")) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        return n < 1 ? 1 : n > APP_MAX_WORKERS ? APP_MAX_WORKERS : (int)n;
    }
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < 1 || n > APP_MAX_WORKERS) return -1;
    return (int)n;
}

static bool same_value(const opt_t *o, const app_config_t *a, const app_config_t *b)
{
    const char *pa = (const char *)a + o->off, *pb = (const char *)b + o->off;
    switch (o->type) {
    case T_INT: return *(const int *)pa == *(const int *)pb;
    case T_BOOL: return *(const bool *)pa == *(const bool *)pb;
    case T_STR: {
        const char *sa = *(char *const *)pa, *sb = *(char *const *)pb;
        return sa == sb || (sa && sb && !strcmp(sa, sb));
    }
    }
    return true;
}

void app_config_changes(const app_config_t *a, const app_config_t *b,
                        void (*fn)(const char *key, bool live, void *ud), void *ud)
{
    for (size_t i = 0; i < RT_ARRAY_LEN(opts); i++)
        if (!same_value(&opts[i], a, b)) fn(opts[i].key, (opts[i].flags & F_LIVE) != 0, ud);
}

void app_config_take_live(app_config_t *dst, const app_config_t *src)
{
    for (size_t i = 0; i < RT_ARRAY_LEN(opts); i++) {
        const opt_t *o = &opts[i];
        if (!(o->flags & F_LIVE) || same_value(o, dst, src)) continue;
        char *pd = (char *)dst + o->off;
        const char *ps = (const char *)src + o->off;
        switch (o->type) {
        case T_INT: *(int *)pd = *(const int *)ps; break;
        case T_BOOL: *(bool *)pd = *(const bool *)ps; break;
        case T_STR: set_str(dst, o, *(char *const *)ps); break;
        }
    }
}

int app_uds_mode(const app_config_t *cfg)
{
    return cfg->uds_mode ? (int)strtoul(cfg->uds_mode, NULL, 8) : -1;
}

void app_protocol_options(app_t *app, eio_options_t *eo, sio_options_t *so)
{
    const app_config_t *cfg = &app->cfg;
    eio_options_default(eo);
    eo->ping_interval = (unsigned)cfg->ping_interval;
    eo->ping_timeout = (unsigned)cfg->ping_timeout;
    eo->max_payload = (size_t)cfg->max_payload;
    eo->max_buffered = (size_t)cfg->out_hard_limit;
    eo->max_sessions = (size_t)cfg->max_sessions;
    eo->http_compression = cfg->http_compression ? 1024 : 0;
    eo->per_message_deflate = cfg->per_message_deflate ? 1024 : 0;
    eo->allow_eio3 = cfg->allow_eio3;
    sio_options_default(so);
    so->connect_timeout = (unsigned)cfg->connect_timeout;
    so->attachment_timeout = (unsigned)cfg->attachment_timeout;
    so->max_pending = (size_t)cfg->max_pending;
    so->recovery_window = (unsigned)cfg->recovery_window;
    so->recovery_slack = eo->ping_interval + eo->ping_timeout;
    so->recovery_max_bytes = (size_t)cfg->recovery_max_bytes;
    /* sids name their owner: this machine (node_id), then the worker */
    snprintf(eo->sid_prefix, sizeof eo->sid_prefix, "%s", cfg->node_id ? cfg->node_id : "");
    if (app->worker >= 0 && app->nworkers > 1) {
        /* the limits are the server's: each worker has its share */
        size_t n = (size_t)app->nworkers;
        if (eo->max_sessions) eo->max_sessions = (eo->max_sessions + n - 1) / n;
        if (so->max_pending) so->max_pending = (so->max_pending + n - 1) / n;
        size_t l = strlen(eo->sid_prefix);
        eo->sid_prefix[l] = app_worker_tag(app->worker);
        eo->sid_prefix[l + 1] = 0;
        eo->foreign_sid = app_worker_foreign_sid;
        eo->foreign_ud = app;
    }
}

void app_config_free(app_config_t *cfg)
{
    for (size_t i = 0; i < RT_ARRAY_LEN(opts); i++)
        if (opts[i].type == T_STR) set_str(cfg, &opts[i], NULL);
}
