/* sio: Socket.IO v5 server (see sio.h).
 *
 * Ownership: a client (one per Engine.IO session) owns its namespace
 * sockets; a socket owns its room memberships. A socket is freed when it has
 * left (CLOSED) and no middleware holds a reference. Rooms and dynamic child
 * namespaces are freed when they become empty.
 *
 * Room index (both directions, like Redis pubsub):
 *
 *   room "doc:ToDo/1" --members--> [m1] <-> [m2] <-> ...   (join order)
 *   socket ----rooms---> m1 -> m7 -> ...                    (singly linked)
 *   each member node links the two, so join/leave are O(1) after lookup. */
#include "sio_int.h"

#include <stdio.h>

static const char REASON_CLIENT_NSP[] = "client namespace disconnect";
static const char REASON_SERVER_NSP[] = "server namespace disconnect";
const char *const sio_reasons[SIO_REASONS] = {
    EIO_REASON_TRANSPORT_CLOSE, EIO_REASON_TRANSPORT_ERROR, EIO_REASON_PING_TIMEOUT, EIO_REASON_PARSE_ERROR,
    EIO_REASON_FORCED_CLOSE,    EIO_REASON_SERVER_CLOSE,    EIO_REASON_SHUTDOWN,     REASON_CLIENT_NSP,
    REASON_SERVER_NSP};

void sio_options_default(sio_options_t *o)
{
    memset(o, 0, sizeof *o);
    o->connect_timeout = 45000;
    o->attachment_timeout = 10000;
    o->max_attachment_bytes = 0;
    o->max_pending = 10000;
}

/* ---- small accessors ---- */
rt_slice_t sio_nsp_name(const sio_nsp_t *nsp) { return rt_slice(nsp->name, nsp->namelen); }
size_t sio_nsp_sockets(const sio_nsp_t *nsp) { return nsp->nsockets; }
void *sio_client_data(const sio_client_t *c) { return c->data; }
void sio_client_set_data(sio_client_t *c, void *ud) { c->data = ud; }
eio_session_t *sio_client_session(const sio_client_t *c) { return c->eio; }
const char *sio_socket_id(const sio_socket_t *s) { return s->id3 ? s->id3 : s->id; }

/* The client speaks Socket.IO v4 over Engine.IO v3 (socket.io-client 2.x). */
static bool client_v3(const sio_client_t *c) { return c->eio && eio_session_proto(c->eio) == 3; }
sio_nsp_t *sio_socket_nsp(const sio_socket_t *s) { return s->nsp; }
sio_client_t *sio_socket_client(const sio_socket_t *s) { return s->client; }
void *sio_socket_data(const sio_socket_t *s) { return s->data; }
void sio_socket_set_data(sio_socket_t *s, void *ud) { s->data = ud; }
bool sio_socket_connected(const sio_socket_t *s) { return s->state == SOCK_CONNECTED; }
uint64_t sio_socket_seq(const sio_socket_t *s) { return s->seq; }
eio_server_t *sio_server_eio(const sio_server_t *srv) { return srv->eio; }
size_t sio_server_pending(const sio_server_t *srv) { return srv->npending; }

void sio_server_set_limits(sio_server_t *srv, size_t max_pending, unsigned attachment_timeout)
{
    srv->opt.max_pending = max_pending;
    srv->opt.attachment_timeout = attachment_timeout;
}
const sio_stats_t *sio_server_stats(const sio_server_t *srv) { return &srv->stats; }

/* ---- encoding and sending ---- */
static void client_send_text(sio_client_t *c, const rt_buf_t *b)
{
    if (c && c->eio) eio_session_send(c->eio, false, b->data, b->len);
}

static void client_send_attachments(sio_client_t *c, const rt_slice_t *att, uint32_t n)
{
    for (uint32_t i = 0; c && c->eio && i < n; i++) eio_session_send(c->eio, true, att[i].p, att[i].n);
}
void sio_send_text(sio_client_t *c, const rt_buf_t *b) { client_send_text(c, b); }
void sio_send_attachments(sio_client_t *c, const rt_slice_t *att, uint32_t n) { client_send_attachments(c, att, n); }

/* Encodes `<type>[n-][nsp,][id]` into srv->enc (reset first). */
static rt_buf_t *enc_head(sio_nsp_t *nsp, sio_type_t type, uint32_t nattach, int64_t id)
{
    rt_buf_t *b = &nsp->srv->enc;
    b->len = 0;
    sio_packet_head(b, type, sio_nsp_name(nsp), nattach, id);
    return b;
}

static void enc_array(rt_buf_t *b, rt_slice_t event, rt_slice_t args)
{
    rt_buf_putc(b, '[');
    if (event.p) rt_buf_append_json_string(b, event);
    if (event.p && args.n) rt_buf_putc(b, ',');
    rt_buf_append_slice(b, args);
    rt_buf_putc(b, ']');
}

/* Reserved names would make the client drop the connection (see
 * sio_event_reserved); they are refused here for every application. */
static bool name_reserved(rt_slice_t event)
{
    rt_buf_t tok = {0};
    rt_buf_append_json_string(&tok, event);
    bool r = sio_event_reserved(rt_slice(tok.data, tok.len));
    rt_buf_free(&tok);
    if (r) rt_warn_rl("sio", "refused to emit the reserved event name '%.*s'", (int)event.n, event.p);
    return r;
}

void sio_emit(sio_socket_t *s, rt_slice_t event, rt_slice_t args, const rt_slice_t *attachments,
              uint32_t nattach)
{
    if (s->state != SOCK_CONNECTED || name_reserved(event)) return;
    rt_buf_t *b = enc_head(s->nsp, nattach ? SIO_BINARY_EVENT : SIO_EVENT, nattach, -1);
    if (s->rec) { /* kept for recovery, with its offset: to the socket's own id */
        rt_buf_putc(b, '[');
        size_t body = b->len;
        rt_buf_append_json_string(b, event);
        if (args.n) rt_buf_putc(b, ',');
        rt_buf_append_slice(b, args);
        rt_slice_t room = rt_slice_cstr(s->id);
        sio_rec_keep(s->nsp, &room, 1, NULL, 0, b, body, attachments, nattach);
        rt_buf_putc(b, ']');
    } else {
        enc_array(b, event, args);
    }
    client_send_text(s->client, b);
    client_send_attachments(s->client, attachments, nattach);
}

