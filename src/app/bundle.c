/* The Socket.IO client bundle at <path>socket.io.js (and .min.js,
 * .esm.min.js, .msgpack.min.js, their source maps), as socket.io's
 * serveClient does: ETag "<client version>", 304 for If-None-Match,
 * Cache-Control: public, max-age=0. The files come from the socket.io-client
 * package the install script brings (never committed): --client-dir, else
 * <prefix>/share/realtimed/client beside an installed binary, else the
 * repository's tests/node_modules/socket.io-client/dist. Each file is read
 * on its first request and kept, with its gzip and deflate forms made once. */
#include "app.h"

#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#define BUNDLE_MAX_FILE (4 << 20)

static const char *const bundle_names[] = {
    "socket.io.js",         "socket.io.js.map",         "socket.io.min.js",         "socket.io.min.js.map",
    "socket.io.esm.min.js", "socket.io.esm.min.js.map", "socket.io.msgpack.min.js", "socket.io.msgpack.min.js.map",
};
#define NFILES RT_ARRAY_LEN(bundle_names)

typedef struct {
    struct bundle *b;
    const char *name;
    bool loaded, missing;
    rt_chunk_t *enc[3]; /* identity, gzip, deflate (NULL until made) */
} bundle_file_t;

struct bundle {
    char dir[PATH_MAX];
    char etag[80];
    bundle_file_t files[NFILES];
};

static bool is_dir_with(const char *dir, const char *file)
{
    char p[PATH_MAX + 64];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, file);
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static bool find_dir(const char *opt, char *out, size_t n)
{
    if (opt) {
        snprintf(out, n, "%s", opt);
        return is_dir_with(out, "socket.io.min.js") || is_dir_with(out, "socket.io.js");
    }
    char exe[PATH_MAX];
    if (!rt_exe_dir(exe, sizeof exe)) return false;
    static const char *const rel[] = {"../share/realtimed/client", "../tests/node_modules/socket.io-client/dist"};
    for (size_t i = 0; i < RT_ARRAY_LEN(rel); i++) {
        char p[PATH_MAX];
        if (snprintf(p, sizeof p, "%s/%s", exe, rel[i]) >= (int)sizeof p) continue;
        if (is_dir_with(p, "socket.io.min.js") && realpath(p, out)) return true;
    }
    return false;
}

/* The client's version (package.json next to dist/, or a VERSION file
 * beside the installed copy): the ETag. */
static void read_version(struct bundle *b)
{
    char p[PATH_MAX + 32];
    const char *ver = NULL;
    json_t *root = NULL;
    snprintf(p, sizeof p, "%s/../package.json", b->dir);
    if ((root = json_load_file(p, 0, NULL)) && json_is_string(json_object_get(root, "version")))
        ver = json_string_value(json_object_get(root, "version"));
    char buf[64] = "";
    if (!ver) {
        snprintf(p, sizeof p, "%s/VERSION", b->dir);
        FILE *f = fopen(p, "r");
        if (f) {
            if (fgets(buf, sizeof buf, f)) buf[strcspn(buf, "\r\n")] = 0;
            fclose(f);
        }
        if (buf[0]) ver = buf;
    }
    snprintf(b->etag, sizeof b->etag, "\"%s\"", ver ? ver : "unknown");
    for (char *c = b->etag + 1; c[1]; c++)
        if (*c == '"' || (unsigned char)*c < 0x20) *c = '_';
    json_decref(root);
}

static void load(bundle_file_t *f)
{
    f->loaded = true;
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/%s", f->b->dir, f->name);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > BUNDLE_MAX_FILE) {
        if (fd >= 0) close(fd);
        f->missing = true;
        return;
    }
    rt_chunk_t *ch = rt_chunk_new((size_t)st.st_size);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, ch->data + got, (size_t)st.st_size - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    ch->len = got;
    f->enc[HTTP_ENC_IDENTITY] = ch;
}

