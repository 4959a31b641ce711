/* --workers: a master process and N worker processes sharing one listening
 * socket (see app.h).
 *
 * Why processes, not threads: a worker that crashes (or is killed by the
 * OOM killer) takes only its own connections, and every module keeps its
 * single-threaded state without locks. Nothing mutable is shared between
 * workers; what must be (presence, handler broadcasts) goes through Redis
 * exactly as between machines.
 *
 * Connection handoff. The kernel gives each new connection to one worker
 * (EPOLLEXCLUSIVE on the shared socket). Every sid a worker makes starts
 * with its tag, so a polling request or an upgrade that reaches the wrong
 * worker is recognised before it is answered: that worker detaches the
 * connection and sends the descriptor, with every byte it had read from it,
 * to the owner. Per request, not per connection: browsers and proxies reuse
 * keep-alive connections for whatever comes next.
 *
 * The channel to worker i is one SOCK_SEQPACKET socket pair made by the
 * master before the first fork: every worker holds the sending end, worker i
 * the receiving one, the master keeps both so that a restarted worker i
 * finds its channel where it was. A message is one record:
 *
 *   handoff_msg_t, then the bytes (inline up to HANDOFF_INLINE)
 *   SCM_RIGHTS: the connection, and a memfd with the bytes when larger
 *
 * Records are atomic, so many senders never interleave. A handoff that
 * cannot be sent (the owner's queue is full) closes the client's connection:
 * its client reconnects, which loses nothing it had not lost already. */
#include "app.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#define HANDOFF_MAGIC 0x4f485452u /* "RTHO" */
#define HANDOFF_INLINE (48 * 1024)
/* Bytes in memfds queued to one worker and not yet taken: beyond, a large
 * handoff is refused (its connection closed). Without it a stalled worker's
 * channel could hold hundreds of 1 MB bodies. Shared memory, set up by the
 * master: one counter per worker. */
#define HANDOFF_MEMFD_CAP (32 << 20)

typedef struct {
    uint32_t magic;
    uint32_t len;       /* bytes that follow (inline or in the memfd) */
    uint8_t unix_sock;
    uint8_t in_memfd;
    uint16_t reserved;
} handoff_msg_t;

static const char tag_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char app_worker_tag(int i) { return tag_chars[i & 63]; }

static int tag_index(char c)
{
    const char *p = c ? strchr(tag_chars, c) : NULL;
    return p ? (int)(p - tag_chars) : -1;
}

/* ---- worker side: sending ---- */

static int send_handoff(int chan, int fd, bool unix_sock, const rt_buf_t *in)
{
    handoff_msg_t h = {.magic = HANDOFF_MAGIC, .len = (uint32_t)in->len,
                       .unix_sock = unix_sock};
    int fds[2] = {fd, -1};
    struct iovec iov[2] = {{&h, sizeof h}, {in->data, in->len}};
    int niov = 2;
    if (in->len > HANDOFF_INLINE) {
        fds[1] = memfd_create("realtimed-handoff", MFD_CLOEXEC);
        if (fds[1] < 0) return -1;
        size_t off = 0;
        while (off < in->len) {
            ssize_t w = write(fds[1], in->data + off, in->len - off);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                close(fds[1]);
                return -1;
            }
            off += (size_t)w;
        }
        h.in_memfd = 1;
        niov = 1;
    }
    int nfds = fds[1] >= 0 ? 2 : 1;
    union {
        char buf[CMSG_SPACE(2 * sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof u);
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)niov, .msg_control = u.buf,
                         .msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int))};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
    memcpy(CMSG_DATA(cm), fds, (size_t)nfds * sizeof(int));
    ssize_t r;
    do r = sendmsg(chan, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (fds[1] >= 0) close(fds[1]);
    return r < 0 ? -1 : 0;
}

static _Atomic int64_t *memfd_inflight; /* [APP_MAX_WORKERS], shared by the processes */

