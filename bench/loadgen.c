/* loadgen: Socket.IO v4 load generator for the realtimed / Node benchmarks.
 *
 *   loadgen ws    [opts]   idle memory at 1k/10k WebSocket clients, paced
 *                          publish->receive latency (rooms of 1, 1k, 10k),
 *                          closed-loop fan-out (1k, 10k) and bursts
 *   loadgen storm [opts]   connect rate to N clients from zero (distinct sid
 *                          per client, then one shared sid)
 *   loadgen poll  [opts]   N HTTP long-polling clients: latency and fan-out
 *
 * One controller process forks --procs workers. Worker w owns the clients
 * whose global index g satisfies g % procs == w and binds them to source
 * address 127.0.0.<src+w> (IP_BIND_ADDRESS_NO_PORT), so each process stays
 * far below its 20 000-file limit and no source address runs out of ports.
 * Each worker is a single epoll loop over raw non-blocking sockets: it does
 * the WebSocket upgrade (or polling handshake) with the Frappe auth headers
 * (Cookie: sid=..., Origin, X-Frappe-Site-Name), sends `40/<site>,`, joins
 * rooms with `42/<site>,["task_subscribe",id]` events, confirms the joins
 * with a `ping` event (the server answers `pong` after processing them in
 * order), answers Engine.IO pings, and records every "bench" event.
 *
 * The controller publishes on Redis `events` with hiredis. Every message
 * carries the CLOCK_MONOTONIC time of the PUBLISH in ns ("t") and a group id
 * ("g"); a receiver adds (now - t) to its latency histogram (log-linear,
 * < 0.2 % error, in shared memory) and counts the delivery for its group.
 * The worker that completes a group's expected count writes one byte to a
 * pipe, which is how closed-loop phases know a broadcast has fully arrived.
 *
 * CPU is read from /proc/<pid>/task/<tid>/schedstat (ns on CPU, user+sys,
 * every thread), memory from /proc/<pid>/status VmRSS. The result is one
 * JSON object on stdout; progress goes to stderr. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define MAXW 16
#define GRING 8192
#define NB (1024 + 40 * 512) /* histogram buckets */

/* ------------------------------------------------------------------ config */
static struct {
    const char *mode;
    const char *host;
    int port;
    const char *site;
    const char *auth;  /* --auth-json: the CONNECT payload (standalone tokens), or NULL */
    int redis_port;
    int server_pid;
    bool server_tree; /* --server-tree: count the pid's descendants too */
    bool idle_only;   /* --idle-only: ws session without the latency and fan-out phases */
    int procs;
    int src; /* last octet of the first source address */
    int clients;
    int window;    /* connections in flight, all workers together */
    double scale;  /* multiplies phase durations (quick smoke runs: 0.3) */
    int batch_us;  /* generator nap in throughput phases */
    const char *aux_pids; /* "name:pid,name:pid" reported for CPU */
    const char *pad;      /* message padding */
} cfg = {.host = "127.0.0.1", .site = "bench.local", .redis_port = 6379, .procs = 3, .src = 2,
         .clients = 10000, .window = 256, .scale = 1.0, .batch_us = 200};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(double ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)((ms - (double)(long)(ms / 1000) * 1000) * 1e6)};
    while (nanosleep(&ts, &ts) && errno == EINTR) {}
}

/* ------------------------------------------------------------ histograms */
static inline uint32_t bucket(uint64_t us)
{
    if (us < 1024) return (uint32_t)us;
    int e = 63 - __builtin_clzll(us); /* >= 10 */
    int shift = e - 9;
    uint32_t idx = 1024u + (uint32_t)(e - 10) * 512u + (uint32_t)((us >> shift) - 512);
    return idx < NB ? idx : NB - 1;
}
static double bucket_value(uint32_t i) /* lower bound, µs */
{
    if (i < 1024) return i;
    uint32_t e = (i - 1024) / 512 + 10, sub = (i - 1024) % 512;
    return (double)((512ull + sub) << (e - 9));
}

/* ------------------------------------------------------------ shared state */
typedef struct {
    _Atomic uint64_t connected, failed, ready, closed_after_ready, delivered, pings;
    _Atomic uint64_t ready_r1k, ready_r10k;
    _Atomic uint64_t acks;
    _Atomic uint64_t first_start_ns, last_conn_ns, last_ready_ns;
    _Atomic uint64_t rejects;
    char reject_msg[200];
    _Atomic uint32_t lat[NB];  /* publish -> receive, µs */
    _Atomic uint32_t conn[NB]; /* socket() -> namespace CONNECT reply, µs */
} wstat_t;

typedef struct {
    _Atomic uint32_t gcnt[GRING];
    _Atomic uint32_t gexp[GRING];
    _Atomic uint32_t gmax[GRING]; /* latest delivery of each group, µs after publish */
    wstat_t w[MAXW];
} shm_t;

static shm_t *shm;
static int notify_w = -1, notify_r = -1;

/* --------------------------------------------------------------- commands */
enum { OP_CONNECT = 1, OP_CLOSE, OP_EXIT, OP_BATCH };
enum { T_WS = 0, T_POLL = 1 };
typedef struct {
    int op;
    int target;     /* OP_CONNECT: hold every owned client with g < target */
    int transport;  /* T_WS / T_POLL */
    int joins;      /* join r1k/r10k rooms and confirm with ping/pong */
    int shared_sid; /* one sid for everybody (auth calls can be coalesced) */
    int batch_us;   /* OP_BATCH: nap this long after a small epoll batch (0 = off) */
} cmd_t;

/* ================================================================ worker */
enum { K_MAIN = 0, K_POST = 1 };
typedef struct client client_t;
typedef struct {
    int fd;
    uint8_t kind;
    bool connecting; /* waiting for the TCP connect to finish */
    bool busy;       /* polling: a request is in flight on this connection */
    client_t *c;
    char *rbuf; /* leftover partial input */
    uint32_t rlen, rcap;
    char *wbuf; /* output the socket did not take */
    uint32_t wlen, wcap;
} conn_t;

enum { S_FREE = 0, S_CONNECTING, S_HTTP, S_EIO, S_NSP, S_JOINING, S_READY, S_DEAD };
struct client {
    conn_t a;  /* WebSocket, or polling GET connection */
    conn_t *b; /* polling POST connection */
    uint32_t g;
    uint8_t state;
    uint8_t transport;
    bool joins;
    char *psid;      /* polling Engine.IO sid */
    char *ppend;     /* polling: packets waiting for the POST connection */
    uint32_t pplen, ppcap;
    uint64_t t_start;
};

static struct {
    int id;
    int ep;
    int cmd_fd;
    wstat_t *st;
    client_t *cl;
    int ncl;          /* clients owned (slots) */
    int next;         /* next slot to start */
    int limit;        /* slots below this must be connected for the current op */
    int inflight;
    int win;
    bool op_active;
    bool debug;
    int batch_us;
    cmd_t op;
    char nsp_prefix[128]; /* "/<site>," */
    size_t nsp_len;
    struct sockaddr_in src, dst;
    char rbuf[1 << 16];
    uint64_t now;
} W;

static void conn_close(conn_t *k)
{
    if (k->fd >= 0) {
        epoll_ctl(W.ep, EPOLL_CTL_DEL, k->fd, NULL);
        close(k->fd);
    }
    k->fd = -1;
    free(k->rbuf);
    free(k->wbuf);
    k->rbuf = k->wbuf = NULL;
    k->rlen = k->rcap = k->wlen = k->wcap = 0;
    k->busy = k->connecting = false;
}

static bool in_setup(const client_t *c) { return c->state > S_FREE && c->state < S_READY; }

