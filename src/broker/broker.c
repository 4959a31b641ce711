/* broker: where published events come from: Redis through hiredis async,
 * driven by our loop, on two links (a subscriber and a command connection).
 *
 * Each link is a small state machine:
 *
 *   IDLE --connect--> CONNECTING --connected--> SETUP (AUTH, SELECT, then
 *     ^                    |                      |   SUBSCRIBE or PING)
 *     |                    |                      +--all answered--> READY
 *     +---- backoff timer <+------ failed / lost <+-------------------+
 *
 * A link is ready only once Redis accepted its setup, so a wrong password
 * is a failure like a refused connection: it backs off (100 ms doubling to
 * 5 s, with jitter) and is never reported as "reconnected". Outages are
 * logged for the broker as a whole: one line when the first link fails
 * (at startup too), reminders after 10 s, 30 s, 1 min and then every 5 min,
 * and one line when both links are ready again. */
#include "broker.h"

#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>

typedef struct broker_link broker_link_t;
struct broker_link {
    broker_t *b;
    bool sub;                /* subscriber link */
    redisAsyncContext *ac;
    net_io_t io;
    net_timer_t timer;       /* connect timeout / reconnect backoff */
    unsigned backoff_ms;
    unsigned setup_left;     /* setup replies still awaited */
    bool ready;
};

/* A GET waiting for the command link, or in flight on it. */
typedef struct get_req {
    rt_list_t link;          /* in b->gets while waiting or in flight */
    broker_t *b;
    char *key;
    broker_get_cb cb;        /* NULL once answered (timed out): the reply is dropped */
    void *ud;
    net_timer_t timer;
    bool sent;
} get_req_t;

struct broker {
    net_loop_t *loop;
    broker_url_t url;
    char where[160];         /* host:port or the socket path, for logs */
    char **channels;
    size_t nchannels;
    broker_msg_cb *chan_cb;  /* [nchannels]: NULL = the handler's on_message */
    void **chan_ud;
    bool *chan_pat;          /* [nchannels]: a PSUBSCRIBE pattern */
    broker_handler_t h;
    void *ud;
    void (*watch)(bool ready, void *ud); /* broker_watch */
    void *watch_ud;
    bool was_ready;
    broker_link_t sub, cmd;
    bool subscribed;
    bool ever_up;
    bool closing;            /* broker_free: in-flight GETs fail now */
    uint64_t outage_since;   /* loop ms, 0 while up */
    unsigned reminders;
    net_timer_t remind;
    char why[128];           /* last failure */
    rt_list_t gets;
    broker_stats_t stats;
};

/* ---- URL ---- */
static char *dup_range(const char *a, const char *b) { return rt_strndup(a, (size_t)(b - a)); }

/* Percent-decodes [a, b) (the one decoder, base's); sets *bad on a bad escape. */
static char *pct_decode(const char *a, const char *b, bool *bad)
{
    rt_buf_t out = {0};
    if (rt_url_decode(rt_slice(a, (size_t)(b - a)), false, &out) < 0) *bad = true;
    rt_buf_putc(&out, 0);
    return out.data;
}

