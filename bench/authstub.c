/* authstub: a minimal, fast stand-in for the Frappe web server during
 * benchmarks. Both servers call it once per connecting client:
 *
 *   GET /api/method/frappe.realtime.get_user_info   (Cookie: sid=<sid>)
 *     -> 200 {"message":{"user":"<sid>@bench","user_type":"System User",
 *                        "installed_apps":["frappe"]}}
 *        401 without a sid cookie
 *   GET /api/method/frappe.realtime.has_permission  -> 200 {"message":true}
 *
 * Same answers as tests/fake_frappe/fake_frappe.py for a user whose sid is
 * listed (and "allow_all"), but single-threaded C on epoll with keep-alive,
 * so that the backend is never what limits the connect rate: the Python fake
 * answers ~1-2k requests/s and would make both servers look the same.
 *
 * Usage: authstub --port N [--apps a,b]   (0 picks a free port; --apps
 *        lists installed_apps after "frappe" (app-handler benchmarks); prints
 *        "authstub listening on <port>"; SIGTERM prints the request count). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    int fd;
    size_t len, cap;
    char *buf;
} conn_t;

static volatile sig_atomic_t stop;
static char apps_json[512] = "[\"frappe\"]";
static unsigned long requests, user_info, perms;

static void on_term(int sig) { (void)sig, stop = 1; }

/* Value of header `name` (case-insensitive) in the head [p, end), or NULL. */
static const char *header(const char *p, const char *end, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    const char *line = memchr(p, '\n', (size_t)(end - p));
    while (line && line + 1 < end) {
        line++;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol) break;
        if ((size_t)(eol - line) > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0) {
            const char *v = line + nl + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ')) ve--;
            *len = (size_t)(ve - v);
            return v;
        }
        line = eol;
    }
    return NULL;
}

static void respond(conn_t *c, int status, const char *body, size_t blen)
{
    char out[1024];
    const char *reason = status == 200 ? "OK" : status == 401 ? "Unauthorized" : "Not Found";
    int n = snprintf(out, sizeof out,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: keep-alive\r\n\r\n%.*s",
                     status, reason, blen, (int)blen, body);
    /* Answers are small: a full socket buffer here means a stuck peer. */
    if (write(c->fd, out, (size_t)n) != n) shutdown(c->fd, SHUT_RDWR);
}

/* Handles every complete request in c->buf; returns bytes consumed. */
static size_t handle(conn_t *c)
{
    size_t off = 0;
    for (;;) {
        char *p = c->buf + off, *end = c->buf + c->len;
        char *hend = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
        if (!hend) return off;
        hend += 4;
        requests++;
        size_t cl = 0, vl;
        const char *v = header(p, hend, "content-length", &vl);
        if (v) cl = strtoul(v, NULL, 10);
        if ((size_t)(end - hend) < cl) return off;
        const char *sp = memchr(p, ' ', (size_t)(hend - p));
        const char *path = sp ? sp + 1 : p;
        char body[1024];
        if (!strncmp(path, "/api/method/frappe.realtime.get_user_info", 41)) {
            user_info++;
            const char *ck = header(p, hend, "cookie", &vl);
            const char *sid = NULL;
            size_t sl = 0;
            for (const char *q = ck; q && q + 4 <= ck + vl; q++) {
                if ((q == ck || q[-1] == ' ' || q[-1] == ';') && !strncmp(q, "sid=", 4)) {
                    sid = q + 4;
                    const char *e = sid;
                    while (e < ck + vl && *e != ';') e++;
                    sl = (size_t)(e - sid);
                    break;
                }
            }
            if (!sid || !sl || sl > 200 || memchr(sid, '"', sl) || memchr(sid, '\\', sl)) {
                static const char u[] = "{\"exc_type\":\"AuthenticationError\"}";
                respond(c, 401, u, sizeof u - 1);
            } else {
                int n = snprintf(body, sizeof body,
                                 "{\"message\":{\"user\":\"%.*s@bench\",\"user_type\":\"System User\","
                                 "\"installed_apps\":%s}}",
                                 (int)sl, sid, apps_json);
                respond(c, 200, body, (size_t)n);
            }
        } else if (!strncmp(path, "/api/method/frappe.realtime.has_permission", 42)) {
            perms++;
            static const char t[] = "{\"message\":true}";
            respond(c, 200, t, sizeof t - 1);
        } else {
            static const char nf[] = "{\"exc_type\":\"DoesNotExistError\"}";
            respond(c, 404, nf, sizeof nf - 1);
        }
        off = (size_t)(hend - c->buf) + cl;
    }
}

int main(int argc, char **argv)
{
    int port = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc) port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--apps") && i + 1 < argc) {
            /* "a,b" -> ["frappe","a","b"] (names without quotes or backslashes) */
            size_t n = (size_t)snprintf(apps_json, sizeof apps_json, "[\"frappe\"");
            for (char *tok = strtok(argv[++i], ","); tok && n + strlen(tok) + 8 < sizeof apps_json;
                 tok = strtok(NULL, ","))
                if (!strpbrk(tok, "\"\\")) n += (size_t)snprintf(apps_json + n, sizeof apps_json - n, ",\"%s\"", tok);
            snprintf(apps_json + n, sizeof apps_json - n, "]");
        } else {
            fprintf(stderr, "usage: authstub --port N [--apps a,b]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, 4096)) {
        perror("authstub: bind/listen");
        return 1;
    }
    socklen_t al = sizeof a;
    getsockname(lfd, (struct sockaddr *)&a, &al);
    printf("authstub listening on %d\n", ntohs(a.sin_port));
    fflush(stdout);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event evs[256];
    while (!stop) {
        int n = epoll_wait(ep, evs, 256, 500);
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    c = calloc(1, sizeof *c);
                    c->fd = fd;
                    struct epoll_event ce = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ce);
                }
                continue;
            }
            if (c->cap - c->len < 4096) {
                c->cap = c->cap ? c->cap * 2 : 8192;
                c->buf = realloc(c->buf, c->cap);
            }
            ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len);
            if (r <= 0) {
                if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
                close(c->fd);
                free(c->buf);
                free(c);
                continue;
            }
            c->len += (size_t)r;
            size_t used = handle(c);
            memmove(c->buf, c->buf + used, c->len - used);
            c->len -= used;
            if (c->len > (1u << 20)) c->len = 0; /* garbage: drop it */
        }
    }
    fprintf(stderr, "authstub: %lu requests (%lu get_user_info, %lu has_permission)\n", requests, user_info,
            perms);
    return 0;
}