void sio_emit_with_ack(sio_socket_t *s, rt_slice_t event, rt_slice_t args, const rt_slice_t *attachments,
                       uint32_t nattach, sio_ack_cb cb, void *ud)
{
    if (s->state != SOCK_CONNECTED || name_reserved(event)) {
        cb(s, RT_SLICE_NULL, NULL, 0, true, ud);
        return;
    }
    if (s->acks && s->acks->count >= SIO_MAX_PENDING_ACKS) {
        /* a client that never answers must not make us hold without bound */
        rt_warn_rl("sio", "socket %s has %u acks unanswered: emit with ack refused", s->id, s->acks->count);
        cb(s, RT_SLICE_NULL, NULL, 0, true, ud);
        return;
    }
    sio_pending_ack_t *a = rt_malloc(sizeof *a);
    a->id = s->next_ack++;
    a->cb = cb;
    a->ud = ud;
    if (!s->acks) {
        s->acks = rt_malloc(sizeof *s->acks);
        rt_map_init(s->acks);
    }
    rt_map_put(s->acks, rt_slice((const char *)&a->id, sizeof a->id), a);
    rt_buf_t *b = enc_head(s->nsp, nattach ? SIO_BINARY_EVENT : SIO_EVENT, nattach, (int64_t)a->id);
    enc_array(b, event, args);
    client_send_text(s->client, b);
    client_send_attachments(s->client, attachments, nattach);
}

void sio_ack(sio_socket_t *s, int64_t ack_id, rt_slice_t args, const rt_slice_t *attachments,
             uint32_t nattach)
{
    if (s->state != SOCK_CONNECTED || ack_id < 0) return;
    rt_buf_t *b = enc_head(s->nsp, nattach ? SIO_BINARY_ACK : SIO_ACK, nattach, ack_id);
    enc_array(b, RT_SLICE_NULL, args);
    client_send_text(s->client, b);
    client_send_attachments(s->client, attachments, nattach);
}

/* ---- rooms ---- */
static sio_room_t *room_get(sio_nsp_t *nsp, rt_slice_t name, bool create)
{
    sio_room_t *r = rt_map_get(&nsp->rooms, name);
    if (r || !create) return r;
    r = rt_malloc(sizeof *r + name.n + 1);
    rt_list_init(&r->members);
    r->count = 0;
    r->namelen = (uint32_t)name.n;
    if (name.n) memcpy(r->name, name.p, name.n);
    r->name[name.n] = 0;
    rt_map_put(&nsp->rooms, rt_slice(r->name, name.n), r);
    return r;
}

static void nsp_maybe_cleanup(sio_nsp_t *nsp);

static void member_remove(sio_member_t *m)
{
    sio_room_t *r = m->room;
    sio_socket_t *s = m->s;
    sio_nsp_t *nsp = s->nsp;
    /* Leaving because the socket goes is reported by on_disconnect alone. */
    if (nsp->h.on_room && s->state == SOCK_CONNECTED)
        nsp->h.on_room(s, rt_slice(r->name, r->namelen), false, nsp->ud);
    rt_list_remove(&m->in_room);
    s->nrooms--;
    s->room_bytes -= r->namelen;
    if (--r->count == 0) {
        rt_map_del(&nsp->rooms, rt_slice(r->name, r->namelen));
        free(r);
    }
    rt_pool_free(&nsp->srv->member_pool, m);
}

static int join(sio_socket_t *s, rt_slice_t room, bool report);
int sio_join(sio_socket_t *s, rt_slice_t room) { return join(s, room, true); }
int sio_join_quiet(sio_socket_t *s, rt_slice_t room) { return join(s, room, false); }

static int join(sio_socket_t *s, rt_slice_t room, bool report)
{
    if (s->state != SOCK_CONNECTED) return RT_ESTATE;
    /* Find the room by hash, then the membership by pointer: a join costs a
     * lookup plus a short pointer walk, bounded by the per-socket cap. */
    sio_room_t *r = room_get(s->nsp, room, false);
    if (r)
        for (sio_member_t *m = s->rooms; m; m = m->next)
            if (m->room == r) return RT_OK;
    const char *why = room.n > SIO_MAX_ROOM_NAME                   ? "room name too long"
                      : s->nrooms >= SIO_MAX_ROOMS_PER_SOCKET       ? "too many rooms"
                      : s->room_bytes + room.n > SIO_MAX_ROOM_BYTES ? "room names too long in all"
                                                                    : NULL;
    if (why) {
        rt_warn_rl("sio", "socket %s is in %u rooms already: join refused (%s; %u bytes of names, "
                          "a name of %zu bytes)",
                   s->id, s->nrooms, why, s->room_bytes, room.n);
        return RT_ETOOBIG;
    }
    if (!r) r = room_get(s->nsp, room, true);
    s->nrooms++;
    s->room_bytes += (uint32_t)room.n;
    sio_member_t *m = rt_pool_alloc(&s->nsp->srv->member_pool);
    m->s = s;
    m->room = r;
    m->next = s->rooms;
    s->rooms = m;
    rt_list_insert_tail(&r->members, &m->in_room);
    r->count++;
    if (report && s->nsp->h.on_room) s->nsp->h.on_room(s, room, true, s->nsp->ud);
    return RT_OK;
}

void sio_socket_rooms_each(const sio_socket_t *s, void (*fn)(rt_slice_t room, void *arg), void *arg)
{
    for (sio_member_t *m = s->rooms; m; m = m->next) fn(rt_slice(m->room->name, m->room->namelen), arg);
}

void sio_leave(sio_socket_t *s, rt_slice_t room)
{
    sio_room_t *r = room_get(s->nsp, room, false);
    if (!r) return;
    for (sio_member_t **pp = &s->rooms; *pp; pp = &(*pp)->next) {
        sio_member_t *m = *pp;
        if (m->room == r) {
            *pp = m->next;
            member_remove(m);
            return;
        }
    }
}

void sio_leave_all(sio_socket_t *s)
{
    while (s->rooms) {
        sio_member_t *m = s->rooms;
        s->rooms = m->next;
        member_remove(m);
    }
}

