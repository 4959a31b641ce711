/* sio: connection state recovery (socket.io >= 4.6 semantics; sio.h).
 *
 * The log: every event packet kept (a broadcast to a namespace with sockets
 * or kept sessions, an emit without ack) gets the next sequence number of
 * this process; its offset "<logid>.<seq>" is appended to the packet as a
 * last argument, so the client always knows the last one it processed. The
 * entries sit in a ring in sequence order with what a session needs to
 * match them (namespace, rooms, except), for the window plus the slack, and
 * within the byte budget: evicting from the oldest end keeps the sequence
 * contiguous, so an offset is found in O(1).
 *
 *   ring: [seq first .. first+count-1]   offsets -> index = seq - first
 *
 * The sessions: a connected socket that goes for a transport reason becomes
 * a kept session (pid -> sid, namespace, identity, rooms, where its replay
 * starts) in a map and a FIFO (expiry order = keep order: the window is one
 * constant). A CONNECT whose auth names {pid, offset} takes the session
 * (once), replays the entries after the offset that match it, then the
 * CONNECT reply {"sid","pid"} with the same ids: socket.recovered.
 *
 * Where the replay starts, exactly: a session remembers start (the log
 * position when it began or was recovered) and known (the offset the client
 * had then: the last one replayed to it, or the one it sent, or none). The
 * client's offset at the next reconnect is either still `known` (it received
 * nothing since: replay after start) or one of ours after start (replay
 * after it). Anything else (another process's offset, a string the client
 * took from an event that was not kept) is refused: replaying from a guess
 * could duplicate or skip.
 *
 * Another process (worker, node) keeps the session: the remote hook carries
 * the request (cluster/); that process exports the session with the entries
 * after the offset up to the request, and this one appends its own entries
 * after the mark (its log position when the request went by, in the same
 * order of Redis messages) before going live. */
#include "sio_int.h"

#include <stddef.h>
#include <stdio.h>

#define REC_MAX_ID 64         /* pid and offset strings accepted from a client */
#define REC_TICK_MS 1000
/* A recovery replays what was kept after the client's offset, scanning
 * every entry since: at most this many (about 2 ms), or it is refused as
 * evicted (a client away through 100,000 events). */
#define REC_MAX_SCAN 100000
#define NSP_CHARGE(nsp) (sizeof(sio_nsp_t) + (nsp)->namelen + 1)

const char *const sio_rec_reasons[SIO_REC_REASONS] = {"unknown", "identity", "evicted", "remote", "too_big"};

typedef struct sio_rec_entry {
    uint64_t at; /* loop ms */
    sio_nsp_t *nsp;
    size_t bytes;
    uint32_t nrooms, nattach, body_len, nexcept;
    rt_slice_t *except; /* rooms whose members do not get it (an excepted socket: its id) */
    rt_slice_t *rooms;
    rt_slice_t *att;
    const char *body; /* array content, offset included */
    _Alignas(max_align_t) char data[];
} rec_entry_t;

typedef struct sio_rec_session {
    rt_list_t fifo;
    sio_nsp_t *nsp;
    uint64_t expires; /* loop ms */
    uint64_t start;   /* log position when it began or was recovered */
    size_t bytes;
    uint32_t nrooms, identity_len;
    const char *identity;
    const char *known; /* NUL-terminated, or NULL */
    rt_slice_t *rooms;
    char pid[21], sid[21];
    _Alignas(max_align_t) char data[]; /* room slices first */
} rec_session_t;

typedef struct sio_sockrec {
    char pid[21];
    bool recovered;
    bool tried;      /* the wanted pid was looked up */
    bool waiting;    /* the remote hook has it */
    uint64_t start;  /* log position when this session began / was recovered */
    char *known;     /* the client's offset then, or NULL */
    char *identity;
    uint32_t identity_len;
    char *want_pid, *want_offset; /* what the CONNECT asked for */
    /* a restore under way (between sio_rec_accept and sio_rec_apply) */
    rec_session_t *plan;
    uint64_t plan_from; /* own entries after it are replayed */
    char *plan_blob;    /* the packets another process handed over (JSON array), or NULL */
    size_t plan_blob_len;
} sockrec_t;

typedef struct sio_rec {
    sio_server_t *srv;
    uint64_t window, keep; /* ms */
    size_t max_bytes;
    char logid[9];
    rec_entry_t **ring;
    size_t cap, head, count;
    uint64_t first; /* seq of ring[head]; the next entry gets first + count */
    rt_map_t sessions; /* pid -> rec_session_t */
    rt_list_t fifo;
    net_timer_t timer;
    sio_recovery_hooks_t hooks;
    void *hooks_ud;
    sio_recovery_stats_t stats;
} rec_t;

