/*
 * route.c: the routing table of tt-api and the dispatcher.
 *
 * A path matches a pattern segment by segment; "{x}" matches one
 * non-empty segment and becomes a parameter.  A path that matches some
 * pattern with another method answers 405 with an Allow header; a path
 * that matches none answers 404.
 */
#include "api.h"

#include <string.h>

#include "log.h"

const struct api_route api_routes[] = {
    {"GET", "/health", KEY_ROLE_NONE, api_health},
    {"GET", "/healthz", KEY_ROLE_NONE, api_health},
    {"GET", "/health/live", KEY_ROLE_NONE, api_health_live},
    {"GET", "/health/ready", KEY_ROLE_NONE, api_health_ready},
    {"GET", "/metrics", KEY_ROLE_READ, api_metrics},
    {"GET", "/_tt/ws-auth", KEY_ROLE_NONE, api_ws_auth},
    {"POST", "/api/v1/ws-token", KEY_ROLE_READ, api_ws_token},
    /* Sessions check the key or the cookie themselves (any role). */
    {"POST", "/api/v1/session", KEY_ROLE_NONE, api_session_create},
    {"GET", "/api/v1/session", KEY_ROLE_NONE, api_session_get},
    {"DELETE", "/api/v1/session", KEY_ROLE_NONE, api_session_delete},
    {"POST", "/api/v1/events", KEY_ROLE_INGEST, api_events_post},
    {"GET", "/api/v1/live/stats", KEY_ROLE_READ, api_live_stats},
    {"GET", "/api/v1/live/feed", KEY_ROLE_READ, api_live_feed},
    {"GET", "/api/v1/keys", KEY_ROLE_ADMIN, api_keys_list},
    {"POST", "/api/v1/keys", KEY_ROLE_ADMIN, api_keys_create},
    {"DELETE", "/api/v1/keys/{id}", KEY_ROLE_ADMIN, api_keys_delete},
    {"GET", "/api/v1/requests", KEY_ROLE_READ, api_requests_list},
    {"GET", "/api/v1/requests/{id}", KEY_ROLE_READ, api_requests_get},
    {"GET", "/api/v1/usage/overview", KEY_ROLE_READ, api_usage_overview},
    {"GET", "/api/v1/usage/timeseries", KEY_ROLE_READ, api_usage_timeseries},
    {"GET", "/api/v1/usage/distribution", KEY_ROLE_READ,
     api_usage_distribution},
    {"GET", "/api/v1/usage/top-users", KEY_ROLE_READ, api_usage_top_users},
    {"GET", "/api/v1/cost/overview", KEY_ROLE_READ, api_cost_overview},
    {"GET", "/api/v1/cost/trend", KEY_ROLE_READ, api_cost_trend},
    {"GET", "/api/v1/cost/by-model", KEY_ROLE_READ, api_cost_by_model},
    {"GET", "/api/v1/cost/by-provider", KEY_ROLE_READ, api_cost_by_provider},
    {"GET", "/api/v1/performance/overview", KEY_ROLE_READ, api_perf_overview},
    {"GET", "/api/v1/performance/latency", KEY_ROLE_READ, api_perf_latency},
    {"GET", "/api/v1/performance/throughput", KEY_ROLE_READ,
     api_perf_throughput},
    {"GET", "/api/v1/performance/errors", KEY_ROLE_READ, api_perf_errors},
    {"GET", "/api/v1/alerts/rules", KEY_ROLE_READ, api_rules_list},
    {"POST", "/api/v1/alerts/rules", KEY_ROLE_ADMIN, api_rules_create},
    {"POST", "/api/v1/alerts/rules/test", KEY_ROLE_READ, api_rules_test},
    {"GET", "/api/v1/alerts/rules/{id}", KEY_ROLE_READ, api_rules_get},
    {"PUT", "/api/v1/alerts/rules/{id}", KEY_ROLE_ADMIN, api_rules_put},
    {"DELETE", "/api/v1/alerts/rules/{id}", KEY_ROLE_ADMIN, api_rules_delete},
    {"POST", "/api/v1/alerts/rules/{id}/toggle", KEY_ROLE_ADMIN,
     api_rules_toggle},
    {"GET", "/api/v1/alerts", KEY_ROLE_READ, api_alerts_list},
    {"GET", "/api/v1/alerts/active", KEY_ROLE_READ, api_alerts_active},
    {"GET", "/api/v1/alerts/stats", KEY_ROLE_READ, api_alerts_stats},
    {"POST", "/api/v1/alerts/bulk", KEY_ROLE_ADMIN, api_alerts_bulk},
    {"GET", "/api/v1/alerts/{id}", KEY_ROLE_READ, api_alerts_get},
    {"DELETE", "/api/v1/alerts/{id}", KEY_ROLE_ADMIN, api_alerts_delete},
    {"POST", "/api/v1/alerts/{id}/ack", KEY_ROLE_ADMIN, api_alerts_ack},
    {"POST", "/api/v1/alerts/{id}/resolve", KEY_ROLE_ADMIN, api_alerts_resolve},
    {"GET", "/api/v1/channels/routes", KEY_ROLE_READ, api_routes_get},
    {"PUT", "/api/v1/channels/routes", KEY_ROLE_ADMIN, api_routes_put},
    {"GET", "/api/v1/channels", KEY_ROLE_READ, api_channels_list},
    {"POST", "/api/v1/channels", KEY_ROLE_ADMIN, api_channels_create},
    {"GET", "/api/v1/channels/{id}", KEY_ROLE_READ, api_channels_get},
    {"PUT", "/api/v1/channels/{id}", KEY_ROLE_ADMIN, api_channels_update},
    {"DELETE", "/api/v1/channels/{id}", KEY_ROLE_ADMIN, api_channels_delete},
    {"POST", "/api/v1/channels/{id}/test", KEY_ROLE_ADMIN, api_channels_test},
    {"GET", "/api/v1/notifications/history", KEY_ROLE_READ, api_notify_history},
    {"GET", "/api/v1/notifications/inbox", KEY_ROLE_READ, api_inbox_list},
    {"POST", "/api/v1/notifications/inbox/read", KEY_ROLE_READ, api_inbox_read},
    {"GET", "/api/v1/silences", KEY_ROLE_READ, api_silences_list},
    {"POST", "/api/v1/silences", KEY_ROLE_ADMIN, api_silences_create},
    {"GET", "/api/v1/silences/{id}", KEY_ROLE_READ, api_silences_get},
    {"DELETE", "/api/v1/silences/{id}", KEY_ROLE_ADMIN, api_silences_delete},
    {"GET", "/api/v1/quiet-hours", KEY_ROLE_READ, api_quiet_get},
    {"PUT", "/api/v1/quiet-hours", KEY_ROLE_ADMIN, api_quiet_put},
    {"DELETE", "/api/v1/quiet-hours", KEY_ROLE_ADMIN, api_quiet_delete},
    {"GET", "/api/v1/budgets", KEY_ROLE_READ, api_budgets_list},
    {"PUT", "/api/v1/budgets", KEY_ROLE_ADMIN, api_budgets_put},
    {"GET", "/api/v1/budgets/status", KEY_ROLE_READ, api_budgets_status},
    {"GET", "/api/v1/budgets/history", KEY_ROLE_READ, api_budgets_history},
    {"GET", "/api/v1/sessions", KEY_ROLE_READ, api_sessions_list},
    /* Before {id}: a session named "stats" is not reachable by id. */
    {"GET", "/api/v1/sessions/stats", KEY_ROLE_READ, api_sessions_stats},
    {"GET", "/api/v1/sessions/{id}", KEY_ROLE_READ, api_sessions_get},
    {"GET", "/api/v1/pricing", KEY_ROLE_READ, api_pricing},
    {"GET", "/api/v1/pricing/unknown", KEY_ROLE_READ, api_pricing_unknown},
    {NULL, NULL, 0, NULL},
};

