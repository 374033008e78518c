import { describe, expect, it } from 'vitest';
import { applyCrosstalk, filtersFromQuery, fmtDuration, isRunning, liveRounds, roundBars,
         roundLabel, roundModelMatrix, sessionsQuery, sumRows } from './crosstalk.js';

const tok = (total) => ({ input: total / 2, output: total / 2, cache_read: 0, cache_write: 0, reasoning: 0, total });

describe('the list query', () => {
  it('keeps known filters only, trimmed, with a valid range and status', () => {
    const f = filtersFromQuery({ range: '90d', model: ' gpt-4o ', status: 'bogus', page: '3' });
    expect(f).toEqual({ range: '24h', provider: '', model: 'gpt-4o', agent: '', user: '', status: '' });
    expect(filtersFromQuery({ range: '7d', status: 'error' }).status).toBe('error');
  });
  it('sends only what is set, then the extras', () => {
    const f = filtersFromQuery({ range: '7d', user: 'ann lee', provider: 'openai' });
    expect(sessionsQuery(f)).toBe('range=7d&provider=openai&user=ann+lee');
    expect(sessionsQuery(f, { format: 'csv', cursor: null })).toBe('range=7d&provider=openai&user=ann+lee&format=csv');
    expect(sessionsQuery(filtersFromQuery({}), { limit: 50, cursor: '17.ab' })).toBe('range=24h&limit=50&cursor=17.ab');
  });
});

describe('durations and labels', () => {
  it('formats durations from ms to days', () => {
    expect(fmtDuration(null)).toBe('–');
    expect(fmtDuration(850)).toBe('850 ms');
    expect(fmtDuration(42_400)).toBe('42 s');
    expect(fmtDuration(185_000)).toBe('3 min 5 s');
    expect(fmtDuration(120_000)).toBe('2 min');
    expect(fmtDuration(2 * 3600e3 + 4 * 60e3)).toBe('2 h 4 min');
    expect(fmtDuration(26 * 3600e3)).toBe('1 d 2 h');
  });
  it('labels rounds, the missing one too', () => {
    expect(roundLabel(3)).toBe('Round 3');
    expect(roundLabel(null)).toBe('No round');
  });
  it('a session is running for a minute after its last call', () => {
    const now = Date.parse('2026-01-01T00:01:00Z');
    expect(isRunning({ last_activity: '2026-01-01T00:00:30Z' }, now)).toBe(true);
    expect(isRunning({ last_activity: '2026-01-01T00:00:00Z' }, now)).toBe(false);
    expect(isRunning({}, now)).toBe(false);
  });
});

describe('rounds', () => {
  const rounds = [
    { round: null, calls: 1, errors: 0, tokens: tok(10), cost_usd: 0.1 },
    { round: 1, calls: 2, errors: 1, tokens: tok(40), cost_usd: 0.2 },
    { round: 2, calls: 3, errors: 0, tokens: tok(20), cost_usd: 0.4 },
  ];
  it('sums calls, errors, tokens and cost without float noise', () => {
    const t = sumRows(rounds);
    expect(t.calls).toBe(6);
    expect(t.errors).toBe(1);
    expect(t.tokens.total).toBe(70);
    expect(t.cost_usd).toBe(0.7); // 0.1 + 0.2 + 0.4 is 0.7000000000000001 in floats
  });
  it('scales the bars to the largest round', () => {
    const b = roundBars(rounds, 'cost');
    expect(b.map((x) => x.pct)).toEqual([25, 50, 100]);
    expect(b[0].label).toBe('No round');
    expect(roundBars(rounds, 'tokens').map((x) => x.pct)).toEqual([25, 100, 50]);
    expect(roundBars([{ round: 1, cost_usd: 0 }])[0].pct).toBe(0);
  });
  it('puts each round’s models in the session’s model columns', () => {
    const m = roundModelMatrix({
      models: [{ provider: 'a', model: 'x' }, { provider: 'b', model: 'y' }],
      rounds: [{ round: 1, models: [{ provider: 'b', model: 'y', calls: 2, cost_usd: 0.5, tokens: tok(8) }] }],
    });
    expect(m.models).toEqual(['a/x', 'b/y']);
    expect(m.rows[0].cells).toEqual([null, { calls: 2, cost_usd: 0.5, tokens: 8 }]);
  });
});

describe('the live stream', () => {
  it('sorts the running rounds, the round-less first, and totals them', () => {
    const l = liveRounds({ 2: { calls: 1, tokens: 5, cost_usd: 0.5 }, '-1': { calls: 1, tokens: 1, cost_usd: 0 },
                           1: { calls: 2, tokens: 10, cost_usd: 0.25 } });
    expect(l.list.map((r) => r.round)).toEqual([null, 1, 2]);
    expect(l.total).toEqual({ calls: 4, tokens: 16, cost_usd: 0.75 });
  });
  it('a snapshot starts over; calls add newest first, once each, to their round', () => {
    const call = (id, round, cost) => ({ id, round, cost_usd: cost, input_tokens: 10, output_tokens: 5,
                                        reasoning_tokens: 3, cache_read_tokens: 1 });
    const st = { rounds: {}, calls: [], seen: 0 };
    expect(applyCrosstalk(st, { type: 'snapshot', calls: [call('a', 1, 0.5), call('b', 1, 0.25)] })).toBe(false);
    expect(st.calls.map((c) => c.id)).toEqual(['b', 'a']);
    expect(st.rounds).toEqual({ 1: { calls: 2, tokens: 32, cost_usd: 0.75 } });
    // The relay may send a snapshot's call again: it counts once.
    expect(applyCrosstalk(st, { type: 'calls', calls: [call('b', 1, 0.25), call('c', 2, 1)],
                                rounds: { 1: { calls: 3 } } })).toBe(true);
    expect(st.calls.map((c) => c.id)).toEqual(['c', 'b', 'a']);
    expect(st.rounds[1].calls).toBe(2);
    expect(st.rounds[2]).toEqual({ calls: 1, tokens: 16, cost_usd: 1 });
    expect(applyCrosstalk(st, { type: 'calls', calls: [call('c', 2, 1)] })).toBe(false);
    expect(st.seen).toBe(3);
    expect(applyCrosstalk(st, { type: 'calls', calls: [{ id: 'n', cost_usd: 0 }] })).toBe(true);
    expect(st.rounds['-1'].calls).toBe(1);
    expect(applyCrosstalk(st, { type: 'frame' })).toBe(false);
    applyCrosstalk(st, { type: 'snapshot', calls: [], rounds: {} });
    expect(st.calls).toEqual([]);
    expect(st.rounds).toEqual({});
    expect(st.seen).toBe(1);
  });
});