/* ---- small helpers ---- */
static uint64_t rec_now(const rec_t *r) { return net_loop_now(r->srv->loop); }
static uint64_t rec_last(const rec_t *r) { return r->first + r->count - 1; } /* position: last seq kept */

static char *dup_slice(rt_slice_t s)
{
    char *p = rt_malloc(s.n + 1);
    if (s.n) memcpy(p, s.p, s.n);
    p[s.n] = 0;
    return p;
}

static bool str_eq(const char *a, const char *b) { return a == b || (a && b && !strcmp(a, b)); }

/* "<logid>.<seq>" of this process, or false. */
static bool parse_own(const rec_t *r, const char *off, uint64_t *seq)
{
    size_t l = strlen(r->logid);
    if (!off || strncmp(off, r->logid, l) || off[l] != '.') return false;
    const char *d = off + l + 1;
    if (!*d || strlen(d) > 19) return false;
    uint64_t v = 0;
    for (; *d; d++) {
        if (*d < '0' || *d > '9') return false;
        v = v * 10 + (uint64_t)(*d - '0');
    }
    *seq = v;
    return true;
}

static void append_offset(const rec_t *r, rt_buf_t *b, uint64_t seq)
{
    rt_buf_append_cstr(b, ",\"");
    rt_buf_append_cstr(b, r->logid);
    rt_buf_putc(b, '.');
    rt_buf_append_u64(b, seq);
    rt_buf_putc(b, '"');
}

/* The last element of a JSON array's content, when it is a string: the
 * offset a replayed packet leaves the client with. */
static char *last_string(rt_slice_t arr)
{
    rt_json_iter_t it;
    rt_slice_t v, last = RT_SLICE_NULL;
    rt_json_iter_init(&it, arr);
    while (rt_json_array_next(&it, &v)) last = v;
    if (!last.p || rt_json_peek(last) != RT_JSON_STRING) return NULL;
    rt_buf_t out = {0};
    if (rt_json_string_decode(last, &out) < 0 || out.len > REC_MAX_ID) {
        rt_buf_free(&out);
        return NULL;
    }
    rt_buf_putc(&out, 0);
    return out.data;
}

/* ---- the log ---- */
static void entry_free(rec_t *r, rec_entry_t *e)
{
    r->stats.log_bytes -= e->bytes;
    sio_nsp_release(e->nsp);
    free(e);
}

static void sessions_bytes_trim(rec_t *r, size_t need);

/* Drops entries older than keep, and from the oldest end while over budget. */
static void log_trim(rec_t *r)
{
    uint64_t now = rec_now(r);
    while (r->count) {
        rec_entry_t *e = r->ring[r->head];
        if (e->at + r->keep > now && r->stats.log_bytes + r->stats.session_bytes <= r->max_bytes) break;
        r->ring[r->head] = NULL;
        r->head = (r->head + 1) & (r->cap - 1);
        r->count--;
        r->first++;
        entry_free(r, e);
    }
    r->stats.log_entries = r->count;
}

static void tick_arm(rec_t *r)
{
    if (!net_timer_active(&r->timer) && (r->count || !rt_list_empty(&r->fifo)))
        net_timer_start(r->srv->loop, &r->timer, REC_TICK_MS);
}

static rec_entry_t *entry_at(const rec_t *r, uint64_t seq)
{
    return r->ring[(r->head + (size_t)(seq - r->first)) & (r->cap - 1)];
}