bool app_worker_foreign_sid(http_conn_t *hc, rt_slice_t sid, void *ud)
{
    app_t *app = ud;
    size_t skip = app->cfg.node_id ? strlen(app->cfg.node_id) : 0;
    if (sid.n <= skip || memcmp(sid.p, app->cfg.node_id ? app->cfg.node_id : "", skip) != 0) return false;
    int owner = tag_index(sid.p[skip]);
    if (owner < 0 || owner >= app->nworkers || owner == app->worker) return false;
    /* Browsers, socket.io clients and proxies never pipeline behind a
     * polling request, nor send frames before the 101: a connection with
     * bytes behind this request is not handed over (else a client could
     * bounce one connection, and everything behind each request, between
     * workers at every request). It gets "Session ID unknown" here. */
    if (http_conn_input_after(hc)) {
        rt_warn_rl("workers", "not handing over a request with %zu bytes pipelined behind it", http_conn_input_after(hc));
        return false;
    }
    net_conn_t *c = http_conn_net(hc);
    bool unix_sock = net_conn_is_unix(c);
    rt_debug("workers", "handing a request of session %.*s to worker %d", (int)RT_MIN(sid.n, 20), sid.p, owner);
    rt_buf_t in = {0};
    int fd = http_conn_handoff(hc, &in);
    if (fd >= 0) {
        bool big = in.len > HANDOFF_INLINE;
        if (big && memfd_inflight && atomic_fetch_add(&memfd_inflight[owner], (int64_t)in.len) + (int64_t)in.len > HANDOFF_MEMFD_CAP) {
            atomic_fetch_sub(&memfd_inflight[owner], (int64_t)in.len);
            rt_warn_rl("workers", "worker %d has %d MiB of large requests waiting: closed one more", owner,
                       HANDOFF_MEMFD_CAP >> 20);
        } else if (send_handoff(app->handoff_out[owner], fd, unix_sock, &in) < 0) {
            if (big && memfd_inflight) atomic_fetch_sub(&memfd_inflight[owner], (int64_t)in.len);
            rt_warn_rl("workers", "could not hand a connection to worker %d (%s): closed it", owner, strerror(errno));
        }
        close(fd);
    }
    rt_buf_free(&in);
    return true;
}

/* ---- worker side: receiving ---- */

typedef struct {
    net_io_t io;
    app_t *app;
    size_t max_len;
} receiver_t;

static void close_fds(const int *fds, int n)
{
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0) close(fds[i]);
}

static void adopt(receiver_t *rx, int fd, const handoff_msg_t *h, const char *bytes, size_t n)
{
    app_t *app = rx->app;
    net_conn_t *c = net_conn_adopt(app->loop, fd, h->unix_sock);
    http_server_adopt(app->http, c);
    net_conn_start(c, bytes, n);
}

static void on_handoff(net_loop_t *loop, net_io_t *io, uint32_t events)
{
    receiver_t *rx = (receiver_t *)io;
    RT_UNUSED(loop);
    RT_UNUSED(events);
    static char buf[sizeof(handoff_msg_t) + HANDOFF_INLINE];
    for (int k = 0; k < 64; k++) {
        union {
            char buf[CMSG_SPACE(4 * sizeof(int))];
            struct cmsghdr align;
        } u;
        struct iovec iov = {buf, sizeof buf};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
        ssize_t r = recvmsg(io->fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return;
        int fds[4] = {-1, -1, -1, -1}, nfds = 0;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
            if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
            int n = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            for (int i = 0; i < n && nfds < 4; i++) memcpy(&fds[nfds++], CMSG_DATA(cm) + (size_t)i * sizeof(int), sizeof(int));
        }
        handoff_msg_t h;
        if ((size_t)r < sizeof h || nfds < 1 || msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
            rt_warn_rl("workers", "dropped a malformed handoff");
            close_fds(fds, nfds);
            continue;
        }
        memcpy(&h, buf, sizeof h);
        size_t inline_len = (size_t)r - sizeof h;
        bool ok = h.magic == HANDOFF_MAGIC && h.len <= rx->max_len &&
                  (h.in_memfd ? nfds == 2 && inline_len == 0 : nfds == 1 && inline_len == h.len);
        if (!ok) {
            rt_warn_rl("workers", "dropped a malformed handoff");
            close_fds(fds, nfds);
            continue;
        }
        if (!h.in_memfd) {
            adopt(rx, fds[0], &h, buf + sizeof h, h.len);
            continue;
        }
        char *p = h.len ? mmap(NULL, h.len, PROT_READ, MAP_PRIVATE, fds[1], 0) : NULL;
        close(fds[1]);
        if (h.len && p == MAP_FAILED) {
            rt_warn_rl("workers", "cannot map a handoff: %s", strerror(errno));
            close(fds[0]);
            if (memfd_inflight) atomic_fetch_sub(&memfd_inflight[rx->app->worker], (int64_t)h.len);
            continue;
        }
        adopt(rx, fds[0], &h, p, h.len); /* the bytes are copied */
        if (h.len) munmap(p, h.len);
        if (memfd_inflight) atomic_fetch_sub(&memfd_inflight[rx->app->worker], (int64_t)h.len);
    }
}

