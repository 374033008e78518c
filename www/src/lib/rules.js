// Alert rules in the browser: the API's rule JSON <-> the form the rule
// builder edits (a condition tree with stable ids for Svelte's keyed
// lists), the rule in words, durations, and where the API's 400
// invalid_field `field` path points in the form.  Pure: no DOM, no fetch.
import { fmtMs, fmtNum, fmtPct, fmtUsd } from './format.js';

// The API's limits (common/alert.h).
export const MAX_DEPTH = 5; // levels, the root group is level 1
export const MAX_CONDITIONS = 32;
export const MAX_NODES = 64; // groups and conditions together
export const MAX_CHANNELS = 16;

// unit: how a threshold or a value of the metric reads.
export const METRICS = [
  { value: 'requests', label: 'requests', unit: 'count' },
  { value: 'errors', label: 'errors', unit: 'count' },
  { value: 'error_rate', label: 'error rate', unit: 'pct' },
  { value: 'cost', label: 'cost', unit: 'usd' },
  { value: 'input_tokens', label: 'input tokens', unit: 'count' },
  { value: 'output_tokens', label: 'output tokens', unit: 'count' },
  { value: 'total_tokens', label: 'total tokens', unit: 'count' },
  { value: 'rps', label: 'requests/s', unit: 'count' },
  { value: 'latency_p50', label: 'P50 latency', unit: 'ms' },
  { value: 'latency_p95', label: 'P95 latency', unit: 'ms' },
  { value: 'latency_p99', label: 'P99 latency', unit: 'ms' },
  { value: 'ttft_p95', label: 'P95 time to first token', unit: 'ms' },
  { value: 'cost_change_percent', label: 'cost change', unit: 'pct' },
  { value: 'requests_change_percent', label: 'requests change', unit: 'pct' },
  { value: 'budget_used_percent', label: 'budget used', unit: 'pct' },
];
const metricBy = Object.fromEntries(METRICS.map((m) => [m.value, m]));

export const OPERATORS = [
  { value: '>', label: '>' },
  { value: '>=', label: '≥' },
  { value: '<', label: '<' },
  { value: '<=', label: '≤' },
  { value: '==', label: '=' },
  { value: '!=', label: '≠' },
];
const opWord = Object.fromEntries(OPERATORS.map((o) => [o.value, o.label]));
/** An operator as it reads: ">=" -> "≥". */
export const operatorWord = (op) => opWord[op] ?? op;

export const SEVERITIES = ['critical', 'high', 'medium', 'low'];
export const DIMENSIONS = ['provider', 'model', 'agent', 'user', 'api_key'];
export const NO_DATA = [
  { value: 'ok', label: 'treat as OK' },
  { value: 'keep', label: 'keep the state' },
  { value: 'alert', label: 'treat as alerting' },
];
const dimWord = { provider: 'provider', model: 'model', agent: 'agent', user: 'user',
                  api_key: 'API key' };

/** The unit suffix shown next to a metric's threshold input. */
export function metricUnit(metric) {
  return { pct: '%', ms: 'ms', usd: '$', count: '' }[metricBy[metric]?.unit] ?? '';
}
export function metricLabel(metric, period) {
  if (metric === 'budget_used_percent')
    return (period === 'month' ? 'monthly' : 'daily') + ' budget used';
  return metricBy[metric]?.label ?? metric;
}

// ---- durations ("0", "30s", "5m", "2h", "7d") ----

const UNIT_MS = { s: 1000, m: 60000, h: 3600000, d: 86400000 };
const UNIT_WORD = { s: 'second', m: 'minute', h: 'hour', d: 'day' };

/** "5m" -> 300000; "0" -> 0; anything else -> null (as the API reads it). */
export function parseDuration(s) {
  if (typeof s !== 'string') return null;
  if (s === '0') return 0;
  const m = /^(\d+)([smhd])$/.exec(s);
  return m ? Number(m[1]) * UNIT_MS[m[2]] : null;
}

/** ms -> the API's canonical form: the largest whole unit ("5m", "90s", "0s"). */
export function formatDuration(ms) {
  if (!(ms > 0)) return '0s';
  for (const u of ['d', 'h', 'm'])
    if (ms % UNIT_MS[u] === 0) return ms / UNIT_MS[u] + u;
  return Math.floor(ms / 1000) + 's';
}

