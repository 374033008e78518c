/*
 * alert.h: alert rules: their model, validation and canonical JSON, shared
 * by the collector (which stores rules and, in the engine, evaluates them)
 * and the API (which shows them and tests unsaved ones).
 *
 * A rule, as clients send it (every field but name and condition
 * optional):
 *
 *   {"name": "gpt-4o errors", "description": "...", "enabled": true,
 *    "severity": "high",                     critical|high|medium|low
 *    "condition": {"op": "and", "conditions": [
 *        {"metric": "error_rate", "operator": ">", "threshold": 5},
 *        {"op": "or", "conditions": [...]}]},
 *    "window": "5m", "for": "0s", "cooldown": "15m", "renotify": "0s",
 *    "group_by": ["model"],                  provider|model|agent|user|api_key
 *    "filters": {"provider": "openai"},      the same five keys
 *    "no_data": "ok",                        ok|keep|alert
 *    "channels": [1, 2], "labels": {"team": "infra"},
 *    "annotations": {"runbook": "https://..."}}
 *
 * The condition is a tree of groups ({"op": "and"|"or", "conditions":
 * [...]}, at least one child) and leaves ({"metric", "operator",
 * "threshold"}; budget_used_percent leaves may add "period": "day"|
 * "month", default day), at most ALERT_MAX_DEPTH levels deep (the root is
 * level 1) with at most ALERT_MAX_LEAVES leaves.  A leaf alone is a valid
 * condition.  Durations are "0", or digits with a unit s, m, h or d
 * ("90s", "5m"); window is 1m to 30d, for, cooldown and renotify 0 to 30d.
 *
 * Validation reports the first bad node by its path, as clients wrote it:
 * "condition.conditions[1].operator", "group_by[0]", "labels.team".
 *
 * Ownership: a struct alert_rule holds copies of everything (labels and
 * annotations as jansson objects it owns); release with alert_rule_free().
 */
#ifndef TT_ALERT_H
#define TT_ALERT_H

#include <stddef.h>
#include <stdint.h>

struct json_t;

#define ALERT_MAX_DEPTH    5
#define ALERT_MAX_LEAVES   32
#define ALERT_MAX_NODES    64 /* groups and leaves together */
#define ALERT_MAX_CHANNELS 16
#define ALERT_MAX_NAME     128  /* bytes */
#define ALERT_MAX_DESC     2048 /* bytes */
#define ALERT_MAX_LABELS   32   /* labels, and annotations, each */
#define ALERT_MAX_LABEL    1024 /* bytes of a label or annotation value */
#define ALERT_MAX_DURATION (30LL * 86400000) /* ms */

enum alert_severity {
    ALERT_CRITICAL = 0,
    ALERT_HIGH,
    ALERT_MEDIUM,
    ALERT_LOW,
    ALERT_NSEVERITIES
};

enum alert_metric {
    AM_REQUESTS = 0,
    AM_ERRORS,
    AM_ERROR_RATE, /* percent */
    AM_COST,       /* USD */
    AM_INPUT_TOKENS,
    AM_OUTPUT_TOKENS,
    AM_TOTAL_TOKENS,
    AM_RPS,
    AM_LATENCY_P50, /* ms */
    AM_LATENCY_P95,
    AM_LATENCY_P99,
    AM_TTFT_P95,
    AM_COST_CHANGE,     /* percent against the previous window */
    AM_REQUESTS_CHANGE, /* percent against the previous window */
    AM_BUDGET_USED,     /* percent of the daily or monthly budget */
    AM_NMETRICS
};

enum alert_op { AO_GT = 0, AO_GE, AO_LT, AO_LE, AO_EQ, AO_NE, AO_NOPS };

enum alert_kind { AK_LEAF = 0, AK_AND, AK_OR };

enum alert_no_data { AND_OK = 0, AND_KEEP, AND_ALERT };

/* The dimensions a rule groups or filters by. */
enum alert_dim {
    AD_PROVIDER = 0,
    AD_MODEL,
    AD_AGENT,
    AD_USER,
    AD_API_KEY,
    AD_NDIMS
};

/* A node of the condition tree; nodes[0] is the root, and a group's
 * children are nodes[first .. first + n), in the order written. */
struct alert_node {
    int kind;         /* enum alert_kind */
    int metric, op;   /* leaves */
    double threshold; /* leaves */
    int period;       /* budget_used_percent leaves: enum budget_period */
    int first, n;     /* groups */
};

struct alert_rule {
    char name[ALERT_MAX_NAME + 1];
    char description[ALERT_MAX_DESC + 1];
    int enabled;
    int severity; /* enum alert_severity */
    struct alert_node nodes[ALERT_MAX_NODES];
    int nnodes, nleaves;
    int64_t window_ms, for_ms, cooldown_ms, renotify_ms;
    unsigned group_by;                    /* 1u << enum alert_dim */
    char filters[AD_NDIMS][128 + 1];      /* "" = any */
    int no_data;                          /* enum alert_no_data */
    int64_t channels[ALERT_MAX_CHANNELS]; /* ids, as given */
    int nchannels;
    struct json_t *labels, *annotations; /* objects of strings; owned */
};

/* The names of the enums ("critical", "error_rate", ">=", "and", "ok",
 * "model"), or NULL when out of range. */
const char *alert_severity_name(int s);
const char *alert_metric_name(int m);
const char *alert_op_name(int op);
const char *alert_no_data_name(int n);
const char *alert_dim_name(int d);

/* Parse a name; -1 when unknown. */
int alert_severity_parse(const char *s);
int alert_metric_parse(const char *s);

/* Parse a duration ("0", "90s", "5m", "2h", "7d") into ms; -1 if bad. */
int64_t alert_duration_parse(const char *s);

/* Format ms as the largest whole unit ("5m", "90s", "0s") into buf. */
void alert_duration_format(int64_t ms, char *buf, size_t n);

/*
 * Validate the rule object in and fill *r.  Returns 0, or -1 with the
 * path of the first bad node in path ("condition.conditions[1].operator")
 * and a sentence about it, quoting the value, in msg.  *r needs
 * alert_rule_free() after a 0 only.
 */
int alert_rule_parse(const struct json_t *in, struct alert_rule *r, char *path,
                     size_t pathlen, char *msg, size_t msglen);

/* The rule as canonical JSON (every field, durations formatted, defaults
 * filled in); a new reference, NULL when out of memory. */
struct json_t *alert_rule_json(const struct alert_rule *r);

/* The condition tree of r as JSON (as in alert_rule_json). */
struct json_t *alert_condition_json(const struct alert_rule *r, int node);

/* Compare a value with a leaf's threshold. */
int alert_compare(int op, double value, double threshold);

void alert_rule_free(struct alert_rule *r);

#endif
