/* `realtimed setup-bench`: keeps a bench switched to realtimed.
 *
 * bench writes Procfile, config/supervisor.conf and the .service units in
 * config/systemd from its own templates (`bench setup procfile|supervisor|
 * systemd|production`, `bench init`, a bench upgrade in `bench update`),
 * which puts Frappe's realtime server back in place of realtimed, silently. This
 * rewrites the one command that starts that server in each file and leaves
 * every other byte alone; --check tells a deploy script or cron job whether
 * a file has been reverted. The spellings recognised are those of bench's
 * templates from v2 to v5.31 (docs/frappe.md, "Staying switched"):
 *
 *   Procfile     socketio: /usr/bin/node apps/frappe/socketio.js
 *                socketio: bench socketio                          (5.31+)
 *   supervisor   [program:<bench>-node-socketio]
 *                command=/usr/bin/node /b/apps/frappe/socketio.js
 *                command=/usr/local/bin/bench socketio             (5.31+)
 *   systemd      ExecStart=/usr/bin/node /b/apps/frappe/socketio.js
 *   by hand      <python> -m frappe.realtime.server | frappe.socketio_server
 *
 * Matching is on the command, never on a name: `redis-socketio` programs
 * and `redis_socketio:` lines of older benches stay as they are. */
#include "app_frappe.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#define SB_MAX_FILE (1u << 20) /* bench writes a few KiB; a bigger file is not one of its */
#define SB_MAX_UNITS 256       /* unit files looked at in config/systemd */
#define SB_BACKUP ".pre-realtimed"

typedef enum { FMT_PROCFILE, FMT_SUPERVISOR, FMT_SYSTEMD } sb_format_t;
typedef enum { SRV_NONE, SRV_REALTIMED, SRV_NODE, SRV_BENCH, SRV_PYTHON } sb_server_t;

static const char *const server_name[] = {
    [SRV_NONE] = "nothing",
    [SRV_REALTIMED] = "realtimed",
    [SRV_NODE] = "node apps/frappe/socketio.js",
    [SRV_BENCH] = "bench socketio",
    [SRV_PYTHON] = "Frappe's Python realtime server",
};

typedef struct {
    char root[PATH_MAX];   /* absolute bench root */
    char binary[PATH_MAX]; /* what the entries will start */
    bool dry_run, check;
    int changed;       /* files changed (or that would be, with --dry-run) */
    int stale;         /* files that still start Frappe's server (--check) */
    int rc;            /* first error exit code, 0 if none */
    bool reload_procfile, reload_supervisor;
    rt_buf_t units;    /* systemd units changed, space-separated */
} sb_t;

/* What one pass over a file found, and the file as it would be. */
typedef struct {
    rt_buf_t out;  /* the rewritten bytes */
    rt_buf_t diff; /* zero-context unified hunks, for --dry-run */
    int upstream;  /* entries that start Frappe's own server */
    int realtimed; /* entries that start realtimed (any path) */
    int rewritten; /* lines that differ in out */
    int first_line;
    sb_server_t first_kind;
} sb_edit_t;

/* ---- command lines ---- */

static bool next_token(const char **cur, const char *end, rt_slice_t *t)
{
    const char *p = *cur;
    while (p < end && (*p == ' ' || *p == '\t')) p++;
    if (p == end) return false;
    const char *s = p;
    while (p < end && *p != ' ' && *p != '\t') p++;
    *t = rt_slice(s, (size_t)(p - s));
    *cur = p;
    return true;
}

static rt_slice_t unquote(rt_slice_t t)
{
    if (t.n >= 2 && (t.p[0] == '"' || t.p[0] == '\'') && t.p[t.n - 1] == t.p[0]) return rt_slice(t.p + 1, t.n - 2);
    return t;
}

static rt_slice_t base_name(rt_slice_t t)
{
    for (size_t i = t.n; i > 0; i--)
        if (t.p[i - 1] == '/') return rt_slice(t.p + i, t.n - i);
    return t;
}

