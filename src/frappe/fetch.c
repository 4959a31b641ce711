/* fetch: libcurl multi on our loop (see fetch.h).
 *
 * libcurl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when
 * to call it back (CURLMOPT_TIMERFUNCTION); we map those onto net_io and one
 * net_timer, call curl_multi_socket_action on events, and collect finished
 * transfers with curl_multi_info_read.
 *
 * At most FETCH_MAX_ACTIVE transfers are handed to libcurl (its bookkeeping
 * is O(n) per handle); more wait in our FIFO, at most FETCH_MAX_QUEUED
 * (beyond, a call fails at once), and one that waited past the timeout
 * fails without being made. A call whose every waiter cancelled (the
 * client went away) is dropped: removed from libcurl or from the queue. */
#include "fetch.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <stdio.h>

#define FETCH_MAX_BODY (1 << 20)
#define FETCH_MAX_ACTIVE 256
#define FETCH_MAX_QUEUED 8192

struct fetch_waiter {
    fetch_waiter_t *next;
    struct fetch_req *req;
    const char *fail_err; /* on the failed list: why */
    fetch_cb cb;
    void *ud;
    bool cancelled;
};

typedef struct fetch_req {
    rt_list_t qlink; /* in fc->queue while waiting for a slot */
    fetch_client_t *fc;
    CURL *easy;
    bool active;     /* handed to libcurl */
    bool delivering; /* its callbacks are running: cancel marks only */
    uint32_t live;   /* waiters not cancelled */
    uint64_t queued_at;
    uint64_t started_ns;
    struct curl_slist *headers;
    char *key; /* url + headers: the coalescing key */
    rt_buf_t body;
    bool too_big;
    fetch_waiter_t *waiters;
    char errbuf[CURL_ERROR_SIZE];
} fetch_req_t;

typedef struct {
    net_io_t io;
    fetch_client_t *fc;
    net_task_t free_task; /* NET_PHASE_FREE once libcurl is done with it */
} fetch_sock_t;

struct fetch_client {
    net_loop_t *loop;
    CURLM *multi;
    net_timer_t timer;
    net_task_t fail_task;    /* NET_PHASE_WORK: answers `failed` (libcurl unavailable) */
    fetch_waiter_t *failed;
    unsigned timeout_ms;
    rt_map_t inflight; /* key -> fetch_req_t (active or queued) */
    rt_list_t queue;   /* fetch_req_t waiting for a slot, oldest first */
    uint32_t nactive, nqueued;
    fetch_stats_t stats;
};

/* libcurl is loaded on first use: it and its ~30 dependencies cost ~6 MB of
 * shared-library pages, which a realtime server with no clients need not
 * pay. GNUTLS_NO_IMPLICIT_INIT keeps gnutls (pulled in through librtmp, and
 * never used for our HTTP calls) from initialising itself when it loads. */
static struct {
    bool tried, ok;
    CURLcode (*global_init)(long);
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
    CURLMcode (*multi_cleanup)(CURLM *);
    CURLMcode (*multi_assign)(CURLM *, curl_socket_t, void *);
    CURLMcode (*multi_socket_action)(CURLM *, curl_socket_t, int, int *);
    CURLMsg *(*multi_info_read)(CURLM *, int *);
    CURLMcode (*multi_add_handle)(CURLM *, CURL *);
    CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    void (*easy_cleanup)(CURL *);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    const char *(*easy_strerror)(CURLcode);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
} cu;

static bool curl_load(void)
{
    if (cu.tried) return cu.ok;
    cu.tried = true;
    setenv("GNUTLS_NO_IMPLICIT_INIT", "1", 0);
    void *h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        rt_error("frappe", "cannot load libcurl.so.4 (install libcurl4): %s", dlerror());
        return false;
    }
#define LOAD(field, name)                                                                          \
    if (!(*(void **)&cu.field = dlsym(h, name))) {                                                 \
        rt_error("frappe", "libcurl.so.4 lacks %s", name);                                          \
        return false;                                                                              \
    }
    LOAD(global_init, "curl_global_init")
    LOAD(multi_init, "curl_multi_init")
    LOAD(multi_setopt, "curl_multi_setopt")
    LOAD(multi_cleanup, "curl_multi_cleanup")
    LOAD(multi_assign, "curl_multi_assign")
    LOAD(multi_socket_action, "curl_multi_socket_action")
    LOAD(multi_info_read, "curl_multi_info_read")
    LOAD(multi_add_handle, "curl_multi_add_handle")
    LOAD(multi_remove_handle, "curl_multi_remove_handle")
    LOAD(easy_init, "curl_easy_init")
    LOAD(easy_setopt, "curl_easy_setopt")
    LOAD(easy_cleanup, "curl_easy_cleanup")
    LOAD(easy_getinfo, "curl_easy_getinfo")
    LOAD(easy_strerror, "curl_easy_strerror")
    LOAD(slist_append, "curl_slist_append")
    LOAD(slist_free_all, "curl_slist_free_all")
