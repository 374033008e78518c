import { describe, expect, it } from 'vitest';
import { applyMessage, FEED_MAX, HISTORY, tileValues } from './live.svelte.js';

const stats = (rps, p95 = 100) => ({
  rps,
  error_rate: 2.5,
  cost_per_second: 0.01,
  tokens_per_second: { total: rps * 10 },
  latency_ms: { p95 },
});
const empty = () => ({ seq: 0, stats: null, series: { rps: [], tokens: [], cost: [], errors: [], p95: [] }, feed: [] });

describe('live stream messages', () => {
  it('a snapshot resets, frames append', () => {
    const st = empty();
    st.series.rps = [9, 9];
    applyMessage(st, { type: 'snapshot', seq: 10, stats: stats(1), feed: [{ id: 'a' }] });
    expect(st.seq).toBe(10);
    expect(st.series.rps).toEqual([1]);
    expect(st.feed.map((e) => e.id)).toEqual(['a']);
    const ev = applyMessage(st, {
      type: 'frame', seq: 11, stats: stats(2, 250), feed: [{ id: 'c' }, { id: 'b' }],
      events: [{ topic: 'alert', event: { id: 1 } }],
    });
    expect(st.seq).toBe(11);
    expect(st.series.rps).toEqual([1, 2]);
    expect(st.series.p95).toEqual([100, 250]);
    expect(st.series.tokens).toEqual([10, 20]);
    expect(st.feed.map((e) => e.id)).toEqual(['c', 'b', 'a']);
    expect(ev).toEqual([{ topic: 'alert', event: { id: 1 } }]);
  });
  it('keeps bounded history and feed', () => {
    const st = empty();
    applyMessage(st, { type: 'snapshot', seq: 1, stats: stats(0), feed: [] });
    for (let i = 0; i < HISTORY + 20; i++)
      applyMessage(st, { type: 'frame', seq: 2 + i, stats: stats(i), feed: [{ id: 'x' + i }] });
    expect(st.series.rps.length).toBe(HISTORY);
    expect(st.series.rps.at(-1)).toBe(HISTORY + 19);
    expect(st.feed.length).toBe(FEED_MAX);
    expect(st.feed[0].id).toBe('x' + (HISTORY + 19));
  });
  it('keeps one row per feed id', () => {
    const st = empty();
    applyMessage(st, { type: 'snapshot', seq: 1, stats: stats(0), feed: [{ id: 'b' }, { id: 'a' }] });
    applyMessage(st, { type: 'frame', seq: 2, stats: stats(0), feed: [{ id: 'c' }, { id: 'b' }] });
    expect(st.feed.map((e) => e.id)).toEqual(['c', 'b', 'a']);
  });
  it('ignores what is not a frame', () => {
    const st = empty();
    expect(applyMessage(st, { type: 'calls' })).toEqual([]);
    expect(applyMessage(st, null)).toEqual([]);
    expect(st.seq).toBe(0);
  });
  it('tile values tolerate missing stats', () => {
    expect(tileValues(null)).toEqual({ rps: 0, tokens: 0, cost: 0, errors: 0, p95: null });
    expect(tileValues(stats(3, 42)).p95).toBe(42);
  });
});

describe('RelaySocket', () => {
  it('a stop while the token is on its way opens nothing, also after a new start', async () => {
    const { RelaySocket } = await import('./live.svelte.js');
    const opened = [];
    const resolvers = [];
    globalThis.fetch = () => new Promise((res) => resolvers.push(res));
    globalThis.WebSocket = class {
      constructor(url) { opened.push(url); }
      close() {}
    };
    const s = new RelaySocket('/ws/live');
    s.start();
    s.stop();
    s.start();
    const answer = (t) => ({ status: 200, ok: true, text: async () => JSON.stringify({ token: t }) });
    resolvers[0](answer('old'));
    resolvers[1](answer('new'));
    await new Promise((r) => setTimeout(r, 20));
    expect(opened.length).toBe(1);
    expect(opened[0]).toContain('token=new');
    s.stop();
  });
});
