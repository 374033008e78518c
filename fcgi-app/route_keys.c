/*
 * route_keys.c: API key management, for admin keys.
 *
 * POST /api/v1/keys {role, workspace, name} creates a key and shows it
 * once; GET lists keys (prefix, name, role, workspace, last use; never the
 * key); DELETE /api/v1/keys/{id} revokes one.  The writes are collector
 * commands, so the collector stays the only writer of the database.
 */
#include "api.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Send a command and relay the collector's JSON answer. */
static int api_key_cmd(struct api_req *r, json_t *cmd)
{
    return api_command_relay(r, cmd);
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
    static const char *const fields[] = {"role", "workspace", "name", NULL};
    json_t *in = api_json_body(r, 65536, fields, 0);
    if (in == NULL)
        return -1;
    const char *k;
    json_t *v;
    json_object_foreach(in, k, v)
    {
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
    int64_t id = api_path_id(r, "key");
    if (id == 0)
        return -1;
    return api_key_cmd(
        r, json_pack("{s:s, s:I}", "op", "key.delete", "id", (json_int_t)id));
}
