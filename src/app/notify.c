/* The service manager's notification protocol (sd_notify(3)), without
 * libsystemd: one datagram of "KEY=value" lines to $NOTIFY_SOCKET (a path,
 * or "@name" in the abstract namespace). Silent when there is no socket:
 * supervisor, a terminal, a test. And socket activation: a listening socket
 * passed as fd 3 with LISTEN_PID/LISTEN_FDS (sd_listen_fds(3)). */
#include "app.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

void app_notify(const char *msg)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || (path[0] != '/' && path[0] != '@')) return;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    if (n >= sizeof sa.sun_path) {
        rt_warn_rl("app", "NOTIFY_SOCKET is longer than a socket path can be (%zu bytes): not notifying", n);
        return;
    }
    memcpy(sa.sun_path, path, n);
    if (sa.sun_path[0] == '@') sa.sun_path[0] = 0;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0)
        rt_warn_rl("app", "cannot notify the service manager at %s: %s", path, strerror(errno));
    close(fd);
}

int app_activated_socket(bool *is_unix)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    if (!pid || !fds || strtol(pid, NULL, 10) != (long)getpid() || strtol(fds, NULL, 10) < 1) return -1;
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    int fd = 3; /* SD_LISTEN_FDS_START; a second socket, if any, is not ours to use */
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int type = 0, acc = 0;
    socklen_t tl = sizeof type, al = sizeof acc;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 ||
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) < 0 || type != SOCK_STREAM || !acc)
        return -2;
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    *is_unix = ss.ss_family == AF_UNIX;
    return fd;
}

uint64_t app_watchdog_ms(void)
{
    const char *us = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
    if (!us || !*us) return 0;
    if (pid && *pid && strtol(pid, NULL, 10) != (long)getpid()) return 0;
    unsigned long long v = strtoull(us, NULL, 10);
    return v / 1000;
}
