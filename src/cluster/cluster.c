/* cluster: node heartbeats and cluster-wide presence in Redis (cluster.h).
 *
 * Life of a node:
 *   Redis ready -> SET node:<id> 1 PX 10000, TIME (our offset to Redis's
 *   clock), the SELF clean-up script (drops what an earlier life of this
 *   node left), then ready: on_resync, and every viewer change is a VIEW
 *   script. Every 3 s the heartbeat (SET ... GET: a nil answer while ready
 *   means the key had expired, Redis was restarted or stalled and the others
 *   may have removed our viewers: resync). Every 2 s the DEAD script removes
 *   the viewers of nodes whose heartbeat key is gone.
 *   Redis away -> not ready: the caller computes presence locally until it
 *   is back, then the resync above. */
#include "cluster.h"

#include <hiredis/hiredis.h>
#include <stdio.h>

#define HEARTBEAT_MS 3000
#define NODE_TTL_MS "10000"
#define CLEAN_MS 2000

/* publish_list(key, head): the live members of key in order, published
 * after head on realtimed:presence. */
#define LUA_PUBLISH_LIST                                                                                    \
    "local function publish_list(key, head, channel)\n"                                                    \
    "  local out, alive = {}, {}\n"                                                                        \
    "  for _, v in ipairs(redis.call('ZRANGE', key, 0, -1)) do\n"                                          \
    "    local node = string.match(v, '^([^|]*)|')\n"                                                      \
    "    if node then\n"                                                                                   \
    "      if alive[node] == nil then alive[node] = redis.call('EXISTS', 'realtimed:node:' .. node) == 1 end\n" \
    "      if alive[node] then out[#out + 1] = v end\n"                                                    \
    "    end\n"                                                                                            \
    "  end\n"                                                                                              \
    "  redis.call('PUBLISH', channel, head .. table.concat(out, '\\0'))\n"                                  \
    "  return #out\n"                                                                                      \
    "end\n"

/* KEYS: viewers key, nodedocs:<node>, nodes. ARGV: op (+, -, -last),
 * member, score, head, node, presence channel. */
static const char lua_view[] = LUA_PUBLISH_LIST
    "if ARGV[1] == '+' then\n"
    "  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])\n"
    "  redis.call('SADD', KEYS[2], KEYS[1])\n"
    "  redis.call('SADD', KEYS[3], ARGV[5])\n"
    "else\n"
    "  redis.call('ZREM', KEYS[1], ARGV[2])\n"
    "  if ARGV[1] == '-last' then redis.call('SREM', KEYS[2], KEYS[1]) end\n"
    "end\n"
    "return publish_list(KEYS[1], ARGV[4], ARGV[6])\n";

/* KEYS: nodes. ARGV: a node (its own clean-up) or "" (every dead node),
 * the presence channel.
 * A viewers key is "realtimed:viewers:" (18 bytes) .. nsp\0dt\0dn; its
 * head is that suffix, then self "" . */
/* KEYS: node:<id>. ARGV: ttl ms. The old value: nil when the key had
 * expired (SET ... GET needs Redis 6.2; this works from 2.6). */
static const char lua_beat[] = "local old = redis.call('GET', KEYS[1])\n"
                               "redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])\n"
                               "return old\n";

static const char lua_clean[] = LUA_PUBLISH_LIST
    "local nodes\n"
    "if ARGV[1] ~= '' then nodes = {ARGV[1]} else nodes = redis.call('SMEMBERS', KEYS[1]) end\n"
    "local cleaned = 0\n"
    "for _, node in ipairs(nodes) do\n"
    "  if ARGV[1] ~= '' or redis.call('EXISTS', 'realtimed:node:' .. node) == 0 then\n"
    "    local nd = 'realtimed:nodedocs:' .. node\n"
    "    local prefix = node .. '|'\n"
    "    for _, key in ipairs(redis.call('SMEMBERS', nd)) do\n"
    "      local changed = false\n"
    "      for _, v in ipairs(redis.call('ZRANGE', key, 0, -1)) do\n"
    "        if string.sub(v, 1, #prefix) == prefix then redis.call('ZREM', key, v); changed = true end\n"
    "      end\n"
    "      if changed then publish_list(key, string.sub(key, 19) .. '\\0\\0', ARGV[2]) end\n"
    "    end\n"
    "    redis.call('DEL', nd)\n"
    "    if ARGV[1] == '' then redis.call('SREM', KEYS[1], node) end\n"
    "    cleaned = cleaned + 1\n"
    "  end\n"
    "end\n"
    "return cleaned\n";

