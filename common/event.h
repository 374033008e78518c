/*
 * event.h: the tokentap event, validated from JSON into a flat record.
 *
 * The FastCGI workers parse a request body with jansson and turn each event
 * object into a struct ev_rec: a self-contained, position-independent record
 * (strings are offsets into the record's own tail) that crosses the collector
 * socket by memcpy and is bound straight into the SQLite insert.  Validation
 * is all-or-nothing: ev_parse_body() either produces every record of a batch
 * or none, and reports the index, field and reason of the first bad event.
 *
 * Ownership: ev_parse_body() fills a caller-owned struct ev_batch whose
 * buffer is malloc'ed; ev_batch_free() releases it.  Records are 8-byte
 * aligned and walked with ev_batch_next().  Thread safety: every function is
 * reentrant and lock-free.  The only state kept is per thread: ev_new_id()'s
 * random generator (reseeded in a forked child) and one batch buffer that
 * ev_batch_free() keeps for the thread's next ev_parse_body() (freed when
 * the thread exits); a batch may be freed on another thread than the one
 * that parsed it.
 *
 * Limits are in bytes of UTF-8, not characters.  JSON does not distinguish
 * 3 from 3.0, so integer fields accept integral reals; 1.5 is rejected.
 */
#ifndef TT_EVENT_H
#define TT_EVENT_H

#include <stddef.h>
#include <stdint.h>

/* Bounds on one event and one batch (documented in docs/api.md). */
#define EV_MAX_BATCH      1000
#define EV_MAX_ID         64
#define EV_MAX_NAME       128 /* provider, model, user, agent, api_key, session */
#define EV_MAX_SHORT      64 /* operation, error_type */
#define EV_MAX_REQUEST_ID 128
#define EV_MAX_TAGS       16
#define EV_MAX_TAG_KEY    64
#define EV_MAX_TAG_VALUE  256
#define EV_MAX_TOKENS                                                          \
    1000000000000LL               /* 1e12: anything above is a unit mistake */
#define EV_MAX_COST    1000000.0  /* USD for one call */
#define EV_MAX_LATENCY 86400000.0 /* ms: one day */
#define EV_MAX_ROUND   1000000

/* String fields of a record, in storage order. */
enum ev_str {
    EV_S_ID,
    EV_S_PROVIDER,
    EV_S_MODEL,
    EV_S_OPERATION,
    EV_S_ERROR_TYPE,
    EV_S_USER,
    EV_S_AGENT,
    EV_S_API_KEY,
    EV_S_SESSION,
    EV_S_REQUEST_ID,
    EV_S_TAGS, /* compact JSON object text, or empty */
    EV_NSTR
};

/* Bits of ev_rec.flags saying which optional numbers are present. */
#define EV_F_COST      0x01 /* cost_usd was given by the client */
#define EV_F_LATENCY   0x02 /* latency_ms present */
#define EV_F_TTFT      0x04 /* ttft_ms present */
#define EV_F_STATUS    0x08 /* status present */
#define EV_F_ROUND     0x10 /* round present */
#define EV_F_ID_SERVER 0x20 /* id was assigned by the server */
#define EV_F_ERROR     0x40 /* status >= 400 or error_type set */

/* One validated event.  Absent strings have length 0. */
struct ev_rec {
    uint32_t size;  /* bytes of the whole record, a multiple of 8 */
    uint32_t flags; /* EV_F_* */
    int64_t ts_ms;  /* call start, epoch milliseconds (UTC) */
    int64_t input_tokens;
    int64_t output_tokens;
    int64_t cache_read_tokens;
    int64_t cache_write_tokens;
    int64_t reasoning_tokens;
    double cost_usd;           /* meaningful only with EV_F_COST */
    double latency_ms;         /* meaningful only with EV_F_LATENCY */
    double ttft_ms;            /* meaningful only with EV_F_TTFT */
    int32_t status;            /* meaningful only with EV_F_STATUS */
    int32_t round;             /* meaningful only with EV_F_ROUND */
    uint32_t str_off[EV_NSTR]; /* offset of each string from the record start */
    uint16_t
        str_len[EV_NSTR]; /* length of each string, no terminator counted */
    /* The strings follow, each NUL-terminated. */
};

