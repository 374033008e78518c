// The Analytics page's logic, kept out of Svelte so it can be tested: the
// URL query <-> the page's state, the API requests it makes (range,
// filters, bucket), API answers -> Chart series (ten at most, the rest
// folded into "Other"), overview cards, tables, and the sections an export
// holds.
import { fmtMs, fmtNum, fmtPct, fmtUsd } from './format.js';

export const VIEWS = [
  { id: 'usage', label: 'Usage' },
  { id: 'cost', label: 'Cost' },
  { id: 'performance', label: 'Performance' },
];
export const RANGES = [
  { id: '1h', label: '1 h', prev: 'previous hour' },
  { id: 'today', label: 'Today', prev: 'yesterday at this time' },
  { id: '24h', label: '24 h', prev: 'previous 24 h' },
  { id: '7d', label: '7 d', prev: 'previous 7 days' },
  { id: '30d', label: '30 d', prev: 'previous 30 days' },
  { id: '90d', label: '90 d', prev: 'previous 90 days' },
  { id: 'custom', label: 'Custom', prev: 'previous period' },
];
export const FILTERS = [
  { id: 'provider', label: 'Provider', all: 'All providers' },
  { id: 'model', label: 'Model', all: 'All models' },
  { id: 'agent', label: 'Agent', all: 'All agents' },
  { id: 'user', label: 'User', all: 'All users' },
];
export const BUCKETS = [
  { id: 'auto', label: 'Auto', ms: 0 },
  { id: '1m', label: '1 min', ms: 60e3 },
  { id: '5m', label: '5 min', ms: 300e3 },
  { id: '1h', label: '1 hour', ms: 3600e3 },
  { id: '1d', label: '1 day', ms: 86400e3 },
];
export const DIST_BY = [
  { id: 'model', label: 'Model' },
  { id: 'provider', label: 'Provider' },
  { id: 'agent', label: 'Agent' },
  { id: 'user', label: 'User' },
];

const HOUR = 3600e3, DAY = 24 * HOUR;
const RANGE_MS = { '1h': HOUR, '24h': DAY, '7d': 7 * DAY, '30d': 30 * DAY, '90d': 90 * DAY };
const MAX_POINTS = 10000; // the API's limit for an explicit bucket
const utf8 = new TextEncoder();

const isTime = (s) => typeof s === 'string' && s.length > 9 && Number.isFinite(Date.parse(s));

/**
 * The page's state from its URL query (an object): every value checked,
 * anything unknown replaced by its default, so a hand-edited link never
 * makes a request the API refuses.
 */
export function parseState(q = {}) {
  const pick = (list, v, dflt) => (list.some((x) => x.id === v) ? v : dflt);
  const st = {
    view: pick(VIEWS, q.view, 'usage'),
    range: pick(RANGES, q.range, '24h'),
    from: '',
    to: '',
    bucket: pick(BUCKETS, q.bucket, 'auto'),
    by: pick(DIST_BY, q.by, 'model'),
  };
  // A from= makes the range custom (range=custom alone, without one, is 24h).
  if (isTime(q.from) && Date.parse(q.from) >= 0) { // the API takes no from before 1970
    st.range = 'custom';
    st.from = new Date(q.from).toISOString();
    if (isTime(q.to) && Date.parse(q.to) > Date.parse(q.from)) st.to = new Date(q.to).toISOString();
  } else if (st.range === 'custom') st.range = '24h';
  for (const f of FILTERS) {
    const v = typeof q[f.id] === 'string' ? q[f.id].trim() : '';
    const n = utf8.encode(v).length;
    st[f.id] = n >= 1 && n <= 128 ? v : '';
  }
  return st;
}

/** The range part of a request: {range} or {from[, to]}. */
export function rangeParams(st) {
  if (st.range === 'custom') return st.to ? { from: st.from, to: st.to } : { from: st.from };
  return { range: st.range };
}

/** The filters set, as request parameters. */
export function filterParams(st) {
  const p = {};
  for (const f of FILTERS) if (st[f.id]) p[f.id] = st[f.id];
  return p;
}

/** How long the range is (ms), as of `now`. */
export function rangeSpan(st, now = Date.now()) {
  if (st.range === 'today') return Math.max(1, now - Math.floor(now / DAY) * DAY);
  if (st.range === 'custom') return Math.max(1, (st.to ? Date.parse(st.to) : now) - Date.parse(st.from));
  return RANGE_MS[st.range] ?? DAY;
}