static void serve(http_conn_t *hc, const http_request_t *req, rt_slice_t body, void *ud)
{
    bundle_file_t *f = ud;
    RT_UNUSED(body);
    bool head = rt_slice_eq_cstr(req->method, "HEAD");
    if (!head && !rt_slice_eq_cstr(req->method, "GET")) {
        http_respond(hc, 405, "text/plain; charset=utf-8", "Method Not Allowed", 18, "Allow: GET, HEAD\r\n");
        return;
    }
    if (!f->loaded) load(f);
    if (f->missing) {
        http_respond_error(hc, 404, NULL);
        return;
    }
    const char *etag = f->b->etag;
    rt_slice_t inm = http_header_get(req, "if-none-match");
    if (inm.p && (rt_slice_eq_cstr(inm, etag) || (inm.n == strlen(etag) + 2 && !memcmp(inm.p, "W/", 2) &&
                                                  !memcmp(inm.p + 2, etag, strlen(etag))))) {
        char extra[128];
        snprintf(extra, sizeof extra, "ETag: %s\r\n", etag);
        http_respond(hc, 304, NULL, "", 0, extra);
        return;
    }
    int enc = http_accepted_encoding(req);
    if (enc != HTTP_ENC_IDENTITY && !f->enc[enc]) {
        rt_buf_t z = {0};
        rt_chunk_t *id = f->enc[HTTP_ENC_IDENTITY];
        if (http_compress(enc, id->data, id->len, &z) == 0) f->enc[enc] = rt_chunk_from_buf(&z);
        rt_buf_free(&z);
    }
    if (!f->enc[enc]) enc = HTTP_ENC_IDENTITY;
    rt_chunk_t *ch = f->enc[enc];
    bool map = strstr(f->name, ".map") != NULL;
    char extra[256];
    snprintf(extra, sizeof extra, "Cache-Control: public, max-age=0\r\nETag: %s\r\nVary: Accept-Encoding\r\n%s%s%s", etag,
             enc ? "Content-Encoding: " : "", enc ? http_encoding_name(enc) : "", enc ? "\r\n" : "");
    http_respond_chunk(hc, 200, map ? "application/json; charset=utf-8" : "application/javascript; charset=utf-8", ch, 0,
                       ch->len, extra);
}

bundle_t *app_bundle_new(app_t *app, http_server_t *http, const char *path)
{
    const app_config_t *cfg = &app->cfg;
    bool frappe = !cfg->conformance && !app_standalone(cfg);
    bool on = !strcmp(cfg->serve_client, "on") || (!strcmp(cfg->serve_client, "auto") && !frappe);
    if (!on) return NULL;
    bundle_t *b = rt_calloc(1, sizeof *b);
    if (!find_dir(cfg->client_dir, b->dir, sizeof b->dir)) {
        /* asked for by name: say so; by default: a server without the files */
        if (!strcmp(cfg->serve_client, "on") || cfg->client_dir)
            rt_warn("app", "serve_client: no socket.io-client bundle in %s: /socket.io/socket.io.js answers 404",
                    cfg->client_dir ? cfg->client_dir : "share/realtimed/client (set --client-dir)");
        free(b);
        return NULL;
    }
    read_version(b);
    for (size_t i = 0; i < NFILES; i++) {
        bundle_file_t *f = &b->files[i];
        f->b = b;
        f->name = bundle_names[i];
        char route[512];
        snprintf(route, sizeof route, "%s%s", path, f->name);
        http_server_route_exact(http, route, serve, f);
    }
    rt_debug("app", "serving the socket.io-client bundle %s from %s", b->etag, b->dir);
    return b;
}

void app_bundle_free(bundle_t *b)
{
    if (!b) return;
    for (size_t i = 0; i < NFILES; i++)
        for (int e = 0; e < 3; e++) rt_chunk_unref(b->files[i].enc[e]);
    free(b);
}
