import { describe, expect, it } from 'vitest';
import {
  MAX_CONDITIONS, apiFieldError, canAddCondition, canAddGroup, conditionWords, countConditions, durationParts,
  durationWords, emptyForm, errorAt, fieldId, fieldMessage, formFromRule, formatDuration,
  joinDuration, newCondition, newGroup, notifyWords, parseDuration, removeNode, ruleFromForm,
  ruleWords, thresholdWords, toTree, treeDepth, treeInfo, treeToCondition, valueWords,
} from './rules.js';

// The example rule of docs/api.md ("Alert rules").
const docRule = {
  name: 'gpt-4o errors', description: '...', enabled: true, severity: 'high',
  condition: { op: 'and', conditions: [
    { metric: 'requests', operator: '>=', threshold: 10 },
    { op: 'or', conditions: [
      { metric: 'error_rate', operator: '>', threshold: 5 },
      { metric: 'latency_p95', operator: '>', threshold: 2000 }] }] },
  window: '5m', for: '2m', cooldown: '15m', renotify: '0s',
  group_by: ['model'], filters: { provider: 'openai' },
  no_data: 'keep', channels: [1],
  labels: { team: 'infra' }, annotations: { runbook: 'https://...' },
};

describe('durations', () => {
  it('parse as the API does', () => {
    expect(parseDuration('0')).toBe(0);
    expect(parseDuration('0s')).toBe(0);
    expect(parseDuration('30s')).toBe(30000);
    expect(parseDuration('5m')).toBe(300000);
    expect(parseDuration('2h')).toBe(7200000);
    expect(parseDuration('7d')).toBe(604800000);
    for (const bad of ['', '5', 'm', '1.5m', '5 m', '-1m', '5w', null, 5]) expect(parseDuration(bad)).toBeNull();
  });
  it('format in the largest whole unit, like the API', () => {
    expect(formatDuration(300000)).toBe('5m');
    expect(formatDuration(90000)).toBe('90s');
    expect(formatDuration(3600000)).toBe('1h');
    expect(formatDuration(86400000 * 2)).toBe('2d');
    expect(formatDuration(0)).toBe('0s');
  });
  it('split into a number and a unit, and back', () => {
    expect(durationParts('300s')).toEqual({ n: 5, unit: 'm' });
    expect(durationParts('0')).toEqual({ n: 0, unit: 's' });
    expect(durationParts('junk')).toEqual({ n: '', unit: 'm' });
    expect(joinDuration(5, 'm')).toBe('5m');
    expect(joinDuration('', 'm')).toBe('');
    expect(joinDuration(1.5, 'h')).toBe('');
    expect(joinDuration(-1, 'h')).toBe('');
  });
  it('read in words', () => {
    expect(durationWords('5m')).toBe('5 minutes');
    expect(durationWords('60s')).toBe('1 minute');
    expect(durationWords('1d')).toBe('1 day');
    expect(durationWords('x')).toBeNull();
  });
});

