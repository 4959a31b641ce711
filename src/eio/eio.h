/* eio: Engine.IO v4 server — handshake, sessions keyed by sid, the polling
 * and WebSocket transports, the polling -> WebSocket upgrade, the
 * server-driven heartbeat and every error answer. Socket.IO (sio/) or a raw
 * application sits on top through eio_handler_t. */
#ifndef RT_EIO_H
#define RT_EIO_H
#include "eio/eio_packet.h"
#include "ws/ws.h"

typedef struct eio_server eio_server_t;
typedef struct eio_session eio_session_t;

#define EIO_SID_PREFIX_MAX 15

typedef struct {
    unsigned ping_interval;   /* ms, default 25000 */
    unsigned ping_timeout;    /* ms, default 20000 */
    unsigned upgrade_timeout; /* ms, default 10000 */
    size_t max_payload;       /* bytes, default 1000000 (maxHttpBufferSize) */
    bool polling;             /* transports enabled (both by default) */
    bool websocket;
    size_t max_sessions;      /* handshakes beyond get 503 (default 100000; 0 = unlimited) */
    size_t max_buffered;      /* bytes queued for a polling client that does not poll
                                 before its session is closed (default 16 MiB) */
    size_t http_compression;  /* polling responses of at least this many bytes are gzip/deflate
                                 compressed when the client accepts it (default 1024; 0: never) */
    bool allow_eio3;          /* Engine.IO v3 clients (socket.io-client 2.x): EIO other than 4 */
    size_t per_message_deflate; /* 0 (default): off; else WebSocket permessage-deflate is
                                   accepted and text messages of at least this many bytes are
                                   sent compressed (a broadcast once for all its members) */
    /* Every sid made here starts with this (then 20 random characters): it
     * names the process that owns the session (--node-id, worker tag). */
    char sid_prefix[EIO_SID_PREFIX_MAX + 1];
    /* A request naming a sid this server does not have: returns true if it
     * took the request (handed it to the process that owns the sid, see
     * http_conn_handoff); false answers "Session ID unknown". */
    bool (*foreign_sid)(http_conn_t *hc, rt_slice_t sid, void *ud);
    void *foreign_ud;
} eio_options_t;
void eio_options_default(eio_options_t *o);

/* Why a session ended, as the reference names it. */
typedef const char *eio_reason_t;
extern const char EIO_REASON_TRANSPORT_CLOSE[];  /* "transport close" */
extern const char EIO_REASON_TRANSPORT_ERROR[];  /* "transport error" */
extern const char EIO_REASON_PING_TIMEOUT[];     /* "ping timeout" */
extern const char EIO_REASON_PARSE_ERROR[];      /* "parse error" */
extern const char EIO_REASON_FORCED_CLOSE[];     /* "forced close" (client sent close) */
extern const char EIO_REASON_SERVER_CLOSE[];     /* "forced server close" */
extern const char EIO_REASON_SHUTDOWN[];         /* "server shutting down" */

typedef struct {
    /* A session was opened. req is the handshake request (the first polling
     * GET or the WebSocket upgrade), valid only during the call: copy what
     * you need (identity headers). */
    void (*on_open)(eio_session_t *s, const http_request_t *req, void *ud);
    /* A message packet. data is valid only during the call. */
    void (*on_message)(eio_session_t *s, bool binary, rt_slice_t data, void *ud);
    /* The session ended; called once. s is freed after it returns. */
    void (*on_close)(eio_session_t *s, eio_reason_t reason, void *ud);
} eio_handler_t;

eio_server_t *eio_server_new(http_server_t *http, const char *path, const eio_options_t *opt,
                             const eio_handler_t *h, void *ud);
/* Closes every session (reason "server shutting down") and frees. */
void eio_server_free(eio_server_t *srv);
const eio_options_t *eio_server_options(const eio_server_t *srv);

/* Reasons in the order of eio_stats_t.closes[] */
#define EIO_REASONS 7
extern const char *const eio_reasons[EIO_REASONS];
typedef struct {
    uint64_t handshakes[2];          /* [0] polling, [1] WebSocket */
    uint64_t upgrades;               /* polling sessions moved to WebSocket */
    uint64_t refused_full;           /* handshakes answered 503 (max_sessions) */
    uint64_t polling_overflow;       /* sessions closed for not polling their queue */
    uint64_t closes[EIO_REASONS];    /* sessions ended, by reason */
    uint64_t ws_sessions;            /* open sessions on WebSocket (the rest poll) */
    uint64_t compressed, compressed_in, compressed_out; /* polling responses compressed; bytes before, after */
    uint64_t deflated, deflated_in, deflated_out;       /* WebSocket messages deflated (once each); bytes */
    uint64_t deflate_sessions;                          /* open sessions that negotiated permessage-deflate */
} eio_stats_t;
const eio_stats_t *eio_server_stats(const eio_server_t *srv);
/* SIGHUP: new limits (open sessions beyond max_sessions stay). */
void eio_server_set_limits(eio_server_t *srv, size_t max_sessions, size_t max_buffered);
size_t eio_server_sessions(const eio_server_t *srv);
void *eio_server_data(const eio_server_t *srv);

void *eio_session_data(const eio_session_t *s);
void eio_session_set_data(eio_session_t *s, void *ud);
const char *eio_session_sid(const eio_session_t *s);
eio_server_t *eio_session_server(const eio_session_t *s);
bool eio_session_is_websocket(const eio_session_t *s);
int eio_session_proto(const eio_session_t *s); /* 4, or 3 for an Engine.IO v3 client */

/* Sends one message packet (data is copied). */
void eio_session_send(eio_session_t *s, bool binary, const void *data, size_t len);

/* A text message prepared once and sent to many sessions without copying:
 *
 *   chunk->data:  [ unused | WS frame header ][ '4' | payload ]
 *                 0        ws_off            msg_off          chunk->len
 *
 * WebSocket sessions queue [ws_off, len); polling sessions queue
 * [msg_off, len), i.e. the packet text with its type digit. */
typedef struct {
    rt_chunk_t *chunk;
    uint32_t ws_off, msg_off;
    /* permessage-deflate: the same message deflated and framed (RSV1), made
     * for the first member that negotiated it, then shared by all of them */
    rt_chunk_t *zchunk;
    bool ztried;
} eio_shared_t;
/* Bytes to reserve at the front of a buffer before encoding a payload that
 * eio_shared_from_buf() turns into a shared message. */
#define EIO_SHARED_RESERVE (WS_MAX_HEADER + 1)
/* b holds EIO_SHARED_RESERVE unused bytes then the payload; takes the bytes
 * (b is left empty). The result holds one chunk reference. */
eio_shared_t eio_shared_from_buf(rt_buf_t *b);
static inline void eio_shared_release(eio_shared_t *m)
{
    rt_chunk_unref(m->chunk);
    rt_chunk_unref(m->zchunk);
    m->chunk = m->zchunk = NULL;
}
void eio_session_send_shared(eio_session_t *s, eio_shared_t *m);
/* The same for a message that supersedes the previous one with the same
 * key (non-zero), e.g. the latest viewer list of a document: a polling
 * client that has not fetched the previous one yet gets only this one, in
 * the queue's order of now. WebSocket clients get every one. */
void eio_session_send_latest(eio_session_t *s, eio_shared_t *m, uint64_t key);

/* Ends the session (reason EIO_REASON_SERVER_CLOSE): a parked GET gets "1",
 * a WebSocket gets a close frame. on_close follows at once. */
void eio_session_close(eio_session_t *s);

#endif
