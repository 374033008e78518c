import { describe, expect, it } from 'vitest';
import { align, nearest, niceTicks, stack, thin, timeTicks } from './chart.js';

describe('chart arithmetic', () => {
  it('aligns series on one time axis, NaN where a series has no point', () => {
    const { xs, ys } = align([{ points: [[1, 5], [3, 6]] }, { points: [[2, 1], [3, null]] }]);
    expect([...xs]).toEqual([1, 2, 3]);
    expect([...ys[0]]).toEqual([5, NaN, 6]);
    expect([...ys[1]]).toEqual([NaN, 1, NaN]);
  });
  it('stacks with missing as zero', () => {
    const tops = stack([Float64Array.from([1, NaN, 2]), Float64Array.from([3, 4, NaN])]);
    expect([...tops[0]]).toEqual([1, 0, 2]);
    expect([...tops[1]]).toEqual([4, 4, 2]);
  });
  it('thins a long line to at most four points per pixel column, keeping extremes and gaps', () => {
    const n = 10000;
    const xs = Float64Array.from({ length: n }, (_, i) => i);
    const y = Float64Array.from({ length: n }, (_, i) => Math.sin(i / 7) * 100);
    y[5000] = 1e6; // a spike must survive
    y[7000] = NaN; // a gap must survive
    const idx = thin(xs, y, 0, n - 1, 100);
    expect(idx.length).toBeLessThanOrEqual(100 * 4 + 2);
    expect(idx).toContain(5000);
    expect(idx).toContain(7000);
    expect(idx).toEqual([...idx].sort((a, b) => a - b));
    expect(thin(xs.slice(0, 50), y.slice(0, 50), 0, 49, 100)).toBeNull();
  });
  it('chooses round ticks covering the range', () => {
    expect(niceTicks(0, 97).ticks).toEqual([0, 20, 40, 60, 80, 100]);
    const t = niceTicks(0.013, 0.0412);
    expect(t.lo).toBeLessThanOrEqual(0.013);
    expect(t.hi).toBeGreaterThanOrEqual(0.0412);
    expect(niceTicks(0, 0).ticks).toEqual([0, 1]);
    expect(niceTicks(5, 5).lo).toBe(0);
  });
  it('puts time ticks on round local boundaries', () => {
    const t0 = new Date(2026, 10, 1, 0, 7).getTime();
    const { ticks, step } = timeTicks(t0, t0 + 6 * 3600e3, 6);
    expect(step).toBe(3600e3);
    expect(new Date(ticks[0]).getMinutes()).toBe(0);
    expect(ticks.length).toBeLessThanOrEqual(6);
    const days = timeTicks(t0, t0 + 90 * 86400e3, 8);
    expect(days.ticks.every((t) => new Date(t).getHours() === 0)).toBe(true);
    expect(days.ticks.length).toBeLessThanOrEqual(8);
  });
  it('finds the nearest point', () => {
    const xs = Float64Array.from([0, 10, 20, 30]);
    expect(nearest(xs, 14)).toBe(1);
    expect(nearest(xs, 16)).toBe(2);
    expect(nearest(xs, -5)).toBe(0);
    expect(nearest(xs, 99)).toBe(3);
  });
});

describe('align, the shared-times case', () => {
  it('gives the same answer as the general case', () => {
    const a = [{ points: [[1, 1], [2, null], [3, 3]] }, { points: [[1, 4], [2, 5], [3, 6]] }];
    const r = align(a);
    expect([...r.xs]).toEqual([1, 2, 3]);
    expect([...r.ys[0]]).toEqual([1, NaN, 3]);
    expect([...r.ys[1]]).toEqual([4, 5, 6]);
    // Unsorted times take the general path and come out sorted.
    const u = align([{ points: [[3, 1], [1, 2]] }]);
    expect([...u.xs]).toEqual([1, 3]);
    expect([...u.ys[0]]).toEqual([2, 1]);
  });
});