static void client_kill(client_t *c, bool failed)
{
    if (c->state == S_DEAD || c->state == S_FREE) return;
    if (in_setup(c)) {
        W.inflight--;
        if (failed) atomic_fetch_add(&W.st->failed, 1);
    } else if (c->state == S_READY) {
        atomic_fetch_add(&W.st->closed_after_ready, 1);
    }
    conn_close(&c->a);
    if (c->b) conn_close(c->b); /* kept: an event for it may still be in this epoll batch */
    free(c->psid);
    free(c->ppend);
    c->psid = c->ppend = NULL;
    c->pplen = c->ppcap = 0;
    c->state = S_DEAD;
}

static void reject(client_t *c, const char *why, const char *p, size_t n)
{
    if (atomic_fetch_add(&W.st->rejects, 1) == 0)
        snprintf(W.st->reject_msg, sizeof W.st->reject_msg, "%s: %.*s", why, (int)(n > 150 ? 150 : n), p);
    client_kill(c, true);
}

static void append(char **buf, uint32_t *len, uint32_t *cap, const void *p, size_t n)
{
    if (*len + n > *cap) {
        uint32_t nc = *cap ? *cap : 256;
        while (nc < *len + n) nc *= 2;
        *buf = realloc(*buf, nc);
        *cap = nc;
    }
    memcpy(*buf + *len, p, n);
    *len += (uint32_t)n;
}

static void set_events(conn_t *k, uint32_t ev)
{
    struct epoll_event e = {.events = ev, .data.ptr = k};
    epoll_ctl(W.ep, EPOLL_CTL_MOD, k->fd, &e);
}

/* Writes now if possible; the rest waits for EPOLLOUT. */
static void conn_write(conn_t *k, const char *p, size_t n)
{
    if (k->fd < 0) return;
    if (!k->wlen && !k->connecting) {
        ssize_t w = send(k->fd, p, n, MSG_NOSIGNAL);
        if (w == (ssize_t)n) return;
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                client_kill(k->c, true);
                return;
            }
            w = 0;
        }
        p += w;
        n -= (size_t)w;
    }
    bool arm = !k->wlen;
    append(&k->wbuf, &k->wlen, &k->wcap, p, n);
    if (arm && !k->connecting) set_events(k, EPOLLIN | EPOLLOUT);
}

static int open_socket(conn_t *k)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&W.src, sizeof W.src) < 0 ||
        (connect(fd, (struct sockaddr *)&W.dst, sizeof W.dst) < 0 && errno != EINPROGRESS)) {
        close(fd);
        return -1;
    }
    k->fd = fd;
    k->connecting = true;
    struct epoll_event e = {.events = EPOLLOUT, .data.ptr = k};
    epoll_ctl(W.ep, EPOLL_CTL_ADD, fd, &e);
    return 0;
}

static int common_headers(char *out, size_t cap, const client_t *c)
{
    char sid[32];
    if (W.op.shared_sid) snprintf(sid, sizeof sid, "bshared");
    else snprintf(sid, sizeof sid, "bs%u", c->g);
    return snprintf(out, cap,
                    "Host: %s:%d\r\nCookie: sid=%s\r\nOrigin: http://%s:%d\r\nX-Frappe-Site-Name: %s\r\n"
                    "User-Agent: realtimed-loadgen\r\n",
                    cfg.host, cfg.port, sid, cfg.host, cfg.port, cfg.site);
}

/* --- sending Socket.IO packets --- */
static void ws_send_text(client_t *c, const char *p, size_t n)
{
    char f[1024];
    size_t h;
    f[0] = (char)0x81;
    if (n < 126) {
        f[1] = (char)(0x80 | n);
        h = 2;
    } else {
        f[1] = (char)(0x80 | 126);
        f[2] = (char)(n >> 8);
        f[3] = (char)n;
        h = 4;
    }
    memset(f + h, 0, 4); /* all-zero masking key: payload goes out as is */
    h += 4;
    if (h + n > sizeof f) return;
    memcpy(f + h, p, n);
    conn_write(&c->a, f, h + n);
}

static int open_socket(conn_t *k);

static void poll_flush_posts(client_t *c)
{
    conn_t *b = c->b;
    if (!b || b->connecting || b->busy || !c->pplen) return;
    if (b->fd < 0) {
        /* the server closed the idle keep-alive POST connection (Node:
         * 5 s): reconnect, as a browser would; flushed once connected */
        if (open_socket(b) < 0) client_kill(c, in_setup(c));
        return;
    }
    char req[2048];
    int n = snprintf(req, sizeof req, "POST /socket.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\n", c->psid);
    n += common_headers(req + n, sizeof req - (size_t)n, c);
    n += snprintf(req + n, sizeof req - (size_t)n,
                  "Content-Type: text/plain;charset=UTF-8\r\nContent-Length: %u\r\n\r\n", c->pplen);
    if ((size_t)n + c->pplen > sizeof req) return;
    memcpy(req + n, c->ppend, c->pplen);
    n += (int)c->pplen;
    c->pplen = 0;
    b->busy = true;
    conn_write(b, req, (size_t)n);
}

static void send_packet(client_t *c, const char *p, size_t n)
{
    if (c->transport == T_WS) {
        ws_send_text(c, p, n);
        return;
    }
    if (c->pplen) append(&c->ppend, &c->pplen, &c->ppcap, "\x1e", 1);
    append(&c->ppend, &c->pplen, &c->ppcap, p, n);
    poll_flush_posts(c);
}

static void send_sio(client_t *c, const char *fmt, const char *arg)
{
    char p[4096]; /* an RS256 token is ~500 bytes */
    int n = snprintf(p, sizeof p, "4%s%.*s", fmt, (int)W.nsp_len, W.nsp_prefix);
    if (arg) n += snprintf(p + n, sizeof p - (size_t)n, "%s", arg);
    send_packet(c, p, (size_t)n);
}

static void poll_get(client_t *c)
{
    char req[1024];
    int n;
    if (c->psid) n = snprintf(req, sizeof req, "GET /socket.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\n", c->psid);
    else n = snprintf(req, sizeof req, "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\n");
    n += common_headers(req + n, sizeof req - (size_t)n, c);
    n += snprintf(req + n, sizeof req - (size_t)n, "\r\n");
    c->a.busy = true;
    conn_write(&c->a, req, (size_t)n);
}

/* --- receiving --- */
static void mark_ready(client_t *c)
{
    c->state = S_READY;
    W.inflight--;
    atomic_fetch_add(&W.st->ready, 1);
    if (c->joins) {
        atomic_fetch_add(&W.st->ready_r10k, 1);
        if (c->g < 1000) atomic_fetch_add(&W.st->ready_r1k, 1);
    }
    atomic_store(&W.st->last_ready_ns, W.now);
}

static uint64_t parse_u64_after(const char *p, size_t n, const char *key)
{
    size_t kl = strlen(key);
    const char *k = memmem(p, n, key, kl);
    if (!k) return UINT64_MAX;
    const char *d = k + kl, *end = p + n;
    uint64_t v = 0;
    if (d >= end || !isdigit((unsigned char)*d)) return UINT64_MAX;
    while (d < end && isdigit((unsigned char)*d)) v = v * 10 + (uint64_t)(*d++ - '0');
    return v;
}

