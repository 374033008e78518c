// The Analytics page's logic: URL state, requests, series shaping, cards, tables, export sections.
import { describe, expect, it } from 'vitest';
import {
  apiPath, bucketChoices, bucketStarts, cardsFor, chartsFor, customRangeError, distributionBars,
  effectiveBucket, exportMeta, filterOptions, fmtChange, fromLocalInput, groupedSeries, optionRequests,
  parseState, pctChange, pointSeries, previousPath, previousWindow, requestsFor, seriesSection,
  shortLabels, fmtWhen, formatValue, TABLES, tableRows, toLocalInput, viewSections,
} from './analytics.js';

const NOW = Date.parse('2026-11-22T12:30:00Z');
const q = (path) => Object.fromEntries(new URL(path, 'http://x').searchParams);

describe('state from the URL query', () => {
  it('has defaults', () => {
    expect(parseState({})).toEqual({ view: 'usage', range: '24h', from: '', to: '', bucket: 'auto',
      by: 'model', provider: '', model: '', agent: '', user: '' });
  });
  it('keeps valid values and drops the others', () => {
    const st = parseState({ view: 'cost', range: '7d', bucket: '1h', by: 'user', model: ' gpt-4o ',
      agent: 'x'.repeat(129), user: '' });
    expect(st).toMatchObject({ view: 'cost', range: '7d', bucket: '1h', by: 'user', model: 'gpt-4o', agent: '', user: '' });
    expect(parseState({ view: 'nope', range: '2d', bucket: '2m', by: 'team' }))
      .toMatchObject({ view: 'usage', range: '24h', bucket: 'auto', by: 'model' });
    // 128 bytes is the API's limit, counted in UTF-8.
    expect(parseState({ user: 'é'.repeat(64) }).user).toBe('é'.repeat(64));
    expect(parseState({ user: 'é'.repeat(65) }).user).toBe('');
  });
  it('makes a from= a custom range, normalized to UTC', () => {
    const st = parseState({ range: '24h', from: '2026-11-22T10:00:00+02:00', to: '2026-11-22T12:00:00+02:00' });
    expect(st).toMatchObject({ range: 'custom', from: '2026-11-22T08:00:00.000Z', to: '2026-11-22T10:00:00.000Z' });
    // An end before the start is dropped (the range runs to now).
    expect(parseState({ from: '2026-11-22T10:00:00Z', to: '2026-11-21T10:00:00Z' }).to).toBe('');
    expect(parseState({ range: 'custom' }).range).toBe('24h');
    expect(parseState({ range: 'custom', from: 'yesterday' }).range).toBe('24h');
    // The API takes no start before 1970.
    expect(parseState({ from: '1969-12-31T00:00:00Z' }).range).toBe('24h');
  });
});

