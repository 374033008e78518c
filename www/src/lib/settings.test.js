import { describe, expect, it } from 'vitest';
import { describeQuiet, expiresIn, keyBody, keyDate, quietBody, quietNow, quietSet,
         timeZones } from './settings.js';

describe('quiet hours', () => {
  it('turns the form into the PUT body, seconds dropped', () => {
    expect(quietBody({ start: '22:00:00', end: '07:30', timezone: ' Europe/Berlin ' }))
      .toEqual({ body: { start: '22:00', end: '07:30', timezone: 'Europe/Berlin' } });
  });
  it('refuses missing or bad times, equal ends and no zone', () => {
    expect(quietBody({ start: '', end: '7:00', timezone: '' }).errors)
      .toEqual({ start: expect.any(String), end: expect.any(String), timezone: expect.any(String) });
    expect(quietBody({ start: '24:00', end: '01:00', timezone: 'UTC' }).errors.start).toBeTruthy();
    expect(quietBody({ start: '08:00', end: '08:00', timezone: 'UTC' }).errors.end).toMatch(/differ/);
  });
  it('describes what is stored', () => {
    expect(quietSet({})).toBe(false);
    expect(describeQuiet({})).toBe('Off');
    expect(describeQuiet({ start: '22:00', end: '07:00', timezone: 'Europe/Berlin' }))
      .toBe('22:00 to 07:00 (Europe/Berlin), across midnight');
    expect(describeQuiet({ start: '12:00', end: '13:00', timezone: 'UTC' })).toBe('12:00 to 13:00 (UTC)');
  });
  it('tells whether they are on now, in their zone, across midnight too', () => {
    const at = (iso) => Date.parse(iso);
    const night = { start: '22:00', end: '07:00', timezone: 'UTC' };
    expect(quietNow(night, at('2026-01-01T23:30:00Z'))).toBe(true);
    expect(quietNow(night, at('2026-01-01T06:59:00Z'))).toBe(true);
    expect(quietNow(night, at('2026-01-01T07:00:00Z'))).toBe(false);
    const lunch = { start: '12:00', end: '13:00', timezone: 'Asia/Tokyo' }; // UTC+9
    expect(quietNow(lunch, at('2026-01-01T03:30:00Z'))).toBe(true);
    expect(quietNow(lunch, at('2026-01-01T12:30:00Z'))).toBe(false);
    expect(quietNow({}, 0)).toBeNull();
    expect(quietNow({ ...night, timezone: 'Not/AZone' }, 0)).toBeNull();
  });
  it('offers the zones with UTC and the extras, sorted, once each', () => {
    const z = timeZones('Mars/Olympus', 'UTC');
    expect(z).toContain('UTC');
    expect(z).toContain('Mars/Olympus');
    expect(z.filter((x) => x === 'UTC').length).toBe(1);
    expect([...z].sort()).toEqual(z);
  });
});

describe('a new key', () => {
  it('needs a name and a known role; the workspace is optional but checked', () => {
    expect(keyBody({ name: ' ci ', role: 'read', workspace: '' })).toEqual({ body: { name: 'ci', role: 'read' } });
    expect(keyBody({ name: 'x', role: 'ingest', workspace: 'team-a' }).body.workspace).toBe('team-a');
    const bad = keyBody({ name: '', role: 'root', workspace: 'Team A' }).errors;
    expect(Object.keys(bad).sort()).toEqual(['name', 'role', 'workspace']);
    expect(keyBody({ name: 'é'.repeat(65), role: 'read' }).errors.name).toMatch(/128 bytes/);
  });
});

describe('dates', () => {
  it('says when the session ends', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(expiresIn('2026-01-01T11:05:00Z', now)).toBe('in 11 h 5 min');
    expect(expiresIn('2026-01-01T00:03:00Z', now)).toBe('in 3 min');
    expect(expiresIn('2025-12-31T00:00:00Z', now)).toBe('expired');
    expect(expiresIn(null, now)).toMatch(/never/);
  });
  it('shows a key date or never', () => {
    expect(keyDate(null)).toBe('never');
    expect(keyDate('2026-11-22T12:57:29.903Z')).toMatch(/^2026-11-2\d \d\d:\d\d$/);
  });
});
