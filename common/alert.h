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

#define ALERT_MAX_DEPTH      5
#define ALERT_MAX_LEAVES     32
#define ALERT_MAX_NODES      64 /* groups and leaves together */
#define ALERT_MAX_CHANNELS   16
#define ALERT_MAX_NAME       128  /* bytes */
#define ALERT_MAX_DESC       2048 /* bytes */
#define ALERT_MAX_LABELS     32   /* labels, and annotations, each */
#define ALERT_MAX_LABEL      1024 /* bytes of a label or annotation value */
#define ALERT_MAX_DURATION   (30LL * 86400000) /* ms */
#define ALERT_MAX_KEY_WINDOW (3600000LL) /* a rule on api_key: 1h at most */

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

/* ---- silences ----
 *
 * A silence holds back the notifications of the alerts its matchers
 * select, between its start and end; the alerts still change state.
 * Matchers (at least one; all given must match):
 *   {"rule": 12, "severity": ["low", "medium"], "labels": {"team": "x"},
 *    "group": {"model": "gpt-4o"}}
 * "labels" match the rule's labels, "group" the alert's group values.
 */

#define ALERT_SILENCE_MAX_MS (366LL * 86400000) /* longest silence */

/* Validate the matchers object in; *out gets its canonical JSON (a new
 * reference).  Returns 0, or -1 with the path ("matchers.severity[1]")
 * and a sentence in msg. */
int alert_matchers_parse(const struct json_t *in, struct json_t **out,
                         char *path, size_t pathlen, char *msg, size_t msglen);

/* Do canonical matchers m select an alert of rule (0: a budget's), of
 * severity sev, whose rule has labels (an object, or NULL) and whose group
 * is group (an object)? */
int alert_matchers_match(const struct json_t *m, int64_t rule, const char *sev,
                         const struct json_t *labels,
                         const struct json_t *group);

/* ---- evaluation (pure: the engine supplies the numbers and the clock) */

/* What one group did in a rule's window (and the window before it). */
struct alert_sample {
    int64_t requests, errors;
    int64_t input_tokens, output_tokens, total_tokens;
    int64_t cost_nusd;
    double window_s;                  /* the window's length */
    double lat_p50, lat_p95, lat_p99; /* ms; NAN when no latencies */
    double ttft_p95;                  /* ms; NAN when none */
    int have_prev;                    /* the previous window is known */
    int64_t prev_requests, prev_cost_nusd;
    double budget_pct[3]; /* by enum budget_period; NAN: none */
};

/* The value of metric m in s (period: for budget_used_percent); NAN when
 * s cannot say (no latencies, no previous window, a change from 0, no
 * budget). */
double alert_metric_value(const struct alert_sample *s, int m, int period);

/* Evaluate r's condition on s: 1 holds, 0 does not.  A leaf whose value
 * is NAN does not hold.  values and verdicts (r->nnodes entries each, or
 * NULL) get every node's value (groups: NAN) and verdict. */
int alert_eval(const struct alert_rule *r, const struct alert_sample *s,
               double *values, int *verdicts);

/* The state of one rule x group. */
enum alert_status {
    AS_OK = 0,  /* no open alert */
    AS_PENDING, /* holds, for not yet elapsed */
    AS_FIRING,
    AS_ACKED /* firing, acknowledged by someone */
};

struct alert_state {
    int status;               /* enum alert_status */
    int64_t since_ms;         /* pending or firing since */
    int64_t last_notified_ms; /* 0: never (kept across alerts) */
};

/* What a step decided. */
enum alert_action {
    AA_NONE = 0,
    AA_PENDING, /* ok -> pending */
    AA_CANCEL,  /* pending -> ok: never fired */
    AA_FIRE,    /* -> firing */
    AA_RENOTIFY,
    AA_RESOLVE /* firing or acked -> ok */
};

/* Input of a step: the condition holds, does not, or there is no data. */
enum alert_input { AI_FALSE = 0, AI_TRUE = 1, AI_NO_DATA = 2 };

/*
 * Advance st by one evaluation at now: the state machine
 * ok -> pending (holds, for not elapsed) -> firing -> ok (resolved), with
 * no_data handled by r->no_data (ok: as not holding; keep: no change;
 * alert: as holding).  *notify is set when the action should notify:
 * firing and renotify only when the cooldown (and renotify interval) since
 * the last notification has passed, resolving always (if the alert fired).
 * st->last_notified_ms is updated when *notify is set.
 */
int alert_step(const struct alert_rule *r, struct alert_state *st, int input,
               int64_t now, int *notify);

#endif