describe('requests', () => {
  it('puts the range, filters and extras in the query', () => {
    const st = parseState({ range: '7d', model: 'gpt-4o', user: 'a&b' });
    expect(apiPath('/api/v1/usage/overview', st)).toBe('/api/v1/usage/overview?range=7d&model=gpt-4o&user=a%26b');
    expect(q(apiPath('/p', st, { bucket: null, limit: 10 }))).toEqual({ range: '7d', model: 'gpt-4o', user: 'a&b', limit: '10' });
    const c = parseState({ from: '2026-11-01T00:00:00Z' });
    expect(q(apiPath('/p', c))).toEqual({ from: '2026-11-01T00:00:00.000Z' });
  });
  it('makes every request of each view', () => {
    const u = requestsFor(parseState({ by: 'agent', provider: 'openai' }), NOW);
    expect(Object.keys(u)).toEqual(['overview', 'timeseries', 'distribution', 'topUsers']);
    expect(q(u.distribution)).toEqual({ range: '24h', provider: 'openai', by: 'agent' });
    expect(q(u.topUsers)).toEqual({ range: '24h', provider: 'openai', limit: '10' });
    expect(u.timeseries).toBe('/api/v1/usage/timeseries?range=24h&provider=openai');
    const c = requestsFor(parseState({ view: 'cost', bucket: '1h' }), NOW);
    expect(Object.keys(c)).toEqual(['overview', 'trend', 'byModel', 'byProvider']);
    expect(q(c.trend)).toEqual({ range: '24h', bucket: '1h', group_by: 'model' });
    const p = requestsFor(parseState({ view: 'performance' }), NOW);
    expect(Object.keys(p)).toEqual(['overview', 'latency', 'throughput', 'errors']);
    // Endpoints without points get no bucket (the API would refuse it).
    expect(q(requestsFor(parseState({ view: 'performance', bucket: '5m' }), NOW).errors)).toEqual({ range: '24h' });
  });
  it('offers only the buckets the range allows', () => {
    const ids = (r) => bucketChoices(parseState(r), NOW).map((b) => b.id);
    expect(ids({ range: '1h' })).toEqual(['auto', '1m', '5m']);
    expect(ids({ range: '24h' })).toEqual(['auto', '1m', '5m', '1h']);
    expect(ids({ range: '7d' })).toEqual(['auto', '5m', '1h', '1d']); // 1m: 10,081 points
    expect(ids({ range: '90d' })).toEqual(['auto', '1h', '1d']);
    expect(ids({ range: 'today' })).toEqual(['auto', '1m', '5m', '1h']); // 12.5 h since midnight UTC
    expect(effectiveBucket(parseState({ range: '1h', bucket: '1d' }), NOW)).toBe('auto');
    expect(effectiveBucket(parseState({ range: '30d', bucket: '1d' }), NOW)).toBe('1d');
  });
  it('lists filter values from the distributions of the range, without the filters', () => {
    const r = optionRequests(parseState({ range: '7d', model: 'm', user: 'u' }));
    expect(q(r.model)).toEqual({ range: '7d', by: 'model' });
    expect(q(r.user)).toEqual({ range: '7d', by: 'user' });
    const o = filterOptions({
      model: { items: [{ provider: 'openai', model: 'gpt-4o' }, { provider: 'anthropic', model: 'claude' },
        { provider: 'openai', model: null }] },
      agent: { items: [{ agent: 'b' }, { agent: null }, { agent: 'a' }] },
      user: null,
    });
    expect(o).toEqual({ provider: ['anthropic', 'openai'], agent: ['a', 'b'], user: [],
      model: [{ provider: 'anthropic', model: 'claude' }, { provider: 'openai', model: 'gpt-4o' }] });
  });
});

describe('the previous period', () => {
  const ans = { from: '2026-11-22T10:00:00.000Z', to: '2026-11-22T12:00:00.000Z' };
  it('is the same length just before, or yesterday for today', () => {
    expect(previousWindow(parseState({ range: '24h' }), ans))
      .toEqual({ from: '2026-11-22T08:00:00.000Z', to: '2026-11-22T10:00:00.000Z' });
    expect(previousWindow(parseState({ range: 'today' }), { from: '2026-11-22T00:00:00.000Z', to: ans.to }))
      .toEqual({ from: '2026-11-21T00:00:00.000Z', to: '2026-11-21T12:00:00.000Z' });
    expect(previousWindow(parseState({}), {})).toBeNull();
  });
  it('asks the view\'s overview with the same filters', () => {
    const p = previousPath(parseState({ view: 'cost', model: 'x' }), ans);
    expect(p.split('?')[0]).toBe('/api/v1/cost/overview');
    expect(q(p)).toEqual({ from: '2026-11-22T08:00:00.000Z', to: '2026-11-22T10:00:00.000Z', model: 'x' });
  });
  it('changes in percent', () => {
    expect(pctChange(150, 100)).toBe(50);
    expect(pctChange(50, 100)).toBe(-50);
    expect(pctChange(5, 0)).toBe(Infinity);
    expect(pctChange(0, 0)).toBe(0);
    expect(pctChange(null, 3)).toBeNull();
    expect(fmtChange(50)).toBe('+50%');
    expect(fmtChange(-12.345)).toBe('-12.35%');
    expect(fmtChange(0)).toBe('no change');
    expect(fmtChange(Infinity)).toBe('new');
    expect(fmtChange(null)).toBe('');
  });
});