int broker_url_parse(const char *url, broker_url_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    bool unix_sock, bad = false;
    const char *p;
    if (!strncmp(url, "redis://", 8)) unix_sock = false, p = url + 8;
    else if (!strncmp(url, "unix://", 7)) unix_sock = true, p = url + 7;
    else {
        snprintf(err, errlen, "unsupported Redis URL scheme (use redis:// or unix://)");
        return RT_EPROTO;
    }
    const char *end = p + strlen(p), *q = strchr(p, '?');
    const char *at = NULL;
    for (const char *s = p; s < (q ? q : end); s++)
        if (*s == '@') at = s; /* the last '@' ends the credentials */
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if (colon > p) out->user = pct_decode(p, colon, &bad);
            out->password = pct_decode(colon + 1, at, &bad);
        } else if (at > p) {
            out->password = pct_decode(p, at, &bad); /* "secret@host": a bare password */
        }
        p = at + 1;
    }
    if (q) {
        for (const char *s = q + 1; *s;) {
            const char *amp = strchr(s, '&');
            if (!amp) amp = s + strlen(s);
            if (!strncmp(s, "db=", 3)) out->db = atoi(s + 3);
            else if (!strncmp(s, "password=", 9) && !out->password) out->password = pct_decode(s + 9, amp, &bad);
            s = *amp ? amp + 1 : amp;
        }
        end = q;
    }
    if (bad) {
        snprintf(err, errlen, "invalid percent-encoding in the Redis URL's credentials");
        broker_url_free(out);
        return RT_EPROTO;
    }
    if (unix_sock) {
        if (p >= end || *p != '/') {
            snprintf(err, errlen, "unix:// Redis URL needs an absolute socket path");
            broker_url_free(out);
            return RT_EPROTO;
        }
        out->path = dup_range(p, end);
        return 0;
    }
    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *hostend = slash ? slash : end;
    const char *colon = NULL;
    for (const char *s = p; s < hostend; s++)
        if (*s == ':') colon = s;
    out->host = colon ? dup_range(p, colon) : dup_range(p, hostend);
    if (!*out->host) {
        free(out->host);
        out->host = rt_strndup("127.0.0.1", 9);
    }
    out->port = 6379;
    if (colon) {
        char *e;
        long port = strtol(colon + 1, &e, 10);
        if (e != hostend || port < 1 || port > 65535) {
            snprintf(err, errlen, "invalid port in Redis URL");
            broker_url_free(out);
            return RT_EPROTO;
        }
        out->port = (int)port;
    }
    if (slash && slash + 1 < end) {
        char *e;
        long db = strtol(slash + 1, &e, 10);
        if (e != end || db < 0) {
            snprintf(err, errlen, "invalid database number in Redis URL");
            broker_url_free(out);
            return RT_EPROTO;
        }
        out->db = (int)db;
    }
    return 0;
}

void broker_url_free(broker_url_t *u)
{
    free(u->host);
    free(u->path);
    free(u->user);
    free(u->password);
    memset(u, 0, sizeof *u);
}

/* ---- outage logging ---- */
static void remind_cb(net_loop_t *loop, net_timer_t *t)
{
    broker_t *b = rt_container_of(t, broker_t, remind);
    if (!b->outage_since) return;
    uint64_t down = net_loop_now(loop) - b->outage_since;
    rt_warn("broker", "Redis at %s still unavailable after %llu s (%s): retrying", b->where,
            (unsigned long long)(down / 1000), b->why);
    static const unsigned next_s[] = {20, 30, 240}; /* at 10 s, 30 s, 1 min, then every 5 min */
    unsigned d = next_s[RT_MIN(b->reminders, RT_ARRAY_LEN(next_s) - 1)];
    if (b->reminders >= RT_ARRAY_LEN(next_s)) d = 300;
    b->reminders++;
    net_timer_start(loop, t, d * 1000ull);
}

static void outage_begin(broker_t *b, bool lost)
{
    if (b->outage_since) return;
    b->outage_since = net_loop_now(b->loop);
    b->reminders = 0;
    if (lost) rt_warn("broker", "lost the Redis connection to %s (%s): reconnecting", b->where, b->why);
    else rt_warn("broker", "cannot reach Redis at %s (%s): retrying", b->where, b->why);
    net_timer_start(b->loop, &b->remind, 10000);
}

static void outage_check_end(broker_t *b)
{
    if (!b->sub.ready || !b->cmd.ready) return;
    if (b->outage_since) {
        uint64_t down = net_loop_now(b->loop) - b->outage_since;
        if (b->ever_up) rt_notice("broker", "reconnected to Redis at %s after %llu ms", b->where,
                                  (unsigned long long)down);
        else rt_notice("broker", "connected to Redis at %s after %llu ms", b->where, (unsigned long long)down);
        b->outage_since = 0;
        net_timer_stop(&b->remind);
    } else if (!b->ever_up) {
        rt_info("broker", "connected to Redis at %s", b->where);
    }
    if (b->ever_up) b->stats.reconnects++;
    b->ever_up = true;
}