static bool ends_with(rt_slice_t t, const char *suffix)
{
    size_t n = strlen(suffix);
    return t.n >= n && !memcmp(t.p + t.n - n, suffix, n);
}

/* Shell and supervisor inline comments end the command. */
static bool is_comment(rt_slice_t t) { return t.p[0] == '#' || t.p[0] == ';'; }

/* NAME=value before the program (a Procfile line runs in a shell). */
static bool is_env_assignment(rt_slice_t t)
{
    if (!t.n || !(t.p[0] == '_' || ((t.p[0] | 0x20) >= 'a' && (t.p[0] | 0x20) <= 'z'))) return false;
    for (size_t i = 1; i < t.n; i++) {
        char c = t.p[i];
        if (c == '=') return true;
        if (!(c == '_' || (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'))) return false;
    }
    return false;
}

/* python, python3, python3.11 */
static bool is_python(rt_slice_t b)
{
    if (b.n < 6 || memcmp(b.p, "python", 6) != 0) return false;
    for (size_t i = 6; i < b.n; i++)
        if (!((b.p[i] >= '0' && b.p[i] <= '9') || b.p[i] == '.')) return false;
    return true;
}

/* Which server the command in [v, end) starts. For any server, *rs..*re is
 * the part a rewrite replaces: the program and the arguments that make it
 * Frappe's server (for realtimed, the program alone, so that its own flags
 * stay); what precedes (environment) and follows (redirections) is kept. */
static sb_server_t classify(const char *v, const char *end, const char **rs, const char **re)
{
    const char *cur = v;
    rt_slice_t t;
    do {
        if (!next_token(&cur, end, &t) || is_comment(t)) return SRV_NONE;
    } while (is_env_assignment(t));
    *rs = t.p;
    *re = t.p + t.n;
    rt_slice_t b = base_name(unquote(t));
    if (rt_slice_eq_cstr(b, "realtimed")) return SRV_REALTIMED;
    if (rt_slice_eq_cstr(b, "node") || rt_slice_eq_cstr(b, "nodejs")) {
        /* node [--flag ...] <...>apps/frappe/socketio.js */
        while (next_token(&cur, end, &t) && !is_comment(t)) {
            rt_slice_t u = unquote(t);
            if (ends_with(u, "frappe/socketio.js")) {
                *re = t.p + t.n;
                return SRV_NODE;
            }
            if (!u.n || u.p[0] != '-') break;
        }
        return SRV_NONE;
    }
    if (rt_slice_eq_cstr(b, "bench")) {
        if (next_token(&cur, end, &t) && rt_slice_eq_cstr(unquote(t), "socketio")) {
            *re = t.p + t.n;
            return SRV_BENCH;
        }
        return SRV_NONE;
    }
    if (is_python(b)) {
        while (next_token(&cur, end, &t) && !is_comment(t)) {
            rt_slice_t u = unquote(t);
            if (rt_slice_eq_cstr(u, "-m")) {
                if (!next_token(&cur, end, &t)) return SRV_NONE;
                u = unquote(t);
                if (!rt_slice_eq_cstr(u, "frappe.realtime.server") && !rt_slice_eq_cstr(u, "frappe.socketio_server"))
                    return SRV_NONE;
                *re = t.p + t.n;
                return SRV_PYTHON;
            }
            if (!u.n || u.p[0] != '-') break;
        }
    }
    return SRV_NONE;
}

/* Where the command starts on the line [l, le) of a file of format f, or
 * NULL if the line holds none. *section carries "inside a [program:...] /
 * [Service] section" from line to line. */
static const char *line_command(sb_format_t f, const char *l, const char *le, bool *section)
{
    const char *p = l;
    while (p < le && (*p == ' ' || *p == '\t')) p++;
    if (p == le || *p == '#' || *p == ';') return NULL;
    if (f == FMT_PROCFILE) { /* honcho: ^[A-Za-z0-9_-]+:\s*(.+)$ */
        const char *n = p;
        while (p < le && (*p == '_' || *p == '-' || (*p >= '0' && *p <= '9') || ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z')))
            p++;
        return p > n && p < le && *p == ':' ? p + 1 : NULL;
    }
    if (*p == '[') {
        rt_slice_t s = rt_slice(p, (size_t)(le - p));
        while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t')) s.n--;
        *section = f == FMT_SUPERVISOR ? s.n > 9 && !memcmp(s.p, "[program:", 9) : rt_slice_eq_cstr(s, "[Service]");
        return NULL;
    }
    if (!*section) return NULL;
    const char *k = p;
    while (p < le && *p != '=' && !(f == FMT_SUPERVISOR && *p == ':')) p++;
    if (p == le) return NULL;
    rt_slice_t key = rt_slice(k, (size_t)(p - k));
    while (key.n && (key.p[key.n - 1] == ' ' || key.p[key.n - 1] == '\t')) key.n--;
    p++;
    if (f == FMT_SUPERVISOR) return rt_slice_case_eq(key, "command") ? p : NULL; /* ConfigParser lowercases keys */
    if (!rt_slice_eq_cstr(key, "ExecStart")) return NULL;
    while (p < le && (*p == ' ' || *p == '\t')) p++;
    while (p < le && *p && strchr("-@:+!", *p)) p++; /* systemd's executable prefixes stay */
    return p;
}

/* One pass over in: fills e (e->out is the file with every entry of
 * Frappe's server, or of realtimed at another path, pointing at binary). */
static void edit_text(const char *binary, sb_format_t f, rt_slice_t in, sb_edit_t *e)
{
    const char *p = in.p, *end = in.p + in.n;
    size_t blen = strlen(binary);
    bool section = false;
    int lineno = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *next = nl ? nl + 1 : end, *le = nl ? nl : end;
        if (le > p && le[-1] == '\r') le--;
        lineno++;
        const char *v = line_command(f, p, le, &section), *rs = NULL, *re = NULL;
        sb_server_t k = v ? classify(v, le, &rs, &re) : SRV_NONE;
        if (k == SRV_REALTIMED) e->realtimed++;
        if (k != SRV_NONE && k != SRV_REALTIMED) {
            if (!e->upstream++) {
                e->first_line = lineno;
                e->first_kind = k;
            }
        }
        if (k == SRV_NONE || (k == SRV_REALTIMED && (size_t)(re - rs) == blen && !memcmp(rs, binary, blen))) {
            rt_buf_append(&e->out, p, (size_t)(next - p));
        } else {
            rt_buf_append(&e->out, p, (size_t)(rs - p));
            rt_buf_append(&e->out, binary, blen);
            rt_buf_append(&e->out, re, (size_t)(next - re));
            e->rewritten++;
            rt_buf_printf(&e->diff, "@@ -%d +%d @@\n-%.*s\n+%.*s%s%.*s\n", lineno, lineno, (int)(le - p), p,
                          (int)(rs - p), p, binary, (int)(le - re), re);
        }
        p = next;
    }
}

/* ---- files ---- */

static bool read_file(const char *path, const struct stat *st, rt_buf_t *b)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    rt_buf_reserve(b, (size_t)st->st_size + 1);
    for (;;) {
        if (b->len == b->cap) rt_buf_reserve(b, 4096);
        ssize_t n = read(fd, b->data + b->len, b->cap - b->len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;
        if (n == 0) {
            close(fd);
            return true;
        }
        b->len += (size_t)n;
        if (b->len > SB_MAX_FILE) {
            errno = EFBIG;
            break;
        }
    }
    int e = errno;
    close(fd);
    errno = e;
    return false;
}

static bool write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* The file's permissions and, when root can, its owner: `sudo realtimed
 * setup-bench` must not hand the bench user's files to root. */
static bool copy_attrs(int fd, const struct stat *st)
{
    if (fchmod(fd, st->st_mode & 07777) < 0) return false;
    if (geteuid() == 0 && (st->st_uid != 0 || st->st_gid != 0) && fchown(fd, st->st_uid, st->st_gid) < 0) return false;
    return true;
}

/* <path>.pre-realtimed with the original bytes, once: an existing backup is
 * the older one (bench's own file) and is kept. */
static bool write_backup(const char *path, const struct stat *st, rt_slice_t orig, bool *made)
{
    char bak[PATH_MAX];
    *made = false;
    if ((size_t)snprintf(bak, sizeof bak, "%s" SB_BACKUP, path) >= sizeof bak) {
        errno = ENAMETOOLONG;
        return false;
    }
    int fd = open(bak, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return errno == EEXIST;
    bool ok = write_all(fd, orig.p, orig.n) && copy_attrs(fd, st) && fsync(fd) == 0;
    int e = errno;
    close(fd);
    if (!ok) {
        unlink(bak);
        errno = e;
        return false;
    }
    *made = true;
    return true;
}

/* Replaces path with data: a temp file in the same folder, the original's
 * mode and owner, fsync, rename, fsync of the folder. A reader (supervisord
 * rereading, a crash half-way) sees the old file or the new one. */
static bool replace_file(const char *path, const struct stat *st, const rt_buf_t *data)
{
    char tmp[PATH_MAX];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.realtimed-XXXXXX", path) >= sizeof tmp) {
        errno = ENAMETOOLONG;
        return false;
    }
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) return false;
    bool ok = write_all(fd, data->data, data->len) && copy_attrs(fd, st) && fsync(fd) == 0;
    int e = errno;
    if (close(fd) < 0 && ok) {
        ok = false;
        e = errno;
    }
    if (ok && rename(tmp, path) < 0) {
        ok = false;
        e = errno;
    }
    if (!ok) {
        unlink(tmp);
        errno = e;
        return false;
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    int dfd = open(slash && dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return true;
}

/* Reports an error on one file (with errno's text unless err is 0) and
 * keeps the first exit code; the other files are still handled. */
static void fail(sb_t *sb, int code, const char *rel, const char *what, int err)
{
    fflush(stdout); /* the file lines and the errors in order, on a terminal or a log */
    if (err) fprintf(stderr, "realtimed setup-bench: %s: %s: %s\n", rel, what, strerror(err));
    else fprintf(stderr, "realtimed setup-bench: %s: %s\n", rel, what);
    if (!sb->rc) sb->rc = code;
}

/* One file, rel to the bench root. quiet: say nothing when it holds no
 * entry (the many worker units in config/systemd). Returns whether it has
 * an entry of either server. */
static bool do_file(sb_t *sb, const char *rel, sb_format_t f, bool quiet)
{
    char path[PATH_MAX], real[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", sb->root, rel) >= sizeof path) {
        errno = ENAMETOOLONG;
        fail(sb, EX_IOERR, rel, "cannot read", errno);
        return false;
    }
    struct stat st;
    if (stat(path, &st) < 0) {
        if (errno != ENOENT) fail(sb, EX_IOERR, rel, "cannot read", errno);
        else if (!quiet) printf("%s: not found\n", rel);
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        fail(sb, EX_IOERR, rel, "not a regular file", 0);
        return false;
    }
    /* A symlink is followed: the file it names is the one edited. */
    if (!realpath(path, real)) {
        fail(sb, EX_IOERR, rel, "cannot resolve", errno);
        return false;
    }
    if ((size_t)st.st_size > SB_MAX_FILE) {
        errno = EFBIG;
        fail(sb, EX_IOERR, rel, "not a file bench wrote", errno);
        return false;
    }
    rt_buf_t in = {0};
    sb_edit_t e = {0};
    bool found = false;
    if (!read_file(real, &st, &in)) {
        fail(sb, EX_IOERR, rel, "cannot read", errno);
        goto out;
    }
    edit_text(sb->binary, f, rt_slice(in.data, in.len), &e);
    found = e.upstream || e.realtimed;
    if (!found) {
        if (!quiet) printf("%s: no socketio entry\n", rel);
        goto out;
    }
    if (sb->check) {
        if (e.upstream) {
            printf("%s: starts %s (line %d)\n", rel, server_name[e.first_kind], e.first_line);
            sb->stale++;
        } else {
            printf("%s: already realtimed\n", rel);
        }
        goto out;
    }
    if (!e.rewritten) {
        printf("%s: already realtimed\n", rel);
        goto out;
    }
    if (sb->dry_run) {
        printf("%s: would change (%d line%s)\n--- a/%s\n+++ b/%s\n%.*s", rel, e.rewritten, e.rewritten == 1 ? "" : "s",
               rel, rel, (int)e.diff.len, e.diff.data);
        sb->changed++;
        goto out;
    }
    bool backed_up;
    if (!write_backup(real, &st, rt_slice(in.data, in.len), &backed_up)) {
        fail(sb, EX_CANTCREAT, rel, "cannot write the backup " SB_BACKUP " (file left unchanged)", errno);
        goto out;
    }
    if (!replace_file(real, &st, &e.out)) {
        fail(sb, EX_CANTCREAT, rel, "cannot write", errno);
        goto out;
    }
    /* the backup sits next to the file edited, which a symlink may put elsewhere */
    bool linked = strcmp(real, path) != 0;
    printf("%s: changed%s%s%s\n", rel, backed_up ? " (original kept as " : "", backed_up ? linked ? real : rel : "",
           backed_up ? SB_BACKUP ")" : "");
    sb->changed++;
    if (f == FMT_PROCFILE) sb->reload_procfile = true;
    if (f == FMT_SUPERVISOR) sb->reload_supervisor = true;
    if (f == FMT_SYSTEMD) {
        const char *unit = strrchr(rel, '/');
        rt_buf_printf(&sb->units, " %s", unit ? unit + 1 : rel);
    }
out:
    rt_buf_free(&in);
    rt_buf_free(&e.out);
    rt_buf_free(&e.diff);
    return found;
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The .service files in config/systemd, where `bench setup systemd` writes
 * its units; only those with an entry are reported one by one. */
static void do_systemd(sb_t *sb)
{
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/config/systemd", sb->root);
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) printf("config/systemd/: not found\n");
        else fail(sb, EX_IOERR, "config/systemd/", "cannot list", errno);
        return;
    }
    char *names[SB_MAX_UNITS];
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < SB_MAX_UNITS) {
        rt_slice_t s = rt_slice_cstr(de->d_name);
        if (s.p[0] != '.' && ends_with(s, ".service")) names[n++] = rt_strndup(s.p, s.n);
    }
    closedir(d);
    qsort(names, n, sizeof *names, name_cmp);
    int with_entry = 0;
    for (size_t i = 0; i < n; i++) {
        char rel[NAME_MAX + 32];
        snprintf(rel, sizeof rel, "config/systemd/%s", names[i]);
        with_entry += do_file(sb, rel, FMT_SYSTEMD, true);
        rt_free(names[i]);
    }
    if (!n) printf("config/systemd/*.service: not found\n");
    else if (!with_entry) printf("config/systemd/*.service: no socketio entry (%zu unit%s)\n", n, n == 1 ? "" : "s");
}

/* ---- the binary ---- */

/* Characters these three formats take unquoted and unexpanded (no space,
 * quote, `%` for supervisor, `$` for systemd and the shell, `;` or `#`). */
static bool plain_path(const char *s)
{
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || ((*s | 0x20) >= 'a' && (*s | 0x20) <= 'z') || strchr("/._-+@,~=", *s)))
            return false;
    return true;
}

/* sb->binary: --binary (a bare name is looked up in PATH; a relative path
 * is made absolute, keeping its last component, so that a symlink such as
 * /usr/local/bin/realtimed stays the name written) or this executable. */
static int pick_binary(sb_t *sb, const char *want)
{
    char buf[PATH_MAX];
    if (!want) {
        ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
        if (n <= 0) {
            fprintf(stderr, "realtimed setup-bench: cannot find this executable (/proc/self/exe): %s; pass --binary\n",
                    strerror(errno));
            return EX_OSERR;
        }
        buf[n] = '\0';
        want = buf;
    } else if (!strchr(want, '/')) {
        const char *path = getenv("PATH");
        bool found = false;
        for (const char *p = path ? path : ""; *p && !found;) {
            const char *c = strchr(p, ':');
            size_t l = c ? (size_t)(c - p) : strlen(p);
            if (l && (size_t)snprintf(buf, sizeof buf, "%.*s/%s", (int)l, p, want) < sizeof buf && access(buf, X_OK) == 0)
                found = true;
            p += l + (c != NULL);
        }
        if (!found) {
            fprintf(stderr, "realtimed setup-bench: --binary %s: not found in PATH\n", want);
            return EX_USAGE;
        }
        want = buf;
    }
    if (want[0] == '/') {
        snprintf(sb->binary, sizeof sb->binary, "%s", want);
    } else {
        char dir[PATH_MAX], real[PATH_MAX];
        snprintf(dir, sizeof dir, "%s", want);
        char *slash = strrchr(dir, '/'); /* want has one: bare names were resolved above */
        *slash = '\0';
        if (!realpath(dir[0] ? dir : "/", real) ||
            (size_t)snprintf(sb->binary, sizeof sb->binary, "%s/%s", real, slash + 1) >= sizeof sb->binary) {
            fprintf(stderr, "realtimed setup-bench: --binary %s: %s\n", want, strerror(errno ? errno : ENAMETOOLONG));
            return EX_USAGE;
        }
    }
    struct stat st;
    if (stat(sb->binary, &st) < 0 || !S_ISREG(st.st_mode) || access(sb->binary, X_OK) < 0) {
        fprintf(stderr, "realtimed setup-bench: %s is not an executable file\n", sb->binary);
        return EX_USAGE;
    }
    if (!plain_path(sb->binary)) {
        fprintf(stderr,
                "realtimed setup-bench: %s: a path with spaces, quotes or characters such as %% $ ; # cannot go "
                "unquoted into a Procfile, supervisor.conf and a systemd unit; install realtimed elsewhere "
                "(make install PREFIX=/usr/local) or pass --binary\n",
                sb->binary);
        return EX_USAGE;
    }
    return 0;
}

/* ---- command ---- */

static void usage(FILE *out)
{
    fputs("usage: realtimed setup-bench [--bench DIR] [--binary PATH] [--dry-run] [--check]\n"
          "\n"
          "Points the socketio entry of the files bench generates at realtimed:\n"
          "  Procfile                   socketio: BINARY\n"
          "  config/supervisor.conf     command=BINARY (in the program that ran the server)\n"
          "  config/systemd/*.service   ExecStart=BINARY\n"
          "It replaces `node apps/frappe/socketio.js`, `bench socketio` (bench 5.31+) and\n"
          "`python -m frappe.realtime.server`, nothing else: program and unit names, logs,\n"
          "user, directory and priority stay byte for byte. The first change of a file\n"
          "keeps the original as FILE" SB_BACKUP ". A second run changes nothing.\n"
          "\n"
          "bench rewrites these files from its templates on `bench setup procfile`,\n"
          "`bench setup supervisor`, `bench setup systemd`, `bench setup production`,\n"
          "`bench init` and a bench upgrade in `bench update`, and has no hook to keep\n"
          "the change: run this again after each (a deploy script: right after them,\n"
          "before `supervisorctl reread && supervisorctl update`). From cron or CI,\n"
          "`realtimed setup-bench --check` exits 1 while a file still starts Frappe's\n"
          "own server. Settings belong in sites/common_site_config.json or FRAPPE_*\n"
          "variables rather than flags on these lines, which bench does not keep.\n"
          "\n"
          "  --bench DIR     the bench root (default: FRAPPE_BENCH_ROOT, else the working directory)\n"
          "  --binary PATH   the realtimed to start (default: this executable)\n"
          "  --dry-run       print the lines that would change, as a diff; write nothing\n"
          "  --check         write nothing; exit 1 if a file still starts Frappe's server\n"
          "\n"
          "Exit codes: 0 ok, 1 --check found Frappe's server, 64 bad command line,\n"
          "73 cannot write a file, 74 cannot read one, 78 not a bench.\n",
          out);
}

int app_setup_bench_main(int argc, char **argv)
{
    static sb_t sb; /* PATH_MAX buffers: off the stack */
    memset(&sb, 0, sizeof sb);
    const char *bench = NULL, *binary = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *eq = strchr(a, '=');
        size_t n = eq ? (size_t)(eq - a) : strlen(a);
        const char **dst = n == 7 && !strncmp(a, "--bench", n) ? &bench : n == 8 && !strncmp(a, "--binary", n) ? &binary : NULL;
        if (dst) {
            if (eq) *dst = eq + 1;
            else if (++i < argc) *dst = argv[i];
            else {
                fprintf(stderr, "realtimed setup-bench: option '%s' needs a value\n", a);
                return EX_USAGE;
            }
        } else if (!strcmp(a, "--dry-run")) {
            sb.dry_run = true;
        } else if (!strcmp(a, "--check")) {
            sb.check = true;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "realtimed setup-bench: unknown argument '%s'\n", a);
            usage(stderr);
            return EX_USAGE;
        }
    }
    if (!bench) bench = getenv("FRAPPE_BENCH_ROOT");
    if (!bench || !*bench) bench = ".";
    struct stat st;
    if (stat(bench, &st) != 0 || !S_ISDIR(st.st_mode) || !realpath(bench, sb.root)) {
        fprintf(stderr, "realtimed setup-bench: bench directory %s does not exist\n", bench);
        return EX_CONFIG;
    }
    char sites[PATH_MAX + 8];
    snprintf(sites, sizeof sites, "%s/sites", sb.root);
    if (stat(sites, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "realtimed setup-bench: %s is not a Frappe bench (no sites/ folder): run it in the bench "
                        "root or pass --bench DIR\n",
                sb.root);
        return EX_CONFIG;
    }
    int rc = pick_binary(&sb, binary);
    if (rc) return rc;

    printf("bench %s, realtimed %s%s\n", sb.root, sb.binary,
           sb.check ? " (check only)" : sb.dry_run ? " (dry run: nothing is written)" : "");
    do_file(&sb, "Procfile", FMT_PROCFILE, false);
    do_file(&sb, "config/supervisor.conf", FMT_SUPERVISOR, false);
    do_systemd(&sb);

    if (sb.check) {
        fflush(stdout);
        if (sb.stale && !sb.rc)
            fprintf(stderr, "realtimed setup-bench: %d file%s start%s Frappe's own realtime server (bench "
                            "regenerated %s?): run `realtimed setup-bench`\n",
                    sb.stale, sb.stale == 1 ? "" : "s", sb.stale == 1 ? "s" : "", sb.stale == 1 ? "it" : "them");
        rt_buf_free(&sb.units);
        return sb.rc ? sb.rc : sb.stale ? 1 : 0;
    }
    if (!sb.changed && !sb.rc) printf("nothing to change\n");
    if (sb.changed && !sb.dry_run) {
        printf("now restart what runs it:\n");
        if (sb.reload_procfile) printf("  bench start: stop it and start it again\n");
        if (sb.reload_supervisor) printf("  supervisor: sudo supervisorctl reread && sudo supervisorctl update\n");
        if (sb.units.len)
            printf("  systemd: sudo systemctl daemon-reload && sudo systemctl restart%.*s\n", (int)sb.units.len,
                   sb.units.data);
    }
    printf("bench rewrites these files on `bench setup procfile|supervisor|systemd|production` (and bench init,\n"
           "a bench upgrade in bench update) with no hook to keep this: run `realtimed setup-bench` after each;\n"
           "`realtimed setup-bench --check` exits 1 while a file starts Frappe's server (deploy script, cron).\n");
    rt_buf_free(&sb.units);
    return sb.rc;
}