#undef LOAD
    if (cu.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return false;
    cu.ok = true;
    return true;
}

static void check_done(fetch_client_t *fc);
static void start_queued(fetch_client_t *fc);

static void sock_cb_io(net_loop_t *loop, net_io_t *io, uint32_t events)
{
    fetch_sock_t *s = (fetch_sock_t *)io;
    fetch_client_t *fc = s->fc;
    RT_UNUSED(loop);
    int flags = 0, running;
    if (events & NET_READ) flags |= CURL_CSELECT_IN;
    if (events & NET_WRITE) flags |= CURL_CSELECT_OUT;
    if (events & (0x008 | 0x010)) flags |= CURL_CSELECT_ERR;
    cu.multi_socket_action(fc->multi, io->fd, flags, &running); /* may free s */
    check_done(fc);
}

static void sock_free_task(net_loop_t *loop, net_task_t *t)
{
    RT_UNUSED(loop);
    free(rt_container_of(t, fetch_sock_t, free_task));
}

static int socket_function(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    fetch_client_t *fc = userp;
    fetch_sock_t *s = socketp;
    RT_UNUSED(easy);
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            net_io_set(fc->loop, &s->io, 0);
            s->io.fd = -1; /* an event for it may still be in this turn's batch */
            net_defer(fc->loop, &s->free_task, NET_PHASE_FREE);
            cu.multi_assign(fc->multi, fd, NULL);
        }
        return 0;
    }
    if (!s) {
        s = rt_calloc(1, sizeof *s);
        s->io.fd = fd;
        s->io.cb = sock_cb_io;
        s->fc = fc;
        net_task_init(&s->free_task, sock_free_task);
        cu.multi_assign(fc->multi, fd, s);
    }
    uint32_t ev = 0;
    if (what & CURL_POLL_IN) ev |= NET_READ;
    if (what & CURL_POLL_OUT) ev |= NET_WRITE;
    if (net_io_set(fc->loop, &s->io, ev) < 0) return -1; /* libcurl fails the transfer */
    return 0;
}

static void fail_task_cb(net_loop_t *loop, net_task_t *t)
{
    fetch_client_t *fc = rt_container_of(t, fetch_client_t, fail_task);
    RT_UNUSED(loop);
    while (fc->failed) {
        fetch_waiter_t *w = fc->failed;
        fc->failed = w->next;
        fc->stats.failures++;
        fc->stats.failed[FETCH_FAIL_NOLIB]++;
        fetch_result_t res = {0, w->fail_err ? w->fail_err : "libcurl is not available", false, RT_SLICE_NULL};
        if (!w->cancelled) w->cb(&res, w->ud);
        free(w);
    }
}

