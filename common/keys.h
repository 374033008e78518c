/*
 * keys.h: API keys: their format, their roles and their hashes.
 *
 * A key is "tt_" followed by 40 lower-case hex characters (160 random bits
 * from OpenSSL's RAND_bytes).  Only its SHA-256 is stored; the first 11
 * characters ("tt_" + 8 hex) are kept in clear as a prefix so people can
 * tell keys apart in listings.  All functions are thread-safe.
 */
#ifndef TT_KEYS_H
#define TT_KEYS_H

#include <stddef.h>

#define KEY_LEN        43 /* "tt_" + 40 hex */
#define KEY_PREFIX_LEN 11 /* "tt_" + 8 hex */
#define KEY_HASH_HEX   64 /* SHA-256 as hex */

enum key_role {
    KEY_ROLE_NONE = -1,
    KEY_ROLE_INGEST,
    KEY_ROLE_READ,
    KEY_ROLE_ADMIN
};

/* Generate a new key into out (KEY_LEN + 1 bytes).  Returns 0 or -1 if the
 * random source failed. */
int key_generate(char *out);

/* Hash key (len bytes) into hex (KEY_HASH_HEX + 1 bytes). */
void key_hash(const char *key, size_t len, char *hex);

/* HMAC-SHA256 of msg under secret, as 64 lowercase hex digits and a NUL in
 * hex (65 bytes); 0, or -1 if libcrypto fails. */
int key_hmac_hex(const void *secret, size_t slen, const void *msg, size_t len,
                 char *hex);

/* Check that key looks like a tokentap key (prefix and length). */
int key_well_formed(const char *key, size_t len);

/* Parse "admin", "read" or "ingest"; KEY_ROLE_NONE if none of them. */
enum key_role key_role_parse(const char *s);

/* The name of a role. */
const char *key_role_name(enum key_role r);

/* Check a workspace name: 1..64 of [a-z0-9_-], starting with a letter or
 * digit. */
int key_workspace_ok(const char *ws);

#endif
