/* What --check-config verifies beyond the values: that the server could
 * start (a bench, a listen address, a socket path's folder), and with
 * --probe that what it talks to answers: Redis (AUTH, SELECT, the socket
 * secret) and each site's web server (get_user_info). Blocking code: it
 * runs before any loop, once. Also the Redis connection of `realtimed
 * publish`. */
#include "app_frappe.h"

#include <sysexits.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

redisContext *app_redis_open(const broker_url_t *u, bool select_db, char *err, size_t errlen)
{
    struct timeval tv = {2, 0};
    redisContext *c = u->path ? redisConnectUnixWithTimeout(u->path, tv) : redisConnectWithTimeout(u->host, u->port, tv);
    if (!c || c->err) {
        snprintf(err, errlen, "cannot reach Redis at %s: %s", u->path ? u->path : u->host, c ? c->errstr : "out of memory");
        if (c) redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    redisReply *rep = NULL;
    if (u->password) {
        rep = u->user ? redisCommand(c, "AUTH %s %s", u->user, u->password) : redisCommand(c, "AUTH %s", u->password);
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "Redis AUTH failed: %s", rep ? rep->str : c->errstr);
            goto fail;
        }
        freeReplyObject(rep);
    }
    if (select_db && u->db) {
        rep = redisCommand(c, "SELECT %d", u->db);
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "Redis SELECT %d failed: %s", u->db, rep ? rep->str : c->errstr);
            goto fail;
        }
        freeReplyObject(rep);
    }
    return c;
fail:
    if (rep) freeReplyObject(rep);
    redisFree(c);
    return NULL;
}

/* ---- what the server needs to start ---- */
int app_bench_check(const app_config_t *cfg)
{
    char sites[4096];
    struct stat st;
    snprintf(sites, sizeof sites, "%s/sites", cfg->bench);
    if (stat(sites, &st) != 0 || !S_ISDIR(st.st_mode)) {
        char real[4096];
        fprintf(stderr, "realtimed: %s is not a Frappe bench (no sites/ folder): start realtimed in the bench root or "
                        "pass --bench DIR\n", realpath(cfg->bench, real) ? real : cfg->bench);
        return EX_CONFIG;
    }
    return 0;
}

static int check_startable(const app_config_t *cfg)
{
    int rc;
    if (!cfg->conformance && !strcmp(cfg->auth_mode, "frappe") && (rc = app_bench_check(cfg))) return rc;
    if (cfg->socketio_uds) {
        char copy[4096];
        snprintf(copy, sizeof copy, "%s", cfg->socketio_uds);
        const char *dir = dirname(copy);
        if (access(dir, W_OK | X_OK) != 0) {
            fprintf(stderr, "realtimed: invalid value for socketio_uds: cannot create a socket in %s: %s\n", dir,
                    strerror(errno));
            return EX_CONFIG;
        }
    } else if (cfg->listen_host && *cfg->listen_host) {
        struct sockaddr_storage ss;
        socklen_t len;
        bool dual;
        if (net_parse_host(cfg->listen_host, &ss, &len, &dual) < 0) {
            fprintf(stderr, "realtimed: invalid value '%s' for listen_host: expected an IPv4 or IPv6 address\n",
                    cfg->listen_host);
            return EX_CONFIG;
        }
    }
    return 0;
}

/* ---- --probe ---- */
static int probe_redis(const app_config_t *cfg)
{
    broker_url_t u;
    char err[512];
    if (broker_url_parse(cfg->redis_queue, &u, err, sizeof err) < 0) return EX_CONFIG; /* reported before */
    int rc = 0;
    redisContext *c = app_redis_open(&u, true, err, sizeof err);
    if (!c) {
        printf("probe: redis_queue: %s\n", err);
        rc = EX_UNAVAILABLE;
    } else {
        redisReply *rep = redisCommand(c, "GET socketio_auth_secret");
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            printf("probe: redis_queue: GET socketio_auth_secret failed: %s\n", rep ? rep->str : c->errstr);
            rc = EX_UNAVAILABLE;
        } else {
            printf("probe: redis_queue: reachable (db %d); socketio_auth_secret %s\n", u.db,
                   rep->type == REDIS_REPLY_STRING ? "is set"
                                                   : "is not set yet (the web server creates it on its first call)");
        }
        if (rep) freeReplyObject(rep);
        redisFree(c);
    }
    broker_url_free(&u);
    return rc;
}

