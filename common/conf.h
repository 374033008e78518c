/*
 * conf.h: tokentap's configuration, one table of options for every process.
 *
 * The options live in one declarative table (conf.c: name, type, default,
 * bounds, description).  A process calls conf_from_args(), which reads
 * DIR/tokentap.conf ("key = value" lines, '#' comments, the directory from
 * --data only) and then any number of "key=value" overrides from the
 * command line (--set).  Every value is
 * validated; an unknown key or a bad value fails with a message naming the
 * key and quoting the value, e.g.
 *     tokentap.conf:3: invalid value "abc" for "api_threads": not an integer
 *
 * The result is a plain struct conf owned by the caller; nothing here is
 * global.  Paths in it are absolute once conf_finish() has run.
 */
#ifndef TT_CONF_H
#define TT_CONF_H

#include <stddef.h>
#include <stdio.h>

#define CONF_PATH_MAX 512

/* Every option; see conf.c for defaults, bounds and descriptions. */
struct conf {
    char data_dir[CONF_PATH_MAX]; /* state directory (DIR) */
    char listen[64];              /* nginx listen address */
    int port;                     /* nginx listen port */
    char shm_name[64];       /* POSIX shm name; "" = derived from data_dir */
    char log_level[16];      /* debug|info|warn|error */
    int api_threads;         /* FastCGI worker threads */
    int ingest_max_body;     /* bytes; larger bodies answer 413 */
    int ingest_timeout_ms;   /* worker waits this long for a commit */
    int ingest_queue_ms;     /* a batch older than this when read: 503 */
    int commit_max_rows;     /* rows per group commit at most */
    char db_synchronous[16]; /* SQLite synchronous: normal|full */
    int live_seconds;        /* per-second ring length */
    int live_slots; /* live dimension slots (workspace, provider, model) */
    int live_hist_entries;            /* histogram entries kept per second */
    int feed_size;                    /* recent-request ring length */
    char pricing_file[CONF_PATH_MAX]; /* shipped catalog */
    char pricing_override[CONF_PATH_MAX]; /* operator's catalog; "" =
                                             DIR/pricing.json */
    int disk_min_free_mb;                 /* readiness fails below this */
    int stale_after_ms;              /* live data older than this is stale */
    int retention_days;              /* raw events and minute rollups */
    int rollup_retention_days;       /* hour/day rollups, sessions, budgets */
    int alert_eval_interval;         /* seconds between rule evaluations */
    char notify_allow_networks[512]; /* CIDRs deliveries may reach */
    int notify_max_attempts;         /* deliveries tried at most */
    int notify_retry_base_ms;        /* first retry's delay */
    int notify_retry_max_ms;         /* longest delay between tries */
    int notify_disable_after;        /* consecutive failures: disabled */
    char notify_ca_file[CONF_PATH_MAX]; /* extra CA certificates */
    char public_url[256]; /* the UI's address, for links in messages */
    int relay_queue;      /* messages a stream may fall behind at most */
    int relay_ping;       /* seconds of silence before a ping */
    int session_hours;    /* browser sessions (cookies) last this long */
};

/* Fill c with every default.  data_dir defaults to "./var". */
void conf_defaults(struct conf *c);

/* Read a config file into c.  A missing file is not an error when
 * missing_ok.  Returns 0, or -1 with a message in err. */
int conf_load_file(struct conf *c, const char *path, int missing_ok, char *err,
                   size_t errlen);

/* Apply one "key=value" override.  Returns 0 or -1 with a message in err. */
int conf_set(struct conf *c, const char *kv, char *err, size_t errlen);

/* Make paths absolute and derive defaults that depend on others (shm name
 * from data_dir).  Returns 0 or -1 with a message in err. */
int conf_finish(struct conf *c, char *err, size_t errlen);

/* Write the table as documentation (name, default, description) to f. */
void conf_describe(FILE *f);

/*
 * Parse the standard command line shared by every tokentap program:
 *   -c FILE        the config file (default DATA/tokentap.conf)
 *   --data DIR     the data directory
 *   --set KEY=VAL  override (repeatable)
 * Unrecognised arguments are left for the caller: their indexes are stored
 * in rest[] (at most nrest).  Returns the number of rest arguments, or -1
 * with a message in err.  The whole sequence (defaults, file, overrides,
 * finish) happens here.
 */
int conf_from_args(struct conf *c, int argc, char **argv, int *rest, int nrest,
                   char *err, size_t errlen);

/* Open the log of component comp: DIR/log/<comp>.log at the configured
 * level; 0, or -1 after saying "tt-<comp>: cannot open PATH" on stderr. */
int conf_open_log(const struct conf *c, const char *comp);

#endif
