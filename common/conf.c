/*
 * conf.c: the one table of tokentap options, and its parser.
 *
 * Every option is a row of conf_table: its name, where it lives in struct
 * conf, its type, its default, its bounds or allowed words, and one line of
 * documentation.  Files and --set overrides go through the same conf_apply(),
 * so a bad value is reported the same way wherever it came from.
 */
#include "conf.h"
#include "log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum conf_type { CONF_INT, CONF_STR, CONF_PATH, CONF_WORD, CONF_ADDR };

/* One option: see the table below. */
struct conf_opt {
    const char *name;    /* key in the file */
    enum conf_type type; /* how the value is parsed */
    size_t off;          /* offset of the field in struct conf */
    size_t size;         /* size of the field (strings) */
    const char *def;     /* default, as text */
    long min, max;       /* bounds for CONF_INT */
    const char *words;   /* allowed values for CONF_WORD, '|' separated */
    const char *doc;     /* one line of documentation */
};

#define F(field) offsetof(struct conf, field), sizeof(((struct conf *)0)->field)

static const struct conf_opt conf_table[] = {
    {"data_dir", CONF_PATH, F(data_dir), "./var", 0, 0, NULL,
     "directory holding the database, sockets, logs and run files"},
    {"listen", CONF_ADDR, F(listen), "127.0.0.1", 0, 0, NULL,
     "address nginx listens on"},
    {"port", CONF_INT, F(port), "8080", 1, 65535, NULL,
     "port nginx listens on"},
    {"shm_name", CONF_STR, F(shm_name), "", 0, 0, NULL,
     "POSIX shared-memory name (\"\": derived from data_dir)"},
    {"log_level", CONF_WORD, F(log_level), "info", 0, 0,
     "debug|info|warn|error", "minimum level written to the logs"},
    {"api_threads", CONF_INT, F(api_threads), "16", 8, 256, NULL,
     "FastCGI worker threads in the API process"},
    {"ingest_max_body", CONF_INT, F(ingest_max_body), "1048576", 1024, 1048576,
     NULL,
     "largest ingest body in bytes (413 above; nginx also stops bodies over "
     "1 MiB)"},
    {"ingest_timeout_ms", CONF_INT, F(ingest_timeout_ms), "10000", 100, 600000,
     NULL, "how long a worker waits for the collector to commit"},
    {"ingest_queue_ms", CONF_INT, F(ingest_queue_ms), "2000", 10, 600000, NULL,
     "a batch that waited longer than this is refused with 503"},
    {"commit_max_rows", CONF_INT, F(commit_max_rows), "20000", 1, 1000000, NULL,
     "most events committed in one group transaction"},
    {"db_synchronous", CONF_WORD, F(db_synchronous), "normal", 0, 0,
     "normal|full",
     "SQLite synchronous mode: normal survives process crashes, full also "
     "power loss"},
    {"live_seconds", CONF_INT, F(live_seconds), "3660", 3660, 86400, NULL,
     "length of the per-second live ring (an hour plus a minute at least, "
     "so the 1h window never reads a second being reused)"},
    {"live_slots", CONF_INT, F(live_slots), "128", 8, 4096, NULL,
     "live dimension slots (workspaces, providers, models)"},
    {"live_hist_entries", CONF_INT, F(live_hist_entries), "8192", 256, 1048576,
     NULL, "latency histogram entries kept per second"},
    {"feed_size", CONF_INT, F(feed_size), "1000", 10, 100000, NULL,
     "recent requests kept for the live feed"},
    {"pricing_file", CONF_PATH, F(pricing_file), "", 0, 0, NULL,
     "shipped price catalog (\"\": the one installed with tokentap)"},
    {"pricing_override", CONF_PATH, F(pricing_override), "", 0, 0, NULL,
     "operator's price catalog (\"\": DATA/pricing.json if present)"},
    {"disk_min_free_mb", CONF_INT, F(disk_min_free_mb), "100", 0, 1000000, NULL,
     "readiness fails when the data disk has less free space"},
    {"stale_after_ms", CONF_INT, F(stale_after_ms), "3000", 500, 600000, NULL,
     "live data older than this is reported stale"},
    {"retention_days", CONF_INT, F(retention_days), "30", 1, 36500, NULL,
     "raw events (and minute rollups) older than this many days are "
     "deleted"},
    {"alert_eval_interval", CONF_INT, F(alert_eval_interval), "10", 1, 3600,
     NULL, "seconds between two evaluations of the alert rules"},
    {"rollup_retention_days", CONF_INT, F(rollup_retention_days), "400", 1,
     36500, NULL,
     "hour and day rollups, sessions and budget history older than this "
     "many days are deleted"},
    {"notify_allow_networks", CONF_STR, F(notify_allow_networks), "", 0, 0,
     NULL,
     "CIDR ranges notifications may be delivered to although they are "
     "loopback, private or link-local (comma-separated; \"\": none)"},
    {"notify_max_attempts", CONF_INT, F(notify_max_attempts), "8", 1, 100, NULL,
     "deliveries of one notification tried at most"},
    {"notify_retry_base_ms", CONF_INT, F(notify_retry_base_ms), "2000", 10,
     3600000, NULL,
     "delay before the first retry; doubled each time, with jitter"},
    {"notify_retry_max_ms", CONF_INT, F(notify_retry_max_ms), "600000", 10,
     86400000, NULL, "longest delay between two tries (Retry-After aside)"},
    {"notify_disable_after", CONF_INT, F(notify_disable_after), "5", 1, 1000,
     NULL,
     "consecutive notifications failed for good (after their retries) that "
     "disable a channel"},
    {"notify_ca_file", CONF_PATH, F(notify_ca_file), "", 0, 0, NULL,
     "extra CA certificates (PEM) trusted for deliveries (\"\": the "
     "system's only)"},
    {"relay_queue", CONF_INT, F(relay_queue), "16", 2, 600, NULL,
     "seconds a live stream may fall behind before the relay closes it"},
    {"relay_ping", CONF_INT, F(relay_ping), "20", 1, 3600, NULL,
     "seconds a stream may be silent before the relay pings it (no answer "
     "in twice as long: closed)"},
    {"session_hours", CONF_INT, F(session_hours), "12", 1, 720, NULL,
     "hours a web UI session (its cookie) lasts after logging in"},
    {"public_url", CONF_STR, F(public_url), "", 0, 0, NULL,
     "the UI's address, for links in notifications (\"\": "
     "http://LISTEN:PORT)"},
};

