/* sio: Socket.IO v5 server on top of eio — namespaces (static and dynamic),
 * CONNECT with an asynchronous middleware hook, events and acks both ways,
 * binary attachments, rooms, and broadcasts encoded and framed once.
 * Knows nothing of Frappe. */
#ifndef RT_SIO_H
#define RT_SIO_H
#include "eio/eio.h"
#include "sio/sio_packet.h"

typedef struct sio_server sio_server_t;
typedef struct sio_nsp sio_nsp_t;
typedef struct sio_socket sio_socket_t;
typedef struct sio_client sio_client_t;

typedef struct {
    unsigned connect_timeout; /* ms without any namespace joined before close (45000) */
    /* A binary event's attachments must all arrive within attachment_timeout
     * ms (10000) and total at most max_attachment_bytes (0: the Engine.IO
     * max_payload), or the session is closed as a protocol error. */
    unsigned attachment_timeout;
    size_t max_attachment_bytes;
    /* Engine.IO sessions not yet admitted to any namespace (handshaken, or
     * with a socket still in the middleware) beyond which new handshakes
     * are refused with 503 (0: no limit; default 10000). */
    size_t max_pending;
    /* Connection state recovery (socket.io >= 4.6), 0: off. A socket that
     * leaves because its transport went (transport close / error, ping
     * timeout, forced close) is kept recoverable for recovery_window ms: a
     * CONNECT carrying its {"pid","offset"} within that time gets the same
     * id, its rooms and every event broadcast to them that it missed, in
     * order (see sio_recovery.c). While on, every event packet that is kept
     * (broadcasts, and emits without an ack) carries its offset as a last
     * argument, as socket.io's do. The kept broadcasts and sessions take at
     * most recovery_max_bytes together (sessions at most half); what was
     * evicted is answered "not recovered". Broadcasts are kept for the window
     * plus recovery_slack ms (the time a dead connection may go unnoticed:
     * ping interval + timeout). */
    unsigned recovery_window;
    unsigned recovery_slack;
    size_t recovery_max_bytes;
} sio_options_t;
void sio_options_default(sio_options_t *o);

/* An event from a client. payload is the whole validated JSON array; args is
 * the text of the arguments after the event name, without brackets (e.g.
 * `1,"2",{"3":[true]}`), ready to be spliced into another packet. */
typedef struct {
    rt_slice_t name;
    rt_slice_t payload;
    rt_slice_t args;
    int64_t ack_id; /* -1 when the client wants no ack */
    const rt_slice_t *attachments;
    uint32_t nattach;
} sio_event_t;

typedef struct {
    /* Optional middleware: called on CONNECT with the auth payload (raw
     * JSON, "{}" when absent). It must call sio_socket_accept() or
     * sio_socket_reject() now or later; hold a reference (sio_socket_ref)
     * across asynchronous work. Without it sockets are accepted at once. */
    void (*on_connect_request)(sio_socket_t *s, rt_slice_t auth, void *ud);
    /* After the CONNECT reply was sent. */
    void (*on_connect)(sio_socket_t *s, rt_slice_t auth, void *ud);
    void (*on_event)(sio_socket_t *s, const sio_event_t *ev, void *ud);
    /* A connected socket left (reason as in socket.io: "client namespace
     * disconnect", "server namespace disconnect", "transport close", "ping
     * timeout", ...). Rooms were already left. */
    void (*on_disconnect)(sio_socket_t *s, const char *reason, void *ud);
    /* Optional: s joined (joined = true) or left a room, by any call of
     * sio_join/sio_leave; not called for the rooms left as it disconnects. */
    void (*on_room)(sio_socket_t *s, rt_slice_t room, bool joined, void *ud);
    /* Joining this namespace does not admit the client: it stays counted in
     * max_pending and under connect_timeout (a namespace anyone may join
     * without authentication, e.g. Frappe's "/"). */
    bool anonymous;
} sio_nsp_handler_t;

