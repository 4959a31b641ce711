/* broker: where published events come from: Redis (hiredis async, driven by
 * our loop: one subscriber connection and one command connection, reconnect
 * with backoff, resubscribe, outages logged once with reminders). */
#ifndef RT_BROKER_H
#define RT_BROKER_H
#include "net/net.h"

typedef struct broker broker_t;

typedef struct {
    /* A message on a subscribed channel; payload valid during the call. */
    void (*on_message)(rt_slice_t channel, rt_slice_t payload, void *ud);
    /* Subscription state changed (optional). */
    void (*on_state)(bool subscribed, void *ud);
} broker_handler_t;

/* A parsed redis:// or unix:// URL. */
typedef struct {
    char *host;     /* TCP host, or NULL for a Unix socket */
    int port;
    char *path;     /* Unix socket path, or NULL */
    char *user;     /* ACL user, or NULL */
    char *password; /* or NULL */
    int db;
} broker_url_t;
/* Parses redis://[[user]:password@]host[:port][/db] and
 * unix://[[user]:password@]/path[?db=N]. Returns 0 or RT_EPROTO with a
 * message in err. */
int broker_url_parse(const char *url, broker_url_t *out, char *err, size_t errlen);
void broker_url_free(broker_url_t *u);

/* Connects (asynchronously, retrying forever with backoff) and subscribes
 * to the channels. NULL only for an unparsable URL (message in err). */
broker_t *broker_redis_new(net_loop_t *loop, const char *url, const char *const *channels,
                           size_t nchannels, const broker_handler_t *h, void *ud, char *err,
                           size_t errlen);
void broker_free(broker_t *b);

/* GET key on the command connection. While the link is down the request
 * waits for it (and is resent if the link drops with it in flight); cb is
 * called exactly once: with the value (value.p == NULL for nil), or with ok
 * = false when no answer came within timeout_ms (logged, rate-limited),
 * Redis refused the command, or the broker is freed. Never from inside
 * broker_get. */
typedef void (*broker_get_cb)(bool ok, rt_slice_t value, void *ud);
void broker_get(broker_t *b, const char *key, unsigned timeout_ms, broker_get_cb cb, void *ud);
/* PUBLISH (fire and forget; dropped with a log line while disconnected). */
void broker_publish(broker_t *b, const char *channel, rt_slice_t payload);
bool broker_subscribed(const broker_t *b);
/* Both links connected and set up (AUTH, SELECT, SUBSCRIBE accepted). */
bool broker_ready(const broker_t *b);
bool broker_command_ready(const broker_t *b); /* the command link alone (GET, PUBLISH) */

/* ---- for other modules sharing the links (cluster/) ---- */
typedef void (*broker_msg_cb)(rt_slice_t channel, rt_slice_t payload, void *ud);
/* One more channel on the subscriber link; its messages go to cb instead
 * of the handler. Subscribed on every (re)connect from now on. */
void broker_subscribe(broker_t *b, const char *channel, broker_msg_cb cb, void *ud);
/* The same for a PSUBSCRIBE pattern (Redis glob); cb gets each message's
 * channel. */
void broker_psubscribe(broker_t *b, const char *pattern, broker_msg_cb cb, void *ud);
/* Its messages are dropped from now on (the owner is going away). */
void broker_unsubscribe(broker_t *b, const char *channel);
/* cb(ready) whenever broker_ready() changes (one watcher). */
void broker_watch(broker_t *b, void (*cb)(bool ready, void *ud), void *ud);
/* Any command on the command link, argv style. cb (may be NULL) gets the
 * hiredis reply, or NULL if the link went down first (or the broker is
 * freed). Returns false, sending nothing, while the link is not ready. */
struct redisReply;
typedef void (*broker_reply_cb)(struct redisReply *reply, void *ud);
bool broker_command(broker_t *b, broker_reply_cb cb, void *ud, int argc, const char **argv, const size_t *argvlen);

/* Writes the command link's queued commands now, as far as the socket
 * takes them (before a shutdown frees the broker without another turn). */
void broker_flush(broker_t *b);
/* The database number of the URL (keys are per database, channels are not). */
int broker_db(const broker_t *b);

typedef struct {
    uint64_t messages, reconnects, dropped_publishes;
} broker_stats_t;
const broker_stats_t *broker_stats(const broker_t *b);

#endif
