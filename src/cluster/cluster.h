/* cluster: what the nodes sharing one Redis (workers of a machine, machines)
 * must see of each other, kept in Redis: node heartbeats, and presence (the
 * viewers of each open document) with a dead node's viewers removed by the
 * others. No wall clocks are compared between machines: liveness is a key's
 * expiry, the viewers' order is Redis's own clock.
 *
 * Keys and channels (all under "realtimed:"):
 *   node:<id>             "1", expires 10 s after the last heartbeat (every 3 s)
 *   nodes                 set of nodes that have viewers
 *   nodedocs:<id>         set of viewer keys a node has members in
 *   viewers:<nsp>\0<dt>\0<dn>  sorted set: "<node>|<socket>|<user>" scored by
 *                         the socket's connect time on Redis's clock (µs)
 *   channel bcast         <node>\0<message>: cluster_send (app-handler broadcasts)
 *   channel presence      <nsp>\0<dt>\0<dn>\0<self>\0<member>\0<member>...:
 *                         the live members in order after a change (self:
 *                         the user whose socket changed it, "" for a cleanup)
 * Every change runs one Lua script (atomic) that updates and publishes. */
#ifndef RT_CLUSTER_H
#define RT_CLUSTER_H
#include "broker/broker.h"
#include "sio/sio.h"

typedef struct cluster cluster_t;

typedef struct {
    /* The viewers of a document changed somewhere in the cluster; users[]
     * are the members' users in order (one per socket, not de-duplicated). */
    void (*on_viewers)(rt_slice_t nsp, rt_slice_t dt, rt_slice_t dn, rt_slice_t self_user, const rt_slice_t *users,
                       size_t n, void *ud);
    /* Redis is (back) and this node's viewers were dropped from it: announce
     * every local viewer again with cluster_viewer(open = true). */
    void (*on_resync)(void *ud);
    /* A message another node sent with cluster_send() (optional). */
    void (*on_message)(rt_slice_t msg, void *ud);
} cluster_handler_t;

/* Shares the broker's links (one more channel, commands on its command
 * link). */
cluster_t *cluster_new(net_loop_t *loop, broker_t *b, const cluster_handler_t *h, void *ud);
void cluster_free(cluster_t *c);
const char *cluster_node(const cluster_t *c);
/* Presence goes through Redis now (false while Redis is away: the caller
 * computes it from its own sockets). */
bool cluster_ready(const cluster_t *c);

/* A local socket opened (open) or closed a document. connected_ns: when it
 * connected (rt_now_ns), for the order. last: no other socket of this node
 * is a viewer of it any more. Returns false, doing nothing, when the cluster
 * is not ready or the names cannot travel (a NUL byte). */
bool cluster_viewer(cluster_t *c, rt_slice_t nsp, rt_slice_t dt, rt_slice_t dn, rt_slice_t sock_id,
                    rt_slice_t user, uint64_t connected_ns, bool open, bool last);

/* To every other node (channel realtimed:bcast, "<node>\0<msg>"); dropped
 * (false) while Redis is away. App-handler broadcasts travel this way. */
bool cluster_send(cluster_t *c, rt_slice_t msg);

broker_t *cluster_broker(const cluster_t *c);
net_loop_t *cluster_loop(const cluster_t *c);

/* Connection state recovery across workers and nodes (cluster_recovery.c):
 * sessions kept by one node are recovered by a CONNECT to any other.
 * Keys and channels:
 *   session:<pid>        the node keeping it, expires with the window
 *   channel recover      a request, ordered with the events (see the file)
 *   channel recovered:<node>  the owner's answer to that node
 * NULL when recovery is off. */
typedef struct cluster_recovery cluster_recovery_t;
cluster_recovery_t *cluster_recovery_new(cluster_t *c, sio_server_t *srv);
void cluster_recovery_free(cluster_recovery_t *cr);

typedef struct {
    uint64_t changes, published_seen, resyncs, cleanups, failed;
} cluster_stats_t;
const cluster_stats_t *cluster_stats(const cluster_t *c);

#endif