void sio_rec_keep(sio_nsp_t *nsp, const rt_slice_t *rooms, size_t nrooms, const rt_slice_t *except,
                  size_t nexcept, rt_buf_t *b, size_t body_off, const rt_slice_t *att, uint32_t natt)
{
    rec_t *r = nsp->srv->rec;
    if (b->len == body_off) return; /* no event name: nothing a client could take an offset from */
    uint64_t seq = r->first + r->count;
    append_offset(r, b, seq);
    size_t body_len = b->len - body_off, names = 0, atts = 0;
    for (size_t i = 0; i < nrooms; i++) names += rooms[i].n;
    for (size_t i = 0; i < nexcept; i++) names += except[i].n;
    for (uint32_t i = 0; i < natt; i++) atts += att[i].n;
    size_t bytes = sizeof(rec_entry_t) + (nrooms + nexcept + natt) * sizeof(rt_slice_t) + names + atts + body_len;
    rec_entry_t *e = rt_malloc(bytes);
    bytes += NSP_CHARGE(nsp); /* it keeps the namespace alive: charged, conservatively, to each holder */
    e->at = rec_now(r);
    e->nsp = nsp;
    e->bytes = bytes;
    e->nrooms = (uint32_t)nrooms;
    e->nattach = natt;
    e->body_len = (uint32_t)body_len;
    e->nexcept = (uint32_t)nexcept;
    e->rooms = (rt_slice_t *)(void *)e->data;
    e->except = e->rooms + nrooms;
    e->att = e->except + nexcept;
    char *p = (char *)(e->att + natt);
    for (size_t i = 0; i < nrooms; i++) {
        if (rooms[i].n) memcpy(p, rooms[i].p, rooms[i].n);
        e->rooms[i] = rt_slice(p, rooms[i].n);
        p += rooms[i].n;
    }
    for (size_t i = 0; i < nexcept; i++) {
        if (except[i].n) memcpy(p, except[i].p, except[i].n);
        e->except[i] = rt_slice(p, except[i].n);
        p += except[i].n;
    }
    for (uint32_t i = 0; i < natt; i++) {
        if (att[i].n) memcpy(p, att[i].p, att[i].n);
        e->att[i] = rt_slice(p, att[i].n);
        p += att[i].n;
    }
    memcpy(p, b->data + body_off, body_len);
    e->body = p;
    nsp->nheld++;
    if (r->count == r->cap) { /* grow the ring, unrolled to start at 0 */
        size_t ncap = r->cap ? r->cap * 2 : 1024;
        rec_entry_t **nr = rt_calloc(ncap, sizeof *nr);
        for (size_t i = 0; i < r->count; i++) nr[i] = r->ring[(r->head + i) & (r->cap - 1)];
        free(r->ring);
        r->ring = nr;
        r->stats.log_bytes += (ncap - r->cap) * sizeof *nr; /* the ring is part of the budget */
        r->cap = ncap;
        r->head = 0;
    }
    r->ring[(r->head + r->count) & (r->cap - 1)] = e;
    r->count++;
    r->stats.log_bytes += bytes;
    log_trim(r);
    tick_arm(r);
}

/* Whether a session of nsp in rooms (a set) with id sid gets entry e:
 * socket.io's shouldIncludePacket (its own id is one of its rooms). */
static bool entry_matches(const rec_entry_t *e, const sio_nsp_t *nsp, const rt_map_t *rooms, rt_slice_t sid)
{
    if (e->nsp != nsp) return false;
    for (uint32_t i = 0; i < e->nexcept; i++)
        if (rt_map_get(rooms, e->except[i]) || rt_slice_eq(e->except[i], sid)) return false;
    if (e->nrooms == 0) return true;
    for (uint32_t i = 0; i < e->nrooms; i++)
        if (rt_map_get(rooms, e->rooms[i]) || rt_slice_eq(e->rooms[i], sid)) return true;
    return false;
}

/* ---- sessions ---- */
static void session_free(rec_t *r, rec_session_t *ss)
{
    r->stats.session_bytes -= ss->bytes;
    r->stats.sessions--;
    sio_nsp_release(ss->nsp);
    free(ss);
}

/* Off the map and the FIFO (it is the caller's now). */
static void session_take(rec_t *r, rec_session_t *ss)
{
    rt_map_del(&r->sessions, rt_slice(ss->pid, strlen(ss->pid)));
    rt_list_remove(&ss->fifo);
}

static void sessions_bytes_trim(rec_t *r, size_t need)
{
    while (!rt_list_empty(&r->fifo) && r->stats.session_bytes + need > r->max_bytes / 2) {
        rec_session_t *ss = rt_container_of(r->fifo.next, rec_session_t, fifo);
        session_take(r, ss);
        session_free(r, ss);
        r->stats.sessions_evicted++;
        rt_warn_rl("sio", "connection state recovery: sessions kept exceed half of recovery_max_bytes: "
                          "the oldest is dropped (it will not be recovered)");
    }
}