/** "5m" -> {n: 5, unit: 'm'} for a number input and a unit select. */
export function durationParts(s) {
  const ms = parseDuration(s);
  if (ms === null) return { n: '', unit: 'm' };
  const c = formatDuration(ms);
  return { n: Number(c.slice(0, -1)), unit: c.slice(-1) };
}
export function joinDuration(n, unit) {
  if (n === '' || n === null || n === undefined || !Number.isInteger(Number(n)) || Number(n) < 0)
    return '';
  return Number(n) + unit;
}

/** "5m" -> "5 minutes", "1h" -> "1 hour", "0s" -> "0 seconds"; null if bad. */
export function durationWords(s) {
  const ms = parseDuration(s);
  if (ms === null) return null;
  const c = formatDuration(ms);
  const n = Number(c.slice(0, -1));
  return n + ' ' + UNIT_WORD[c.slice(-1)] + (n === 1 ? '' : 's');
}

// ---- the editable condition tree ----

let seq = 0;
/** A fresh id for a node (unique in this page's life). */
export function nodeId() {
  return 'n' + ++seq;
}
export function newCondition(c = {}) {
  return { id: nodeId(), kind: 'cond', metric: c.metric ?? 'error_rate',
           operator: c.operator ?? '>', threshold: c.threshold ?? 5,
           period: c.period ?? 'day' };
}
export function newGroup(op = 'and', children = null) {
  return { id: nodeId(), kind: 'group', op, children: children ?? [newCondition()] };
}

/**
 * The API's condition (a group or a single condition) as an editable tree;
 * the root is always a group, so a single condition becomes a group of one.
 */
export function toTree(c) {
  const node = (x) =>
    x && (x.op !== undefined || x.conditions !== undefined)
      ? { id: nodeId(), kind: 'group', op: x.op === 'or' ? 'or' : 'and',
          children: (x.conditions ?? []).map(node) }
      : newCondition({ metric: x?.metric, operator: x?.operator,
                       threshold: x?.threshold, period: x?.period });
  const root = node(c);
  return root.kind === 'group' ? root : newGroup('and', [root]);
}

/** A threshold from an input: a number, or null when it is not one. */
function threshold(v) {
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  return null;
}

// A root group of one condition is sent as that condition (the API takes
// either), so a rule made of one condition reads back the same.
const unwrapRoot = (tree) => tree.kind === 'group' && tree.children.length === 1 &&
  tree.children[0].kind === 'cond';

/** The tree as the API's condition. */
export function treeToCondition(tree) {
  const out = (n) => {
    if (n.kind === 'group') return { op: n.op, conditions: n.children.map(out) };
    const c = { metric: n.metric, operator: n.operator, threshold: threshold(n.threshold) };
    if (n.metric === 'budget_used_percent') c.period = n.period || 'day';
    return c;
  };
  return unwrapRoot(tree) ? out(tree.children[0]) : out(tree);
}

/**
 * What each node is: {n (conditions and groups each numbered from 1 in
 * order), depth (the root is 1), path (the API's path of it, as its 400
 * errors name it), parent}.  A Map by node id.
 */
export function treeInfo(tree) {
  const info = new Map();
  let nc = 0, ng = 0;
  const walk = (node, depth, path, parent) => {
    info.set(node.id, { n: node.kind === 'group' ? ++ng : ++nc, depth, path, parent });
    if (node.kind === 'group')
      node.children.forEach((c, i) =>
        walk(c, depth + 1, unwrapRoot(tree) && node === tree ? 'condition'
          : path + '.conditions[' + i + ']', node));
  };
  walk(tree, 1, 'condition', null);
  return info;
}

export function countConditions(node) {
  return node.kind === 'group' ? node.children.reduce((a, c) => a + countConditions(c), 0) : 1;
}
export function countNodes(node) {
  return node.kind === 'group' ? 1 + node.children.reduce((a, c) => a + countNodes(c), 0) : 1;
}
/** Levels of the tree: a condition alone is 1, a group of conditions 2. */
export function treeDepth(node) {
  return node.kind === 'group' ? 1 + Math.max(0, ...node.children.map(treeDepth)) : 1;
}