void sio_nsp_each(sio_nsp_t *nsp, void (*fn)(sio_socket_t *s, void *arg), void *arg)
{
    rt_list_t *it, *nx;
    rt_list_foreach_safe(it, nx, &nsp->sockets) fn(rt_container_of(it, sio_socket_t, nsp_link), arg);
}

void sio_room_each(sio_nsp_t *nsp, rt_slice_t room, void (*fn)(sio_socket_t *s, void *arg), void *arg)
{
    sio_room_t *r = room_get(nsp, room, false);
    if (!r) return;
    rt_list_t *it, *nx;
    rt_list_foreach_safe(it, nx, &r->members) fn(rt_container_of(it, sio_member_t, in_room)->s, arg);
}

/* ---- broadcast: encode once, frame once, reference N times ---- */
static inline void deliver(sio_socket_t *s, eio_shared_t *m, uint64_t key)
{
    if (s->client && s->client->eio) eio_session_send_latest(s->client->eio, m, key);
}

static size_t broadcast(sio_nsp_t *nsp, const rt_slice_t *rooms, size_t nrooms, const sio_socket_t *except,
                        const rt_slice_t *xrooms, size_t nx, rt_slice_t body, uint64_t key);

size_t sio_broadcast(sio_nsp_t *nsp, const rt_slice_t *rooms, size_t nrooms,
                     const sio_socket_t *except, rt_slice_t body)
{
    return sio_broadcast_latest(nsp, rooms, nrooms, except, body, 0);
}

size_t sio_broadcast_latest(sio_nsp_t *nsp, const rt_slice_t *rooms, size_t nrooms,
                            const sio_socket_t *except, rt_slice_t body, uint64_t key)
{
    return broadcast(nsp, rooms, nrooms, except, NULL, 0, body, key);
}

size_t sio_broadcast_except(sio_nsp_t *nsp, const rt_slice_t *rooms, size_t nrooms, const rt_slice_t *except,
                            size_t nexcept, rt_slice_t body)
{
    return broadcast(nsp, rooms, nrooms, NULL, except, nexcept, body, 0);
}

static size_t broadcast(sio_nsp_t *nsp, const rt_slice_t *rooms, size_t nrooms, const sio_socket_t *except,
                        const rt_slice_t *xrooms, size_t nx, rt_slice_t body, uint64_t key)
{
    sio_server_t *srv = nsp->srv;
    /* Resolve rooms first: nobody to deliver to means nothing to encode. */
    sio_room_t *rs[64];
    size_t nr = 0;
    for (size_t i = 0; i < nrooms && nr < RT_ARRAY_LEN(rs); i++) {
        sio_room_t *r = room_get(nsp, rooms[i], false);
        if (r) rs[nr++] = r;
    }
    bool keep = sio_rec_keeps(nsp); /* a kept session may be in rooms nobody here is */
    if (!keep && (nrooms ? nr == 0 : nsp->nsockets == 0)) return 0;
    size_t tok_end;
    rt_json_type_t first = rt_json_scan(body.p, body.n, &tok_end);
    if (first != RT_JSON_STRING && first != RT_JSON_NUMBER) {
        /* clients drop the connection on an event without a name ("2[]") */
        rt_warn_rl("sio", "refused to broadcast an event without a name");
        return 0;
    }
    if (first == RT_JSON_STRING && sio_event_reserved(rt_json_trim(rt_slice(body.p, tok_end)))) {
        rt_warn_rl("sio", "refused to broadcast the reserved event name %.*s", (int)tok_end, body.p);
        return 0;
    }

    rt_buf_t *b = &srv->enc;
    b->len = 0;
    rt_buf_reserve(b, EIO_SHARED_RESERVE + nsp->namelen + body.n + 40);
    b->len = EIO_SHARED_RESERVE;
    sio_packet_head(b, SIO_EVENT, sio_nsp_name(nsp), 0, -1);
    rt_buf_putc(b, '[');
    size_t body_off = b->len;
    rt_buf_append_slice(b, body);
    if (keep) {
        rt_slice_t xs = except ? rt_slice_cstr(except->id) : RT_SLICE_NULL;
        if (except) sio_rec_keep(nsp, rooms, nrooms, &xs, 1, b, body_off, NULL, 0);
        else sio_rec_keep(nsp, rooms, nrooms, xrooms, nx, b, body_off, NULL, 0);
    }
    rt_buf_putc(b, ']');
    if (nrooms ? nr == 0 : nsp->nsockets == 0) return 0;
    eio_shared_t m = eio_shared_from_buf(b);

    size_t n = 0;
    srv->stats.broadcasts++;
    if (nx) {
        /* except rooms: their members are stamped first, then skipped like
         * the sockets a union has served already */
        uint32_t gen = ++srv->bcast_gen;
        if (gen == 0) gen = ++srv->bcast_gen;
        rt_list_t *it;
        for (size_t i = 0; i < nx; i++) {
            sio_room_t *xr = room_get(nsp, xrooms[i], false);
            if (!xr) continue;
            for (it = xr->members.next; it != &xr->members; it = it->next)
                rt_container_of(it, sio_member_t, in_room)->s->bcast_gen = gen;
        }
        if (nrooms == 0) {
            for (it = nsp->sockets.next; it != &nsp->sockets; it = it->next) {
                sio_socket_t *s = rt_container_of(it, sio_socket_t, nsp_link);
                if (s->bcast_gen == gen) continue;
                deliver(s, &m, key);
                n++;
            }
        }
        for (size_t i = 0; i < nr; i++)
            for (it = rs[i]->members.next; it != &rs[i]->members; it = it->next) {
                sio_socket_t *s = rt_container_of(it, sio_member_t, in_room)->s;
                if (s->bcast_gen == gen) continue;
                s->bcast_gen = gen;
                deliver(s, &m, key);
                n++;
            }
    } else if (nrooms == 0) {
        rt_list_t *it;
        for (it = nsp->sockets.next; it != &nsp->sockets; it = it->next) {
            sio_socket_t *s = rt_container_of(it, sio_socket_t, nsp_link);
            if (s == except) continue;
            deliver(s, &m, key);
            n++;
        }
    } else if (nr == 1) {
        rt_list_t *it;
        for (it = rs[0]->members.next; it != &rs[0]->members; it = it->next) {
            sio_socket_t *s = rt_container_of(it, sio_member_t, in_room)->s;
            if (s == except) continue;
            deliver(s, &m, key);
            n++;
        }
    } else {
        /* Union of several rooms: a generation stamp marks sockets already
         * served by this broadcast, so nobody gets it twice. */
        uint32_t gen = ++srv->bcast_gen;
        if (gen == 0) gen = ++srv->bcast_gen;
        for (size_t i = 0; i < nr; i++) {
            rt_list_t *it;
            for (it = rs[i]->members.next; it != &rs[i]->members; it = it->next) {
                sio_socket_t *s = rt_container_of(it, sio_member_t, in_room)->s;
                if (s == except || s->bcast_gen == gen) continue;
                s->bcast_gen = gen;
                deliver(s, &m, key);
                n++;
            }
        }
    }
    eio_shared_release(&m);
    srv->stats.deliveries += n;
    return n;
}