static void timer_cb(net_loop_t *loop, net_timer_t *t)
{
    fetch_client_t *fc = rt_container_of(t, fetch_client_t, timer);
    RT_UNUSED(loop);
    int running;
    cu.multi_socket_action(fc->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(fc);
}

static int timer_function(CURLM *multi, long timeout_ms, void *userp)
{
    fetch_client_t *fc = userp;
    RT_UNUSED(multi);
    if (timeout_ms < 0) net_timer_stop(&fc->timer);
    else net_timer_start(fc->loop, &fc->timer, (uint64_t)timeout_ms);
    return 0;
}

static size_t write_function(char *p, size_t size, size_t n, void *ud)
{
    fetch_req_t *r = ud;
    size_t len = size * n;
    if (r->body.len + len > FETCH_MAX_BODY) {
        r->too_big = true;
        return 0; /* aborts the transfer */
    }
    rt_buf_append(&r->body, p, len);
    return len;
}

static void req_free(fetch_req_t *r)
{
    if (r->active) {
        cu.multi_remove_handle(r->fc->multi, r->easy);
        r->fc->nactive--;
    }
    if (rt_list_linked(&r->qlink)) {
        rt_list_remove(&r->qlink);
        r->fc->nqueued--;
    }
    cu.easy_cleanup(r->easy);
    cu.slist_free_all(r->headers);
    rt_buf_free(&r->body);
    free(r->key);
    while (r->waiters) {
        fetch_waiter_t *w = r->waiters;
        r->waiters = w->next;
        free(w);
    }
    free(r);
}

static void check_done(fetch_client_t *fc)
{
    CURLMsg *m;
    int left;
    while ((m = cu.multi_info_read(fc->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        fetch_req_t *r = NULL;
        cu.easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        CURLcode code = m->data.result;
        rt_map_del(&fc->inflight, rt_slice_cstr(r->key));
        fc->stats.in_flight--;
        r->delivering = true;
        fetch_result_t res = {0};
        rt_hist_observe(&fc->stats.latency, (rt_now_ns() - r->started_ns) / 1000);
        if (code == CURLE_OK) {
            cu.easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &res.status);
            res.body = rt_slice(r->body.data, r->body.len);
        } else {
            fc->stats.failures++;
            res.timed_out = code == CURLE_OPERATION_TIMEDOUT;
            fc->stats.failed[r->too_big ? FETCH_FAIL_TOO_LARGE : res.timed_out ? FETCH_FAIL_TIMEOUT : FETCH_FAIL_NETWORK]++;
            res.err = r->too_big ? "response too large" : r->errbuf[0] ? r->errbuf : cu.easy_strerror(code);
        }
        /* Waiters may start new requests from their callbacks; this one is
         * already out of the in-flight map, so they get a fresh call. */
        for (fetch_waiter_t *w = r->waiters; w; w = w->next)
            if (!w->cancelled) w->cb(&res, w->ud);
        req_free(r);
    }
    start_queued(fc);
}

/* Hands waiting calls to libcurl while there are slots; those that waited
 * past the timeout fail instead. */
static void start_queued(fetch_client_t *fc)
{
    while (fc->nactive < FETCH_MAX_ACTIVE && !rt_list_empty(&fc->queue)) {
        fetch_req_t *r = rt_container_of(fc->queue.next, fetch_req_t, qlink);
        rt_list_remove(&r->qlink);
        fc->nqueued--;
        uint64_t waited = net_loop_now(fc->loop) - r->queued_at;
        if (waited >= fc->timeout_ms) {
            rt_map_del(&fc->inflight, rt_slice_cstr(r->key));
            fc->stats.in_flight--;
            fc->stats.failures++;
            fc->stats.failed[FETCH_FAIL_QUEUED]++;
            rt_hist_observe(&fc->stats.latency, (rt_now_ns() - r->started_ns) / 1000);
            fetch_result_t res = {0, "waited too long for a connection to the web server", true, RT_SLICE_NULL};
            r->delivering = true;
            for (fetch_waiter_t *w = r->waiters; w; w = w->next)
                if (!w->cancelled) w->cb(&res, w->ud);
            req_free(r);
            continue;
        }
        cu.easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, (long)(fc->timeout_ms - waited));
        r->active = true;
        fc->nactive++;
        cu.multi_add_handle(fc->multi, r->easy);
    }
}

fetch_client_t *fetch_client_new(net_loop_t *loop, unsigned timeout_ms)
{
    fetch_client_t *fc = rt_calloc(1, sizeof *fc);
    fc->loop = loop;
    fc->timeout_ms = timeout_ms;
    rt_map_init(&fc->inflight);
    rt_list_init(&fc->queue);
    net_timer_init(&fc->timer, timer_cb);
    net_task_init(&fc->fail_task, fail_task_cb);
    return fc;
}

/* Creates the multi handle on first use (loading libcurl). */
static bool ensure_multi(fetch_client_t *fc)
{
    if (fc->multi) return true;
    if (!curl_load()) return false;
    fc->multi = cu.multi_init();
    cu.multi_setopt(fc->multi, CURLMOPT_SOCKETFUNCTION, socket_function);
    cu.multi_setopt(fc->multi, CURLMOPT_SOCKETDATA, fc);
    cu.multi_setopt(fc->multi, CURLMOPT_TIMERFUNCTION, timer_function);
    cu.multi_setopt(fc->multi, CURLMOPT_TIMERDATA, fc);
    cu.multi_setopt(fc->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 64L);
    return true;
}

void fetch_client_free(fetch_client_t *fc)
{
    if (!fc) return;
    rt_slice_t k;
    void *v;
    /* Deleting the entry just returned is allowed while iterating (base.h). */
    for (uint32_t it = 0; rt_map_next(&fc->inflight, &it, &k, &v);) {
        rt_map_del(&fc->inflight, k);
        req_free(v);
    }
    net_timer_stop(&fc->timer);
    net_task_cancel(&fc->fail_task);
    while (fc->failed) {
        fetch_waiter_t *w = fc->failed;
        fc->failed = w->next;
        free(w);
    }
    if (fc->multi) cu.multi_cleanup(fc->multi);
    rt_map_free(&fc->inflight);
    free(fc);
}

static fetch_waiter_t *start(fetch_client_t *fc, const char *url, const char *const *headers, const rt_slice_t *post,
                             fetch_cb cb, void *ud);

fetch_waiter_t *fetch_get(fetch_client_t *fc, const char *url, const char *const *headers,
                          fetch_cb cb, void *ud)
{
    return start(fc, url, headers, NULL, cb, ud);
}

fetch_waiter_t *fetch_post(fetch_client_t *fc, const char *url, const char *const *headers, rt_slice_t body,
                           fetch_cb cb, void *ud)
{
    return start(fc, url, headers, &body, cb, ud);
}

static fetch_waiter_t *start(fetch_client_t *fc, const char *url, const char *const *headers, const rt_slice_t *post,
                             fetch_cb cb, void *ud)
{
    rt_buf_t key = {0};
    rt_buf_append_cstr(&key, url);
    for (size_t i = 0; headers && headers[i]; i++) {
        rt_buf_putc(&key, '\n');
        rt_buf_append_cstr(&key, headers[i]);
    }
    if (post) { /* a POST coalesces only with the same body (NULs would cut the key: never coalesced) */
        rt_buf_append_cstr(&key, memchr(post->p, 0, post->n) ? "\nPOST*\n" : "\nPOST\n");
        if (!memchr(post->p, 0, post->n)) rt_buf_append_slice(&key, *post);
        else rt_buf_printf(&key, "%p", (void *)cb), rt_buf_printf(&key, "%p", ud);
    }
    rt_buf_putc(&key, 0);
    fetch_waiter_t *w = rt_calloc(1, sizeof *w);
    w->cb = cb;
    w->ud = ud;
    fc->stats.requests++;
    if (!ensure_multi(fc)) {
        /* Answered from the loop, never from inside this call. */
        rt_buf_free(&key);
        w->next = fc->failed;
        fc->failed = w;
        net_defer(fc->loop, &fc->fail_task, NET_PHASE_WORK);
        return w;
    }
    fetch_req_t *r = rt_map_get(&fc->inflight, rt_slice(key.data, key.len - 1));
    if (r) {
        fc->stats.coalesced++;
        rt_buf_free(&key);
        w->req = r;
        w->next = r->waiters;
        r->waiters = w;
        r->live++;
        return w;
    }
    if (fc->nactive >= FETCH_MAX_ACTIVE && fc->nqueued >= FETCH_MAX_QUEUED) {
        /* the web server is far behind: fail now (from the loop) */
        rt_buf_free(&key);
        rt_warn_rl("frappe", "%u calls to the web server waiting: one more fails at once", fc->nqueued);
        w->fail_err = "too many calls to the web server waiting";
        w->next = fc->failed;
        fc->failed = w;
        net_defer(fc->loop, &fc->fail_task, NET_PHASE_WORK);
        return w;
    }
    r = rt_calloc(1, sizeof *r);
    r->fc = fc;
    r->key = key.data;
    r->easy = cu.easy_init();
    for (size_t i = 0; headers && headers[i]; i++) r->headers = cu.slist_append(r->headers, headers[i]);
    r->headers = cu.slist_append(r->headers, "Expect:");
    cu.easy_setopt(r->easy, CURLOPT_URL, url);
    cu.easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
    cu.easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, write_function);
    cu.easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
    cu.easy_setopt(r->easy, CURLOPT_PRIVATE, r);
    cu.easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->errbuf);
    cu.easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, (long)fc->timeout_ms);
    cu.easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
    cu.easy_setopt(r->easy, CURLOPT_TCP_NODELAY, 1L);
    cu.easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    cu.easy_setopt(r->easy, CURLOPT_USERAGENT, "realtimed");
    if (post) {
        cu.easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE, (long)post->n);
        cu.easy_setopt(r->easy, CURLOPT_COPYPOSTFIELDS, post->n ? post->p : "");
    }
    w->req = r;
    r->waiters = w;
    r->live = 1;
    rt_map_put(&fc->inflight, rt_slice_cstr(r->key), r);
    fc->stats.in_flight++;
    r->queued_at = net_loop_now(fc->loop);
    r->started_ns = rt_now_ns();
    rt_list_insert_tail(&fc->queue, &r->qlink);
    fc->nqueued++;
    start_queued(fc);
    return w;
}

void fetch_cancel(fetch_waiter_t *w)
{
    if (!w || w->cancelled) return;
    w->cancelled = true;
    fetch_req_t *r = w->req;
    if (!r || --r->live || r->delivering) return;
    /* Nobody waits for it any more: drop the call (and its slot). */
    fetch_client_t *fc = r->fc;
    rt_map_del(&fc->inflight, rt_slice_cstr(r->key));
    fc->stats.in_flight--;
    fc->stats.cancelled++;
    req_free(r);
    start_queued(fc);
}

void fetch_client_set_timeout(fetch_client_t *fc, unsigned timeout_ms) { fc->timeout_ms = timeout_ms; }

const char *const fetch_failure_kinds[FETCH_FAILS] = {"timeout", "network", "response_too_large", "queue_timeout",
                                                     "no_libcurl"};

const fetch_stats_t *fetch_client_stats(const fetch_client_t *fc) { return &fc->stats; }