/* A session struct in one allocation; rooms[i] are copied. */
static rec_session_t *session_new(sio_nsp_t *nsp, const char *pid, const char *sid, rt_slice_t identity,
                                  const char *known, uint64_t start, const rt_slice_t *rooms, uint32_t nrooms)
{
    size_t names = 0, kl = known ? strlen(known) + 1 : 0;
    for (uint32_t i = 0; i < nrooms; i++) names += rooms[i].n;
    size_t bytes = sizeof(rec_session_t) + nrooms * sizeof(rt_slice_t) + names + identity.n + kl;
    rec_session_t *ss = rt_calloc(1, bytes);
    bytes += NSP_CHARGE(nsp);
    ss->nsp = nsp;
    ss->start = start;
    ss->bytes = bytes;
    ss->nrooms = nrooms;
    snprintf(ss->pid, sizeof ss->pid, "%s", pid);
    snprintf(ss->sid, sizeof ss->sid, "%s", sid);
    ss->rooms = (rt_slice_t *)(void *)ss->data;
    char *p = (char *)(ss->rooms + nrooms);
    for (uint32_t i = 0; i < nrooms; i++) {
        if (rooms[i].n) memcpy(p, rooms[i].p, rooms[i].n);
        ss->rooms[i] = rt_slice(p, rooms[i].n);
        p += rooms[i].n;
    }
    ss->identity = p;
    ss->identity_len = (uint32_t)identity.n;
    if (identity.n) memcpy(p, identity.p, identity.n);
    p += identity.n;
    if (known) {
        memcpy(p, known, kl);
        ss->known = p;
    }
    nsp->nheld++;
    rt_list_init(&ss->fifo);
    return ss;
}

static void tick_cb(net_loop_t *loop, net_timer_t *t)
{
    rec_t *r = rt_container_of(t, rec_t, timer);
    uint64_t now = net_loop_now(loop);
    while (!rt_list_empty(&r->fifo)) {
        rec_session_t *ss = rt_container_of(r->fifo.next, rec_session_t, fifo);
        if (ss->expires > now) break;
        session_take(r, ss);
        session_free(r, ss);
    }
    log_trim(r);
    tick_arm(r);
}

void sio_rec_init(sio_server_t *srv)
{
    if (!srv->opt.recovery_window) return;
    rec_t *r = rt_calloc(1, sizeof *r);
    r->srv = srv;
    r->window = srv->opt.recovery_window;
    r->keep = r->window + srv->opt.recovery_slack;
    r->max_bytes = srv->opt.recovery_max_bytes ? srv->opt.recovery_max_bytes : (size_t)64 << 20;
    char id[21];
    rt_random_id(id);
    memcpy(r->logid, id, 8); /* a new log per process: offsets of an earlier life are not ours */
    r->logid[8] = 0;
    r->first = 1; /* position 0: before anything */
    rt_map_init(&r->sessions);
    rt_list_init(&r->fifo);
    net_timer_init(&r->timer, tick_cb);
    srv->rec = r;
}

void sio_rec_free(sio_server_t *srv)
{
    rec_t *r = srv->rec;
    if (!r) return;
    net_timer_stop(&r->timer);
    while (!rt_list_empty(&r->fifo)) {
        rec_session_t *ss = rt_container_of(r->fifo.next, rec_session_t, fifo);
        session_take(r, ss);
        session_free(r, ss);
    }
    while (r->count) {
        entry_free(r, r->ring[r->head]);
        r->head = (r->head + 1) & (r->cap - 1);
        r->count--;
    }
    free(r->ring);
    rt_map_free(&r->sessions);
    free(r);
    srv->rec = NULL;
}

void sio_server_set_recovery_hooks(sio_server_t *srv, const sio_recovery_hooks_t *h, void *ud)
{
    if (!srv->rec) return;
    srv->rec->hooks = *h;
    srv->rec->hooks_ud = ud;
}

uint64_t sio_recovery_position(const sio_server_t *srv) { return srv->rec ? rec_last(srv->rec) : 0; }

const sio_recovery_stats_t *sio_server_recovery_stats(const sio_server_t *srv)
{
    return srv->rec ? &srv->rec->stats : NULL;
}

bool sio_socket_recovered(const sio_socket_t *s) { return s->rec && s->rec->recovered; }

void sio_socket_set_identity(sio_socket_t *s, rt_slice_t identity)
{
    if (!s->rec) return;
    free(s->rec->identity);
    s->rec->identity = dup_slice(identity);
    s->rec->identity_len = (uint32_t)identity.n;
}

/* ---- sockets ---- */
/* A string member of the auth object, decoded, at most REC_MAX_ID bytes. */
static char *auth_string(rt_slice_t auth, const char *key)
{
    rt_slice_t v;
    if (rt_json_peek(auth) != RT_JSON_OBJECT || !rt_json_object_get(auth, key, &v) ||
        rt_json_peek(v) != RT_JSON_STRING || v.n > REC_MAX_ID * 6 + 2)
        return NULL;
    rt_buf_t out = {0};
    if (rt_json_string_decode(v, &out) < 0 || !out.len || out.len > REC_MAX_ID || memchr(out.data, 0, out.len)) {
        rt_buf_free(&out);
        return NULL;
    }
    rt_buf_putc(&out, 0);
    return out.data;
}