static void on_bench_event(const char *p, size_t n)
{
    uint64_t t = parse_u64_after(p, n, "\"t\":"), g = parse_u64_after(p, n, "\"g\":");
    if (t == UINT64_MAX) return;
    uint64_t lat = W.now > t ? (W.now - t) / 1000 : 0;
    atomic_fetch_add_explicit(&W.st->lat[bucket(lat)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&W.st->delivered, 1, memory_order_relaxed);
    if (g != UINT64_MAX) {
        uint32_t i = (uint32_t)(g % GRING);
        uint32_t cur = atomic_load_explicit(&shm->gmax[i], memory_order_relaxed), l32 = (uint32_t)lat;
        while (l32 > cur && !atomic_compare_exchange_weak(&shm->gmax[i], &cur, l32)) {}
        uint32_t cnt = atomic_fetch_add(&shm->gcnt[i], 1) + 1;
        if (cnt == atomic_load(&shm->gexp[i])) {
            char x = 1;
            if (write(notify_w, &x, 1) < 0) {}
        }
    }
}

/* One Engine.IO packet (text). */
static void on_packet(client_t *c, const char *p, size_t n)
{
    if (!n) return;
    switch (p[0]) {
    case '0': /* open (WebSocket) */
        if (c->state == S_EIO) {
            c->state = S_NSP;
            send_sio(c, "0", cfg.auth);
        }
        return;
    case '2': /* ping */
        atomic_fetch_add_explicit(&W.st->pings, 1, memory_order_relaxed);
        send_packet(c, "3", 1);
        return;
    case '1': client_kill(c, in_setup(c)); return;
    case '4': break;
    default: return;
    }
    if (n < 2) return;
    const char *q = p + 2, *end = p + n;
    /* skip "/<site>," */
    if (q < end && *q == '/') {
        const char *comma = memchr(q, ',', (size_t)(end - q));
        q = comma ? comma + 1 : end;
    }
    switch (p[1]) {
    case '0':
        if (c->state == S_NSP) {
            uint64_t us = (W.now - c->t_start) / 1000;
            atomic_fetch_add_explicit(&W.st->conn[bucket(us)], 1, memory_order_relaxed);
            atomic_fetch_add(&W.st->connected, 1);
            atomic_store(&W.st->last_conn_ns, W.now);
            if (!c->joins) {
                mark_ready(c);
                return;
            }
            c->state = S_JOINING;
            send_sio(c, "2", "[\"task_subscribe\",\"r10k\"]");
            if (c->g < 1000) send_sio(c, "2", "[\"task_subscribe\",\"r1k\"]");
            send_sio(c, "2", "[\"ping\"]");
        }
        return;
    case '4': reject(c, "connect_error", p, n); return;
    case '1': client_kill(c, in_setup(c)); return;
    case '2':
        if ((size_t)(end - q) > 9 && !memcmp(q, "[\"bench\",", 9)) on_bench_event(q, (size_t)(end - q));
        else if (c->state == S_JOINING && (size_t)(end - q) >= 8 && !memcmp(q, "[\"pong\"", 7)) mark_ready(c);
        return;
    default: return;
    }
}

/* WebSocket frames in p[0..n); returns bytes consumed. */
static size_t ws_frames(client_t *c, char *p, size_t n)
{
    size_t off = 0;
    while (n - off >= 2) {
        const uint8_t *h = (const uint8_t *)p + off;
        uint8_t op = h[0] & 0x0f;
        uint64_t len = h[1] & 0x7f;
        size_t hl = 2;
        if (len == 126) {
            if (n - off < 4) break;
            len = ((uint64_t)h[2] << 8) | h[3];
            hl = 4;
        } else if (len == 127) {
            if (n - off < 10) break;
            len = 0;
            for (int i = 0; i < 8; i++) len = (len << 8) | h[2 + i];
            hl = 10;
        }
        if (h[1] & 0x80) hl += 4; /* servers do not mask; tolerate it anyway */
        if (n - off < hl + len) break;
        const char *pl = p + off + hl;
        off += hl + (size_t)len;
        if (op == 0x1) on_packet(c, pl, (size_t)len);
        else if (op == 0x8) {
            client_kill(c, in_setup(c));
            return off;
        } else if (op == 0x9) {
            char f[6] = {(char)0x8a, (char)0x80, 0, 0, 0, 0}; /* empty pong */
            conn_write(&c->a, f, sizeof f);
        }
        if (c->state == S_DEAD) return off;
    }
    return off;
}

/* HTTP response head: status and Content-Length. Returns head length or 0. */
static size_t http_head(const char *p, size_t n, int *status, long *clen)
{
    const char *e = memmem(p, n, "\r\n\r\n", 4);
    if (!e) return 0;
    *status = n > 12 ? atoi(p + 9) : 0;
    *clen = -1;
    for (const char *l = memchr(p, '\n', (size_t)(e - p)); l && l < e; l = memchr(l + 1, '\n', (size_t)(e - l - 1))) {
        if ((size_t)(e - l) > 16 && !strncasecmp(l + 1, "content-length:", 15)) {
            *clen = strtol(l + 16, NULL, 10);
            break;
        }
    }
    return (size_t)(e - p) + 4;
}

static void poll_on_get_body(client_t *c, const char *p, size_t n)
{
    if (!c->psid) {
        /* handshake: 0{"sid":"...",...} */
        const char *s = memmem(p, n, "\"sid\":\"", 7);
        if (!s || p[0] != '0') {
            reject(c, "polling handshake", p, n);
            return;
        }
        s += 7;
        const char *e = memchr(s, '"', (size_t)(p + n - s));
        if (!e) {
            reject(c, "polling handshake", p, n);
            return;
        }
        c->psid = strndup(s, (size_t)(e - s));
        c->state = S_NSP;
        if (!c->b) c->b = calloc(1, sizeof *c->b);
        memset(c->b, 0, sizeof *c->b);
        c->b->fd = -1;
        c->b->kind = K_POST;
        c->b->c = c;
        if (open_socket(c->b) < 0) {
            client_kill(c, true);
            return;
        }
        send_sio(c, "0", cfg.auth); /* queued until the POST connection is up */
        poll_get(c);
        return;
    }
    const char *q = p, *end = p + n;
    while (q < end && c->state != S_DEAD) {
        const char *sep = memchr(q, 0x1e, (size_t)(end - q));
        const char *pe = sep ? sep : end;
        on_packet(c, q, (size_t)(pe - q));
        q = pe + 1;
    }
    if (c->state != S_DEAD) poll_get(c);
}

/* Parses complete HTTP responses in p[0..n); returns bytes consumed. */
static size_t http_responses(conn_t *k, char *p, size_t n)
{
    client_t *c = k->c;
    size_t off = 0;
    while (off < n) {
        int status;
        long clen;
        size_t hl = http_head(p + off, n - off, &status, &clen);
        if (!hl) break;
        if (clen < 0) clen = 0;
        if (n - off < hl + (size_t)clen) break;
        const char *body = p + off + hl;
        off += hl + (size_t)clen;
        k->busy = false;
        if (status != 200) {
            reject(c, "HTTP status", p, hl + (size_t)clen);
            return off;
        }
        if (k->kind == K_MAIN) poll_on_get_body(c, body, (size_t)clen);
        else poll_flush_posts(c);
        if (c->state == S_DEAD) return off;
    }
    return off;
}

/* WebSocket: 101 head, then frames. */
static size_t ws_input(client_t *c, char *p, size_t n)
{
    size_t off = 0;
    if (c->state == S_HTTP) {
        int status;
        long clen;
        size_t hl = http_head(p, n, &status, &clen);
        if (!hl) return 0;
        if (status != 101) {
            reject(c, "upgrade refused", p, n);
            return n;
        }
        c->state = S_EIO;
        off = hl;
    }
    return off + ws_frames(c, p + off, n - off);
}

static void conn_input(conn_t *k, char *p, size_t n)
{
    client_t *c = k->c;
    size_t used = c->transport == T_WS ? ws_input(c, p, n) : http_responses(k, p, n);
    if (k->fd < 0 || c->state == S_DEAD) return;
    if (used < n) {
        if (p == k->rbuf) {
            memmove(k->rbuf, k->rbuf + used, n - used);
            k->rlen = (uint32_t)(n - used);
        } else {
            k->rlen = 0;
            append(&k->rbuf, &k->rlen, &k->rcap, p + used, n - used);
        }
    } else {
        k->rlen = 0;
    }
}

static void start_client(client_t *c)
{
    memset(&c->a, 0, sizeof c->a);
    c->a.fd = -1;
    c->a.c = c;
    c->a.kind = K_MAIN;
    if (c->b) c->b->fd = -1;
    c->transport = (uint8_t)W.op.transport;
    c->joins = W.op.joins;
    c->t_start = now_ns();
    uint64_t z = 0;
    atomic_compare_exchange_strong(&W.st->first_start_ns, &z, c->t_start);
    c->state = S_CONNECTING;
    W.inflight++;
    if (open_socket(&c->a) < 0) {
        if (atomic_fetch_add(&W.st->rejects, 1) == 0)
            snprintf(W.st->reject_msg, sizeof W.st->reject_msg, "socket/bind/connect: %s", strerror(errno));
        client_kill(c, true);
    }
}

static void on_connected(conn_t *k)
{
    client_t *c = k->c;
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) {
        if (atomic_fetch_add(&W.st->rejects, 1) == 0)
            snprintf(W.st->reject_msg, sizeof W.st->reject_msg, "connect: %s", strerror(err));
        client_kill(c, true);
        return;
    }
    k->connecting = false;
    set_events(k, k->wlen ? EPOLLIN | EPOLLOUT : EPOLLIN);
    if (k->kind == K_POST) {
        poll_flush_posts(c);
        return;
    }
    if (c->transport == T_WS) {
        char req[1024];
        int n = snprintf(req, sizeof req,
                         "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         "Sec-WebSocket-Version: 13\r\n");
        n += common_headers(req + n, sizeof req - (size_t)n, c);
        n += snprintf(req + n, sizeof req - (size_t)n, "\r\n");
        c->state = S_HTTP;
        conn_write(k, req, (size_t)n);
    } else {
        c->state = S_EIO;
        poll_get(c);
    }
}

static void conn_event(conn_t *k, uint32_t ev)
{
    client_t *c = k->c;
    if (k->connecting) {
        if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(k);
        return;
    }
    if (ev & EPOLLOUT && k->wlen) {
        ssize_t w = send(k->fd, k->wbuf, k->wlen, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN) {
            client_kill(c, in_setup(c));
            return;
        }
        if (w > 0) {
            memmove(k->wbuf, k->wbuf + w, k->wlen - (size_t)w);
            k->wlen -= (uint32_t)w;
        }
        if (!k->wlen) set_events(k, EPOLLIN);
    }
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        ssize_t r = read(k->fd, W.rbuf, sizeof W.rbuf);
        if (r <= 0) {
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
            if (k->kind == K_POST && !k->busy && !k->wlen) {
                conn_close(k); /* idle keep-alive closed by the server */
                poll_flush_posts(c);
                return;
            }
            client_kill(c, in_setup(c));
            return;
        }
        W.now = now_ns();
        if (W.debug) fprintf(stderr, "[w%d g%u %s] %.*s\n", W.id, c->g, k->kind ? "post" : "main", (int)r, W.rbuf);
        if (k->rlen) {
            append(&k->rbuf, &k->rlen, &k->rcap, W.rbuf, (size_t)r);
            conn_input(k, k->rbuf, k->rlen);
        } else {
            conn_input(k, W.rbuf, (size_t)r);
        }
    }
}

