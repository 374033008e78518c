// The arithmetic behind the Crosstalk pages, kept apart from the components
// so it can be tested without a browser: the list's query string, durations,
// per-round sums and bars, the round-by-model matrix and the live stream's
// running rounds.

export const RANGES = ['24h', '7d', '30d'];
export const FILTERS = ['provider', 'model', 'agent', 'user', 'status'];
export const PAGE_SIZE = 50;
/** A session with a call in the last RUNNING_MS is shown as running. */
export const RUNNING_MS = 60000;

/**
 * The filters of the list from the page's URL query: {range, provider,
 * model, agent, user, status}, range one of RANGES (default 24h), status
 * 'ok', 'error' or ''.
 */
export function filtersFromQuery(q) {
  const f = { range: RANGES.includes(q.range) ? q.range : '24h' };
  for (const k of FILTERS) f[k] = typeof q[k] === 'string' ? q[k].trim() : '';
  if (f.status !== 'ok' && f.status !== 'error') f.status = '';
  return f;
}

/**
 * The query string for /api/v1/sessions and /sessions/stats: only the
 * filters that are set, then extra parameters (limit, cursor, format).
 */
export function sessionsQuery(f, extra = {}) {
  const q = new URLSearchParams();
  q.set('range', f.range || '24h');
  for (const k of FILTERS) if (f[k]) q.set(k, f[k]);
  for (const [k, v] of Object.entries(extra)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  return q.toString();
}

/** A duration: "850 ms", "42 s", "3 min 5 s", "2 h 4 min". */
export function fmtDuration(ms) {
  if (ms == null || !Number.isFinite(ms) || ms < 0) return '–';
  if (ms < 1000) return Math.round(ms) + ' ms';
  const s = Math.round(ms / 1000);
  if (s < 60) return s + ' s';
  const m = Math.floor(s / 60);
  if (m < 60) return m + ' min' + (s % 60 ? ' ' + (s % 60) + ' s' : '');
  const h = Math.floor(m / 60);
  if (h < 24) return h + ' h' + (m % 60 ? ' ' + (m % 60) + ' min' : '');
  const d = Math.floor(h / 24);
  return d + ' d' + (h % 24 ? ' ' + (h % 24) + ' h' : '');
}

/** A date and time in the browser's zone, short: "Nov 22, 14:05:09". */
export function fmtWhen(iso) {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return '–';
  return new Date(t).toLocaleString('en-US', {
    month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
    second: '2-digit', hour12: false,
  });
}

/** Whether a session had a call within RUNNING_MS of now. */
export function isRunning(s, nowMs = Date.now()) {
  const t = Date.parse(s?.last_activity);
  return Number.isFinite(t) && nowMs - t < RUNNING_MS;
}

/** A round's label: "Round 3", or "No round" for the events without one. */
export function roundLabel(r) {
  return r == null || r < 0 ? 'No round' : 'Round ' + r;
}

/** The sums of a list of rounds (or models): calls, errors, tokens, cost. */
export function sumRows(rows) {
  const t = { calls: 0, errors: 0, cost_usd: 0,
              tokens: { input: 0, output: 0, cache_read: 0, cache_write: 0, reasoning: 0, total: 0 } };
  for (const r of rows ?? []) {
    t.calls += r.calls ?? 0;
    t.errors += r.errors ?? 0;
    t.cost_usd += r.cost_usd ?? 0;
    for (const k of Object.keys(t.tokens)) t.tokens[k] += r.tokens?.[k] ?? 0;
  }
  // Sums of dollars in binary floating point: keep what the API would say.
  t.cost_usd = Math.round(t.cost_usd * 1e9) / 1e9;
  return t;
}

/**
 * Bars for the rounds: [{key, label, value, pct}], pct of the largest
 * value (0 to 100).  metric is 'cost' or 'tokens'.
 */
export function roundBars(rounds, metric = 'cost') {
  const val = (r) => (metric === 'tokens' ? r.tokens?.total ?? 0 : r.cost_usd ?? 0);
  const max = Math.max(0, ...(rounds ?? []).map(val));
  return (rounds ?? []).map((r) => ({
    key: r.round ?? -1,
    label: roundLabel(r.round),
    value: val(r),
    pct: max > 0 ? (val(r) / max) * 100 : 0,
  }));
}

/** "openai/gpt-4o" for a row with provider and model. */
export const modelKey = (m) => (m.provider ? m.provider + '/' : '') + m.model;

/**
 * The round-by-model table: {models: [key...], rows: [{round, label,
 * cells: [{calls, cost_usd} | null per model]}]}.
 */
export function roundModelMatrix(detail) {
  const models = (detail?.models ?? []).map(modelKey);
  const rows = (detail?.rounds ?? []).map((r) => {
    const by = new Map((r.models ?? []).map((m) => [modelKey(m), m]));
    return {
      round: r.round,
      label: roundLabel(r.round),
      cells: models.map((k) => {
        const m = by.get(k);
        return m ? { calls: m.calls, cost_usd: m.cost_usd, tokens: m.tokens?.total ?? 0 } : null;
      }),
    };
  });
  return { models, rows };
}

/**
 * The live stream's running rounds ({"1": {calls, tokens, cost_usd}},
 * "-1" for calls without a round) as a sorted list
 * [{round, calls, tokens, cost_usd}] and their totals.
 */
export function liveRounds(rounds) {
  const list = Object.entries(rounds ?? {})
    .map(([k, v]) => ({ round: Number(k) < 0 ? null : Number(k), calls: v?.calls ?? 0,
                        tokens: v?.tokens ?? 0, cost_usd: v?.cost_usd ?? 0 }))
    .filter((r) => Number.isFinite(r.round) || r.round === null)
    .sort((a, b) => (a.round ?? -1) - (b.round ?? -1));
  const total = { calls: 0, tokens: 0, cost_usd: 0 };
  for (const r of list) {
    total.calls += r.calls;
    total.tokens += r.tokens;
    total.cost_usd += r.cost_usd;
  }
  return { list, total };
}

/** A call's tokens as the relay counts them: every type but reasoning. */
export const callTokens = (c) =>
  (c.input_tokens ?? 0) + (c.output_tokens ?? 0) + (c.cache_read_tokens ?? 0) + (c.cache_write_tokens ?? 0);

/**
 * Apply one /ws/crosstalk message to {rounds, calls, ids, seen}: a
 * snapshot starts over, then each call not seen before (by id) is added to
 * its round's totals and to the list (newest first, at most max kept).
 * The running rounds are summed here from the calls, each id once,
 * rather than taken from the message: they are the relay's sums (every
 * call it sent on this stream) without trusting that no call comes twice.
 * Returns whether the message brought new calls after the snapshot.
 */
export function applyCrosstalk(st, m, max = 50) {
  if (!m || (m.type !== 'snapshot' && m.type !== 'calls')) return false;
  if (m.type === 'snapshot' || !(st.ids instanceof Set)) {
    st.calls = [];
    st.rounds = {};
    st.ids = new Set();
    st.seen = 0;
  }
  const fresh = [];
  for (const c of Array.isArray(m.calls) ? m.calls : []) {
    if (!c || st.ids.has(c.id)) continue;
    st.ids.add(c.id);
    fresh.push(c);
  }
  if (fresh.length) {
    const rounds = { ...st.rounds };
    for (const c of fresh) {
      const k = String(c.round ?? -1);
      const r = rounds[k] ?? { calls: 0, tokens: 0, cost_usd: 0 };
      rounds[k] = { calls: r.calls + 1, tokens: r.tokens + callTokens(c), cost_usd: r.cost_usd + (c.cost_usd ?? 0) };
    }
    st.rounds = rounds;
    // The relay sends them oldest first; the list shows the newest first.
    st.calls = fresh.reverse().concat(st.calls).slice(0, max);
  }
  st.seen = (st.seen ?? 0) + 1;
  return m.type === 'calls' && fresh.length > 0;
}
