/* net: epoll loop, timer wheel, connections and listeners (see net.h). */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- timer wheel ----
 * Level 0 has 256 slots of 1 ms; levels 1..4 have 64 slots, each covering
 * 256, 16384, 1048576 and 67108864 ms. A timer sits in the lowest level whose
 * span covers its distance; when level 0 wraps, the next slot of level 1 is
 * re-distributed (cascaded), and so on upwards. Start, stop and expiry are
 * O(1); a bitmap per level lets the loop find the next deadline quickly. */
#define TW_L0_BITS 8
#define TW_LN_BITS 6
#define TW_L0 (1u << TW_L0_BITS)
#define TW_LN (1u << TW_LN_BITS)
#define TW_LEVELS 5

typedef struct {
    rt_list_t l0[TW_L0];
    rt_list_t ln[TW_LEVELS - 1][TW_LN];
    uint64_t bm0[TW_L0 / 64];
    uint64_t bmn[TW_LEVELS - 1];
    uint64_t jiffies; /* next tick (ms) to process */
} timer_wheel_t;

struct net_outq_node {
    net_outq_node_t *next;
    rt_chunk_t *chunk;
    uint32_t off, len;
};

struct net_loop {
    int epfd;
    bool stop;
    uint64_t now;
    net_options_t opt;
    char *rbuf;
    timer_wheel_t tw;
    rt_list_t tasks[NET_PHASES]; /* deferred work, by phase (net.h) */
    net_conn_t *pending;   /* connections with queued output */
    net_task_t write_task; /* NET_PHASE_WRITE: flushes `pending` */
    net_conn_t **all;      /* every open connection (conn->idx), for shutdown */
    size_t nall, all_cap;
    rt_pool_t conns;       /* connection structs */
    rt_pool_t nodes;       /* out-queue nodes: no allocation per delivery */
    struct {
        size_t size;
        rt_pool_t pool;
    } pools[8];            /* net_loop_pool */
    int npools;
    net_timer_t soft_timer; /* sweeps the slow list once a second */
    net_conn_t *slow;       /* over the soft limit, or shut down with output left */
    net_stats_t stats;
};

struct net_listener {
    net_io_t io;
    net_loop_t *loop;
    net_accept_cb cb;
    void *ud;
    int port;
    int batch;      /* connections accepted per wake-up */
    bool unix_sock;
    int reserve_fd; /* spare fd closed to accept-and-drop when out of fds */
    uint32_t dropped;   /* connections dropped since the last warning */
    uint64_t last_warn;
    char *path;
};

/* ---- timers ---- */
static void tw_bm_set(timer_wheel_t *tw, int level, unsigned slot)
{
    if (level == 0) tw->bm0[slot >> 6] |= 1ull << (slot & 63);
    else tw->bmn[level - 1] |= 1ull << slot;
}

static void tw_bm_clear_if_empty(timer_wheel_t *tw, int level, unsigned slot)
{
    if (level == 0) {
        if (rt_list_empty(&tw->l0[slot])) tw->bm0[slot >> 6] &= ~(1ull << (slot & 63));
    } else if (rt_list_empty(&tw->ln[level - 1][slot])) {
        tw->bmn[level - 1] &= ~(1ull << slot);
    }
}

static void tw_insert(timer_wheel_t *tw, net_timer_t *t)
{
    uint64_t e = t->expire < tw->jiffies ? tw->jiffies : t->expire;
    uint64_t d = e - tw->jiffies;
    if (d < TW_L0) {
        unsigned s = (unsigned)(e & (TW_L0 - 1));
        rt_list_insert_tail(&tw->l0[s], &t->node);
        tw_bm_set(tw, 0, s);
        return;
    }
    for (int l = 1; l < TW_LEVELS; l++) {
        unsigned shift = TW_L0_BITS + (unsigned)(l - 1) * TW_LN_BITS;
        if (d < (1ull << (shift + TW_LN_BITS)) || l == TW_LEVELS - 1) {
            if (d >= (1ull << (shift + TW_LN_BITS))) e = tw->jiffies + (1ull << (shift + TW_LN_BITS)) - 1;
            unsigned s = (unsigned)((e >> shift) & (TW_LN - 1));
            rt_list_insert_tail(&tw->ln[l - 1][s], &t->node);
            tw_bm_set(tw, l, s);
            return;
        }
    }
}

void net_timer_init(net_timer_t *t, net_timer_cb cb)
{
    t->node.prev = t->node.next = NULL;
    t->expire = 0;
    t->cb = cb;
}

void net_timer_stop(net_timer_t *t)
{
    if (!t->node.next || t->node.next == &t->node) return;
    rt_list_remove(&t->node);
    /* Bitmaps are cleared lazily: a stale bit only costs an empty-slot check. */
}

void net_timer_start(net_loop_t *loop, net_timer_t *t, uint64_t delay_ms)
{
    net_timer_stop(t);
    t->expire = loop->now + delay_ms;
    tw_insert(&loop->tw, t);
}

void net_timer_start_at(net_loop_t *loop, net_timer_t *t, uint64_t when_ms)
{
    net_timer_stop(t);
    t->expire = when_ms;
    tw_insert(&loop->tw, t);
}

