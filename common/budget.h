/*
 * budget.h: the budget arithmetic shared by the collector's tracker
 * (collector/budget.c) and the API's budget endpoints
 * (fcgi-app/route_budgets.c).
 *
 * A budget caps what one workspace spends in a UTC day or a UTC month,
 * optionally only on one provider and/or one model (its "scope"; "" means
 * any).  An event counts towards a budget when its ts lies in the budget's
 * current period and its provider and model match the scope.  Thresholds
 * are whole percentages of the limit (default 80, 95, 100); threshold t is
 * crossed once spend * 100 >= t * limit.
 *
 * Spend is read from the database as "cells": the cost of one workspace on
 * one provider/model in one UTC day, from the day rollups of cube
 * ROLLUP_MODEL (events 1..meta.rollup_seq) plus the raw events after
 * rollup_seq (rollup.h).  Run budget_cells_load() inside a read transaction
 * so that both parts come from one snapshot.
 *
 * Ownership: a struct budget_cells owns its malloc'ed array; release it
 * with budget_cells_free().  Every function is reentrant.
 */
#ifndef TT_BUDGET_H
#define TT_BUDGET_H

#include <stddef.h>
#include <stdint.h>

#include "event.h"

#define BUDGET_MAX_THRESHOLDS 8
#define BUDGET_MAX_PCT        1000 /* a threshold may be up to 10x the limit */
#define BUDGET_MAX_USD        1e9  /* limit_usd at most (nano-USD fit int64) */
#define BUDGET_DEFAULT_THR    "80,95,100"
#define BUDGET_DAY_MS         86400000LL

enum budget_period { BUDGET_NONE = 0, BUDGET_DAY = 1, BUDGET_MONTH = 2 };

/* "day" or "month" to enum budget_period; BUDGET_NONE for anything else. */
int budget_period_parse(const char *s);

/* The name of a period ("day", "month"; "?" when invalid). */
const char *budget_period_name(int period);

/* The UTC period holding ms: [*start, *end) in epoch ms. */
void budget_period_bounds(int period, int64_t ms, int64_t *start, int64_t *end);

/* Parse "80,95,100" (ascending, distinct, 1..BUDGET_MAX_PCT) into out
 * (BUDGET_MAX_THRESHOLDS entries).  Returns the count, or -1. */
int budget_thresholds_parse(const char *s, int *out);

/* Format thresholds as "80,95,100" into buf. */
void budget_thresholds_format(const int *t, int n, char *buf, size_t len);

/* 1 when spend reached pct percent of limit. */
int budget_crossed(int64_t spend_nusd, int64_t limit_nusd, int pct);

/* 1 when provider/model fall in the scope bprov/bmodel ("" = any). */
int budget_scope_match(const char *bprov, const char *bmodel,
                       const char *provider, const char *model);

/* The cost of one workspace on one provider/model in one UTC day. */
struct budget_cell {
    int64_t day_ms; /* start of the UTC day */
    int64_t nusd;   /* cost in nano-USD */
    char provider[EV_MAX_NAME + 1];
    char model[EV_MAX_NAME + 1];
};

/* A set of cells of one workspace (one day and model may appear twice:
 * once from the rollups, once from the raw tail; sums add them). */
struct budget_cells {
    struct budget_cell *v;
    size_t n, cap;
    int64_t rollup_seq; /* the snapshot's meta.rollup_seq */
};

struct sqlite3;

/* Append to out the cells of workspace ws for the UTC days from from_ms to
 * to_ms (both day-aligned), from the day rollups and the events after
 * rollup_seq.  out must be zeroed or hold earlier cells.  Returns 0, or a
 * SQLite error code (out then holds what was read so far). */
int budget_cells_load(struct sqlite3 *db, int64_t ws, int64_t from_ms,
                      int64_t to_ms, struct budget_cells *out);

/* The spend of cells in scope bprov/bmodel over the days in [from_ms,
 * to_ms). */
int64_t budget_cells_sum(const struct budget_cells *c, const char *bprov,
                         const char *bmodel, int64_t from_ms, int64_t to_ms);

/* Release the cells. */
void budget_cells_free(struct budget_cells *c);

#endif