void sio_rec_socket_new(sio_socket_t *s, rt_slice_t auth)
{
    if (!s->nsp->srv->rec) return;
    sockrec_t *sr = rt_calloc(1, sizeof *sr);
    sr->want_pid = auth_string(auth, "pid");
    if (sr->want_pid) sr->want_offset = auth_string(auth, "offset");
    s->rec = sr;
}

static void plan_drop(rec_t *r, sockrec_t *sr)
{
    if (sr->plan) session_free(r, sr->plan);
    sr->plan = NULL;
    free(sr->plan_blob);
    sr->plan_blob = NULL;
}

void sio_rec_socket_free(sio_socket_t *s)
{
    sockrec_t *sr = s->rec;
    if (!sr) return;
    if (s->nsp->srv->rec) plan_drop(s->nsp->srv->rec, sr);
    free(sr->known);
    free(sr->identity);
    free(sr->want_pid);
    free(sr->want_offset);
    free(sr);
    s->rec = NULL;
}

static void refuse(rec_t *r, int why, const sio_socket_t *s)
{
    r->stats.refused[why]++;
    rt_debug("sio", "a connection state of %s not recovered (%s): a new session", s->nsp->name,
             sio_rec_reasons[why]);
}

/* A pid we could have made: 20 characters of base64url (rt_random_id). */
static bool pid_plausible(const char *pid)
{
    size_t n = 0;
    for (const char *p = pid; *p; p++, n++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '_'))
            return false;
    return n == 20;
}

/* Where the replay of ss starts for a client offering `offset`, or false. */
static bool resolve_from(const rec_t *r, const rec_session_t *ss, const char *offset, uint64_t *from)
{
    uint64_t seq;
    if (str_eq(offset, ss->known)) *from = ss->start;
    else if (parse_own(r, offset, &seq) && seq <= rec_last(r)) *from = seq > ss->start ? seq : ss->start;
    else return false;
    return *from + 1 >= r->first && rec_last(r) - *from <= REC_MAX_SCAN; /* all still kept; a bounded scan */
}

bool sio_rec_accept(sio_socket_t *s)
{
    sio_server_t *srv = s->nsp->srv;
    rec_t *r = srv->rec;
    sockrec_t *sr = s->rec;
    if (!r || !sr || sr->tried || sr->plan) return false;
    sr->tried = true;
    if (!sr->want_pid) return false;
    rec_session_t *ss = rt_map_get(&r->sessions, rt_slice_cstr(sr->want_pid));
    if (!ss) {
        if (!r->hooks.remote || !pid_plausible(sr->want_pid)) { /* no Redis round trip for garbage */
            refuse(r, SIO_REC_UNKNOWN, s);
            return false;
        }
        sr->waiting = true;
        s->refs++;
        r->hooks.remote(s, rt_slice_cstr(sr->want_pid),
                        sr->want_offset ? rt_slice_cstr(sr->want_offset) : RT_SLICE_NULL, r->hooks_ud);
        return true; /* sio_socket_restore_remote has it (perhaps done already) */
    }
    session_take(r, ss); /* one attempt: a pid is good once */
    uint64_t from;
    if (ss->nsp != s->nsp) {
        refuse(r, SIO_REC_UNKNOWN, s);
    } else if (ss->identity_len != sr->identity_len ||
               (ss->identity_len && memcmp(ss->identity, sr->identity, ss->identity_len))) {
        refuse(r, SIO_REC_IDENTITY, s);
    } else if (!resolve_from(r, ss, sr->want_offset, &from)) {
        refuse(r, SIO_REC_EVICTED, s);
    } else {
        sr->plan = ss;
        sr->plan_from = from;
        return false;
    }
    session_free(r, ss);
    return false;
}