struct cluster {
    net_loop_t *loop;
    broker_t *b;
    cluster_handler_t h;
    void *ud;
    char node[17];
    char node_key[40];
    char nodedocs_key[48];
    char ch_presence[48], ch_bcast[48]; /* per Redis database: channels are server-wide */
    bool ready;     /* resync done: presence goes through Redis */
    bool syncing;   /* a resync is under way */
    bool freed;     /* cluster_free ran; freed when the last reply is in */
    unsigned inflight;
    int64_t offset_us; /* Redis time (µs) - rt_now_ns()/1000 */
    net_timer_t heartbeat, clean;
    rt_buf_t tmp;
    cluster_stats_t stats;
};

static void maybe_release(cluster_t *c)
{
    if (!c->freed || c->inflight) return;
    rt_buf_free(&c->tmp);
    free(c);
}

typedef void (*reply_fn)(cluster_t *c, redisReply *r);
typedef struct {
    cluster_t *c;
    reply_fn fn;
} req_t;

static void on_reply(redisReply *r, void *ud)
{
    req_t *q = ud;
    cluster_t *c = q->c;
    reply_fn fn = q->fn;
    free(q);
    c->inflight--;
    if (!c->freed) {
        if (r && r->type == REDIS_REPLY_ERROR) {
            c->stats.failed++;
            rt_warn_rl("cluster", "Redis refused a presence command: %.200s", r->str);
        }
        if (fn) fn(c, r);
    }
    maybe_release(c);
}

static bool command(cluster_t *c, reply_fn fn, int argc, const char **argv, const size_t *lens)
{
    req_t *q = rt_calloc(1, sizeof *q);
    q->c = c;
    q->fn = fn;
    if (!broker_command(c->b, on_reply, q, argc, argv, lens)) {
        free(q);
        return false;
    }
    c->inflight++;
    return true;
}

static void resync(cluster_t *c);

/* ---- heartbeat and dead nodes ---- */
static void on_heartbeat(cluster_t *c, redisReply *r)
{
    /* nil: the key was gone (first beat, Redis restarted, or we were too
     * slow and the others may have removed our viewers) */
    if (r && r->type == REDIS_REPLY_NIL && c->ready && !c->syncing) {
        rt_notice("cluster", "node %s: heartbeat key had expired: announcing its viewers again", c->node);
        resync(c);
    }
}

static void send_heartbeat(cluster_t *c)
{
    const char *argv[] = {"EVAL", lua_beat, "1", c->node_key, NODE_TTL_MS};
    command(c, on_heartbeat, 5, argv, NULL);
}

static void heartbeat_cb(net_loop_t *loop, net_timer_t *t)
{
    cluster_t *c = rt_container_of(t, cluster_t, heartbeat);
    if (broker_ready(c->b)) send_heartbeat(c);
    net_timer_start(loop, t, HEARTBEAT_MS);
}

static void on_clean(cluster_t *c, redisReply *r)
{
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer > 0) {
        c->stats.cleanups += (uint64_t)r->integer;
        rt_notice("cluster", "removed the viewers of %lld node(s) that stopped sending heartbeats", r->integer);
    }
}

static void clean_cb(net_loop_t *loop, net_timer_t *t)
{
    cluster_t *c = rt_container_of(t, cluster_t, clean);
    if (c->ready) {
        const char *argv[] = {"EVAL", lua_clean, "1", "realtimed:nodes", "", c->ch_presence};
        command(c, on_clean, 6, argv, NULL);
    }
    net_timer_start(loop, t, CLEAN_MS);
}

/* ---- (re)synchronisation ---- */
static void on_self_clean(cluster_t *c, redisReply *r)
{
    c->syncing = false;
    if (!r || r->type == REDIS_REPLY_ERROR) return; /* the link went down: again when it is back */
    c->ready = true;
    c->stats.resyncs++;
    if (c->h.on_resync) c->h.on_resync(c->ud);
}

static void on_time(cluster_t *c, redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 2 || r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_STRING) {
        c->syncing = false;
        return;
    }
    int64_t us = strtoll(r->element[0]->str, NULL, 10) * 1000000 + strtoll(r->element[1]->str, NULL, 10);
    c->offset_us = us - (int64_t)(rt_now_ns() / 1000);
    const char *argv[] = {"EVAL", lua_clean, "1", "realtimed:nodes", c->node, c->ch_presence};
    if (!command(c, on_self_clean, 6, argv, NULL)) c->syncing = false;
}