typedef struct {
    /* Every new Engine.IO session, with its handshake request (valid during
     * the call): copy identity headers into the client's app data. */
    void (*on_client)(sio_client_t *c, const http_request_t *req, void *ud);
    /* The session ended; free the app data. */
    void (*on_client_close)(sio_client_t *c, void *ud);
} sio_client_handler_t;

sio_server_t *sio_server_new(http_server_t *http, const char *path, const eio_options_t *eopt,
                             const sio_options_t *opt);
void sio_server_free(sio_server_t *srv);
void sio_server_set_client_handler(sio_server_t *srv, const sio_client_handler_t *h, void *ud);
eio_server_t *sio_server_eio(const sio_server_t *srv);
/* Clients not yet admitted to a namespace (waiting for auth). */
size_t sio_server_pending(const sio_server_t *srv);
/* SIGHUP: new limits for what happens from now on. */
void sio_server_set_limits(sio_server_t *srv, size_t max_pending, unsigned attachment_timeout);
/* Registers a namespace by exact name ("/" or "/chat"). */
sio_nsp_t *sio_server_of(sio_server_t *srv, const char *name, const sio_nsp_handler_t *h,
                         void *ud);
/* Registers a dynamic parent: a CONNECT to an unknown name for which
 * match() returns true creates a child namespace with these handlers. Empty
 * children are freed (sockets gone, no rooms). */
void sio_server_add_dynamic(sio_server_t *srv, bool (*match)(rt_slice_t name, void *ud),
                            const sio_nsp_handler_t *h, void *ud);
/* Existing namespace by name, or NULL (never creates one). */
sio_nsp_t *sio_server_find(sio_server_t *srv, rt_slice_t name);
/* Calls fn for every namespace (static and dynamic children). */
void sio_server_each_nsp(sio_server_t *srv, void (*fn)(sio_nsp_t *nsp, void *arg), void *arg);

rt_slice_t sio_nsp_name(const sio_nsp_t *nsp);
size_t sio_nsp_sockets(const sio_nsp_t *nsp);

/* ---- clients (one per Engine.IO session) ---- */
void *sio_client_data(const sio_client_t *c);
void sio_client_set_data(sio_client_t *c, void *ud);
eio_session_t *sio_client_session(const sio_client_t *c);

/* ---- sockets (one per client per namespace) ---- */
const char *sio_socket_id(const sio_socket_t *s);
sio_nsp_t *sio_socket_nsp(const sio_socket_t *s);
sio_client_t *sio_socket_client(const sio_socket_t *s); /* NULL once closed */
void *sio_socket_data(const sio_socket_t *s);
void sio_socket_set_data(sio_socket_t *s, void *ud);
bool sio_socket_connected(const sio_socket_t *s);
uint64_t sio_socket_seq(const sio_socket_t *s); /* connection order within the process */
void sio_socket_ref(sio_socket_t *s);
void sio_socket_unref(sio_socket_t *s);

void sio_socket_accept(sio_socket_t *s);
/* Sends CONNECT_ERROR {"message": message[, "data": data_json]}. */
void sio_socket_reject(sio_socket_t *s, const char *message, rt_slice_t data_json);
/* Server-side disconnect: sends DISCONNECT for the namespace. */
void sio_socket_disconnect(sio_socket_t *s);

/* Emits an event: args is raw JSON joined by commas (may be empty).
 * attachments (binary) turn it into a BINARY_EVENT; args must then carry the
 * placeholders. */
void sio_emit(sio_socket_t *s, rt_slice_t event, rt_slice_t args, const rt_slice_t *attachments,
              uint32_t nattach);
/* A client is in at most SIO_MAX_NSP_PER_CLIENT namespaces (a CONNECT
 * beyond gets CONNECT_ERROR "Too many namespaces"); a socket has at most
 * SIO_MAX_PENDING_ACKS acks awaited (an emit with ack beyond is answered
 * closed at once). */
#define SIO_MAX_NSP_PER_CLIENT 32
#define SIO_MAX_PENDING_ACKS 16384
/* Emits expecting an ack; cb gets the ack's args text (without brackets)
 * and attachments, or closed = true when the socket went away first. */