/** May a condition be added to a group at depth d (the root is 1)? */
export function canAddCondition(tree, depth) {
  return depth + 1 <= MAX_DEPTH && countConditions(tree) < MAX_CONDITIONS &&
    countNodes(tree) < MAX_NODES;
}
/** May a group (with its first condition) be added to a group at depth d? */
export function canAddGroup(tree, depth) {
  return depth + 2 <= MAX_DEPTH && countConditions(tree) < MAX_CONDITIONS &&
    countNodes(tree) + 2 <= MAX_NODES;
}

/** Find the group holding the node id: {group, index}, or null. */
export function findParent(tree, id) {
  if (tree.kind !== 'group') return null;
  for (let i = 0; i < tree.children.length; i++) {
    if (tree.children[i].id === id) return { group: tree, index: i };
    const r = findParent(tree.children[i], id);
    if (r) return r;
  }
  return null;
}

/** Remove node id from the tree (in place); a group keeps at least one child. */
export function removeNode(tree, id) {
  const p = findParent(tree, id);
  if (!p || p.group.children.length < 2) return false;
  p.group.children.splice(p.index, 1);
  return true;
}

// ---- the rule <-> the form ----

/** A new rule's form. */
export function emptyForm() {
  return formFromRule({
    name: '', description: '', enabled: true, severity: 'medium',
    condition: { op: 'and', conditions: [{ metric: 'error_rate', operator: '>', threshold: 5 }] },
    window: '5m', for: '0s', cooldown: '15m', renotify: '0s', group_by: [], filters: {},
    no_data: 'ok', channels: [], labels: {}, annotations: {},
  });
}

/** The API's rule as the builder's form. */
export function formFromRule(r) {
  const filters = {};
  for (const d of DIMENSIONS) filters[d] = r.filters?.[d] ?? '';
  return {
    name: r.name ?? '',
    description: r.description ?? '',
    enabled: r.enabled !== false,
    severity: r.severity ?? 'medium',
    tree: toTree(r.condition ?? { op: 'and', conditions: [] }),
    window: r.window ?? '5m',
    for: r.for ?? '0s',
    cooldown: r.cooldown ?? '0s',
    renotify: r.renotify ?? '0s',
    group_by: DIMENSIONS.filter((d) => (r.group_by ?? []).includes(d)),
    filters,
    no_data: r.no_data ?? 'ok',
    channels: [...(r.channels ?? [])],
    // Not edited here, kept as they were (PUT replaces the whole rule).
    labels: { ...(r.labels ?? {}) },
    annotations: { ...(r.annotations ?? {}) },
  };
}

/** The form as the body of POST/PUT /api/v1/alerts/rules (and of a test). */
export function ruleFromForm(f) {
  const filters = {};
  for (const d of DIMENSIONS) {
    const v = (f.filters?.[d] ?? '').trim();
    if (v) filters[d] = v;
  }
  return {
    name: f.name.trim(),
    description: f.description,
    enabled: !!f.enabled,
    severity: f.severity,
    condition: treeToCondition(f.tree),
    window: f.window,
    for: f.for,
    cooldown: f.cooldown,
    renotify: f.renotify,
    group_by: DIMENSIONS.filter((d) => f.group_by.includes(d)),
    filters,
    no_data: f.no_data,
    channels: [...f.channels],
    labels: f.labels ?? {},
    annotations: f.annotations ?? {},
  };
}

// ---- in words ----

const exact = new Intl.NumberFormat('en-US', { maximumFractionDigits: 6 });

/** A threshold as it reads: 5 -> "5%", 2000 -> "2 s", 0.5 -> "$0.5". */
export function thresholdWords(metric, t) {
  const v = threshold(t);
  if (v === null) return '?';
  switch (metricBy[metric]?.unit) {
    case 'pct': return exact.format(v) + '%';
    case 'ms': return Math.abs(v) >= 1000 ? exact.format(v / 1000) + ' s' : exact.format(v) + ' ms';
    case 'usd': return (v < 0 ? '-$' : '$') + exact.format(Math.abs(v));
    default: return exact.format(v);
  }
}

/** A measured value of a metric, rounded for reading; "no data" for null. */
export function valueWords(metric, v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return 'no data';
  switch (metricBy[metric]?.unit) {
    case 'pct': return fmtPct(v);
    case 'ms': return fmtMs(v);
    case 'usd': return fmtUsd(v);
    default: return fmtNum(v);
  }
}

/** One condition: "error rate > 5%". */
export function conditionText(c) {
  return metricLabel(c.metric, c.period) + ' ' + operatorWord(c.operator) + ' ' +
    thresholdWords(c.metric, c.threshold);
}

