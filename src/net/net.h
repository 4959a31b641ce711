/* net: the epoll event loop, millisecond timers, deferred tasks, listeners
 * and buffered connections.
 *
 * Reading: every connection reads into one shared per-loop buffer; only a
 * connection that holds a partial message keeps its own copy of the leftover
 * bytes, so an idle connection owns no read buffer.
 *
 * Writing: a connection's out-queue holds references to refcounted chunks
 * (rt_chunk_t), so a broadcast frame built once is shared by every member.
 * Writes are queued during the loop turn and flushed with writev once per
 * turn before the loop sleeps; EPOLLOUT is armed only after a partial write.
 *
 * Closing: net_conn_close() marks and detaches; ops->on_close() runs and the
 * memory is freed later in the same turn (NET_PHASE_CLOSE), never inside a
 * callback. */
#ifndef RT_NET_H
#define RT_NET_H
#include "base/base.h"

#include <sys/uio.h>

typedef struct net_loop net_loop_t;
typedef struct net_io net_io_t;
typedef struct net_timer net_timer_t;
typedef struct net_conn net_conn_t;
typedef struct net_listener net_listener_t;

/* ---- raw fd watchers (listeners, connections, signalfd, libcurl, hiredis) ---- */
typedef void (*net_io_cb)(net_loop_t *loop, net_io_t *io, uint32_t events);
struct net_io {
    int fd;
    uint32_t events; /* EPOLLIN / EPOLLOUT interest currently registered */
    net_io_cb cb;
};
enum { NET_READ = 1u, NET_WRITE = 4u }; /* == EPOLLIN, EPOLLOUT */
/* Registers, changes or removes (events == 0) interest in io->fd. */
int net_io_set(net_loop_t *loop, net_io_t *io, uint32_t events);

/* ---- "later in this turn": the loop's one deferral list ----
 *
 * A task is an intrusive node in the object that owns the work; deferring
 * it allocates nothing. Before the loop sleeps it drains the list: it runs
 * the tasks of the lowest phase that has any (those queued when the batch
 * starts), then looks again from the lowest phase, until every phase is
 * empty. Work deferred by a task, or by a callback a task runs, is therefore
 * done in the same turn, and always in this order:
 *
 *   NET_PHASE_INPUT  retained input offered again to resumed connections
 *   NET_PHASE_WORK   module work taken out of callbacks: ended Engine.IO
 *                    sessions (their on_close), empty namespaces, failed
 *                    backchannel calls
 *   NET_PHASE_FLUSH  output batched per turn: parked polling GETs answered
 *                    with everything queued for them
 *   NET_PHASE_WRITE  (the loop's own) queued output written, one send or
 *                    writev per connection
 *   NET_PHASE_CLOSE  closed connections: ops->on_close, then freed
 *   NET_PHASE_FREE   memory an epoll event of this turn could still name
 *                    (fd watchers), released once the batch is over
 *
 * A task is queued at most once; deferring a queued task again moves it to
 * the tail of the given phase. A task must not re-defer itself every time
 * it runs (the drain would never end). Tasks run after the epoll batch, so
 * a task may free its owner. An owner freed while its task is queued must
 * cancel it first. */
enum {
    NET_PHASE_INPUT,
    NET_PHASE_WORK,
    NET_PHASE_FLUSH,
    NET_PHASE_WRITE,
    NET_PHASE_CLOSE,
    NET_PHASE_FREE,
    NET_PHASES
};
typedef struct net_task net_task_t;
typedef void (*net_task_cb)(net_loop_t *loop, net_task_t *t);
struct net_task {
    rt_list_t link; /* unlinked while idle */
    net_task_cb cb;
};
void net_task_init(net_task_t *t, net_task_cb cb);
void net_defer(net_loop_t *loop, net_task_t *t, int phase);
void net_task_cancel(net_task_t *t);
static inline bool net_task_queued(const net_task_t *t) { return rt_list_linked(&t->link); }
/* Runs deferred tasks until none is left (what the loop does before it
 * sleeps); for owners that tear down outside net_loop_run. */
void net_loop_drain(net_loop_t *loop);

/* Fixed-size object pools owned by the loop (freed with it): one per object
 * size, for modules whose objects live on a loop but that have no server
 * object of their own (WebSocket connections). */
rt_pool_t *net_loop_pool(net_loop_t *loop, size_t size);

/* ---- timers: hierarchical wheel, 1 ms resolution, O(1) start/stop ---- */
typedef void (*net_timer_cb)(net_loop_t *loop, net_timer_t *t);
struct net_timer {
    rt_list_t node; /* unlinked (next == NULL or self) when idle */
    uint64_t expire;
    net_timer_cb cb;
};
void net_timer_init(net_timer_t *t, net_timer_cb cb);
/* (Re)arms t to fire once delay_ms from now (the loop's cached time). */
void net_timer_start(net_loop_t *loop, net_timer_t *t, uint64_t delay_ms);
/* Arms t for an absolute loop time (ms); a past time fires on the next tick. */
void net_timer_start_at(net_loop_t *loop, net_timer_t *t, uint64_t when_ms);
void net_timer_stop(net_timer_t *t);
static inline bool net_timer_active(const net_timer_t *t) { return rt_list_linked(&t->node); }