static void tw_cascade(timer_wheel_t *tw, int level, unsigned slot)
{
    rt_list_t tmp, *it, *nx;
    rt_list_t *head = &tw->ln[level - 1][slot];
    if (rt_list_empty(head)) {
        tw_bm_clear_if_empty(tw, level, slot);
        return;
    }
    /* Move the list to tmp, then re-insert each timer at its proper level. */
    tmp.next = head->next;
    tmp.prev = head->prev;
    tmp.next->prev = &tmp;
    tmp.prev->next = &tmp;
    rt_list_init(head);
    tw_bm_clear_if_empty(tw, level, slot);
    rt_list_foreach_safe(it, nx, &tmp)
    {
        net_timer_t *t = rt_container_of(it, net_timer_t, node);
        rt_list_remove(it);
        tw_insert(tw, t);
    }
}

static void tw_run(net_loop_t *loop)
{
    timer_wheel_t *tw = &loop->tw;
    while (tw->jiffies <= loop->now) {
        uint64_t j = tw->jiffies;
        unsigned s0 = (unsigned)(j & (TW_L0 - 1));
        if (s0 == 0) {
            for (int l = 1; l < TW_LEVELS; l++) {
                unsigned shift = TW_L0_BITS + (unsigned)(l - 1) * TW_LN_BITS;
                unsigned s = (unsigned)((j >> shift) & (TW_LN - 1));
                tw_cascade(tw, l, s);
                if (s != 0) break;
            }
        }
        rt_list_t *head = &tw->l0[s0];
        tw->jiffies = j + 1;
        if (rt_list_empty(head)) {
            tw_bm_clear_if_empty(tw, 0, s0);
            continue;
        }
        rt_list_t tmp;
        tmp.next = head->next;
        tmp.prev = head->prev;
        tmp.next->prev = &tmp;
        tmp.prev->next = &tmp;
        rt_list_init(head);
        tw_bm_clear_if_empty(tw, 0, s0);
        while (!rt_list_empty(&tmp)) {
            net_timer_t *t = rt_container_of(tmp.next, net_timer_t, node);
            rt_list_remove(&t->node);
            t->cb(loop, t);
        }
    }
}

/* Milliseconds until the loop must run the wheel again, or -1 when no timer
 * is armed: the earliest of the next non-empty level-0 slot and, for every
 * higher level, the time its next non-empty slot is due to cascade. A slot
 * whose cascade time is exactly the next tick (the wheel stands on that
 * level's boundary) counts as due now. */
static int tw_timeout(net_loop_t *loop)
{
    timer_wheel_t *tw = &loop->tw;
    uint64_t j = tw->jiffies;
    if (j <= loop->now) return 0;
    uint64_t next = UINT64_MAX;
    for (unsigned k = 0; k < TW_L0; k++) {
        unsigned s = (unsigned)((j + k) & (TW_L0 - 1));
        if ((s & 63) == 0 && !tw->bm0[s >> 6] && k + 63 < TW_L0) {
            k += 63; /* a whole empty bitmap word */
            continue;
        }
        if (tw->bm0[s >> 6] & (1ull << (s & 63))) {
            if (!rt_list_empty(&tw->l0[s])) {
                next = j + k;
                break;
            }
            tw->bm0[s >> 6] &= ~(1ull << (s & 63));
        }
    }
    for (int l = 1; l < TW_LEVELS; l++) {
        if (!tw->bmn[l - 1]) continue;
        unsigned shift = TW_L0_BITS + (unsigned)(l - 1) * TW_LN_BITS;
        uint64_t base = j >> shift;
        for (unsigned k = 0; k <= TW_LN; k++) {
            uint64_t when = (base + k) << shift;
            if (when < j) continue; /* this block's cascade already ran */
            if (when >= next) break;
            unsigned s = (unsigned)((base + k) & (TW_LN - 1));
            if (!(tw->bmn[l - 1] & (1ull << s))) continue;
            if (rt_list_empty(&tw->ln[l - 1][s])) {
                tw->bmn[l - 1] &= ~(1ull << s);
                continue;
            }
            next = when;
            break;
        }
    }
    if (next == UINT64_MAX) return -1;
    uint64_t d = next > loop->now ? next - loop->now : 0;
    return d > 86400000 ? 86400000 : (int)d;
}

/* ---- loop ---- */
void net_options_default(net_options_t *o)
{
    memset(o, 0, sizeof *o);
    o->read_buffer = 256 * 1024;
    o->out_soft_limit = 1 << 20;
    o->out_soft_seconds = 10;
    o->out_hard_limit = 16 << 20;
    o->max_retained = 2 << 20;
}

static void soft_limit_tick(net_loop_t *loop, net_timer_t *t);
static void conn_mark_slow(net_conn_t *c);
static void flush_pending(net_loop_t *loop, net_task_t *t);

net_loop_t *net_loop_new(const net_options_t *opt)
{
    net_loop_t *loop = rt_calloc(1, sizeof *loop);
    if (opt) loop->opt = *opt;
    else net_options_default(&loop->opt);
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) {
        free(loop);
        return NULL;
    }
    loop->rbuf = rt_malloc(loop->opt.read_buffer);
    for (int p = 0; p < NET_PHASES; p++) rt_list_init(&loop->tasks[p]);
    net_task_init(&loop->write_task, flush_pending);
    loop->conns = (rt_pool_t)RT_POOL_INIT(net_conn_t);
    loop->nodes = (rt_pool_t)RT_POOL_INIT(net_outq_node_t);
    for (unsigned i = 0; i < TW_L0; i++) rt_list_init(&loop->tw.l0[i]);
    for (int l = 0; l < TW_LEVELS - 1; l++)
        for (unsigned i = 0; i < TW_LN; i++) rt_list_init(&loop->tw.ln[l][i]);
    loop->now = rt_now_ms();
    loop->tw.jiffies = loop->now;
    net_timer_init(&loop->soft_timer, soft_limit_tick);
    return loop;
}

