// The alerts pages and the rule builder, through the UI against demo
// traffic: build a nested rule by hand (its words, a test with a verdict
// per condition, the tree as stored), see it fire, open it, acknowledge
// and resolve it from the list, export the list as CSV, edit and disable
// the rule, field errors from the API, a silence made and expired; then
// the rule is deleted and its open alerts resolved.
import { readFile } from 'node:fs/promises';
import { assert, until } from '../harness.mjs';

// RFC 4180: quoted fields, doubled quotes, CRLF.
function parseCsv(text) {
  const rows = [];
  let row = [], f = '', quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { f += '"'; i++; }
      else if (c === '"') quoted = false;
      else f += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(f); f = ''; }
    else if (c === '\n') { row.push(f.replace(/\r$/, '')); rows.push(row); row = []; f = ''; }
    else f += c;
  }
  if (f || row.length) { row.push(f); rows.push(row); }
  return rows;
}

const sameJson = (a, b) => JSON.stringify(a) === JSON.stringify(b);

export default async function alerts(h) {
  const { page } = h;
  const name = 'e2e requests flowing ' + Date.now().toString(36);
  const built = { op: 'and', conditions: [
    { metric: 'requests', operator: '>', threshold: 0 },
    { op: 'or', conditions: [
      { metric: 'error_rate', operator: '>=', threshold: 0 },
      { metric: 'latency_p95', operator: '>', threshold: 0 }] }] };
  let ruleId = 0;
  let alertId = 0;
  let chId = 0;
  const label = (s) => page.getByLabel(s, { exact: true });
  const tableIds = (testid) => page.$$eval(`[data-testid="${testid}"] tbody tr`,
    (trs) => trs.map((tr) => Number(tr.dataset.id)));

  await h.check('rule builder: a nested AND/OR rule built by hand reads back in words', async () => {
    // A channel for the rule to notify (in-app: delivered without a network).
    const ch = await h.api('POST', '/api/v1/channels', { name: 'e2e alerts inbox', type: 'in_app', config: {} });
    assert(ch.status === 201, 'channel: ' + JSON.stringify(ch));
    chId = ch.data.id;
    await h.go('/rules');
    await page.getByTestId('new-rule').click();
    await page.getByRole('heading', { name: 'New rule' }).waitFor();
    await page.fill('#f-name', name);
    await label('Metric of condition 1').selectOption('requests');
    await label('Operator of condition 1').selectOption('>');
    await label('Threshold of condition 1').fill('0');
    // The budget metric takes a period; the others do not.
    assert(!(await label('Period of condition 1').count()), 'a period for requests');
    await label('Metric of condition 1').selectOption('budget_used_percent');
    await label('Period of condition 1').selectOption('month');
    assert((await page.getByTestId('rule-preview').innerText()).includes('monthly budget used > 0%'),
           await page.getByTestId('rule-preview').innerText());
    await label('Metric of condition 1').selectOption('requests');
    await page.getByRole('button', { name: 'Add group to group 1', exact: true }).click();
    // The keyboard focus moved into the new group.
    const focused = await page.evaluate(() => document.activeElement?.getAttribute('aria-label'));
    assert(focused === 'Metric of condition 2', 'focus after adding a group: ' + focused);
    await label('Logic of group 2').selectOption('or');
    await label('Metric of condition 2').selectOption('error_rate');
    await label('Operator of condition 2').selectOption('>=');
    await label('Threshold of condition 2').fill('0');
    await page.getByRole('button', { name: 'Add condition to group 2', exact: true }).click();
    await label('Metric of condition 3').selectOption('latency_p95');
    await label('Operator of condition 3').selectOption('>');
    await label('Threshold of condition 3').fill('0');
    // A fourth condition, then removed again.
    await page.getByRole('button', { name: 'Add condition to group 1', exact: true }).click();
    await page.getByRole('button', { name: 'Remove condition 4', exact: true }).click();
    await page.fill('#f-window', '1');
    await label('Window: unit').selectOption('m');
    await page.fill('#f-for', '0');
    await label('For: unit').selectOption('s');
    await page.selectOption('#f-severity', 'high');
    await page.getByRole('checkbox', { name: /^e2e alerts inbox/ }).check();
    const words = await page.getByTestId('rule-preview').innerText();
    assert(words === 'Fires when requests > 0 and (error rate ≥ 0% or P95 latency > 0 ms) over 1 minute.',
           'preview: ' + words);
    const count = await page.getByTestId('tree-count').innerText();
    assert(count.includes('3 of 32 conditions') && count.includes('3 of 5 levels'), count);
  });

  await h.check('rule builder: Test shows each condition\'s value and verdict before saving', async () => {
    await page.getByTestId('rule-test').click();
    const res = page.getByTestId('test-result');
    await res.waitFor({ timeout: 20000 });
    assert((await res.locator('[data-would]').getAttribute('data-would')) === 'fire', await res.innerText());
    const first = res.getByTestId('test-group').first();
    const conds = await first.getByTestId('result-condition').evaluateAll((els) =>
      els.map((e) => [e.dataset.metric, e.dataset.holds, e.querySelector('.val').textContent]));
    assert(sameJson(conds.map((c) => c[0]), ['requests', 'error_rate', 'latency_p95']), JSON.stringify(conds));
    assert(conds.every((c) => c[1] === 'true'), 'a condition does not hold: ' + JSON.stringify(conds));
    assert(/^\d/.test(conds[0][2]) && conds[0][2] !== '0', 'requests value: ' + conds[0][2]);
    assert((await first.getByTestId('result-group').count()) === 2, 'the groups of the tree are not shown');
    await h.pageChecks('rule-edit');
  });

  await h.check('rule builder: save; the stored rule is the tree that was built', async () => {
    await page.getByTestId('rule-save').click();
    await page.waitForURL(/\/rules\/\d+$/);
    ruleId = Number(new URL(page.url()).pathname.split('/').pop());
    await page.getByTestId('form-status').filter({ hasText: 'Rule saved' }).waitFor();
    const r = await h.api('GET', '/api/v1/alerts/rules/' + ruleId);
    assert(r.status === 200, 'GET rule: ' + r.status);
    assert(sameJson(r.data.condition, built), 'stored: ' + JSON.stringify(r.data.condition));
    assert(r.data.name === name && r.data.window === '1m' && r.data.for === '0s' &&
           r.data.severity === 'high' && r.data.enabled === true && sameJson(r.data.channels, [chId]),
           JSON.stringify(r.data));
    // The form shows the saved rule again.
    assert((await page.inputValue('#f-name')) === name, 'the name after saving');
    assert((await label('Logic of group 2').inputValue()) === 'or', 'group 2 after saving');
  });

  await h.check('alerts: the rule fires and shows in the list (refresh)', async () => {
    assert(ruleId, 'no rule was saved');
    await h.go('/rules');
    await page.getByRole('link', { name: 'Alerts of ' + name, exact: true }).click();
    await page.waitForURL((u) => u.searchParams.get('rule') === String(ruleId));
    await until(async () => {
      await page.getByTestId('refresh').click();
      await page.waitForTimeout(1500);
      return (await tableIds('alerts')).length > 0;
    }, { timeout: 45000, every: 500, what: 'an alert of the rule in the list' });
    const ids = await tableIds('alerts');
    const api = await h.api('GET', '/api/v1/alerts?rule=' + ruleId);
    assert(sameJson(ids, api.data.alerts.map((a) => a.id)), 'list ' + ids + ' vs API ' +
           api.data.alerts.map((a) => a.id));
    alertId = ids[ids.length - 1];
    const row = page.locator(`[data-testid="alerts"] tr[data-id="${alertId}"]`);
    const text = await row.innerText();
    assert(/high/i.test(text) && /firing/i.test(text) && text.includes(name), 'row: ' + text);
    const firing = await page.getByTestId('stat-firing').innerText();
    assert(Number(firing) >= 1, 'firing stat ' + firing);
    await h.pageChecks('alerts');
  });

  await h.check('alert detail: the values that fired it and the timeline', async () => {
    assert(alertId, 'no alert fired');
    await page.locator(`[data-testid="alerts"] tr[data-id="${alertId}"] a`).first().click();
    await page.waitForURL(new RegExp('/alerts/' + alertId + '$'));
    await page.getByTestId('alert-values').waitFor();
    const vals = await page.$$eval('[data-testid="alert-values"] tbody tr', (trs) =>
      trs.map((tr) => [tr.dataset.metric, ...[...tr.cells].map((c) => c.textContent.trim())]));
    assert(sameJson(vals.map((v) => v[0]), ['requests', 'error_rate', 'latency_p95']), JSON.stringify(vals));
    assert(vals.every((v) => v[4] === "yes"), 'held: ' + JSON.stringify(vals));
    const a = (await h.api('GET', '/api/v1/alerts/' + alertId)).data;
    // "1,234" or "12.3k": the requests value as shown, near the stored one.
    const shown = Number(vals[0][3].replace(/,/g, '').replace(/k$/, '')) * (vals[0][3].endsWith('k') ? 1000 : 1);
    assert(Math.abs(shown - a.values[0].value) <= a.values[0].value * 0.01,
           'requests value ' + vals[0][3] + ' vs ' + a.values[0].value);
    const tl = page.locator('[data-testid="alert-timeline"] li[data-event="firing"]');
    assert((await tl.count()) === 1, 'no firing entry in the timeline');
    assert((await tl.innerText()).includes('by engine'), await tl.innerText());
    // Its notification to the rule's channel (the outbox row).
    const nt = await page.$$eval('[data-testid="alert-notifications"] tbody tr', (trs) =>
      trs.map((tr) => [...tr.cells].map((c) => c.textContent.trim())));
    assert(nt.some((r) => r[0] === 'firing' && r[1] === 'e2e alerts inbox'), 'notifications: ' + JSON.stringify(nt));
    assert(sameJson(nt.map((r) => r[0]), a.notifications.map((n) => n.event)), 'vs API ' + JSON.stringify(a.notifications));
    await h.pageChecks('alert-detail');
  });

  await h.check('alerts: acknowledge from the list (bulk select), then resolve with a note', async () => {
    assert(alertId, 'no alert fired');
    await h.go('/alerts?rule=' + ruleId + '&range=all');
    const pick = () => label('Select alert ' + alertId).check();
    await pick();
    assert((await page.getByTestId('selected-count').innerText()) === '1 selected', 'selection count');
    await page.getByTestId('bulk-ack').click();
    await page.getByTestId('action-status').filter({ hasText: '1 alert acknowledged.' }).waitFor();
    let a = (await h.api('GET', '/api/v1/alerts/' + alertId)).data;
    assert(a.status === 'acknowledged' && /\(key \d+\)$/.test(a.acknowledged_by), JSON.stringify(a));
    const row = page.locator(`[data-testid="alerts"] tr[data-id="${alertId}"]`);
    await until(async () => /acknowledged/i.test(await row.innerText()), { what: 'the row acknowledged' });
    assert((await row.innerText()).includes(a.acknowledged_by), 'who acknowledged is not shown');

    await pick();
    await page.getByTestId('bulk-resolve').click();
    const dlg = page.getByRole('dialog', { name: 'Resolve this alert' });
    await dlg.waitFor();
    await dlg.getByTestId('confirm-action').click();
    await dlg.getByRole('alert').filter({ hasText: 'note is required' }).waitFor();
    await h.axeCheck('the resolve dialog');
    const note = 'e2e: looked at it, traffic is fine';
    await dlg.getByLabel('Note').fill(note);
    await dlg.getByTestId('confirm-action').click();
    await page.getByTestId('action-status').filter({ hasText: '1 alert resolved.' }).waitFor();
    a = (await h.api('GET', '/api/v1/alerts/' + alertId)).data;
    assert(a.status === 'resolved' && a.notes === note && a.resolved_by === a.acknowledged_by, JSON.stringify(a));
    await until(async () => /resolved/i.test(await row.innerText()), { what: 'the row resolved' });
  });

  await h.check('alerts: the list follows the live stream, without a refresh or its timer', async () => {
    // The rule still holds, so the engine opens a new alert after the one
    // just resolved.  A second page with the browser's clock paused (no
    // timer fires unless the test lets it) must show it once the stream's
    // alert event has come and only the page's 300 ms debounce is let run.
    assert(alertId, 'no alert fired');
    // The clock is a context's: a context of its own, with this session's
    // cookie, so the other pages' timers run on.
    const ctx = await h.browser.newContext();
    await ctx.addCookies(await h.context.cookies());
    const p2 = await ctx.newPage();
    try {
      await p2.clock.install();
      await p2.goto(h.args.url + '/alerts?rule=' + ruleId);
      await p2.getByTestId('alerts-updated').filter({ hasText: 'live' }).waitFor({ timeout: 10000 });
      // Paused, the page's list cannot change but by the stream's event
      // and the debounce the test lets run.
      await p2.clock.pauseAt(Date.now() + 1000);
      const before = await p2.$$eval('[data-testid="alerts"] tbody tr', (trs) => trs.map((tr) => Number(tr.dataset.id)));
      // Whatever is open is resolved here, so the engine must open a new one.
      const open = (await h.api('GET', '/api/v1/alerts/active?rule=' + ruleId)).data.alerts;
      for (const a of open)
        await h.api('POST', `/api/v1/alerts/${a.id}/resolve`, { note: 'e2e: room for a new one' });
      const fresh = await until(async () => {
        const r = await h.api('GET', '/api/v1/alerts/active?rule=' + ruleId);
        return r.data.alerts.find((a) => a.status === 'firing' && !before.includes(a.id) &&
                                   !open.some((o) => o.id === a.id));
      }, { timeout: 40000, every: 500, what: 'the engine to open a new alert' });
      // The relay sends a second's events after it closes; then only the
      // page's debounce is let run: 12 steps of 400 ms of its time stay
      // under the 10 s timer, whenever it last fired.
      await p2.waitForTimeout(1500);
      let seen = false;
      for (let i = 0; i < 12 && !seen; i++) {
        await p2.clock.runFor(400);
        await p2.waitForTimeout(500);
        seen = (await p2.$$eval('[data-testid="alerts"] tbody tr',
          (trs) => trs.map((tr) => Number(tr.dataset.id)))).includes(fresh.id);
      }
      assert(seen, 'alert ' + fresh.id + ' is not in the list without a refresh');
    } finally {
      await ctx.close();
    }
  });

  await h.check('alerts: CSV export of the list as filtered', async () => {
    assert(alertId, 'no alert fired');
    await page.selectOption('#al-status', 'resolved');
    await page.waitForURL((u) => u.searchParams.get('status') === 'resolved');
    await until(async () => {
      const st = await page.$$eval('[data-testid="alerts"] tbody tr', (trs) => trs.map((tr) => tr.innerText));
      return st.length && st.every((t) => /resolved/i.test(t)) && (await tableIds('alerts')).includes(alertId);
    }, { what: 'the list of resolved alerts' });
    const href = await page.getByTestId('export-csv').getAttribute('href');
    const q = new URL(href, 'http://x').searchParams;
    assert(q.get('status') === 'resolved' && q.get('rule') === String(ruleId) && q.get('format') === 'csv', href);
    const [dl] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-csv').click()]);
    const rows = parseCsv(await readFile(await dl.path(), 'utf8'));
    assert(sameJson(rows[0].slice(0, 5), ['id', 'rule_id', 'rule_name', 'severity', 'status']), 'header ' + rows[0]);
    const col = (n) => rows[0].indexOf(n);
    const body = rows.slice(1);
    const ids = await tableIds('alerts');
    assert(sameJson(body.map((r) => Number(r[col('id')])), ids), 'CSV ids ' + body.map((r) => r[0]) + ' vs list ' + ids);
    const mine = body.find((r) => Number(r[col('id')]) === alertId);
    assert(mine[col('status')] === 'resolved' && mine[col('notes')].startsWith('e2e:') &&
           mine[col('rule_name')] === name, 'CSV row ' + mine);
  });

  await h.check('rule edit: change the severity (PUT keeps the rest); field errors from the API', async () => {
    assert(ruleId, 'no rule was saved');
    await h.go('/rules/' + ruleId);
    await until(async () => (await page.inputValue('#f-name').catch(() => '')) === name, { what: 'the rule loaded' });
    await page.selectOption('#f-severity', 'medium');
    await page.getByTestId('rule-save').click();
    await page.getByTestId('form-status').filter({ hasText: 'Rule saved' }).waitFor();
    let r = (await h.api('GET', '/api/v1/alerts/rules/' + ruleId)).data;
    assert(r.severity === 'medium' && sameJson(r.condition, built) && r.window === '1m', JSON.stringify(r));

    await h.expectingErrors([400, 409], async () => {
      await page.fill('#f-name', '');
      await page.getByTestId('rule-save').click();
      const e1 = page.locator('#f-name-error');
      await e1.waitFor();
      assert(/required/.test(await e1.innerText()), await e1.innerText());
      assert((await page.evaluate(() => document.activeElement?.id)) === 'f-name', 'focus is not on the name');
      await page.fill('#f-name', name);
      await label('Threshold of condition 3').fill('');
      await page.getByTestId('rule-save').click();
      const cond3 = page.getByTestId('condition').nth(2);
      await cond3.getByTestId('field-error').waitFor();
      assert(/number/.test(await cond3.getByTestId('field-error').innerText()), 'threshold error');
      const active = await page.evaluate(() => document.activeElement?.getAttribute('aria-label'));
      assert(active === 'Threshold of condition 3', 'focus: ' + active);
      assert((await page.getByTestId('field-error').count()) === 1, 'the error shows at one field only');
    });
    r = (await h.api('GET', '/api/v1/alerts/rules/' + ruleId)).data;
    assert(r.name === name && sameJson(r.condition, built), 'a refused save changed the rule');
  });

  await h.check('rules list: the rule in words, disabled by its switch', async () => {
    assert(ruleId, 'no rule was saved');
    await h.go('/rules');
    const li = page.locator(`[data-testid="rule"][data-id="${ruleId}"]`);
    await li.waitFor();
    const summary = await li.getByTestId('rule-summary').innerText();
    assert(summary === 'requests > 0 and (error rate ≥ 0% or P95 latency > 0 ms)', summary);
    const text = await li.innerText();
    assert(/medium/i.test(text) && text.includes('1 minute') && text.includes('e2e alerts inbox'), text);
    await h.pageChecks('rules');
    const sw = li.getByRole('switch');
    assert(await sw.isChecked(), 'the rule shows disabled');
    await sw.uncheck();
    await page.getByRole('status').filter({ hasText: 'disabled.' }).waitFor();
    const r = (await h.api('GET', '/api/v1/alerts/rules/' + ruleId)).data;
    assert(r.enabled === false, 'still enabled');
  });

  await h.check('silences: create one for the rule, see it active, expire it', async () => {
    assert(ruleId, 'no rule was saved');
    await h.go('/alerts?tab=silences');
    await page.getByTestId('new-silence').click();
    const dlg = page.getByRole('dialog', { name: 'New silence' });
    await dlg.waitFor();
    await dlg.locator('#sf-rule').selectOption(String(ruleId));
    await dlg.locator('#sf-duration').fill('1');
    await dlg.getByLabel('For how long: unit').selectOption('h');
    await dlg.getByTestId('silence-create').click();
    await dlg.getByText('a comment is required').waitFor();
    await h.axeCheck('the new silence dialog');
    await dlg.locator('#sf-comment').fill('e2e maintenance');
    await dlg.getByTestId('silence-create').click();
    await dlg.waitFor({ state: 'hidden' });
    const all = (await h.api('GET', '/api/v1/silences')).data.silences;
    const s = all.find((x) => x.matchers.rule === ruleId);
    assert(s && s.state === 'active' && s.comment === 'e2e maintenance', JSON.stringify(all));
    const hours = (Date.parse(s.ends_at) - Date.parse(s.starts_at)) / 3600000;
    assert(hours === 1, 'lasts ' + hours + ' h');
    const row = page.locator(`[data-testid="silences"] tr[data-id="${s.id}"]`);
    await row.waitFor();
    const text = await row.innerText();
    assert(/active/i.test(text) && text.includes(name) && text.includes('e2e maintenance'), text);
    await h.pageChecks('alerts-silences');
    await row.getByRole('button', { name: 'Expire silence ' + s.id }).click();
    await page.getByRole('status').filter({ hasText: 'expired' }).waitFor();
    const after = (await h.api('GET', '/api/v1/silences/' + s.id)).data;
    assert(after.state === 'expired', JSON.stringify(after));
    await until(async () => !(await row.count()), { what: 'the expired silence leaves the default list' });
  });

  await h.check('cleanup: the rule deleted from the list, its open alerts resolved', async () => {
    if (!ruleId) return;
    await page.keyboard.press('Escape'); // a dialog a failed step left open
    await h.go('/rules');
    const li = page.locator(`[data-testid="rule"][data-id="${ruleId}"]`);
    await li.getByRole('button', { name: new RegExp('^Delete ' + name) }).click();
    await page.getByRole('dialog', { name: 'Delete this rule?' }).getByTestId('confirm-delete').click();
    await li.waitFor({ state: 'detached' });
    const r = await h.api('GET', '/api/v1/alerts/rules/' + ruleId);
    assert(r.status === 404, 'the rule is still there: ' + r.status);
    const b = await h.api('POST', '/api/v1/alerts/bulk', { action: 'resolve', note: 'e2e cleanup',
      filter: { rule: String(ruleId), status: 'pending,firing,acknowledged' } });
    assert(b.status === 200, 'bulk resolve: ' + JSON.stringify(b));
    if (chId) await h.api('DELETE', '/api/v1/channels/' + chId);
  });
}