describe('series', () => {
  it('starts every bucket of the range, aligned to UTC', () => {
    const s = bucketStarts('2026-11-22T10:02:30.000Z', '2026-11-22T10:15:00.000Z', '5m');
    expect(s.map((t) => new Date(t).toISOString().slice(11, 16))).toEqual(['10:00', '10:05', '10:10']);
    expect(bucketStarts('2026-11-22T10:00:00Z', '2026-11-22T10:15:00.001Z', '5m').length).toBe(4);
    expect(bucketStarts('x', 'y', '5m')).toEqual([]);
  });
  it('turns ungrouped points into one series per field', () => {
    const s = pointSeries([{ ts: '2026-11-22T10:00:00Z', calls: 3, p: null }], [
      { name: 'Calls', get: (p) => p.calls }, { name: 'P', get: (p) => p.p }]);
    expect(s).toEqual([{ name: 'Calls', points: [[Date.parse('2026-11-22T10:00:00Z'), 3]] },
      { name: 'P', points: [[Date.parse('2026-11-22T10:00:00Z'), null]] }]);
  });
  it('keeps the biggest groups, folds the rest into Other, fills every bucket', () => {
    const pts = [];
    // Twelve models, model k costing k+1 in bucket 0; m0 also in bucket 1.
    for (let k = 0; k < 12; k++) pts.push({ ts: '1970-01-01T00:00:00Z', provider: 'p', model: 'm' + k, cost_usd: k + 1 });
    pts.push({ ts: '1970-01-01T00:01:00Z', provider: 'p', model: 'm0', cost_usd: 0.5 });
    const s = groupedSeries(pts, { key: (p) => p.model, label: (p) => p.model, value: (p) => p.cost_usd,
      times: [0, 60e3, 120e3] });
    expect(s.length).toBe(10);
    expect(s.map((x) => x.name)).toEqual(['m11', 'm10', 'm9', 'm8', 'm7', 'm6', 'm5', 'm4', 'm3', 'Other']);
    // Other: m2 + m1 + m0 (3 + 2 + 1), then m0's 0.5, then nothing.
    expect(s[9].points).toEqual([[0, 6], [60e3, 0.5], [120e3, 0]]);
    expect(s[0].points).toEqual([[0, 12], [60e3, 0], [120e3, 0]]);
    // Ten groups or fewer: no Other.
    expect(groupedSeries(pts.slice(0, 10), { key: (p) => p.model, label: (p) => p.model,
      value: (p) => p.cost_usd }).map((x) => x.name)).not.toContain('Other');
  });
  it('tells apart groups that share a label', () => {
    const pts = [{ ts: '1970-01-01T00:00:00Z', provider: 'a', model: 'm', cost_usd: 2 },
      { ts: '1970-01-01T00:00:00Z', provider: 'b', model: 'm', cost_usd: 1 },
      { ts: '1970-01-01T00:00:00Z', provider: 'b', model: null, cost_usd: 1 }];
    const ch = chartsFor('cost', { trend: { from: '1970-01-01T00:00:00Z', to: '1970-01-01T00:05:00Z',
      bucket: '1m', points: pts } });
    expect(ch[0].series.map((s) => s.name)).toEqual(['a/m', '(none)', 'b/m']);
    expect(ch[0].series[0].points.length).toBe(5);
  });
  it('shapes the usage and performance charts', () => {
    const tokens = { input: 1, output: 2, cache_read: 0, cache_write: 0, total: 3 };
    const u = chartsFor('usage', { timeseries: { points: [{ ts: '1970-01-01T00:00:00Z', calls: 2, errors: 1, tokens }] } });
    expect(u.map((c) => c.id)).toEqual(['calls', 'tokens']);
    expect(u[0].series.map((s) => s.name)).toEqual(['Calls', 'Errors']);
    expect(u[1].series.map((s) => s.name)).toEqual(['Input', 'Output']); // zero cache series left out
    const p = chartsFor('performance', {
      latency: { points: [{ ts: '1970-01-01T00:00:00Z', p50: 1, p95: 2, p99: 3 }] },
      throughput: null,
    });
    expect(p[0].series.map((s) => [s.name, s.points[0][1]])).toEqual([['P50', 1], ['P95', 2], ['P99', 3]]);
    expect(p[1].series).toEqual([]);
  });
  it('makes distribution bars, the tail in Other', () => {
    const items = Array.from({ length: 14 }, (_, k) => ({ agent: k ? 'a' + k : null, calls: 20 - k, errors: 1 }));
    const b = distributionBars({ items }, 'agent');
    expect(b.categories.length).toBe(12);
    expect(b.categories[0]).toBe('(none)');
    expect(b.categories[11]).toBe('Other (3)');
    expect(b.series[0].values[11]).toBe(9 + 8 + 7);
    expect(b.series[1].values[11]).toBe(3);
    expect(distributionBars(null, 'model')).toEqual({ categories: [], series: [{ name: 'Calls', values: [] }, { name: 'Errors', values: [] }] });
  });
});

