/*
 * ctl.c: tt-ctl, the command-line client of the collector.
 *
 * Usage: tt-ctl --data DIR key create --role admin|read|ingest
 *                  [--workspace W] [--name N]
 *        tt-ctl --data DIR key list [--workspace W]
 *        tt-ctl --data DIR key delete ID
 *        tt-ctl --data DIR ring [--type alert|budget|notify]
 *
 * It sends the same JSON commands the API sends to the running collector
 * (DIR/run/collector.sock) and prints the answer for people; with --json it
 * prints the JSON as it came.  "ring" reads the live segment's event ring
 * instead (alerts, budget crossings, notifications) and prints its entries,
 * oldest first, one JSON object a line.  Exit status: 0 on success, 1 on a
 * refused command, 2 when the collector cannot be reached.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "proto.h"
#include "shm.h"

/* Print usage and exit. */
static void ctl_usage(void)
{
    fprintf(stderr, "usage: tt-ctl [--data DIR] key create --role ROLE "
                    "[--workspace W] [--name N]\n"
                    "       tt-ctl [--data DIR] key list [--workspace W]\n"
                    "       tt-ctl [--data DIR] key delete ID\n"
                    "       tt-ctl [--data DIR] ring [--type "
                    "alert|budget|notify]\n");
    exit(2);
}

/* Find "--name value" among the rest arguments. */
static const char *ctl_opt(char **argv, const int *rest, int n, int from,
                           const char *name)
{
    for (int i = from; i + 1 < n; i++)
        if (strcmp(argv[rest[i]], name) == 0)
            return argv[rest[i + 1]];
    return NULL;
}

/* Print a key listing as a table. */
static void ctl_print_keys(json_t *keys)
{
    size_t i;
    json_t *k;
    printf("%-6s %-12s %-7s %-16s %-24s %s\n", "ID", "PREFIX", "ROLE",
           "WORKSPACE", "LAST USED", "NAME");
    json_array_foreach(keys, i, k)
    {
        json_t *lu = json_object_get(k, "last_used");
        printf("%-6lld %-12s %-7s %-16s %-24s %s\n",
               (long long)json_integer_value(json_object_get(k, "id")),
               json_string_value(json_object_get(k, "prefix")),
               json_string_value(json_object_get(k, "role")),
               json_string_value(json_object_get(k, "workspace")),
               json_is_string(lu) ? json_string_value(lu) : "never",
               json_string_value(json_object_get(k, "name")));
    }
}

/* Print the event ring, oldest entry first, one JSON object a line; type
 * 0 prints every type. */
static int ctl_ring(const struct conf *cf, uint32_t type)
{
    static const char *const names[] = {"?", "alert", "budget", "notify"};
    struct shm_reader rd;
    shm_reader_init(&rd, cf->shm_name);
    const struct shm_header *h = rd.h;
    if (h == NULL) {
        fprintf(stderr, "tt-ctl: no live segment %s (is the stack running?)\n",
                cf->shm_name);
        return 2;
    }
    uint64_t head = atomic_load_explicit(&((struct shm_header *)h)->ring_head,
                                         memory_order_acquire);
    for (uint64_t i = head > h->ring_size ? head - h->ring_size : 0; i < head;
         i++) {
        struct shm_ring_ent *e = shm_ring(h, i), copy;
        if (atomic_load_explicit(&e->seq, memory_order_acquire) != i + 1)
            continue;
        memcpy(&copy, e, sizeof(copy));
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&e->seq, memory_order_relaxed) != i + 1 ||
            (type != 0 && copy.type != type))
            continue;
        copy.json[sizeof(copy.json) - 1] = '\0';
        copy.workspace[sizeof(copy.workspace) - 1] = '\0';
        json_t *ev = json_loads(copy.json, 0, NULL);
        json_t *o = json_pack(
            "{s:I, s:I, s:s, s:s, s:o}", "seq", (json_int_t)(i + 1), "ts_ms",
            (json_int_t)copy.ts_ms, "type",
            names[copy.type <= 3 ? copy.type : 0], "workspace", copy.workspace,
            "event", ev ? ev : json_string(copy.json));
        char *text = json_dumps(o, JSON_COMPACT);
        printf("%s\n", text ? text : "{}");
        free(text);
        json_decref(o);
    }
    shm_reader_close(&rd);
    return 0;
}

