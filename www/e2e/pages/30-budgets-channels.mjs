// Budgets, channels and the inbox: limits set through the form and read
// back from the API and after a reload, the status bars against the API's
// numbers, the history chart and table, the API's 400 at the field; a
// webhook channel pointing at a receiver run here (loopback is allowed by
// the test stack's notify_allow_networks), its test delivered and its
// secrets kept through an edit; an in-app channel's test in the inbox and
// the bell's count; the delivery log; a delete confirmed in a dialog.
import http from 'node:http';
import { assert, until } from '../harness.mjs';

const usd = (s) => Number(String(s).replace(/[$,\s]/g, ''));

// The 400 and 409 this module provokes on purpose: exactly one each time.
async function expectingRefusal(h, status, fn) {
  const n = await h.expectingErrors([status], fn);
  assert(n === 1, 'expected one refused request, saw ' + n);
}

export default async function budgetsChannels(h) {
  const { page } = h;
  const T = (id) => page.locator(`[data-testid="${id}"]`);
  const tag = Date.now().toString(36);
  const DAY = 4321.5, MONTH = 98765.25; // high: no budget alert floods later pages

  // ---- Budgets ----

  await h.check('budgets: set daily and monthly limits through the form', async () => {
    await h.go('/budgets');
    await T('budget-form').waitFor();
    // Start from an empty form, whatever earlier pages left.
    while (await T('budget-row').count()) await T('budget-row').first().getByRole('button', { name: /Remove/ }).click();
    const add = page.getByRole('button', { name: 'Add a budget' });
    await add.click();
    await add.click();
    const rows = T('budget-row');
    await rows.nth(0).getByLabel('Period').selectOption('day');
    await rows.nth(0).getByLabel('Limit (USD)').fill(String(DAY));
    await rows.nth(0).getByLabel('Thresholds (%)').fill('50, 90, 100');
    await rows.nth(1).getByLabel('Period').selectOption('month');
    await rows.nth(1).getByLabel('Limit (USD)').fill(String(MONTH));
    await T('budget-save').click();
    await T('budget-saved').filter({ hasText: 'Saved' }).waitFor();
    const { data } = await h.api('GET', '/api/v1/budgets');
    const day = data.budgets.find((b) => b.period === 'day' && !b.scope.provider && !b.scope.model);
    const month = data.budgets.find((b) => b.period === 'month' && !b.scope.provider && !b.scope.model);
    assert(data.budgets.length === 2, 'stored: ' + JSON.stringify(data.budgets));
    assert(day && day.limit_usd === DAY && day.thresholds.join() === '50,90,100', 'day: ' + JSON.stringify(day));
    assert(month && month.limit_usd === MONTH && month.thresholds.join() === '80,95,100', 'month: ' + JSON.stringify(month));
  });

  await h.check('budgets: a reload shows the stored values in the form', async () => {
    await page.reload();
    await T('budget-form').waitFor();
    const rows = T('budget-row');
    assert((await rows.count()) === 2, 'rows: ' + (await rows.count()));
    const got = [];
    for (let i = 0; i < 2; i++)
      got.push([await rows.nth(i).getByLabel('Period').inputValue(),
                await rows.nth(i).getByLabel('Limit (USD)').inputValue(),
                await rows.nth(i).getByLabel('Thresholds (%)').inputValue()]);
    const s = JSON.stringify(got.sort());
    assert(s === JSON.stringify([['day', String(DAY), '50, 90, 100'], ['month', String(MONTH), '']]), s);
  });

  await h.check('budgets: the status bars show the spend the API reports', async () => {
    await T('budget-bar').nth(1).waitFor();
    const a = (await h.api('GET', '/api/v1/budgets/status')).data;
    const resp = page.waitForResponse((r) => r.url().includes('/api/v1/budgets/status'));
    await T('budget-refresh').click();
    await resp;
    await page.waitForTimeout(300);
    const b = (await h.api('GET', '/api/v1/budgets/status')).data;
    for (const period of ['day', 'month']) {
      const bar = page.locator(`[data-testid="budget-bar"][data-period="${period}"]`);
      const shown = usd(await bar.locator('[data-testid="budget-spend"]').innerText());
      const lo = a.budgets.find((x) => x.period === period).spend_usd;
      const hi = b.budgets.find((x) => x.period === period).spend_usd;
      assert(shown >= lo - 0.01 && shown <= hi + 0.01, `${period}: shown ${shown}, API ${lo}..${hi}`);
      assert(hi > 0, period + ': no spend from the demo traffic');
      const text = await bar.innerText();
      assert(text.includes(period === 'day' ? '$4,321.50' : '$98,765.25'), period + ' limit not shown: ' + text);
      const marks = await bar.locator('.mark').count();
      assert(marks === 3, period + ': threshold marks ' + marks);
      const now = Number(await bar.getByRole('progressbar').getAttribute('aria-valuenow'));
      assert(Number.isFinite(now), 'progressbar value');
    }
  });

  await h.check('budgets: the history has a chart per budget with the limit, and a table', async () => {
    const hist = T('budget-history');
    await hist.nth(1).waitFor();
    for (const period of ['day', 'month']) {
      const c = page.locator(`[data-testid="budget-history"][data-period="${period}"] canvas[role="img"]`);
      const label = await c.getAttribute('aria-label');
      assert(label && !label.endsWith('no data') && label.includes('1 series'), period + ' chart: ' + label);
    }
    await T('budget-view-table').click();
    await page.waitForURL(/view=table/);
    const today = new Date().toISOString().slice(0, 10);
    const row = page.locator('[data-testid="budget-history"][data-period="day"] tbody tr').first();
    const text = await row.innerText();
    assert(text.startsWith(today) && usd(text.split('\t')[1]) > 0, 'newest row: ' + text);
    await page.getByRole('button', { name: 'Chart' }).click();
    await page.locator('[data-testid="budget-history"] canvas').first().waitFor();
  });

  await h.check('budgets: a negative limit shows the API error at the field, nothing stored', async () => {
    const before = JSON.stringify((await h.api('GET', '/api/v1/budgets')).data.budgets);
    const rows = T('budget-row');
    let i = 0;
    for (; i < (await rows.count()); i++)
      if ((await rows.nth(i).getByLabel('Period').inputValue()) === 'day') break;
    const lim = rows.nth(i).getByLabel('Limit (USD)');
    await lim.fill('-5');
    await expectingRefusal(h, 400, async () => {
      const put = page.waitForResponse((r) => r.url().endsWith('/api/v1/budgets') && r.request().method() === 'PUT');
      await T('budget-save').click();
      assert((await put).status() === 400, 'the PUT was not refused');
    });
    const err = rows.nth(i).locator('[data-testid="field-error"]');
    await err.waitFor();
    const msg = await err.innerText();
    assert(/above 0/.test(msg) && msg.includes('-5'), 'message: ' + msg);
    assert((await lim.getAttribute('aria-invalid')) === 'true', 'the field is not marked invalid');
    assert(await lim.evaluate((el) => el === document.activeElement), 'the bad field has no focus');
    const after = JSON.stringify((await h.api('GET', '/api/v1/budgets')).data.budgets);
    assert(after === before, 'stored changed: ' + after);
    await page.reload();
    await T('budget-bar').nth(1).waitFor();
    await T('budget-history').nth(1).waitFor();
  });

  const darkShots = async (name) => {
    await page.evaluate(() => (document.documentElement.dataset.theme = 'dark'));
    await h.shots(name + '-dark');
    await page.evaluate(() => delete document.documentElement.dataset.theme);
  };
  await h.check('budgets page: accessible, light and dark; screenshots', async () => {
    await h.pageChecks('budgets');
    await darkShots('budgets');
  });

  // ---- Channels and the inbox ----

  const got = []; // what the receiver was sent
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      got.push({ url: req.url, headers: req.headers, body });
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{"ok":true}');
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const port = server.address().port;
  const hook = 'e2e hook ' + tag, hook2 = 'e2e hook renamed ' + tag, inapp = 'e2e inbox ' + tag;
  const card = (name) => page.locator(`[data-testid="channel"][data-name="${name}"]`);
  const dialog = page.locator('dialog[open]');
  const chanId = async (name) =>
    (await h.api('GET', '/api/v1/channels')).data.channels.find((c) => c.name === name)?.id;

  try {
    await h.check('channels: create a webhook through its form; secrets come back redacted', async () => {
      await h.go('/channels');
      await T('channel-new').click();
      await dialog.getByRole('radio', { name: 'Webhook' }).check();
      // Only the webhook's fields.
      assert(!(await dialog.getByLabel('SMTP server').count()), 'an email field in the webhook form');
      await dialog.getByLabel('Name', { exact: true }).fill(hook);
      await dialog.getByLabel('URL', { exact: true }).fill(`http://127.0.0.1:${port}/hook/tok-${tag}?k=1`);
      assert((await dialog.getByLabel(/Signing secret/).getAttribute('type')) === 'password', 'secret not a password input');
      await dialog.getByLabel(/Signing secret/).fill('shh-' + tag);
      await dialog.getByRole('button', { name: 'Add a header' }).click();
      await dialog.getByLabel('Header 1 name').fill('X-E2E');
      await dialog.getByLabel('Header 1 value').fill('v-' + tag);
      await h.axeCheck('channel form');
      await h.shots('channel-form');
      await T('channel-save').click();
      await card(hook).waitFor();
      const id = await chanId(hook);
      const ch = (await h.api('GET', '/api/v1/channels/' + id)).data;
      assert(ch.type === 'webhook' && ch.enabled, JSON.stringify(ch));
      assert(ch.config.secret === '********' && ch.config.headers['X-E2E'] === '********', JSON.stringify(ch.config));
      assert(!JSON.stringify(ch.config).includes('tok-' + tag), 'the URL path is not redacted');
      const text = await card(hook).innerText();
      assert(text.includes(`127.0.0.1:${port}`) && !text.includes('tok-' + tag), 'card: ' + text);
    });

    await h.check('channels: a name taken answers at the name field', async () => {
      await T('channel-new').click();
      await dialog.getByRole('radio', { name: 'In-app' }).check();
      assert(!(await dialog.getByLabel('URL', { exact: true }).count()), 'a webhook field in the in-app form');
      await dialog.getByLabel('Name', { exact: true }).fill(hook);
      await expectingRefusal(h, 409, async () => {
        await T('channel-save').click();
        await page.waitForFunction(() => document.querySelector('dialog[open] [data-field="name"]')
          ?.getAttribute('aria-invalid') === 'true');
      });
      const msg = await dialog.locator('.err').first().innerText();
      assert(/has that name/.test(msg), 'message: ' + msg);
      await dialog.getByRole('button', { name: 'Cancel' }).click();
    });

    await h.check('channels: a test from the UI is delivered to the receiver', async () => {
      await card(hook).getByTestId('channel-test').click();
      await card(hook).getByTestId('test-result').filter({ hasText: /Delivered/ }).waitFor({ timeout: 30000 });
      const r = await until(() => got.find((g) => g.url === `/hook/tok-${tag}?k=1`), { what: 'the webhook request' });
      assert(r.headers['x-e2e'] === 'v-' + tag, 'header: ' + JSON.stringify(r.headers));
      assert(r.headers['x-tokentap-delivery'] && r.headers['x-tokentap-signature'], 'delivery/signature headers missing');
      assert(JSON.parse(r.body).event === 'test', 'body: ' + r.body.slice(0, 200));
    });

    await h.check('channels: editing the name keeps the stored secrets', async () => {
      await card(hook).getByTestId('channel-edit').click();
      const secret = dialog.getByLabel(/Signing secret/);
      assert((await secret.inputValue()) === '', 'a secret shown in the form');
      assert(/stored/.test(await secret.getAttribute('placeholder')), 'no hint that the secret is stored');
      await dialog.getByLabel('Name', { exact: true }).fill(hook2);
      await T('channel-save').click();
      await card(hook2).waitFor();
      const id = await chanId(hook2);
      assert(id, 'renamed channel not in the API');
      const n = got.length;
      const t = await h.api('POST', `/api/v1/channels/${id}/test`);
      assert(t.data.delivered, 'test after the edit: ' + JSON.stringify(t.data));
      const r = await until(() => got.length > n && got[got.length - 1], { what: 'the second request' });
      assert(r.headers['x-e2e'] === 'v-' + tag && r.url === `/hook/tok-${tag}?k=1`, 'secrets lost: ' + r.url);
    });

    await h.check('channels: disable and enable again', async () => {
      const sw = card(hook2).getByRole('switch');
      await sw.uncheck();
      await until(async () => (await h.api('GET', '/api/v1/channels/' + (await chanId(hook2)))).data.enabled === false,
                  { what: 'disabled' });
      await sw.check();
      await until(async () => (await h.api('GET', '/api/v1/channels/' + (await chanId(hook2)))).data.enabled === true,
                  { what: 'enabled' });
    });

    let bell0 = 0;
    await h.check('inbox: an in-app test reaches the inbox and the bell', async () => {
      await T('channel-new').click();
      await dialog.getByRole('radio', { name: 'In-app' }).check();
      await dialog.getByLabel('Name', { exact: true }).fill(inapp);
      await T('channel-save').click();
      await card(inapp).waitFor();
      const unread = (await h.api('GET', '/api/v1/notifications/inbox?unread=true&limit=100')).data.inbox.length;
      await until(async () => Number(await T('inbox-bell').getAttribute('data-count')) === unread,
                  { what: 'the bell to show ' + unread });
      bell0 = unread;
      await card(inapp).getByTestId('channel-test').click();
      await card(inapp).getByTestId('test-result').filter({ hasText: /Delivered/ }).waitFor({ timeout: 30000 });
      await until(async () => Number(await T('inbox-bell').getAttribute('data-count')) === bell0 + 1,
                  { what: 'the bell to count the test' });
      const label = await T('inbox-bell').getAttribute('aria-label');
      assert(label === `Inbox, ${bell0 + 1} unread`, 'bell label: ' + label);
    });

    await h.check('channels: the delivery log shows the tests, filtered by channel', async () => {
      const log = T('delivery-log');
      await log.waitFor();
      await page.getByLabel('Channel', { exact: true }).selectOption({ label: hook2 });
      await page.waitForURL(/log_channel=/);
      await until(async () => (await log.locator('[data-testid="delivery"]').count()) === 2,
                  { what: 'two deliveries of the webhook' });
      const rows = await log.locator('[data-testid="delivery"]').allInnerTexts();
      assert(rows.every((r) => r.includes(hook2) && r.includes('Test') && /Delivered/.test(r)), rows.join(' | '));
      assert((await log.locator('[data-status="sent"]').count()) === 2, 'not sent');
      await page.getByLabel('Status', { exact: true }).selectOption('failed');
      await page.getByText('No notification matches.').waitFor();
      await page.getByLabel('Status', { exact: true }).selectOption('');
      await page.getByLabel('Channel', { exact: true }).selectOption('');
      await until(async () => (await log.locator('[data-testid="delivery"]').allInnerTexts()).some((r) => r.includes(inapp)),
                  { what: 'the in-app test in the log' });
    });

    await h.check('channels page: accessible, light and dark; screenshots', async () => {
      await h.pageChecks('channels');
      await darkShots('channels');
    });

    await h.check('inbox: the test is there, unread; marking it read drops the bell', async () => {
      await T('inbox-bell').click();
      await page.waitForURL(/\/inbox$/);
      const item = T('inbox-item').first();
      await item.waitFor();
      assert((await item.getAttribute('data-kind')) === 'test' && (await item.getAttribute('data-read')) === 'false',
             'newest item: ' + (await item.innerText()));
      assert((await item.innerText()).includes('Test notification'), await item.innerText());
      await h.pageChecks('inbox');
      const id = Number(await item.getAttribute('data-id'));
      await item.getByTestId('inbox-mark-read').click();
      await page.locator(`[data-testid="inbox-item"][data-id="${id}"][data-read="true"]`).waitFor();
      await until(async () => Number(await T('inbox-bell').getAttribute('data-count')) === bell0,
                  { what: 'the bell to drop to ' + bell0 });
      const row = (await h.api('GET', '/api/v1/notifications/inbox?limit=20')).data.inbox.find((x) => x.id === id);
      assert(row && row.read, 'not read in the API: ' + JSON.stringify(row));
      await T('inbox-unread-only').check();
      await page.waitForURL(/unread=1/);
      await page.waitForTimeout(300);
      assert(!(await page.locator(`[data-testid="inbox-item"][data-id="${id}"]`).count()), 'a read item under unread only');
      await T('inbox-unread-only').uncheck();
    });

    await h.check('routes: a budget alert goes by the default routes to the inbox, linked to its alert', async () => {
      await h.go('/channels');
      const form = T('channel-routes');
      await form.getByRole('checkbox', { name: 'Critical alerts to ' + inapp }).waitFor();
      for (const sev of ['Critical', 'High', 'Medium', 'Low'])
        await form.getByRole('checkbox', { name: `${sev} alerts to ${inapp}` }).check();
      await form.getByRole('button', { name: 'Save routes' }).click();
      await form.getByText('Routes saved.').waitFor();
      const id = await chanId(inapp);
      const routes = (await h.api('GET', '/api/v1/channels/routes')).data;
      assert(['critical', 'high', 'medium', 'low'].every((k) => routes[k].includes(id)) && !routes.fallback.length,
             'routes: ' + JSON.stringify(routes));
      // A daily limit the demo traffic has long passed: its budget alert.
      const put = await h.api('PUT', '/api/v1/budgets', { budgets: [
        { period: 'day', limit_usd: 0.01 }, { period: 'month', limit_usd: MONTH }] });
      assert(put.status === 200, 'PUT budgets: ' + JSON.stringify(put.data));
      const row = await until(async () => (await h.api('GET', '/api/v1/notifications/inbox?limit=20')).data.inbox
        .find((x) => x.alert_id), { timeout: 30000, what: 'a budget alert in the inbox' });
      await h.api('PUT', '/api/v1/budgets', { budgets: [
        { period: 'day', limit_usd: DAY, thresholds: [50, 90, 100] }, { period: 'month', limit_usd: MONTH }] });
      await h.go('/inbox');
      const item = page.locator(`[data-testid="inbox-item"][data-id="${row.id}"]`);
      await item.waitFor({ timeout: 20000 });
      assert((await item.getAttribute('data-read')) === 'false', 'the alert is not unread');
      const link = item.getByRole('link', { name: 'Alert #' + row.alert_id });
      assert((await link.getAttribute('href')) === '/alerts/' + row.alert_id, 'link: ' + (await link.getAttribute('href')));
      // Mark all read: what was listed is read; the bell counts only what
      // came after (the alert may still be escalating through thresholds).
      const shown = Math.max(...(await T('inbox-item').evaluateAll((els) => els.map((e) => Number(e.dataset.id)))));
      await T('inbox-mark-all').click();
      await item.and(page.locator('[data-read="true"]')).waitFor();
      const inbox = (await h.api('GET', '/api/v1/notifications/inbox?limit=100')).data.inbox;
      const left = inbox.filter((x) => x.id <= shown && !x.read);
      assert(!left.length, 'still unread: ' + JSON.stringify(left));
      await until(async () => Number(await T('inbox-bell').getAttribute('data-count')) ===
                    (await h.api('GET', '/api/v1/notifications/inbox?unread=true')).data.inbox.length,
                  { timeout: 20000, what: 'the bell to count only the newer rows' });
      await link.click();
      await page.waitForURL(new RegExp('/alerts/' + row.alert_id + '$'));
    });

    await h.check('a read-only user sees the budgets and channels but cannot change them', async () => {
      const k = (await h.api('POST', '/api/v1/keys', { role: 'read', name: 'e2e read ' + tag })).data;
      const ctx = await h.browser.newContext({ viewport: { width: 1280, height: 800 } });
      try {
        const p = await ctx.newPage();
        await p.goto(h.args.url + '/login?next=/budgets');
        await p.fill('#key', k.key);
        await p.click('button[type=submit]');
        const limits = p.locator('[data-testid="budget-limits"]');
        await limits.waitFor();
        const text = await limits.innerText();
        assert(text.includes('$4,321.50') && text.includes('$98,765.25') && text.includes('50%, 90%, 100%'), text);
        assert(!(await p.locator('[data-testid="budget-form"]').count()), 'a read key gets the form');
        await p.locator('[data-testid="budget-bar"]').nth(1).waitFor();
        await p.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Channels' }).click();
        await p.locator(`[data-testid="channel"][data-name="${inapp}"]`).waitFor();
        assert(!(await p.locator('[data-testid="channel-new"], [data-testid="channel-test"]').count()),
               'admin buttons shown to a read key');
        assert(await p.locator(`[data-testid="channel"][data-name="${inapp}"]`).getByRole('switch').isDisabled(),
               'the switch works for a read key');
        await p.locator('[data-testid="delivery-log"]').waitFor();
      } finally {
        await ctx.close();
        await h.api('DELETE', '/api/v1/keys/' + k.id);
      }
    });

    await h.check('channels: delete after confirming in a dialog', async () => {
      await h.go('/channels');
      await card(inapp).waitFor();
      const id = await chanId(inapp);
      await card(inapp).getByTestId('channel-delete').click();
      await dialog.getByText(inapp).waitFor();
      await dialog.getByRole('button', { name: 'Cancel' }).click();
      assert((await h.api('GET', '/api/v1/channels/' + id)).status === 200, 'deleted without confirming');
      await card(inapp).getByTestId('channel-delete').click();
      await T('channel-delete-confirm').click();
      await card(inapp).waitFor({ state: 'detached' });
      assert((await h.api('GET', '/api/v1/channels/' + id)).status === 404, 'still in the API');
    });
  } finally {
    server.close();
    // Later pages need no test channels, routes or budget alerts; the
    // budgets stay, high.
    await h.api('PUT', '/api/v1/budgets', { budgets: [
      { period: 'day', limit_usd: DAY, thresholds: [50, 90, 100] }, { period: 'month', limit_usd: MONTH }] });
    await h.api('PUT', '/api/v1/channels/routes', { critical: [], high: [], medium: [], low: [], fallback: [] });
    for (const name of [hook, hook2, inapp]) {
      const id = await chanId(name).catch(() => null);
      if (id) await h.api('DELETE', '/api/v1/channels/' + id);
    }
    await page.waitForTimeout(1500); // a crossing still on its way opens no alert after this
    const open = (await h.api('GET', '/api/v1/alerts/active')).data?.alerts ?? [];
    for (const a of open.filter((x) => x.budget_id)) await h.api('DELETE', '/api/v1/alerts/' + a.id);
  }

  await h.check('cleanup: no test channel, route or budget alert left; the budgets high', async () => {
    const chans = (await h.api('GET', '/api/v1/channels')).data.channels;
    assert(!chans.some((c) => c.name.includes(tag)), 'channels left: ' + chans.map((c) => c.name).join());
    const open = (await h.api('GET', '/api/v1/alerts/active')).data.alerts;
    assert(!open.some((a) => a.budget_id), 'budget alerts left: ' + JSON.stringify(open.filter((a) => a.budget_id)));
    const b = (await h.api('GET', '/api/v1/budgets')).data.budgets;
    assert(b.every((x) => x.limit_usd >= DAY), 'budgets: ' + JSON.stringify(b));
  });
}