describe('the condition tree', () => {
  it('round-trips the docs example, nested groups included, with unique ids', () => {
    const tree = toTree(docRule.condition);
    expect(tree.kind).toBe('group');
    expect(tree.children[1].kind).toBe('group');
    expect(tree.children[1].op).toBe('or');
    const ids = [tree.id, ...tree.children.map((c) => c.id), ...tree.children[1].children.map((c) => c.id)];
    expect(new Set(ids).size).toBe(5);
    expect(treeToCondition(tree)).toEqual(docRule.condition);
    expect(countConditions(tree)).toBe(3);
    expect(treeDepth(tree)).toBe(3);
  });
  it('wraps a single condition in a group, and sends a group of one condition as that condition', () => {
    const c = { metric: 'requests', operator: '<', threshold: 1 };
    const tree = toTree(c);
    expect(tree.kind).toBe('group');
    expect(tree.children).toHaveLength(1);
    expect(treeToCondition(tree)).toEqual(c);
    // ...but a group of one group stays a group.
    const g = { op: 'or', conditions: [{ op: 'and', conditions: [c, c] }] };
    expect(treeToCondition(toTree(g))).toEqual(g);
  });
  it('sends a period only for budget_used_percent, and a bad threshold as null', () => {
    const tree = newGroup('and', [
      newCondition({ metric: 'budget_used_percent', operator: '>=', threshold: '80', period: 'month' }),
      newCondition({ metric: 'cost', operator: '>', threshold: '', period: 'month' }),
    ]);
    expect(treeToCondition(tree)).toEqual({ op: 'and', conditions: [
      { metric: 'budget_used_percent', operator: '>=', threshold: 80, period: 'month' },
      { metric: 'cost', operator: '>', threshold: null }] });
  });
  it('numbers conditions and groups in order and knows their API paths', () => {
    const tree = toTree(docRule.condition);
    const info = treeInfo(tree);
    const [a, g] = tree.children;
    const [b, c] = g.children;
    expect(info.get(tree.id)).toMatchObject({ n: 1, depth: 1, path: 'condition' });
    expect(info.get(a.id)).toMatchObject({ n: 1, depth: 2, path: 'condition.conditions[0]' });
    expect(info.get(g.id)).toMatchObject({ n: 2, depth: 2, path: 'condition.conditions[1]' });
    expect(info.get(b.id)).toMatchObject({ n: 2, path: 'condition.conditions[1].conditions[0]' });
    expect(info.get(c.id)).toMatchObject({ n: 3, depth: 3, path: 'condition.conditions[1].conditions[1]' });
    // A root group of one condition is sent as the condition: its path is "condition".
    const one = toTree({ metric: 'requests', operator: '>', threshold: 1 });
    expect(treeInfo(one).get(one.children[0].id).path).toBe('condition');
  });
  it('keeps to the limits: 5 levels and 32 conditions', () => {
    let tree = newGroup();
    let g = tree;
    for (let d = 1; d < 4; d++) {
      expect(canAddGroup(tree, d)).toBe(true);
      const k = newGroup();
      g.children.push(k);
      g = k;
    }
    // g is at depth 4: a condition fits (level 5), a group with a condition does not.
    expect(treeDepth(tree)).toBe(5);
    expect(canAddCondition(tree, 4)).toBe(true);
    expect(canAddGroup(tree, 4)).toBe(false);
    tree = newGroup('and', Array.from({ length: MAX_CONDITIONS }, () => newCondition()));
    expect(canAddCondition(tree, 1)).toBe(false);
    expect(canAddGroup(tree, 1)).toBe(false);
  });
  it('removes a node but never empties a group', () => {
    const tree = toTree(docRule.condition);
    const inner = tree.children[1];
    expect(removeNode(tree, inner.children[0].id)).toBe(true);
    expect(inner.children).toHaveLength(1);
    expect(removeNode(tree, inner.children[0].id)).toBe(false);
    expect(removeNode(tree, inner.id)).toBe(true);
    expect(treeToCondition(tree)).toEqual({ metric: 'requests', operator: '>=', threshold: 10 });
    expect(removeNode(tree, tree.id)).toBe(false);
  });
});

describe('the rule and its form', () => {
  it('turn the docs example into the form and back unchanged', () => {
    const f = formFromRule({ ...docRule, id: 7, created_at: 'x', updated_at: 'y' });
    expect(f.filters).toEqual({ provider: 'openai', model: '', agent: '', user: '', api_key: '' });
    expect(ruleFromForm(f)).toEqual(docRule);
  });
  it('trims filters, drops empty ones, keeps group_by in the API order', () => {
    const f = emptyForm();
    f.name = '  my rule ';
    f.filters.model = ' gpt-4o ';
    f.filters.user = '   ';
    f.group_by = ['user', 'provider'];
    const r = ruleFromForm(f);
    expect(r.name).toBe('my rule');
    expect(r.filters).toEqual({ model: 'gpt-4o' });
    expect(r.group_by).toEqual(['provider', 'user']);
    expect(r.condition).toEqual({ metric: 'error_rate', operator: '>', threshold: 5 });
  });
});

