/*
 * route_rules.c: alert rules of the key's workspace.
 *
 *   GET    /api/v1/alerts/rules              the rules, by id (limit=,
 *                                            cursor=, enabled=, severity=)
 *   POST   /api/v1/alerts/rules              create (admin)
 *   GET    /api/v1/alerts/rules/{id}         one rule
 *   PUT    /api/v1/alerts/rules/{id}         replace it (admin)
 *   DELETE /api/v1/alerts/rules/{id}         delete it (admin)
 *   POST   /api/v1/alerts/rules/test         evaluate a rule (the body) or a
 *                                            saved one ({"id": N}) now,
 *                                            changing nothing (read)
 *   POST   /api/v1/alerts/rules/{id}/toggle  enable or disable (admin; body
 *                                            {"enabled": b} or none: flip)
 *
 * Writes are collector commands (collector/rule_cmd.c), which validate
 * with common/alert.c; their answer is the rule as stored, read back here.
 * A rule is its canonical JSON plus id, created_at and updated_at.
 */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert.h"

#define API_RULES_PAGE     100
#define API_RULES_PAGE_MAX 1000

/* The rule of a row (id, spec, created_ms, updated_ms) of st. */
static json_t *api_rule_row(sqlite3_stmt *st)
{
    json_t *o = json_loads((const char *)sqlite3_column_text(st, 1), 0, NULL);
    if (!json_is_object(o))
        o = json_object(); /* never: the collector stored canonical JSON */
    json_object_set_new(o, "id", json_integer(sqlite3_column_int64(st, 0)));
    json_object_set_new(o, "created_at", api_time(sqlite3_column_int64(st, 2)));
    json_object_set_new(o, "updated_at", api_time(sqlite3_column_int64(st, 3)));
    return o;
}

/* Answer the stored rule id with status, or 404. */
static int api_rule_send(struct api_req *r, int64_t id, int status)
{
    int64_t ws = api_ws_id(r);
    if (ws < 0)
        return api_db_unavailable(r);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->t->db,
                           "SELECT id, spec, created_ms, updated_ms FROM "
                           "alert_rules WHERE id = ?1 AND ws = ?2",
                           -1, &st, NULL) != SQLITE_OK)
        return api_db_unavailable(r);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, ws);
    int rc = sqlite3_step(st);
    json_t *o = rc == SQLITE_ROW ? api_rule_row(st) : NULL;
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return api_send_json(r, status, o, NULL);
    if (rc == SQLITE_DONE)
        return api_error(r, 404, "not_found", "id", "no rule %lld",
                         (long long)id);
    return api_db_unavailable(r);
}

int api_rules_list(struct api_req *r)
{
    static const char *const params[] = {"limit", "cursor", "enabled",
                                         "severity", NULL};
    if (api_query_only(r, params) != 0)
        return -1;
    const char *en = api_query(r, "enabled"), *sev = api_query(r, "severity");
    long limit;
    int64_t after;
    if (api_parse_limit(r, API_RULES_PAGE, API_RULES_PAGE_MAX, &limit) != 0 ||
        api_parse_id_cursor(r, &after) != 0)
        return -1;
    if (en != NULL && strcmp(en, "true") != 0 && strcmp(en, "false") != 0)
        return api_error(r, 400, "invalid_parameter", "enabled",
                         "enabled must be true or false, got \"%.32s\"", en);
    if (sev != NULL && alert_severity_parse(sev) < 0)
        return api_error(r, 400, "invalid_parameter", "severity",
                         "severity must be critical, high, medium or low, "
                         "got \"%.32s\"",
                         sev);
    int64_t ws = api_ws_id(r);
    if (ws < 0)
        return api_db_unavailable(r);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(
            r->t->db,
            "SELECT id, spec, created_ms, updated_ms FROM alert_rules WHERE "
            "ws = ?1 AND id > ?2 AND (?3 IS NULL OR enabled = ?3) AND (?4 IS "
            "NULL OR spec ->> '$.severity' = ?4) ORDER BY id LIMIT ?5",
            -1, &st, NULL) != SQLITE_OK)
        return api_db_unavailable(r);
    sqlite3_bind_int64(st, 1, ws);
    sqlite3_bind_int64(st, 2, after);
    if (en != NULL)
        sqlite3_bind_int(st, 3, strcmp(en, "true") == 0);
    if (sev != NULL)
        sqlite3_bind_text(st, 4, sev, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, limit + 1);
    return api_send_id_page(r, st, limit, "rules", api_rule_row);
}