/**
 * The buckets worth offering for the range: auto, and those that give at
 * least two points but no more than the API allows.
 */
export function bucketChoices(st, now = Date.now()) {
  const span = rangeSpan(st, now);
  return BUCKETS.filter((b) => !b.ms || (span >= 2 * b.ms && Math.ceil(span / b.ms) + 1 <= MAX_POINTS));
}

/** The bucket to ask for: the chosen one if the range allows it, else auto. */
export function effectiveBucket(st, now = Date.now()) {
  return bucketChoices(st, now).some((b) => b.id === st.bucket) ? st.bucket : 'auto';
}

/** path?range...&filters...&extra... (extra's null/undefined values left out). */
export function apiPath(path, st, extra = {}) {
  const q = new URLSearchParams({ ...rangeParams(st), ...filterParams(st) });
  for (const [k, v] of Object.entries(extra)) if (v != null && v !== '') q.set(k, v);
  return path + '?' + q.toString();
}

/** Every request a view makes, by name: {overview: '/api/v1/...', ...}. */
export function requestsFor(st, now = Date.now()) {
  const b = effectiveBucket(st, now);
  const bucket = b === 'auto' ? null : b;
  const u = (p, extra) => apiPath('/api/v1/' + p, st, extra);
  if (st.view === 'cost')
    return {
      overview: u('cost/overview'),
      trend: u('cost/trend', { bucket, group_by: 'model' }),
      byModel: u('cost/by-model'),
      byProvider: u('cost/by-provider'),
    };
  if (st.view === 'performance')
    return {
      overview: u('performance/overview'),
      latency: u('performance/latency', { bucket }),
      throughput: u('performance/throughput', { bucket }),
      errors: u('performance/errors'),
    };
  return {
    overview: u('usage/overview'),
    timeseries: u('usage/timeseries', { bucket }),
    distribution: u('usage/distribution', { by: st.by }),
    topUsers: u('usage/top-users', { limit: 10 }),
  };
}

/** The requests that list the values seen in the range, for the filters' choices. */
export function optionRequests(st) {
  const range = { ...st, provider: '', model: '', agent: '', user: '' };
  return {
    model: apiPath('/api/v1/usage/distribution', range, { by: 'model' }),
    agent: apiPath('/api/v1/usage/distribution', range, { by: 'agent' }),
    user: apiPath('/api/v1/usage/distribution', range, { by: 'user' }),
  };
}

/** {provider: [...], model: [{provider, model}], agent: [...], user: [...]} from those answers. */
export function filterOptions({ model, agent, user } = {}) {
  const names = (a, k) => [...new Set((a?.items ?? []).map((i) => i[k]).filter((v) => v))].sort();
  const models = (model?.items ?? []).filter((i) => i.model)
    .map((i) => ({ provider: i.provider, model: i.model }))
    .sort((a, b) => a.model.localeCompare(b.model) || String(a.provider).localeCompare(b.provider));
  return {
    provider: names(model, 'provider'),
    model: models,
    agent: names(agent, 'agent'),
    user: names(user, 'user'),
  };
}

/**
 * The window just before the one an answer covered, to compare with:
 * `today` against yesterday up to the same time, the others against the
 * same length just before.  {from, to} as RFC 3339, or null.
 */
export function previousWindow(st, answer) {
  const f = Date.parse(answer?.from), t = Date.parse(answer?.to);
  if (!Number.isFinite(f) || !Number.isFinite(t) || t <= f) return null;
  const shift = st.range === 'today' ? DAY : t - f;
  return { from: new Date(f - shift).toISOString(), to: new Date(t - shift).toISOString() };
}

/** The overview request for the previous window, with the same filters. */
export function previousPath(st, answer) {
  const w = previousWindow(st, answer);
  if (!w) return null;
  const path = { usage: 'usage/overview', cost: 'cost/overview', performance: 'performance/overview' }[st.view];
  return apiPath('/api/v1/' + path, { ...st, range: 'custom', from: w.from, to: w.to });
}

/** Percent change from prev to cur: null if unknown, Infinity from zero. */
export function pctChange(cur, prev) {
  if (cur == null || prev == null || !Number.isFinite(cur) || !Number.isFinite(prev)) return null;
  if (prev === 0) return cur === 0 ? 0 : Infinity;
  return ((cur - prev) / Math.abs(prev)) * 100;
}

/** "+12.5%", "-3%", "no change", "new" (nothing before). */
export function fmtChange(c) {
  if (c == null) return '';
  if (c === Infinity) return 'new';
  if (Math.abs(c) < 0.05) return 'no change';
  return (c > 0 ? '+' : '') + fmtPct(c);
}

