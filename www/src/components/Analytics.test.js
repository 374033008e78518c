// The Analytics page's components: range picker, filters, tables and overview cards.
import { flushSync, mount, unmount } from 'svelte';
import { describe, expect, it, vi } from 'vitest';
import AnalyticsCards from './AnalyticsCards.svelte';
import AnalyticsFilters from './AnalyticsFilters.svelte';
import AnalyticsTable from './AnalyticsTable.svelte';
import RangePicker from './RangePicker.svelte';
import { TABLES, toLocalInput } from '../lib/analytics.js';

function render(C, props) {
  const target = document.createElement('div');
  document.body.append(target);
  const c = mount(C, { target, props });
  flushSync();
  return { target, done: () => { unmount(c); target.remove(); } };
}

describe('RangePicker', () => {
  it('applies a preset at once and marks the chosen one', () => {
    const onpick = vi.fn();
    const { target, done } = render(RangePicker, { range: '24h', onpick });
    expect(target.querySelector('[data-range="24h"]').getAttribute('aria-pressed')).toBe('true');
    target.querySelector('[data-range="7d"]').click();
    expect(onpick).toHaveBeenCalledWith('7d');
    done();
  });
  it('opens a custom form, refuses an end before the start, applies a valid range', () => {
    const onapply = vi.fn();
    const { target, done } = render(RangePicker, { range: '24h', onapply });
    expect(target.querySelector('form')).toBeNull();
    target.querySelector('[data-range="custom"]').click();
    flushSync();
    const from = target.querySelector('#range-from'), to = target.querySelector('#range-to');
    expect(from.value).not.toBe('');
    from.value = '2026-11-22T10:00';
    from.dispatchEvent(new Event('input'));
    to.value = '2026-11-22T09:00';
    to.dispatchEvent(new Event('input'));
    target.querySelector('form').requestSubmit();
    flushSync();
    expect(target.querySelector('[role="alert"]').textContent).toMatch(/after the start/);
    expect(onapply).not.toHaveBeenCalled();
    to.value = '';
    to.dispatchEvent(new Event('input'));
    target.querySelector('form').requestSubmit();
    flushSync();
    expect(onapply).toHaveBeenCalledWith({ from: new Date(2026, 10, 22, 10, 0).toISOString(), to: '' });
    done();
  });
  it('shows an applied custom range in local time', () => {
    const iso = '2026-11-20T08:30:00.000Z';
    const { target, done } = render(RangePicker, { range: 'custom', from: iso, to: '' });
    expect(target.querySelector('#range-from').value).toBe(toLocalInput(iso));
    expect(target.querySelector('#range-to').value).toBe('');
    done();
  });
});

describe('AnalyticsFilters', () => {
  it('offers the values seen, models of the chosen provider, and a linked value not seen', () => {
    const onchange = vi.fn();
    const { target, done } = render(AnalyticsFilters, {
      values: { provider: 'openai', model: '', agent: 'gone', user: '' },
      options: { provider: ['anthropic', 'openai'], agent: ['a1'], user: [],
        model: [{ provider: 'openai', model: 'gpt-4o' }, { provider: 'anthropic', model: 'claude' }] },
      onchange,
    });
    const opts = (id) => [...target.querySelectorAll(`#af-${id} option`)].map((o) => o.value);
    expect(opts('model')).toEqual(['', 'gpt-4o']);
    expect(opts('agent')).toEqual(['', 'gone', 'a1']);
    expect(target.querySelector('#af-provider').value).toBe('openai');
    const sel = target.querySelector('#af-user');
    expect(target.querySelector('label[for="af-user"]').textContent).toBe('User');
    sel.dispatchEvent(new Event('change', { bubbles: true }));
    expect(onchange).toHaveBeenCalledWith('user', '');
    done();
  });
});

describe('AnalyticsTable and AnalyticsCards', () => {
  it('formats each column by its type, numbers to the right', () => {
    const { target, done } = render(AnalyticsTable, {
      def: TABLES.topUsers, testid: 't',
      answer: { users: [{ user: 'u1', calls: 12345, errors: 0, tokens: { total: 9 }, share: 50, cost_usd: 0.5 }] },
    });
    const cells = [...target.querySelectorAll('tbody td')].map((td) => td.textContent);
    expect(cells).toEqual(['u1', '12,345', '0', '9', '50%', '$0.50']);
    expect(target.querySelector('td[data-col="calls"]').classList.contains('num')).toBe(true);
    expect(target.querySelector('h2').textContent).toBe('Top users');
    done();
  });
  it('shows the error and a retry, or the empty text', () => {
    const retry = vi.fn();
    const e = render(AnalyticsTable, { def: TABLES.topUsers, testid: 't', error: new Error('boom'), retry });
    expect(e.target.querySelector('[role="alert"]').textContent).toMatch('boom');
    e.target.querySelector('[role="alert"] button').click();
    expect(retry).toHaveBeenCalled();
    e.done();
    const m = render(AnalyticsTable, { def: TABLES.topUsers, testid: 't', answer: { users: [] }, emptyText: 'None.' });
    expect(m.target.textContent).toMatch('None.');
    m.done();
  });
  it('cards show values and changes', () => {
    const { target, done } = render(AnalyticsCards, {
      compareTo: 'previous hour',
      cards: [{ id: 'calls', label: 'Calls', value: 1500, type: 'int', hint: '', change: 50 },
        { id: 'errors', label: 'Errors', value: 3, type: 'int', hint: '', change: Infinity }],
    });
    expect(target.querySelector('[data-testid="stat-calls"] .value').textContent).toBe('1,500');
    expect(target.querySelector('[data-testid="change-calls"]').textContent).toMatch('+50% vs previous hour');
    expect(target.querySelector('[data-testid="change-errors"]').textContent).toMatch('new: nothing in the previous hour');
    done();
  });
});