static void ready_changed(broker_t *b)
{
    bool now = b->sub.ready && b->cmd.ready;
    if (now == b->was_ready) return;
    b->was_ready = now;
    if (b->watch) b->watch(now, b->watch_ud);
}

/* ---- hiredis adapter on our loop ---- */
static void link_update_io(broker_link_t *l, uint32_t add, uint32_t del)
{
    if (!l->ac) return;
    uint32_t ev = (l->io.events | add) & ~del;
    if (net_io_set(l->b->loop, &l->io, ev) < 0) redisAsyncDisconnect(l->ac);
}
static void ad_add_read(void *p) { link_update_io(p, NET_READ, 0); }
static void ad_del_read(void *p) { link_update_io(p, 0, NET_READ); }
static void ad_add_write(void *p) { link_update_io(p, NET_WRITE, 0); }
static void ad_del_write(void *p) { link_update_io(p, 0, NET_WRITE); }
static void ad_cleanup(void *p)
{
    broker_link_t *l = p;
    net_io_set(l->b->loop, &l->io, 0);
    l->ac = NULL;
}

static void link_io_cb(net_loop_t *loop, net_io_t *io, uint32_t events)
{
    broker_link_t *l = rt_container_of(io, broker_link_t, io);
    RT_UNUSED(loop);
    redisAsyncContext *ac = l->ac;
    if (!ac) return;
    if (events & (NET_READ | 0x008 /* EPOLLERR */ | 0x010 /* EPOLLHUP */)) redisAsyncHandleRead(ac);
    if (l->ac == ac && (events & NET_WRITE)) redisAsyncHandleWrite(ac);
}

static void link_connect(broker_link_t *l);
static void gets_flush(broker_t *b);

static void link_schedule_reconnect(broker_link_t *l)
{
    unsigned jitter = 0;
    rt_random_bytes(&jitter, sizeof jitter);
    unsigned d = l->backoff_ms + jitter % (l->backoff_ms / 2 + 1);
    l->backoff_ms = l->backoff_ms >= 2500 ? 5000 : l->backoff_ms * 2;
    net_timer_start(l->b->loop, &l->timer, d);
}

/* The link failed (connect, setup) or was lost: back off and retry. */
static void link_down(broker_link_t *l, const char *why)
{
    broker_t *b = l->b;
    bool was = l->ready;
    l->ready = false;
    l->setup_left = 0;
    snprintf(b->why, sizeof b->why, "%s", why && *why ? why : "connection closed");
    if (l->sub && b->subscribed) {
        b->subscribed = false;
        if (b->h.on_state) b->h.on_state(false, b->ud);
    }
    outage_begin(b, was || b->ever_up);
    link_schedule_reconnect(l);
    if (!b->closing) ready_changed(b);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    broker_link_t *l = ac->data;
    RT_UNUSED(status);
    if (!l) return;
    l->ac = NULL;
    link_down(l, ac->errstr[0] ? ac->errstr : NULL);
}

/* Every setup command of a link answers here; the link is ready after the
 * last one. An error reply (wrong password, no such db, ACL) fails it. */
static void link_setup_done(broker_link_t *l)
{
    if (--l->setup_left) return;
    broker_t *b = l->b;
    l->ready = true;
    l->backoff_ms = 100;
    net_timer_stop(&l->timer);
    if (l->sub && !b->subscribed) {
        b->subscribed = true;
        if (b->h.on_state) b->h.on_state(true, b->ud);
    }
    if (!l->sub) gets_flush(b);
    outage_check_end(b);
    ready_changed(b);
}

static void on_setup_reply(redisAsyncContext *ac, void *r, void *priv)
{
    broker_link_t *l = ac->data;
    redisReply *reply = r;
    RT_UNUSED(priv);
    if (!l || !reply || l->ready) return;
    if (reply->type == REDIS_REPLY_ERROR) {
        char why[128];
        snprintf(why, sizeof why, "Redis refused the %s link's setup: %.80s", l->sub ? "subscriber" : "command",
                 reply->str);
        ac->data = NULL; /* on_disconnect would report it again */
        redisAsyncDisconnect(ac);
        l->ac = NULL;
        link_down(l, why);
        return;
    }
    link_setup_done(l);
}

