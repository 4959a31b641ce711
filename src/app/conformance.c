/* The conformance application: what the official Engine.IO and Socket.IO
 * protocol test suites expect (a raw Engine.IO echo on /engine.io/, the
 * sample Socket.IO app on /socket.io/), plus a few test-only events and
 * namespaces our own integration tests use (rooms, broadcasts, acks from the
 * server, an asynchronous middleware, dynamic namespaces). */
#include "app.h"

#include <stdio.h>

/* ---- /engine.io/: echo every message back on the same session ---- */
static void echo_open(eio_session_t *s, const http_request_t *req, void *ud)
{
    RT_UNUSED(s), RT_UNUSED(req), RT_UNUSED(ud);
}
static void echo_message(eio_session_t *s, bool binary, rt_slice_t data, void *ud)
{
    RT_UNUSED(ud);
    eio_session_send(s, binary, data.p, data.n);
}
static void echo_close(eio_session_t *s, eio_reason_t reason, void *ud)
{
    RT_UNUSED(s), RT_UNUSED(reason), RT_UNUSED(ud);
}

/* ---- /socket.io/ ---- */
static void on_connect(sio_socket_t *s, rt_slice_t auth, void *ud)
{
    RT_UNUSED(ud);
    sio_emit(s, RT_SLICE("auth"), auth, NULL, 0);
}

static void ack_result(sio_socket_t *s, rt_slice_t args, const rt_slice_t *att, uint32_t natt,
                       bool closed, void *ud)
{
    RT_UNUSED(ud);
    if (!closed) sio_emit(s, RT_SLICE("ack-result"), args, att, natt);
}

/* First string argument of an event, decoded into out. */
static bool arg_string(const sio_event_t *ev, int index, rt_buf_t *out)
{
    rt_json_iter_t it;
    rt_slice_t v;
    rt_json_iter_init(&it, ev->payload);
    for (int i = 0; rt_json_array_next(&it, &v); i++) {
        if (i == index + 1) {
            out->len = 0;
            return rt_json_peek(v) == RT_JSON_STRING && rt_json_string_decode(v, out) == 0;
        }
    }
    return false;
}

/* Arguments after the first `skip` ones, as raw JSON text. */
static rt_slice_t args_after(const sio_event_t *ev, int skip)
{
    rt_json_iter_t it;
    rt_slice_t v;
    rt_json_iter_init(&it, ev->payload);
    for (int i = 0; rt_json_array_next(&it, &v); i++) {
        if (i == skip) {
            const char *a = v.p + v.n, *end = ev->payload.p + ev->payload.n - 1;
            while (a < end && *a != ',') a++;
            if (a < end) a++;
            while (end > a && (end[-1] == ' ' || end[-1] == '\n')) end--;
            return rt_slice(a, (size_t)(end - a));
        }
    }
    return RT_SLICE("");
}