/* ---- the remote path ---- */
/* {"sid","pid","identity","known","rooms":[..],"packets":[[..] | {"p":[..],"a":["b64",..]}]} */
int sio_recovery_export(sio_server_t *srv, rt_slice_t nsp, rt_slice_t pid, rt_slice_t offset, rt_buf_t *out,
                        size_t max)
{
    rec_t *r = srv->rec;
    if (!r || pid.n > REC_MAX_ID) return RT_ENOTFOUND;
    rec_session_t *ss = rt_map_get(&r->sessions, pid);
    if (!ss) return RT_ENOTFOUND;
    session_take(r, ss);
    char *off = offset.p ? dup_slice(offset) : NULL;
    uint64_t from;
    int rc = RT_OK;
    if (!rt_slice_eq(sio_nsp_name(ss->nsp), nsp)) rc = RT_ENOTFOUND;
    else if (!resolve_from(r, ss, off, &from)) rc = RT_ESTATE;
    if (rc == RT_OK) {
        size_t start = out->len;
        rt_buf_append_cstr(out, "{\"sid\":\"");
        rt_buf_append_cstr(out, ss->sid);
        rt_buf_append_cstr(out, "\",\"pid\":\"");
        rt_buf_append_cstr(out, ss->pid);
        rt_buf_append_cstr(out, "\",\"identity\":");
        rt_buf_append_json_string(out, rt_slice(ss->identity, ss->identity_len));
        rt_buf_append_cstr(out, ",\"rooms\":[");
        for (uint32_t i = 0; i < ss->nrooms; i++) {
            if (i) rt_buf_putc(out, ',');
            rt_buf_append_json_string(out, ss->rooms[i]);
        }
        rt_buf_append_cstr(out, "],\"packets\":[");
        rt_map_t rooms;
        rt_map_init(&rooms);
        for (uint32_t i = 0; i < ss->nrooms; i++) rt_map_put(&rooms, ss->rooms[i], ss);
        bool any = false;
        for (uint64_t q = from + 1; q <= rec_last(r) && rc == RT_OK; q++) {
            const rec_entry_t *e = entry_at(r, q);
            if (!entry_matches(e, ss->nsp, &rooms, rt_slice_cstr(ss->sid))) continue;
            if (any) rt_buf_putc(out, ',');
            any = true;
            if (e->nattach) rt_buf_append_cstr(out, "{\"p\":");
            rt_buf_putc(out, '[');
            rt_buf_append(out, e->body, e->body_len);
            rt_buf_putc(out, ']');
            if (e->nattach) {
                rt_buf_append_cstr(out, ",\"a\":[");
                for (uint32_t i = 0; i < e->nattach; i++) {
                    if (i) rt_buf_putc(out, ',');
                    rt_buf_putc(out, '"');
                    size_t at = out->len;
                    rt_buf_reserve(out, 4 * (e->att[i].n / 3 + 1));
                    out->len = at + rt_base64_encode(out->data + at, (const uint8_t *)e->att[i].p, e->att[i].n);
                    rt_buf_putc(out, '"');
                }
                rt_buf_append_cstr(out, "]}");
            }
            if (out->len - start > max) rc = RT_ETOOBIG;
        }
        rt_map_free(&rooms);
        rt_buf_append_cstr(out, "]}");
        if (rc != RT_OK) out->len = start;
        else r->stats.exported++;
    }
    free(off);
    session_free(r, ss);
    return rc;
}

void sio_socket_restore_remote(sio_socket_t *s, rt_slice_t blob, uint64_t mark, int why)
{
    sio_server_t *srv = s->nsp->srv;
    rec_t *r = srv->rec;
    sockrec_t *sr = s->rec;
    rt_assert(sr && sr->waiting);
    sr->waiting = false;
    if (s->state != SOCK_PENDING || !s->client) {
        sio_socket_unref(s); /* the client went meanwhile: what was handed over is gone with it */
        return;
    }
    rt_json_type_t type;
    rt_slice_t sid, pid, ident, rooms, packets;
    rt_buf_t a = {0}, b = {0}, names = {0};
    if (!blob.p) {
        refuse(r, why >= 0 && why < SIO_REC_REASONS ? why : SIO_REC_REMOTE, s);
    } else if (!rt_json_valid(blob, &type) || type != RT_JSON_OBJECT || !rt_json_object_get(blob, "sid", &sid) ||
               !rt_json_object_get(blob, "pid", &pid) || !rt_json_object_get(blob, "identity", &ident) ||
               !rt_json_object_get(blob, "rooms", &rooms) || !rt_json_object_get(blob, "packets", &packets) ||
               rt_json_peek(rooms) != RT_JSON_ARRAY || rt_json_peek(packets) != RT_JSON_ARRAY ||
               rt_json_string_decode(sid, &a) < 0 || a.len == 0 || a.len > 20 ||
               rt_json_string_decode(pid, &b) < 0 || b.len == 0 || b.len > 20) {
        rt_warn_rl("sio", "connection state recovery: another process handed over a malformed session");
        refuse(r, SIO_REC_UNKNOWN, s);
    } else {
        rt_buf_t id = {0};
        rt_json_string_decode(ident, &id);
        if (id.len != sr->identity_len || (id.len && memcmp(id.data, sr->identity, id.len))) {
            refuse(r, SIO_REC_IDENTITY, s);
        } else if (mark + 1 < r->first) {
            refuse(r, SIO_REC_EVICTED, s);
        } else {
            /* rooms: decoded back to back, then sliced */
            rt_json_iter_t it;
            rt_slice_t v;
            uint32_t nr = 0, cap = 0;
            rt_json_iter_init(&it, rooms);
            while (cap < SIO_MAX_ROOMS_PER_SOCKET && rt_json_array_next(&it, &v)) cap++;
            size_t *ends = rt_malloc((cap ? cap : 1) * sizeof *ends);
            rt_json_iter_init(&it, rooms);
            while (nr < cap && rt_json_array_next(&it, &v))
                if (rt_json_peek(v) == RT_JSON_STRING && rt_json_string_decode(v, &names) == 0) ends[nr++] = names.len;
            rt_slice_t *rs = rt_malloc((nr ? nr : 1) * sizeof *rs);
            for (uint32_t i = 0; i < nr; i++) {
                size_t at = i ? ends[i - 1] : 0;
                rs[i] = rt_slice(names.data + at, ends[i] - at);
            }
            free(ends);
            rt_buf_putc(&a, 0);
            rt_buf_putc(&b, 0);
            /* known: settled in sio_rec_apply from what is replayed */
            sr->plan = session_new(s->nsp, b.data, a.data, rt_slice(id.data, id.len), NULL, mark, rs, nr);
            sr->plan_from = mark;
            sr->plan_blob = dup_slice(packets);
            sr->plan_blob_len = packets.n;
            free(rs);
        }
        rt_buf_free(&id);
    }
    rt_buf_free(&a);
    rt_buf_free(&b);
    rt_buf_free(&names);
    sio_accept_finish(s);
    sio_socket_unref(s);
}