// ---------------------------------------------------------------- series

export const BUCKET_MS = Object.fromEntries(BUCKETS.filter((b) => b.ms).map((b) => [b.id, b.ms]));

/**
 * The start (ms) of every bucket of an answer, as the API counts them:
 * from the bucket holding `from` to the one holding the last millisecond
 * before `to`, aligned to UTC.
 */
export function bucketStarts(from, to, bucket) {
  const f = Date.parse(from), t = Date.parse(to), b = BUCKET_MS[bucket];
  if (!b || !Number.isFinite(f) || !Number.isFinite(t) || t <= f) return [];
  const out = [];
  for (let x = Math.floor(f / b) * b; x <= t - 1; x += b) out.push(x);
  return out;
}

/**
 * Series from ungrouped points, one per field:
 * fields = [{name: 'Calls', get: (p) => p.calls}] -> [{name, points: [[ms, v]]}].
 */
export function pointSeries(points, fields) {
  const ps = points ?? [];
  return fields.map((f) => ({
    name: f.name,
    points: ps.map((p) => [Date.parse(p.ts), f.get(p) ?? null]),
  }));
}

/**
 * Series from points grouped per bucket and group (absent = 0): the
 * biggest groups by total, at most `max` series, the others summed into
 * "Other".  `key` tells groups apart, `label` names them (a label two
 * groups share falls back to `altLabel`), `value` is what is plotted;
 * `times` (bucket starts) fills every bucket so stacks stay whole.
 */
export function groupedSeries(points, { key, label, altLabel = key, value, times = null, max = 10,
                                        other = 'Other' }) {
  const groups = new Map(); // key -> {label, total, at: Map(ms -> v)}
  const ts = new Set(times ?? []);
  for (const p of points ?? []) {
    const k = key(p), t = Date.parse(p.ts), v = value(p) ?? 0;
    ts.add(t);
    let g = groups.get(k);
    if (!g) groups.set(k, (g = { label: label(p), alt: altLabel(p), total: 0, at: new Map() }));
    g.total += v;
    g.at.set(t, (g.at.get(t) ?? 0) + v);
  }
  const xs = [...ts].sort((a, b) => a - b);
  const all = [...groups.values()].sort((a, b) => b.total - a.total || a.label.localeCompare(b.label));
  const top = all.length > max ? all.slice(0, max - 1) : all;
  const rest = all.slice(top.length);
  const seen = new Map();
  for (const g of top) seen.set(g.label, (seen.get(g.label) ?? 0) + 1);
  const out = top.map((g) => ({
    name: seen.get(g.label) > 1 ? g.alt : g.label,
    points: xs.map((t) => [t, g.at.get(t) ?? 0]),
  }));
  if (rest.length)
    out.push({
      name: other,
      points: xs.map((t) => [t, rest.reduce((s, g) => s + (g.at.get(t) ?? 0), 0)]),
    });
  return out;
}

const none = (v) => (v == null || v === '' ? '(none)' : String(v));
const dimName = (by, i) => none(i?.[by]);

/** Distribution items as grouped bars (calls and errors), the tail folded into "Other". */
export function distributionBars(answer, by, max = 12) {
  const items = answer?.items ?? [];
  const top = items.length > max ? items.slice(0, max - 1) : items;
  const rest = items.slice(top.length);
  const categories = top.map((i) => dimName(by, i));
  const calls = top.map((i) => i.calls);
  const errors = top.map((i) => i.errors);
  if (rest.length) {
    categories.push('Other (' + rest.length + ')');
    calls.push(rest.reduce((s, i) => s + i.calls, 0));
    errors.push(rest.reduce((s, i) => s + i.errors, 0));
  }
  return { categories, series: [{ name: 'Calls', values: calls }, { name: 'Errors', values: errors }] };
}

/**
 * Bar labels cut to fit the room Chart gives them (it draws every
 * ceil(n * 60 / width)-th label, centred on its bar), so long model names
 * do not run into each other.  charW: the width of a character at 11 px.
 */
export function shortLabels(categories, plotWidth, charW = 6.2) {
  const n = categories.length;
  if (!n || !(plotWidth > 0)) return categories;
  const every = Math.max(1, Math.ceil((n * 60) / plotWidth));
  const max = Math.max(4, Math.floor(((plotWidth / n) * every - 8) / charW));
  return categories.map((c) => (c.length > max ? c.slice(0, max - 1) + '…' : c));
}