/* Match path against pattern, filling params.  Returns 1 on a match. */
static int api_match_path(const char *pattern, const char *path,
                          const char **params, int *nparams)
{
    *nparams = 0;
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (*p != '/' || *s != '/')
            return 0;
        p++;
        s++;
        const char *pe = strchr(p, '/'), *se = strchr(s, '/');
        size_t pl = pe ? (size_t)(pe - p) : strlen(p);
        size_t sl = se ? (size_t)(se - s) : strlen(s);
        if (pl > 1 && p[0] == '{' && p[pl - 1] == '}') {
            if (sl == 0 || *nparams == 4)
                return 0;
            params[(*nparams)++] = s; /* ends at the next '/' or NUL */
        } else if (pl != sl || memcmp(p, s, pl) != 0)
            return 0;
        p += pl;
        s += sl;
    }
    return *p == '\0' && *s == '\0';
}

enum api_match api_route_find(const struct api_route *table, const char *method,
                              const char *path, const struct api_route **found,
                              const char **params, char *allow, size_t allowlen)
{
    int path_seen = 0;
    allow[0] = '\0';
    for (const struct api_route *rt = table; rt->method; rt++) {
        const char *pp[4] = {NULL};
        int np;
        if (!api_match_path(rt->pattern, path, pp, &np))
            continue;
        if (strcmp(rt->method, method) == 0) {
            *found = rt;
            memcpy(params, pp, sizeof(pp));
            return API_FOUND;
        }
        size_t used = strlen(allow);
        snprintf(allow + used, allowlen - used, "%s%s", path_seen ? ", " : "",
                 rt->method);
        path_seen = 1;
    }
    return path_seen ? API_BAD_METHOD : API_NOT_FOUND;
}

void api_dispatch(struct api_req *r)
{
    const struct api_route *rt = NULL;
    char allow[64];
    const char *params[4] = {NULL};
    switch (api_route_find(api_routes, r->method, r->path, &rt, params, allow,
                           sizeof(allow))) {
    case API_NOT_FOUND:
        api_error(r, 404, "not_found", NULL, "no route for %s %s", r->method,
                  r->path);
        return;
    case API_BAD_METHOD: {
        char extra[96];
        snprintf(extra, sizeof(extra), "Allow: %s\r\n", allow);
        api_error_h(r, 405, extra, "method_not_allowed", NULL,
                    "%s is not allowed on %s; allowed: %s", r->method, r->path,
                    allow);
        return;
    }
    case API_FOUND:
        break;
    }
    /* Parameters end at the next '/': copy them out as strings. */
    for (int i = 0; i < 4 && params[i]; i++) {
        const char *end = strchr(params[i], '/');
        size_t n = end ? (size_t)(end - params[i]) : strlen(params[i]);
        r->params[i] = arena_strndup(r->arena, params[i], n);
    }
    if (rt->role != KEY_ROLE_NONE && api_auth(r, (enum key_role)rt->role) != 0)
        return;
    rt->fn(r);
}