int app_worker_start(app_t *app)
{
    receiver_t *rx = rt_calloc(1, sizeof *rx);
    rx->app = app;
    rx->io.fd = app->handoff_in;
    rx->io.cb = on_handoff;
    /* one request and what may be pipelined behind it */
    rx->max_len = 16 * 1024 + (size_t)app->cfg.max_payload + HTTP_MAX_PIPELINED;
    if (net_io_set(app->loop, &rx->io, NET_READ) < 0) {
        free(rx);
        fprintf(stderr, "realtimed: cannot watch the handoff channel: %s\n", strerror(errno));
        return EX_OSERR;
    }
    app->workers = rx;
    return 0;
}

void app_worker_stop(app_t *app)
{
    receiver_t *rx = app->workers;
    if (!rx) return;
    net_io_set(app->loop, &rx->io, 0);
    free(rx);
    app->workers = NULL;
}

/* ---- master ---- */

typedef struct {
    pid_t pid;      /* 0: not running */
    int pidfd;
    uint64_t started_ms, restart_at;
    unsigned backoff_ms;
    bool ready, ever_ready, subscribed;
} slot_t;

typedef struct {
    app_t *app;
    int n;
    slot_t slot[APP_MAX_WORKERS];
    int out[APP_MAX_WORKERS], in[APP_MAX_WORKERS];
    int lfd[APP_MAX_WORKERS]; /* TCP: one SO_REUSEPORT socket per worker; Unix: lfd[0] for all */
    int ready_r, ready_w, sfd;
    char share_dir[64];      /* 0700: the handler hosts' sockets */
    bool stopping, announced, notified;
    int rc;
} master_t;

static void worker_child(master_t *m, int i)
{
    app_t *app = m->app;
    pid_t parent = getppid();
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(0); /* the master died while forking */
    close(m->sfd);
    close(m->ready_r);
    app->listen_fd = m->lfd[m->lfd[i] >= 0 ? i : 0];
    for (int j = 0; j < m->n; j++) {
        if (j != i) close(m->in[j]);
        if (m->lfd[j] >= 0 && m->lfd[j] != app->listen_fd) close(m->lfd[j]);
        if (m->slot[j].pidfd >= 0) close(m->slot[j].pidfd);
    }
    rt_random_after_fork();
    char tag[16];
    snprintf(tag, sizeof tag, "w%d", i & 63);
    rt_log_set_tag(tag);
    app->worker = i;
    app->ready_fd = m->ready_w;
    app->share_dir = m->share_dir[0] ? m->share_dir : NULL;
    app->handoff_in = m->in[i];
    app->handoff_out = m->out;
    /* the master speaks to the service manager */
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    /* the signals stay blocked: app_serve reads them from a signalfd of its
     * own (unblocking here would let one that comes meanwhile kill us) */
    int rc = app_serve(app);
    app_config_free(&app->cfg);
    exit(rc); /* not _exit: the leak checker of a sanitizer build runs */
}

static int spawn(master_t *m, int i)
{
    slot_t *s = &m->slot[i];
    /* what a dead predecessor had waiting is taken by this one, uncounted */
    if (memfd_inflight) atomic_store(&memfd_inflight[i], 0);
    pid_t pid = fork();
    if (pid < 0) {
        rt_error("workers", "cannot fork worker %d: %s", i, strerror(errno));
        return -1;
    }
    if (pid == 0) worker_child(m, i);
    s->pid = pid;
    rt_info("workers", "worker %d started (pid %d)", i, (int)pid);
    s->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    s->started_ms = rt_now_ms();
    s->ready = s->subscribed = false;
    s->restart_at = 0;
    return 0;
}