#define CONF_NOPTS (sizeof(conf_table) / sizeof(conf_table[0]))

/* Find an option by name, or NULL. */
static const struct conf_opt *conf_find(const char *name, size_t len)
{
    for (size_t i = 0; i < CONF_NOPTS; i++)
        if (strlen(conf_table[i].name) == len &&
            memcmp(conf_table[i].name, name, len) == 0)
            return &conf_table[i];
    return NULL;
}

/* Check that word is one of the '|' separated words. */
static int conf_word_ok(const char *words, const char *word)
{
    size_t wl = strlen(word);
    for (const char *p = words; *p;) {
        const char *bar = strchr(p, '|');
        size_t l = bar ? (size_t)(bar - p) : strlen(p);
        if (l == wl && memcmp(p, word, l) == 0)
            return 1;
        if (bar == NULL)
            break;
        p = bar + 1;
    }
    return 0;
}

/* Parse and store one value; where names the source ("file:line"). */
static int conf_apply(struct conf *c, const struct conf_opt *o, const char *val,
                      const char *where, char *err, size_t errlen)
{
    char *field = (char *)c + o->off;
    const char *why = NULL;

    switch (o->type) {
    case CONF_INT: {
        char *end;
        errno = 0;
        long v = strtol(val, &end, 10);
        if (val[0] == '\0' || *end != '\0' || errno != 0)
            why = "not an integer";
        else if (v < o->min || v > o->max) {
            snprintf(err, errlen,
                     "%sinvalid value \"%s\" for \"%s\": must be between "
                     "%ld and %ld",
                     where, val, o->name, o->min, o->max);
            return -1;
        } else
            *(int *)field = (int)v;
        break;
    }
    case CONF_WORD:
        if (!conf_word_ok(o->words, val)) {
            snprintf(err, errlen,
                     "%sinvalid value \"%s\" for \"%s\": must be one of %s",
                     where, val, o->name, o->words);
            return -1;
        }
        snprintf(field, o->size, "%s", val);
        break;
    case CONF_ADDR: {
        unsigned char buf[16];
        if (inet_pton(AF_INET, val, buf) != 1 &&
            inet_pton(AF_INET6, val, buf) != 1)
            why = "not an IPv4 or IPv6 address";
        else
            snprintf(field, o->size, "%s", val);
        break;
    }
    case CONF_STR:
    case CONF_PATH:
        if (strlen(val) >= o->size)
            why = "too long";
        else if (strcmp(o->name, "shm_name") == 0 && val[0] != '\0' &&
                 (val[0] != '/' || val[1] == '\0' ||
                  strchr(val + 1, '/') != NULL || strlen(val) > 60))
            why = "must be \"/name\" with no other '/'";
        else
            snprintf(field, o->size, "%s", val);
        break;
    }
    if (why != NULL) {
        snprintf(err, errlen, "%sinvalid value \"%s\" for \"%s\": %s", where,
                 val, o->name, why);
        return -1;
    }
    return 0;
}