/* ---- replay ---- */
static void send_packet(sio_socket_t *s, rt_slice_t body, const rt_slice_t *att, uint32_t natt)
{
    rt_buf_t *b = &s->nsp->srv->enc;
    b->len = 0;
    sio_packet_head(b, natt ? SIO_BINARY_EVENT : SIO_EVENT, sio_nsp_name(s->nsp), natt, -1);
    rt_buf_putc(b, '[');
    rt_buf_append_slice(b, body);
    rt_buf_putc(b, ']');
    sio_send_text(s->client, b);
    sio_send_attachments(s->client, att, natt);
}

/* The handed-over packets: [..] or {"p":[..],"a":[base64..]}. Returns the
 * offset the last one carries (malloc'd) or NULL. */
static char *replay_blob(sio_socket_t *s, rt_slice_t packets, uint64_t *n)
{
    rt_json_iter_t it;
    rt_slice_t v, last = RT_SLICE_NULL;
    rt_json_iter_init(&it, packets);
    while (rt_json_array_next(&it, &v)) {
        rt_slice_t p = v, av = RT_SLICE_NULL;
        if (rt_json_peek(v) == RT_JSON_OBJECT) {
            if (!rt_json_object_get(v, "p", &p)) continue;
            rt_json_object_get(v, "a", &av);
        }
        if (rt_json_peek(p) != RT_JSON_ARRAY || p.n < 2) continue;
        rt_slice_t inner = rt_slice(p.p + 1, p.n - 2);
        rt_slice_t att[SIO_MAX_ATTACHMENTS];
        uint8_t *store[SIO_MAX_ATTACHMENTS];
        uint32_t natt = 0;
        if (av.p && rt_json_peek(av) == RT_JSON_ARRAY) {
            rt_json_iter_t ai;
            rt_slice_t x, raw;
            rt_json_iter_init(&ai, av);
            while (natt < SIO_MAX_ATTACHMENTS && rt_json_array_next(&ai, &x) && rt_json_string_raw(x, &raw)) {
                store[natt] = rt_malloc(raw.n * 3 / 4 + 3);
                ssize_t dn = rt_base64_decode(store[natt], raw.p, raw.n);
                att[natt] = rt_slice((const char *)store[natt], dn > 0 ? (size_t)dn : 0);
                natt++;
            }
        }
        send_packet(s, inner, att, natt);
        for (uint32_t i = 0; i < natt; i++) free(store[i]);
        last = inner;
        (*n)++;
    }
    return last.p ? last_string(rt_slice(last.p - 1, last.n + 2)) : NULL;
}

