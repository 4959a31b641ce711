/* fetch: asynchronous HTTP GETs with libcurl's multi interface driven by our
 * loop (no thread, no blocking call; connections are reused). Identical
 * requests in flight at the same time are coalesced into one call whose
 * answer every waiter gets. Used by frappe/ and by the standalone mode's
 * webhooks (app/). */
#ifndef RT_FRAPPE_FETCH_H
#define RT_FRAPPE_FETCH_H
#include "net/net.h"

typedef struct fetch_client fetch_client_t;

typedef struct {
    long status;     /* HTTP status, 0 on a transport error */
    const char *err; /* transport error text (curl's), NULL when status > 0 */
    bool timed_out;
    rt_slice_t body;
} fetch_result_t;

/* Called once with the result (valid during the call). */
typedef void (*fetch_cb)(const fetch_result_t *r, void *ud);

fetch_client_t *fetch_client_new(net_loop_t *loop, unsigned timeout_ms);
void fetch_client_free(fetch_client_t *fc); /* pending callbacks are not called */
void fetch_client_set_timeout(fetch_client_t *fc, unsigned timeout_ms); /* for calls started from now on */

/* Starts GET url with the given header lines ("Name: value", NULL-ended).
 * Returns a handle for fetch_cancel (never NULL). */
typedef struct fetch_waiter fetch_waiter_t;
fetch_waiter_t *fetch_get(fetch_client_t *fc, const char *url, const char *const *headers,
                          fetch_cb cb, void *ud);
/* The same as a POST of body (copied); it coalesces with identical POSTs. */
fetch_waiter_t *fetch_post(fetch_client_t *fc, const char *url, const char *const *headers, rt_slice_t body,
                           fetch_cb cb, void *ud);
/* The callback of this waiter will not be called; the request itself goes on
 * for other waiters. */
void fetch_cancel(fetch_waiter_t *w);

/* Why calls failed (no HTTP answer), in the order of fetch_failure_kinds[] */
enum { FETCH_FAIL_TIMEOUT, FETCH_FAIL_NETWORK, FETCH_FAIL_TOO_LARGE, FETCH_FAIL_QUEUED, FETCH_FAIL_NOLIB, FETCH_FAILS };
extern const char *const fetch_failure_kinds[FETCH_FAILS];
typedef struct {
    uint64_t requests, coalesced, failures, cancelled;
    uint32_t in_flight;
    uint64_t failed[FETCH_FAILS];
    rt_hist_t latency; /* request made -> answer or failure */
} fetch_stats_t;
const fetch_stats_t *fetch_client_stats(const fetch_client_t *fc);

#endif
