/* sio internals shared by sio.c and sio_recovery.c (not part of the
 * module's interface: other modules include sio.h only). */
#ifndef RT_SIO_INT_H
#define RT_SIO_INT_H
#include "sio.h"

typedef struct sio_room {
    rt_list_t members;
    uint32_t count;
    uint32_t namelen;
    char name[];
} sio_room_t;

typedef struct sio_member {
    rt_list_t in_room;
    sio_socket_t *s;
    sio_room_t *room;
    struct sio_member *next; /* next room of the same socket */
} sio_member_t;

/* An ack the server awaits, in the socket's map keyed by the id's bytes
 * (the key lives here): an answer is found in O(1) however many wait. */
typedef struct sio_pending_ack {
    uint64_t id;
    sio_ack_cb cb;
    void *ud;
} sio_pending_ack_t;

enum { SOCK_PENDING, SOCK_CONNECTED, SOCK_CLOSED };

struct sio_socket {
    sio_client_t *client;
    sio_nsp_t *nsp;
    sio_socket_t *next_in_client;
    rt_list_t nsp_link;
    sio_member_t *rooms;
    void *data;
    char *auth; /* CONNECT payload kept while the middleware decides */
    rt_map_t *acks;     /* id -> sio_pending_ack_t, while any is awaited */
    uint64_t seq;
    uint32_t refs;
    uint32_t bcast_gen;
    uint32_t next_ack;
    uint16_t nrooms;
    uint32_t room_bytes; /* name bytes of the rooms it is in */
    uint8_t state;
    char id[21];
    char *id3; /* Engine.IO v3 client: "/nsp#<engine sid>" (the id socket.io-client 2.x computes) */
    struct sio_sockrec *rec; /* recovery on, v4 client: its pid and what it asked to recover */
};

struct sio_nsp {
    sio_server_t *srv;
    sio_nsp_handler_t h;
    void *ud;
    rt_list_t sockets;
    size_t nsockets;  /* connected */
    size_t nalloc;    /* socket structs pointing here (pending, connected, held) */
    size_t nheld;     /* kept sessions and kept broadcasts of it (recovery) */
    rt_map_t rooms;
    bool dynamic;
    net_task_t cleanup; /* NET_PHASE_WORK: freed if still empty */
    char *name;
    size_t namelen;
};

/* A binary packet waiting for its attachments (bounded in bytes and time). */
typedef struct {
    char *text; /* copy of the packet text */
    size_t text_len;
    size_t bytes; /* attachment bytes so far */
    uint32_t want, have;
    net_timer_t timer;
    struct sio_client *c;
    rt_slice_t att[SIO_MAX_ATTACHMENTS];
} sio_binpending_t;

struct sio_client {
    sio_server_t *srv;
    eio_session_t *eio;
    sio_socket_t *sockets;
    sio_binpending_t *bin;
    void *data;
    rt_list_t connect_wait; /* in srv->connect_wait until a namespace is joined */
    uint64_t connect_deadline;
};

typedef struct {
    bool (*match)(rt_slice_t name, void *ud);
    sio_nsp_handler_t h;
    void *ud;
} sio_dynamic_t;

struct sio_server {
    eio_server_t *eio;
    net_loop_t *loop;
    sio_options_t opt;
    sio_client_handler_t ch;
    void *ch_ud;
    rt_map_t nsps;
    sio_dynamic_t dyn[8];
    int ndyn;
    rt_list_t connect_wait; /* clients not yet admitted anywhere, oldest first */
    size_t npending;        /* their number */
    net_timer_t connect_timer;
    rt_pool_t socket_pool, client_pool, member_pool;
    uint32_t bcast_gen;
    uint64_t seq;
    rt_buf_t enc;    /* scratch for encoding */
    rt_buf_t evname; /* scratch for the decoded event name */
    sio_stats_t stats;
    struct sio_rec *rec; /* connection state recovery, or NULL (off) */
};

/* ---- sio.c, for sio_recovery.c ---- */
void sio_send_text(sio_client_t *c, const rt_buf_t *b);
void sio_send_attachments(sio_client_t *c, const rt_slice_t *att, uint32_t n);
int sio_join_quiet(sio_socket_t *s, rt_slice_t room); /* sio_join without on_room */
void sio_nsp_release(sio_nsp_t *nsp);                  /* nheld--, freed if now empty */
void sio_accept_finish(sio_socket_t *s);               /* the second half of sio_socket_accept */

/* ---- sio_recovery.c ---- */
void sio_rec_init(sio_server_t *srv);
void sio_rec_free(sio_server_t *srv);
/* A socket was created by a CONNECT with this auth object. */
void sio_rec_socket_new(sio_socket_t *s, rt_slice_t auth);
void sio_rec_socket_free(sio_socket_t *s);
/* sio_socket_accept: true if the accept waits for another process. */
bool sio_rec_accept(sio_socket_t *s);
/* sio_accept_finish, once connected: replays what was missed and joins the
 * rooms of a recovered session (before the CONNECT reply, as socket.io). */
void sio_rec_apply(sio_socket_t *s);
/* A connected socket closes for reason: kept if the reason allows. */
void sio_rec_socket_close(sio_socket_t *s, const char *reason);
/* Keeps a broadcast: appends `,"<offset>"` to b (an event array being
 * written, its content from body_off) and records it. except: rooms whose
 * members do not get it (an excepted socket: its id). nrooms 0: the whole
 * namespace. */
void sio_rec_keep(sio_nsp_t *nsp, const rt_slice_t *rooms, size_t nrooms, const rt_slice_t *except,
                  size_t nexcept, rt_buf_t *b, size_t body_off, const rt_slice_t *att, uint32_t natt);
const char *sio_rec_pid(const sio_socket_t *s); /* for the CONNECT reply */
/* Whether broadcasts to nsp are kept now. */
static inline bool sio_rec_keeps(const sio_nsp_t *nsp) { return nsp->srv->rec && (nsp->nalloc || nsp->nheld); }

#endif