describe('labels and values', () => {
  it('cuts bar labels to the room they have', () => {
    const cats = ['claude-sonnet-4-5', 'gpt-4o', 'amazon.nova-pro-v1:0'];
    expect(shortLabels(cats, 1000)).toEqual(cats); // 333 px each
    const s = shortLabels(cats, 240); // 80 px each: 11 characters
    expect(s).toEqual(['claude-son…', 'gpt-4o', 'amazon.nov…']);
    // Twelve bars in 460 px: every second label drawn, so twice the room.
    const t = shortLabels(Array(12).fill('abcdefghijklmnopq'), 460);
    expect(t[0]).toBe('abcdefghij…');
    expect(shortLabels([], 100)).toEqual([]);
    expect(shortLabels(cats, 0)).toEqual(cats);
  });
  it('formats by type', () => {
    expect(formatValue('int', 1234567)).toBe('1,234,567');
    expect(formatValue('usd', 0.5)).toBe('$0.50');
    expect(formatValue('pct', 12.345)).toBe('12.35%');
    expect(formatValue('ms', 1500)).toBe('1.5 s');
    expect(formatValue('rate', 0.5)).toBe('30 / min');
    expect(formatValue('rate', 12)).toBe('12 / s');
    expect(formatValue('text', null)).toBe('(none)');
    expect(formatValue('int', null)).toBe('–');
    const now = Date.parse('2026-11-22T12:00:00');
    expect(fmtWhen(new Date(now - 3600e3).toISOString(), now)).not.toMatch(/Nov/);
    expect(fmtWhen(new Date(now - 3 * 86400e3).toISOString(), now)).toMatch(/Nov/);
  });
});