/** Every chart of a view from its answers: [{id, title, kind, yType, series}]. */
export function chartsFor(view, a) {
  const times = (ans) => bucketStarts(ans?.from, ans?.to, ans?.bucket);
  if (view === 'cost') {
    return [{
      id: 'trend', title: 'Spend by model', kind: 'stacked', yType: 'usd',
      series: a.trend ? groupedSeries(a.trend.points, {
        key: (p) => p.provider + '\u0000' + p.model,
        label: (p) => none(p.model),
        altLabel: (p) => none(p.provider) + '/' + none(p.model),
        value: (p) => p.cost_usd,
        times: times(a.trend),
      }) : [],
    }];
  }
  if (view === 'performance') {
    return [
      { id: 'latency', title: 'Latency percentiles', kind: 'line', yType: 'ms',
        series: a.latency ? pointSeries(a.latency.points, [
          { name: 'P50', get: (p) => p.p50 },
          { name: 'P95', get: (p) => p.p95 },
          { name: 'P99', get: (p) => p.p99 },
        ]) : [] },
      { id: 'throughput', title: 'Successful and failed calls', kind: 'stacked', yType: 'int',
        series: a.throughput ? pointSeries(a.throughput.points, [
          { name: 'Success', get: (p) => p.success },
          { name: 'Errors', get: (p) => p.errors },
        ]) : [] },
    ];
  }
  const tokens = a.timeseries ? pointSeries(a.timeseries.points, [
    { name: 'Input', get: (p) => p.tokens?.input },
    { name: 'Output', get: (p) => p.tokens?.output },
    { name: 'Cache read', get: (p) => p.tokens?.cache_read },
    { name: 'Cache write', get: (p) => p.tokens?.cache_write },
  ]) : [];
  // Cache series that stay at zero are noise.
  const shown = tokens.filter((s, k) => k < 2 || s.points.some((p) => p[1]));
  return [
    { id: 'calls', title: 'Calls and errors', kind: 'line', yType: 'int',
      series: a.timeseries ? pointSeries(a.timeseries.points, [
        { name: 'Calls', get: (p) => p.calls },
        { name: 'Errors', get: (p) => p.errors },
      ]) : [] },
    { id: 'tokens', title: 'Tokens', kind: 'stacked', yType: 'compact', series: shown },
  ];
}

// ---------------------------------------------------------------- tables

const intFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const timeFmt = new Intl.DateTimeFormat(undefined, {
  month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
});
const clockFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });

/** A time in a table: the clock for today, else the day and time. */
export function fmtWhen(v, now = Date.now()) {
  const t = Date.parse(v);
  return new Date(t).toDateString() === new Date(now).toDateString() ? clockFmt.format(t) : timeFmt.format(t);
}

/** A value as the page shows it, by its type. */
export function formatValue(type, v) {
  if (type === 'text') return v == null || v === '' ? '(none)' : String(v);
  if (v == null || (typeof v === 'number' && !Number.isFinite(v))) return '–';
  switch (type) {
    case 'int': return intFmt.format(v);
    case 'usd': return fmtUsd(v);
    case 'pct': return fmtPct(v);
    case 'ms': return fmtMs(v);
    case 'rate': return v < 1 ? fmtNum(v * 60) + ' / min' : fmtNum(v) + ' / s';
    case 'time': return fmtWhen(v);
    default: return fmtNum(v);
  }
}

const tok = (i) => i.tokens?.total ?? (typeof i.tokens === 'number' ? i.tokens : null);
const col = (key, label, type, get = (i) => i[key]) => ({ key, label, type, get });
const share = (key = 'share', label = 'Share') => col(key, label, 'pct');
const errCols = [col('errors', 'Errors', 'int'), share('share_of_errors', 'Of errors'),
  share('share_of_calls', 'Of calls'), col('last_seen', 'Last seen', 'time')];

