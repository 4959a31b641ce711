/* eio: Engine.IO v4 sessions and transports (see eio.h).
 *
 * A session is on exactly one transport: polling (a queue of packets drained
 * by GETs, at most one GET parked) or WebSocket (packets framed straight onto
 * the connection). During an upgrade the WebSocket is held apart in `probe`
 * until the client sends "5"; packets queued meanwhile move over in order.
 *
 * Each session has one loop task: in NET_PHASE_FLUSH it answers the parked
 * GET with what this turn queued; once the session is closed it moves to
 * NET_PHASE_WORK. Closing is thus two-step, so no callback frees what its
 * caller still uses: eio_session_close() detaches the session (sid
 * forgotten, transports answered or closed), and the application's on_close
 * plus the free run from the task, later in the same loop turn. */
#include "eio.h"

#include <zlib.h>

#include <stdio.h>

const char EIO_REASON_TRANSPORT_CLOSE[] = "transport close";
const char EIO_REASON_TRANSPORT_ERROR[] = "transport error";
const char EIO_REASON_PING_TIMEOUT[] = "ping timeout";
const char EIO_REASON_PARSE_ERROR[] = "parse error";
const char EIO_REASON_FORCED_CLOSE[] = "forced close";
const char EIO_REASON_SERVER_CLOSE[] = "forced server close";
const char EIO_REASON_SHUTDOWN[] = "server shutting down";
const char *const eio_reasons[EIO_REASONS] = {EIO_REASON_TRANSPORT_CLOSE, EIO_REASON_TRANSPORT_ERROR,
                                              EIO_REASON_PING_TIMEOUT,     EIO_REASON_PARSE_ERROR,
                                              EIO_REASON_FORCED_CLOSE,     EIO_REASON_SERVER_CLOSE,
                                              EIO_REASON_SHUTDOWN};

#define SID_RANDOM 20 /* 15 random bytes as base64url */
#define SID_MAX (EIO_SID_PREFIX_MAX + SID_RANDOM)

typedef struct eio_qpkt {
    struct eio_qpkt *next;
    rt_chunk_t *chunk;
    uint64_t key;      /* eio_session_send_latest: replaced by a newer one with the key */
    uint32_t off, len; /* text: "<digit><data>"; binary: the raw bytes */
    bool binary;
    bool dead;         /* superseded (its chunk is gone): skipped when drained */
} eio_qpkt_t;

/* What a queued packet costs beyond its bytes (node, chunk header),
 * counted against max_buffered like NET_NODE_COST for connections. */
#define QPKT_COST 64

typedef struct {
    ws_conn_t *ws;
    net_timer_t timer;
    bool probed; /* "2probe" answered: polling GETs get "6" at once */
} eio_upgrade_t;

struct eio_session {
    /* Hot on every delivery: the first line holds the transport and flags. */
    ws_conn_t *ws;          /* WebSocket transport, or NULL while polling */
    bool closed;
    bool awaiting_pong;
    uint32_t q_bytes;       /* memory held by the polling queue (bytes + QPKT_COST each) */
    eio_qpkt_t *q_head, *q_tail;
    eio_server_t *srv;
    http_conn_t *get;       /* parked polling GET */
    void *ud;
    eio_upgrade_t *upgrade; /* only while upgrading */
    net_timer_t ping;
    net_task_t task;        /* flush (NET_PHASE_FLUSH) or end (NET_PHASE_WORK) */
    rt_map_t *keyed;        /* key -> queued packet, while keyed packets are queued */
    eio_reason_t reason;
    bool was_ws;            /* counted in stats.ws_sessions */
    bool was_deflate;       /* counted in stats.deflate_sessions */
    uint8_t proto;          /* Engine.IO protocol: 4, or 3 (allow_eio3) */
    bool xhr2;              /* v3: binary goes out as XHR2 payloads (no b64 at the handshake) */
    char sid[SID_MAX + 1];
    uint8_t sid_len;
};

struct eio_server {
    http_server_t *http;
    net_loop_t *loop;
    eio_options_t opt;
    eio_handler_t h;
    void *ud;
    rt_map_t sessions;
    rt_buf_t scratch;
    rt_pool_t session_pool;
    rt_pool_t qpkts; /* polling queue nodes: no allocation per delivery */
    eio_stats_t stats;
    /* The last single-packet payload compressed: the polling members of one
     * broadcast are answered in the same turn with the same chunk, so it is
     * compressed once for all of them. Holds a reference to its source. */
    struct {
        rt_chunk_t *src, *out;
        uint32_t off, len;
        int enc;
    } zc;
    z_stream *deflater; /* permessage-deflate: one stream, reset for each message */
    http_compressor_t *gz; /* polling responses: gzip/deflate streams, reset for each */
    char handshake_tail[128]; /* `","upgrades":...,"maxPayload":N}` minus upgrades */
    char handshake_tail3[96]; /* the v3 one: no maxPayload */
};

void eio_options_default(eio_options_t *o)
{
    memset(o, 0, sizeof *o);
    o->ping_interval = 25000;
    o->ping_timeout = 20000;
    o->upgrade_timeout = 10000;
    o->max_payload = 1000000;
    o->polling = true;
    o->websocket = true;
    o->max_sessions = 100000;
    o->max_buffered = 16 << 20;
    o->http_compression = 1024;
}

/* A binary message on the WebSocket: Engine.IO v3 puts the packet type
 * (a 4 byte) in front. */
