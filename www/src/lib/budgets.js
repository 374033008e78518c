// The Budgets page's logic, apart from the page so it can be tested: the
// form's rows to and from PUT /api/v1/budgets, the API's 400 field paths
// back to a row and field, and the numbers behind the status bars and the
// history.

export const DEFAULT_THRESHOLDS = [80, 95, 100];

let rowSeq = 0;

/** A blank row of the form. */
export function newRow(period = 'day') {
  return { key: ++rowSeq, period, limit: '', thresholds: '', provider: '', model: '' };
}

/** The form's rows from GET /api/v1/budgets (a day and a month row when there are none). */
export function rowsFromBudgets(budgets) {
  if (!budgets || !budgets.length) return [newRow('day'), newRow('month')];
  return budgets.map((b) => ({
    key: ++rowSeq,
    period: b.period,
    limit: b.limit_usd == null ? '' : String(b.limit_usd),
    thresholds: sameList(b.thresholds, DEFAULT_THRESHOLDS) ? '' : (b.thresholds ?? []).join(', '),
    provider: b.scope?.provider ?? '',
    model: b.scope?.model ?? '',
  }));
}

function sameList(a, b) {
  return Array.isArray(a) && a.length === b.length && a.every((v, i) => v === b[i]);
}

/**
 * "80, 95, 100" into [80, 95, 100]: {value} or {error}.  Empty is the
 * default (value null).  Only the syntax is checked here; the ranges are
 * the API's to judge, so its message is the one shown.
 */
export function parseThresholds(text) {
  const s = String(text ?? '').trim();
  if (!s) return { value: null };
  const parts = s.split(/[\s,;]+/).filter(Boolean).map((p) => p.replace(/%$/, ''));
  if (!parts.every((p) => /^-?\d+$/.test(p)))
    return { error: 'must be whole percentages separated by commas, such as 80, 95, 100' };
  return { value: parts.map(Number) };
}

/**
 * The PUT body from the rows.  A row without a limit is left out (that is
 * how a budget is removed).  Returns {body, index, errors}: index[i] is
 * the row of body.budgets[i]; errors maps "ROWKEY.field" to a message.
 */
export function bodyFromRows(rows) {
  const budgets = [], index = [], errors = {};
  rows.forEach((r, i) => {
    const lim = String(r.limit ?? '').trim();
    if (!lim) return;
    const b = { period: r.period };
    const n = Number(lim);
    if (!Number.isFinite(n)) errors[r.key + '.limit'] = 'must be a number of US dollars';
    else b.limit_usd = n;
    const th = parseThresholds(r.thresholds);
    if (th.error) errors[r.key + '.thresholds'] = th.error;
    else if (th.value) b.thresholds = th.value;
    if (r.provider.trim()) b.provider = r.provider.trim();
    if (r.model.trim()) b.model = r.model.trim();
    budgets.push(b);
    index.push(i);
  });
  return { body: { budgets }, index, errors };
}

/**
 * An API error's field ("budgets[2].limit_usd", "budgets[1].thresholds[0]",
 * "budgets[0]", "budgets") as {pos, field}: pos the position in the body
 * (null: the whole set), field one of the row's fields (null: the row).
 */
export function apiField(field) {
  const m = /^budgets(?:\[(\d+)\](?:\.([a-z_]+))?)?/.exec(field ?? '');
  if (!m) return { pos: null, field: null };
  const map = { limit_usd: 'limit', thresholds: 'thresholds', provider: 'provider',
                model: 'model', period: 'period' };
  return { pos: m[1] == null ? null : Number(m[1]), field: m[2] ? map[m[2]] ?? null : null };
}

/** "all traffic", "openai", "openai / gpt-4o", "model gpt-4o". */
export function scopeText(scope) {
  const p = scope?.provider, m = scope?.model;
  if (p && m) return p + ' / ' + m;
  if (p) return p;
  if (m) return 'model ' + m;
  return 'all traffic';
}

/** "Daily" or "Monthly". */
export function periodName(period) {
  return period === 'month' ? 'Monthly' : 'Daily';
}

/**
 * What a status bar shows of one GET /budgets/status budget: the fill and
 * projected widths (capped at 100%), the threshold marks and a tone.
 */
export function barNumbers(b) {
  const pct = Number.isFinite(b.percent_used) ? b.percent_used : 0;
  const proj = Number.isFinite(b.projected_percent) ? b.projected_percent : pct;
  const marks = (b.thresholds ?? []).map((t) => ({
    percent: t.percent,
    left: Math.min(100, t.percent),
    crossed: !!t.crossed,
    crossedAt: t.crossed_at ?? null,
  }));
  const limits = marks.map((m) => m.percent).filter((p) => p <= 100);
  const warnAt = limits.length ? Math.min(...limits) : 80;
  return {
    pct,
    fill: Math.max(0, Math.min(100, pct)),
    projected: Math.max(0, Math.min(100, proj)),
    now: Math.max(0, Math.min(100, Math.round(pct))),
    marks,
    tone: pct >= 100 ? 'over' : pct >= warnAt || proj >= 100 ? 'warn' : 'ok',
  };
}

/** How long until an ISO time: "in 5 h", "in 12 min", "in 3 d". */
export function untilText(iso, nowMs = Date.now()) {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return '–';
  const s = Math.max(0, Math.round((t - nowMs) / 1000));
  if (s < 60) return 'in ' + s + ' s';
  if (s < 3600) return 'in ' + Math.floor(s / 60) + ' min';
  if (s < 86400) return 'in ' + Math.floor(s / 3600) + ' h';
  return 'in ' + Math.floor(s / 86400) + ' d';
}

/**
 * One budget of GET /budgets/history as a bar chart: a daily budget's
 * spend per day, a monthly one's month to date, against its limit.
 */
export function historyChart(hb) {
  const monthly = hb.period === 'month';
  const days = hb.days ?? [];
  return {
    categories: days.map((d) => d.date.slice(5)),
    series: [{
      name: monthly ? 'Month to date' : 'Spend',
      values: days.map((d) => (monthly ? d.month_to_date_usd ?? d.spend_usd : d.spend_usd)),
    }],
    markers: [{ value: hb.limit_usd, label: 'limit' }],
  };
}

/** The same as table rows, newest first. */
export function historyRows(hb) {
  return (hb.days ?? []).map((d) => ({
    date: d.date,
    spend: d.spend_usd,
    mtd: hb.period === 'month' ? d.month_to_date_usd : null,
    pct: d.percent_used,
    over: d.percent_used >= 100,
  })).reverse();
}

/** The history ranges the page offers. */
export const RANGES = [['7d', '7 days'], ['30d', '30 days'], ['90d', '90 days']];

/** Dollars for a chart's axis, short enough for its margin: "$0", "$25", "$1.5k", "$98.8k", "$1.2M". */
export function usdAxis(v) {
  if (v == null || !Number.isFinite(v)) return '–';
  const a = Math.abs(v), sign = v < 0 ? '-$' : '$';
  const short = (x) => String(Number(x.toFixed(x < 10 ? 2 : x < 100 ? 1 : 0)));
  if (a >= 1e6) return sign + short(a / 1e6) + 'M';
  if (a >= 1e3) return sign + short(a / 1e3) + 'k';
  if (a >= 1 || a === 0) return sign + short(a);
  return sign + String(Number(a.toPrecision(2)));
}