size_t sio_broadcast_binary(sio_nsp_t *nsp, const rt_slice_t *rooms, size_t nrooms, const rt_slice_t *except,
                            size_t nexcept, rt_slice_t body, const rt_slice_t *att, uint32_t natt)
{
    sio_server_t *srv = nsp->srv;
    size_t tok_end;
    rt_json_type_t first = rt_json_scan(body.p, body.n, &tok_end);
    if ((first != RT_JSON_STRING && first != RT_JSON_NUMBER) ||
        (first == RT_JSON_STRING && sio_event_reserved(rt_json_trim(rt_slice(body.p, tok_end))))) {
        rt_warn_rl("sio", "refused to broadcast an event without a name, or with a reserved one");
        return 0;
    }
    rt_buf_t b = {0};
    sio_packet_head(&b, natt ? SIO_BINARY_EVENT : SIO_EVENT, sio_nsp_name(nsp), natt, -1);
    rt_buf_putc(&b, '[');
    size_t body_off = b.len;
    rt_buf_append_slice(&b, body);
    if (sio_rec_keeps(nsp)) sio_rec_keep(nsp, rooms, nrooms, except, nexcept, &b, body_off, att, natt);
    rt_buf_putc(&b, ']');
    /* the members: the union of the rooms (or all), minus the except rooms' */
    uint32_t gen = ++srv->bcast_gen;
    if (gen == 0) gen = ++srv->bcast_gen;
    rt_list_t *it;
    for (size_t i = 0; i < nexcept; i++) {
        sio_room_t *xr = room_get(nsp, except[i], false);
        if (xr)
            for (it = xr->members.next; it != &xr->members; it = it->next)
                rt_container_of(it, sio_member_t, in_room)->s->bcast_gen = gen;
    }
    size_t n = 0;
    srv->stats.broadcasts++;
    for (size_t i = 0; i < (nrooms ? nrooms : 1); i++) {
        sio_room_t *r = nrooms ? room_get(nsp, rooms[i], false) : NULL;
        rt_list_t *head = nrooms ? (r ? &r->members : NULL) : &nsp->sockets;
        for (it = head ? head->next : NULL; it && it != head; it = it->next) {
            sio_socket_t *s = nrooms ? rt_container_of(it, sio_member_t, in_room)->s
                                     : rt_container_of(it, sio_socket_t, nsp_link);
            if (s->bcast_gen == gen || !s->client) continue;
            s->bcast_gen = gen;
            client_send_text(s->client, &b); /* binary: one copy per member (rare) */
            client_send_attachments(s->client, att, natt);
            n++;
        }
    }
    rt_buf_free(&b);
    srv->stats.deliveries += n;
    return n;
}

/* ---- namespaces ---- */
static void nsp_cleanup_task(net_loop_t *loop, net_task_t *t);

static sio_nsp_t *nsp_new(sio_server_t *srv, rt_slice_t name, const sio_nsp_handler_t *h, void *ud,
                          bool dynamic)
{
    sio_nsp_t *nsp = rt_calloc(1, sizeof *nsp);
    nsp->srv = srv;
    nsp->h = *h;
    nsp->ud = ud;
    nsp->dynamic = dynamic;
    nsp->name = rt_strndup(name.p, name.n);
    nsp->namelen = name.n;
    rt_list_init(&nsp->sockets);
    rt_map_init(&nsp->rooms);
    net_task_init(&nsp->cleanup, nsp_cleanup_task);
    rt_map_put(&srv->nsps, rt_slice(nsp->name, nsp->namelen), nsp);
    return nsp;
}

static void nsp_free(sio_nsp_t *nsp)
{
    net_task_cancel(&nsp->cleanup);
    rt_map_del(&nsp->srv->nsps, rt_slice(nsp->name, nsp->namelen));
    rt_map_free(&nsp->rooms);
    free(nsp->name);
    free(nsp);
}

/* A dynamic namespace whose last socket struct went is freed later in the
 * turn, unless a socket arrived meanwhile. */
static void nsp_cleanup_task(net_loop_t *loop, net_task_t *t)
{
    sio_nsp_t *nsp = rt_container_of(t, sio_nsp_t, cleanup);
    RT_UNUSED(loop);
    if (nsp->nalloc == 0 && nsp->nheld == 0 && nsp->rooms.count == 0) nsp_free(nsp);
}

static void nsp_maybe_cleanup(sio_nsp_t *nsp)
{
    if (!nsp->dynamic || nsp->nalloc || nsp->nheld || net_task_queued(&nsp->cleanup)) return;
    net_defer(nsp->srv->loop, &nsp->cleanup, NET_PHASE_WORK);
}

void sio_nsp_release(sio_nsp_t *nsp)
{
    rt_assert(nsp->nheld > 0);
    nsp->nheld--;
    nsp_maybe_cleanup(nsp);
}

sio_nsp_t *sio_server_of(sio_server_t *srv, const char *name, const sio_nsp_handler_t *h, void *ud)
{
    return nsp_new(srv, rt_slice_cstr(name), h, ud, false);
}