static void on_sub_reply(redisAsyncContext *ac, void *r, void *priv)
{
    broker_link_t *l = ac->data;
    redisReply *reply = r;
    RT_UNUSED(priv);
    if (!l || !reply) return;
    broker_t *b = l->b;
    if (reply->type == REDIS_REPLY_ERROR) {
        on_setup_reply(ac, r, priv);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) return;
    redisReply *kind = reply->element[0];
    if (kind->type != REDIS_REPLY_STRING) return;
    if (!strcmp(kind->str, "pmessage") && reply->elements >= 4 && reply->element[1]->type == REDIS_REPLY_STRING &&
        reply->element[2]->type == REDIS_REPLY_STRING && reply->element[3]->type == REDIS_REPLY_STRING) {
        b->stats.messages++;
        rt_slice_t pat = rt_slice(reply->element[1]->str, reply->element[1]->len);
        rt_slice_t ch = rt_slice(reply->element[2]->str, reply->element[2]->len);
        rt_slice_t payload = rt_slice(reply->element[3]->str, reply->element[3]->len);
        for (size_t i = 0; i < b->nchannels; i++)
            if (b->chan_pat[i] && b->chan_cb[i] && rt_slice_eq_cstr(pat, b->channels[i])) {
                b->chan_cb[i](ch, payload, b->chan_ud[i]);
                return;
            }
    } else if (!strcmp(kind->str, "message") && reply->element[2]->type == REDIS_REPLY_STRING &&
        reply->element[1]->type == REDIS_REPLY_STRING) {
        b->stats.messages++;
        rt_slice_t ch = rt_slice(reply->element[1]->str, reply->element[1]->len);
        rt_slice_t payload = rt_slice(reply->element[2]->str, reply->element[2]->len);
        for (size_t i = 0; i < b->nchannels; i++)
            if (!b->chan_pat[i] && b->chan_cb[i] && rt_slice_eq_cstr(ch, b->channels[i])) {
                b->chan_cb[i](ch, payload, b->chan_ud[i]);
                return;
            }
        b->h.on_message(ch, payload, b->ud);
    } else if ((!strcmp(kind->str, "subscribe") || !strcmp(kind->str, "psubscribe")) && !l->ready) {
        link_setup_done(l);
    }
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    broker_link_t *l = ac->data;
    if (!l) return;
    if (status != REDIS_OK) {
        l->ac = NULL; /* hiredis frees the context after this callback */
        link_down(l, ac->errstr);
        return;
    }
    broker_t *b = l->b;
    /* Connected; ready once every setup command is answered (the connect
     * timer keeps running until then: a Redis that accepts and never
     * answers is a failure too). */
    l->setup_left = 0;
    if (b->url.password) {
        l->setup_left++;
        if (b->url.user)
            redisAsyncCommand(ac, on_setup_reply, NULL, "AUTH %s %s", b->url.user, b->url.password);
        else
            redisAsyncCommand(ac, on_setup_reply, NULL, "AUTH %s", b->url.password);
    }
    if (l->sub) {
        for (size_t i = 0; i < b->nchannels; i++) {
            l->setup_left++;
            redisAsyncCommand(ac, on_sub_reply, NULL, b->chan_pat[i] ? "PSUBSCRIBE %s" : "SUBSCRIBE %s", b->channels[i]);
        }
    } else {
        if (b->url.db) {
            l->setup_left++;
            redisAsyncCommand(ac, on_setup_reply, NULL, "SELECT %d", b->url.db);
        }
        l->setup_left++;
        redisAsyncCommand(ac, on_setup_reply, NULL, "PING");
    }
}