/** The tables the page shows: columns {key, label, type, get} and where the rows are. */
export const TABLES = {
  topUsers: {
    title: 'Top users', from: 'users',
    columns: [col('user', 'User', 'text'), col('calls', 'Calls', 'int'), col('errors', 'Errors', 'int'),
      col('tokens', 'Tokens', 'int', tok), share(), col('cost_usd', 'Cost', 'usd')],
  },
  byModel: {
    title: 'Spend by model', from: 'models',
    columns: [col('model', 'Model', 'text'), col('provider', 'Provider', 'text'),
      col('cost_usd', 'Cost', 'usd'), share(), col('calls', 'Calls', 'int'),
      col('tokens', 'Tokens', 'int', tok), col('avg_cost_per_call', 'Per call', 'usd'),
      col('cost_per_1k_tokens', 'Per 1k tokens', 'usd')],
  },
  byProvider: {
    title: 'Spend by provider', from: 'providers',
    columns: [col('provider', 'Provider', 'text'), col('cost_usd', 'Cost', 'usd'), share(),
      col('calls', 'Calls', 'int'), col('tokens', 'Tokens', 'int', tok),
      col('avg_cost_per_call', 'Per call', 'usd'), col('cost_per_1k_tokens', 'Per 1k tokens', 'usd')],
  },
  errorsByType: {
    title: 'Errors by type', from: 'by_type',
    columns: [col('error_type', 'Type', 'text', (i) => i.error_type ?? 'status only'), ...errCols],
  },
  errorsByStatus: {
    title: 'Errors by HTTP status', from: 'by_status',
    columns: [col('status', 'Status', 'text', (i) => i.status ?? 'no status'), ...errCols],
  },
  errorsByModel: {
    title: 'Errors by model', from: 'by_model',
    columns: [col('model', 'Model', 'text'), col('provider', 'Provider', 'text'), ...errCols],
  },
};

/** The distribution's table, its first column named after `by`. */
export function distributionTable(by) {
  const name = DIST_BY.find((d) => d.id === by)?.label ?? by;
  return {
    title: 'Calls by ' + name.toLowerCase(), from: 'items',
    columns: [col(by, name, 'text'), ...(by === 'model' ? [col('provider', 'Provider', 'text')] : []),
      col('calls', 'Calls', 'int'), col('errors', 'Errors', 'int'), col('tokens', 'Tokens', 'int', tok),
      share(), col('cost_usd', 'Cost', 'usd')],
  };
}

/** The rows of a table from an answer: arrays of raw values, in column order. */
export function tableRows(def, answer) {
  return (answer?.[def.from] ?? []).map((i) => def.columns.map((c) => c.get(i) ?? null));
}

// ---------------------------------------------------------------- cards

/**
 * The overview cards of a view: [{id, label, value, type, hint, change}],
 * change in percent against the previous window's answer (null if not known).
 */
export function cardsFor(view, o, prev = null) {
  if (!o) return [];
  const c = (id, label, value, type, { hint = '', compare = true, before } = {}) => ({
    id, label, value, type, hint,
    change: compare && prev ? pctChange(value, before ? before(prev) : prev[id]) : null,
  });
  if (view === 'cost') {
    const d = o.projection?.day, m = o.projection?.month;
    return [
      c('cost_usd', 'Spend', o.cost_usd, 'usd'),
      c('avg_cost_per_call', 'Cost per call', o.avg_cost_per_call, 'usd'),
      c('cost_per_1k_tokens', 'Cost per 1k tokens', o.cost_per_1k_tokens, 'usd'),
      c('day_spent', 'Today so far (UTC)', d?.spent_usd, 'usd',
        { compare: false, hint: 'projected ' + fmtUsd(d?.projected_usd) }),
      c('month_spent', 'This month so far', m?.spent_usd, 'usd',
        { compare: false, hint: 'projected ' + fmtUsd(m?.projected_usd) }),
    ];
  }
  if (view === 'performance') {
    const l = o.latency_ms ?? {}, t = o.ttft_ms ?? {};
    const lat = (k) => (p) => p.latency_ms?.[k];
    return [
      c('p50', 'P50 latency', l.p50, 'ms', { before: lat('p50') }),
      c('p95', 'P95 latency', l.p95, 'ms', { before: lat('p95') }),
      c('p99', 'P99 latency', l.p99, 'ms', { before: lat('p99') }),
      c('ttft_p95', 'P95 time to first token', t.p95, 'ms', { before: (p) => p.ttft_ms?.p95 }),
      c('error_rate', 'Error rate', o.error_rate, 'pct',
        { hint: formatValue('int', o.errors) + ' of ' + formatValue('int', o.calls) + ' calls' }),
      c('throughput_rps', 'Throughput', o.throughput_rps, 'rate'),
    ];
  }
  const tk = o.tokens ?? {};
  return [
    c('calls', 'Calls', o.calls, 'int'),
    c('errors', 'Errors', o.errors, 'int',
      { hint: fmtPct(o.calls ? (100 * o.errors) / o.calls : 0) + ' of calls' }),
    c('tokens', 'Tokens', tk.total, 'compact', {
      before: (p) => p.tokens?.total,
      hint: fmtNum(tk.input) + ' in · ' + fmtNum(tk.output) + ' out',
    }),
    c('unique_users', 'Users', o.unique_users, 'int'),
    c('active_agents', 'Agents', o.active_agents, 'int'),
    c('calls_per_user', 'Calls per user', o.calls_per_user, 'num'),
  ];
}