static void on_event(sio_socket_t *s, const sio_event_t *ev, void *ud)
{
    RT_UNUSED(ud);
    rt_slice_t n = ev->name;
    if (rt_slice_eq_cstr(n, "message")) {
        sio_emit(s, RT_SLICE("message-back"), ev->args, ev->attachments, ev->nattach);
    } else if (rt_slice_eq_cstr(n, "message-with-ack")) {
        sio_ack(s, ev->ack_id, ev->args, ev->attachments, ev->nattach);
    } else if (rt_slice_eq_cstr(n, "join") || rt_slice_eq_cstr(n, "leave")) {
        rt_buf_t room = {0};
        if (arg_string(ev, 0, &room)) {
            if (n.p[0] == 'j') sio_join(s, rt_slice(room.data, room.len));
            else sio_leave(s, rt_slice(room.data, room.len));
        }
        rt_buf_free(&room);
        if (ev->ack_id >= 0) sio_ack(s, ev->ack_id, RT_SLICE(""), NULL, 0);
    } else if (rt_slice_eq_cstr(n, "broadcast")) {
        /* broadcast(rooms: string|string[], event, ...args): to the union of
         * the rooms, except the sender. */
        rt_json_iter_t it;
        rt_slice_t v, roomsv = RT_SLICE_NULL;
        rt_json_iter_init(&it, ev->payload);
        rt_json_array_next(&it, &v);
        if (rt_json_array_next(&it, &roomsv)) {
            rt_buf_t names = {0};
            rt_slice_t rooms[16];
            size_t nr = 0, offs[16], lens[16];
            if (rt_json_peek(roomsv) == RT_JSON_STRING) {
                rt_json_string_decode(roomsv, &names);
                offs[0] = 0, lens[0] = names.len, nr = 1;
            } else if (rt_json_peek(roomsv) == RT_JSON_ARRAY) {
                rt_json_iter_t ri;
                rt_slice_t r;
                rt_json_iter_init(&ri, roomsv);
                while (nr < 16 && rt_json_array_next(&ri, &r)) {
                    size_t start = names.len;
                    rt_json_string_decode(r, &names);
                    offs[nr] = start, lens[nr] = names.len - start, nr++;
                }
            }
            for (size_t i = 0; i < nr; i++) rooms[i] = rt_slice(names.data + offs[i], lens[i]);
            sio_broadcast(sio_socket_nsp(s), rooms, nr, s, args_after(ev, 1));
            rt_buf_free(&names);
        }
        if (ev->ack_id >= 0) sio_ack(s, ev->ack_id, RT_SLICE(""), NULL, 0);
    } else if (rt_slice_eq_cstr(n, "request-ack")) {
        /* The server asks the client for an ack, then reports what came back. */
        sio_emit_with_ack(s, RT_SLICE("ack-request"), ev->args, NULL, 0, ack_result, NULL);
    } else if (rt_slice_eq_cstr(n, "disconnect-me")) {
        sio_socket_disconnect(s);
    } else if (rt_slice_eq_cstr(n, "close-session")) {
        eio_session_close(sio_client_session(sio_socket_client(s)));
    }
}

/* /private: an asynchronous middleware that accepts {"token":"secret"}
 * after 20 ms and rejects anything else, with data. */
typedef struct {
    net_timer_t t;
    sio_socket_t *s;
    bool ok;
} pending_auth_t;

static void private_decide(net_loop_t *loop, net_timer_t *t)
{
    RT_UNUSED(loop);
    pending_auth_t *p = rt_container_of(t, pending_auth_t, t);
    if (p->ok) sio_socket_accept(p->s);
    else sio_socket_reject(p->s, "Unauthorized", RT_SLICE("{\"reason\":\"bad token\"}"));
    sio_socket_unref(p->s);
    free(p);
}

static void private_request(sio_socket_t *s, rt_slice_t auth, void *ud)
{
    app_t *app = ud;
    rt_slice_t tok;
    pending_auth_t *p = rt_calloc(1, sizeof *p);
    p->s = s;
    p->ok = rt_json_peek(auth) == RT_JSON_OBJECT && rt_json_object_get(auth, "token", &tok) &&
            rt_slice_eq_cstr(tok, "\"secret\"");
    sio_socket_ref(s);
    net_timer_init(&p->t, private_decide);
    net_timer_start(app->loop, &p->t, 20);
}

static bool match_dyn(rt_slice_t name, void *ud)
{
    RT_UNUSED(ud);
    return name.n > 5 && memcmp(name.p, "/dyn-", 5) == 0;
}

int conformance_start(app_t *app)
{
    eio_options_t eo;
    sio_options_t so;
    app_protocol_options(app, &eo, &so);
    static const eio_handler_t echo = {echo_open, echo_message, echo_close};
    app->eio_echo = eio_server_new(app->http, "/engine.io/", &eo, &echo, app);

    app->sio = sio_server_new(app->http, app->cfg.path, &eo, &so);
    static const sio_nsp_handler_t h = {.on_connect = on_connect, .on_event = on_event};
    static const sio_nsp_handler_t ph = {.on_connect_request = private_request, .on_connect = on_connect,
                                         .on_event = on_event};
    sio_server_of(app->sio, "/", &h, app);
    sio_server_of(app->sio, "/custom", &h, app);
    sio_server_of(app->sio, "/private", &ph, app);
    sio_server_add_dynamic(app->sio, match_dyn, &h, app);
    rt_notice("app", "conformance mode: /engine.io/ echo, /socket.io/ sample app");
    return 0;
}