void sio_rec_apply(sio_socket_t *s)
{
    sio_server_t *srv = s->nsp->srv;
    rec_t *r = srv->rec;
    sockrec_t *sr = s->rec;
    if (!r || !sr) return;
    rec_session_t *ss = sr->plan;
    char *known = NULL;
    if (!ss) { /* a new session */
        rt_random_id(sr->pid);
        sr->start = rec_last(r);
        sr->known = sr->want_offset ? strdup(sr->want_offset) : NULL; /* the client keeps it until one of ours */
        return;
    }
    uint64_t n = 0;
    if (sr->plan_blob) {
        known = replay_blob(s, rt_slice(sr->plan_blob, sr->plan_blob_len), &n);
        if (!known && n) known = strdup(""); /* handed-over packets without an offset: never matched */
    }
    rt_map_t rooms;
    rt_map_init(&rooms);
    for (uint32_t i = 0; i < ss->nrooms; i++) rt_map_put(&rooms, ss->rooms[i], ss);
    rt_slice_t sid = rt_slice_cstr(ss->sid);
    for (uint64_t q = sr->plan_from + 1; q <= rec_last(r); q++) {
        const rec_entry_t *e = entry_at(r, q);
        if (!entry_matches(e, s->nsp, &rooms, sid)) continue;
        send_packet(s, rt_slice(e->body, e->body_len), e->att, e->nattach);
        n++;
    }
    rt_map_free(&rooms);
    /* Where the next recovery starts if the client comes back having read
     * none of this replay: it then offers the offset it offered now (or,
     * after a hand-over, the last handed-over packet's: what it did get of
     * those cannot be replayed again here, so any other offset of theirs is
     * refused); an offset of ours means it got that far. */
    if (!known && sr->want_offset) known = strdup(sr->want_offset);
    memcpy(s->id, ss->sid, sizeof s->id);
    memcpy(sr->pid, ss->pid, sizeof sr->pid);
    sr->start = sr->plan_from;
    sr->known = known;
    sr->recovered = true;
    for (uint32_t i = 0; i < ss->nrooms; i++) sio_join_quiet(s, ss->rooms[i]);
    r->stats.recovered++;
    if (sr->plan_blob) r->stats.recovered_remote++;
    r->stats.packets_replayed += n;
    plan_drop(r, sr);
    rt_debug("sio", "connection state of %s recovered: %llu packets replayed", s->id, (unsigned long long)n);
}

/* The reasons socket.io recovers from (a server shutdown is not one here:
 * this process is going away with what it kept). "forced server close"
 * is: the server ended the session (a token expired, a slow consumer,
 * a protocol error), the client may come back. */
static bool recoverable(const char *reason)
{
    return reason == EIO_REASON_TRANSPORT_CLOSE || reason == EIO_REASON_TRANSPORT_ERROR ||
           reason == EIO_REASON_PING_TIMEOUT || reason == EIO_REASON_FORCED_CLOSE ||
           reason == EIO_REASON_SERVER_CLOSE; /* e.g. a token expired: the client comes back with a new one */
}

static void collect_room(rt_slice_t room, void *arg)
{
    rt_slice_t **pp = arg;
    *(*pp)++ = room;
}

void sio_rec_socket_close(sio_socket_t *s, const char *reason)
{
    rec_t *r = s->nsp->srv->rec;
    sockrec_t *sr = s->rec;
    if (!r || !sr || !recoverable(reason) || !sr->pid[0]) return;
    rt_slice_t *rooms = rt_malloc((s->nrooms ? s->nrooms : 1) * sizeof *rooms), *p = rooms;
    sio_socket_rooms_each(s, collect_room, &p);
    rec_session_t *ss = session_new(s->nsp, sr->pid, s->id, rt_slice(sr->identity, sr->identity_len), sr->known,
                                    sr->start, rooms, s->nrooms);
    free(rooms);
    sessions_bytes_trim(r, ss->bytes);
    ss->expires = rec_now(r) + r->window;
    rec_session_t *old = rt_map_get(&r->sessions, rt_slice_cstr(ss->pid));
    if (old) { /* the same pid kept twice (a CONNECT raced its own old socket): the newer wins */
        session_take(r, old);
        session_free(r, old);
    }
    rt_map_put(&r->sessions, rt_slice(ss->pid, strlen(ss->pid)), ss);
    rt_list_insert_tail(&r->fifo, &ss->fifo);
    r->stats.sessions++;
    r->stats.session_bytes += ss->bytes;
    r->stats.kept++;
    log_trim(r);
    tick_arm(r);
    if (r->hooks.kept) r->hooks.kept(s->nsp, ss->pid, (unsigned)r->window, r->hooks_ud);
}

const char *sio_rec_pid(const sio_socket_t *s) { return s->rec ? s->rec->pid : ""; }
