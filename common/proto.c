/*
 * proto.c: blocking client helpers for the collector protocol.
 */
#include "proto.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int64_t proto_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Monotonic milliseconds, for deadlines. */
static int64_t proto_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int proto_connect(const char *path)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* Wait until fd is ready for events or the deadline passes. */
static int proto_wait(int fd, short events, int64_t deadline)
{
    for (;;) {
        int left = (int)(deadline - proto_mono_ms());
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

int proto_send(int fd, uint16_t type, uint64_t tag, const void *a, size_t alen,
               const void *b, size_t blen, int timeout_ms)
{
    if (alen + blen > PROTO_MAX_PAYLOAD)
        return -EMSGSIZE;
    struct proto_hdr h = {.len = (uint32_t)(alen + blen),
                          .type = type,
                          .tag = tag,
                          .sent_ms = proto_now_ms()};
    struct iovec iov[3] = {
        {&h, sizeof(h)}, {(void *)a, alen}, {(void *)b, blen}};
    int niov = 3, idx = 0;
    int64_t deadline = proto_mono_ms() + timeout_ms;
    while (idx < niov) {
        ssize_t n = sendmsg(
            fd,
            &(struct msghdr){.msg_iov = iov + idx, .msg_iovlen = niov - idx},
            MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                int rc = proto_wait(fd, POLLOUT, deadline);
                if (rc != 0)
                    return rc;
                continue;
            }
            return -errno;
        }
        while (idx < niov && (size_t)n >= iov[idx].iov_len) {
            n -= iov[idx].iov_len;
            idx++;
        }
        if (idx < niov) {
            iov[idx].iov_base = (char *)iov[idx].iov_base + n;
            iov[idx].iov_len -= n;
        }
    }
    return 0;
}

/* Read exactly len bytes before the deadline. */
static int proto_read_full(int fd, void *buf, size_t len, int64_t deadline)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = recv(fd, (char *)buf + got, len - got, MSG_DONTWAIT);
        if (n > 0) {
            got += n;
            continue;
        }
        if (n == 0)
            return -ECONNRESET;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        int rc = proto_wait(fd, POLLIN, deadline);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int proto_recv(int fd, struct proto_hdr *h, void **payload, int timeout_ms)
{
    int64_t deadline = proto_mono_ms() + timeout_ms;
    *payload = NULL;
    /* Wait first: the reply is rarely there yet, and a recv that fails
     * with EAGAIN would only cost a syscall. */
    int rc = proto_wait(fd, POLLIN, deadline);
    if (rc == 0)
        rc = proto_read_full(fd, h, sizeof(*h), deadline);
    if (rc != 0)
        return rc;
    if (h->len > PROTO_MAX_PAYLOAD)
        return -EPROTO;
    void *p = malloc(h->len + 1);
    if (p == NULL)
        return -ENOMEM;
    rc = proto_read_full(fd, p, h->len, deadline);
    if (rc != 0) {
        free(p);
        return rc;
    }
    ((char *)p)[h->len] = '\0';
    *payload = p;
    return 0;
}

int proto_command(const char *path, const char *cmd, int timeout_ms,
                  int *status, char **json)
{
    int fd = proto_connect(path);
    if (fd < 0)
        return fd;
    int rc =
        proto_send(fd, PROTO_CMD, 1, cmd, strlen(cmd), NULL, 0, timeout_ms);
    struct proto_hdr h;
    void *p = NULL;
    if (rc == 0)
        rc = proto_recv(fd, &h, &p, timeout_ms);
    close(fd);
    if (rc != 0)
        return rc;
    if (h.type != PROTO_CMD_REPLY || h.len < sizeof(struct proto_reply)) {
        free(p);
        return -EPROTO;
    }
    const struct proto_reply *r = p;
    *status = r->http_status;
    size_t n = h.len - sizeof(*r);
    char *out = malloc(n + 1);
    if (out == NULL) {
        free(p);
        return -ENOMEM;
    }
    memcpy(out, (char *)p + sizeof(*r), n);
    out[n] = '\0';
    free(p);
    *json = out;
    return 0;
}