void conf_defaults(struct conf *c)
{
    char err[256];
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < CONF_NOPTS; i++)
        conf_apply(c, &conf_table[i], conf_table[i].def, "", err, sizeof(err));
}

/* Trim spaces at both ends of s in place and return it. */
static char *conf_trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* Apply "key=value" text (already split at sep) from where. */
static int conf_apply_kv(struct conf *c, char *key, char *val,
                         const char *where, char *err, size_t errlen)
{
    key = conf_trim(key);
    val = conf_trim(val);
    size_t vl = strlen(val);
    if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
        val[vl - 1] = '\0';
        val++;
    }
    const struct conf_opt *o = conf_find(key, strlen(key));
    if (o == NULL) {
        snprintf(err, errlen, "%sunknown option \"%s\"", where, key);
        return -1;
    }
    /* The data directory holds the file itself: it comes from --data only,
     * or the programs of one stack could disagree about it. */
    if (strcmp(key, "data_dir") == 0) {
        snprintf(err, errlen,
                 "%s\"data_dir\" cannot be set here: use --data DIR", where);
        return -1;
    }
    return conf_apply(c, o, val, where, err, errlen);
}

int conf_load_file(struct conf *c, const char *path, int missing_ok, char *err,
                   size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        if (errno == ENOENT && missing_ok)
            return 0;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, rc = 0;
    while (getline(&line, &cap, f) != -1) {
        lineno++;
        /* A '#' after a blank starts a comment, as at the start of a line. */
        for (char *h = strchr(line, '#'); h != NULL; h = strchr(h + 1, '#'))
            if (h == line || isspace((unsigned char)h[-1])) {
                *h = '\0';
                break;
            }
        char *s = conf_trim(line);
        if (*s == '\0')
            continue;
        char where[300];
        snprintf(where, sizeof(where), "%s:%d: ", base, lineno);
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            snprintf(err, errlen, "%sexpected \"key = value\", got \"%s\"",
                     where, s);
            rc = -1;
            break;
        }
        *eq = '\0';
        if (conf_apply_kv(c, s, eq + 1, where, err, errlen) != 0) {
            rc = -1;
            break;
        }
    }
    free(line);
    fclose(f);
    return rc;
}

int conf_set(struct conf *c, const char *kv, char *err, size_t errlen)
{
    char buf[1024];
    if (strlen(kv) >= sizeof(buf)) {
        snprintf(err, errlen, "--set: value too long");
        return -1;
    }
    strcpy(buf, kv);
    char *eq = strchr(buf, '=');
    if (eq == NULL) {
        snprintf(err, errlen, "--set: expected key=value, got \"%s\"", kv);
        return -1;
    }
    *eq = '\0';
    return conf_apply_kv(c, buf, eq + 1, "--set: ", err, errlen);
}

/* Make path absolute against the current directory, in place. */
static int conf_absolute(char *path, size_t size)
{
    if (path[0] == '\0' || path[0] == '/')
        return 0;
    char cwd[CONF_PATH_MAX], out[CONF_PATH_MAX * 2];
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return -1;
    const char *p = path;
    while (p[0] == '.' && p[1] == '/')
        p += 2;
    if (strcmp(p, ".") == 0)
        p = "";
    snprintf(out, sizeof(out), "%s%s%s", cwd, p[0] ? "/" : "", p);
    if (strlen(out) >= size)
        return -1;
    strcpy(path, out);
    return 0;
}

