import { describe, expect, it } from 'vitest';
import { fmtMs, fmtNum, fmtPct, fmtUsd, timeAgo } from './format.js';

describe('format', () => {
  it('counts', () => {
    expect(fmtNum(0)).toBe('0');
    expect(fmtNum(1234)).toBe('1,234');
    expect(fmtNum(56133.17)).toBe('56.1k');
    expect(fmtNum(3367990)).toBe('3.37M');
    expect(fmtNum(0.456)).toBe('0.46');
    expect(fmtNum(null)).toBe('–');
    expect(fmtNum(NaN)).toBe('–');
  });
  it('dollars keep small amounts readable', () => {
    expect(fmtUsd(8.71083172)).toBe('$8.71');
    expect(fmtUsd(0.1451805)).toBe('$0.1452');
    expect(fmtUsd(0.00036)).toBe('$0.00036');
    expect(fmtUsd(0)).toBe('$0.00');
    expect(fmtUsd(-2)).toBe('-$2.00');
  });
  it('durations and percents', () => {
    expect(fmtMs(850)).toBe('850 ms');
    expect(fmtMs(18619.3)).toBe('18.62 s');
    expect(fmtPct(1.5833)).toBe('1.58%');
  });
  it('time ago', () => {
    const now = Date.parse('2026-11-22T12:00:00Z');
    expect(timeAgo('2026-11-22T12:00:00Z', now)).toBe('just now');
    expect(timeAgo('2026-11-22T11:59:30Z', now)).toBe('30 s ago');
    expect(timeAgo('2026-11-22T11:57:00Z', now)).toBe('3 min ago');
    expect(timeAgo('2026-11-22T09:00:00Z', now)).toBe('3 h ago');
    expect(timeAgo('2026-11-18T12:00:00Z', now)).toBe('4 d ago');
    expect(timeAgo('garbage', now)).toBe('–');
  });
});

describe('login redirect', () => {
  it('only follows paths of this site', async () => {
    const { nextPath } = await import('./router.svelte.js');
    expect(nextPath('?next=%2Falerts%3Fx%3D1')).toBe('/alerts?x=1');
    expect(nextPath('?next=//evil.example')).toBe('/');
    expect(nextPath('?next=https://evil.example/')).toBe('/');
    expect(nextPath('')).toBe('/');
  });
});