describe('in words', () => {
  it('reads the docs example as the issue says', () => {
    expect(ruleWords(docRule)).toBe('Fires when requests ≥ 10 and (error rate > 5% or P95 latency > 2 s) ' +
      'over 5 minutes, held for 2 minutes, per model, for provider openai');
    // The form reads the same.
    expect(ruleWords(formFromRule(docRule))).toBe(ruleWords(docRule));
  });
  it('brackets nested groups at every level and leaves out what is not set', () => {
    const c = { op: 'or', conditions: [
      { metric: 'cost', operator: '>', threshold: 1.5 },
      { op: 'and', conditions: [
        { metric: 'budget_used_percent', operator: '>=', threshold: 80, period: 'month' },
        { op: 'or', conditions: [{ metric: 'rps', operator: '<', threshold: 1 },
                                 { metric: 'ttft_p95', operator: '!=', threshold: 850 }] }] }] };
    expect(conditionWords(c)).toBe('cost > $1.5 or (monthly budget used ≥ 80% and ' +
      '(requests/s < 1 or P95 time to first token ≠ 850 ms))');
    expect(ruleWords({ condition: c, window: '1h', for: '0s', group_by: ['provider', 'user', 'api_key'],
                       filters: { model: 'm', agent: 'a' } }))
      .toBe('Fires when ' + conditionWords(c) + ' over 1 hour, per provider, user and API key, ' +
            'for model m and agent a');
  });
  it('marks what is missing', () => {
    expect(ruleWords({ condition: { metric: 'errors', operator: '>', threshold: null }, window: '', for: 'x' }))
      .toBe('Fires when errors > ? over ?, held for ?');
  });
  it('formats thresholds and values by unit', () => {
    expect(thresholdWords('latency_p95', 850)).toBe('850 ms');
    expect(thresholdWords('latency_p95', 2500)).toBe('2.5 s');
    expect(thresholdWords('error_rate', 0)).toBe('0%');
    expect(thresholdWords('requests', 10000)).toBe('10,000');
    expect(thresholdWords('requests', 'abc')).toBe('?');
    expect(valueWords('latency_p95', 10908.35729)).toBe('10.91 s');
    expect(valueWords('error_rate', 2.5)).toBe('2.5%');
    expect(valueWords('requests', null)).toBe('no data');
  });
  it('says how notifications repeat', () => {
    expect(notifyWords({ cooldown: '15m', renotify: '0s' })).toBe('at most one notification every 15 minutes');
    expect(notifyWords({ cooldown: '0s', renotify: '0s' })).toBe('');
  });
});

describe('field errors', () => {
  const err = { field: 'condition.conditions[1].operator',
                message: 'condition.conditions[1].operator must be one of >, >=, <, <=, ==, !=, got "~"' };
  it('find the field the API names', () => {
    expect(errorAt(err, 'condition.conditions[1]', ['metric', 'operator', 'threshold'])).toBe(err);
    expect(errorAt(err, 'condition.conditions[1]', ['metric'])).toBeNull();
    expect(errorAt(err, 'condition.conditions[1].conditions[0]', ['operator'])).toBeNull();
    expect(errorAt({ field: 'name', message: 'name is required' }, 'name')).toBeTruthy();
    expect(errorAt(null, 'name')).toBeNull();
  });
  it('give ids and messages without the path', () => {
    expect(fieldId('condition.conditions[1].operator')).toBe('f-condition-conditions-1-operator');
    expect(fieldId('group_by[1]')).toBe('f-group_by-1');
    expect(fieldMessage(err)).toBe('Must be one of >, >=, <, <=, ==, !=, got "~"');
    expect(fieldMessage({ field: 'x', message: 'something else' })).toBe('Something else');
  });
});

describe('apiFieldError', () => {
  it('takes the field of the answer, or the path its message starts with', () => {
    expect(apiFieldError({ code: 'invalid_field', field: 'name', message: 'name is required' }))
      .toEqual({ field: 'name', message: 'name is required' });
    expect(apiFieldError({ code: 'invalid_field', message: 'condition.conditions[1].threshold must be a number, got null' }))
      .toEqual({ field: 'condition.conditions[1].threshold', message: 'condition.conditions[1].threshold must be a number, got null' });
    expect(apiFieldError({ code: 'invalid_field', message: 'give either ends_at or duration' })).toBeNull();
    expect(apiFieldError({ code: 'conflict', message: 'a rule of this workspace already has that name' }).field)
      .toBe('name');
    expect(apiFieldError({ code: 'unavailable', message: 'name x' })).toBeNull();
    expect(apiFieldError(null)).toBeNull();
  });
});