void net_loop_free(net_loop_t *loop)
{
    if (!loop) return;
    net_loop_close_all(loop);
    for (int p = 0; p < NET_PHASES; p++) rt_assert(rt_list_empty(&loop->tasks[p]));
    close(loop->epfd);
    rt_pool_destroy(&loop->conns);
    rt_pool_destroy(&loop->nodes);
    for (int i = 0; i < loop->npools; i++) rt_pool_destroy(&loop->pools[i].pool);
    free(loop->all);
    free(loop->rbuf);
    free(loop);
}

rt_pool_t *net_loop_pool(net_loop_t *loop, size_t size)
{
    size = (size + 7) & ~(size_t)7;
    for (int i = 0; i < loop->npools; i++)
        if (loop->pools[i].size == size) return &loop->pools[i].pool;
    rt_assert(loop->npools < (int)RT_ARRAY_LEN(loop->pools));
    loop->pools[loop->npools].size = size;
    loop->pools[loop->npools].pool = (rt_pool_t){size, NULL, NULL};
    return &loop->pools[loop->npools++].pool;
}

/* ---- deferred tasks (net.h) ---- */
void net_task_init(net_task_t *t, net_task_cb cb)
{
    t->link.prev = t->link.next = NULL;
    t->cb = cb;
}

void net_defer(net_loop_t *loop, net_task_t *t, int phase)
{
    if (rt_list_linked(&t->link)) rt_list_remove(&t->link);
    rt_list_insert_tail(&loop->tasks[phase], &t->link);
}

void net_task_cancel(net_task_t *t)
{
    if (rt_list_linked(&t->link)) rt_list_remove(&t->link);
}

void net_loop_drain(net_loop_t *loop)
{
    for (;;) {
        int p = 0;
        while (p < NET_PHASES && rt_list_empty(&loop->tasks[p])) p++;
        if (p == NET_PHASES) return;
        /* The batch is what this phase holds now; tasks deferred while it
         * runs wait for the next pass, which starts again from the lowest
         * phase. */
        rt_list_t batch, *head = &loop->tasks[p];
        batch.next = head->next;
        batch.prev = head->prev;
        batch.next->prev = &batch;
        batch.prev->next = &batch;
        rt_list_init(head);
        while (!rt_list_empty(&batch)) {
            net_task_t *t = rt_container_of(batch.next, net_task_t, link);
            rt_list_remove(&t->link);
            t->cb(loop, t);
        }
    }
}

void net_loop_stop(net_loop_t *loop) { loop->stop = true; }

void net_loop_close_all(net_loop_t *loop)
{
    while (loop->nall) net_conn_close(loop->all[loop->nall - 1]);
    net_loop_drain(loop);
}
bool net_loop_output_pending(const net_loop_t *loop)
{
    for (size_t i = 0; i < loop->nall; i++)
        if (loop->all[i]->out_head) return true;
    return false;
}

void net_loop_shutdown_all(net_loop_t *loop)
{
    for (size_t i = 0; i < loop->nall; i++) net_conn_shutdown(loop->all[i]);
}

uint64_t net_loop_now(const net_loop_t *loop) { return loop->now; }
void net_loop_set_limits(net_loop_t *loop, size_t out_soft_limit, size_t out_hard_limit)
{
    loop->opt.out_soft_limit = out_soft_limit;
    loop->opt.out_hard_limit = out_hard_limit;
}

const net_stats_t *net_loop_stats(const net_loop_t *loop) { return &loop->stats; }

int net_io_set(net_loop_t *loop, net_io_t *io, uint32_t events)
{
    if (events == io->events) return 0;
    struct epoll_event ev = {.events = events, .data.ptr = io};
    int op = events == 0 ? EPOLL_CTL_DEL : io->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    int r = epoll_ctl(loop->epfd, op, io->fd, &ev);
    if (r < 0 && op == EPOLL_CTL_MOD && errno == ENOENT)
        r = epoll_ctl(loop->epfd, EPOLL_CTL_ADD, io->fd, &ev);
    if (r < 0 && op == EPOLL_CTL_DEL) r = 0; /* fd may already be closed */
    if (r == 0) io->events = events;
    return r < 0 ? RT_EIO : 0;
}

/* ---- connections ---- */
/* No input is read from a connection that is paused, or whose output is
 * over the soft limit: a client that sends requests (PINGs, events with
 * answers) and does not read the answers is pushed back by TCP instead of
 * growing its queue. Reading resumes once its output drains. */
static inline bool conn_read_held(const net_conn_t *c)
{
    return (c->flags & NET_CONN_PAUSED) || c->out_bytes > c->loop->opt.out_soft_limit;
}

/* A paused connection reads nothing (the kernel's buffers fill and TCP
 * pushes back on the peer) but still watches for the peer going away, so a
 * parked request whose client left is noticed at once. */
/* (Held for its output, it has EPOLLOUT armed; a peer that left shows there.) */
#define READ_EVENTS(c)                                                                             \
    ((c)->flags & NET_CONN_PAUSED ? (uint32_t)EPOLLRDHUP : conn_read_held(c) ? 0u : (uint32_t)EPOLLIN)

/* Interest changes on a connection can fail only for reasons that make it
 * unusable (ENOMEM, a closed fd): such a connection is closed. */
