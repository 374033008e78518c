import { describe, expect, it } from 'vitest';
import {
  actionWords, apiQuery, csvUrl, filtersFromQuery, filtersToQuery, fmtSeconds, groupWords,
  listUrl, matcherWords, parsePairs, rangeLabel, statsUrl, whoAmI,
} from './alerts.js';

describe('alert filters', () => {
  it('read the page query, dropping what the API would refuse', () => {
    expect(filtersFromQuery({})).toEqual({ status: '', severity: '', rule: '', range: '7d',
                                          from: '', to: '', q: '' });
    expect(filtersFromQuery({ status: 'firing,acknowledged', severity: 'high', rule: '12',
                              range: '24h', q: 'gpt' }))
      .toMatchObject({ status: 'firing,acknowledged', severity: 'high', rule: '12', range: '24h', q: 'gpt' });
    expect(filtersFromQuery({ status: 'firing,bogus', severity: 'urgent', rule: '0', range: '2y' }))
      .toMatchObject({ status: '', severity: '', rule: '', range: '7d' });
    expect(filtersFromQuery({ from: '2026-11-01T00:00:00Z', range: '24h' }))
      .toMatchObject({ range: 'custom', from: '2026-11-01T00:00:00Z' });
  });
  it('round-trip through the URL, defaults left out', () => {
    const f = filtersFromQuery({ status: 'resolved', rule: '3', range: 'all', q: ' x ' });
    expect(filtersToQuery(f)).toEqual({ status: 'resolved', severity: null, rule: '3', range: 'all',
                                        from: null, to: null, q: 'x' });
    expect(filtersToQuery(filtersFromQuery({}))).toEqual({ status: null, severity: null, rule: null,
      range: null, from: null, to: null, q: null });
  });
  it('make the API query, the list, CSV and stats URLs from the same filters', () => {
    const f = filtersFromQuery({ status: 'firing,acknowledged', severity: 'critical,high', rule: '4',
                                 range: '24h', q: 'gpt 4o' });
    expect(apiQuery(f)).toBe('status=firing%2Cacknowledged&severity=critical%2Chigh&rule=4&range=24h&q=gpt+4o');
    expect(listUrl(f)).toBe('/api/v1/alerts?' + apiQuery(f) + '&limit=100');
    expect(listUrl(f, 55)).toBe('/api/v1/alerts?' + apiQuery(f) + '&limit=100&cursor=55');
    expect(listUrl(f, undefined, 300)).toBe('/api/v1/alerts?' + apiQuery(f) + '&limit=300');
    expect(csvUrl(f)).toBe('/api/v1/alerts?' + apiQuery(f) + '&format=csv');
    expect(statsUrl(f)).toBe('/api/v1/alerts/stats?range=24h');
    const all = filtersFromQuery({ range: 'all' });
    expect(apiQuery(all)).toBe('');
    expect(csvUrl(all)).toBe('/api/v1/alerts?format=csv');
    expect(statsUrl(all)).toBe('/api/v1/alerts/stats?range=90d');
    expect(rangeLabel(all)).toBe('Last 90 days');
    const custom = filtersFromQuery({ from: '2026-11-01T00:00:00Z', to: '2026-11-02T00:00:00Z' });
    expect(apiQuery(custom)).toBe('from=2026-11-01T00%3A00%3A00Z&to=2026-11-02T00%3A00%3A00Z');
    expect(statsUrl(custom)).toBe('/api/v1/alerts/stats?' + apiQuery(custom));
  });
});

describe('alert words', () => {
  it('groups', () => {
    expect(groupWords({ model: 'gpt-4o', api_key: 'k1' })).toBe('model gpt-4o, API key k1');
    expect(groupWords({})).toBe('');
  });
  it('durations in seconds', () => {
    expect(fmtSeconds(0.821)).toBe('0.8 s');
    expect(fmtSeconds(150)).toBe('2.5 min');
    expect(fmtSeconds(7200)).toBe('2 h');
    expect(fmtSeconds(null)).toBe('–');
  });
  it('what an action did', () => {
    expect(actionWords('ack', 1, 1)).toBe('1 alert acknowledged.');
    expect(actionWords('ack', 3, 1)).toBe('1 of 3 alerts acknowledged (only firing alerts can be acknowledged).');
    expect(actionWords('delete', 2, 2)).toBe('2 alerts deleted.');
  });
  it('silence matchers', () => {
    expect(matcherWords({ rule: 3, severity: ['high', 'critical'] }, (id) => '"r' + id + '"'))
      .toBe('"r3"; severity high or critical');
    expect(matcherWords({ group: { model: 'a' }, labels: { team: 'x', env: 'p' } }))
      .toBe('labels team=x, env=p; group model=a');
  });
  it('key=value pairs', () => {
    expect(parsePairs('model=gpt-4o\nuser = bob')).toEqual({ model: 'gpt-4o', user: 'bob' });
    expect(parsePairs('a=1, b=2')).toEqual({ a: '1', b: '2' });
    expect(parsePairs('')).toEqual({});
    expect(parsePairs('nonsense')).toBeNull();
  });
});

describe('whoAmI', () => {
  it('names the session key', () => {
    expect(whoAmI({ name: 'admin', key_id: 1 })).toBe('admin (key 1)');
    expect(whoAmI(null)).toBeUndefined();
  });
});