int conf_finish(struct conf *c, char *err, size_t errlen)
{
    /* "/x/" and "/x" are one directory: one shm name. */
    size_t dl = strlen(c->data_dir);
    while (dl > 1 && c->data_dir[dl - 1] == '/')
        c->data_dir[--dl] = '\0';
    if (conf_absolute(c->data_dir, sizeof(c->data_dir)) != 0 ||
        conf_absolute(c->pricing_file, sizeof(c->pricing_file)) != 0 ||
        conf_absolute(c->pricing_override, sizeof(c->pricing_override)) != 0) {
        snprintf(err, errlen, "a path is too long");
        return -1;
    }
    if (c->shm_name[0] == '\0') {
        /* Derive a stable name from the data directory so that stacks with
         * different directories never share a segment. */
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        EVP_Digest(c->data_dir, strlen(c->data_dir), md, &mdlen, EVP_sha256(),
                   NULL);
        snprintf(c->shm_name, sizeof(c->shm_name),
                 "/tokentap-%02x%02x%02x%02x%02x%02x", md[0], md[1], md[2],
                 md[3], md[4], md[5]);
    }
    if (c->pricing_override[0] == '\0' &&
        (size_t)snprintf(c->pricing_override, sizeof(c->pricing_override),
                         "%s/pricing.json",
                         c->data_dir) >= sizeof(c->pricing_override)) {
        snprintf(err, errlen, "data_dir is too long");
        return -1;
    }
    return 0;
}

void conf_describe(FILE *f)
{
    for (size_t i = 0; i < CONF_NOPTS; i++) {
        const struct conf_opt *o = &conf_table[i];
        fprintf(f, "# %s: %s", o->name, o->doc);
        if (o->type == CONF_INT)
            fprintf(f, " (%ld..%ld)", o->min, o->max);
        fprintf(f, "\n# %s = %s\n", o->name, o->def);
    }
}

/* Print the resolved value of every option as "key = value" lines. */
static void conf_print(const struct conf *c, FILE *f)
{
    for (size_t i = 0; i < CONF_NOPTS; i++) {
        const struct conf_opt *o = &conf_table[i];
        const char *field = (const char *)c + o->off;
        if (o->type == CONF_INT)
            fprintf(f, "%s = %d\n", o->name, *(const int *)field);
        else
            fprintf(f, "%s = %s\n", o->name, field);
    }
}

int conf_from_args(struct conf *c, int argc, char **argv, int *rest, int nrest,
                   char *err, size_t errlen)
{
    const char *file = NULL, *data = NULL;
    int nr = 0, check = 0, print = 0, describe = 0;
    const char *sets[128];
    int nsets = 0;

    conf_defaults(c);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) &&
            i + 1 < argc)
            file = argv[++i];
        else if (strcmp(a, "--data") == 0 && i + 1 < argc)
            data = argv[++i];
        else if (strcmp(a, "--set") == 0 && i + 1 < argc) {
            if (nsets == 128) {
                snprintf(err, errlen, "too many --set options");
                return -1;
            }
            sets[nsets++] = argv[++i];
        } else if (strcmp(a, "--check-config") == 0)
            check = 1;
        else if (strcmp(a, "--print-config") == 0)
            print = 1;
        else if (strcmp(a, "--describe-config") == 0)
            describe = 1;
        else {
            if (nr == nrest) {
                snprintf(err, errlen, "unexpected argument \"%s\"", a);
                return -1;
            }
            rest[nr++] = i;
        }
    }
    if (describe) {
        conf_describe(stdout);
        exit(0);
    }
    if (data != NULL && conf_apply(c, conf_find("data_dir", 8), data,
                                   "--data: ", err, errlen) != 0)
        return -1;
    char path[CONF_PATH_MAX + 32];
    int missing_ok = file == NULL; /* only the default file may be absent */
    if (file == NULL) {
        char tmp[CONF_PATH_MAX];
        snprintf(tmp, sizeof(tmp), "%s", c->data_dir);
        conf_absolute(tmp, sizeof(tmp));
        snprintf(path, sizeof(path), "%s/tokentap.conf", tmp);
        file = path;
    }
    if (conf_load_file(c, file, missing_ok, err, errlen) != 0)
        return -1;
    /* --data wins over data_dir in the file: it chose the file. */
    if (data != NULL && conf_apply(c, conf_find("data_dir", 8), data,
                                   "--data: ", err, errlen) != 0)
        return -1;
    for (int i = 0; i < nsets; i++)
        if (conf_set(c, sets[i], err, errlen) != 0)
            return -1;
    if (conf_finish(c, err, errlen) != 0)
        return -1;
    if (print) {
        conf_print(c, stdout);
        exit(0);
    }
    if (check)
        exit(0);
    return nr;
}

int conf_open_log(const struct conf *c, const char *comp)
{
    char path[CONF_PATH_MAX + 48];
    snprintf(path, sizeof(path), "%s/log/%s.log", c->data_dir, comp);
    if (log_init(comp, log_level_parse(c->log_level), path) == 0)
        return 0;
    fprintf(stderr, "tt-%s: cannot open %s\n", comp, path);
    return -1;
}
