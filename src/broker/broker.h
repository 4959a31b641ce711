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

typedef struct {
    uint64_t messages, reconnects, dropped_publishes;
} broker_stats_t;
const broker_stats_t *broker_stats(const broker_t *b);

#endif
