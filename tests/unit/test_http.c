/* Unit tests for src/http/http.c (the server side; the parser has its own
 * file): keep-alive timeouts, input pipelined behind a parked request. A
 * loop serves an http_server on loopback; clients are plain blocking
 * sockets driven between loop runs. */
#include "http/http.h"
#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

static net_loop_t *loop;
static http_server_t *srv;
static net_listener_t *lst;
static int port;
static http_conn_t *parked;

static void on_ok(http_conn_t *hc, const http_request_t *req, rt_slice_t body, void *ud)
{
    RT_UNUSED(req), RT_UNUSED(body), RT_UNUSED(ud);
    http_respond(hc, 200, "text/plain", "ok", 2, NULL);
}

static void parked_gone(http_conn_t *hc, void *ud)
{
    RT_UNUSED(hc), RT_UNUSED(ud);
    parked = NULL;
}

static void on_park(http_conn_t *hc, const http_request_t *req, rt_slice_t body, void *ud)
{
    RT_UNUSED(req), RT_UNUSED(body), RT_UNUSED(ud);
    parked = hc; /* answered later by the test */
    http_conn_set_abort(hc, parked_gone, NULL);
}

static void setup(unsigned head_ms, unsigned idle_ms)
{
    loop = net_loop_new(NULL);
    http_options_t o;
    http_options_default(&o);
    o.head_timeout_ms = head_ms;
    o.idle_timeout_ms = idle_ms;
    srv = http_server_new(loop, &o);
    http_server_route(srv, "/x", on_ok, NULL);
    http_server_route(srv, "/park", on_park, NULL);
    char err[128];
    lst = net_listen_tcp(loop, "127.0.0.1", 0, http_server_accept, srv, err, sizeof err);
    CHECK(lst != NULL);
    port = net_listener_port(lst);
    parked = NULL;
}

static void teardown(void)
{
    net_listener_close(lst);
    net_loop_close_all(loop);
    http_server_free(srv);
    net_loop_free(loop);
}

/* Runs the loop for about ms milliseconds. */
static void spin(unsigned ms)
{
    uint64_t end = rt_now_ms() + ms;
    for (uint64_t now = rt_now_ms(); now < end; now = rt_now_ms()) net_loop_run_once(loop, (int)(end - now));
}

static int client(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) perror("connect");
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EAGAIN) {
                spin(1);
                continue;
            }
            return; /* closed by the server: what the test checks */
        }
        p += w, n -= (size_t)w;
    }
}

/* Reads what is there; returns bytes appended to buf, -1 at EOF/reset. */
static ssize_t drain(int fd, char *buf, size_t cap, size_t *len)
{
    ssize_t got = 0;
    for (;;) {
        ssize_t r = read(fd, buf + *len, cap - *len - 1);
        if (r > 0) {
            *len += (size_t)r;
            got += r;
            buf[*len] = 0;
            continue;
        }
        if (r == 0 || (r < 0 && errno != EAGAIN)) return -1;
        return got;
    }
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++) n++;
    return n;
}

/* A keep-alive connection's next request head gets the head timeout, not
 * the idle one: a client cannot hold a half-sent head for the idle time. */
TEST(keepalive_next_head_timeout)
{
    setup(150, 5000);
    int fd = client();
    send_all(fd, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", 28);
    char buf[4096];
    size_t len = 0;
    for (int i = 0; i < 50 && !strstr(buf, "\r\n\r\nok"); i++) {
        spin(5);
        drain(fd, buf, sizeof buf, &len);
    }
    CHECK(strstr(buf, "200 OK") != NULL);
    spin(300); /* idle well past the head timeout: still open (idle is 5 s) */
    CHECK_EQ_INT(drain(fd, buf, sizeof buf, &len), 0);
    send_all(fd, "GET /x HTTP/1.1\r\nHo", 19);
    uint64_t t0 = rt_now_ms();
    bool closed = false;
    while (!closed && rt_now_ms() - t0 < 3000) {
        spin(10);
        closed = drain(fd, buf, sizeof buf, &len) < 0;
    }
    CHECK(closed);
    CHECK(rt_now_ms() - t0 < 1000); /* the 150 ms head timeout, not the 5 s idle one */
    close(fd);
    teardown();
}

/* Input behind a parked request waits (the connection is not read), is
 * answered in order once the parked one is; more than HTTP_MAX_PIPELINED
 * closes the connection. */
TEST(pipelined_behind_parked)
{
    setup(10000, 10000);
    int fd = client();
    const char req[] = "GET /park HTTP/1.1\r\nHost: a\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n";
    send_all(fd, req, sizeof req - 1);
    char buf[8192];
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < 50 && !parked; i++) spin(5);
    CHECK(parked != NULL);
    spin(50);
    drain(fd, buf, sizeof buf, &len);
    CHECK_EQ_INT(len, 0); /* /x waits for /park */
    if (parked) http_respond(parked, 200, "text/plain", "parked", 6, NULL);
    for (int i = 0; i < 100 && count(buf, "200 OK") < 2; i++) {
        spin(5);
        drain(fd, buf, sizeof buf, &len);
    }
    CHECK_EQ_INT(count(buf, "200 OK"), 2);
    char *a = strstr(buf, "parked"), *b = strstr(buf, "\r\n\r\nok");
    CHECK(a && b && a < b);
    close(fd);

    /* a client that keeps sending behind a parked request */
    fd = client();
    send_all(fd, "GET /park HTTP/1.1\r\nHost: a\r\n\r\n", 31);
    for (int i = 0; i < 50 && !parked; i++) spin(5);
    static char junk[256 * 1024];
    memset(junk, 'A', sizeof junk);
    send_all(fd, junk, sizeof junk);
    bool closed = false;
    len = 0;
    for (int i = 0; i < 200 && !closed; i++) {
        spin(5);
        closed = drain(fd, buf, sizeof buf, &len) < 0;
    }
    CHECK(closed || parked == NULL);
    CHECK(parked == NULL); /* the parked request was aborted with its connection */
    close(fd);
    teardown();
}

int main(void)
{
    RUN(keepalive_next_head_timeout);
    RUN(pipelined_behind_parked);
    return TEST_SUMMARY("test_http");
}