static void ack(void)
{
    atomic_fetch_add(&W.st->acks, 1);
    char x = 2;
    if (write(notify_w, &x, 1) < 0) {}
}

static void pump_connects(void)
{
    while (W.op_active && W.inflight < W.win && W.next < W.limit) start_client(&W.cl[W.next++]);
    if (W.op_active && W.next >= W.limit && W.inflight == 0) {
        W.op_active = false;
        ack();
    }
}

static void worker_cmd(void)
{
    cmd_t cm;
    ssize_t r = read(W.cmd_fd, &cm, sizeof cm);
    if (r != sizeof cm) exit(0); /* controller gone */
    if (cm.op == OP_EXIT) exit(0);
    if (cm.op == OP_BATCH) {
        W.batch_us = cm.batch_us;
        ack();
        return;
    }
    if (cm.op == OP_CLOSE) {
        for (int i = 0; i < W.next; i++) {
            client_t *c = &W.cl[i];
            if (c->state != S_FREE && c->state != S_DEAD) {
                if (c->state == S_READY) atomic_fetch_sub(&W.st->closed_after_ready, 1); /* on purpose */
                client_kill(c, false);
            }
            c->state = S_FREE;
        }
        W.next = 0;
        W.inflight = 0;
        ack();
        return;
    }
    W.op = cm;
    /* slots s hold g = s * procs + id; owned g < target */
    int lim = 0;
    while (lim < W.ncl && (long)lim * cfg.procs + W.id < cm.target) lim++;
    W.limit = lim;
    W.op_active = true;
    pump_connects();
}

static void worker_main(int id, int cmd_fd)
{
    W.id = id;
    W.debug = getenv("LOADGEN_DEBUG") != NULL;
    W.cmd_fd = cmd_fd;
    W.st = &shm->w[id];
    W.ncl = (cfg.clients + cfg.procs - 1) / cfg.procs;
    W.cl = calloc((size_t)W.ncl, sizeof *W.cl);
    for (int i = 0; i < W.ncl; i++) W.cl[i].g = (uint32_t)(i * cfg.procs + id);
    W.win = cfg.window / cfg.procs;
    if (W.win < 1) W.win = 1;
    /* --site /: the root namespace (the standalone modes) */
    if (!strcmp(cfg.site, "/")) W.nsp_len = 0, W.nsp_prefix[0] = 0;
    else W.nsp_len = (size_t)snprintf(W.nsp_prefix, sizeof W.nsp_prefix, "/%s,", cfg.site);
    W.src.sin_family = AF_INET;
    char ip[32];
    snprintf(ip, sizeof ip, "127.0.0.%d", cfg.src + id);
    inet_pton(AF_INET, ip, &W.src.sin_addr);
    W.dst.sin_family = AF_INET;
    W.dst.sin_port = htons((uint16_t)cfg.port);
    inet_pton(AF_INET, cfg.host, &W.dst.sin_addr);
    W.ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(W.ep, EPOLL_CTL_ADD, cmd_fd, &e);
    struct epoll_event evs[512];
    for (;;) {
        int n = epoll_wait(W.ep, evs, 512, -1);
        for (int i = 0; i < n; i++) {
            if (!evs[i].data.ptr) worker_cmd();
            else {
                conn_t *k = evs[i].data.ptr;
                if (k->fd >= 0) conn_event(k, evs[i].events);
            }
        }
        pump_connects();
        /* Throughput phases: while deliveries trickle in one by one, wait a
         * little so that the next epoll_wait returns a batch; this removes
         * most context switches from the generator's CPU bill. Off during
         * latency phases, where it would add up to batch_us to samples. */
        if (W.batch_us && n > 0 && n < 64) sleep_ms(W.batch_us / 1000.0);
    }
}

/* ============================================================ controller */
static pid_t wpid[MAXW];
static int wcmd[MAXW];
static redisContext *redis;
static FILE *out;