static void link_timer_cb(net_loop_t *loop, net_timer_t *t)
{
    broker_link_t *l = rt_container_of(t, broker_link_t, timer);
    RT_UNUSED(loop);
    if (l->ac && !l->ready) {
        /* connect or setup timed out: drop it and back off */
        redisAsyncContext *ac = l->ac;
        ac->data = NULL;
        redisAsyncFree(ac);
        l->ac = NULL;
        link_down(l, "no answer within 5 s");
        return;
    }
    if (!l->ac) link_connect(l);
}

static void link_connect(broker_link_t *l)
{
    broker_t *b = l->b;
    redisAsyncContext *ac = b->url.path ? redisAsyncConnectUnix(b->url.path)
                                        : redisAsyncConnect(b->url.host, b->url.port);
    if (!ac) {
        link_down(l, "out of memory");
        return;
    }
    if (ac->err) {
        char why[128];
        snprintf(why, sizeof why, "%s", ac->errstr);
        redisAsyncFree(ac);
        link_down(l, why);
        return;
    }
    l->ac = ac;
    ac->data = l;
    l->io.fd = ac->c.fd;
    l->io.events = 0;
    l->io.cb = link_io_cb;
    ac->ev.data = l;
    ac->ev.addRead = ad_add_read;
    ac->ev.delRead = ad_del_read;
    ac->ev.addWrite = ad_add_write;
    ac->ev.delWrite = ad_del_write;
    ac->ev.cleanup = ad_cleanup;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    ad_add_write(l); /* hiredis reports the connect on the first writable event */
    net_timer_start(b->loop, &l->timer, 5000);
}

static void link_init(broker_t *b, broker_link_t *l, bool sub)
{
    l->b = b;
    l->sub = sub;
    l->backoff_ms = 100;
    net_timer_init(&l->timer, link_timer_cb);
}

broker_t *broker_redis_new(net_loop_t *loop, const char *url, const char *const *channels,
                           size_t nchannels, const broker_handler_t *h, void *ud, char *err,
                           size_t errlen)
{
    broker_t *b = rt_calloc(1, sizeof *b);
    if (broker_url_parse(url, &b->url, err, errlen) < 0) {
        free(b);
        return NULL;
    }
    b->loop = loop;
    if (b->url.path) snprintf(b->where, sizeof b->where, "%s", b->url.path);
    else snprintf(b->where, sizeof b->where, "%s:%d", b->url.host, b->url.port);
    b->h = *h;
    b->ud = ud;
    b->channels = rt_calloc(nchannels ? nchannels : 1, sizeof *b->channels);
    b->chan_cb = rt_calloc(nchannels ? nchannels : 1, sizeof *b->chan_cb);
    b->chan_ud = rt_calloc(nchannels ? nchannels : 1, sizeof *b->chan_ud);
    b->chan_pat = rt_calloc(nchannels ? nchannels : 1, sizeof *b->chan_pat);
    b->nchannels = nchannels;
    for (size_t i = 0; i < nchannels; i++) b->channels[i] = rt_strndup(channels[i], strlen(channels[i]));
    rt_list_init(&b->gets);
    net_timer_init(&b->remind, remind_cb);
    link_init(b, &b->sub, true);
    link_init(b, &b->cmd, false);
    link_connect(&b->sub);
    link_connect(&b->cmd);
    return b;
}

static void link_free(broker_link_t *l)
{
    net_timer_stop(&l->timer);
    if (l->ac) {
        redisAsyncContext *ac = l->ac;
        ac->data = NULL;
        redisAsyncFree(ac); /* in-flight GETs are answered (NULL reply) */
        l->ac = NULL;
    }
}

static void get_answer(get_req_t *g, bool ok, rt_slice_t value);

void broker_free(broker_t *b)
{
    if (!b) return;
    b->closing = true;
    link_free(&b->sub);
    link_free(&b->cmd);
    while (!rt_list_empty(&b->gets)) /* waiting ones */
        get_answer(rt_container_of(b->gets.next, get_req_t, link), false, RT_SLICE_NULL);
    net_timer_stop(&b->remind);
    for (size_t i = 0; i < b->nchannels; i++) free(b->channels[i]);
    free(b->channels);
    free(b->chan_cb);
    free(b->chan_ud);
    free(b->chan_pat);
    broker_url_free(&b->url);
    free(b);
}

