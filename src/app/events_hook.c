/* The events webhook of the standalone modes (docs/standalone.md): every
 * client event is POSTed to the backend as
 *   {"namespace","user","sid","event","args":[...]}  (+ "attachments": [base64...])
 * and a 2xx {"ack": [...]} answers the client's acknowledgement.
 *
 * Order and bounds: one call in flight per socket (its events reach the
 * backend in the order sent); at most `concurrency` calls in flight in all,
 * sockets with events waiting for a slot queue up in FIFO order; a socket
 * holds at most EV_MAX_QUEUED events and EV_MAX_SOCKET_BYTES bytes waiting,
 * every socket together EV_MAX_TOTAL_BYTES. What does not fit is not sent:
 * its acknowledgement (if asked) says {"error": "too many events waiting"},
 * and it is counted. */
#include "app.h"
#include "frappe/fetch.h"

#include <stdio.h>

#define EV_MAX_QUEUED 64
#define EV_MAX_SOCKET_BYTES (1u << 20)
#define EV_MAX_TOTAL_BYTES ((size_t)64 << 20)

typedef struct ev_item {
    struct ev_item *next;
    int64_t ack;
    size_t len;
    char body[];
} ev_item_t;

struct ev_socket {
    events_hook_t *h;
    sio_socket_t *s;
    ev_item_t *head, *tail, *cur; /* queued; the one in flight */
    uint32_t n;
    size_t bytes;
    fetch_waiter_t *w;
    rt_list_t wait_link; /* in h->waiting: has events, no slot */
};

struct events_hook {
    fetch_client_t *fc;
    char *url;
    const char *secret_header;
    unsigned max_inflight, inflight;
    size_t bytes;
    rt_list_t waiting;
    events_hook_stats_t stats;
};

events_hook_t *events_hook_new(net_loop_t *loop, const char *url, const char *secret_header, unsigned timeout_ms,
                               unsigned concurrency)
{
    events_hook_t *h = rt_calloc(1, sizeof *h);
    h->fc = fetch_client_new(loop, timeout_ms);
    h->url = rt_strndup(url, strlen(url));
    h->secret_header = secret_header;
    h->max_inflight = concurrency ? concurrency : 64;
    rt_list_init(&h->waiting);
    return h;
}

void events_hook_free(events_hook_t *h)
{
    if (!h) return;
    fetch_client_free(h->fc);
    free(h->url);
    free(h);
}

const events_hook_stats_t *events_hook_stats(const events_hook_t *h) { return &h->stats; }

static void answer(sio_socket_t *s, int64_t ack, const char *error)
{
    if (ack < 0 || !sio_socket_connected(s)) return;
    rt_buf_t b = {0};
    rt_buf_append_cstr(&b, "{\"error\":");
    rt_buf_append_json_string(&b, rt_slice_cstr(error));
    rt_buf_putc(&b, '}');
    sio_ack(s, ack, rt_slice(b.data, b.len), NULL, 0);
    rt_buf_free(&b);
}

static void item_free(events_hook_t *h, ev_socket_t *es, ev_item_t *it)
{
    es->bytes -= it->len;
    h->bytes -= it->len;
    free(it);
}

static void pump(ev_socket_t *es);
static void pump_waiting(events_hook_t *h)
{
    while (h->inflight < h->max_inflight && !rt_list_empty(&h->waiting)) {
        ev_socket_t *es = rt_container_of(h->waiting.next, ev_socket_t, wait_link);
        rt_list_remove(&es->wait_link);
        pump(es);
    }
}

static void done(const fetch_result_t *r, void *ud)
{
    ev_socket_t *es = ud;
    events_hook_t *h = es->h;
    ev_item_t *it = es->cur;
    es->cur = NULL;
    es->w = NULL;
    h->inflight--;
    rt_json_type_t type;
    rt_slice_t ack;
    if (r->status >= 200 && r->status < 300) {
        h->stats.delivered++;
        if (it->ack >= 0 && sio_socket_connected(es->s)) {
            bool has = rt_json_valid(r->body, &type) && type == RT_JSON_OBJECT && rt_json_object_get(r->body, "ack", &ack) &&
                       rt_json_peek(ack) == RT_JSON_ARRAY;
            rt_slice_t args = has ? rt_json_trim(rt_slice(ack.p + 1, ack.n - 2)) : RT_SLICE("");
            if (!has && r->body.n && !(rt_json_valid(r->body, &type) && type == RT_JSON_OBJECT))
                answer(es->s, it->ack, "events webhook answered something other than {\"ack\": [...]}");
            else sio_ack(es->s, it->ack, args, NULL, 0);
        }
    } else {
        h->stats.failed++;
        char why[96];
        if (!r->status) snprintf(why, sizeof why, "%s", r->timed_out ? "events webhook timed out" : "events webhook unavailable");
        else snprintf(why, sizeof why, "events webhook answered HTTP %ld", r->status);
        rt_warn_rl("standalone", "events webhook %s: %s", h->url, r->status ? why : r->err ? r->err : why);
        answer(es->s, it->ack, why);
    }
    item_free(h, es, it);
    pump(es);
    pump_waiting(h);
}