/* ---- the loop ---- */
typedef struct {
    size_t read_buffer;   /* shared read buffer size (default 256 KiB) */
    size_t out_soft_limit; /* queued bytes tolerated for out_soft_seconds (default 1 MiB) */
    unsigned out_soft_seconds; /* default 10 */
    size_t out_hard_limit; /* queued bytes that close a connection at once (default 16 MiB) */
    size_t max_retained;  /* partial input a connection may keep (default 2 MiB) */
} net_options_t;
void net_options_default(net_options_t *o);

net_loop_t *net_loop_new(const net_options_t *opt);
void net_loop_free(net_loop_t *loop);
/* Runs until net_loop_stop(). Returns 0. */
int net_loop_run(net_loop_t *loop);
/* One turn, waiting at most max_ms for events (tests, final flushes). */
int net_loop_run_once(net_loop_t *loop, int max_ms);
void net_loop_stop(net_loop_t *loop);
/* Closes every open connection (on_close runs for each) and drains; for
 * shutdown. */
void net_loop_close_all(net_loop_t *loop);
/* net_conn_shutdown() of every open connection: queued output is written,
 * then FIN; each closes when its peer's EOF comes (at most 5 s). */
void net_loop_shutdown_all(net_loop_t *loop);
/* Some connection still has output queued (O(connections): for shutdown). */
bool net_loop_output_pending(const net_loop_t *loop);
/* Cached monotonic time in ms, refreshed after every epoll_wait. */
uint64_t net_loop_now(const net_loop_t *loop);
/* Counters for metrics and tests. */
typedef struct {
    uint64_t accepted, closed, bytes_in, bytes_out, writev_calls, slow_closed, turns;
    uint64_t handed_off; /* connections detached for another process */
    uint64_t conns; /* currently open */
} net_stats_t;
const net_stats_t *net_loop_stats(const net_loop_t *loop);
/* SIGHUP: new output limits (checked on the next write of each connection). */
void net_loop_set_limits(net_loop_t *loop, size_t out_soft_limit, size_t out_hard_limit);

/* ---- connections ---- */
typedef struct {
    /* New input: data[0..len) is the retained partial input followed by the
     * bytes just read; data is mutable. Returns how many bytes were consumed;
     * the rest is kept for the next call. May close the connection, change
     * c->ops (the rest is then offered to the new ops at once), or pause. */
    size_t (*on_read)(net_conn_t *c, char *data, size_t len);
    /* Called once, later in the loop turn in which the connection was
     * closed (by anyone, or by the peer; NET_PHASE_CLOSE). c->data is still
     * set; c is freed right after it returns. */
    void (*on_close)(net_conn_t *c);
} net_conn_ops_t;

typedef struct net_outq_node net_outq_node_t;

/* What one queued piece of output costs beyond its bytes (queue node,
 * chunk header, allocator): counted against the output limits, so that many
 * tiny pieces (PONGs to a client that sends PINGs and never reads) are
 * bounded like a few big ones. */
#define NET_NODE_COST 64

enum {
    NET_CONN_CLOSING = 1u << 0,    /* closed: no more I/O, freed at end of turn */
    NET_CONN_PENDING = 1u << 1,    /* in the loop's pending-write list */
    NET_CONN_PAUSED = 1u << 2,     /* reading paused by the owner */
    NET_CONN_SHUTDOWN = 1u << 3,   /* close once the out-queue drains */
    NET_CONN_UNIX = 1u << 4,       /* accepted on a Unix socket */
    NET_CONN_SLOW = 1u << 6,       /* in the loop's slow list (soft limit or shutdown) */
    NET_CONN_WR_SHUT = 1u << 7,    /* FIN sent after a shutdown; lingering for the peer's */
};

struct net_conn {
    net_io_t io;               /* must stay first */
    /* The write path (every broadcast delivery) touches only this first
     * cache line: flags, queue, pending link, loop. */
    uint32_t flags;
    uint32_t out_bytes;        /* memory held for output: bytes not yet written plus
                                  NET_NODE_COST per queued piece (what the limits see) */
    net_outq_node_t *out_head, *out_tail;
    net_conn_t *next_pending;  /* pending-write list link */
    net_loop_t *loop;
    const net_conn_ops_t *ops;
    void *data;                /* owner */
    rt_buf_t *in;              /* retained partial input; NULL while idle */
    net_conn_t *next_slow;     /* slow list link (NET_CONN_SLOW) */
    uint32_t soft_since;       /* loop time (s) since over the soft limit, or since shutdown */
    uint32_t idx;              /* position in the loop's connection table */
    net_task_t task;           /* NET_PHASE_INPUT (resumed) or NET_PHASE_CLOSE (closed) */
};