int main(int argc, char **argv)
{
    struct conf cf;
    char err[512];
    int rest[32];
    int n = conf_from_args(&cf, argc, argv, rest, 32, err, sizeof(err));
    if (n < 0) {
        fprintf(stderr, "tt-ctl: %s\n", err);
        return 2;
    }
    int as_json = 0;
    for (int i = 0; i < n; i++)
        if (strcmp(argv[rest[i]], "--json") == 0)
            as_json = 1;
    if (n >= 1 && strcmp(argv[rest[0]], "ring") == 0) {
        const char *t = ctl_opt(argv, rest, n, 1, "--type");
        uint32_t type = 0;
        if (t != NULL && strcmp(t, "alert") == 0)
            type = SHM_RING_ALERT;
        else if (t != NULL && strcmp(t, "budget") == 0)
            type = SHM_RING_BUDGET;
        else if (t != NULL && strcmp(t, "notify") == 0)
            type = SHM_RING_NOTIFY;
        else if (t != NULL)
            ctl_usage();
        return ctl_ring(&cf, type);
    }
    if (n < 2 || strcmp(argv[rest[0]], "key") != 0)
        ctl_usage();
    const char *verb = argv[rest[1]];
    json_t *cmd;
    if (strcmp(verb, "create") == 0) {
        const char *role = ctl_opt(argv, rest, n, 2, "--role");
        const char *ws = ctl_opt(argv, rest, n, 2, "--workspace");
        const char *name = ctl_opt(argv, rest, n, 2, "--name");
        if (role == NULL)
            ctl_usage();
        cmd = json_pack("{s:s, s:s, s:s, s:s}", "op", "key.create", "role",
                        role, "workspace", ws ? ws : "default", "name",
                        name ? name : "");
    } else if (strcmp(verb, "list") == 0) {
        const char *ws = ctl_opt(argv, rest, n, 2, "--workspace");
        cmd = json_pack("{s:s}", "op", "key.list");
        if (ws != NULL)
            json_object_set_new(cmd, "workspace", json_string(ws));
    } else if (strcmp(verb, "delete") == 0 && n >= 3) {
        char *end;
        long long id = strtoll(argv[rest[2]], &end, 10);
        if (*end != '\0') {
            fprintf(stderr, "tt-ctl: invalid key id \"%s\"\n", argv[rest[2]]);
            return 2;
        }
        cmd = json_pack("{s:s, s:I}", "op", "key.delete", "id", (json_int_t)id);
    } else
        ctl_usage();

    char *text = json_dumps(cmd, JSON_COMPACT);
    json_decref(cmd);
    char sock[CONF_PATH_MAX + 32];
    snprintf(sock, sizeof(sock), "%s/run/collector.sock", cf.data_dir);
    int status = 0;
    char *reply = NULL;
    int rc = proto_command(sock, text, 10000, &status, &reply);
    free(text);
    if (rc != 0) {
        fprintf(stderr,
                "tt-ctl: cannot reach the collector at %s (is the stack "
                "running? ./tokentap up): %s\n",
                sock, strerror(-rc));
        return 2;
    }
    json_t *r = json_loads(reply, 0, NULL);
    if (as_json || r == NULL)
        printf("%s\n", reply);
    else if (status >= 400)
        fprintf(stderr, "tt-ctl: %s\n",
                json_string_value(
                    json_object_get(json_object_get(r, "error"), "message")));
    else if (strcmp(verb, "create") == 0)
        printf("key: %s\nid: %lld\nrole: %s\nworkspace: %s\n"
               "(the key is shown only now; store it safely)\n",
               json_string_value(json_object_get(r, "key")),
               (long long)json_integer_value(json_object_get(r, "id")),
               json_string_value(json_object_get(r, "role")),
               json_string_value(json_object_get(r, "workspace")));
    else if (strcmp(verb, "list") == 0)
        ctl_print_keys(json_object_get(r, "keys"));
    else
        printf("key %s deleted\n", argv[rest[2]]);
    json_decref(r);
    free(reply);
    return status >= 400 ? 1 : 0;
}