/* ---- GET: waits for the command link, bounded by a timeout ---- */
static void get_release(get_req_t *g)
{
    net_timer_stop(&g->timer);
    if (rt_list_linked(&g->link)) rt_list_remove(&g->link);
    free(g->key);
    free(g);
}

/* Calls the callback once. A request in flight stays allocated until its
 * reply (hiredis holds it); a waiting one is freed now. */
static void get_answer(get_req_t *g, bool ok, rt_slice_t value)
{
    broker_get_cb cb = g->cb;
    void *ud = g->ud;
    g->cb = NULL;
    net_timer_stop(&g->timer);
    if (rt_list_linked(&g->link)) rt_list_remove(&g->link);
    if (!g->sent) get_release(g);
    if (cb) cb(ok, value, ud);
}

static void on_get_reply(redisAsyncContext *ac, void *r, void *priv)
{
    RT_UNUSED(ac);
    get_req_t *g = priv;
    redisReply *reply = r;
    if (!reply && g->cb && !g->b->closing) {
        /* The link went down with the GET in flight: it waits for the next
         * link (still bounded by its timer). */
        g->sent = false;
        return;
    }
    void *ud = g->ud;
    broker_get_cb cb = g->cb;
    g->cb = NULL;
    get_release(g); /* the reply (or the link's end) is the last thing hiredis tells of it */
    if (!cb) return;  /* answered already: timed out */
    if (!reply) cb(false, RT_SLICE_NULL, ud); /* disconnected before the answer */
    else if (reply->type == REDIS_REPLY_STRING) cb(true, rt_slice(reply->str, reply->len), ud);
    else if (reply->type == REDIS_REPLY_NIL) cb(true, RT_SLICE_NULL, ud);
    else cb(false, RT_SLICE_NULL, ud);
}

static void get_timeout(net_loop_t *loop, net_timer_t *t)
{
    get_req_t *g = rt_container_of(t, get_req_t, timer);
    broker_t *b = g->b;
    RT_UNUSED(loop);
    if (g->sent) rt_warn_rl("broker", "Redis at %s did not answer GET %s in time (stalled?)", b->where, g->key);
    else rt_warn_rl("broker", "Redis at %s unavailable: GET %s not sent in time (%s)", b->where, g->key, b->why);
    get_answer(g, false, RT_SLICE_NULL);
}

/* Sends g; if hiredis refuses (its context is going away) it keeps waiting
 * for the next link, bounded by its timer. */
static void get_send(broker_t *b, get_req_t *g)
{
    if (redisAsyncCommand(b->cmd.ac, on_get_reply, g, "GET %s", g->key) == REDIS_OK) g->sent = true;
}

/* The command link became ready: send every waiting GET. */
static void gets_flush(broker_t *b)
{
    rt_list_t *it, *nx;
    rt_list_foreach_safe(it, nx, &b->gets)
    {
        get_req_t *g = rt_container_of(it, get_req_t, link);
        if (!g->sent && b->cmd.ready && b->cmd.ac) get_send(b, g);
    }
}

void broker_get(broker_t *b, const char *key, unsigned timeout_ms, broker_get_cb cb, void *ud)
{
    get_req_t *g = rt_calloc(1, sizeof *g);
    g->b = b;
    g->key = rt_strndup(key, strlen(key));
    g->cb = cb;
    g->ud = ud;
    net_timer_init(&g->timer, get_timeout);
    net_timer_start(b->loop, &g->timer, timeout_ms);
    rt_list_insert_tail(&b->gets, &g->link);
    if (b->cmd.ready && b->cmd.ac) get_send(b, g);
}

void broker_publish(broker_t *b, const char *channel, rt_slice_t payload)
{
    if (!b->cmd.ready || !b->cmd.ac ||
        redisAsyncCommand(b->cmd.ac, NULL, NULL, "PUBLISH %s %b", channel, payload.p, payload.n) != REDIS_OK) {
        b->stats.dropped_publishes++;
        rt_warn_rl("broker", "Redis unavailable: dropped a publish to '%s'", channel);
    }
}