static void conn_set_events(net_conn_t *c, uint32_t events)
{
    if (net_io_set(c->loop, &c->io, events) < 0) {
        rt_warn_rl("net", "epoll_ctl on a connection failed (%s): closing it", strerror(errno));
        net_conn_close(c);
    }
}

static void node_put(net_loop_t *loop, net_outq_node_t *n)
{
    /* the caller accounts for the node's bytes; its overhead goes here */
    rt_chunk_unref(n->chunk);
    rt_pool_free(&loop->nodes, n);
}

static void outq_clear(net_conn_t *c)
{
    while (c->out_head) {
        net_outq_node_t *n = c->out_head;
        c->out_head = n->next;
        node_put(c->loop, n);
    }
    c->out_tail = NULL;
    c->out_bytes = 0;
}

static void conn_mark_pending(net_conn_t *c)
{
    if (c->flags & (NET_CONN_PENDING | NET_CONN_CLOSING)) return;
    net_loop_t *loop = c->loop;
    c->flags |= NET_CONN_PENDING;
    if (!loop->pending) net_defer(loop, &loop->write_task, NET_PHASE_WRITE);
    c->next_pending = loop->pending;
    loop->pending = c;
}

void net_conn_write_chunk(net_conn_t *c, rt_chunk_t *chunk, size_t off, size_t len)
{
    if (c->flags & NET_CONN_CLOSING || len == 0) return;
    net_loop_t *loop = c->loop;
    if ((size_t)c->out_bytes + len + NET_NODE_COST > loop->opt.out_hard_limit) {
        rt_warn_rl("net", "closing slow consumer: %zu bytes queued", (size_t)c->out_bytes + len + NET_NODE_COST);
        loop->stats.slow_closed++;
        net_conn_close(c);
        return;
    }
    net_outq_node_t *n = rt_pool_alloc(&loop->nodes);
    n->next = NULL;
    n->chunk = rt_chunk_ref(chunk);
    n->off = (uint32_t)off;
    n->len = (uint32_t)len;
    if (c->out_tail) c->out_tail->next = n;
    else c->out_head = n;
    c->out_tail = n;
    c->out_bytes += (uint32_t)(len + NET_NODE_COST);
    conn_mark_pending(c);
}

void net_conn_write(net_conn_t *c, const void *p, size_t len)
{
    if (c->flags & NET_CONN_CLOSING || len == 0) return;
    rt_chunk_t *ch = rt_chunk_from(p, len);
    net_conn_write_chunk(c, ch, 0, len);
    rt_chunk_unref(ch);
}

void net_conn_close(net_conn_t *c)
{
    if (c->flags & NET_CONN_CLOSING) return;
    net_loop_t *loop = c->loop;
    c->flags |= NET_CONN_CLOSING;
    net_io_set(loop, &c->io, 0);
    close(c->io.fd);
    c->io.fd = -1;
    outq_clear(c);
    if (c->in) {
        rt_buf_free(c->in);
        free(c->in);
        c->in = NULL;
    }
    net_conn_t *last = loop->all[--loop->nall]; /* swap-remove from the table */
    loop->all[c->idx] = last;
    last->idx = c->idx;
    /* Freed in NET_PHASE_CLOSE, which runs after NET_PHASE_WRITE has taken
     * it off the pending list (if it was on it). The slow list is cleaned
     * up there too. */
    net_defer(loop, &c->task, NET_PHASE_CLOSE);
    loop->stats.closed++;
    loop->stats.conns--;
}

void net_conn_shutdown(net_conn_t *c)
{
    if (c->flags & (NET_CONN_CLOSING | NET_CONN_SHUTDOWN)) return;
    c->flags |= NET_CONN_SHUTDOWN;
    if (c->in) { /* retained input will never be parsed now */
        rt_buf_free(c->in);
        free(c->in);
        c->in = NULL;
    }
    if (c->flags & NET_CONN_PAUSED) {
        c->flags &= ~NET_CONN_PAUSED;
        conn_set_events(c, (c->io.events & EPOLLOUT) | EPOLLIN);
    }
    net_task_cancel(&c->task);
    c->soft_since = 0;
    conn_mark_slow(c); /* closed after 5 s even if the peer never reads or closes */
    if (!c->out_head) {
        shutdown(c->io.fd, SHUT_WR);
        c->flags |= NET_CONN_WR_SHUT;
    }
}

void net_conn_pause(net_conn_t *c)
{
    if (c->flags & (NET_CONN_CLOSING | NET_CONN_PAUSED)) return;
    c->flags |= NET_CONN_PAUSED;
    net_task_cancel(&c->task); /* no retained input is offered while paused */
    conn_set_events(c, (c->io.events & EPOLLOUT) | READ_EVENTS(c));
}

void net_conn_resume(net_conn_t *c)
{
    if (c->flags & (NET_CONN_CLOSING | NET_CONN_SHUTDOWN)) return;
    if (c->flags & NET_CONN_PAUSED) {
        c->flags &= ~NET_CONN_PAUSED;
        conn_set_events(c, (c->io.events & EPOLLOUT) | READ_EVENTS(c));
    }
    /* Offer the retained input again from the loop, not from here: the
     * caller is usually inside a callback of this very connection. */
    if (c->in && c->in->len) net_defer(c->loop, &c->task, NET_PHASE_INPUT);
}