static void resync(cluster_t *c)
{
    c->ready = false;
    c->syncing = true;
    send_heartbeat(c);
    const char *argv[] = {"TIME"};
    if (!command(c, on_time, 1, argv, NULL)) c->syncing = false;
}

static void on_broker_ready(bool ready, void *ud)
{
    cluster_t *c = ud;
    if (!ready) {
        if (c->ready) rt_info("cluster", "Redis unavailable: presence is computed locally until it is back");
        c->ready = false;
        c->syncing = false;
        return;
    }
    resync(c);
}

/* ---- presence ---- */
static void on_presence(rt_slice_t channel, rt_slice_t payload, void *ud)
{
    cluster_t *c = ud;
    RT_UNUSED(channel);
    c->stats.published_seen++;
    rt_slice_t f[4];
    const char *p = payload.p, *end = payload.p + payload.n;
    for (int i = 0; i < 4; i++) {
        const char *z = p < end ? memchr(p, 0, (size_t)(end - p)) : NULL;
        if (!z) return; /* not ours */
        f[i] = rt_slice(p, (size_t)(z - p));
        p = z + 1;
    }
    /* the members: "<node>|<socket>|<user>", NUL-separated */
    size_t cap = 16, n = 0;
    rt_slice_t stack[16] = {{0}}, *users = stack;
    while (p < end) {
        const char *z = memchr(p, 0, (size_t)(end - p));
        const char *stop = z ? z : end;
        const char *bar1 = memchr(p, '|', (size_t)(stop - p));
        const char *bar2 = bar1 ? memchr(bar1 + 1, '|', (size_t)(stop - bar1 - 1)) : NULL;
        if (bar2) {
            if (n == cap) {
                cap *= 2;
                rt_slice_t *nu = rt_calloc(cap, sizeof *nu);
                memcpy(nu, users, n * sizeof *nu);
                if (users != stack) free(users);
                users = nu;
            }
            users[n++] = rt_slice(bar2 + 1, (size_t)(stop - bar2 - 1));
        }
        p = z ? z + 1 : end;
    }
    if (c->h.on_viewers) c->h.on_viewers(f[0], f[1], f[2], f[3], users, n, c->ud);
    if (users != stack) free(users);
}

static void on_bcast(rt_slice_t channel, rt_slice_t payload, void *ud)
{
    cluster_t *c = ud;
    RT_UNUSED(channel);
    const char *z = memchr(payload.p, 0, payload.n);
    if (!z) return;
    rt_slice_t from = rt_slice(payload.p, (size_t)(z - payload.p));
    if (rt_slice_eq_cstr(from, c->node) || !c->h.on_message) return; /* delivered here already */
    c->h.on_message(rt_slice(z + 1, payload.n - from.n - 1), c->ud);
}

bool cluster_send(cluster_t *c, rt_slice_t msg)
{
    if (!c || !broker_ready(c->b)) return false;
    rt_buf_t *b = &c->tmp;
    b->len = 0;
    rt_buf_append_cstr(b, c->node);
    rt_buf_putc(b, 0);
    rt_buf_append_slice(b, msg);
    const char *argv[] = {"PUBLISH", c->ch_bcast, b->data};
    size_t lens[] = {7, strlen(c->ch_bcast), b->len};
    return command(c, NULL, 3, argv, lens);
}

static bool has_nul(rt_slice_t s) { return s.n && memchr(s.p, 0, s.n) != NULL; }

