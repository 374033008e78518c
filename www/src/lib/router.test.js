import { describe, expect, it } from 'vitest';
import { matchPath, nextPath } from './router.svelte.js';

describe('routes', () => {
  it('matches fixed paths and parameters', () => {
    expect(matchPath('/', '/')).toEqual({});
    expect(matchPath('/alerts', '/alerts')).toEqual({});
    expect(matchPath('/alerts', '/alerts/')).toEqual({});
    expect(matchPath('/alerts/:id', '/alerts/42')).toEqual({ id: '42' });
    expect(matchPath('/crosstalk/:id', '/crosstalk/a%20b')).toEqual({ id: 'a b' });
    expect(matchPath('/alerts/:id', '/alerts')).toBeNull();
    expect(matchPath('/alerts', '/rules')).toBeNull();
    expect(matchPath('/', '/alerts')).toBeNull();
  });
  it('only follows ?next= to a path of this site', () => {
    expect(nextPath('?next=/alerts')).toBe('/alerts');
    expect(nextPath('?next=//evil.example')).toBe('/');
    expect(nextPath('?next=https://evil.example')).toBe('/');
  });
});
