// Crosstalk: the demo's sessions listed as the API has them, a model
// filter, the CSV export of what is on screen, a session's rounds adding up
// to its totals, and the live view of a session of our own growing while
// we send its next round (then the stream closing when the page goes).
import { readFile } from 'node:fs/promises';
import { assert, until } from '../harness.mjs';

const CSV_HEAD = 'id,user,agent,models,rounds,calls,errors,input_tokens,output_tokens,cache_read_tokens,' +
  'cache_write_tokens,reasoning_tokens,total_tokens,cost_usd,started,last_activity,duration_ms';

/** RFC 4180 text into rows of fields. */
function parseCsv(text) {
  const rows = [];
  let row = [], field = '', q = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (q) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') q = false;
      else field += c;
    } else if (c === '"') q = true;
    else if (c === ',') { row.push(field); field = ''; }
    else if (c === '\n' || (c === '\r' && text[i + 1] === '\n')) {
      if (c === '\r') i++;
      row.push(field); rows.push(row); row = []; field = '';
    } else field += c;
  }
  if (field || row.length) { row.push(field); rows.push(row); }
  return rows;
}

const near = (a, b) => Math.abs(Number(a) - Number(b)) < 1e-6;

export default async function crosstalk(h) {
  const { page, args } = h;
  const table = page.locator('[data-testid="sessions"]');
  const rows = table.locator('tbody tr');
  const screenIds = () => rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.id));
  const rowOf = (id) => table.locator(`tbody tr[data-id="${id}"]`);
  const refresh = async () => {
    const done = page.waitForResponse((r) => r.url().includes('/api/v1/sessions?'));
    await page.click('[data-testid="refresh"]');
    await done;
    await page.waitForTimeout(100);
  };
  const xtSockets = [];
  page.on('websocket', (ws) => {
    if (!ws.url().includes('/ws/crosstalk/')) return;
    const s = { url: ws.url(), closed: false, frames: 0 };
    ws.on('framereceived', () => s.frames++);
    ws.on('close', () => (s.closed = true));
    // A socket closed while its handshake was still going fails instead.
    ws.on('socketerror', () => (s.closed = true));
    xtSockets.push(s);
  });

  let demo; // a demo session's id
  // A session of our own with a model the demo never uses: the model filter must drop it.
  const decoy = 'e2e-decoy-' + Date.now().toString(36);
  await h.check('crosstalk: the list shows the demo sessions as the API counts them', async () => {
    const r = await h.api('POST', '/api/v1/events', [1, 2].map((round) => ({
      id: decoy + '-' + round, provider: 'e2e', model: 'e2e-only-model', input_tokens: 10, output_tokens: 5,
      cost_usd: 0.001, status: 200, user: 'e2e-user', agent: 'e2e-agent', session: decoy, round })));
    assert(r.status === 200, 'POST events ' + r.status + ' ' + JSON.stringify(r.data));
    // The demo starts a session every minute or two.
    await until(async () => {
      const r = await h.api('GET', '/api/v1/sessions?limit=1000');
      return r.status === 200 && r.data.sessions.some((s) => s.id.startsWith('xt-'));
    }, { timeout: 180000, every: 2000, what: 'a demo crosstalk session' });
    await h.go('/crosstalk');
    await page.getByRole('heading', { name: 'Crosstalk', level: 1 }).waitFor();
    await table.locator('tbody tr[data-id^="xt-"]').first().waitFor({ timeout: 10000 });
    demo = await table.locator('tbody tr[data-id^="xt-"]').first().getAttribute('data-id');
    // A running session may get a call between the two reads: read again.
    await until(async () => {
      const tr = rowOf(demo);
      const calls = Number(await tr.locator('[data-col="calls"]').getAttribute('data-value'));
      const cost = Number(await tr.locator('[data-col="cost"]').getAttribute('data-value'));
      const r = await h.api('GET', '/api/v1/sessions/' + encodeURIComponent(demo));
      assert(r.status === 200, 'GET session ' + r.status);
      if (r.data.session.calls === calls && near(r.data.session.cost_usd, cost)) return true;
      assert(r.data.session.calls > calls, `row shows ${calls} calls, the API ${r.data.session.calls}`);
      await refresh();
      return false;
    }, { timeout: 30000, what: 'the row to match GET /api/v1/sessions/' + demo });
    // Every row is the API's, in its order (newest activity first).
    await until(async () => {
      const api = (await h.api('GET', '/api/v1/sessions?range=24h&limit=50')).data.sessions.map((s) => s.id);
      const shown = await screenIds();
      if (JSON.stringify(api) === JSON.stringify(shown)) return true;
      await refresh();
      return false;
    }, { timeout: 30000, what: 'the rows to be the API list' });
    const st = (await h.api('GET', '/api/v1/sessions/stats?range=24h')).data;
    await until(async () => (await page.locator('[data-testid="stat-sessions"]').innerText()) ===
      String(st.sessions) || (await refresh(), false), { timeout: 20000, what: 'stats: ' + st.sessions + ' sessions' });
  });

  await h.check('crosstalk: j and k move between the rows, Enter opens one', async () => {
    await page.locator('h1').click();
    await page.keyboard.press('j');
    const first = await page.evaluate(() => document.activeElement?.closest('tr')?.dataset.id);
    assert(first === (await screenIds())[0], 'j focused ' + first);
    if ((await rows.count()) > 1) {
      await page.keyboard.press('j');
      const second = await page.evaluate(() => document.activeElement?.closest('tr')?.dataset.id);
      assert(second === (await screenIds())[1], 'j again focused ' + second);
      await page.keyboard.press('k');
    }
    await page.keyboard.press('Enter');
    await page.waitForURL((u) => u.pathname === '/crosstalk/' + encodeURIComponent(first));
    await page.goBack();
    await table.waitFor();
  });

  await h.check('crosstalk: accessible, light and dark; screenshots', async () => {
    await h.pageChecks('crosstalk');
  });

  let model;
  await h.check('crosstalk: a model filter keeps the sessions that used it, in the URL too', async () => {
    const before = await rows.evaluateAll((trs) => trs.map((tr) => ({
      id: tr.dataset.id, models: tr.querySelector('[data-models]').dataset.models.split(';') })));
    // The demo session's model that the fewest rows have: the filter has something to drop.
    const mine = before.find((r) => r.id === demo).models;
    model = mine.map((m) => [m, before.filter((r) => r.models.includes(m)).length]).sort((a, b) => a[1] - b[1])[0][0];
    const dropped = before.filter((r) => !r.models.includes(model)).map((r) => r.id);
    assert(dropped.includes(decoy), 'the decoy session is not listed: ' + before.map((r) => r.id));
    await page.selectOption('#xt-model', model);
    await page.waitForURL((u) => u.searchParams.get('model') === model);
    await until(async () => {
      const now = await rows.evaluateAll((trs) => trs.map((tr) => ({
        id: tr.dataset.id, models: tr.querySelector('[data-models]').dataset.models.split(';') })));
      return now.length > 0 && now.every((r) => r.models.includes(model)) && now.some((r) => r.id === demo);
    }, { what: 'every row to use ' + model });
    const shown = await screenIds();
    assert(!dropped.some((id) => shown.includes(id)), 'a session without ' + model + ' is still shown');
    const api = (await h.api('GET', '/api/v1/sessions?model=' + encodeURIComponent(model))).data.sessions;
    assert(api.every((s) => shown.includes(s.id)) || api.length > shown.length,
           'the API has other sessions: ' + api.map((s) => s.id));
    // A reload keeps it (the filter lives in the URL).
    await page.reload();
    await table.waitFor();
    assert((await page.inputValue('#xt-model')) === model, 'the model select lost its value');
    await until(async () => {
      const ms = await rows.evaluateAll((trs) => trs.map((tr) => tr.querySelector('[data-models]').dataset.models));
      return ms.length > 0 && ms.every((m) => m.split(';').includes(model));
    }, { what: 'the reloaded rows to keep the filter' });
  });

  await h.check('crosstalk: the CSV export holds the rows on screen, filtered the same', async () => {
    await until(async () => {
      await refresh();
      const shown = await screenIds();
      const dl = page.waitForEvent('download');
      await page.click('[data-testid="csv"]');
      const d = await dl;
      assert(/^tokentap-sessions-.*\.csv$/.test(d.suggestedFilename()), d.suggestedFilename());
      const csv = parseCsv(await readFile(await d.path(), 'utf8'));
      assert(csv[0].join(',') === CSV_HEAD, 'header: ' + csv[0].join(','));
      const body = csv.slice(1).filter((r) => r.length > 1);
      const mIdx = csv[0].indexOf('models');
      assert(body.every((r) => r[mIdx].split(';').includes(model)), 'a CSV row without ' + model);
      // A session that had a call between the two reads moves: try again.
      return JSON.stringify(body.map((r) => r[0])) === JSON.stringify(shown);
    }, { timeout: 30000, every: 500, what: 'the CSV ids to be the ids on screen' });
  });

  await h.check('crosstalk session: the rounds add up to the session totals', async () => {
    await rowOf(demo).locator('a').click();
    await page.waitForURL((u) => u.pathname === '/crosstalk/' + demo);
    const rt = page.locator('[data-testid="rounds"] tbody tr');
    await rt.first().waitFor();
    await until(async () => {
      const sum = (col) => page.locator(`[data-testid="rounds"] tbody [data-col="${col}"]`)
        .evaluateAll((tds) => tds.reduce((a, td) => a + Number(td.dataset.value), 0));
      const total = async (id) => Number(await page.locator(`[data-testid="${id}"]`).getAttribute('data-value'));
      const [calls, tokens, cost] = [await sum('calls'), await sum('tokens'), await sum('cost')];
      const [tCalls, tTokens, tCost] = [await total('total-calls'), await total('total-tokens'), await total('total-cost')];
      assert(calls === tCalls && tokens === tTokens && near(cost, tCost),
             `rounds ${calls}/${tokens}/${cost} vs totals ${tCalls}/${tTokens}/${tCost}`);
      const mCalls = await page.locator('[data-testid="models"] tbody [data-col="calls"]')
        .evaluateAll((tds) => tds.reduce((a, td) => a + Number(td.dataset.value), 0));
      assert(mCalls === tCalls, `models ${mCalls} calls vs ${tCalls}`);
      const bars = await page.locator('[data-testid="round-bars"] li').count();
      assert(bars === (await rt.count()), `${bars} bars for ${await rt.count()} rounds`);
      // And the totals are the API's (a running session may move on: read again).
      const s = (await h.api('GET', '/api/v1/sessions/' + demo)).data.session;
      if (s.calls === tCalls && near(s.cost_usd, tCost)) return true;
      await page.reload();
      await rt.first().waitFor();
      return false;
    }, { timeout: 30000, what: 'the page totals to be the API totals' });
    // The live view of a demo session: the stream opens and its snapshot comes.
    await page.locator('[data-testid="live-status"][data-online="true"]').waitFor({ timeout: 15000 });
    await page.locator('[data-testid="live-calls"]').waitFor({ timeout: 10000 });
  });

  await h.check('crosstalk session: accessible, light and dark; screenshots', async () => {
    await h.pageChecks('crosstalk-session');
  });

  await h.check('crosstalk live: a running session’s numbers grow as its calls arrive', async () => {
    // A session of our own: round 1 now, round 2 once the page is watching.
    const sid = 'e2e-xt-' + Date.now().toString(36);
    const ev = (round, i, model, cost) => ({
      id: `${sid}-r${round}-${i}`, provider: 'openai', model, input_tokens: 1000 * round, output_tokens: 250,
      cost_usd: cost, latency_ms: 400 + i, status: 200, user: 'e2e-user', agent: 'e2e-agent',
      session: sid, round,
    });
    let r = await h.api('POST', '/api/v1/events', [ev(1, 0, 'gpt-4o', 0.01), ev(1, 1, 'gpt-4o-mini', 0.002)]);
    assert(r.status === 200, 'POST events ' + r.status + ' ' + JSON.stringify(r.data));
    await until(async () => (await h.api('GET', '/api/v1/sessions/' + sid)).status === 200, { what: 'the session' });
    await h.go('/crosstalk/' + sid);
    await page.locator('[data-testid="live-status"][data-online="true"]').waitFor({ timeout: 15000 });
    const liveCalls = () => page.locator('[data-testid="live-calls"]').innerText().catch(() => '');
    await until(async () => (await liveCalls()) === '2', { what: 'the snapshot’s 2 calls, got ' + (await liveCalls()) });
    assert((await page.locator('[data-testid="total-calls"]').getAttribute('data-value')) === '2', 'totals before');
    r = await h.api('POST', '/api/v1/events', [ev(2, 0, 'gpt-4o', 0.02), ev(2, 1, 'gpt-4o-mini', 0.003),
                                               ev(2, 2, 'gpt-4o', 0.025)]);
    assert(r.status === 200, 'POST events ' + r.status);
    // No reload: the stream brings them.
    await until(async () => (await liveCalls()) === '5', { timeout: 10000, what: 'the live count to reach 5' });
    const cost = Number(await page.locator('[data-testid="live-cost"]').getAttribute('data-value'));
    assert(near(cost, 0.06), 'live cost ' + cost);
    await until(async () => (await page.locator('[data-testid="total-calls"]').getAttribute('data-value')) === '5',
                { timeout: 10000, what: 'the totals to follow the stream' });
    assert((await page.locator('[data-testid="rounds"] tbody tr').count()) === 2, 'two rounds in the table');
    assert((await page.locator('[data-testid="session-state"]').innerText()).toLowerCase() === 'running',
           'not shown running');
  });

  await h.check('crosstalk live: leaving the page closes the stream', async () => {
    assert(xtSockets.length >= 2, 'crosstalk streams opened: ' + xtSockets.length);
    // (The j/k check's stream closed at once; the two session pages' got theirs.)
    assert(xtSockets.filter((s) => s.frames > 0).length >= 2, 'streams without messages');
    await h.go('/crosstalk');
    await table.waitFor();
    await until(() => xtSockets.every((s) => s.closed), {
      timeout: 10000,
      what: () => 'every crosstalk stream to close; open: ' + JSON.stringify(xtSockets.filter((s) => !s.closed)),
    });
  });

  await h.check('crosstalk: empty, error and not-found states', async () => {
    await h.expectingErrors([503, 404], async () => {
      await h.go('/crosstalk?user=zz-nobody');
      await page.getByText('No session matches these filters').waitFor();
      await page.getByRole('button', { name: 'Clear filters' }).click();
      await rows.first().waitFor();
      assert(!new URL(page.url()).searchParams.has('user'), 'the filter stayed in the URL');
      // The API failing: an error with a way to try again.
      await page.route('**/api/v1/sessions?*', (r) => r.fulfill({ status: 503, contentType: 'application/json',
        body: JSON.stringify({ error: { code: 'unavailable', message: 'e2e: store unavailable' } }) }));
      await page.click('[data-testid="refresh"]');
      await page.getByText('e2e: store unavailable').waitFor();
      await page.unroute('**/api/v1/sessions?*');
      await page.getByRole('button', { name: 'Try again' }).click();
      await rows.first().waitFor();
      await h.go('/crosstalk/no-such-session-e2e');
      await page.getByText('No session "no-such-session-e2e" in this workspace').waitFor();
    });
  });
}