/* A batch of records in one malloc'ed buffer. */
struct ev_batch {
    char *buf;      /* records back to back; owned by the batch */
    size_t len;     /* bytes used in buf */
    size_t cap;     /* bytes allocated */
    uint32_t count; /* number of records */
};

/* Where validation failed: index -1 means the body as a whole. */
struct ev_error {
    int index;         /* index of the bad event in the batch, or -1 */
    char field[64];    /* the field name, e.g. "input_tokens", or "" */
    char message[256]; /* what is wrong, quoting the bad value */
};

/* Return values of ev_parse_body(). */
enum ev_result {
    EV_OK = 0,
    EV_ERR_JSON,     /* not JSON: 400 */
    EV_ERR_INVALID,  /* JSON but an event is invalid: 400 */
    EV_ERR_TOO_MANY, /* more than EV_MAX_BATCH events: 413 */
    EV_ERR_NOMEM
};

/*
 * Parse and validate a request body: one event object or an array of up to
 * EV_MAX_BATCH objects.  now_ms supplies the default ts and the reference for
 * "ts too far in the future" (ts, as RFC 3339 or epoch ms, must lie from
 * 2000-01-01 to now_ms + 1 day); events without an id get one from
 * ev_new_id().
 * out is output only (it need not be initialised and is overwritten, so
 * free a previous batch first).  On EV_OK, out holds every record and
 * err->index is -1; on any error out is empty (buf NULL) and err says what is
 * wrong: index -1 for the body as a whole, else the bad event's position (0
 * for a single object).  Duplicate keys in an object are a JSON error.
 */
enum ev_result ev_parse_body(const char *body, size_t len, int64_t now_ms,
                             struct ev_batch *out, struct ev_error *err);

/* Release a batch's buffer and reset it to empty.  A buffer of up to 1 MiB
 * is kept for this thread's next ev_parse_body(): freeing a large buffer
 * right after a jansson tree makes glibc consolidate its fast bins, which
 * costs more than validating the events. */
void ev_batch_free(struct ev_batch *b);

/* Return the first record of b, or the one after r; NULL at the end. */
const struct ev_rec *ev_batch_next(const struct ev_batch *b,
                                   const struct ev_rec *r);

/* Return string field f of r (never NULL; "" when absent). */
static inline const char *ev_str(const struct ev_rec *r, enum ev_str f)
{
    return (const char *)r + r->str_off[f];
}

/* Replace every byte of s that is not part of valid UTF-8 with '?', in
 * place (for messages that quote client input, which JSON must carry). */
void ev_utf8_clean(char *s);

/* Generate a server-side event id into buf (at least 33 bytes): 32 lower
 * hex characters, 12 of epoch ms then 20 (80 bits) of per-thread randomness
 * seeded from getrandom().  Thread-safe and lock-free. */
void ev_new_id(char *buf);

/* Parse an RFC 3339 timestamp ("2026-11-22T10:00:00.123Z", any offset) into
 * epoch ms.  Returns 0, or -1 if s is not a valid RFC 3339 date-time.  The
 * separator is 'T' or 't', the offset 'Z', 'z' or +hh:mm/-hh:mm; fractional
 * seconds may have any number of digits and are truncated to ms; second 60
 * (a leap second) is accepted and reads as the next second. */
int ev_parse_rfc3339(const char *s, int64_t *out_ms);

/* Format epoch ms as RFC 3339 UTC with milliseconds into buf (>= 25 bytes). */
void ev_format_rfc3339(int64_t ms, char *buf, size_t n);

struct json_t;

/* Describe a JSON value for an error message that quotes a bad value into
 * buf (n bytes, always NUL-terminated, valid UTF-8): a string in quotes,
 * escaped and cut to about 72 bytes with "...", a number as written, true,
 * false, null, "an object" or "an array". */
void ev_describe(const struct json_t *v, char *buf, size_t n);

#endif
