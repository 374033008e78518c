/*
 * keys.c: API key generation and hashing with OpenSSL's libcrypto.
 */
#include "keys.h"

#include <limits.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <string.h>

static const char key_hex[] = "0123456789abcdef";

/* n bytes as 2n hex digits and a NUL. */
static void key_hexify(const unsigned char *b, size_t n, char *hex)
{
    for (size_t i = 0; i < n; i++) {
        hex[2 * i] = key_hex[b[i] >> 4];
        hex[2 * i + 1] = key_hex[b[i] & 15];
    }
    hex[2 * n] = '\0';
}

int key_generate(char *out)
{
    unsigned char raw[20];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -1;
    memcpy(out, "tt_", 3);
    key_hexify(raw, sizeof(raw), out + 3);
    return 0;
}

int key_hmac_hex(const void *secret, size_t slen, const void *msg, size_t len,
                 char *hex)
{
    unsigned char md[32];
    unsigned int n = 0;
    if (slen > INT_MAX ||
        HMAC(EVP_sha256(), secret, (int)slen, msg, len, md, &n) == NULL ||
        n != sizeof(md))
        return -1;
    key_hexify(md, n, hex);
    return 0;
}

void key_hash(const char *key, size_t len, char *hex)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(key, len, md, &n, EVP_sha256(), NULL);
    key_hexify(md, n, hex);
}

int key_well_formed(const char *key, size_t len)
{
    if (len != KEY_LEN || memcmp(key, "tt_", 3) != 0)
        return 0;
    for (size_t i = 3; i < len; i++)
        if (strchr(key_hex, key[i]) == NULL || key[i] == '\0')
            return 0;
    return 1;
}

enum key_role key_role_parse(const char *s)
{
    if (strcmp(s, "admin") == 0)
        return KEY_ROLE_ADMIN;
    if (strcmp(s, "read") == 0)
        return KEY_ROLE_READ;
    if (strcmp(s, "ingest") == 0)
        return KEY_ROLE_INGEST;
    return KEY_ROLE_NONE;
}

const char *key_role_name(enum key_role r)
{
    switch (r) {
    case KEY_ROLE_ADMIN:
        return "admin";
    case KEY_ROLE_READ:
        return "read";
    case KEY_ROLE_INGEST:
        return "ingest";
    default:
        return "none";
    }
}

int key_workspace_ok(const char *ws)
{
    size_t n = strlen(ws);
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = ws[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                 (i > 0 && (ch == '-' || ch == '_'));
        if (!ok)
            return 0;
    }
    return 1;
}
