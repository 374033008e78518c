/*
 * route_keys.c: API key management, for admin keys.
 *
 * POST /api/v1/keys {role, workspace, name} creates a key and shows it
 * once; GET lists keys (prefix, name, role, workspace, last use; never the
 * key); DELETE /api/v1/keys/{id} revokes one.  The writes are collector
 * commands, so the collector stays the only writer of the database.
 */
#include "api.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Send a command and relay the collector's JSON answer. */
static int api_key_cmd(struct api_req *r, json_t *cmd)
{
    int status = 0;
    char *reply = NULL;
    if (api_command(r, cmd, &status, &reply) != 0)
        return -1;
    api_send_text(r, status, "application/json", reply, strlen(reply), NULL);
    free(reply);
    return status < 400 ? 0 : -1;
}

int api_keys_list(struct api_req *r)
{
    static const char *const allowed[] = {"workspace", NULL};
    if (api_query_only(r, allowed) != 0)
        return -1;
    json_t *cmd = json_pack("{s:s}", "op", "key.list");
    const char *ws = api_query(r, "workspace");
    if (ws != NULL && !key_workspace_ok(ws)) {
        json_decref(cmd);
        return api_error(r, 400, "invalid_parameter", "workspace",
                         "workspace must be 1-64 of a-z, 0-9, '-' and '_', "
                         "got \"%.64s\"",
                         ws);
    }
    if (ws != NULL)
        json_object_set_new(cmd, "workspace", json_string(ws));
    return api_key_cmd(r, cmd);
}

int api_keys_create(struct api_req *r)
{
    if (!api_is_json(r->content_type))
        return api_error(r, 415, "unsupported_media_type", NULL,
                         "Content-Type must be application/json, got \"%s\"",
                         r->content_type ? r->content_type : "");
    char *body;
    long len = api_read_body(r, 65536, &body);
    if (len < 0)
        return -1;
    json_error_t jerr;
    json_t *in = json_loadb(body, (size_t)len, 0, &jerr);
    if (!json_is_object(in)) {
        json_decref(in);
        return api_error(r, 400, "invalid_json", NULL,
                         "body must be a JSON object {role, workspace, name}");
    }
    const char *k;
    json_t *v;
    json_object_foreach(in, k, v)
    {
        if (strcmp(k, "role") != 0 && strcmp(k, "workspace") != 0 &&
            strcmp(k, "name") != 0) {
            json_decref(in);
            return api_error(r, 400, "invalid_field", k,
                             "unknown field \"%.64s\"", k);
        }
        if (!json_is_string(v)) {
            json_decref(in);
            return api_error(r, 400, "invalid_field", k,
                             "%.64s must be a string", k);
        }
    }
    json_object_set_new(in, "op", json_string("key.create"));
    return api_key_cmd(r, in);
}

int api_keys_delete(struct api_req *r)
{
    char *end;
    errno = 0;
    long long id = strtoll(r->params[0], &end, 10);
    if (*end != '\0' || errno != 0 || id <= 0)
        return api_error(r, 400, "invalid_parameter", "id",
                         "key id must be a positive integer, got \"%.32s\"",
                         r->params[0]);
    return api_key_cmd(
        r, json_pack("{s:s, s:I}", "op", "key.delete", "id", (json_int_t)id));
}