static uint64_t task_cpu_ns(int pid)
{
    if (pid <= 0) return 0;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (!d) return 0;
    uint64_t sum = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char p2[320];
        snprintf(p2, sizeof p2, "/proc/%d/task/%s/schedstat", pid, de->d_name);
        FILE *f = fopen(p2, "r");
        if (!f) continue;
        unsigned long long v = 0;
        if (fscanf(f, "%llu", &v) == 1) sum += v;
        fclose(f);
    }
    closedir(d);
    return sum;
}

/* utime of a process (all threads) from /proc/<pid>/stat, in ns. */
static uint64_t utime_ns(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    unsigned long long ut = 0;
    /* after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu", &ut) != 1) return 0;
    return ut * (1000000000ull / (uint64_t)sysconf(_SC_CLK_TCK));
}

static uint64_t loadgen_user_ns(void)
{
    uint64_t s = utime_ns(getpid());
    for (int i = 0; i < cfg.procs; i++) s += utime_ns(wpid[i]);
    return s;
}

static uint64_t loadgen_cpu_ns(void)
{
    uint64_t s = task_cpu_ns(getpid());
    for (int i = 0; i < cfg.procs; i++) s += task_cpu_ns(wpid[i]);
    return s;
}

/* The kernel's share: TCP socket buffers (pages, /proc/net/sockstat) and
 * slab memory (socket structs, dentries...), machine-wide. */
static long sockstat_tcp_mem_pages(void)
{
    FILE *f = fopen("/proc/net/sockstat", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    while (fgets(line, sizeof line, f)) {
        char *m = strncmp(line, "TCP:", 4) == 0 ? strstr(line, " mem ") : NULL;
        if (m) v = strtol(m + 5, NULL, 10);
    }
    fclose(f);
    return v;
}

static long meminfo_kb(const char *key)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':') v = strtol(line + kl + 1, NULL, 10);
    fclose(f);
    return v;
}

static long status_kb(int pid, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':') v = strtol(line + kl + 1, NULL, 10);
    fclose(f);
    return v;
}

/* With --server-tree the server is the process and all its descendants
 * (realtimed --workers: the master and its workers; handler hosts). */
static int server_pids(int *pids, int max)
{
    int n = 0;
    if (cfg.server_pid <= 0) return 0;
    pids[n++] = cfg.server_pid;
    for (int i = 0; cfg.server_tree && i < n; i++) {
        char path[96];
        snprintf(path, sizeof path, "/proc/%d/task/%d/children", pids[i], pids[i]);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        int c;
        while (n < max && fscanf(f, "%d", &c) == 1) pids[n++] = c;
        fclose(f);
    }
    return n;
}

static uint64_t server_cpu_ns(void)
{
    int pids[256], n = server_pids(pids, 256);
    uint64_t sum = 0;
    for (int i = 0; i < n; i++) sum += task_cpu_ns(pids[i]);
    return sum;
}

static long server_kb(const char *key)
{
    int pids[256], n = server_pids(pids, 256);
    long sum = -1;
    for (int i = 0; i < n; i++) {
        long v = status_kb(pids[i], key);
        if (v >= 0) sum = (sum < 0 ? 0 : sum) + v;
    }
    return sum;
}

typedef struct {
    uint64_t server, loadgen, loadgen_user, aux[4];
    uint64_t wall;
    uint64_t busy_all, busy_core0, steal; /* /proc/stat, ns */
} cpu_snap_t;

/* Busy time (everything but idle and iowait) of all CPUs and of CPU 0. */
static void proc_stat_busy(uint64_t *all, uint64_t *core0, uint64_t *steal)
{
    *all = *core0 = *steal = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return;
    char line[512];
    long hz = sysconf(_SC_CLK_TCK);
    while (fgets(line, sizeof line, f)) {
        unsigned long long v[10] = {0};
        char name[16];
        if (sscanf(line, "%15s %llu %llu %llu %llu %llu %llu %llu %llu", name, &v[0], &v[1], &v[2], &v[3], &v[4],
                   &v[5], &v[6], &v[7]) < 9)
            continue;
        uint64_t busy = (v[0] + v[1] + v[2] + v[5] + v[6]) * (1000000000ull / (uint64_t)hz);
        if (!strcmp(name, "cpu")) {
            *all = busy;
            *steal = v[7] * (1000000000ull / (uint64_t)hz);
        } else if (!strcmp(name, "cpu0")) *core0 = busy;
        else if (strncmp(name, "cpu", 3)) break;
    }
    fclose(f);
}
static int aux_pid[4];
static char aux_name[4][32];
static int naux;

static cpu_snap_t snap(void)
{
    cpu_snap_t s = {.server = server_cpu_ns(), .loadgen = loadgen_cpu_ns(),
                    .loadgen_user = loadgen_user_ns(), .wall = now_ns()};
    for (int i = 0; i < naux; i++) s.aux[i] = task_cpu_ns(aux_pid[i]);
    proc_stat_busy(&s.busy_all, &s.busy_core0, &s.steal);
    return s;
}

static bool server_alive(void) { return cfg.server_pid <= 0 || kill(cfg.server_pid, 0) == 0; }

/* JSON helpers: fields are written as `"key": value` pairs separated by
 * commas; jopen/jclose track whether a comma is needed. */
static int jdepth;
static bool jfirst[16] = {true};
static void jsep(void)
{
    if (!jfirst[jdepth]) fputc(',', out);
    jfirst[jdepth] = false;
}
static void jkey(const char *k)
{
    jsep();
    fprintf(out, "\"%s\":", k);
}
static void jopen(const char *k)
{
    if (k) jkey(k);
    else jsep();
    fputc('{', out);
    jfirst[++jdepth] = true;
}
static void jclose(void)
{
    fputc('}', out);
    jdepth--;
}
static void jnum(const char *k, double v)
{
    jkey(k);
    if (!isfinite(v)) fprintf(out, "null");
    else fprintf(out, "%.6g", v);
}
static void jstr(const char *k, const char *v)
{
    jkey(k);
    fputc('"', out);
    for (const char *p = v; *p; p++) {
        if (*p == '"' || *p == '\\') fputc('\\', out);
        if ((unsigned char)*p < 0x20) fputc(' ', out);
        else fputc(*p, out);
    }
    fputc('"', out);
}

static void cpu_json(const cpu_snap_t *a, const cpu_snap_t *b, double units, const char *per)
{
    double wall = (double)(b->wall - a->wall) / 1e9;
    double srv = (double)(b->server - a->server) / 1e9, lg = (double)(b->loadgen - a->loadgen) / 1e9;
    jnum("wall_s", wall);
    jnum("server_cpu_s", srv);
    jnum("loadgen_cpu_s", lg);
    jnum("loadgen_user_cpu_s", (double)(b->loadgen_user - a->loadgen_user) / 1e9); /* 10 ms resolution */
    jnum("server_cpu_util", wall > 0 ? srv / wall : 0);
    jnum("loadgen_cpu_util", wall > 0 ? lg / wall : 0);
    double known = srv + lg;
    for (int i = 0; i < naux; i++) {
        char k[64];
        snprintf(k, sizeof k, "%s_cpu_s", aux_name[i]);
        double v = (double)(b->aux[i] - a->aux[i]) / 1e9;
        jnum(k, v);
        known += v;
    }
    /* Anything else that ran meanwhile (other tenants of the machine): a
     * large value means this phase was disturbed. 10 ms resolution. */
    double busy = (double)(b->busy_all - a->busy_all) / 1e9;
    jnum("machine_busy_s", busy);
    jnum("core0_busy_s", (double)(b->busy_core0 - a->busy_core0) / 1e9); /* the server's core, softirq included */
    jnum("steal_s", (double)(b->steal - a->steal) / 1e9); /* hypervisor ran someone else */
    jnum("other_cpu_s", busy - known > 0 ? busy - known : 0);
    jnum("other_cpu_util", wall > 0 && busy > known ? (busy - known) / wall : 0);
    if (per && units > 0) {
        char k[64];
        snprintf(k, sizeof k, "server_cpu_us_per_%s", per);
        jnum(k, srv * 1e6 / units);
        snprintf(k, sizeof k, "loadgen_cpu_us_per_%s", per);
        jnum(k, lg * 1e6 / units);
    }
}