bool broker_subscribed(const broker_t *b) { return b->subscribed; }
bool broker_ready(const broker_t *b) { return b->sub.ready && b->cmd.ready; }
bool broker_command_ready(const broker_t *b) { return b->cmd.ready; }
const broker_stats_t *broker_stats(const broker_t *b) { return &b->stats; }

static void add_subscription(broker_t *b, const char *channel, bool pattern, broker_msg_cb cb, void *ud)
{
    size_t n = b->nchannels + 1;
    b->channels = rt_realloc(b->channels, n * sizeof *b->channels);
    b->chan_cb = rt_realloc(b->chan_cb, n * sizeof *b->chan_cb);
    b->chan_ud = rt_realloc(b->chan_ud, n * sizeof *b->chan_ud);
    b->chan_pat = rt_realloc(b->chan_pat, n * sizeof *b->chan_pat);
    b->channels[n - 1] = rt_strndup(channel, strlen(channel));
    b->chan_cb[n - 1] = cb;
    b->chan_ud[n - 1] = ud;
    b->chan_pat[n - 1] = pattern;
    b->nchannels = n;
    /* a link being set up counts its SUBSCRIBE replies: only a ready one
     * takes it now; the others send every channel when they connect */
    if (b->sub.ready && b->sub.ac)
        redisAsyncCommand(b->sub.ac, on_sub_reply, NULL, pattern ? "PSUBSCRIBE %s" : "SUBSCRIBE %s", channel);
    else if (b->sub.ac && !b->sub.ready) {
        /* connected, still in setup: drop it and reconnect with every channel */
        redisAsyncContext *ac = b->sub.ac;
        ac->data = NULL;
        redisAsyncFree(ac);
        b->sub.ac = NULL;
        link_connect(&b->sub);
    }
}

void broker_subscribe(broker_t *b, const char *channel, broker_msg_cb cb, void *ud)
{
    add_subscription(b, channel, false, cb, ud);
}

void broker_psubscribe(broker_t *b, const char *pattern, broker_msg_cb cb, void *ud)
{
    add_subscription(b, pattern, true, cb, ud);
}

static void drop_message(rt_slice_t channel, rt_slice_t payload, void *ud)
{
    RT_UNUSED(channel);
    RT_UNUSED(payload);
    RT_UNUSED(ud);
}

void broker_unsubscribe(broker_t *b, const char *channel)
{
    for (size_t i = 0; i < b->nchannels; i++)
        if (b->chan_cb[i] && !strcmp(b->channels[i], channel)) {
            b->chan_cb[i] = drop_message; /* stays subscribed until the links close */
            b->chan_ud[i] = NULL;
        }
}

void broker_watch(broker_t *b, void (*cb)(bool ready, void *ud), void *ud)
{
    b->watch = cb;
    b->watch_ud = ud;
}

typedef struct {
    broker_reply_cb cb;
    void *ud;
} cmd_req_t;

static void on_cmd_reply(redisAsyncContext *ac, void *r, void *priv)
{
    RT_UNUSED(ac);
    cmd_req_t *q = priv;
    if (q->cb) q->cb(r, q->ud);
    free(q);
}

bool broker_command(broker_t *b, broker_reply_cb cb, void *ud, int argc, const char **argv, const size_t *argvlen)
{
    if (!b->cmd.ready || !b->cmd.ac) return false;
    cmd_req_t *q = rt_calloc(1, sizeof *q);
    q->cb = cb;
    q->ud = ud;
    if (redisAsyncCommandArgv(b->cmd.ac, on_cmd_reply, q, argc, argv, argvlen) != REDIS_OK) {
        free(q);
        return false;
    }
    return true;
}

void broker_flush(broker_t *b)
{
    if (b->cmd.ac) redisAsyncHandleWrite(b->cmd.ac); /* non-blocking: what the socket takes now */
}

int broker_db(const broker_t *b) { return b->url.db; }