static void pump(ev_socket_t *es)
{
    events_hook_t *h = es->h;
    if (es->cur || !es->head) return;
    if (h->inflight >= h->max_inflight) {
        if (!rt_list_linked(&es->wait_link)) rt_list_insert_tail(&h->waiting, &es->wait_link);
        return;
    }
    ev_item_t *it = es->head;
    es->head = it->next;
    if (!es->head) es->tail = NULL;
    es->n--;
    es->cur = it;
    h->inflight++;
    const char *headers[] = {"Content-Type: application/json", h->secret_header, NULL};
    es->w = fetch_post(h->fc, h->url, headers, rt_slice(it->body, it->len), done, es);
}

void events_hook_event(events_hook_t *h, ev_socket_t **slot, sio_socket_t *s, const char *user,
                       const sio_event_t *ev)
{
    ev_socket_t *es = *slot;
    if (!es) {
        es = *slot = rt_calloc(1, sizeof *es);
        es->h = h;
        es->s = s;
        rt_list_init(&es->wait_link);
    }
    rt_buf_t b = {0};
    rt_buf_append_cstr(&b, "{\"namespace\":");
    rt_buf_append_json_string(&b, sio_nsp_name(sio_socket_nsp(s)));
    rt_buf_append_cstr(&b, ",\"user\":");
    rt_buf_append_json_string(&b, rt_slice_cstr(user));
    rt_buf_append_cstr(&b, ",\"sid\":");
    rt_buf_append_json_string(&b, rt_slice_cstr(sio_socket_id(s)));
    rt_buf_append_cstr(&b, ",\"event\":");
    rt_buf_append_json_string(&b, ev->name);
    rt_buf_append_cstr(&b, ",\"args\":[");
    rt_buf_append_slice(&b, ev->args);
    rt_buf_putc(&b, ']');
    if (ev->nattach) { /* binary: the args hold {"_placeholder":true,"num":i}; the bytes in base64 */
        rt_buf_append_cstr(&b, ",\"attachments\":[");
        for (uint32_t i = 0; i < ev->nattach; i++) {
            if (i) rt_buf_putc(&b, ',');
            rt_buf_putc(&b, '"');
            size_t at = b.len;
            rt_buf_reserve(&b, 4 * (ev->attachments[i].n / 3 + 1));
            b.len = at + rt_base64_encode(b.data + at, (const uint8_t *)ev->attachments[i].p, ev->attachments[i].n);
            rt_buf_putc(&b, '"');
        }
        rt_buf_putc(&b, ']');
    }
    rt_buf_putc(&b, '}');
    if (es->n >= EV_MAX_QUEUED || es->bytes + b.len > EV_MAX_SOCKET_BYTES || h->bytes + b.len > EV_MAX_TOTAL_BYTES) {
        h->stats.overflow++;
        rt_warn_rl("standalone", "events webhook: too many events waiting (a socket holds %u): one is not sent",
                   es->n);
        answer(s, ev->ack_id, "too many events waiting");
        rt_buf_free(&b);
        return;
    }
    ev_item_t *it = rt_malloc(sizeof *it + b.len);
    it->next = NULL;
    it->ack = ev->ack_id;
    it->len = b.len;
    memcpy(it->body, b.data, b.len);
    rt_buf_free(&b);
    if (es->tail) es->tail->next = it;
    else es->head = it;
    es->tail = it;
    es->n++;
    es->bytes += it->len;
    h->bytes += it->len;
    h->stats.posted++;
    pump(es);
}

void events_hook_socket_gone(events_hook_t *h, ev_socket_t **slot)
{
    ev_socket_t *es = *slot;
    if (!es) return;
    *slot = NULL;
    if (rt_list_linked(&es->wait_link)) rt_list_remove(&es->wait_link);
    while (es->head) { /* no acknowledgement can reach a socket that went */
        ev_item_t *it = es->head;
        es->head = it->next;
        item_free(h, es, it);
    }
    if (es->cur) {
        fetch_cancel(es->w); /* the call goes on; nobody is told */
        item_free(h, es, es->cur);
        h->inflight--;
    }
    free(es);
    pump_waiting(h);
}
