// The alerts list's filters <-> the page's URL query and the API's query
// (the same filters give the CSV export), and the small words the alert
// pages share.  Pure: no DOM, no fetch.

import { SEVERITIES } from './rules.js';

export const STATUSES = ['pending', 'firing', 'acknowledged', 'resolved'];
export const OPEN = 'pending,firing,acknowledged';
export const RANGES = [
  { value: '1h', label: 'Last hour' },
  { value: '24h', label: 'Last 24 hours' },
  { value: 'today', label: 'Today (UTC)' },
  { value: '7d', label: 'Last 7 days' },
  { value: '30d', label: 'Last 30 days' },
  { value: '90d', label: 'Last 90 days' },
  { value: 'all', label: 'All time' },
];
export const DEFAULT_RANGE = '7d';

const okList = (s, names) =>
  typeof s === 'string' && s !== '' && s.split(',').every((x) => names.includes(x));

/**
 * The page's query (an object, as queryParams() gives) as filters:
 * {status, severity (comma lists or ''), rule, range, from, to, q}.
 * Values the API would refuse are dropped.
 */
export function filtersFromQuery(qp = {}) {
  const from = qp.from ?? '', to = qp.to ?? '';
  const custom = !!from;
  return {
    status: okList(qp.status, STATUSES) ? qp.status : '',
    severity: okList(qp.severity, SEVERITIES) ? qp.severity : '',
    rule: /^[1-9]\d*$/.test(qp.rule ?? '') ? qp.rule : '',
    range: custom ? 'custom' : RANGES.some((r) => r.value === qp.range) ? qp.range : DEFAULT_RANGE,
    from: custom ? from : '',
    to: custom ? to : '',
    q: (qp.q ?? '').slice(0, 200),
  };
}

/** The filters as changes for setQuery (defaults left out of the URL). */
export function filtersToQuery(f) {
  const custom = f.range === 'custom';
  return {
    status: f.status || null,
    severity: f.severity || null,
    rule: f.rule || null,
    range: custom || f.range === DEFAULT_RANGE ? null : f.range,
    from: custom ? f.from || null : null,
    to: custom ? f.to || null : null,
    q: f.q?.trim() || null,
  };
}

/** The API's query string for the filters (no '?'), plus extra parameters. */
export function apiQuery(f, extra = {}) {
  const p = new URLSearchParams();
  if (f.status) p.set('status', f.status);
  if (f.severity) p.set('severity', f.severity);
  if (f.rule) p.set('rule', f.rule);
  if (f.range === 'custom') {
    if (f.from) p.set('from', f.from);
    if (f.to) p.set('to', f.to);
  } else if (f.range && f.range !== 'all') p.set('range', f.range);
  if (f.q?.trim()) p.set('q', f.q.trim());
  for (const [k, v] of Object.entries(extra)) if (v !== undefined && v !== null && v !== '') p.set(k, v);
  return p.toString();
}

/** GET /api/v1/alerts for the filters: `limit` of them from `cursor`. */
export function listUrl(f, cursor, limit = 100) {
  return '/api/v1/alerts?' + apiQuery(f, { limit, cursor });
}

/** The CSV of every alert the filters select (the cookie authenticates the download). */
export function csvUrl(f) {
  return '/api/v1/alerts?' + apiQuery(f, { format: 'csv' });
}

/** The stats' range for the filters: stats take no "all time", so 90 days. */
export function statsUrl(f) {
  const p = new URLSearchParams();
  if (f.range === 'custom') {
    if (f.from) p.set('from', f.from);
    if (f.to) p.set('to', f.to);
  } else p.set('range', !f.range || f.range === 'all' ? '90d' : f.range);
  return '/api/v1/alerts/stats?' + p.toString();
}
/** The range the statistics cover, in words ("Last 90 days" for all time). */
export function rangeLabel(f) {
  if (f.range === 'custom') return 'From ' + f.from + (f.to ? ' to ' + f.to : '');
  if (!f.range || f.range === 'all') return 'Last 90 days';
  return RANGES.find((r) => r.value === f.range)?.label ?? f.range;
}

/** An alert's group or a rule's filters ({model: "x"}) in words: "model x, user y"; '' when none. */
export function groupWords(g) {
  const e = Object.entries(g ?? {});
  return e.map(([k, v]) => (k === 'api_key' ? 'API key' : k) + ' ' + v).join(', ');
}

const oneDecimal = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });

/** Seconds as a short duration: 45 -> "45 s", 150 -> "2.5 min", 7200 -> "2 h". */
export function fmtSeconds(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return '–';
  const r = (v) => oneDecimal.format(v);
  if (s < 60) return r(s) + ' s';
  if (s < 3600) return r(s / 60) + ' min';
  if (s < 86400) return r(s / 3600) + ' h';
  return r(s / 86400) + ' d';
}

/** What a bulk or single action did, in words. */
export function actionWords(action, asked, changed) {
  const verb = { ack: 'acknowledged', resolve: 'resolved', delete: 'deleted' }[action] ?? action;
  const n = (k) => k + (k === 1 ? ' alert' : ' alerts');
  if (changed === asked) return n(changed) + ' ' + verb + '.';
  const why = action === 'ack' ? 'only firing alerts can be acknowledged'
    : action === 'resolve' ? 'resolved alerts stay resolved' : 'the others were gone';
  return changed + ' of ' + n(asked) + ' ' + verb + ' (' + why + ').';
}

/** A silence's matchers in words. */
export function matcherWords(m, ruleName = (id) => 'rule ' + id) {
  const parts = [];
  if (m?.rule) parts.push(ruleName(m.rule));
  if (m?.severity?.length) parts.push('severity ' + m.severity.join(' or '));
  for (const k of ['labels', 'group'])
    if (m?.[k]) parts.push((k === 'labels' ? 'labels ' : 'group ') +
      Object.entries(m[k]).map(([a, b]) => a + '=' + b).join(', '));
  return parts.join('; ') || 'everything';
}

/** "key=value" lines (or comma separated) as an object; null when a line is not one. */
export function parsePairs(text) {
  const o = {};
  for (const raw of String(text ?? '').split(/[\n,]/)) {
    const line = raw.trim();
    if (!line) continue;
    const i = line.indexOf('=');
    if (i < 1) return null;
    o[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return o;
}

/** Who the UI says acts (acknowledges, resolves, silences): the key's name and id. */
export function whoAmI(user) {
  return user?.name ? user.name + ' (key ' + user.key_id + ')' : undefined;
}
