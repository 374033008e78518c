import { describe, expect, it } from 'vitest';
import {
  apiField, barNumbers, bodyFromRows, historyChart, historyRows, newRow, parseThresholds,
  rowsFromBudgets, scopeText, untilText,
} from './budgets.js';

describe('budget rows', () => {
  it('start with a daily and a monthly row when there are no budgets', () => {
    const rows = rowsFromBudgets([]);
    expect(rows.map((r) => r.period)).toEqual(['day', 'month']);
    expect(rows.every((r) => r.limit === '')).toBe(true);
  });
  it('come from the API, default thresholds left empty', () => {
    const rows = rowsFromBudgets([
      { id: 1, period: 'day', scope: { provider: null, model: null }, limit_usd: 50, thresholds: [80, 95, 100] },
      { id: 2, period: 'month', scope: { provider: 'openai', model: 'gpt-4o' }, limit_usd: 1000.5, thresholds: [50, 90] },
    ]);
    expect(rows[0]).toMatchObject({ period: 'day', limit: '50', thresholds: '', provider: '', model: '' });
    expect(rows[1]).toMatchObject({ period: 'month', limit: '1000.5', thresholds: '50, 90',
                                    provider: 'openai', model: 'gpt-4o' });
  });
  it('round-trip into the PUT body, rows without a limit left out', () => {
    const rows = [
      { ...newRow('day'), limit: ' 25 ' },
      { ...newRow('month'), limit: '' },
      { ...newRow('month'), limit: '900', thresholds: '50, 90%, 100', provider: ' anthropic ' },
    ];
    const { body, index, errors } = bodyFromRows(rows);
    expect(errors).toEqual({});
    expect(index).toEqual([0, 2]);
    expect(body).toEqual({ budgets: [
      { period: 'day', limit_usd: 25 },
      { period: 'month', limit_usd: 900, thresholds: [50, 90, 100], provider: 'anthropic' },
    ] });
  });
  it('keep a negative limit for the API to judge, refuse what is not a number', () => {
    const a = newRow('day'), b = newRow('month');
    a.limit = '-5';
    b.limit = 'ten';
    const { body, errors } = bodyFromRows([a, b]);
    expect(body.budgets[0].limit_usd).toBe(-5);
    expect(errors).toEqual({ [b.key + '.limit']: 'must be a number of US dollars' });
  });
});

describe('thresholds', () => {
  it('parse lists and leave empty as the default', () => {
    expect(parseThresholds('')).toEqual({ value: null });
    expect(parseThresholds('80 95,100')).toEqual({ value: [80, 95, 100] });
    expect(parseThresholds('80, 9.5').error).toMatch(/whole percentages/);
  });
});

describe('API error fields', () => {
  it('point at a position and a field', () => {
    expect(apiField('budgets[2].limit_usd')).toEqual({ pos: 2, field: 'limit' });
    expect(apiField('budgets[1].thresholds[0]')).toEqual({ pos: 1, field: 'thresholds' });
    expect(apiField('budgets[0]')).toEqual({ pos: 0, field: null });
    expect(apiField('budgets')).toEqual({ pos: null, field: null });
    expect(apiField(undefined)).toEqual({ pos: null, field: null });
  });
});

describe('status numbers', () => {
  const b = {
    percent_used: 83, projected_percent: 134.4,
    thresholds: [{ percent: 80, crossed: true, crossed_at: 'x' }, { percent: 95, crossed: false },
                 { percent: 120, crossed: false }],
  };
  it('cap the bars at 100% and mark the thresholds', () => {
    const n = barNumbers(b);
    expect(n.fill).toBe(83);
    expect(n.projected).toBe(100);
    expect(n.marks.map((m) => [m.left, m.crossed])).toEqual([[80, true], [95, false], [100, false]]);
    expect(n.tone).toBe('warn');
  });
  it('say over at 100% and ok below the first threshold', () => {
    expect(barNumbers({ ...b, percent_used: 140 }).tone).toBe('over');
    expect(barNumbers({ ...b, percent_used: 10, projected_percent: 20 }).tone).toBe('ok');
    expect(barNumbers({ percent_used: 10, projected_percent: 20 }).marks).toEqual([]);
  });
  it('describe the scope and the time left', () => {
    expect(scopeText({ provider: null, model: null })).toBe('all traffic');
    expect(scopeText({ provider: 'openai', model: 'gpt-4o' })).toBe('openai / gpt-4o');
    expect(scopeText({ model: 'm' })).toBe('model m');
    expect(untilText('2026-01-01T05:00:00Z', Date.parse('2026-01-01T00:00:00Z'))).toBe('in 5 h');
    expect(untilText('2026-01-01T00:12:30Z', Date.parse('2026-01-01T00:00:00Z'))).toBe('in 12 min');
  });
});

describe('history', () => {
  const day = { id: 1, period: 'day', limit_usd: 50, days: [
    { date: '2026-11-01', spend_usd: 10, percent_used: 20 },
    { date: '2026-11-02', spend_usd: 60, percent_used: 120 },
  ] };
  const month = { id: 2, period: 'month', limit_usd: 1000, days: [
    { date: '2026-11-01', spend_usd: 10, percent_used: 1, month_to_date_usd: 10 },
    { date: '2026-11-02', spend_usd: 60, percent_used: 7, month_to_date_usd: 70 },
  ] };
  it('charts a daily budget per day against its limit', () => {
    expect(historyChart(day)).toEqual({
      categories: ['11-01', '11-02'],
      series: [{ name: 'Spend', values: [10, 60] }],
      markers: [{ value: 50, label: 'limit' }],
    });
  });
  it('charts a monthly budget by month to date', () => {
    expect(historyChart(month).series[0]).toEqual({ name: 'Month to date', values: [10, 70] });
  });
  it('tabulates newest first, over the limit marked', () => {
    const rows = historyRows(day);
    expect(rows.map((r) => [r.date, r.over])).toEqual([['2026-11-02', true], ['2026-11-01', false]]);
    expect(historyRows(month)[0].mtd).toBe(70);
  });
});

describe('usdAxis', () => {
  it('keeps axis labels short', async () => {
    const { usdAxis } = await import('./budgets.js');
    expect([0, 0.05, 2.5, 25, 250, 1500, 98765, 1.25e6].map(usdAxis))
      .toEqual(['$0', '$0.05', '$2.5', '$25', '$250', '$1.5k', '$98.8k', '$1.25M']);
  });
});