void sio_server_add_dynamic(sio_server_t *srv, bool (*match)(rt_slice_t, void *),
                            const sio_nsp_handler_t *h, void *ud)
{
    rt_assert(srv->ndyn < (int)RT_ARRAY_LEN(srv->dyn));
    srv->dyn[srv->ndyn++] = (sio_dynamic_t){match, *h, ud};
}

sio_nsp_t *sio_server_find(sio_server_t *srv, rt_slice_t name) { return rt_map_get(&srv->nsps, name); }

void sio_server_each_nsp(sio_server_t *srv, void (*fn)(sio_nsp_t *, void *), void *arg)
{
    rt_slice_t k;
    void *v;
    for (uint32_t it = 0; rt_map_next(&srv->nsps, &it, &k, &v);) fn(v, arg);
}

static sio_nsp_t *nsp_lookup_or_create(sio_server_t *srv, rt_slice_t name)
{
    sio_nsp_t *nsp = rt_map_get(&srv->nsps, name);
    if (nsp) return nsp;
    for (int i = 0; i < srv->ndyn; i++)
        if (srv->dyn[i].match(name, srv->dyn[i].ud))
            return nsp_new(srv, name, &srv->dyn[i].h, srv->dyn[i].ud, true);
    return NULL;
}

/* ---- sockets ---- */
void sio_socket_ref(sio_socket_t *s) { s->refs++; }

/* The client is admitted (or gone): off the wait list. */
static void client_unwait(sio_client_t *c)
{
    if (!rt_list_linked(&c->connect_wait)) return;
    rt_list_remove(&c->connect_wait);
    c->srv->npending--;
}

static void socket_free(sio_socket_t *s)
{
    sio_nsp_t *nsp = s->nsp;
    free(s->auth);
    free(s->id3);
    sio_rec_socket_free(s);
    rt_pool_free(&nsp->srv->socket_pool, s);
    nsp->nalloc--;
    nsp_maybe_cleanup(nsp);
}

void sio_socket_unref(sio_socket_t *s)
{
    rt_assert(s->refs > 0);
    if (--s->refs == 0 && s->state == SOCK_CLOSED) socket_free(s);
}

static void client_unlink_socket(sio_client_t *c, sio_socket_t *s)
{
    for (sio_socket_t **pp = &c->sockets; *pp; pp = &(*pp)->next_in_client)
        if (*pp == s) {
            *pp = s->next_in_client;
            return;
        }
}

/* Removes a socket from everything; on_disconnect for connected ones. */
static void socket_close(sio_socket_t *s, const char *reason)
{
    if (s->state == SOCK_CLOSED) return;
    bool was_connected = s->state == SOCK_CONNECTED;
    sio_nsp_t *nsp = s->nsp;
    if (was_connected && s->rec) sio_rec_socket_close(s, reason); /* kept with its rooms */
    s->state = SOCK_CLOSED; /* first: the rooms it leaves now are not reported (on_room) */
    sio_leave_all(s);
    if (was_connected) {
        rt_list_remove(&s->nsp_link);
        nsp->nsockets--;
    }
    if (s->acks) {
        /* Taken off the socket first: a callback may emit again (refused:
         * the socket is closed) but never sees a half-drained map. */
        rt_map_t *acks = s->acks;
        s->acks = NULL;
        rt_slice_t k;
        void *v;
        for (uint32_t it = 0; rt_map_next(acks, &it, &k, &v);) {
            sio_pending_ack_t *a = v;
            rt_map_del(acks, k);
            a->cb(s, RT_SLICE_NULL, NULL, 0, true, a->ud);
            free(a);
        }
        rt_map_free(acks);
        free(acks);
    }
    if (s->client) client_unlink_socket(s->client, s);
    if (was_connected) {
        nsp->srv->stats.disconnects++;
        for (int i = 0; i < SIO_REASONS; i++)
            if (reason == sio_reasons[i]) nsp->srv->stats.disconnects_by[i]++;
        if (nsp->h.on_disconnect) {
            s->refs++;
            nsp->h.on_disconnect(s, reason, nsp->ud);
            s->refs--;
        }
    }
    s->client = NULL;
    if (s->refs == 0) socket_free(s);
}

/* The CONNECT reply: {"sid"} ({"sid","pid"} with recovery); nothing for v3. */
static void connect_reply(sio_socket_t *s)
{
    rt_buf_t *b = enc_head(s->nsp, SIO_CONNECT, 0, -1);
    if (!client_v3(s->client)) {
        rt_buf_append_cstr(b, "{\"sid\":\"");
        rt_buf_append_cstr(b, s->id);
        if (s->rec) {
            rt_buf_append_cstr(b, "\",\"pid\":\"");
            rt_buf_append_cstr(b, sio_rec_pid(s));
        }
        rt_buf_append_cstr(b, "\"}");
    }
    client_send_text(s->client, b);
}

void sio_socket_accept(sio_socket_t *s)
{
    if (s->state != SOCK_PENDING || !s->client) return;
    if (s->rec && sio_rec_accept(s)) return; /* another process has its session: sio_socket_restore_remote */
    sio_accept_finish(s);
}

void sio_accept_finish(sio_socket_t *s)
{
    if (s->state != SOCK_PENDING || !s->client) return;
    sio_client_t *c = s->client;
    sio_nsp_t *nsp = s->nsp;
    s->state = SOCK_CONNECTED;
    s->seq = ++nsp->srv->seq;
    rt_list_insert_tail(&nsp->sockets, &s->nsp_link);
    nsp->nsockets++;
    nsp->srv->stats.connects++;
    if (!nsp->h.anonymous) client_unwait(c);
    if (s->rec) sio_rec_apply(s); /* missed packets first, as socket.io */
    connect_reply(s);
    char *auth = s->auth;
    s->auth = NULL;
    if (nsp->h.on_connect) {
        s->refs++;
        nsp->h.on_connect(s, auth ? rt_slice_cstr(auth) : RT_SLICE("{}"), nsp->ud);
        free(auth);
        sio_socket_unref(s);
    } else {
        free(auth);
    }
}