describe('cards, tables and export sections', () => {
  const usage = { from: '2026-11-22T10:00:00.000Z', to: '2026-11-22T12:00:00.000Z', calls: 200, errors: 10,
    tokens: { input: 100, output: 50, cache_read: 0, cache_write: 0, total: 150 },
    unique_users: 4, active_agents: 2, calls_per_user: 50 };
  it('cards carry values and their change', () => {
    const c = cardsFor('usage', usage, { ...usage, calls: 100, errors: 0, tokens: { total: 150 } });
    expect(c.find((k) => k.id === 'calls')).toMatchObject({ value: 200, type: 'int', change: 100 });
    expect(c.find((k) => k.id === 'errors').change).toBe(Infinity);
    expect(c.find((k) => k.id === 'tokens').change).toBe(0);
    expect(c.find((k) => k.id === 'errors').hint).toBe('5% of calls');
    expect(cardsFor('usage', usage).every((k) => k.change === null)).toBe(true);
    expect(cardsFor('usage', null)).toEqual([]);
    const perf = cardsFor('performance', { calls: 10, errors: 1, error_rate: 10, throughput_rps: 0.5,
      latency_ms: { p50: 100, p95: 200, p99: 300 }, ttft_ms: null }, { latency_ms: { p50: 50 }, error_rate: 5 });
    expect(perf.map((k) => k.id)).toEqual(['p50', 'p95', 'p99', 'ttft_p95', 'error_rate', 'throughput_rps']);
    expect(perf[0].change).toBe(100);
    expect(perf[3].value).toBeUndefined();
    const cost = cardsFor('cost', { cost_usd: 1, projection: { day: { spent_usd: 0.5, projected_usd: 1 } } });
    expect(cost.find((k) => k.id === 'day_spent')).toMatchObject({ value: 0.5, hint: 'projected $1.00' });
  });
  it('table rows are raw values in column order', () => {
    const rows = tableRows(TABLES.topUsers, { users: [{ user: 'u1', calls: 3, errors: 1, tokens: { total: 9 },
      share: 75, cost_usd: 0.001 }] });
    expect(rows).toEqual([['u1', 3, 1, 9, 75, 0.001]]);
    expect(tableRows(TABLES.errorsByType, { by_type: [{ error_type: null, errors: 2 }] })[0][0]).toBe('status only');
    expect(tableRows(TABLES.byModel, null)).toEqual([]);
  });
  it('a series section is one row per time, a column per series', () => {
    const s = seriesSection('x', 'X', [{ name: 'a', points: [[0, 1], [60e3, 2]] }, { name: 'b', points: [[60e3, 3]] }]);
    expect(s.columns).toEqual(['time', 'a', 'b']);
    expect(s.rows).toEqual([['1970-01-01T00:00:00.000Z', 1, null], ['1970-01-01T00:01:00.000Z', 2, 3]]);
  });
  it('a view\'s sections are what arrived; the rest is named missing', () => {
    const st = parseState({ by: 'agent', model: 'gpt-4o' });
    const { sections, missing } = viewSections(st, {
      overview: usage, prev: null,
      timeseries: { points: [{ ts: '1970-01-01T00:00:00Z', calls: 2, errors: 0, tokens: usage.tokens }] },
      distribution: { items: [{ agent: 'a', calls: 2, errors: 0, tokens: usage.tokens, share: 100, cost_usd: 1 }] },
      topUsers: null,
    });
    expect(sections.map((s) => s.id)).toEqual(['summary', 'calls', 'tokens', 'distribution']);
    expect(missing).toEqual(['topUsers']);
    expect(sections[0].rows[0]).toEqual(['calls', 200, null]);
    expect(sections[3].columns).toEqual(['agent', 'calls', 'errors', 'tokens', 'share', 'cost_usd']);
    const m = exportMeta(st, usage, new Date(NOW));
    expect(m).toEqual({ view: 'usage', range: '24h', from: usage.from, to: usage.to, bucket: 'auto',
      filters: { model: 'gpt-4o' }, distribution_by: 'agent', generated_at: '2026-11-22T12:30:00.000Z' });
    expect(exportMeta(st, null, new Date(NOW), '5m')).toMatchObject({ from: null, to: null, bucket: '5m' });
  });
});

describe('custom range inputs', () => {
  it('go between local input values and UTC', () => {
    const iso = fromLocalInput('2026-11-22T10:05');
    expect(iso).toBe(new Date(2026, 10, 22, 10, 5).toISOString());
    expect(toLocalInput(iso)).toBe('2026-11-22T10:05');
    expect(fromLocalInput('')).toBe('');
    expect(fromLocalInput('22/11/2026')).toBe('');
    expect(toLocalInput('nope')).toBe('');
  });
  it('say what is wrong', () => {
    expect(customRangeError('', '')).toMatch(/starts/);
    expect(customRangeError('2026-11-22T10:00', '2026-11-22T09:00')).toMatch(/after/);
    expect(customRangeError('2026-11-22T10:00', '2026-11-22T10:00')).toMatch(/after/);
    expect(customRangeError('2026-11-22T10:00', '', Date.parse('2026-11-21T00:00:00Z'))).toMatch(/after/);
    expect(customRangeError('2026-11-22T10:00', '2026-11-22T11:00')).toBe('');
  });
});