// ---------------------------------------------------------------- export

/** A chart's series as a table: time, then one column per series. */
export function seriesSection(id, title, series) {
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  const at = series.map((s) => new Map(s.points));
  return {
    id, title,
    columns: ['time', ...series.map((s) => s.name)],
    rows: xs.map((x) => [new Date(x).toISOString(), ...at.map((m) => m.get(x) ?? null)]),
  };
}

/** A table as a section: its column labels and raw rows. */
export function tableSection(id, def, answer) {
  return { id, title: def.title, columns: def.columns.map((c) => c.key), rows: tableRows(def, answer) };
}

/** The tables each view shows, by answer name. */
export function tablesFor(st) {
  if (st.view === 'cost') return [['byModel', TABLES.byModel, 'byModel'], ['byProvider', TABLES.byProvider, 'byProvider']];
  if (st.view === 'performance')
    return [['errorsByType', TABLES.errorsByType, 'errors'], ['errorsByStatus', TABLES.errorsByStatus, 'errors'],
      ['errorsByModel', TABLES.errorsByModel, 'errors']];
  return [['distribution', distributionTable(st.by), 'distribution'], ['topUsers', TABLES.topUsers, 'topUsers']];
}

/**
 * What a view shows, as sections for an export: the overview, every
 * chart's series and every table, from the answers that arrived (a failed
 * one is left out and named in `missing`).
 */
export function viewSections(st, answers) {
  const sections = [];
  const missing = [];
  if (answers.overview) {
    const cards = cardsFor(st.view, answers.overview, answers.prev);
    sections.push({
      id: 'summary', title: 'Summary', columns: ['metric', 'value', 'change_pct'],
      rows: cards.map((k) => [k.id, k.value ?? null,
        k.change == null || !Number.isFinite(k.change) ? null : +k.change.toFixed(2)]),
    });
  } else missing.push('summary');
  for (const ch of chartsFor(st.view, answers)) {
    if (ch.series.length) sections.push(seriesSection(ch.id, ch.title, ch.series));
    else missing.push(ch.id);
  }
  for (const [id, def, from] of tablesFor(st)) {
    if (answers[from]) sections.push(tableSection(id, def, answers[from]));
    else missing.push(id);
  }
  return { sections, missing };
}

/**
 * The export's description of what was asked and answered: view, range,
 * window (of `answer`, an overview), filters, bucket (the one the charts'
 * answers used, else the one asked for).
 */
export function exportMeta(st, answer, now = new Date(), usedBucket = null) {
  return {
    view: st.view,
    range: st.range,
    from: answer?.from ?? (st.range === 'custom' ? st.from : null),
    to: answer?.to ?? (st.range === 'custom' ? st.to || null : null),
    bucket: usedBucket ?? effectiveBucket(st, now.getTime()),
    filters: filterParams(st),
    ...(st.view === 'usage' ? { distribution_by: st.by } : {}),
    generated_at: now.toISOString(),
  };
}

// ---------------------------------------------------------------- custom range inputs

const pad = (n) => String(n).padStart(2, '0');

/** An instant (RFC 3339 or ms) as a datetime-local input's value, in local time. */
export function toLocalInput(t) {
  const d = new Date(typeof t === 'number' ? t : Date.parse(t));
  if (Number.isNaN(d.getTime())) return '';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** A datetime-local input's value (local time) as RFC 3339 UTC, or '' if empty or invalid. */
export function fromLocalInput(v) {
  if (!v) return '';
  const m = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d)(?::(\d\d))?$/.exec(v);
  if (!m) return '';
  const d = new Date(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] ?? 0));
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

/** What is wrong with a custom range (inputs' values), or ''. */
export function customRangeError(fromV, toV, now = Date.now()) {
  const f = fromLocalInput(fromV), t = toV ? fromLocalInput(toV) : '';
  if (!f) return 'Choose when the range starts.';
  if (Date.parse(f) < 0) return 'The range cannot start before 1970.';
  if (toV && !t) return 'The end is not a valid date and time.';
  if (Date.parse(t || new Date(now).toISOString()) <= Date.parse(f)) return 'The end must be after the start.';
  return '';
}