static void ws_send_binary_v(eio_session_t *s, const void *data, size_t len)
{
    if (s->proto != 3) {
        ws_send(s->ws, true, data, len);
        return;
    }
    rt_buf_t b = {0};
    rt_buf_putc(&b, 4);
    rt_buf_append(&b, data, len);
    ws_send(s->ws, true, b.data, b.len);
    rt_buf_free(&b);
}

/* ---- permessage-deflate ----
 * One raw deflate of a whole message, without context takeover: the frame
 * is decodable by any member that negotiated the extension, so a broadcast
 * is compressed once. Returns a chunk holding the framed message (RSV1), or
 * NULL when deflating does not pay (or fails): the plain frame goes then. */
static rt_chunk_t *deflate_frame(eio_server_t *srv, uint8_t opcode, char prefix, const char *p, size_t n)
{
    z_stream *z = srv->deflater;
    if (!z) {
        z = rt_calloc(1, sizeof *z);
        if (deflateInit2(z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            free(z);
            return NULL;
        }
        srv->deflater = z;
    } else {
        deflateReset(z);
    }
    size_t total = n + (prefix ? 1 : 0), bound = deflateBound(z, (uLong)total) + 16;
    rt_chunk_t *ch = rt_chunk_new(WS_MAX_HEADER + bound);
    uint8_t *out = (uint8_t *)ch->data + WS_MAX_HEADER;
    z->next_out = out;
    z->avail_out = (uInt)bound;
    if (prefix) {
        z->next_in = (Bytef *)&prefix;
        z->avail_in = 1;
        deflate(z, Z_NO_FLUSH);
    }
    z->next_in = (Bytef *)(uintptr_t)p;
    z->avail_in = (uInt)n;
    int r = deflate(z, Z_SYNC_FLUSH);
    size_t zn = bound - z->avail_out;
    /* a sync flush ends with 00 00 ff ff, which the receiver adds back */
    if (r != Z_OK || z->avail_in || zn < 4 || memcmp(out + zn - 4, "\x00\x00\xff\xff", 4) || zn - 4 >= total) {
        rt_chunk_unref(ch);
        return NULL;
    }
    zn -= 4;
    size_t h = ws_frame_header_before(out, (uint8_t)(opcode | WS_RSV1), zn);
    memmove(ch->data, out - h, h + zn);
    ch->len = (uint32_t)(h + zn);
    srv->stats.deflated++;
    srv->stats.deflated_in += total;
    srv->stats.deflated_out += zn;
    return ch;
}

/* ---- packet queue (polling) ---- */
static void q_push_keyed(eio_session_t *s, rt_chunk_t *ch, size_t off, size_t len, bool binary, uint64_t key)
{
    if (!s->get && (size_t)s->q_bytes + len + QPKT_COST > s->srv->opt.max_buffered) {
        /* A polling client that stopped polling: like the WebSocket hard
         * output limit, close it instead of buffering without bound. */
        rt_warn_rl("eio", "closing a polling session with %u bytes unpolled", s->q_bytes);
        s->srv->stats.polling_overflow++;
        s->reason = EIO_REASON_TRANSPORT_ERROR;
        eio_session_close(s);
        return;
    }
    s->q_bytes += (uint32_t)(len + QPKT_COST);
    eio_qpkt_t *p = rt_pool_alloc(&s->srv->qpkts);
    p->next = NULL;
    p->chunk = rt_chunk_ref(ch);
    p->key = key;
    p->off = (uint32_t)off;
    p->len = (uint32_t)len;
    p->binary = binary;
    if (key) {
        if (!s->keyed) {
            s->keyed = rt_malloc(sizeof *s->keyed);
            rt_map_init(s->keyed);
        }
        rt_map_put(s->keyed, rt_slice((const char *)&p->key, sizeof p->key), p);
    }
    if (s->q_tail) s->q_tail->next = p;
    else s->q_head = p;
    s->q_tail = p;
}

static void q_push(eio_session_t *s, rt_chunk_t *ch, size_t off, size_t len, bool binary)
{
    q_push_keyed(s, ch, off, len, binary, 0);
}

/* Marks the queued packet with this key, if any (at most one), dead: its
 * bytes are released at once, its node when the queue drains. O(1). */
static void q_drop_key(eio_session_t *s, uint64_t key)
{
    if (!s->keyed) return;
    eio_qpkt_t *p = rt_map_del(s->keyed, rt_slice((const char *)&key, sizeof key));
    if (!p) return;
    p->dead = true;
    s->q_bytes -= p->len;
    rt_chunk_unref(p->chunk);
    p->chunk = NULL;
}

static void q_clear(eio_session_t *s)
{
    while (s->q_head) {
        eio_qpkt_t *p = s->q_head;
        s->q_head = p->next;
        rt_chunk_unref(p->chunk);
        rt_pool_free(&s->srv->qpkts, p);
    }
    s->q_tail = NULL;
    s->q_bytes = 0;
    if (s->keyed) {
        rt_map_free(s->keyed);
        free(s->keyed);
        s->keyed = NULL;
    }
}

/* ---- small response helpers ---- */
static void respond_code(http_conn_t *hc, int code, const char *msg)
{
    char body[96];
    int n = snprintf(body, sizeof body, "{\"code\":%d,\"message\":\"%s\"}", code, msg);
    http_respond(hc, code == 4 ? 403 : 400, "application/json", body, (size_t)n, NULL);
}

static const char GET_HEADERS[] = "Cache-Control: no-store\r\n";
static const char GET_HEADERS_GZIP[] = "Cache-Control: no-store\r\nContent-Encoding: gzip\r\n";
static const char GET_HEADERS_DEFLATE[] = "Cache-Control: no-store\r\nContent-Encoding: deflate\r\n";

/* A polling response of one text packet: a reference to its chunk, or its
 * compressed form (made once per chunk and encoding, see zc). */
static void respond_payload(eio_server_t *srv, http_conn_t *hc, rt_chunk_t *ch, uint32_t off, uint32_t len)
{
    int enc = http_conn_encoding(hc);
    if (!enc || !srv->opt.http_compression || len < srv->opt.http_compression) {
        http_respond_chunk(hc, 200, "text/plain; charset=UTF-8", ch, off, len, GET_HEADERS);
        return;
    }
    if (!(srv->zc.src == ch && srv->zc.off == off && srv->zc.len == len && srv->zc.enc == enc)) {
        rt_buf_t z = {0};
        if (!srv->gz) srv->gz = http_compressor_new();
        if (http_compressor_run(srv->gz, enc, ch->data + off, len, &z) < 0) {
            rt_buf_free(&z);
            http_respond_chunk(hc, 200, "text/plain; charset=UTF-8", ch, off, len, GET_HEADERS);
            return;
        }
        rt_chunk_unref(srv->zc.src);
        rt_chunk_unref(srv->zc.out);
        srv->zc.src = rt_chunk_ref(ch);
        srv->zc.out = rt_chunk_from_buf(&z);
        srv->zc.off = off, srv->zc.len = len, srv->zc.enc = enc;
        rt_buf_free(&z);
    }
    srv->stats.compressed++;
    srv->stats.compressed_in += len;
    srv->stats.compressed_out += srv->zc.out->len;
    http_respond_chunk(hc, 200, "text/plain; charset=UTF-8", srv->zc.out, 0, srv->zc.out->len,
                       enc == HTTP_ENC_GZIP ? GET_HEADERS_GZIP : GET_HEADERS_DEFLATE);
}

static void respond_text(http_conn_t *hc, const char *text)
{
    http_respond(hc, 200, "text/plain; charset=UTF-8", text, strlen(text), GET_HEADERS);
}

/* A one-packet answer ("6", "1") in the session's payload format. */
static void respond_packet(eio_session_t *s, http_conn_t *hc, const char *pkt)
{
    if (s->proto != 3) {
        respond_text(hc, pkt);
        return;
    }
    char b[48];
    snprintf(b, sizeof b, "%zu:%.8s", strlen(pkt), pkt);
    respond_text(hc, b);
}

/* Answers the parked GET with everything queued, joined by 0x1E. A single
 * text packet goes out as a reference to its chunk, without a copy. */
static void drain_to_get(eio_session_t *s)
{
    http_conn_t *hc = s->get;
    if (!hc || !s->q_head) return;
    eio_qpkt_t *p, *live = NULL;
    size_t nlive = 0;
    for (p = s->q_head; p && nlive < 2; p = p->next)
        if (!p->dead) live = p, nlive++;
    if (!nlive) { /* only superseded ones: nothing to answer yet */
        q_clear(s);
        return;
    }
    s->get = NULL;
    if (nlive == 1 && !live->binary && s->proto != 3) {
        respond_payload(s->srv, hc, live->chunk, live->off, live->len);
        q_clear(s);
        return;
    }
    rt_buf_t *b = &s->srv->scratch;
    b->len = 0;
    bool octets = false; /* v3 with binary to send to an XHR2 client: the binary payload form */
    for (p = s->q_head; p && s->xhr2 && !octets; p = p->next) octets = !p->dead && p->binary;
    if (octets) {
        for (p = s->q_head; p; p = p->next) {
            if (p->dead) continue;
            /* 0 text | 1 binary, the byte count one decimal digit per byte, 0xFF, the bytes */
            char digits[24];
            int nd = snprintf(digits, sizeof digits, "%zu", (size_t)p->len + (p->binary ? 1 : 0));
            rt_buf_putc(b, p->binary ? 1 : 0);
            for (int i = 0; i < nd; i++) rt_buf_putc(b, (char)(digits[i] - '0'));
            rt_buf_putc(b, (char)0xff);
            if (p->binary) rt_buf_putc(b, 4); /* the message type */
            rt_buf_append(b, p->chunk->data + p->off, p->len);
        }
        q_clear(s);
        http_respond(hc, 200, "application/octet-stream", b->data, b->len, GET_HEADERS);
        if (b->cap > 1 << 20) rt_buf_free(b);
        return;
    }
    for (p = s->q_head; p; p = p->next) {
        if (p->dead) continue;
        if (s->proto == 3) { /* "<len>:<packet>", binary as "b4<base64>" */
            if (p->binary)
                eio3_payload_append(b, &(eio_packet_t){EIO_MESSAGE, true, rt_slice(p->chunk->data + p->off, p->len)});
            else
                eio3_payload_append_text(b, p->chunk->data + p->off, p->len);
            continue;
        }
        if (b->len) rt_buf_putc(b, EIO_RECORD_SEP);
        if (p->binary) {
            rt_buf_reserve(b, 1 + (p->len + 2) / 3 * 4);
            b->data[b->len++] = 'b';
            b->len += rt_base64_encode(b->data + b->len, (uint8_t *)p->chunk->data + p->off, p->len);
        } else {
            rt_buf_append(b, p->chunk->data + p->off, p->len);
        }
    }
    q_clear(s);
    int enc = http_conn_encoding(hc);
    rt_buf_t z = {0};
    if (enc && s->srv->opt.http_compression && b->len >= s->srv->opt.http_compression &&
        (s->srv->gz || (s->srv->gz = http_compressor_new())) && http_compressor_run(s->srv->gz, enc, b->data, b->len, &z) == 0) {
        s->srv->stats.compressed++;
        s->srv->stats.compressed_in += b->len;
        s->srv->stats.compressed_out += z.len;
        http_respond(hc, 200, "text/plain; charset=UTF-8", z.data, z.len,
                     enc == HTTP_ENC_GZIP ? GET_HEADERS_GZIP : GET_HEADERS_DEFLATE);
    } else {
        http_respond(hc, 200, "text/plain; charset=UTF-8", b->data, b->len, GET_HEADERS);
    }
    rt_buf_free(&z);
    if (b->cap > 1 << 20) rt_buf_free(b);
}

static void schedule_flush(eio_session_t *s)
{
    if (s->closed || !s->get || net_task_queued(&s->task)) return;
    net_defer(s->srv->loop, &s->task, NET_PHASE_FLUSH);
}

static void send_control(eio_session_t *s, const char *pkt)
{
    size_t n = strlen(pkt);
    if (s->closed) return;
    if (s->ws) {
        ws_send(s->ws, false, pkt, n);
        return;
    }
    rt_chunk_t *ch = rt_chunk_from(pkt, n);
    q_push(s, ch, 0, n, false);
    rt_chunk_unref(ch);
    schedule_flush(s);
}

void eio_session_send(eio_session_t *s, bool binary, const void *data, size_t len)
{
    if (s->closed) return;
    if (s->ws) {
        rt_chunk_t *z = NULL;
        if (!binary && s->srv->opt.per_message_deflate && len + 1 >= s->srv->opt.per_message_deflate &&
            ws_deflate(s->ws))
            z = deflate_frame(s->srv, WS_OP_TEXT, '4', data, len);
        if (z) {
            ws_send_framed(s->ws, z, 0, z->len);
            rt_chunk_unref(z);
        } else if (binary) {
            ws_send_binary_v(s, data, len);
        } else {
            rt_chunk_t *f = rt_chunk_new(WS_MAX_HEADER + 1 + len);
            size_t h = ws_frame_header((uint8_t *)f->data, WS_OP_TEXT, len + 1);
            f->data[h] = '4';
            if (len) memcpy(f->data + h + 1, data, len);
            ws_send_framed(s->ws, f, 0, h + 1 + len);
            rt_chunk_unref(f);
        }
        return;
    }
    rt_chunk_t *ch = rt_chunk_new(len + 1);
    if (binary) {
        if (len) memcpy(ch->data, data, len);
        q_push(s, ch, 0, len, true);
    } else {
        ch->data[0] = '4';
        if (len) memcpy(ch->data + 1, data, len);
        q_push(s, ch, 0, len + 1, false);
    }
    rt_chunk_unref(ch);
    schedule_flush(s);
}

eio_shared_t eio_shared_from_buf(rt_buf_t *b)
{
    rt_assert(b->len >= EIO_SHARED_RESERVE);
    size_t payload = b->len - EIO_SHARED_RESERVE;
    rt_chunk_t *ch = rt_chunk_new(b->len);
    memcpy(ch->data + EIO_SHARED_RESERVE, b->data + EIO_SHARED_RESERVE, payload);
    ch->data[WS_MAX_HEADER] = '4';
    size_t h = ws_frame_header_before((uint8_t *)ch->data + WS_MAX_HEADER, WS_OP_TEXT, payload + 1);
    b->len = 0;
    return (eio_shared_t){.chunk = ch, .ws_off = (uint32_t)(WS_MAX_HEADER - h), .msg_off = WS_MAX_HEADER};
}

void eio_session_send_shared(eio_session_t *s, eio_shared_t *m)
{
    eio_session_send_latest(s, m, 0);
}

void eio_session_send_latest(eio_session_t *s, eio_shared_t *m, uint64_t key)
{
    if (s->closed) return;
    if (s->ws) {
        size_t len = m->chunk->len - m->msg_off;
        if (s->was_deflate && len >= s->srv->opt.per_message_deflate && ws_deflate(s->ws)) {
            if (!m->ztried) { /* the first member that takes it compresses for all */
                m->ztried = true;
                m->zchunk = deflate_frame(s->srv, WS_OP_TEXT, 0, m->chunk->data + m->msg_off, len);
            }
            if (m->zchunk) {
                ws_send_framed(s->ws, m->zchunk, 0, m->zchunk->len);
                return;
            }
        }
        ws_send_framed(s->ws, m->chunk, m->ws_off, m->chunk->len - m->ws_off);
        return;
    }
    if (key) q_drop_key(s, key);
    q_push_keyed(s, m->chunk, m->msg_off, m->chunk->len - m->msg_off, false, key);
    schedule_flush(s);
}

/* ---- heartbeat ---- */
static void ping_cb(net_loop_t *loop, net_timer_t *t)
{
    eio_session_t *s = rt_container_of(t, eio_session_t, ping);
    if (s->closed) return;
    if (s->proto == 3) { /* v3: the client pings; it did not in time */
        s->reason = EIO_REASON_PING_TIMEOUT;
        eio_session_close(s);
        return;
    }
    if (s->awaiting_pong) {
        s->reason = EIO_REASON_PING_TIMEOUT;
        eio_session_close(s);
        return;
    }
    s->awaiting_pong = true;
    send_control(s, "2");
    if (s->closed) return; /* the ping itself overflowed an unpolled queue */
    /* Count the timeout from when the ping was due, not from when this
     * callback ran: the session is dead exactly interval + timeout later. */
    net_timer_start_at(loop, t, t->expire + s->srv->opt.ping_timeout);
}

static void got_pong(eio_session_t *s)
{
    if (!s->awaiting_pong) return;
    s->awaiting_pong = false;
    net_timer_start(s->srv->loop, &s->ping, s->srv->opt.ping_interval);
}

/* ---- sessions ---- */
void *eio_session_data(const eio_session_t *s) { return s->ud; }
void eio_session_set_data(eio_session_t *s, void *ud) { s->ud = ud; }
const char *eio_session_sid(const eio_session_t *s) { return s->sid; }
eio_server_t *eio_session_server(const eio_session_t *s) { return s->srv; }
bool eio_session_is_websocket(const eio_session_t *s) { return s->ws != NULL; }
int eio_session_proto(const eio_session_t *s) { return s->proto; }
const eio_options_t *eio_server_options(const eio_server_t *srv) { return &srv->opt; }
size_t eio_server_sessions(const eio_server_t *srv) { return srv->sessions.count; }
const eio_stats_t *eio_server_stats(const eio_server_t *srv) { return &srv->stats; }

void eio_server_set_limits(eio_server_t *srv, size_t max_sessions, size_t max_buffered)
{
    srv->opt.max_sessions = max_sessions;
    srv->opt.max_buffered = max_buffered;
}
void *eio_server_data(const eio_server_t *srv) { return srv->ud; }

static void upgrade_drop(eio_session_t *s);

static const ws_handler_t ws_main_handler;
static const ws_handler_t ws_probe_handler;
static const ws_handler_t ws_orphan_handler;

void eio_session_close(eio_session_t *s)
{
    if (s->closed) return;
    eio_server_t *srv = s->srv;
    s->closed = true;
    if (!s->reason) s->reason = EIO_REASON_SERVER_CLOSE;
    rt_map_del(&srv->sessions, rt_slice(s->sid, s->sid_len));
    if (s->was_ws) srv->stats.ws_sessions--;
    if (s->was_deflate) srv->stats.deflate_sessions--;
    for (int i = 0; i < EIO_REASONS; i++)
        if (s->reason == eio_reasons[i]) srv->stats.closes[i]++;
    net_timer_stop(&s->ping);
    upgrade_drop(s);
    if (s->get) {
        /* A client-initiated close answers the parked GET with a noop; a
         * server-side close tells the client with a close packet. */
        http_conn_t *hc = s->get;
        s->get = NULL;
        respond_packet(s, hc, s->reason == EIO_REASON_FORCED_CLOSE ? "6" : "1");
    }
    q_clear(s);
    if (s->ws) {
        ws_set_handler(s->ws, &ws_orphan_handler);
        ws_set_data(s->ws, NULL);
        if (s->reason != EIO_REASON_TRANSPORT_CLOSE) ws_close(s->ws, 0);
        s->ws = NULL;
    }
    net_defer(srv->loop, &s->task, NET_PHASE_WORK);
}

/* The session's task: answer the parked GET, or end a closed session. */
static void session_task(net_loop_t *loop, net_task_t *t)
{
    eio_session_t *s = rt_container_of(t, eio_session_t, task);
    RT_UNUSED(loop);
    if (!s->closed) {
        drain_to_get(s);
        return;
    }
    eio_server_t *srv = s->srv;
    srv->h.on_close(s, s->reason, srv->ud);
    rt_pool_free(&srv->session_pool, s);
}

static eio_session_t *session_new(eio_server_t *srv, int proto)
{
    eio_session_t *s = rt_pool_alloc(&srv->session_pool);
    s->srv = srv;
    s->proto = (uint8_t)proto;
    net_task_init(&s->task, session_task);
    size_t pl = strnlen(srv->opt.sid_prefix, EIO_SID_PREFIX_MAX);
    memcpy(s->sid, srv->opt.sid_prefix, pl);
    s->sid_len = (uint8_t)(pl + SID_RANDOM);
    do rt_random_id(s->sid + pl);
    while (rt_map_get(&srv->sessions, rt_slice(s->sid, s->sid_len)));
    rt_map_put(&srv->sessions, rt_slice(s->sid, s->sid_len), s);
    net_timer_init(&s->ping, ping_cb);
    net_timer_start(srv->loop, &s->ping, srv->opt.ping_interval + (proto == 3 ? srv->opt.ping_timeout : 0));
    return s;
}

/* Handles one packet from the client on the session's main transport.
 * Returns false when the session was closed by it. */
static bool handle_packet(eio_session_t *s, const eio_packet_t *p)
{
    eio_server_t *srv = s->srv;
    if (p->binary) {
        srv->h.on_message(s, true, p->data, srv->ud);
        return !s->closed;
    }
    switch (p->type) {
    case EIO_PONG: got_pong(s); break;
    case EIO_MESSAGE: srv->h.on_message(s, false, p->data, srv->ud); break;
    case EIO_CLOSE:
        s->reason = EIO_REASON_FORCED_CLOSE;
        eio_session_close(s);
        break;
    case EIO_PING:
        if (s->proto == 3) { /* v3: the client's heartbeat; the pong echoes its data */
            char pong[64];
            int n = snprintf(pong, sizeof pong, "3%.*s", (int)RT_MIN(p->data.n, 32), p->data.p);
            if (n > 0) send_control(s, pong);
            if (!s->closed) net_timer_start(srv->loop, &s->ping, srv->opt.ping_interval + srv->opt.ping_timeout);
            break;
        }
        /* v4 clients never ping: the reference treats it as an error */
        s->reason = EIO_REASON_PARSE_ERROR;
        eio_session_close(s);
        break;
    default: break; /* open, upgrade, noop: ignored */
    }
    return !s->closed;
}

/* ---- WebSocket transport ---- */
static void ws_main_message(ws_conn_t *ws, bool binary, char *data, size_t len)
{
    eio_session_t *s = ws_data(ws);
    if (!s || s->closed) return;
    eio_packet_t p;
    if (binary && s->proto == 3) { /* v3: the packet type first */
        if (!len || data[0] != 4) {
            s->reason = EIO_REASON_PARSE_ERROR;
            eio_session_close(s);
            return;
        }
        p = (eio_packet_t){EIO_MESSAGE, true, rt_slice(data + 1, len - 1)};
    } else if (binary) {
        p = (eio_packet_t){EIO_MESSAGE, true, rt_slice(data, len)};
    } else if (eio_packet_decode(rt_slice(data, len), &p) < 0) {
        s->reason = EIO_REASON_PARSE_ERROR;
        eio_session_close(s);
        return;
    }
    handle_packet(s, &p);
}

static void ws_main_close(ws_conn_t *ws)
{
    eio_session_t *s = ws_data(ws);
    if (!s) return;
    s->ws = NULL;
    if (!s->closed) {
        s->reason = EIO_REASON_TRANSPORT_CLOSE;
        eio_session_close(s);
    }
}

static void ws_orphan_message(ws_conn_t *ws, bool binary, char *data, size_t len)
{
    RT_UNUSED(ws), RT_UNUSED(binary), RT_UNUSED(data), RT_UNUSED(len);
}
static void ws_orphan_close(ws_conn_t *ws) { RT_UNUSED(ws); }

static const ws_handler_t ws_main_handler = {ws_main_message, ws_main_close};
static const ws_handler_t ws_orphan_handler = {ws_orphan_message, ws_orphan_close};

/* ---- upgrade ---- */
static void upgrade_drop(eio_session_t *s)
{
    eio_upgrade_t *u = s->upgrade;
    if (!u) return;
    s->upgrade = NULL;
    net_timer_stop(&u->timer);
    if (u->ws) {
        ws_set_handler(u->ws, &ws_orphan_handler);
        ws_set_data(u->ws, NULL);
        ws_close(u->ws, 0);
    }
    free(u);
}

static void upgrade_timeout(net_loop_t *loop, net_timer_t *t)
{
    eio_upgrade_t *u = rt_container_of(t, eio_upgrade_t, timer);
    RT_UNUSED(loop);
    eio_session_t *s = ws_data(u->ws);
    if (s) upgrade_drop(s);
}

static void ws_probe_message(ws_conn_t *ws, bool binary, char *data, size_t len)
{
    eio_session_t *s = ws_data(ws);
    if (!s || s->closed || !s->upgrade) return;
    eio_packet_t p;
    if (binary || eio_packet_decode(rt_slice(data, len), &p) < 0) {
        upgrade_drop(s);
        return;
    }
    if (p.type == EIO_PING && rt_slice_eq_cstr(p.data, "probe")) {
        ws_send(ws, false, "3probe", 6);
        s->upgrade->probed = true;
        if (s->get) { /* release the parked poll so the client can switch */
            http_conn_t *hc = s->get;
            s->get = NULL;
            respond_packet(s, hc, "6");
        }
        return;
    }
    if (p.type == EIO_UPGRADE && s->upgrade->probed) {
        eio_upgrade_t *u = s->upgrade;
        s->upgrade = NULL;
        net_timer_stop(&u->timer);
        s->ws = u->ws;
        s->was_ws = true;
        s->srv->stats.ws_sessions++;
        if (ws_deflate(s->ws)) s->was_deflate = true, s->srv->stats.deflate_sessions++;
        s->srv->stats.upgrades++;
        free(u);
        ws_set_handler(s->ws, &ws_main_handler);
        if (s->get) {
            http_conn_t *hc = s->get;
            s->get = NULL;
            respond_packet(s, hc, "6");
        }
        /* Everything queued for polling moves to the socket, in order. */
        for (eio_qpkt_t *q = s->q_head; q; q = q->next) {
            if (q->dead) continue;
            if (q->binary) ws_send_binary_v(s, q->chunk->data + q->off, q->len);
            else ws_send(s->ws, false, q->chunk->data + q->off, q->len);
        }
        q_clear(s);
        return;
    }
    upgrade_drop(s);
}

static void ws_probe_close(ws_conn_t *ws)
{
    eio_session_t *s = ws_data(ws);
    if (!s || !s->upgrade) return;
    s->upgrade->ws = NULL;
    upgrade_drop(s);
}

static const ws_handler_t ws_probe_handler = {ws_probe_message, ws_probe_close};

/* ---- polling ---- */
static void get_aborted(http_conn_t *hc, void *ud)
{
    eio_session_t *s = ud;
    if (s->get != hc) return;
    s->get = NULL;
    s->reason = EIO_REASON_TRANSPORT_CLOSE;
    eio_session_close(s);
}

static int post_packet(void *ud, const eio_packet_t *p)
{
    return handle_packet(ud, p) ? 0 : 1;
}

static void handle_polling(eio_session_t *s, http_conn_t *hc, const http_request_t *req,
                           rt_slice_t body)
{
    if (rt_slice_eq_cstr(req->method, "GET")) {
        if (s->get) {
            /* Duplicate GET: the reference answers it 400 and closes. */
            http_respond(hc, 400, "text/plain; charset=UTF-8", "", 0, NULL);
            s->reason = EIO_REASON_TRANSPORT_ERROR;
            eio_session_close(s);
            return;
        }
        s->get = hc;
        if (s->q_head) drain_to_get(s); /* may leave it parked: only superseded packets */
        if (s->get != hc) return;
        if (s->upgrade && s->upgrade->probed) {
            s->get = NULL;
            respond_packet(s, hc, "6");
        } else {
            http_conn_set_abort(hc, get_aborted, s);
        }
        return;
    }
    if (rt_slice_eq_cstr(req->method, "POST")) {
        rt_slice_t ct = http_header_get(req, "content-type");
        bool octets = ct.p && ct.n >= 24 && rt_slice_case_eq(rt_slice(ct.p, 24), "application/octet-stream");
        /* binary bodies exist in v3 only (its XHR2 form) */
        int r = octets && s->proto != 3 ? RT_EPROTO
                : octets                ? eio3_payload_decode_binary(body, post_packet, s)
                : s->proto == 3         ? eio3_payload_decode(body, &s->srv->scratch, post_packet, s)
                                        : eio_payload_decode(body, &s->srv->scratch, post_packet, s);
        if (r < 0) {
            respond_code(hc, 3, "Bad request");
            s->reason = octets && s->proto != 3 ? EIO_REASON_TRANSPORT_ERROR : EIO_REASON_PARSE_ERROR;
            eio_session_close(s);
            return;
        }
        http_respond(hc, 200, "text/html", "ok", 2, NULL);
        return;
    }
    respond_code(hc, 3, "Bad request");
}

/* ---- handshake and routing ---- */
static void build_handshake(eio_server_t *srv, rt_buf_t *b, const char *sid, bool websocket, int proto)
{
    rt_buf_append_cstr(b, "0{\"sid\":\"");
    rt_buf_append_cstr(b, sid);
    rt_buf_append_cstr(b, websocket || !srv->opt.websocket ? "\",\"upgrades\":[]"
                                                           : "\",\"upgrades\":[\"websocket\"]");
    rt_buf_append_cstr(b, proto == 3 ? srv->handshake_tail3 : srv->handshake_tail);
    if (proto == 3 && !websocket) { /* a v3 polling payload: "<len>:" first */
        char head[24];
        int hn = snprintf(head, sizeof head, "%zu:", eio_utf16_len(b->data, b->len));
        rt_buf_reserve(b, (size_t)hn);
        memmove(b->data + hn, b->data, b->len);
        memcpy(b->data, head, (size_t)hn);
        b->len += (size_t)hn;
    }
}

static void eio_http(http_conn_t *hc, const http_request_t *req, rt_slice_t body, void *ud)
{
    eio_server_t *srv = ud;
    rt_slice_t eio, transport, sidq;
    /* "4", or with allow_eio3 anything else (as the reference: a missing EIO too) */
    int proto = http_query_get(req->query, "EIO", &eio) && rt_slice_eq_cstr(eio, "4") ? 4
                : srv->opt.allow_eio3                                               ? 3
                                                                                    : 0;
    if (!proto) {
        respond_code(hc, 5, "Unsupported protocol version");
        return;
    }
    bool has_t = http_query_get(req->query, "transport", &transport);
    bool is_ws = has_t && rt_slice_eq_cstr(transport, "websocket");
    bool is_poll = has_t && rt_slice_eq_cstr(transport, "polling");
    if ((!is_ws && !is_poll) || (is_ws && !srv->opt.websocket) || (is_poll && !srv->opt.polling)) {
        respond_code(hc, 0, "Transport unknown");
        return;
    }
    bool has_sid = http_query_get(req->query, "sid", &sidq) && sidq.n;
    if (is_ws && (!http_header_get(req, "upgrade").p || ws_handshake_check(req))) {
        respond_code(hc, 3, "Bad request");
        return;
    }
    if (!has_sid) {
        if (!rt_slice_eq_cstr(req->method, "GET")) {
            respond_code(hc, 2, "Bad handshake method");
            return;
        }
        if (srv->opt.max_sessions && srv->sessions.count >= srv->opt.max_sessions) {
            /* Engine.IO's error body, with a status that tells clients and
             * proxies to come back (socket.io-client retries with backoff). */
            static const char full[] = "{\"code\":3,\"message\":\"Server is full\"}";
            rt_warn_rl("eio", "refused a handshake: %u sessions (max_sessions)", srv->sessions.count);
            srv->stats.refused_full++;
            http_respond(hc, 503, "application/json", full, sizeof full - 1, "Retry-After: 1\r\n");
            return;
        }
        eio_session_t *s = session_new(srv, proto);
        rt_slice_t b64; /* v3: the handshake says whether binary payloads go out as XHR2 octets, as the reference */
        s->xhr2 = proto == 3 && !http_query_get(req->query, "b64", &b64);
        srv->stats.handshakes[is_ws]++;
        rt_buf_t b = {0};
        build_handshake(srv, &b, s->sid, is_ws, proto);
        if (is_ws) {
            s->ws = ws_accept_ex(hc, req, &ws_main_handler, s, srv->opt.max_payload,
                                 srv->opt.per_message_deflate != 0, b.data, b.len);
            s->was_ws = true;
            srv->stats.ws_sessions++;
            if (ws_deflate(s->ws)) s->was_deflate = true, srv->stats.deflate_sessions++;
            srv->h.on_open(s, req, srv->ud);
        } else {
            srv->h.on_open(s, req, srv->ud);
            http_respond(hc, 200, "text/plain; charset=UTF-8", b.data, b.len, GET_HEADERS);
        }
        rt_buf_free(&b);
        return;
    }
    eio_session_t *s = rt_map_get(&srv->sessions, sidq);
    if (req->too_large) {
        /* a POST over max_payload ends its session, as in the reference
         * (413 with the CORS headers: the browser sees why) */
        if (s && !s->ws) {
            rt_warn_rl("eio", "closing a polling session that posted more than %zu bytes", srv->opt.max_payload);
            s->reason = EIO_REASON_TRANSPORT_ERROR;
            eio_session_close(s);
        }
        http_respond_error(hc, 413, NULL);
        return;
    }
    if (!s && srv->opt.foreign_sid && srv->opt.foreign_sid(hc, sidq, srv->opt.foreign_ud)) return;
    if (!s) {
        respond_code(hc, 1, "Session ID unknown");
        return;
    }
    if (s->proto != proto) { /* a v3 session asked as v4, or the reverse */
        respond_code(hc, 3, "Bad request");
        return;
    }
    if (is_ws) {
        if (s->ws || s->upgrade) {
            /* A second WebSocket for the same session: complete its
             * handshake and close it at once, as the reference does (an
             * HTTP 400 here makes the ws client throw). */
            ws_close(ws_accept(hc, req, &ws_orphan_handler, NULL, 125, NULL, 0), 0);
            return;
        }
        eio_upgrade_t *u = rt_calloc(1, sizeof *u);
        u->ws = ws_accept_ex(hc, req, &ws_probe_handler, s, srv->opt.max_payload, srv->opt.per_message_deflate != 0,
                             NULL, 0);
        net_timer_init(&u->timer, upgrade_timeout);
        net_timer_start(srv->loop, &u->timer, srv->opt.upgrade_timeout);
        s->upgrade = u;
        return;
    }
    if (s->ws) { /* upgraded: polling is over for this session */
        respond_code(hc, 3, "Bad request");
        return;
    }
    handle_polling(s, hc, req, body);
}

eio_server_t *eio_server_new(http_server_t *http, const char *path, const eio_options_t *opt,
                             const eio_handler_t *h, void *ud)
{
    eio_server_t *srv = rt_calloc(1, sizeof *srv);
    srv->http = http;
    srv->loop = http_server_loop(http);
    if (opt) srv->opt = *opt;
    else eio_options_default(&srv->opt);
    srv->h = *h;
    srv->ud = ud;
    rt_map_init(&srv->sessions);
    srv->session_pool = (rt_pool_t)RT_POOL_INIT(eio_session_t);
    srv->qpkts = (rt_pool_t)RT_POOL_INIT(eio_qpkt_t);
    snprintf(srv->handshake_tail, sizeof srv->handshake_tail,
             ",\"pingInterval\":%u,\"pingTimeout\":%u,\"maxPayload\":%zu}",
             srv->opt.ping_interval, srv->opt.ping_timeout, srv->opt.max_payload);
    snprintf(srv->handshake_tail3, sizeof srv->handshake_tail3, ",\"pingInterval\":%u,\"pingTimeout\":%u}",
             srv->opt.ping_interval, srv->opt.ping_timeout);
    http_server_route_flags(http, path, HTTP_ROUTE_TOO_LARGE, eio_http, srv);
    return srv;
}

void eio_server_free(eio_server_t *srv)
{
    if (!srv) return;
    rt_slice_t k;
    void *v;
    /* Closing a session deletes only its own entry, which rt_map_next
     * allows: one linear pass. */
    for (uint32_t it = 0; rt_map_next(&srv->sessions, &it, &k, &v);) {
        eio_session_t *s = v;
        s->reason = EIO_REASON_SHUTDOWN;
        eio_session_close(s);
    }
    net_loop_drain(srv->loop); /* their on_close, then the free */
    rt_assert(srv->sessions.count == 0);
    rt_map_free(&srv->sessions);
    rt_buf_free(&srv->scratch);
    rt_chunk_unref(srv->zc.src);
    rt_chunk_unref(srv->zc.out);
    if (srv->deflater) {
        deflateEnd(srv->deflater);
        free(srv->deflater);
    }
    http_compressor_free(srv->gz);
    rt_pool_destroy(&srv->session_pool);
    rt_pool_destroy(&srv->qpkts);
    free(srv);
}