void sio_socket_reject(sio_socket_t *s, const char *message, rt_slice_t data_json)
{
    if (s->state != SOCK_PENDING) return;
    sio_nsp_t *nsp = s->nsp;
    if (s->client) {
        rt_buf_t *b = enc_head(nsp, SIO_CONNECT_ERROR, 0, -1);
        if (client_v3(s->client)) { /* v4 protocol: err.data || err.message */
            if (data_json.n) rt_buf_append_slice(b, data_json);
            else rt_buf_append_json_string(b, rt_slice_cstr(message));
        } else {
            rt_buf_append_cstr(b, "{\"message\":");
            rt_buf_append_json_string(b, rt_slice_cstr(message));
            if (data_json.n) {
                rt_buf_append_cstr(b, ",\"data\":");
                rt_buf_append_slice(b, data_json);
            }
            rt_buf_putc(b, '}');
        }
        client_send_text(s->client, b);
    }
    nsp->srv->stats.connect_errors++;
    socket_close(s, REASON_SERVER_NSP);
}

void sio_socket_disconnect(sio_socket_t *s)
{
    if (s->state != SOCK_CONNECTED) return;
    rt_buf_t *b = enc_head(s->nsp, SIO_DISCONNECT, 0, -1);
    client_send_text(s->client, b);
    socket_close(s, REASON_SERVER_NSP);
}

/* ---- incoming packets ---- */
static sio_socket_t *client_socket(sio_client_t *c, rt_slice_t nsp)
{
    for (sio_socket_t *s = c->sockets; s; s = s->next_in_client)
        if (rt_slice_eq(sio_nsp_name(s->nsp), nsp)) return s;
    return NULL;
}

static void protocol_error(sio_client_t *c, const char *why)
{
    c->srv->stats.protocol_errors++;
    rt_debug("sio", "closing session: %s", why);
    if (c->eio) eio_session_close(c->eio);
}

static void on_connect_packet(sio_client_t *c, const sio_packet_t *p)
{
    sio_server_t *srv = c->srv;
    sio_socket_t *s = client_socket(c, p->nsp);
    if (s) {
        /* A repeated CONNECT (browsers reconnecting redundantly): answer it
         * again with the same sid instead of tearing the session down. */
        if (s->state == SOCK_CONNECTED) connect_reply(s);
        return;
    }
    unsigned n = 0;
    for (sio_socket_t *o = c->sockets; o; o = o->next_in_client) n++;
    if (n >= SIO_MAX_NSP_PER_CLIENT) {
        rt_buf_t *b = &srv->enc;
        b->len = 0;
        sio_packet_head(b, SIO_CONNECT_ERROR, p->nsp, 0, -1);
        rt_buf_append_cstr(b, client_v3(c) ? "\"Too many namespaces\"" : "{\"message\":\"Too many namespaces\"}");
        client_send_text(c, b);
        srv->stats.connect_errors++;
        srv->stats.too_many_namespaces++;
        rt_warn_rl("sio", "a client tried to join more than %d namespaces", SIO_MAX_NSP_PER_CLIENT);
        return;
    }
    sio_nsp_t *nsp = nsp_lookup_or_create(srv, p->nsp);
    if (!nsp) {
        rt_buf_t *b = &srv->enc;
        b->len = 0;
        sio_packet_head(b, SIO_CONNECT_ERROR, p->nsp, 0, -1);
        rt_buf_append_cstr(b, client_v3(c) ? "\"Invalid namespace\"" : "{\"message\":\"Invalid namespace\"}");
        client_send_text(c, b);
        srv->stats.connect_errors++;
        srv->stats.invalid_namespace++;
        return;
    }
    s = rt_pool_alloc(&srv->socket_pool);
    s->client = c;
    s->nsp = nsp;
    nsp->nalloc++;
    s->state = SOCK_PENDING;
    rt_random_id(s->id);
    if (client_v3(c)) { /* the id socket.io-client 2.x computes for itself */
        const char *esid = eio_session_sid(c->eio);
        rt_buf_t id = {0};
        if (nsp->namelen > 1) {
            rt_buf_append_slice(&id, sio_nsp_name(nsp));
            rt_buf_putc(&id, '#');
        }
        rt_buf_append_cstr(&id, esid);
        rt_buf_putc(&id, 0);
        s->id3 = id.data;
    }
    s->next_in_client = c->sockets;
    c->sockets = s;
    rt_slice_t auth = p->payload.n ? p->payload : RT_SLICE("{}");
    s->auth = rt_strndup(auth.p, auth.n);
    if (!client_v3(c)) sio_rec_socket_new(s, auth);
    if (nsp->h.on_connect_request) {
        s->refs++;
        nsp->h.on_connect_request(s, rt_slice_cstr(s->auth), nsp->ud);
        sio_socket_unref(s);
    } else {
        sio_socket_accept(s);
    }
}

/* A v4-protocol CONNECT ("0/admin?token=x,"): the query rides in the
 * namespace; it becomes the auth object, as socket.io does for v2 clients. */
static void on_connect_packet_v3(sio_client_t *c, const sio_packet_t *p)
{
    const char *qm = memchr(p->nsp.p, '?', p->nsp.n);
    if (!qm) {
        on_connect_packet(c, p);
        return;
    }
    sio_packet_t q = *p;
    q.nsp = rt_slice(p->nsp.p, (size_t)(qm - p->nsp.p));
    rt_slice_t query = rt_slice(qm + 1, p->nsp.n - (size_t)(qm + 1 - p->nsp.p));
    rt_buf_t auth = {0}, k = {0}, v = {0};
    rt_buf_putc(&auth, '{');
    for (const char *a = query.p, *e = query.p + query.n; a < e;) {
        const char *amp = memchr(a, '&', (size_t)(e - a));
        if (!amp) amp = e;
        const char *eq = memchr(a, '=', (size_t)(amp - a));
        k.len = v.len = 0;
        if (rt_url_decode(rt_slice(a, (size_t)((eq ? eq : amp) - a)), true, &k) == RT_OK && k.len &&
            (!eq || rt_url_decode(rt_slice(eq + 1, (size_t)(amp - eq - 1)), true, &v) == RT_OK) &&
            rt_utf8_valid(k.data, k.len) && (!v.len || rt_utf8_valid(v.data, v.len))) {
            if (auth.len > 1) rt_buf_putc(&auth, ',');
            rt_buf_append_json_string(&auth, rt_slice(k.data, k.len));
            rt_buf_putc(&auth, ':');
            rt_buf_append_json_string(&auth, rt_slice(v.data ? v.data : "", v.len));
        }
        a = amp + 1;
    }
    rt_buf_putc(&auth, '}');
    q.payload = rt_slice(auth.data, auth.len);
    on_connect_packet(c, &q);
    rt_buf_free(&auth);
    rt_buf_free(&k);
    rt_buf_free(&v);
}