int api_rules_get(struct api_req *r)
{
    int64_t id;
    if ((id = api_path_id_only(r, "rule")) == 0)
        return -1;
    return api_rule_send(r, id, 200);
}

/* Run a rule command (cmd consumed) and answer the stored rule with
 * status, or the command's error. */
static int api_rule_cmd(struct api_req *r, json_t *cmd, int status_ok)
{
    int status;
    json_t *o = api_command_ok(r, cmd, &status);
    if (o == NULL)
        return -1;
    json_t *idv = json_object_get(o, "id");
    if (!json_is_integer(idv)) /* rule.delete */
        return api_send_json(r, status, o, NULL);
    return api_rule_send(r, json_integer_value(idv), status_ok);
}

int api_rules_create(struct api_req *r)
{
    json_t *in = api_json_body(r, 1 << 20, NULL, 0);
    if (in == NULL)
        return -1;
    return api_rule_cmd(r,
                        json_pack("{s:s, s:s, s:o}", "op", "rule.create",
                                  "workspace", r->workspace, "rule", in),
                        201);
}

int api_rules_put(struct api_req *r)
{
    int64_t id = api_path_id(r, "rule");
    json_t *in = id ? api_json_body(r, 1 << 20, NULL, 0) : NULL;
    if (in == NULL)
        return -1;
    return api_rule_cmd(r,
                        json_pack("{s:s, s:s, s:I, s:o}", "op", "rule.update",
                                  "workspace", r->workspace, "id",
                                  (json_int_t)id, "rule", in),
                        200);
}

int api_rules_delete(struct api_req *r)
{
    int64_t id;
    if ((id = api_path_id_only(r, "rule")) == 0)
        return -1;
    return api_rule_cmd(r,
                        json_pack("{s:s, s:s, s:I}", "op", "rule.delete",
                                  "workspace", r->workspace, "id",
                                  (json_int_t)id),
                        200);
}

int api_rules_test(struct api_req *r)
{
    json_t *in = api_json_body(r, 1 << 20, NULL, 0);
    if (in == NULL)
        return -1;
    /* {"id": N} tests a saved rule; anything else is a rule to test. */
    json_t *id = json_object_get(in, "id");
    json_t *cmd =
        json_pack("{s:s, s:s}", "op", "rule.test", "workspace", r->workspace);
    if (id != NULL && json_object_size(in) == 1)
        json_object_set(cmd, "id", id);
    else
        json_object_set(cmd, "rule", in);
    return api_command_relay(r, cmd);
}

int api_rules_toggle(struct api_req *r)
{
    int64_t id = api_path_id(r, "rule");
    json_t *in = id ? api_json_body(r, 1 << 20, NULL, 1) : NULL;
    if (in == NULL)
        return -1;
    const char *k;
    json_t *v;
    json_object_foreach(in, k, v)
    {
        if (strcmp(k, "enabled") != 0)
            return api_error(r, 400, "invalid_field", k,
                             "unknown field \"%.64s\": the body is "
                             "{\"enabled\": true|false} or empty",
                             k);
    }
    json_t *cmd = json_pack("{s:s, s:s, s:I}", "op", "rule.toggle", "workspace",
                            r->workspace, "id", (json_int_t)id);
    if (json_object_get(in, "enabled") != NULL)
        json_object_set(cmd, "enabled", json_object_get(in, "enabled"));
    return api_rule_cmd(r, cmd, 200);
}