/* Queues len bytes of chunk starting at off; takes a new reference. */
void net_conn_write_chunk(net_conn_t *c, rt_chunk_t *chunk, size_t off, size_t len);
/* Copies p into a fresh chunk and queues it. */
void net_conn_write(net_conn_t *c, const void *p, size_t len);
/* Closes now, dropping queued output. Idempotent. */
void net_conn_close(net_conn_t *c);
/* Lingering close: input is read and discarded from now on, queued output
 * is written, then FIN is sent and the connection closes at the peer's EOF,
 * 5 s at most. A client still uploading (a 413, a WebSocket 1009) thus
 * reads the answer instead of a TCP reset. */
void net_conn_shutdown(net_conn_t *c);
void net_conn_pause(net_conn_t *c);
/* Resumes reading (if paused) and offers retained input again in this loop
 * turn; also used by an owner that returned 0 while busy and is ready now. */
void net_conn_resume(net_conn_t *c);
static inline bool net_conn_closing(const net_conn_t *c) { return c->flags & NET_CONN_CLOSING; }
/* Writes the peer address as text ("127.0.0.1:4242", "unix") into out. */
void net_conn_peer(const net_conn_t *c, char *out, size_t n);

/* ---- handing a connection to another process (--workers) ----
 *
 * net_conn_detach() takes the descriptor out of this loop as if the
 * connection were closed, except that the descriptor stays open and
 * on_close is not called (the owner calling it has let go). Output still
 * queued is written first if the socket takes it; otherwise the connection
 * is closed and -1 returned. The caller passes the descriptor on and closes
 * its copy.
 *
 * The receiving process adopts it: net_conn_adopt() makes a connection as
 * an accept would (the caller sets ops and data), net_conn_start() starts
 * reading and offers input[0..n) (what the other process had read) first,
 * later in this turn. */
int net_conn_detach(net_conn_t *c);
net_conn_t *net_conn_adopt(net_loop_t *loop, int fd, bool unix_sock);
void net_conn_start(net_conn_t *c, const void *input, size_t n);
/* The peer address as net_conn_adopt() takes it (0 for non-IPv4). */
static inline bool net_conn_is_unix(const net_conn_t *c) { return c->flags & NET_CONN_UNIX; }

/* ---- listeners ---- */
typedef void (*net_accept_cb)(net_listener_t *l, net_conn_t *c);
/* Binds host:port. host NULL, "", "*" or "::": every interface, IPv6 and
 * IPv4 on one socket (IPV6_V6ONLY off), or IPv4 only where the machine has
 * no IPv6; an IPv4 or IPv6 literal ("::1", "[::1]"): that address; port 0:
 * ephemeral. */
net_listener_t *net_listen_tcp(net_loop_t *loop, const char *host, int port, net_accept_cb cb,
                               void *ud, char *err, size_t errlen);
/* Binds a Unix socket path with permissions mode (-1: as the umask makes
 * them). A stale socket file (nobody accepts on it) is replaced; a live one,
 * or a file that is not a socket, is an error. */
net_listener_t *net_listen_unix(net_loop_t *loop, const char *path, int mode, net_accept_cb cb, void *ud,
                                char *err, size_t errlen);
/* Binds and listens without a loop (non-blocking, close-on-exec), for
 * sockets that other processes then watch with net_listen_fd(): one socket
 * shared by several, or (reuseport) one socket each on the same port, among
 * which the kernel spreads new connections evenly. Returns the descriptor,
 * or -1 with err. */
int net_bind_tcp(const char *host, int port, bool reuseport, int *port_out, char *err, size_t errlen);
/* A listen host as net_bind_tcp reads it; -1 if it is not an address. */
#include <sys/socket.h>
int net_parse_host(const char *host, struct sockaddr_storage *ss, socklen_t *len, bool *dual);
int net_bind_unix(const char *path, int mode, char *err, size_t errlen);
/* Watches a listening descriptor shared with other processes: each new
 * connection wakes one of them (EPOLLEXCLUSIVE), and a wake-up accepts a few
 * connections only, leaving the next ones to the others. Closing the listener
 * closes this copy of fd, never unlinks a path. */
net_listener_t *net_listen_fd(net_loop_t *loop, int fd, bool unix_sock, net_accept_cb cb, void *ud,
                              char *err, size_t errlen);
void *net_listener_data(const net_listener_t *l);
int net_listener_port(const net_listener_t *l);
void net_listener_close(net_listener_t *l);

#endif