bool cluster_viewer(cluster_t *c, rt_slice_t nsp, rt_slice_t dt, rt_slice_t dn, rt_slice_t sock_id,
                    rt_slice_t user, uint64_t connected_ns, bool open, bool last)
{
    if (!c || !c->ready || has_nul(nsp) || has_nul(dt) || has_nul(dn) || has_nul(user) || has_nul(sock_id)) return false;
    rt_buf_t *b = &c->tmp;
    b->len = 0;
    /* key | head | member | score, one buffer (offsets: it may move) */
    rt_buf_append_cstr(b, "realtimed:viewers:");
    size_t key0 = 0;
    for (int pass = 0; pass < 2; pass++) { /* the key's tail, then the head */
        rt_buf_append_slice(b, nsp);
        rt_buf_putc(b, 0);
        rt_buf_append_slice(b, dt);
        rt_buf_putc(b, 0);
        rt_buf_append_slice(b, dn);
        if (pass == 0) rt_buf_putc(b, 0); /* the key ends before this byte */
    }
    size_t key_len = 18 + nsp.n + dt.n + dn.n + 2, head0 = key_len + 1;
    rt_buf_putc(b, 0);
    rt_buf_append_slice(b, user);
    rt_buf_putc(b, 0);
    size_t head_len = b->len - head0, member0 = b->len;
    rt_buf_append_cstr(b, c->node);
    rt_buf_putc(b, '|');
    rt_buf_append_slice(b, sock_id);
    rt_buf_putc(b, '|');
    rt_buf_append_slice(b, user);
    size_t member_len = b->len - member0, score0 = b->len;
    rt_buf_printf(b, "%lld", (long long)((int64_t)(connected_ns / 1000) + c->offset_us));
    size_t score_len = b->len - score0;
    const char *op = open ? "+" : last ? "-last" : "-";
    const char *argv[] = {"EVAL", lua_view, "3", b->data + key0, c->nodedocs_key, "realtimed:nodes", op,
                          b->data + member0, b->data + score0, b->data + head0, c->node, c->ch_presence};
    size_t lens[] = {4, sizeof lua_view - 1, 1, key_len, strlen(c->nodedocs_key), 15, strlen(op), member_len,
                     score_len, head_len, strlen(c->node), strlen(c->ch_presence)};
    if (!command(c, NULL, 12, argv, lens)) return false;
    c->stats.changes++;
    return true;
}

/* ---- life ---- */
cluster_t *cluster_new(net_loop_t *loop, broker_t *b, const cluster_handler_t *h, void *ud)
{
    cluster_t *c = rt_calloc(1, sizeof *c);
    c->loop = loop;
    c->b = b;
    c->h = *h;
    c->ud = ud;
    char id[21];
    rt_random_id(id);
    memcpy(c->node, id, 16); /* 96 random bits; base64url has no '|' */
    c->node[16] = 0;
    snprintf(c->node_key, sizeof c->node_key, "realtimed:node:%s", c->node);
    snprintf(c->nodedocs_key, sizeof c->nodedocs_key, "realtimed:nodedocs:%s", c->node);
    net_timer_init(&c->heartbeat, heartbeat_cb);
    net_timer_init(&c->clean, clean_cb);
    net_timer_start(loop, &c->heartbeat, HEARTBEAT_MS);
    unsigned jitter;
    rt_random_bytes(&jitter, sizeof jitter);
    net_timer_start(loop, &c->clean, CLEAN_MS + jitter % 1000); /* nodes do not clean in step */
    /* Redis's channels are shared by its databases, keys are not: benches
     * on one Redis with different db numbers must not hear each other */
    int db = broker_db(b);
    snprintf(c->ch_presence, sizeof c->ch_presence, db ? "realtimed:presence:%d" : "realtimed:presence", db);
    snprintf(c->ch_bcast, sizeof c->ch_bcast, db ? "realtimed:bcast:%d" : "realtimed:bcast", db);
    broker_subscribe(b, c->ch_presence, on_presence, c);
    broker_subscribe(b, c->ch_bcast, on_bcast, c);
    broker_watch(b, on_broker_ready, c);
    if (broker_ready(b)) resync(c);
    rt_info("cluster", "node %s", c->node);
    return c;
}

void cluster_free(cluster_t *c)
{
    if (!c) return;
    net_timer_stop(&c->heartbeat);
    net_timer_stop(&c->clean);
    broker_watch(c->b, NULL, NULL);
    broker_unsubscribe(c->b, c->ch_presence);
    broker_unsubscribe(c->b, c->ch_bcast);
    if (c->ready) {
        /* leave at once rather than after the heartbeat expires */
        const char *del[] = {"DEL", c->node_key};
        command(c, NULL, 2, del, NULL);
        const char *argv[] = {"EVAL", lua_clean, "1", "realtimed:nodes", c->node, c->ch_presence};
        command(c, NULL, 6, argv, NULL);
        const char *srem[] = {"SREM", "realtimed:nodes", c->node};
        command(c, NULL, 3, srem, NULL);
        broker_flush(c->b); /* the process may be about to exit */
    }
    c->ready = false;
    c->freed = true;
    maybe_release(c);
}

const char *cluster_node(const cluster_t *c) { return c->node; }
broker_t *cluster_broker(const cluster_t *c) { return c->b; }
net_loop_t *cluster_loop(const cluster_t *c) { return c->loop; }
bool cluster_ready(const cluster_t *c) { return c && c->ready; }
const cluster_stats_t *cluster_stats(const cluster_t *c) { return &c->stats; }
