/* broker: Redis (hiredis async on our loop) and in-process implementations.
 *
 * Each Redis link (subscriber, command) is a small state machine:
 *
 *   IDLE --connect--> CONNECTING --connected--> READY (AUTH/SELECT/SUBSCRIBE sent)
 *     ^                    |                       |
 *     +---- backoff timer <-+------ disconnected <--+
 *
 * The backoff doubles from 100 ms to 5 s with jitter; an outage is logged
 * once when it starts and once when it ends. */
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
    bool ready;
    bool was_ready;          /* for outage logging */
    uint64_t down_since;
};

struct broker {
    net_loop_t *loop;
    bool local;
    broker_url_t url;
    char *url_text;
    char **channels;
    size_t nchannels;
    broker_handler_t h;
    void *ud;
    broker_link_t sub, cmd;
    bool subscribed;
    broker_stats_t stats;
};

/* ---- URL ---- */
static char *dup_range(const char *a, const char *b) { return rt_strndup(a, (size_t)(b - a)); }

static int hexv(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static char *pct_decode(const char *a, const char *b)
{
    char *out = rt_malloc((size_t)(b - a) + 1), *o = out;
    while (a < b) {
        if (*a == '%' && b - a >= 3 && hexv(a[1]) >= 0 && hexv(a[2]) >= 0) {
            *o++ = (char)(hexv(a[1]) * 16 + hexv(a[2]));
            a += 3;
        } else {
            *o++ = *a++;
        }
    }
    *o = 0;
    return out;
}

int broker_url_parse(const char *url, broker_url_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    bool unix_sock;
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
            if (colon > p) out->user = pct_decode(p, colon);
            out->password = pct_decode(colon + 1, at);
        } else if (at > p) {
            out->password = pct_decode(p, at); /* "secret@host": a bare password */
        }
        p = at + 1;
    }
    if (q) {
        for (const char *s = q + 1; *s;) {
            const char *amp = strchr(s, '&');
            if (!amp) amp = s + strlen(s);
            if (!strncmp(s, "db=", 3)) out->db = atoi(s + 3);
            else if (!strncmp(s, "password=", 9) && !out->password) out->password = pct_decode(s + 9, amp);
            s = *amp ? amp + 1 : amp;
        }
        end = q;
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

/* ---- hiredis adapter on our loop ---- */
static void link_update_io(broker_link_t *l, uint32_t add, uint32_t del)
{
    if (!l->ac) return;
    uint32_t ev = (l->io.events | add) & ~del;
    net_io_set(l->b->loop, &l->io, ev);
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

static void link_schedule_reconnect(broker_link_t *l)
{
    unsigned jitter = 0;
    rt_random_bytes(&jitter, sizeof jitter);
    unsigned d = l->backoff_ms + jitter % (l->backoff_ms / 2 + 1);
    l->backoff_ms = l->backoff_ms >= 2500 ? 5000 : l->backoff_ms * 2;
    net_timer_start(l->b->loop, &l->timer, d);
}

static void link_down(broker_link_t *l, const char *why)
{
    broker_t *b = l->b;
    bool was = l->ready;
    l->ready = false;
    if (l->sub && b->subscribed) {
        b->subscribed = false;
        if (b->h.on_state) b->h.on_state(false, b->ud);
    }
    if (was || !l->down_since) {
        if (was) rt_warn("broker", "lost the Redis %s connection (%s): reconnecting",
                         l->sub ? "subscriber" : "command", why ? why : "closed");
        l->down_since = net_loop_now(b->loop);
    }
    link_schedule_reconnect(l);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    broker_link_t *l = ac->data;
    RT_UNUSED(status);
    if (!l) return;
    l->ac = NULL;
    link_down(l, ac->errstr[0] ? ac->errstr : NULL);
}

static void on_sub_reply(redisAsyncContext *ac, void *r, void *priv)
{
    broker_link_t *l = ac->data;
    redisReply *reply = r;
    RT_UNUSED(priv);
    if (!l || !reply) return;
    broker_t *b = l->b;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) return;
    redisReply *kind = reply->element[0];
    if (kind->type != REDIS_REPLY_STRING) return;
    if (!strcmp(kind->str, "message") && reply->element[2]->type == REDIS_REPLY_STRING) {
        b->stats.messages++;
        b->h.on_message(rt_slice(reply->element[1]->str, reply->element[1]->len),
                        rt_slice(reply->element[2]->str, reply->element[2]->len), b->ud);
    } else if (!strcmp(kind->str, "subscribe") && !b->subscribed) {
        b->subscribed = true;
        if (b->h.on_state) b->h.on_state(true, b->ud);
    }
}

static void on_auth_reply(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *reply = r;
    RT_UNUSED(priv);
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        rt_error("broker", "Redis refused AUTH/SELECT: %s", reply->str);
        redisAsyncDisconnect(ac);
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
    net_timer_stop(&l->timer);
    l->ready = true;
    l->backoff_ms = 100;
    if (l->down_since && l->was_ready)
        rt_notice("broker", "reconnected to Redis (%s) after %llu ms", l->sub ? "subscriber" : "command",
                  (unsigned long long)(net_loop_now(b->loop) - l->down_since));
    else if (l->sub)
        rt_info("broker", "connected to Redis");
    if (l->was_ready) b->stats.reconnects++;
    l->was_ready = true;
    l->down_since = 0;
    if (b->url.password) {
        if (b->url.user)
            redisAsyncCommand(ac, on_auth_reply, NULL, "AUTH %s %s", b->url.user, b->url.password);
        else
            redisAsyncCommand(ac, on_auth_reply, NULL, "AUTH %s", b->url.password);
    }
    if (l->sub) {
        for (size_t i = 0; i < b->nchannels; i++)
            redisAsyncCommand(ac, on_sub_reply, NULL, "SUBSCRIBE %s", b->channels[i]);
    } else if (b->url.db) {
        redisAsyncCommand(ac, on_auth_reply, NULL, "SELECT %d", b->url.db);
    }
}

static void link_timer_cb(net_loop_t *loop, net_timer_t *t)
{
    broker_link_t *l = rt_container_of(t, broker_link_t, timer);
    RT_UNUSED(loop);
    if (l->ac && !l->ready) {
        /* connect timed out: drop it; the disconnect callback reschedules */
        redisAsyncContext *ac = l->ac;
        ac->data = NULL;
        redisAsyncFree(ac);
        l->ac = NULL;
        link_down(l, "connect timeout");
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

static void copy_channels(broker_t *b, const char *const *channels, size_t n)
{
    b->channels = rt_calloc(n ? n : 1, sizeof *b->channels);
    b->nchannels = n;
    for (size_t i = 0; i < n; i++) b->channels[i] = rt_strndup(channels[i], strlen(channels[i]));
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
    b->url_text = rt_strndup(url, strlen(url));
    b->h = *h;
    b->ud = ud;
    copy_channels(b, channels, nchannels);
    link_init(b, &b->sub, true);
    link_init(b, &b->cmd, false);
    link_connect(&b->sub);
    link_connect(&b->cmd);
    return b;
}

broker_t *broker_local_new(net_loop_t *loop, const char *const *channels, size_t nchannels,
                           const broker_handler_t *h, void *ud)
{
    broker_t *b = rt_calloc(1, sizeof *b);
    b->loop = loop;
    b->local = true;
    b->h = *h;
    b->ud = ud;
    b->subscribed = true;
    copy_channels(b, channels, nchannels);
    return b;
}

static void link_free(broker_link_t *l)
{
    net_timer_stop(&l->timer);
    if (l->ac) {
        redisAsyncContext *ac = l->ac;
        ac->data = NULL;
        redisAsyncFree(ac);
        l->ac = NULL;
    }
}

void broker_free(broker_t *b)
{
    if (!b) return;
    if (!b->local) {
        link_free(&b->sub);
        link_free(&b->cmd);
    }
    for (size_t i = 0; i < b->nchannels; i++) free(b->channels[i]);
    free(b->channels);
    broker_url_free(&b->url);
    free(b->url_text);
    free(b);
}

typedef struct {
    broker_get_cb cb;
    void *ud;
} get_req_t;

static void on_get_reply(redisAsyncContext *ac, void *r, void *priv)
{
    RT_UNUSED(ac);
    get_req_t *g = priv;
    redisReply *reply = r;
    if (!reply) g->cb(false, RT_SLICE_NULL, g->ud); /* disconnected before the answer */
    else if (reply->type == REDIS_REPLY_STRING) g->cb(true, rt_slice(reply->str, reply->len), g->ud);
    else if (reply->type == REDIS_REPLY_NIL) g->cb(true, RT_SLICE_NULL, g->ud);
    else g->cb(false, RT_SLICE_NULL, g->ud);
    free(g);
}

void broker_get(broker_t *b, const char *key, broker_get_cb cb, void *ud)
{
    if (b->local || !b->cmd.ready || !b->cmd.ac) {
        cb(b->local, RT_SLICE_NULL, ud);
        return;
    }
    get_req_t *g = rt_malloc(sizeof *g);
    g->cb = cb;
    g->ud = ud;
    if (redisAsyncCommand(b->cmd.ac, on_get_reply, g, "GET %s", key) != REDIS_OK) {
        free(g);
        cb(false, RT_SLICE_NULL, ud);
    }
}

void broker_publish(broker_t *b, const char *channel, rt_slice_t payload)
{
    if (b->local) {
        for (size_t i = 0; i < b->nchannels; i++)
            if (!strcmp(b->channels[i], channel)) {
                b->stats.messages++;
                b->h.on_message(rt_slice_cstr(channel), payload, b->ud);
            }
        return;
    }
    if (!b->cmd.ready || !b->cmd.ac ||
        redisAsyncCommand(b->cmd.ac, NULL, NULL, "PUBLISH %s %b", channel, payload.p, payload.n) != REDIS_OK) {
        b->stats.dropped_publishes++;
        rt_warn("broker", "Redis unavailable: dropped a publish to '%s'", channel);
    }
}

bool broker_subscribed(const broker_t *b) { return b->subscribed; }
const broker_stats_t *broker_stats(const broker_t *b) { return &b->stats; }