static uint64_t sum_stat(size_t off)
{
    uint64_t s = 0;
    for (int i = 0; i < cfg.procs; i++) s += atomic_load((_Atomic uint64_t *)((char *)&shm->w[i] + off));
    return s;
}
#define SUM(field) sum_stat(offsetof(wstat_t, field))

static void hist_reset(bool conn)
{
    for (int i = 0; i < cfg.procs; i++)
        for (int b = 0; b < NB; b++) atomic_store(conn ? &shm->w[i].conn[b] : &shm->w[i].lat[b], 0);
}

/* Percentiles of the merged histogram, in ms. */
static void hist_json(bool conn)
{
    static uint64_t h[NB];
    uint64_t n = 0;
    double sum = 0;
    memset(h, 0, sizeof h);
    for (int i = 0; i < cfg.procs; i++)
        for (int b = 0; b < NB; b++) h[b] += atomic_load(conn ? &shm->w[i].conn[b] : &shm->w[i].lat[b]);
    for (int b = 0; b < NB; b++) {
        n += h[b];
        sum += (double)h[b] * bucket_value((uint32_t)b);
    }
    const double qs[] = {0.5, 0.9, 0.99, 0.999, 1.0};
    const char *names[] = {"p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"};
    jnum("samples", (double)n);
    jnum("mean_ms", n ? sum / (double)n / 1000 : NAN);
    for (int q = 0; q < 5; q++) {
        uint64_t want = (uint64_t)((double)n * qs[q] + 0.999999);
        if (want < 1) want = 1;
        uint64_t acc = 0;
        double v = NAN;
        for (int b = 0; b < NB && n; b++) {
            acc += h[b];
            if (acc >= want) {
                v = bucket_value((uint32_t)b) / 1000;
                break;
            }
        }
        jnum(names[q], v);
    }
}

static void drain_notify(void)
{
    char buf[256];
    while (read(notify_r, buf, sizeof buf) > 0) {}
}