void net_conn_peer(const net_conn_t *c, char *out, size_t n)
{
    if (n) out[0] = 0;
    if (c->flags & NET_CONN_UNIX) {
        snprintf(out, n, "unix");
        return;
    }
    /* Asked once per handshake: not worth 16 bytes in every connection. On
     * the dual-stack listener an IPv4 peer reads ::ffff:a.b.c.d, as in Node. */
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getpeername(c->io.fd, (struct sockaddr *)&ss, &sl) < 0) return;
    if (ss.ss_family == AF_INET) inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, (socklen_t)n);
    else if (ss.ss_family == AF_INET6) inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, (socklen_t)n);
}

/* Feeds data to the owner, following ops changes (an HTTP upgrade hands the
 * rest of the bytes to the WebSocket layer). Returns bytes consumed. */
static size_t conn_feed(net_conn_t *c, char *data, size_t len)
{
    size_t done = 0;
    while (done < len && !(c->flags & (NET_CONN_CLOSING | NET_CONN_PAUSED | NET_CONN_SHUTDOWN))) {
        const net_conn_ops_t *ops = c->ops;
        size_t n = ops->on_read(c, data + done, len - done);
        done += n;
        if (c->ops == ops) break;
    }
    return done;
}

static void conn_retain(net_conn_t *c, const char *p, size_t n)
{
    if (!c->in) c->in = rt_calloc(1, sizeof *c->in);
    if (c->in->data != p) {
        c->in->len = 0;
        rt_buf_append(c->in, p, n);
    } else {
        c->in->len = n;
    }
}

static void conn_release_in(net_conn_t *c)
{
    if (c->in) {
        rt_buf_free(c->in);
        free(c->in);
        c->in = NULL;
    }
}

static void conn_process_retained(net_conn_t *c)
{
    if (!c->in || !c->in->len) return;
    size_t n = conn_feed(c, c->in->data, c->in->len);
    if (c->flags & (NET_CONN_CLOSING | NET_CONN_SHUTDOWN) || !c->in) return;
    if (n >= c->in->len) conn_release_in(c);
    else if (n) rt_buf_consume(c->in, n);
}

/* After a shutdown: read and drop until EOF (see net_conn_shutdown). */
static void conn_discard(net_conn_t *c)
{
    net_loop_t *loop = c->loop;
    for (int rounds = 0; rounds < 4; rounds++) {
        ssize_t r = read(c->io.fd, loop->rbuf, loop->opt.read_buffer);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (r <= 0) {
            net_conn_close(c);
            return;
        }
        loop->stats.bytes_in += (uint64_t)r;
        if ((size_t)r < loop->opt.read_buffer) return;
    }
}

static void conn_on_readable(net_conn_t *c)
{
    net_loop_t *loop = c->loop;
    if (c->flags & NET_CONN_SHUTDOWN) {
        conn_discard(c);
        return;
    }
    for (int rounds = 0; rounds < 4 && !(c->flags & NET_CONN_CLOSING) && !conn_read_held(c); rounds++) {
        char *dst;
        size_t room;
        bool own = c->in && c->in->len;
        if (own) {
            rt_buf_reserve(c->in, 16384);
            dst = c->in->data + c->in->len;
            room = c->in->cap - c->in->len;
        } else {
            dst = loop->rbuf;
            room = loop->opt.read_buffer;
        }
        ssize_t r = read(c->io.fd, dst, room);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) net_conn_close(c);
            return;
        }
        if (r == 0) {
            net_conn_close(c);
            return;
        }
        loop->stats.bytes_in += (uint64_t)r;
        if (own) {
            c->in->len += (size_t)r;
            conn_process_retained(c);
            if (c->flags & (NET_CONN_CLOSING | NET_CONN_SHUTDOWN)) return;
        } else {
            size_t n = conn_feed(c, dst, (size_t)r);
            if (c->flags & (NET_CONN_CLOSING | NET_CONN_SHUTDOWN)) return;
            if (n < (size_t)r) conn_retain(c, dst + n, (size_t)r - n);
        }
        if (c->in && c->in->len > loop->opt.max_retained) {
            rt_warn_rl("net", "closing connection holding %zu bytes of partial input", c->in->len);
            net_conn_close(c);
            return;
        }
        if ((size_t)r < room) return;
    }
}

/* Writes as much queued output as the socket takes. */
static void conn_flush(net_conn_t *c)
{
    net_loop_t *loop = c->loop;
    struct iovec iov[64];
    size_t budget = 4 << 20; /* bytes per socket per turn: keeps turns short */
    while (c->out_head && budget) {
        int n = 0;
        size_t total = 0;
        for (net_outq_node_t *q = c->out_head; q && n < 64; q = q->next, n++) {
            iov[n].iov_base = q->chunk->data + q->off;
            iov[n].iov_len = q->len;
            total += q->len;
        }
        /* One chunk (a paced broadcast): send() skips writev's iovec layer. */
        ssize_t w = n == 1 ? send(c->io.fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL)
                           : writev(c->io.fd, iov, n);
        loop->stats.writev_calls++;
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            net_conn_close(c);
            return;
        }
        loop->stats.bytes_out += (uint64_t)w;
        c->out_bytes -= (uint32_t)w;
        budget = (size_t)w >= budget ? 0 : budget - (size_t)w;
        size_t left = (size_t)w;
        while (left) {
            net_outq_node_t *q = c->out_head;
            if (left >= q->len) {
                left -= q->len;
                c->out_head = q->next;
                c->out_bytes -= NET_NODE_COST;
                node_put(loop, q);
            } else {
                q->off += (uint32_t)left;
                q->len -= (uint32_t)left;
                left = 0;
            }
        }
        if (!c->out_head) c->out_tail = NULL;
        if ((size_t)w < total) break; /* the socket buffer is full */
    }
    uint32_t want = READ_EVENTS(c);
    if (c->out_head) {
        want |= EPOLLOUT;
        if (c->out_bytes > loop->opt.out_soft_limit || (c->flags & NET_CONN_SHUTDOWN)) conn_mark_slow(c);
        else c->soft_since = 0;
    } else if (c->flags & NET_CONN_SHUTDOWN) {
        /* Everything is written: send FIN and wait for the peer's EOF. */
        if (!(c->flags & NET_CONN_WR_SHUT)) {
            shutdown(c->io.fd, SHUT_WR);
            c->flags |= NET_CONN_WR_SHUT;
        }
    } else {
        c->soft_since = 0;
    }
    conn_set_events(c, want);
}