/* One HTTP/1.1 GET with Connection: close; the status code, or -1 (msg in err). */
static int http_status(const char *host, int port, const char *site, const char *path, char *err, size_t errlen)
{
    char ports[16];
    snprintf(ports, sizeof ports, "%d", port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    int g = getaddrinfo(host, ports, &hints, &ai);
    if (g) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(g));
        return -1;
    }
    int fd = -1, status = -1;
    for (struct addrinfo *p = ai; p && fd < 0; p = p->ai_next) {
        fd = socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC, p->ai_protocol);
        struct timeval tv = {5, 0}; /* a blocking connect honours the send timeout */
        if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (fd >= 0 && connect(fd, p->ai_addr, p->ai_addrlen) < 0) {
            snprintf(err, errlen, "cannot connect to %s:%d: %s", host, port, strerror(errno));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0) return -1;
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nX-Frappe-Site-Name: %s\r\nUser-Agent: realtimed --probe\r\n"
                     "Connection: close\r\n\r\n", path, site, site);
    if (write(fd, req, (size_t)n) != n) {
        snprintf(err, errlen, "cannot write to %s:%d: %s", host, port, strerror(errno));
        close(fd);
        return -1;
    }
    char buf[256];
    size_t got = 0;
    uint64_t deadline = rt_now_ms() + 5000; /* for the whole status line: a trickle does not extend it */
    while (got < sizeof buf - 1) {
        uint64_t now = rt_now_ms();
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (now >= deadline || poll(&pf, 1, (int)(deadline - now)) <= 0) break;
        ssize_t r = read(fd, buf + got, sizeof buf - 1 - got);
        if (r <= 0) break;
        got += (size_t)r;
        if (memchr(buf, '\n', got)) break;
    }
    buf[got] = 0;
    close(fd);
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) {
        snprintf(err, errlen, got ? "%s:%d answered something that is not HTTP" : "%s:%d did not answer within 5 s",
                 host, port);
        return -1;
    }
    return status;
}

static int probe_webserver(const app_config_t *cfg)
{
    char host[256] = "127.0.0.1";
    int port = cfg->webserver_port;
    if (cfg->webserver_host && *cfg->webserver_host) {
        const char *h = cfg->webserver_host;
        if (!strncmp(h, "https://", 8)) {
            printf("probe: webserver_host %s: https is not probed\n", h);
            return 0;
        }
        if (!strncmp(h, "http://", 7)) h += 7;
        snprintf(host, sizeof host, "%s", h);
        host[strcspn(host, "/")] = 0;
        char *colon = strrchr(host, ':');
        if (colon && !strchr(colon, ']')) {
            port = atoi(colon + 1);
            *colon = 0;
        }
    }
    char sites[4096];
    snprintf(sites, sizeof sites, "%s/sites", cfg->bench);
    DIR *d = opendir(sites);
    if (!d) return 0;
    int rc = 0, n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        char conf[4400];
        snprintf(conf, sizeof conf, "%s/%s/site_config.json", sites, e->d_name);
        if (e->d_name[0] == '.' || access(conf, R_OK) != 0) continue;
        if (strspn(e->d_name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") != strlen(e->d_name)) {
            printf("probe: site folder with unusual characters not probed (not a host name)\n");
            continue;
        }
        if (n == 50) {
            printf("probe: more than 50 sites: the others are not probed\n");
            break;
        }
        n++;
        char err[512];
        int st = http_status(host, port, e->d_name, "/api/method/frappe.realtime.get_user_info", err, sizeof err);
        if (st < 0) {
            printf("probe: site %s: web server: %s\n", e->d_name, err);
            rc = EX_UNAVAILABLE;
        } else {
            /* Without credentials 200 (Guest) or 401/403 both prove a Frappe answer; 404 means another app */
            printf("probe: site %s: web server %s:%d answers get_user_info with HTTP %d%s\n", e->d_name, host, port,
                   st, st == 404 ? " (not Frappe's realtime API?)" : "");
            if (st == 404 || st >= 500) rc = EX_UNAVAILABLE;
        }
    }
    closedir(d);
    if (!n) printf("probe: no site folder with a site_config.json in %s\n", sites);
    return rc;
}

int app_check_config(const app_config_t *cfg)
{
    int rc = check_startable(cfg);
    if (rc || cfg->conformance || app_standalone(cfg)) return rc; /* standalone: validated with the options */
    if ((rc = frappe_check_config(cfg))) return rc;
    if (!cfg->probe || strcmp(cfg->auth_mode, "frappe")) return 0;
    int r1 = probe_redis(cfg), r2 = probe_webserver(cfg);
    return r1 ? r1 : r2;
}
