/*
 * token.c: signed, expiring tokens (HMAC-SHA256), the Cookie header, and
 * the session secret's file.  See token.h for the token's shape and who
 * uses it.
 */
#include "token.h"

#include "keys.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The hex HMAC-SHA256 of msg (n bytes) under secret into out
 * (TOK_MAC_HEX + 1 bytes). */
static int tok_mac(const unsigned char *secret, size_t slen, const char *msg,
                   size_t n, char *out)
{
    return key_hmac_hex(secret, slen, msg, n, out);
}

int tok_make(const unsigned char *secret, size_t slen, const char *subject,
             long long exp, char *out, size_t n)
{
    if (subject[0] == '\0' || strchr(subject, '.') != NULL || exp < 0)
        return -1;
    int m = snprintf(out, n, "%s.%lld.", subject, exp);
    if (m < 0 || (size_t)m + TOK_MAC_HEX >= n)
        return -1;
    /* The MAC covers "<subject>.<exp>", without the dot after it. */
    return tok_mac(secret, slen, out, (size_t)m - 1, out + m);
}

int tok_check(const unsigned char *secret, size_t slen, const char *t,
              size_t len, long long now, char *subj, size_t n, long long *exp)
{
    const char *end = t + len;
    const char *d1 = memchr(t, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', (size_t)(end - d1 - 1)) : NULL;
    if (d1 == NULL || d2 == NULL || d1 == t || (size_t)(d1 - t) >= n)
        return -1;
    /* The expiry: 1 to 18 digits, no leading zero (one spelling per
     * value), so it cannot overflow. */
    size_t el = (size_t)(d2 - d1 - 1);
    if (el == 0 || el > 18 || (d1[1] == '0' && el > 1))
        return -1;
    long long e = 0;
    for (const char *p = d1 + 1; p < d2; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        e = e * 10 + (*p - '0');
    }
    const char *mac = d2 + 1;
    char want[TOK_MAC_HEX + 1];
    if ((size_t)(end - mac) != TOK_MAC_HEX || e < now ||
        tok_mac(secret, slen, t, (size_t)(d2 - t), want) != 0 ||
        CRYPTO_memcmp(want, mac, TOK_MAC_HEX) != 0)
        return -1;
    memcpy(subj, t, (size_t)(d1 - t));
    subj[d1 - t] = '\0';
    *exp = e;
    return 0;
}

const char *tok_cookie_next(const char **p, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    const char *s = *p;
    while (*s != '\0') {
        while (*s == ' ' || *s == '\t' || *s == ';')
            s++;
        const char *next = s + strcspn(s, ";");
        if ((size_t)(next - s) > nl && memcmp(s, name, nl) == 0 &&
            s[nl] == '=') {
            const char *v = s + nl + 1, *ve = next;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            if (ve - v >= 2 && v[0] == '"' && ve[-1] == '"') {
                v++;
                ve--;
            }
            *p = next;
            *len = (size_t)(ve - v);
            return v;
        }
        s = next;
    }
    *p = s;
    return NULL;
}

/* Read exactly TOK_SECRET_LEN bytes of the open secret file fd (closed
 * here). */
static int tok_secret_read(int fd, const char *path, unsigned char *secret,
                           char *err, size_t errlen)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode) || st.st_size != TOK_SECRET_LEN) {
        snprintf(err, errlen,
                 "%s: expected a file of %d bytes, found %lld bytes (delete "
                 "it to make a new secret: every browser session ends)",
                 path, TOK_SECRET_LEN, (long long)st.st_size);
        close(fd);
        return -1;
    }
    size_t got = 0;
    while (got < TOK_SECRET_LEN) {
        ssize_t k = read(fd, secret + got, TOK_SECRET_LEN - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            snprintf(err, errlen, "%s: %s", path,
                     k < 0 ? strerror(errno) : "file shrank while read");
            close(fd);
            return -1;
        }
        got += (size_t)k;
    }
    close(fd);
    return 0;
}

/* Make a new secret file at path: 0 when made (secret filled), 1 when
 * another process made it first, -1 on an error (in err). */
static int tok_secret_make(const char *path, unsigned char *secret, char *err,
                           size_t errlen)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path,
                         (long)getpid()) >= sizeof(tmp)) {
        snprintf(err, errlen, "%s: path too long", path);
        return -1;
    }
    /* A leftover of a process that died here had this pid: it is ours. */
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    const char *why = NULL;
    size_t put = 0;
    if (RAND_bytes(secret, TOK_SECRET_LEN) != 1)
        why = "the random source failed";
    while (why == NULL && put < TOK_SECRET_LEN) {
        ssize_t k = write(fd, secret + put, TOK_SECRET_LEN - put);
        if (k < 0 && errno != EINTR)
            why = strerror(errno);
        else if (k > 0)
            put += (size_t)k;
    }
    /* On disk before it has its name: a crash never leaves an empty
     * secret behind. */
    if (why == NULL && fsync(fd) != 0)
        why = strerror(errno);
    close(fd);
    int rc = 0;
    if (why == NULL && link(tmp, path) != 0) {
        if (errno == EEXIST)
            rc = 1;
        else
            why = strerror(errno);
    }
    unlink(tmp);
    if (why != NULL) {
        snprintf(err, errlen, "%s: %s", path, why);
        return -1;
    }
    if (rc == 0) {
        /* The new name on disk too. */
        char dir[4096];
        snprintf(dir, sizeof(dir), "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash != NULL) {
            *(slash == dir ? slash + 1 : slash) = '\0';
            int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd >= 0) {
                fsync(dfd);
                close(dfd);
            }
        }
    }
    return rc;
}

int tok_secret_load(const char *path, unsigned char *secret, char *err,
                    size_t errlen)
{
    /* Three rounds: the file may vanish between a lost race and the read
     * (someone deleting it by hand); more than that is not a race. */
    for (int round = 0; round < 3; round++) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0)
            return tok_secret_read(fd, path, secret, err, errlen);
        if (errno != ENOENT) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            return -1;
        }
        int rc = tok_secret_make(path, secret, err, errlen);
        if (rc <= 0)
            return rc;
        /* Lost the race: read the winner's (it is complete: linked after
         * it was written). */
    }
    snprintf(err, errlen, "%s: made by another process but then gone", path);
    return -1;
}