/* A connection goes on the slow list when its queue passes the soft limit
 * or when it is shut down with output left. Its peer may have stopped reading
 * altogether, so no event would ever revisit it: a 1 s timer sweeps the list
 * and closes those that stayed slow too long (out_soft_seconds over the soft
 * limit, 5 s after a shutdown). */
static void conn_mark_slow(net_conn_t *c)
{
    net_loop_t *loop = c->loop;
    if (!c->soft_since) c->soft_since = (uint32_t)(loop->now / 1000) | 1;
    if (c->flags & NET_CONN_SLOW) return;
    c->flags |= NET_CONN_SLOW;
    c->next_slow = loop->slow;
    loop->slow = c;
    if (!net_timer_active(&loop->soft_timer)) net_timer_start(loop, &loop->soft_timer, 1000);
}

static bool conn_too_slow(net_conn_t *c)
{
    net_loop_t *loop = c->loop;
    if (!c->soft_since) return false;
    uint32_t waited = (uint32_t)(loop->now / 1000) - (c->soft_since & ~1u);
    return waited >= (c->flags & NET_CONN_SHUTDOWN ? 5u : loop->opt.out_soft_seconds);
}

static void conn_check_soft(net_conn_t *c)
{
    if (!conn_too_slow(c)) return;
    net_loop_t *loop = c->loop;
    if (!(c->flags & NET_CONN_SHUTDOWN)) {
        rt_warn_rl("net", "closing slow consumer: %u bytes queued for %us", c->out_bytes,
                loop->opt.out_soft_seconds);
        loop->stats.slow_closed++;
    }
    net_conn_close(c);
}

static void soft_limit_tick(net_loop_t *loop, net_timer_t *t)
{
    net_conn_t **pp = &loop->slow;
    while (*pp) {
        net_conn_t *c = *pp;
        if (!(c->flags & NET_CONN_CLOSING) && c->soft_since) conn_check_soft(c);
        if ((c->flags & NET_CONN_CLOSING) || !c->soft_since) {
            *pp = c->next_slow;
            c->flags &= ~NET_CONN_SLOW;
            continue;
        }
        pp = &c->next_slow;
    }
    if (loop->slow) net_timer_start(loop, t, 1000);
}

static void conn_io_cb(net_loop_t *loop, net_io_t *io, uint32_t events)
{
    net_conn_t *c = (net_conn_t *)io;
    RT_UNUSED(loop);
    if ((events & (EPOLLERR | EPOLLHUP) && !(events & EPOLLIN)) ||
        (events & EPOLLRDHUP && c->flags & NET_CONN_PAUSED)) {
        net_conn_close(c); /* gone (or, while paused, done sending) */
        return;
    }
    if (events & EPOLLIN) conn_on_readable(c);
    if (c->flags & NET_CONN_CLOSING) return;
    if (events & EPOLLOUT) {
        conn_flush(c);
        if (!(c->flags & NET_CONN_CLOSING)) conn_check_soft(c);
    }
}

static void conn_task(net_loop_t *loop, net_task_t *t);

static net_conn_t *conn_new(net_loop_t *loop, int fd)
{
    net_conn_t *c = rt_pool_alloc(&loop->conns);
    c->io.fd = fd;
    c->io.cb = conn_io_cb;
    c->loop = loop;
    net_task_init(&c->task, conn_task);
    if (loop->nall == loop->all_cap) {
        loop->all_cap = loop->all_cap ? loop->all_cap * 2 : 64;
        loop->all = rt_realloc(loop->all, loop->all_cap * sizeof *loop->all);
    }
    c->idx = (uint32_t)loop->nall;
    loop->all[loop->nall++] = c;
    loop->stats.accepted++;
    loop->stats.conns++;
    return c;
}

/* NET_PHASE_WRITE: one flush per connection with queued output. */
static void flush_pending(net_loop_t *loop, net_task_t *t)
{
    RT_UNUSED(t);
    net_conn_t *c = loop->pending;
    loop->pending = NULL;
    while (c) {
        net_conn_t *next = c->next_pending;
        c->flags &= ~NET_CONN_PENDING;
        if (!(c->flags & NET_CONN_CLOSING)) {
            conn_flush(c);
            if (!(c->flags & NET_CONN_CLOSING)) conn_check_soft(c);
        }
        c = next;
    }
}

/* A connection's task: NET_PHASE_INPUT while resumed with retained input,
 * NET_PHASE_CLOSE once closed. */