typedef void (*sio_ack_cb)(sio_socket_t *s, rt_slice_t args, const rt_slice_t *attachments,
                           uint32_t nattach, bool closed, void *ud);
void sio_emit_with_ack(sio_socket_t *s, rt_slice_t event, rt_slice_t args, const rt_slice_t *attachments,
                       uint32_t nattach, sio_ack_cb cb, void *ud);
/* Answers a client's ack request. */
void sio_ack(sio_socket_t *s, int64_t ack_id, rt_slice_t args, const rt_slice_t *attachments,
             uint32_t nattach);

/* ---- rooms (per namespace; names are opaque bytes) ----
 * What one socket may hold is bounded in count and in bytes, so that a
 * client choosing room names (task_subscribe takes any id) cannot make joins
 * slow or memory unbounded: a room name is at most SIO_MAX_ROOM_NAME bytes
 * (Frappe's longest legitimate room, doc:<doctype of 61 characters>/<name of
 * 140>, is at most 809 bytes of UTF-8 and usually ~40), a socket is in at
 * most SIO_MAX_ROOMS_PER_SOCKET rooms whose names total at most
 * SIO_MAX_ROOM_BYTES. A join beyond is refused with a rate-limited log line. */
#define SIO_MAX_ROOMS_PER_SOCKET 4096
#define SIO_MAX_ROOM_NAME 1024
#define SIO_MAX_ROOM_BYTES (128 * 1024)
/* 0 (joined, or in the room already), RT_ETOOBIG (refused), RT_ESTATE (not
 * connected). */
int sio_join(sio_socket_t *s, rt_slice_t room);
void sio_leave(sio_socket_t *s, rt_slice_t room);
void sio_leave_all(sio_socket_t *s);
/* Calls fn for every room s is in (most recent join first). */
void sio_socket_rooms_each(const sio_socket_t *s, void (*fn)(rt_slice_t room, void *arg), void *arg);
/* Calls fn for every connected socket of the namespace, in connection
 * order. fn must not connect or disconnect sockets. */
void sio_nsp_each(sio_nsp_t *nsp, void (*fn)(sio_socket_t *s, void *arg), void *arg);
/* Calls fn for every member of room, in join order. fn must not change
 * room membership. */
void sio_room_each(sio_nsp_t *nsp, rt_slice_t room, void (*fn)(sio_socket_t *s, void *arg),
                   void *arg);

/* Broadcasts one event to the union of rooms (all sockets of the namespace
 * when nrooms == 0), except `except` (may be NULL). body is the JSON array
 * content: the quoted event name, then ",args" if any, e.g.
 * `"doc_update",{"name":"x"}`. The packet is encoded once and framed once;
 * every member's queue references the same bytes. Returns recipients. */
size_t sio_broadcast(sio_nsp_t *nsp, const rt_slice_t *rooms, size_t nrooms,
                     const sio_socket_t *except, rt_slice_t body);
/* The same with rooms excepted (socket.io's except(room)): members of any
 * of them do not get it. */
size_t sio_broadcast_except(sio_nsp_t *nsp, const rt_slice_t *rooms, size_t nrooms, const rt_slice_t *except,
                            size_t nexcept, rt_slice_t body);
/* The same for an event with binary attachments (body carries their
 * placeholders): the BINARY_EVENT is encoded once, sent to each member
 * with its attachments. */
size_t sio_broadcast_binary(sio_nsp_t *nsp, const rt_slice_t *rooms, size_t nrooms, const rt_slice_t *except,
                            size_t nexcept, rt_slice_t body, const rt_slice_t *att, uint32_t natt);
/* The same for state where only the latest value matters (presence): a
 * polling member that has not fetched the previous broadcast with this
 * key (non-zero, distinct per namespace and subject) gets only this one
 * (eio_session_send_latest), so its queue holds one per subject. */
size_t sio_broadcast_latest(sio_nsp_t *nsp, const rt_slice_t *rooms, size_t nrooms,
                            const sio_socket_t *except, rt_slice_t body, uint64_t key);