static void dispatch(sio_client_t *c, const sio_packet_t *p, const rt_slice_t *att, uint32_t natt)
{
    if (p->type == SIO_CONNECT) {
        if (client_v3(c)) on_connect_packet_v3(c, p);
        else on_connect_packet(c, p);
        return;
    }
    sio_socket_t *s = client_socket(c, p->nsp);
    if (!s) {
        protocol_error(c, "packet for a namespace that is not connected");
        return;
    }
    if (s->state != SOCK_CONNECTED) return; /* middleware still deciding: drop */
    switch (p->type) {
    case SIO_DISCONNECT: socket_close(s, REASON_CLIENT_NSP); break;
    case SIO_EVENT:
    case SIO_BINARY_EVENT: {
        rt_buf_t name = c->srv->evname;
        name.len = 0;
        if (sio_event_name(p->payload, &name) < 0) {
            c->srv->evname = name;
            protocol_error(c, "bad event name");
            break;
        }
        rt_json_iter_t it;
        rt_slice_t first;
        rt_json_iter_init(&it, p->payload);
        rt_json_array_next(&it, &first);
        /* args: from after the first element's comma to before ']' */
        const char *a = first.p + first.n, *end = p->payload.p + p->payload.n - 1;
        while (a < end && *a != ',') a++;
        if (a < end) a++;
        while (a < end && (*a == ' ' || *a == '\n' || *a == '\r' || *a == '\t')) a++;
        while (end > a && (end[-1] == ' ' || end[-1] == '\n' || end[-1] == '\r' || end[-1] == '\t'))
            end--;
        sio_event_t ev = {rt_slice(name.data, name.len), p->payload, rt_slice(a, (size_t)(end - a)),
                          p->ack_id, att, natt};
        c->srv->stats.events_in++;
        if (s->nsp->h.on_event) {
            s->refs++;
            s->nsp->h.on_event(s, &ev, s->nsp->ud);
            sio_socket_unref(s);
        }
        c->srv->evname = name;
        break;
    }
    case SIO_ACK:
    case SIO_BINARY_ACK: {
        uint64_t id = (uint64_t)p->ack_id;
        sio_pending_ack_t *a = s->acks && p->ack_id >= 0 ? rt_map_del(s->acks, rt_slice((const char *)&id, sizeof id))
                                                         : NULL;
        if (!a) break; /* an ack for nothing: ignored, as socket.io does */
        if (s->acks->count == 0) { /* none awaited: an idle socket keeps no table */
            rt_map_free(s->acks);
            free(s->acks);
            s->acks = NULL;
        }
        rt_slice_t inner = rt_json_trim(p->payload);
        inner = rt_json_trim(rt_slice(inner.p + 1, inner.n - 2));
        s->refs++;
        a->cb(s, inner, att, natt, false, a->ud);
        free(a);
        sio_socket_unref(s);
        break;
    }
    default: protocol_error(c, "unexpected packet type"); break;
    }
}

/* Every {"_placeholder":true,...} object must carry an integer "num" naming
 * one of the n attachments, as socket.io-parser's reconstruction demands
 * ("illegal attachments" otherwise). The payload was validated already. */
static bool placeholders_valid(rt_slice_t v, uint32_t n, int depth)
{
    rt_json_type_t t = rt_json_peek(v);
    if (t != RT_JSON_ARRAY && t != RT_JSON_OBJECT) return true;
    if (depth > RT_JSON_MAX_DEPTH) return false;
    rt_json_iter_t it;
    rt_slice_t k, e;
    rt_json_iter_init(&it, v);
    if (t == RT_JSON_ARRAY) {
        while (rt_json_array_next(&it, &e))
            if (!placeholders_valid(e, n, depth + 1)) return false;
        return true;
    }
    rt_slice_t ph, num;
    if (rt_json_object_get(v, "_placeholder", &ph) && rt_slice_eq_cstr(ph, "true")) {
        uint64_t idx;
        return rt_json_object_get(v, "num", &num) && rt_slice_to_u64(num, &idx) == 0 && idx < n;
    }
    while (rt_json_object_next(&it, &k, &e))
        if (!placeholders_valid(e, n, depth + 1)) return false;
    return true;
}

static void bin_release(sio_binpending_t *b)
{
    net_timer_stop(&b->timer);
    for (uint32_t i = 0; i < b->have; i++) free((void *)b->att[i].p);
    free(b->text);
    free(b);
}

static void bin_free(sio_client_t *c)
{
    if (!c->bin) return;
    bin_release(c->bin);
    c->bin = NULL;
}

static void bin_timeout(net_loop_t *loop, net_timer_t *t)
{
    sio_binpending_t *b = rt_container_of(t, sio_binpending_t, timer);
    RT_UNUSED(loop);
    rt_warn_rl("sio", "closing a session whose binary event got %u of %u attachments in %u ms", b->have,
               b->want, b->c->srv->opt.attachment_timeout);
    protocol_error(b->c, "attachments did not arrive in time");
}

