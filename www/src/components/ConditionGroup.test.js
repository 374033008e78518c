import { flushSync, mount, unmount } from 'svelte';
import { describe, expect, it } from 'vitest';
import ConditionGroupHost from './ConditionGroupHost.test.svelte';
import { MAX_CONDITIONS, newCondition, newGroup, toTree, treeToCondition } from '../lib/rules.js';

// The tree editor in jsdom: every control labelled by its number, adding
// and removing conditions and groups, the limits, and the API's errors
// shown at their row.
function render(tree, props = {}) {
  const target = document.createElement('div');
  document.body.append(target);
  let state = null;
  const c = mount(ConditionGroupHost, { target, props: { state: { tree }, expose: (s) => (state = s), ...props } });
  flushSync();
  const q = (label) => target.querySelector(`[aria-label="${label}"]`);
  const button = (name) => [...target.querySelectorAll('button')].find((b) => b.textContent.replace(/\s+/g, ' ').trim() === name);
  return { target, q, button, c, state, done: () => { unmount(c); target.remove(); } };
}

describe('ConditionGroup', () => {
  it('labels every control by its condition or group number', () => {
    const r = render(toTree({ op: 'and', conditions: [
      { metric: 'requests', operator: '>=', threshold: 10 },
      { op: 'or', conditions: [{ metric: 'error_rate', operator: '>', threshold: 5 },
                               { metric: 'budget_used_percent', operator: '>', threshold: 80, period: 'month' }] }] }));
    expect(r.q('Metric of condition 1').value).toBe('requests');
    expect(r.q('Operator of condition 1').value).toBe('>=');
    expect(r.q('Threshold of condition 1').value).toBe('10');
    expect(r.q('Logic of group 2').value).toBe('or');
    expect(r.q('Metric of condition 3').value).toBe('budget_used_percent');
    expect(r.q('Period of condition 3').value).toBe('month');
    expect(r.q('Period of condition 2')).toBeNull();
    expect(r.button('+ Add condition to group 2')).toBeTruthy();
    expect(r.button('Remove group 2')).toBeTruthy();
    expect(r.button('Remove group 1')).toBeUndefined(); // the root stays
    r.done();
  });

  it('adds and removes conditions and groups, editing the tree it was given', () => {
    const r = render(newGroup('and', [newCondition({ metric: 'requests', operator: '>', threshold: 0 })]));
    expect(r.q('Remove condition 1').disabled).toBe(true); // a group keeps one child
    r.button('+ Add group to group 1').click();
    flushSync();
    expect(r.q('Logic of group 2').value).toBe('or');
    r.button('+ Add condition to group 2').click();
    flushSync();
    expect(treeToCondition(r.state.tree)).toEqual({ op: 'and', conditions: [
      { metric: 'requests', operator: '>', threshold: 0 },
      { op: 'or', conditions: [{ metric: 'error_rate', operator: '>', threshold: 5 },
                               { metric: 'error_rate', operator: '>', threshold: 5 }] }] });
    r.q('Remove condition 2').click();
    flushSync();
    expect(r.q('Metric of condition 3')).toBeNull();
    r.button('Remove group 2').click();
    flushSync();
    expect(treeToCondition(r.state.tree)).toEqual({ metric: 'requests', operator: '>', threshold: 0 });
    r.done();
  });

  it('offers no more than the API allows', () => {
    let deep = newGroup();
    const root = deep;
    for (let d = 1; d < 4; d++) {
      const g = newGroup();
      deep.children.push(g);
      deep = g;
    }
    let r = render(root);
    expect(r.button('+ Add group to group 4').disabled).toBe(true); // a 6th level
    expect(r.button('+ Add condition to group 4').disabled).toBe(false);
    expect(r.button('+ Add group to group 3').disabled).toBe(false);
    r.done();
    r = render(newGroup('and', Array.from({ length: MAX_CONDITIONS }, () => newCondition())));
    expect(r.button('+ Add condition to group 1').disabled).toBe(true);
    r.done();
  });

  it('shows the API\'s error at the field it names', () => {
    const tree = toTree({ op: 'and', conditions: [{ metric: 'requests', operator: '>', threshold: 1 },
                                                  { metric: 'errors', operator: '>', threshold: 1 }] });
    const r = render(tree, { error: { field: 'condition.conditions[1].threshold',
                                      message: 'condition.conditions[1].threshold must be a number, got null' } });
    const errs = r.target.querySelectorAll('[data-testid="field-error"]');
    expect(errs).toHaveLength(1);
    expect(errs[0].textContent).toBe('Must be a number, got null');
    const input = r.q('Threshold of condition 2');
    expect(input.getAttribute('aria-invalid')).toBe('true');
    expect(input.getAttribute('aria-describedby')).toBe(errs[0].id);
    expect(r.q('Threshold of condition 1').getAttribute('aria-invalid')).toBeNull();
    r.done();
  });
});