static void conn_task(net_loop_t *loop, net_task_t *t)
{
    net_conn_t *c = rt_container_of(t, net_conn_t, task);
    if (!(c->flags & NET_CONN_CLOSING)) {
        if (!(c->flags & NET_CONN_PAUSED)) conn_process_retained(c);
        return;
    }
    if (c->flags & NET_CONN_PENDING) {
        /* Only if it was written to and closed by a task of this very
         * batch; NET_PHASE_WRITE, which runs first, takes it off the list. */
        net_defer(loop, t, NET_PHASE_CLOSE);
        return;
    }
    if (c->flags & NET_CONN_SLOW) {
        for (net_conn_t **pp = &loop->slow; *pp; pp = &(*pp)->next_slow)
            if (*pp == c) {
                *pp = c->next_slow;
                break;
            }
    }
    if (c->ops && c->ops->on_close) c->ops->on_close(c);
    rt_pool_free(&loop->conns, c);
}

/* One turn: wait (at most max_ms, -1: until the next timer), dispatch the
 * batch, run due timers, drain the deferred tasks. */
static int loop_turn(net_loop_t *loop, int max_ms)
{
    struct epoll_event evs[256];
    int timeout = tw_timeout(loop);
    if (max_ms >= 0 && (timeout < 0 || timeout > max_ms)) timeout = max_ms;
    int n = epoll_wait(loop->epfd, evs, (int)RT_ARRAY_LEN(evs), timeout);
    loop->now = rt_now_ms();
    loop->stats.turns++;
    if (n < 0 && errno != EINTR) {
        rt_error("net", "epoll_wait: %s", strerror(errno));
        return RT_EIO;
    }
    for (int i = 0; i < n; i++) {
        net_io_t *io = evs[i].data.ptr;
        if (io->fd < 0) continue;
        io->cb(loop, io, evs[i].events);
    }
    tw_run(loop);
    net_loop_drain(loop);
    return 0;
}

int net_loop_run(net_loop_t *loop)
{
    net_loop_drain(loop);
    while (!loop->stop)
        if (loop_turn(loop, -1) < 0) return RT_EIO;
    return 0;
}

int net_loop_run_once(net_loop_t *loop, int max_ms)
{
    net_loop_drain(loop);
    return loop_turn(loop, max_ms);
}

/* ---- handing connections between processes ---- */

int net_conn_detach(net_conn_t *c)
{
    if (c->flags & (NET_CONN_CLOSING | NET_CONN_SHUTDOWN)) return -1;
    if (c->out_head) conn_flush(c); /* an earlier answer still queued: try once */
    if (c->flags & NET_CONN_CLOSING) return -1;
    if (c->out_head) {
        /* It would be lost or reordered; a client that pipelines behind an
         * answer it has not read is not one that can be handed over. */
        net_conn_close(c);
        return -1;
    }
    int fd = c->io.fd;
    net_io_set(c->loop, &c->io, 0);
    c->io.fd = -1; /* net_conn_close below must not close it */
    c->ops = NULL; /* nor tell an owner that has already let go */
    c->data = NULL;
    net_conn_close(c);
    c->loop->stats.handed_off++;
    return fd;
}

net_conn_t *net_conn_adopt(net_loop_t *loop, int fd, bool unix_sock)
{
    net_conn_t *c = conn_new(loop, fd);
    if (unix_sock) c->flags |= NET_CONN_UNIX;
    return c;
}

void net_conn_start(net_conn_t *c, const void *input, size_t n)
{
    if (c->flags & NET_CONN_CLOSING) return;
    conn_set_events(c, (c->io.events & EPOLLOUT) | READ_EVENTS(c));
    if (n && !(c->flags & NET_CONN_CLOSING)) {
        conn_retain(c, input, n);
        net_defer(c->loop, &c->task, NET_PHASE_INPUT);
    }
}

/* ---- listeners ---- */

static void listener_cb(net_loop_t *loop, net_io_t *io, uint32_t events)
{
    net_listener_t *l = (net_listener_t *)io;
    RT_UNUSED(events);
    for (int i = 0; i < l->batch; i++) {
        int fd = accept4(l->io.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if ((errno == EMFILE || errno == ENFILE) && l->reserve_fd >= 0) {
                /* Out of descriptors: accept with the spare one and drop the
                 * client, so the backlog does not spin the loop. */
                close(l->reserve_fd);
                int tmp = accept(l->io.fd, NULL, NULL);
                if (tmp >= 0) close(tmp);
                l->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                /* One line a second at most: a flood must not flood the log. */
                l->dropped++;
                if (loop->now - l->last_warn >= 1000) {
                    rt_warn("net", "out of file descriptors: dropped %u connection(s)", l->dropped);
                    l->last_warn = loop->now;
                    l->dropped = 0;
                }
            }
            return;
        }
        if (!l->unix_sock) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        net_conn_t *c = conn_new(loop, fd);
        if (l->unix_sock) c->flags |= NET_CONN_UNIX;
        l->cb(l, c);
        if (!(c->flags & NET_CONN_CLOSING)) conn_set_events(c, (c->io.events & EPOLLOUT) | READ_EVENTS(c));
    }
}

static net_listener_t *listener_new(net_loop_t *loop, int fd, uint32_t events, net_accept_cb cb, void *ud)
{
    net_listener_t *l = rt_calloc(1, sizeof *l);
    l->io.fd = fd;
    l->io.cb = listener_cb;
    l->loop = loop;
    l->cb = cb;
    l->ud = ud;
    l->batch = 256;
    l->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (net_io_set(loop, &l->io, events) < 0) {
        if (l->reserve_fd >= 0) close(l->reserve_fd);
        free(l);
        return NULL;
    }
    return l;
}