static void eio_on_message(eio_session_t *es, bool binary, rt_slice_t data, void *ud)
{
    RT_UNUSED(ud);
    sio_client_t *c = eio_session_data(es);
    if (!c) return;
    if (binary) {
        sio_binpending_t *b = c->bin;
        if (!b) {
            protocol_error(c, "unexpected binary message");
            return;
        }
        size_t budget = c->srv->opt.max_attachment_bytes ? c->srv->opt.max_attachment_bytes
                                                         : eio_server_options(c->srv->eio)->max_payload;
        if (data.n > budget - b->bytes) {
            rt_warn_rl("sio", "closing a session whose binary event carries more than %zu bytes of "
                              "attachments", budget);
            protocol_error(c, "attachments too large");
            return;
        }
        b->bytes += data.n;
        char *copy = rt_malloc(data.n ? data.n : 1);
        if (data.n) memcpy(copy, data.p, data.n);
        b->att[b->have++] = rt_slice(copy, data.n);
        if (b->have < b->want) return;
        sio_packet_t p;
        sio_packet_decode(rt_slice(b->text, b->text_len), &p); /* validated before */
        c->bin = NULL;
        net_timer_stop(&b->timer);
        if (placeholders_valid(p.payload, b->have, 0)) dispatch(c, &p, b->att, b->have);
        else protocol_error(c, "illegal attachments");
        bin_release(b);
        return;
    }
    if (c->bin) {
        protocol_error(c, "text message while attachments are pending");
        return;
    }
    sio_packet_t p;
    if (sio_packet_decode(data, &p) < 0) {
        protocol_error(c, "malformed packet");
        return;
    }
    if (p.attachments) {
        sio_binpending_t *b = rt_calloc(1, sizeof *b);
        b->text = rt_strndup(data.p, data.n);
        b->text_len = data.n;
        b->want = p.attachments;
        b->c = c;
        net_timer_init(&b->timer, bin_timeout);
        net_timer_start(c->srv->loop, &b->timer, c->srv->opt.attachment_timeout);
        c->bin = b;
        return;
    }
    dispatch(c, &p, NULL, 0);
}

/* ---- clients ---- */
static void connect_timer_cb(net_loop_t *loop, net_timer_t *t)
{
    sio_server_t *srv = rt_container_of(t, sio_server_t, connect_timer);
    uint64_t now = net_loop_now(loop);
    while (!rt_list_empty(&srv->connect_wait)) {
        sio_client_t *c = rt_container_of(srv->connect_wait.next, sio_client_t, connect_wait);
        if (c->connect_deadline > now) {
            net_timer_start(loop, t, c->connect_deadline - now);
            return;
        }
        client_unwait(c);
        if (c->eio) eio_session_close(c->eio);
    }
}

static void eio_on_open(eio_session_t *es, const http_request_t *req, void *ud)
{
    sio_server_t *srv = ud;
    if (srv->opt.max_pending && srv->npending >= srv->opt.max_pending) {
        /* Full of sessions that never got in: the oldest goes, so a flood of
         * handshakes cannot lock out the clients that follow it. */
        sio_client_t *old = rt_container_of(srv->connect_wait.next, sio_client_t, connect_wait);
        rt_warn_rl("sio", "%zu sessions are waiting to join a namespace (max_pending): closing the oldest",
                   srv->npending);
        client_unwait(old);
        srv->stats.evicted++;
        if (old->eio) eio_session_close(old->eio);
    }
    sio_client_t *c = rt_pool_alloc(&srv->client_pool);
    c->srv = srv;
    c->eio = es;
    eio_session_set_data(es, c);
    /* Constant timeout: the wait list stays sorted by deadline (FIFO). */
    c->connect_deadline = net_loop_now(srv->loop) + srv->opt.connect_timeout;
    rt_list_insert_tail(&srv->connect_wait, &c->connect_wait);
    srv->npending++;
    if (!net_timer_active(&srv->connect_timer))
        net_timer_start(srv->loop, &srv->connect_timer, srv->opt.connect_timeout);
    if (srv->ch.on_client) srv->ch.on_client(c, req, srv->ch_ud);
    if (eio_session_proto(es) == 3 && c->eio == es) {
        /* Socket.IO v4 (v2 clients): the server joins the client to "/" by itself */
        sio_packet_t p = {.type = SIO_CONNECT, .nsp = RT_SLICE("/"), .ack_id = -1};
        on_connect_packet(c, &p);
    }
}

static void eio_on_close(eio_session_t *es, eio_reason_t reason, void *ud)
{
    sio_server_t *srv = ud;
    sio_client_t *c = eio_session_data(es);
    if (!c) return;
    c->eio = NULL;
    client_unwait(c);
    while (c->sockets) socket_close(c->sockets, reason);
    bin_free(c);
    if (srv->ch.on_client_close) srv->ch.on_client_close(c, srv->ch_ud);
    rt_pool_free(&srv->client_pool, c);
}

sio_server_t *sio_server_new(http_server_t *http, const char *path, const eio_options_t *eopt,
                             const sio_options_t *opt)
{
    sio_server_t *srv = rt_calloc(1, sizeof *srv);
    srv->loop = http_server_loop(http);
    if (opt) srv->opt = *opt;
    else sio_options_default(&srv->opt);
    rt_map_init(&srv->nsps);
    srv->socket_pool = (rt_pool_t)RT_POOL_INIT(sio_socket_t);
    srv->client_pool = (rt_pool_t)RT_POOL_INIT(sio_client_t);
    srv->member_pool = (rt_pool_t)RT_POOL_INIT(sio_member_t);
    rt_list_init(&srv->connect_wait);
    net_timer_init(&srv->connect_timer, connect_timer_cb);
    static const eio_handler_t eh = {eio_on_open, eio_on_message, eio_on_close};
    srv->eio = eio_server_new(http, path, eopt, &eh, srv);
    sio_rec_init(srv);
    return srv;
}

void sio_server_set_client_handler(sio_server_t *srv, const sio_client_handler_t *h, void *ud)
{
    srv->ch = *h;
    srv->ch_ud = ud;
}

void sio_server_free(sio_server_t *srv)
{
    if (!srv) return;
    eio_server_free(srv->eio); /* every socket is gone after it (it drains the loop) */
    net_timer_stop(&srv->connect_timer);
    sio_rec_free(srv);
    rt_slice_t k;
    void *v;
    for (uint32_t it = 0; rt_map_next(&srv->nsps, &it, &k, &v);) {
        sio_nsp_t *nsp = v;
        net_task_cancel(&nsp->cleanup);
        rt_map_free(&nsp->rooms);
        free(nsp->name);
        free(nsp);
    }
    rt_map_free(&srv->nsps);
    rt_buf_free(&srv->enc);
    rt_buf_free(&srv->evname);
    rt_pool_destroy(&srv->socket_pool);
    rt_pool_destroy(&srv->client_pool);
    rt_pool_destroy(&srv->member_pool);
    free(srv);
}
