/* emitter: what @socket.io/redis-emitter 5.x (and its ports to PHP, Python,
 * Go) publish, applied to this server's sockets, unchanged:
 *   <key>#<nsp>#[<room>#]   MessagePack [uid, {type, data, nsp}, {rooms, except, flags}]
 *                           a broadcast (binary arguments as attachments)
 *   <key>-request#<nsp>#    JSON {type: 2 join | 3 leave | 4 disconnect,
 *                           opts: {rooms, except}, rooms | close}
 * Every node subscribes (PSUBSCRIBE <key>#* and <key>-request#*) and acts on
 * its own sockets, so both reach the whole cluster. Other request types
 * (fetchSockets, serverSideEmit: answers only a socket.io server gives)
 * are ignored and counted. */
#ifndef RT_EMITTER_H
#define RT_EMITTER_H
#include "broker/broker.h"
#include "sio/sio.h"

typedef struct emitter emitter_t;

/* key: socket.io's `key` option ("socket.io"); max: the largest message
 * taken (bytes; larger ones are dropped with a log line). */
emitter_t *emitter_new(broker_t *b, sio_server_t *srv, const char *key, size_t max);
void emitter_free(emitter_t *e);

typedef struct {
    uint64_t broadcasts, requests, invalid, ignored;
} emitter_stats_t;
const emitter_stats_t *emitter_stats(const emitter_t *e);

#endif