int net_parse_host(const char *host, struct sockaddr_storage *ss, socklen_t *len, bool *dual)
{
    memset(ss, 0, sizeof *ss);
    *dual = false;
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (!host || !*host || !strcmp(host, "*") || !strcmp(host, "::")) {
        s6->sin6_family = AF_INET6; /* in6addr_any; IPv4 too unless IPv6 is absent */
        *len = sizeof *s6;
        *dual = true;
        return 0;
    }
    if (!strcmp(host, "localhost")) host = "127.0.0.1";
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        *len = sizeof *s4;
        return 0;
    }
    char buf[INET6_ADDRSTRLEN + 2];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof buf) { /* [::1] */
        memcpy(buf, host + 1, n - 2);
        buf[n - 2] = 0;
        host = buf;
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        *len = sizeof *s6;
        return 0;
    }
    return -1;
}

int net_bind_tcp(const char *host, int port, bool reuseport, int *port_out, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    bool dual;
    if (net_parse_host(host, &ss, &sl, &dual) < 0) {
        snprintf(err, errlen, "invalid listen address '%s' (an IPv4 or IPv6 address)", host);
        return -1;
    }
    ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port); /* same offset in sockaddr_in6 */
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 && dual && (errno == EAFNOSUPPORT || errno == EPROTONOSUPPORT)) {
        /* no IPv6 on this machine: all IPv4 interfaces, as before */
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        memset(&ss, 0, sizeof ss);
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        sl = sizeof *s4;
        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    }
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1, v6only = !dual;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ss.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
        snprintf(err, errlen, "SO_REUSEPORT: %s", strerror(errno));
        close(fd);
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 4096) < 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", host && *host ? host : "*", port, strerror(errno));
        close(fd);
        return -1;
    }
    sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    if (port_out) *port_out = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

int net_bind_unix(const char *path, int mode, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (!*path || strlen(path) >= sizeof sa.sun_path) {
        snprintf(err, errlen, "%s unix socket path%s%s", *path ? "too long a" : "empty", *path ? ": " : "", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "cannot listen on %s: it exists and is not a socket", path);
            return -1;
        }
        /* Someone answering there is a live server (another instance, or
         * Node's): replacing its socket would cut it off silently. */
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0) {
            int r = connect(probe, (struct sockaddr *)&sa, sizeof sa), e = errno;
            close(probe);
            if (r == 0 || e == EAGAIN) {
                snprintf(err, errlen, "another process is serving %s: stop it first (realtimed never replaces a live socket)",
                         path);
                return -1;
            }
        }
        unlink(path); /* stale: its server is gone */
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || (mode >= 0 && chmod(path, (mode_t)mode) < 0) ||
        listen(fd, 4096) < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

net_listener_t *net_listen_tcp(net_loop_t *loop, const char *host, int port, net_accept_cb cb,
                               void *ud, char *err, size_t errlen)
{
    int bound = 0, fd = net_bind_tcp(host, port, false, &bound, err, errlen);
    if (fd < 0) return NULL;
    net_listener_t *l = listener_new(loop, fd, EPOLLIN, cb, ud);
    if (!l) {
        snprintf(err, errlen, "epoll_ctl: %s", strerror(errno));
        close(fd);
        return NULL;
    }
    l->port = bound;
    return l;
}

net_listener_t *net_listen_unix(net_loop_t *loop, const char *path, int mode, net_accept_cb cb, void *ud,
                                char *err, size_t errlen)
{
    int fd = net_bind_unix(path, mode, err, errlen);
    if (fd < 0) return NULL;
    net_listener_t *l = listener_new(loop, fd, EPOLLIN, cb, ud);
    if (!l) {
        snprintf(err, errlen, "epoll_ctl: %s", strerror(errno));
        close(fd);
        unlink(path);
        return NULL;
    }
    l->unix_sock = true;
    l->path = rt_strndup(path, strlen(path));
    return l;
}

net_listener_t *net_listen_fd(net_loop_t *loop, int fd, bool unix_sock, net_accept_cb cb, void *ud,
                              char *err, size_t errlen)
{
    /* Every process sharing the socket waits on it; EPOLLEXCLUSIVE wakes one
     * (or a few) per connection instead of all of them, and a small batch
     * leaves the next connections to the others. */
    net_listener_t *l = listener_new(loop, fd, EPOLLIN | EPOLLEXCLUSIVE, cb, ud);
    if (!l) {
        snprintf(err, errlen, "epoll_ctl: %s", strerror(errno));
        return NULL;
    }
    l->batch = 16;
    l->unix_sock = unix_sock;
    if (!unix_sock) {
        struct sockaddr_in sa;
        socklen_t sl = sizeof sa;
        if (getsockname(fd, (struct sockaddr *)&sa, &sl) == 0 && sa.sin_family == AF_INET) l->port = ntohs(sa.sin_port);
    }
    return l;
}

void *net_listener_data(const net_listener_t *l) { return l->ud; }
int net_listener_port(const net_listener_t *l) { return l->port; }

void net_listener_close(net_listener_t *l)
{
    if (!l) return;
    net_io_set(l->loop, &l->io, 0);
    close(l->io.fd);
    if (l->reserve_fd >= 0) close(l->reserve_fd);
    if (l->path) {
        unlink(l->path);
        free(l->path);
    }
    free(l);
}
