/* Static files for the demo page and the JS client (see http.h). Small
 * files are read whole per request: this is not the hot path. */
#include "http.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATIC_MAX_FILE (8 << 20)

struct http_static {
    char *root; /* realpath, no trailing slash */
    size_t rootlen;
};

http_static_t *http_static_new(const char *root, char *err, size_t errlen)
{
    char real[PATH_MAX];
    struct stat st;
    if (!realpath(root, real) || stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "static_dir %s is not a readable directory", root);
        return NULL;
    }
    http_static_t *s = rt_calloc(1, sizeof *s);
    s->root = rt_strndup(real, strlen(real));
    s->rootlen = strlen(real);
    return s;
}

void http_static_free(http_static_t *st)
{
    if (!st) return;
    free(st->root);
    free(st);
}

static const char *content_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"}, {".htm", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"}, {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"}, {".json", "application/json"},
        {".map", "application/json"}, {".svg", "image/svg+xml"}, {".png", "image/png"},
        {".jpg", "image/jpeg"}, {".jpeg", "image/jpeg"}, {".gif", "image/gif"},
        {".ico", "image/x-icon"}, {".txt", "text/plain; charset=utf-8"},
        {".wasm", "application/wasm"}, {".woff2", "font/woff2"},
    };
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (dot && (!slash || dot > slash))
        for (size_t i = 0; i < RT_ARRAY_LEN(types); i++)
            if (!strcasecmp(dot, types[i].ext)) return types[i].type;
    return "application/octet-stream";
}

void http_static_handler(http_conn_t *hc, const http_request_t *req, rt_slice_t body, void *ud)
{
    http_static_t *st = ud;
    RT_UNUSED(body);
    bool head = rt_slice_eq_cstr(req->method, "HEAD");
    if (!head && !rt_slice_eq_cstr(req->method, "GET")) {
        http_respond(hc, 405, "text/plain; charset=utf-8", "Method Not Allowed", 18, "Allow: GET, HEAD\r\n");
        return;
    }
    rt_buf_t rel = {0};
    if (rt_url_decode(req->path, false, &rel) < 0 || (rel.len && memchr(rel.data, 0, rel.len)) ||
        rel.len == 0 || rel.data[0] != '/') {
        rt_buf_free(&rel);
        http_respond_error(hc, 400, NULL);
        return;
    }
    /* Refuse any ".." segment outright; realpath below catches symlinks. */
    for (size_t i = 0; i + 1 < rel.len; i++) {
        if (rel.data[i] == '.' && rel.data[i + 1] == '.' && (i == 0 || rel.data[i - 1] == '/') &&
            (i + 2 == rel.len || rel.data[i + 2] == '/')) {
            rt_buf_free(&rel);
            http_respond_error(hc, 404, NULL);
            return;
        }
    }
    rt_buf_t path = {0};
    rt_buf_append(&path, st->root, st->rootlen);
    rt_buf_append(&path, rel.data, rel.len);
    if (rel.data[rel.len - 1] == '/') rt_buf_append_cstr(&path, "index.html");
    rt_buf_putc(&path, 0);
    rt_buf_free(&rel);
    char real[PATH_MAX];
    struct stat sb;
    int fd = -1;
    if (realpath(path.data, real) && !strncmp(real, st->root, st->rootlen) &&
        (st->rootlen == 1 || real[st->rootlen] == '/' || real[st->rootlen] == 0) &&
        stat(real, &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) {
            /* /dir -> /dir/ so relative links in its index work */
            rt_buf_t loc = {0};
            rt_buf_append_cstr(&loc, "Location: ");
            rt_buf_append_slice(&loc, req->path);
            rt_buf_append_cstr(&loc, "/\r\n");
            rt_buf_putc(&loc, 0);
            http_respond(hc, 301, NULL, "", 0, loc.data);
            rt_buf_free(&loc);
            rt_buf_free(&path);
            return;
        }
        if (S_ISREG(sb.st_mode) && sb.st_size <= STATIC_MAX_FILE) fd = open(real, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0) {
        rt_buf_free(&path);
        http_respond_error(hc, 404, NULL);
        return;
    }
    rt_chunk_t *ch = rt_chunk_new((size_t)sb.st_size);
    size_t got = 0;
    while (got < (size_t)sb.st_size) {
        ssize_t r = read(fd, ch->data + got, (size_t)sb.st_size - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    http_respond_chunk(hc, 200, content_type(real), ch, 0, got, "Cache-Control: no-cache\r\n");
    rt_chunk_unref(ch);
    rt_buf_free(&path);
}
