import { flushSync, mount, unmount } from 'svelte';
import { describe, expect, it } from 'vitest';
import BudgetBar from './BudgetBar.svelte';

describe('BudgetBar', () => {
  it('shows spend of limit, the fill and a mark per threshold', () => {
    const target = document.createElement('div');
    const c = mount(BudgetBar, { target, props: { now: Date.parse('2026-11-22T12:00:00Z'), budget: {
      id: 1, period: 'day', scope: { provider: null, model: null }, limit_usd: 50, spend_usd: 41.5,
      percent_used: 83, remaining_usd: 8.5, projected_usd: 67.2, projected_percent: 134.4,
      period_end: '2026-11-23T00:00:00.000Z',
      thresholds: [{ percent: 80, crossed: true, crossed_at: null }, { percent: 95, crossed: false },
                   { percent: 100, crossed: false }],
    } } });
    flushSync();
    expect(target.querySelector('[data-testid="budget-spend"]').textContent).toBe('$41.50');
    expect(target.querySelector('.fill').style.width).toBe('83%');
    expect(target.querySelectorAll('.mark').length).toBe(3);
    expect(target.querySelector('[role="progressbar"]').getAttribute('aria-valuenow')).toBe('83');
    expect(target.textContent).toContain('Resets in 12 h');
    unmount(c);
  });
});