/** A condition tree (editable or the API's) in words, nested groups in brackets. */
export function conditionWords(node, top = true) {
  if (!node) return '?';
  const kids = node.children ?? node.conditions;
  if (!kids) return conditionText(node);
  if (kids.length === 0) return '?';
  if (kids.length === 1) return conditionWords(kids[0], top);
  const s = kids.map((k) => conditionWords(k, false)).join(node.op === 'or' ? ' or ' : ' and ');
  return top ? s : '(' + s + ')';
}

function list(words) {
  if (words.length < 2) return words.join('');
  return words.slice(0, -1).join(', ') + ' and ' + words[words.length - 1];
}

/**
 * The rule in words: "Fires when requests ≥ 10 and (error rate > 5% or P95
 * latency > 2 s) over 5 minutes, held for 2 minutes, per model, for
 * provider openai".  Takes the form or the API's rule.
 */
export function ruleWords(r) {
  const cond = conditionWords(r.tree ?? r.condition);
  let s = 'Fires when ' + cond + ' over ' + (durationWords(r.window) ?? '?');
  const forMs = parseDuration(r.for);
  if (forMs === null) s += ', held for ?';
  else if (forMs > 0) s += ', held for ' + durationWords(r.for);
  const by = DIMENSIONS.filter((d) => (r.group_by ?? []).includes(d));
  if (by.length) s += ', per ' + list(by.map((d) => dimWord[d]));
  const fl = DIMENSIONS.map((d) => [d, (r.filters?.[d] ?? '').trim()]).filter(([, v]) => v);
  if (fl.length) s += ', for ' + list(fl.map(([d, v]) => dimWord[d] + ' ' + v));
  return s;
}

/** Notifications in words: cooldown and renotify ("" when neither is set). */
export function notifyWords(r) {
  const parts = [];
  if (parseDuration(r.cooldown) > 0)
    parts.push('at most one notification every ' + durationWords(r.cooldown));
  if (parseDuration(r.renotify) > 0)
    parts.push('repeated every ' + durationWords(r.renotify) + ' while it fires');
  return parts.join('; ');
}

// ---- the API's field errors ----

/** The id of the input for an API field path: "condition.conditions[1].operator" -> "f-condition-conditions-1-operator". */
export function fieldId(path) {
  return 'f-' + String(path).replace(/\W+/g, '-').replace(/-$/, '');
}

/** An API message without the field path it starts with, as a sentence. */
export function fieldMessage(err) {
  if (!err) return '';
  let m = err.message ?? '';
  if (err.field && m.startsWith(err.field + ' ')) m = m.slice(err.field.length + 1);
  return m.charAt(0).toUpperCase() + m.slice(1);
}

/**
 * The error of one field: err ({field, message}) when its field is path
 * or path + '.' + one of names, else null.
 */
export function errorAt(err, path, names = []) {
  if (!err || !err.field) return null;
  if (err.field === path) return err;
  return names.some((n) => err.field === path + '.' + n) ? err : null;
}

// Fields a rule or a silence has: the first word of a 400 invalid_field
// message is one of these (or a path under one) when the answer names
// no field of its own.
const FIELD_ROOTS = ['name', 'description', 'enabled', 'severity', 'condition', 'window', 'for',
  'cooldown', 'renotify', 'group_by', 'filters', 'no_data', 'channels', 'labels', 'annotations',
  'matchers', 'comment', 'duration', 'starts_at', 'ends_at', 'note', 'who'];

/**
 * The field an API error is about, as {field, message}, or null: the
 * error's own `field`, else (an answer that names none, such as the 409
 * on a taken name) the path the invalid_field message starts with.
 */
export function apiFieldError(e) {
  if (!e || (e.code !== 'invalid_field' && e.code !== 'conflict' && !e.field)) return null;
  let field = e.field;
  if (!field) {
    const first = String(e.message ?? '').split(' ')[0];
    const root = first.split(/[.[]/)[0];
    if (FIELD_ROOTS.includes(root) && /^[\w]+(\.[\w-]+|\[\d+\])*$/.test(first)) field = first;
    // 409: "a rule of this workspace already has that name".
    else if (e.code === 'conflict' && /\bname\b/.test(e.message ?? '')) field = 'name';
  }
  return field ? { field, message: e.message ?? '' } : null;
}