/* Waits up to timeout_ms for a notify byte; returns false on timeout. */
static bool wait_notify(int timeout_ms)
{
    struct pollfd p = {.fd = notify_r, .events = POLLIN};
    int r;
    do r = poll(&p, 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    if (r <= 0) return false;
    char buf[64];
    if (read(notify_r, buf, sizeof buf) < 0) {}
    return true;
}

static void send_cmd(cmd_t c)
{
    for (int i = 0; i < cfg.procs; i++)
        if (write(wcmd[i], &c, sizeof c) != sizeof c) {
            fprintf(stderr, "loadgen: worker %d is gone\n", i);
            exit(1);
        }
}

/* Broadcast a command and wait until every worker acknowledged it. */
static bool run_cmd(cmd_t c, int timeout_s)
{
    uint64_t want = SUM(acks) + (uint64_t)cfg.procs;
    send_cmd(c);
    uint64_t deadline = now_ns() + (uint64_t)timeout_s * 1000000000ull;
    while (SUM(acks) < want) {
        if (now_ns() > deadline || !server_alive()) return false;
        wait_notify(200);
    }
    return true;
}

static void spawn_workers(void)
{
    shm = mmap(NULL, sizeof *shm, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shm == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    int np[2];
    if (pipe2(np, O_NONBLOCK | O_CLOEXEC)) exit(1);
    notify_r = np[0];
    notify_w = np[1];
    for (int i = 0; i < cfg.procs; i++) {
        int cp[2];
        if (pipe2(cp, O_CLOEXEC)) exit(1);
        pid_t p = fork();
        if (p == 0) {
            close(cp[1]);
            worker_main(i, cp[0]);
            _exit(0);
        }
        close(cp[0]);
        wpid[i] = p;
        wcmd[i] = cp[1];
    }
}

static void stop_workers(void)
{
    cmd_t c = {.op = OP_EXIT};
    for (int i = 0; i < cfg.procs; i++)
        if (write(wcmd[i], &c, sizeof c) < 0) {}
    for (int i = 0; i < cfg.procs; i++) waitpid(wpid[i], NULL, 0);
}

static void redis_open(void)
{
    redis = redisConnect("127.0.0.1", cfg.redis_port);
    if (!redis || redis->err) {
        fprintf(stderr, "loadgen: redis 127.0.0.1:%d: %s\n", cfg.redis_port, redis ? redis->errstr : "oom");
        exit(1);
    }
}

/* Builds the `events` message for room with timestamp t and group g. */
static int build_event(char *buf, size_t cap, const char *room, uint64_t g)
{
    return snprintf(buf, cap,
                    "{\"event\":\"bench\",\"message\":{\"t\":%llu,\"g\":%llu,\"p\":\"%s\"},\"room\":\"%s\","
                    "\"namespace\":\"%s\"}",
                    (unsigned long long)now_ns(), (unsigned long long)g, cfg.pad, room, cfg.site);
}

static long long publish(const char *room, uint64_t g)
{
    char buf[1024];
    int n = build_event(buf, sizeof buf, room, g);
    redisReply *r = redisCommand(redis, "PUBLISH events %b", buf, (size_t)n);
    if (!r) {
        fprintf(stderr, "loadgen: redis: %s\n", redis->errstr);
        exit(1);
    }
    long long subs = r->integer;
    freeReplyObject(r);
    return subs;
}

/* K publishes written in one pipeline: Redis hands them to the subscriber
 * back to back, so a server reads them in one loop turn. */
static void publish_burst(const char *room, uint64_t g, int k)
{
    char buf[1024];
    for (int i = 0; i < k; i++) {
        int n = build_event(buf, sizeof buf, room, g);
        redisAppendCommand(redis, "PUBLISH events %b", buf, (size_t)n);
    }
    for (int i = 0; i < k; i++) {
        redisReply *r;
        if (redisGetReply(redis, (void **)&r) != REDIS_OK) {
            fprintf(stderr, "loadgen: redis: %s\n", redis->errstr);
            exit(1);
        }
        freeReplyObject(r);
    }
}

static void settle_until_quiet(uint64_t expect_delivered, int max_ms)
{
    uint64_t deadline = now_ns() + (uint64_t)max_ms * 1000000ull;
    while (SUM(delivered) < expect_delivered && now_ns() < deadline) sleep_ms(5);
}

/* Paced (open-loop) publishes at `rate` per second for `secs`; room_fmt may
 * contain %u for a member index (1-member rooms cycle through clients). */
static void phase_latency(const char *name, const char *room_fmt, int members, int cycle, double rate, double secs)
{
    secs *= cfg.scale;
    int count = (int)(rate * secs);
    if (count < 3) count = 3;
    fprintf(stderr, "loadgen: %s: %d publishes at %.0f/s to rooms of %d\n", name, count, rate, members);
    hist_reset(false);
    uint64_t d0 = SUM(delivered);
    cpu_snap_t a = snap();
    for (int i = 0; i < GRING; i++) atomic_store(&shm->gmax[i], 0);
    uint64_t t0 = now_ns() + 20000000ull, interval = (uint64_t)(1e9 / rate);
    char room[128];
    long long subs = 0;
    for (int i = 0; i < count; i++) {
        uint64_t at = t0 + (uint64_t)i * interval;
        struct timespec ts = {(time_t)(at / 1000000000ull), (long)(at % 1000000000ull)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
        snprintf(room, sizeof room, room_fmt, cycle ? (unsigned)(((unsigned)i * 7919u) % (unsigned)cycle) : 0u);
        subs = publish(room, (uint64_t)i + 1000000);
    }
    uint64_t expect = d0 + (uint64_t)count * (uint64_t)members;
    settle_until_quiet(expect, 10000);
    cpu_snap_t b = snap();
    uint64_t got = SUM(delivered) - d0;
    jopen(name);
    jnum("room_size", members);
    jnum("rate_per_s", rate);
    jnum("publishes", count);
    jnum("expected", (double)count * members);
    jnum("delivered", (double)got);
    jnum("redis_subscribers", (double)subs);
    hist_json(false);
    if (members > 1 && count <= GRING) {
        /* completion time of each broadcast = its last delivery */
        static double v[GRING];
        int nv = 0;
        for (int i = 0; i < count; i++) v[nv++] = atomic_load(&shm->gmax[(1000000 + i) % GRING]) / 1000.0;
        for (int i = 1; i < nv; i++) /* insertion sort: nv is small */
            for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
                double t = v[j];
                v[j] = v[j - 1];
                v[j - 1] = t;
            }
        jopen("broadcast_completion");
        jnum("p50_ms", v[nv / 2]);
        jnum("p90_ms", v[(nv * 9) / 10]);
        jnum("max_ms", v[nv - 1]);
        jclose();
    }
    cpu_json(&a, &b, (double)got, "delivery");
    jclose();
}

/* Closed loop: publish (k events in one pipeline), wait until every member
 * got all k, repeat for `secs`. k = 1 gives one message per socket per
 * broadcast; k > 1 lets a server coalesce the k frames per socket. */
static void phase_fanout(const char *name, const char *room, uint64_t members, int k, double secs)
{
    int batch_us = cfg.batch_us;
    secs *= cfg.scale;
    fprintf(stderr, "loadgen: %s: closed loop, %d event(s) per round to %llu members for %.1fs\n", name, k,
            (unsigned long long)members, secs);
    if (!members) return;
    static uint64_t gseq = 1;
    run_cmd((cmd_t){.op = OP_BATCH, .batch_us = batch_us}, 10);
    hist_reset(false);
    int rounds = 0, incomplete = 0;
    uint64_t d0 = 0;
    cpu_snap_t a = {0};
    for (int warm = 3;; warm--) {
        if (warm == 0) {
            d0 = SUM(delivered);
            a = snap();
            hist_reset(false);
        }
        uint64_t g = gseq++;
        uint32_t slot = (uint32_t)(g % GRING);
        atomic_store(&shm->gcnt[slot], 0);
        atomic_store(&shm->gexp[slot], (uint32_t)(members * (uint64_t)k));
        drain_notify();
        if (k == 1) publish(room, g);
        else publish_burst(room, g, k);
        uint64_t deadline = now_ns() + 10000000000ull;
        while (atomic_load(&shm->gcnt[slot]) < members * (uint64_t)k && now_ns() < deadline && server_alive())
            wait_notify(100);
        if (atomic_load(&shm->gcnt[slot]) < members * (uint64_t)k) incomplete++;
        atomic_store(&shm->gexp[slot], 0);
        if (warm <= 0) {
            rounds++;
            if ((double)(now_ns() - a.wall) / 1e9 >= secs) break;
        }
        if (incomplete > 2 || !server_alive()) break;
    }
    cpu_snap_t b = snap();
    run_cmd((cmd_t){.op = OP_BATCH, .batch_us = 0}, 10);
    uint64_t got = SUM(delivered) - d0;
    double wall = (double)(b.wall - a.wall) / 1e9;
    jopen(name);
    jnum("room_size", (double)members);
    jnum("events_per_round", k);
    jnum("loadgen_batch_us", batch_us);
    jnum("rounds", rounds);
    jnum("incomplete_rounds", incomplete);
    jnum("delivered", (double)got);
    jnum("deliveries_per_s", wall > 0 ? (double)got / wall : 0);
    jnum("deliveries_per_server_cpu_s", (double)got / ((double)(b.server - a.server) / 1e9));
    hist_json(false);
    cpu_json(&a, &b, (double)got, "delivery");
    jclose();
}

static void conn_summary(void)
{
    jnum("connected", (double)SUM(connected));
    jnum("ready", (double)SUM(ready));
    jnum("failed", (double)SUM(failed));
    jnum("dropped_after_ready", (double)SUM(closed_after_ready));
    uint64_t rj = SUM(rejects);
    jnum("errors", (double)rj);
    for (int i = 0; i < cfg.procs && rj; i++)
        if (shm->w[i].reject_msg[0]) {
            jstr("first_error", shm->w[i].reject_msg);
            break;
        }
}

static uint64_t min_first_start(void)
{
    uint64_t m = UINT64_MAX;
    for (int i = 0; i < cfg.procs; i++) {
        uint64_t v = atomic_load(&shm->w[i].first_start_ns);
        if (v && v < m) m = v;
    }
    return m;
}
static uint64_t max_of(size_t off)
{
    uint64_t m = 0;
    for (int i = 0; i < cfg.procs; i++) {
        uint64_t v = atomic_load((_Atomic uint64_t *)((char *)&shm->w[i] + off));
        if (v > m) m = v;
    }
    return m;
}

static void reset_conn_clock(void)
{
    for (int i = 0; i < cfg.procs; i++) {
        atomic_store(&shm->w[i].first_start_ns, 0);
        atomic_store(&shm->w[i].last_conn_ns, 0);
        atomic_store(&shm->w[i].last_ready_ns, 0);
    }
}

/* Connect clients up to `target` and report rate, CPU and memory. */
static bool phase_connect(const char *name, int target, int transport, bool joins, bool shared, int settle_ms)
{
    fprintf(stderr, "loadgen: %s: connecting up to %d %s clients%s\n", name, target,
            transport == T_WS ? "websocket" : "polling", shared ? " (shared sid)" : "");
    hist_reset(true);
    reset_conn_clock();
    uint64_t c0 = SUM(connected), r0 = SUM(ready), f0 = SUM(failed);
    cpu_snap_t a = snap();
    cmd_t c = {.op = OP_CONNECT, .target = target, .transport = transport, .joins = joins, .shared_sid = shared};
    bool ok = run_cmd(c, 180);
    cpu_snap_t b = snap();
    uint64_t first = min_first_start(), last_conn = max_of(offsetof(wstat_t, last_conn_ns)),
             last_ready = max_of(offsetof(wstat_t, last_ready_ns));
    uint64_t nconn = SUM(connected) - c0, nready = SUM(ready) - r0;
    double conn_s = last_conn > first ? (double)(last_conn - first) / 1e9 : NAN;
    double ready_s = last_ready > first ? (double)(last_ready - first) / 1e9 : NAN;
    jopen(name);
    jnum("target", target);
    jnum("new_connections", (double)nconn);
    jnum("new_ready", (double)nready);
    jnum("new_failed", (double)(SUM(failed) - f0));
    jnum("complete", ok);
    jnum("window", cfg.window);
    jnum("connect_s", conn_s);
    jnum("connects_per_s", conn_s > 0 ? (double)nconn / conn_s : NAN);
    jnum("ready_s", ready_s);
    jnum("server_cpu_us_per_connect", nconn ? (double)(b.server - a.server) / 1e3 / (double)nconn : NAN);
    jopen("connect_latency");
    hist_json(true);
    jclose();
    cpu_json(&a, &b, (double)nconn, "connect");
    conn_summary();
    if (settle_ms > 0) sleep_ms(settle_ms);
    jnum("server_rss_kb", (double)server_kb("VmRSS"));
    jnum("server_rss_anon_kb", (double)server_kb("RssAnon"));
    jnum("server_rss_file_kb", (double)server_kb("RssFile"));
    jclose();
    return ok;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen ws|storm|poll --port N --server-pid PID [--host 127.0.0.1] [--site S]\n"
            "       [--redis-port N] [--procs 3] [--src 2] [--clients N] [--window 256]\n"
            "       [--scale 1.0] [--aux name:pid,...] [--batch-us 200] [--server-tree] [--idle-only]\n"
            "       [--auth-json '{\"token\":\"...\"}'] (--site /: the root namespace)\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2) usage();
    cfg.mode = argv[1];
    static const struct option lo[] = {
        {"port", 1, 0, 'p'},   {"host", 1, 0, 'H'},    {"site", 1, 0, 's'},   {"redis-port", 1, 0, 'r'},
        {"server-pid", 1, 0, 'P'}, {"procs", 1, 0, 'n'}, {"src", 1, 0, 'S'}, {"clients", 1, 0, 'c'},
        {"window", 1, 0, 'w'}, {"scale", 1, 0, 'x'},   {"aux", 1, 0, 'a'},    {"batch-us", 1, 0, 'b'}, {"server-tree", 0, 0, 'T'},
        {"idle-only", 0, 0, 'I'}, {"auth-json", 1, 0, 'A'}, {0, 0, 0, 0}};
    int o;
    optind = 2;
    while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (o) {
        case 'p': cfg.port = atoi(optarg); break;
        case 'H': cfg.host = optarg; break;
        case 's': cfg.site = optarg; break;
        case 'A': cfg.auth = optarg; break;
        case 'r': cfg.redis_port = atoi(optarg); break;
        case 'P': cfg.server_pid = atoi(optarg); break;
        case 'T': cfg.server_tree = true; break;
        case 'I': cfg.idle_only = true; break;
        case 'n': cfg.procs = atoi(optarg); break;
        case 'S': cfg.src = atoi(optarg); break;
        case 'c': cfg.clients = atoi(optarg); break;
        case 'w': cfg.window = atoi(optarg); break;
        case 'x': cfg.scale = atof(optarg); break;
        case 'a': cfg.aux_pids = optarg; break;
        case 'b': cfg.batch_us = atoi(optarg); break;
        default: usage();
        }
    }
    if (!cfg.port || cfg.procs < 1 || cfg.procs > MAXW || cfg.clients < 1 || cfg.src + cfg.procs > 255) usage();
    if (cfg.aux_pids) {
        char *s = strdup(cfg.aux_pids), *save = NULL;
        for (char *t = strtok_r(s, ",", &save); t && naux < 4; t = strtok_r(NULL, ",", &save)) {
            char *colon = strchr(t, ':');
            if (!colon) continue;
            *colon = 0;
            snprintf(aux_name[naux], sizeof aux_name[naux], "%s", t);
            aux_pid[naux++] = atoi(colon + 1);
        }
        free(s);
    }
    /* ~100-byte Socket.IO frames, like the perf-anchor measurements */
    cfg.pad = "frappe-realtime-benchmark-padding-0123456789";
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    int per = (cfg.clients + cfg.procs - 1) / cfg.procs;
    if ((rlim_t)per * 2 + 64 > rl.rlim_cur)
        fprintf(stderr, "loadgen: warning: %d clients per process near the %llu-file limit; use more --procs\n",
                per, (unsigned long long)rl.rlim_cur);
    out = stdout;
    spawn_workers();
    uint64_t t_start = now_ns();
    fputc('{', out);
    jstr("mode", cfg.mode);
    jnum("clients", cfg.clients);
    jnum("procs", cfg.procs);
    jnum("server_pid", cfg.server_pid);
    jnum("server_rss_kb_start", (double)server_kb("VmRSS"));
    jnum("server_hwm_kb_start", (double)server_kb("VmHWM"));
    jnum("server_rss_anon_kb_start", (double)server_kb("RssAnon"));
    jnum("server_rss_file_kb_start", (double)server_kb("RssFile"));
    jnum("kernel_slab_kb_start", (double)meminfo_kb("Slab"));
    jnum("kernel_tcp_mem_pages_start", (double)sockstat_tcp_mem_pages());

    if (!strcmp(cfg.mode, "ws")) {
        redis_open();
        int small = cfg.clients < 1000 ? cfg.clients : 1000;
        bool ok = phase_connect("connect_1k", small, T_WS, true, false, 2000);
        if (ok) ok = phase_connect("connect_10k", cfg.clients, T_WS, true, false, 2000);
        jnum("kernel_slab_kb_connected", (double)meminfo_kb("Slab"));
        jnum("kernel_tcp_mem_pages_connected", (double)sockstat_tcp_mem_pages());
        uint64_t r1k = SUM(ready_r1k), r10k = SUM(ready_r10k);
        int nready = (int)SUM(ready);
        if (ok && nready > 0 && !cfg.idle_only) {
            char room1[160];
            snprintf(room1, sizeof room1, "user:bs%%u@bench");
            phase_latency("latency_1", room1, 1, nready < cfg.clients ? nready : cfg.clients, 1000, 3);
            phase_latency("latency_1k", "task_progress:r1k", (int)r1k, 0, 50, 4);
            phase_latency("latency_10k", "task_progress:r10k", (int)r10k, 0, 5, 6);
            phase_fanout("fanout_1k", "task_progress:r1k", r1k, 1, 3);
            phase_fanout("fanout_10k", "task_progress:r10k", r10k, 1, 4);
            phase_fanout("burst_1k", "task_progress:r1k", r1k, 10, 3);
            phase_fanout("burst_10k", "task_progress:r10k", r10k, 10, 4);
        }
        jopen("end");
        conn_summary();
        jnum("server_rss_kb", (double)server_kb("VmRSS"));
        jnum("server_hwm_kb", (double)server_kb("VmHWM"));
        jclose();
    } else if (!strcmp(cfg.mode, "storm")) {
        phase_connect("storm_distinct_sid", cfg.clients, T_WS, false, false, 1000);
        run_cmd((cmd_t){.op = OP_CLOSE}, 60);
        sleep_ms(3000); /* let the server tear the sessions down */
        phase_connect("storm_shared_sid", cfg.clients, T_WS, false, true, 1000);
    } else if (!strcmp(cfg.mode, "poll")) {
        redis_open();
        bool ok = phase_connect("connect", cfg.clients, T_POLL, true, false, 2000);
        uint64_t r1k = SUM(ready_r1k);
        if (ok && r1k) {
            phase_latency("latency_1k", "task_progress:r1k", (int)r1k, 0, 10, 4);
            phase_fanout("fanout_1k", "task_progress:r1k", r1k, 1, 3);
        }
        jopen("end");
        conn_summary();
        jnum("server_rss_kb", (double)server_kb("VmRSS"));
        jclose();
    } else {
        usage();
    }
    jnum("elapsed_s", (double)(now_ns() - t_start) / 1e9);
    jnum("server_alive", server_alive());
    fputs("}\n", out);
    fflush(out);
    stop_workers();
    return 0;
}