static void stop_all(master_t *m, int sig)
{
    for (int i = 0; i < m->n; i++)
        if (m->slot[i].pid > 0) kill(m->slot[i].pid, sig);
}

static void describe_exit(int status, char *out, size_t n)
{
    if (WIFSIGNALED(status)) snprintf(out, n, "was killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else snprintf(out, n, "exited with status %d", WEXITSTATUS(status));
}

static void reap(master_t *m, int i)
{
    slot_t *s = &m->slot[i];
    int status = 0;
    if (waitpid(s->pid, &status, WNOHANG) != s->pid) return;
    if (s->pidfd >= 0) close(s->pidfd);
    s->pidfd = -1;
    pid_t pid = s->pid;
    s->pid = 0;
    bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (m->stopping) {
        if (!clean && !m->rc) m->rc = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
        return;
    }
    char why[96];
    describe_exit(status, why, sizeof why);
    if (!s->ever_ready && WIFEXITED(status) && WEXITSTATUS(status)) {
        /* It could not start (configuration, Redis URL, listener): every
         * other worker would fail the same way. */
        rt_error("workers", "worker %d (pid %d) %s before it served: stopping", i, (int)pid, why);
        m->rc = WEXITSTATUS(status);
        m->stopping = true;
        stop_all(m, SIGTERM);
        return;
    }
    uint64_t now = rt_now_ms();
    /* a worker that lived a while restarts at once; one that keeps dying
     * waits longer each time, up to 5 s */
    s->backoff_ms = now - s->started_ms > 10000 ? 100 : s->backoff_ms ? RT_MIN(s->backoff_ms * 2, 5000u) : 100;
    s->restart_at = now + s->backoff_ms;
    rt_warn("workers", "worker %d (pid %d) %s: restarting it in %u ms; the other workers carry on", i, (int)pid, why,
            s->backoff_ms);
}

static void announce(master_t *m)
{
    app_t *app = m->app;
    if (app->activated) rt_notice("app", "Realtime service listening on: the socket systemd passed");
    else if (app->cfg.socketio_uds) rt_notice("app", "Realtime service listening on: %s", app->cfg.socketio_uds);
    else rt_notice("app", "Realtime service listening on: %d", app->cfg.socketio_port);
    rt_notice("workers", "%d workers serving", m->n);
    m->announced = true;
}

static void on_ready(master_t *m)
{
    unsigned char b[64];
    ssize_t r;
    /* a worker's index: it listens; with 0x80: it is subscribed to Redis too */
    while ((r = read(m->ready_r, b, sizeof b)) > 0)
        for (ssize_t k = 0; k < r; k++) {
            int i = b[k] & 0x7f;
            if (i >= m->n || m->slot[i].pid <= 0) continue;
            if (b[k] & 0x80) m->slot[i].subscribed = true;
            else m->slot[i].ready = m->slot[i].ever_ready = true;
        }
    bool all_ready = true, all_subscribed = true;
    for (int i = 0; i < m->n; i++) {
        all_ready &= m->slot[i].ready;
        all_subscribed &= m->slot[i].subscribed;
    }
    if (all_ready && !m->announced) announce(m);
    if (all_ready && all_subscribed && !m->notified && !m->stopping) {
        m->notified = true;
        app_notify("READY=1\nSTATUS=serving");
    }
}

int app_master_main(app_t *app)
{
    master_t m = {.app = app, .n = app->nworkers, .ready_r = -1, .ready_w = -1, .sfd = -1};
    for (int i = 0; i < APP_MAX_WORKERS; i++) {
        m.slot[i].pidfd = -1;
        m.out[i] = m.in[i] = m.lfd[i] = -1;
    }
    /* TCP: a socket per worker in one SO_REUSEPORT group, so that the kernel
     * spreads connections evenly (one shared socket would wake whichever
     * worker waits first: an idle server's burst of connects would land on
     * one worker). The master holds them all: a restarting worker's
     * connections wait in its backlog. Unix sockets cannot do that: one
     * socket, shared. */
    char err[256];
    int port = app->cfg.socketio_port, rc = 0;
    if (app->activated) m.lfd[0] = app->listen_fd; /* systemd's socket, shared by all */
    else app->listen_unix = app->cfg.socketio_uds != NULL;
    for (int i = 0; !app->activated && i < (app->cfg.socketio_uds ? 1 : m.n); i++) {
        if (app->cfg.socketio_uds) m.lfd[i] = net_bind_unix(app->cfg.socketio_uds, app_uds_mode(&app->cfg), err, sizeof err);
        else m.lfd[i] = net_bind_tcp(app->cfg.listen_host, port, true, &port, err, sizeof err);
        if (m.lfd[i] < 0) {
            fprintf(stderr, "realtimed: %s\n", err);
            rc = EX_UNAVAILABLE;
            goto out;
        }
    }
    app->cfg.socketio_port = port; /* an ephemeral port (0) is the bound one */
    for (int i = 0; i < m.n; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
            fprintf(stderr, "realtimed: socketpair: %s\n", strerror(errno));
            rc = EX_OSERR;
            goto out;
        }
        int big = 4 << 20; /* room for many handoffs in flight to a busy worker */
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
        setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
        fcntl(sv[0], F_SETFL, O_NONBLOCK);
        fcntl(sv[1], F_SETFL, O_NONBLOCK);
        m.out[i] = sv[0];
        m.in[i] = sv[1];
    }
    int pr[2];
    if (pipe2(pr, O_CLOEXEC | O_NONBLOCK) < 0) {
        fprintf(stderr, "realtimed: pipe: %s\n", strerror(errno));
        rc = EX_OSERR;
        goto out;
    }
    m.ready_r = pr[0];
    m.ready_w = pr[1];
    /* one handler host per machine (worker 0 starts it): its socket lives in
     * a folder only this user can enter */
    const char *tmp = getenv("TMPDIR");
    snprintf(m.share_dir, sizeof m.share_dir, "%s/realtimed-XXXXXX", tmp && *tmp && strlen(tmp) < 40 ? tmp : "/tmp");
    if (!mkdtemp(m.share_dir)) {
        rt_warn("workers", "cannot make a folder for the handler hosts (%s): one host per worker", strerror(errno));
        m.share_dir[0] = 0;
    }
    void *shm = mmap(NULL, APP_MAX_WORKERS * sizeof *memfd_inflight, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shm != MAP_FAILED) memfd_inflight = shm; /* else: no cap (cannot happen short of ENOMEM) */
    app->metrics_slots = metrics_slots_new(m.n); /* NULL: each worker's /metrics is its own */
    sigset_t mask;
    app_signal_mask(&mask);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    m.sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (m.sfd < 0) {
        fprintf(stderr, "realtimed: cannot watch signals: %s\n", strerror(errno));
        rc = EX_OSERR;
        goto out;
    }
    rt_log_set_tag("master");
    for (int i = 0; i < m.n; i++)
        if (spawn(&m, i) < 0) {
            m.rc = EX_OSERR;
            m.stopping = true;
            stop_all(&m, SIGTERM);
            break;
        }

    uint64_t kill_at = 0, wd_ms = app_watchdog_ms(), wd_next = 0;
    uint64_t grace = (uint64_t)app->cfg.drain_timeout + 5000; /* then stragglers are killed */
    int sigints = 0;
    for (;;) {
        bool alive = false;
        for (int i = 0; i < m.n; i++) alive |= m.slot[i].pid > 0;
        if (m.stopping && !alive) break;
        uint64_t now = rt_now_ms();
        int timeout = -1;
        for (int i = 0; i < m.n; i++) {
            slot_t *s = &m.slot[i];
            if (m.stopping || s->pid || !s->restart_at) continue;
            if (s->restart_at <= now) {
                if (spawn(&m, i) < 0) s->restart_at = now + 1000;
                continue;
            }
            int t = (int)(s->restart_at - now);
            if (timeout < 0 || t < timeout) timeout = t;
        }
        if (wd_ms) {
            if (now >= wd_next) {
                app_notify("WATCHDOG=1");
                wd_next = now + RT_MAX(wd_ms / 2, 1);
            }
            if (timeout < 0 || (int)(wd_next - now) < timeout) timeout = (int)(wd_next - now);
        }
        if (kill_at) {
            if (now >= kill_at) {
                rt_warn("workers", "workers still running %llu ms after SIGTERM: killing them", (unsigned long long)grace);
                stop_all(&m, SIGKILL);
                kill_at = 0;
            } else if (timeout < 0 || (int)(kill_at - now) < timeout) {
                timeout = (int)(kill_at - now);
            }
        }
        struct pollfd pf[2 + APP_MAX_WORKERS];
        int idx[2 + APP_MAX_WORKERS], np = 0;
        pf[np] = (struct pollfd){.fd = m.sfd, .events = POLLIN};
        idx[np++] = -1;
        pf[np] = (struct pollfd){.fd = m.ready_r, .events = POLLIN};
        idx[np++] = -2;
        for (int i = 0; i < m.n; i++)
            if (m.slot[i].pid > 0 && m.slot[i].pidfd >= 0) {
                pf[np] = (struct pollfd){.fd = m.slot[i].pidfd, .events = POLLIN};
                idx[np++] = i;
            }
        bool no_pidfd = false;
        for (int i = 0; i < m.n; i++) no_pidfd |= m.slot[i].pid > 0 && m.slot[i].pidfd < 0;
        if (no_pidfd && (timeout < 0 || timeout > 200)) timeout = 200; /* old kernels: poll waitpid */
        int r = poll(pf, (nfds_t)np, timeout);
        if (r < 0 && errno != EINTR) {
            rt_error("workers", "poll: %s", strerror(errno));
            break;
        }
        for (int k = 0; k < np && r > 0; k++) {
            if (!pf[k].revents) continue;
            if (idx[k] == -1) {
                struct signalfd_siginfo si;
                while (read(m.sfd, &si, sizeof si) == sizeof si) {
                    if (si.ssi_signo == SIGHUP || si.ssi_signo == SIGUSR1) {
                        if (si.ssi_signo == SIGHUP) app_reload(app);
                        app_reopen_log(app);
                        stop_all(&m, (int)si.ssi_signo); /* each worker does the same */
                        continue;
                    }
                    if (si.ssi_signo == SIGUSR2) {
                        rt_notice("app", "SIGUSR2 received: ignored");
                        continue;
                    }
                    if (si.ssi_signo == SIGINT && ++sigints > 1) {
                        rt_warn("app", "second SIGINT: exiting now");
                        stop_all(&m, SIGKILL);
                        _exit(1);
                    }
                    if (!m.stopping) {
                        rt_notice("app", "%s received: draining the workers (at most %d ms)",
                                  si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT", app->cfg.drain_timeout);
                        app_notify("STOPPING=1");
                    }
                    m.stopping = true;
                    stop_all(&m, SIGTERM);
                    grace = (uint64_t)app->cfg.drain_timeout + 5000; /* a SIGHUP may have changed it */
                    if (!kill_at) kill_at = rt_now_ms() + grace;
                }
            } else if (idx[k] == -2) {
                on_ready(&m);
            } else {
                reap(&m, idx[k]);
            }
        }
        if (no_pidfd)
            for (int i = 0; i < m.n; i++)
                if (m.slot[i].pid > 0 && m.slot[i].pidfd < 0) reap(&m, i);
        if (m.stopping && !kill_at) kill_at = rt_now_ms() + grace;
    }
    rc = m.rc;
out:
    for (int i = 0; i < m.n; i++) {
        if (m.out[i] >= 0) close(m.out[i]);
        if (m.in[i] >= 0) close(m.in[i]);
    }
    if (m.ready_r >= 0) close(m.ready_r);
    if (m.ready_w >= 0) close(m.ready_w);
    if (m.sfd >= 0) close(m.sfd);
    if (m.share_dir[0]) {
        for (const char *f = "node.sock\0python.sock\0"; *f; f += strlen(f) + 1) {
            char path[96];
            snprintf(path, sizeof path, "%s/%s", m.share_dir, f);
            unlink(path);
        }
        rmdir(m.share_dir);
    }
    if (memfd_inflight) {
        munmap((void *)memfd_inflight, APP_MAX_WORKERS * sizeof *memfd_inflight);
        memfd_inflight = NULL;
    }
    for (int i = 0; i < m.n; i++)
        if (m.lfd[i] >= 0) close(m.lfd[i]);
    if (app->cfg.socketio_uds && !app->activated && m.lfd[0] >= 0) unlink(app->cfg.socketio_uds);
    return rc;
}
