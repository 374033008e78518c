/*
 * check_proto.c: unit tests for the collector wire protocol
 * (common/proto.h): framing over socketpairs, timeouts, EOF, malformed
 * headers, and proto_command against a tiny in-test server on a UNIX
 * socket in a temporary directory.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"

/* Monotonic milliseconds, to time timeouts. */
static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A connected pair of UNIX stream sockets. */
static void pair(int sv[2])
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

/* Write all of buf to fd (test helper, blocking). */
static void write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        ck_assert_msg(n > 0, "write: %s", strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

/* A two-part payload arrives as one frame with its type, tag and time. */
START_TEST(test_round_trip_two_parts)
{
    int sv[2];
    pair(sv);
    int64_t before = proto_now_ms();
    ck_assert_int_eq(
        proto_send(sv[0], PROTO_CMD, 42, "abc", 3, "defg", 4, 1000), 0);
    int64_t after = proto_now_ms();
    struct proto_hdr h;
    void *p = NULL;
    ck_assert_int_eq(proto_recv(sv[1], &h, &p, 1000), 0);
    ck_assert_uint_eq(h.len, 7);
    ck_assert_uint_eq(h.type, PROTO_CMD);
    ck_assert_uint_eq(h.flags, 0);
    ck_assert_uint_eq(h.tag, 42);
    ck_assert_int_ge(h.sent_ms, before);
    ck_assert_int_le(h.sent_ms, after);
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(p, "abcdefg"); /* NUL-terminated past len */
    free(p);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* Either part, or both, may be empty. */
START_TEST(test_round_trip_empty_parts)
{
    int sv[2];
    pair(sv);
    struct proto_hdr h;
    void *p = NULL;
    ck_assert_int_eq(proto_send(sv[0], PROTO_ACK, 1, NULL, 0, NULL, 0, 1000),
                     0);
    ck_assert_int_eq(proto_send(sv[0], PROTO_ACK, 2, NULL, 0, "tail", 4, 1000),
                     0);
    ck_assert_int_eq(proto_send(sv[0], PROTO_ACK, 3, "head", 4, NULL, 0, 1000),
                     0);
    ck_assert_int_eq(proto_recv(sv[1], &h, &p, 1000), 0);
    ck_assert_uint_eq(h.len, 0);
    ck_assert_uint_eq(h.tag, 1);
    free(p);
    ck_assert_int_eq(proto_recv(sv[1], &h, &p, 1000), 0);
    ck_assert_uint_eq(h.tag, 2);
    ck_assert_str_eq(p, "tail");
    free(p);
    ck_assert_int_eq(proto_recv(sv[1], &h, &p, 1000), 0);
    ck_assert_uint_eq(h.tag, 3);
    ck_assert_str_eq(p, "head");
    free(p);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* Many frames sent back to back come out in order with their own tags. */
START_TEST(test_tags_in_order)
{
    int sv[2];
    pair(sv);
    for (uint64_t t = 1; t <= 50; t++) {
        char body[32];
        int n =
            snprintf(body, sizeof(body), "frame %llu", (unsigned long long)t);
        ck_assert_int_eq(proto_send(sv[0], PROTO_INGEST, t * 0x100000001ull,
                                    body, (size_t)n, NULL, 0, 1000),
                         0);
    }
    for (uint64_t t = 1; t <= 50; t++) {
        struct proto_hdr h;
        void *p = NULL;
        char want[32];
        snprintf(want, sizeof(want), "frame %llu", (unsigned long long)t);
        ck_assert_int_eq(proto_recv(sv[1], &h, &p, 1000), 0);
        ck_assert_uint_eq(h.tag, t * 0x100000001ull);
        ck_assert_uint_eq(h.type, PROTO_INGEST);
        ck_assert_str_eq(p, want);
        free(p);
    }
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* What the sender thread of the big-payload test sends. */
struct big_send {
    int fd;
    const unsigned char *a, *b;
    size_t alen, blen;
    int rc;
};

/* Send one big two-part frame (a thread). */
static void *big_sender(void *arg)
{
    struct big_send *bs = arg;
    bs->rc = proto_send(bs->fd, PROTO_INGEST, 7, bs->a, bs->alen, bs->b,
                        bs->blen, 10000);
    return NULL;
}

/* A 4 MiB payload (far more than a socket buffer) arrives intact. */
START_TEST(test_round_trip_4mib)
{
    size_t alen = 3u << 20, blen = (1u << 20) + 12345;
    unsigned char *a = malloc(alen), *b = malloc(blen);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    for (size_t i = 0; i < alen; i++)
        a[i] = (unsigned char)(i * 31 + 7);
    for (size_t i = 0; i < blen; i++)
        b[i] = (unsigned char)(i * 17 + 3);
    int sv[2];
    pair(sv);
    struct big_send bs = {sv[0], a, b, alen, blen, -1};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, big_sender, &bs), 0);
    struct proto_hdr h;
    void *p = NULL;
    int rc = proto_recv(sv[1], &h, &p, 10000);
    pthread_join(th, NULL);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(bs.rc, 0);
    ck_assert_uint_eq(h.len, alen + blen);
    ck_assert_uint_eq(h.tag, 7);
    ck_assert_int_eq(memcmp(p, a, alen), 0);
    ck_assert_int_eq(memcmp((char *)p + alen, b, blen), 0);
    free(p);
    free(a);
    free(b);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* The rest of a split header, sent late (a thread). */
static void *late_writer(void *arg)
{
    const int *fd = arg;
    struct proto_hdr out = {.len = 5, .type = PROTO_ACK, .tag = 9};
    usleep(100 * 1000);
    if (write(*fd, (char *)&out + 10, sizeof(out) - 10) !=
            (ssize_t)(sizeof(out) - 10) ||
        write(*fd, "hello", 5) != 5)
        return (void *)1;
    return NULL;
}

/* A header that arrives in two pieces is reassembled. */
START_TEST(test_split_header)
{
    int sv[2];
    pair(sv);
    struct proto_hdr out = {.len = 5, .type = PROTO_ACK, .tag = 9};
    write_all(sv[0], &out, 10);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, late_writer, &sv[0]), 0);
    struct proto_hdr h;
    void *p = NULL;
    int rc = proto_recv(sv[1], &h, &p, 3000);
    void *wrc = NULL;
    pthread_join(th, &wrc);
    ck_assert_ptr_null(wrc);
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(h.tag, 9);
    ck_assert_str_eq(p, "hello");
    free(p);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* Nothing arriving: -ETIMEDOUT after about the timeout. */
START_TEST(test_recv_timeout)
{
    int sv[2];
    pair(sv);
    struct proto_hdr h;
    void *p = (void *)1;
    int64_t t0 = mono_ms();
    ck_assert_int_eq(proto_recv(sv[1], &h, &p, 200), -ETIMEDOUT);
    int64_t took = mono_ms() - t0;
    ck_assert_int_ge(took, 190);
    ck_assert_int_lt(took, 2000);
    ck_assert_ptr_null(p);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* A header but only part of the payload, then silence: -ETIMEDOUT and no
 * payload. */
START_TEST(test_recv_timeout_mid_payload)
{
    int sv[2];
    pair(sv);
    struct proto_hdr out = {.len = 100, .type = PROTO_ACK, .tag = 1};
    write_all(sv[0], &out, sizeof(out));
    write_all(sv[0], "0123456789", 10);
    struct proto_hdr h;
    void *p = (void *)1;
    ck_assert_int_eq(proto_recv(sv[1], &h, &p, 200), -ETIMEDOUT);
    ck_assert_ptr_null(p);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* The peer closing: -ECONNRESET, before a header or inside a payload. */
START_TEST(test_recv_eof)
{
    int sv[2];
    pair(sv);
    close(sv[0]);
    struct proto_hdr h;
    void *p = (void *)1;
    ck_assert_int_eq(proto_recv(sv[1], &h, &p, 1000), -ECONNRESET);
    ck_assert_ptr_null(p);
    close(sv[1]);

    pair(sv);
    struct proto_hdr out = {.len = 100, .type = PROTO_ACK, .tag = 1};
    write_all(sv[0], &out, sizeof(out));
    write_all(sv[0], "short", 5);
    close(sv[0]);
    p = (void *)1;
    ck_assert_int_eq(proto_recv(sv[1], &h, &p, 1000), -ECONNRESET);
    ck_assert_ptr_null(p);
    close(sv[1]);

    pair(sv);
    write_all(sv[0], &out, 7); /* half a header */
    close(sv[0]);
    ck_assert_int_eq(proto_recv(sv[1], &h, &p, 1000), -ECONNRESET);
    close(sv[1]);
}
END_TEST

/* A header announcing more than PROTO_MAX_PAYLOAD: -EPROTO, at once. */
START_TEST(test_recv_oversized)
{
    int sv[2];
    pair(sv);
    struct proto_hdr out = {.len = PROTO_MAX_PAYLOAD + 1, .type = PROTO_CMD};
    write_all(sv[0], &out, sizeof(out));
    struct proto_hdr h;
    void *p = (void *)1;
    ck_assert_int_eq(proto_recv(sv[1], &h, &p, 1000), -EPROTO);
    ck_assert_ptr_null(p);
    out.len = UINT32_MAX;
    write_all(sv[0], &out, sizeof(out));
    ck_assert_int_eq(proto_recv(sv[1], &h, &p, 1000), -EPROTO);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* Sending more than PROTO_MAX_PAYLOAD is refused before writing. */
START_TEST(test_send_too_big)
{
    int sv[2];
    pair(sv);
    static const char one = 'x';
    ck_assert_int_eq(
        proto_send(sv[0], PROTO_CMD, 1, &one, PROTO_MAX_PAYLOAD, &one, 1, 100),
        -EMSGSIZE);
    struct proto_hdr h;
    void *p = NULL;
    ck_assert_int_eq(proto_recv(sv[1], &h, &p, 50), -ETIMEDOUT);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* A peer that never reads: the send gives up with -ETIMEDOUT. */
START_TEST(test_send_timeout)
{
    int sv[2];
    pair(sv);
    size_t len = 8u << 20;
    char *big = calloc(1, len);
    ck_assert_ptr_nonnull(big);
    int64_t t0 = mono_ms();
    ck_assert_int_eq(proto_send(sv[0], PROTO_INGEST, 1, big, len, NULL, 0, 200),
                     -ETIMEDOUT);
    ck_assert_int_lt(mono_ms() - t0, 2000);
    free(big);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* Sending to a closed peer fails with -EPIPE and raises no SIGPIPE. */
START_TEST(test_send_closed_peer)
{
    int sv[2];
    pair(sv);
    close(sv[1]);
    ck_assert_int_eq(proto_send(sv[0], PROTO_CMD, 1, "x", 1, NULL, 0, 100),
                     -EPIPE);
    close(sv[0]);
}
END_TEST

/* proto_connect reports a missing socket and a path too long. */
START_TEST(test_connect_errors)
{
    ck_assert_int_eq(proto_connect("/nonexistent-tokentap-dir/x.sock"),
                     -ENOENT);
    char path[200];
    memset(path, 'a', sizeof(path));
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    ck_assert_int_eq(proto_connect(path), -ENAMETOOLONG);
}
END_TEST

/* How the in-test collector answers one command. */
enum srv_mode {
    SRV_REPLY,      /* PROTO_CMD_REPLY with status 201 and a JSON text */
    SRV_WRONG_TYPE, /* a PROTO_ACK instead */
    SRV_SHORT,      /* a reply shorter than struct proto_reply */
    SRV_CLOSE,      /* close without answering */
    SRV_SILENT,     /* never answer (until the client gives up) */
};

/* The in-test server: a listening socket and what it saw. */
struct srv {
    char dir[80];
    char path[108]; /* fits sun_path */
    int lfd;
    enum srv_mode mode;
    struct proto_hdr got;
    char cmd[256];
    int rc;
};

/* Accept one connection and answer one command per s->mode (a thread). */
static void *srv_main(void *arg)
{
    struct srv *s = arg;
    int fd = accept(s->lfd, NULL, NULL);
    if (fd < 0) {
        s->rc = -errno;
        return NULL;
    }
    void *p = NULL;
    s->rc = proto_recv(fd, &s->got, &p, 5000);
    if (s->rc == 0)
        snprintf(s->cmd, sizeof(s->cmd), "%s", (char *)p);
    free(p);
    static const char json[] = "{\"ok\":true}";
    struct proto_reply r = {.http_status = 201};
    switch (s->mode) {
    case SRV_REPLY:
        proto_send(fd, PROTO_CMD_REPLY, s->got.tag, &r, sizeof(r), json,
                   strlen(json), 1000);
        break;
    case SRV_WRONG_TYPE:
        proto_send(fd, PROTO_ACK, s->got.tag, &r, sizeof(r), json, strlen(json),
                   1000);
        break;
    case SRV_SHORT:
        proto_send(fd, PROTO_CMD_REPLY, s->got.tag, &r, 2, NULL, 0, 1000);
        break;
    case SRV_CLOSE:
        break;
    case SRV_SILENT: {
        char b;
        /* Wait for the client to hang up. */
        while (read(fd, &b, 1) > 0)
            ;
        break;
    }
    }
    close(fd);
    return NULL;
}

/* Start the server in a fresh temporary directory. */
static void srv_start(struct srv *s, enum srv_mode mode, pthread_t *th)
{
    memset(s, 0, sizeof(*s));
    s->mode = mode;
    const char *base = getenv("TMPDIR");
    snprintf(s->dir, sizeof(s->dir), "%s/tt-proto-XXXXXX",
             base && base[0] ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(s->dir));
    snprintf(s->path, sizeof(s->path), "%s/collector.sock", s->dir);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s->path);
    s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(s->lfd, 0);
    ck_assert_int_eq(bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(s->lfd, 4), 0);
    ck_assert_int_eq(pthread_create(th, NULL, srv_main, s), 0);
}

/* Stop the server and remove its directory. */
static void srv_stop(struct srv *s, pthread_t th)
{
    pthread_join(th, NULL);
    close(s->lfd);
    unlink(s->path);
    rmdir(s->dir);
}

/* proto_command sends PROTO_CMD and returns the reply's status and JSON. */
START_TEST(test_command_reply)
{
    struct srv s;
    pthread_t th;
    srv_start(&s, SRV_REPLY, &th);
    int status = 0;
    char *json = NULL;
    int rc = proto_command(s.path, "{\"cmd\":\"ping\"}", 2000, &status, &json);
    srv_stop(&s, th);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(s.rc, 0);
    ck_assert_uint_eq(s.got.type, PROTO_CMD);
    ck_assert_str_eq(s.cmd, "{\"cmd\":\"ping\"}");
    ck_assert_int_eq(status, 201);
    ck_assert_ptr_nonnull(json);
    ck_assert_str_eq(json, "{\"ok\":true}");
    free(json);
}
END_TEST

/* A reply of the wrong type is -EPROTO. */
START_TEST(test_command_wrong_type)
{
    struct srv s;
    pthread_t th;
    srv_start(&s, SRV_WRONG_TYPE, &th);
    int status = 0;
    char *json = NULL;
    int rc = proto_command(s.path, "{}", 2000, &status, &json);
    srv_stop(&s, th);
    ck_assert_int_eq(rc, -EPROTO);
    ck_assert_ptr_null(json);
}
END_TEST

/* A reply too short to hold struct proto_reply is -EPROTO. */
START_TEST(test_command_short_reply)
{
    struct srv s;
    pthread_t th;
    srv_start(&s, SRV_SHORT, &th);
    int status = 0;
    char *json = NULL;
    int rc = proto_command(s.path, "{}", 2000, &status, &json);
    srv_stop(&s, th);
    ck_assert_int_eq(rc, -EPROTO);
    ck_assert_ptr_null(json);
}
END_TEST

/* A server that hangs up without answering is -ECONNRESET. */
START_TEST(test_command_hangup)
{
    struct srv s;
    pthread_t th;
    srv_start(&s, SRV_CLOSE, &th);
    int status = 0;
    char *json = NULL;
    int rc = proto_command(s.path, "{}", 2000, &status, &json);
    srv_stop(&s, th);
    ck_assert_int_eq(rc, -ECONNRESET);
}
END_TEST

/* A server that never answers is -ETIMEDOUT after the timeout. */
START_TEST(test_command_timeout)
{
    struct srv s;
    pthread_t th;
    srv_start(&s, SRV_SILENT, &th);
    int status = 0;
    char *json = NULL;
    int64_t t0 = mono_ms();
    int rc = proto_command(s.path, "{}", 200, &status, &json);
    int64_t took = mono_ms() - t0;
    srv_stop(&s, th);
    ck_assert_int_eq(rc, -ETIMEDOUT);
    ck_assert_int_lt(took, 2000);
}
END_TEST

/* No socket at the path: the connect error comes back. */
START_TEST(test_command_no_server)
{
    int status = 0;
    char *json = NULL;
    ck_assert_int_eq(proto_command("/nonexistent-tokentap-dir/c.sock", "{}",
                                   200, &status, &json),
                     -ENOENT);
}
END_TEST

/* Build the suite. */
static Suite *proto_suite(void)
{
    Suite *s = suite_create("proto");
    TCase *tc = tcase_create("frames");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_round_trip_two_parts);
    tcase_add_test(tc, test_round_trip_empty_parts);
    tcase_add_test(tc, test_tags_in_order);
    tcase_add_test(tc, test_round_trip_4mib);
    tcase_add_test(tc, test_split_header);
    tcase_add_test(tc, test_recv_timeout);
    tcase_add_test(tc, test_recv_timeout_mid_payload);
    tcase_add_test(tc, test_recv_eof);
    tcase_add_test(tc, test_recv_oversized);
    tcase_add_test(tc, test_send_too_big);
    tcase_add_test(tc, test_send_timeout);
    tcase_add_test(tc, test_send_closed_peer);
    tcase_add_test(tc, test_connect_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("command");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_command_reply);
    tcase_add_test(tc, test_command_wrong_type);
    tcase_add_test(tc, test_command_short_reply);
    tcase_add_test(tc, test_command_hangup);
    tcase_add_test(tc, test_command_timeout);
    tcase_add_test(tc, test_command_no_server);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(proto_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