/* ---- connection state recovery (recovery_window > 0) ---- */
/* The socket got back its id, rooms and missed events (socket.recovered). */
bool sio_socket_recovered(const sio_socket_t *s);
/* Who the client is for the application (e.g. its site and user), set by
 * the middleware before sio_socket_accept: a session is only recovered by a
 * socket whose identity equals the one it had (empty by default). */
void sio_socket_set_identity(sio_socket_t *s, rt_slice_t identity);

/* Sessions kept by other processes (the cluster shares them through Redis). */
typedef struct {
    /* A CONNECT asked for pid, which this process does not keep. The hook
     * must later call sio_socket_restore_remote(s, ...) exactly once (it may
     * do so before returning); sio holds a reference on s until then. */
    void (*remote)(sio_socket_t *s, rt_slice_t pid, rt_slice_t offset, void *ud);
    /* A session of nsp became recoverable here for ttl_ms. */
    void (*kept)(sio_nsp_t *nsp, const char *pid, unsigned ttl_ms, void *ud);
} sio_recovery_hooks_t;
void sio_server_set_recovery_hooks(sio_server_t *srv, const sio_recovery_hooks_t *h, void *ud);
/* The position of this process's log of kept broadcasts: broadcasts kept
 * from now on are after it. */
uint64_t sio_recovery_position(const sio_server_t *srv);
/* Hands the session pid of namespace nsp to another process: appends to out
 * a JSON object (sid, pid, identity, rooms, the missed packets after offset)
 * and forgets the session here. RT_OK, RT_ENOTFOUND (not kept here, or of
 * another namespace), RT_ESTATE (the offset is unknown or its packets were
 * evicted), RT_ETOOBIG (more than max bytes). */
int sio_recovery_export(sio_server_t *srv, rt_slice_t nsp, rt_slice_t pid, rt_slice_t offset, rt_buf_t *out,
                        size_t max);
/* Completes a CONNECT sent to the remote hook: blob is what
 * sio_recovery_export produced on the session's process, mark the
 * sio_recovery_position() at which the request was ordered among the
 * broadcasts: what this process kept after it is replayed after the blob's
 * packets. blob.p NULL: not recovered, for why (SIO_REC_*). */
void sio_socket_restore_remote(sio_socket_t *s, rt_slice_t blob, uint64_t mark, int why);

/* Why a recovery was refused, counted apart (sio_recovery_stats_t.refused). */
enum {
    SIO_REC_UNKNOWN,   /* no such session kept (expired, never kept, another namespace) */
    SIO_REC_IDENTITY,  /* kept for another identity */
    SIO_REC_EVICTED,   /* the offset is unknown or its packets were evicted */
    SIO_REC_REMOTE,    /* the process keeping it did not answer in time, or Redis is away */
    SIO_REC_TOO_BIG,   /* the missed packets were too many to hand over */
    SIO_REC_REASONS
};
extern const char *const sio_rec_reasons[SIO_REC_REASONS];
typedef struct {
    uint64_t kept, recovered, recovered_remote, exported, packets_replayed, sessions_evicted;
    uint64_t refused[SIO_REC_REASONS];
    uint64_t log_entries, log_bytes, sessions, session_bytes; /* gauges */
} sio_recovery_stats_t;
const sio_recovery_stats_t *sio_server_recovery_stats(const sio_server_t *srv); /* NULL when off */

/* Counters. */
/* Disconnect reasons counted apart: the Engine.IO ones (eio_reasons[]),
 * then "client namespace disconnect", "server namespace disconnect". */
#define SIO_REASONS (EIO_REASONS + 2)
extern const char *const sio_reasons[SIO_REASONS];
typedef struct {
    uint64_t connects, connect_errors, disconnects, events_in, broadcasts, deliveries,
        protocol_errors, evicted;
    uint64_t disconnects_by[SIO_REASONS];
    uint64_t invalid_namespace, too_many_namespaces; /* connect errors of sio's own */
} sio_stats_t;
const sio_stats_t *sio_server_stats(const sio_server_t *srv);

#endif
