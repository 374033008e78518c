// Analytics: the overview numbers against the API's for the same range
// and filters, charts drawn, the top users table against the API, range
// and filters kept in the URL across a reload, a custom range, CSV and JSON
// exports equal to what the page shows, a failing endpoint's error and
// retry, stale requests aborted, the cost and performance views, keyboard
// tabs, accessibility in light and dark.
import { readFileSync } from 'node:fs';
import { assert, until } from '../harness.mjs';

/** RFC 4180: rows of fields (a blank line is a row of one empty field). */
function parseCsv(text) {
  const rows = [];
  let row = [], f = '', i = 0, quoted = false;
  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { f += '"'; i += 2; continue; }
      if (c === '"') { quoted = false; i++; continue; }
      f += c; i++; continue;
    }
    if (c === '"' && f === '') { quoted = true; i++; continue; }
    if (c === ',') { row.push(f); f = ''; i++; continue; }
    if (c === '\r' && text[i + 1] === '\n') { row.push(f); rows.push(row); row = []; f = ''; i += 2; continue; }
    assert(c !== '\n' && c !== '\r', 'a bare line break at ' + i);
    f += c; i++;
  }
  assert(f === '' && row.length === 0, 'the CSV does not end with CRLF');
  return rows;
}

/** The export's sections: {meta: {k: v}, sections: {title: {header, rows}}}. */
function csvSections(text) {
  const rows = parseCsv(text);
  const blocks = [[]];
  for (const r of rows) {
    if (r.length === 1 && r[0] === '') blocks.push([]);
    else blocks[blocks.length - 1].push(r);
  }
  const meta = Object.fromEntries(blocks[0].map((r) => [r[0], r[1]]));
  const sections = {};
  for (const b of blocks.slice(1)) sections[b[0][0]] = { header: b[1], rows: b.slice(2) };
  return { meta, sections };
}

const num = (s) => Number(String(s).replace(/[,$%]/g, ''));

export default async function analytics(h) {
  const { page, args } = h;
  const warnings = [];
  const onConsole = (m) => { if (m.type() === 'warning') warnings.push(m.text()); };
  page.on('console', onConsole);
  const root = '[data-testid="analytics"]';
  const q = (path) => h.api('GET', path).then((r) => {
    assert(r.status === 200, path + ': ' + r.status + ' ' + JSON.stringify(r.data));
    return r.data;
  });
  const params = () => Object.fromEntries(new URL(page.url()).searchParams);
  // Wait until every request of the page has answered.
  const settle = async () => {
    await page.waitForTimeout(150);
    await page.locator(`${root}[data-busy="false"]`).waitFor({ timeout: 20000 });
  };
  const statText = (id) => page.locator(`[data-testid="stat-${id}"] .value`).innerText();
  const statValue = async (id) => {
    const v = page.locator(`[data-testid="stat-${id}"] .value`);
    return Number(await v.getAttribute('data-value'));
  };
  const chartLabel = (id) => page.locator(`[data-testid="${id}-chart"] canvas[role="img"]`).getAttribute('aria-label');
  const tableRows = async (id) => {
    const rows = page.locator(`[data-testid="${id}"] tbody tr`);
    const out = [];
    for (let i = 0; i < await rows.count(); i++) {
      out.push(await rows.nth(i).locator('td').allInnerTexts());
    }
    return out;
  };
  // A number shown for a count equals the bounds the API gave before and after.
  const within = (what, ui, a, b) =>
    assert(a <= ui && ui <= b, `${what}: the page shows ${ui}, the API ${a} before and ${b} after`);

  let calls24;
  await h.check('analytics: overview numbers match the API for the same range', async () => {
    // Wait for some traffic, so the numbers mean something.
    await until(async () => (await q('/api/v1/usage/overview?range=24h')).calls > 20, { timeout: 20000, what: 'demo traffic' });
    const before = await q('/api/v1/usage/overview?range=24h');
    await page.goto(args.url + '/analytics?range=24h');
    await page.locator('[data-testid="stat-calls"]').waitFor();
    await settle();
    const after = await q('/api/v1/usage/overview?range=24h');
    calls24 = num(await statText('calls'));
    assert(calls24 === await statValue('calls'), 'shown ' + calls24 + ' but holds ' + await statValue('calls'));
    within('calls', calls24, before.calls, after.calls);
    within('errors', num(await statText('errors')), before.errors, after.errors);
    within('users', num(await statText('unique_users')), before.unique_users, after.unique_users);
    within('tokens', await statValue('tokens'), before.tokens.total, after.tokens.total);
    const w = page.locator('[data-testid="window"]');
    const span = Date.parse(await w.getAttribute('data-to')) - Date.parse(await w.getAttribute('data-from'));
    assert(span === 24 * 3600e3, 'the window is ' + span + ' ms');
    assert(await page.locator('[data-range="24h"]').getAttribute('aria-pressed') === 'true', '24h not shown as chosen');
  });

  await h.check('analytics: the usage charts are drawn with their series', async () => {
    for (const [id, re] of [['chart-calls', /: 2 series/], ['chart-tokens', /: [2-4] series/],
                            ['chart-distribution', /: 2 series, \d+ categories/]]) {
      const label = await chartLabel(id);
      assert(re.test(label) && !/no data/.test(label), id + ': ' + label);
    }
    // The canvas has something drawn on it.
    const inked = await page.locator('[data-testid="chart-calls-chart"] canvas').first().evaluate((c) => {
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
      return n;
    });
    assert(inked > 500, 'the calls chart is blank (' + inked + ' pixels)');
    // Its legend toggles a series, and the label follows.
    await page.locator('[data-testid="chart-calls-chart"] .legend button', { hasText: 'Errors' }).click();
    assert(/: 1 series/.test(await chartLabel('chart-calls')), await chartLabel('chart-calls'));
    await page.locator('[data-testid="chart-calls-chart"] .legend button', { hasText: 'Errors' }).click();
  });

  await h.check('analytics: the top users table matches the API', async () => {
    const before = await q('/api/v1/usage/top-users?range=24h&limit=1000');
    await page.click('[data-testid="refresh"]');
    await settle();
    const after = await q('/api/v1/usage/top-users?range=24h&limit=1000');
    const rows = await tableRows('top-users');
    assert(rows.length === Math.min(10, before.users.length), rows.length + ' rows for ' + before.users.length + ' users');
    const at = (ans, u) => ans.users.find((x) => x.user === u)?.calls ?? 0;
    let last = Infinity;
    for (const [user, calls] of rows) {
      within('calls of ' + user, num(calls), at(before, user), at(after, user));
      assert(num(calls) <= last, 'not most calls first: ' + JSON.stringify(rows));
      last = num(calls);
    }
  });

  await h.check('analytics: accessible and laid out (usage)', async () => {
    await h.pageChecks('analytics');
  });

  let model;
  await h.check('analytics: range and a filter go in the URL, change the numbers, survive a reload', async () => {
    await page.click('[data-range="1h"]');
    await until(() => params().range === '1h', { what: 'range=1h in the URL' });
    await settle();
    // The demo's models are offered; take the busiest cheap one.
    const opts = await until(async () => {
      const o = (await page.locator('#af-model option').allInnerTexts()).slice(1);
      return o.length >= 3 && o;
    }, { what: 'model choices' });
    model = opts.includes('gpt-4o-mini') ? 'gpt-4o-mini' : opts[0];
    const path = '/api/v1/usage/overview?range=1h&model=' + encodeURIComponent(model);
    const before = await q(path);
    await page.selectOption('#af-model', model);
    await until(() => params().model === model, { what: 'model in the URL' });
    await settle();
    const after = await q(path);
    const ui = num(await statText('calls'));
    within('calls of ' + model, ui, before.calls, after.calls);
    assert(ui < calls24, `filtered calls ${ui} not fewer than all ${calls24}`);
    // The distribution now has that model alone.
    assert(/: 2 series, 1 categories/.test(await chartLabel('chart-distribution')), await chartLabel('chart-distribution'));

    const before2 = await q(path);
    await page.reload();
    await page.locator('[data-testid="stat-calls"]').waitFor();
    await settle();
    const after2 = await q(path);
    assert(params().range === '1h' && params().model === model, 'after reload: ' + page.url());
    assert(await page.locator('#af-model').inputValue() === model, 'the model select lost its value');
    assert(await page.locator('[data-range="1h"]').getAttribute('aria-pressed') === 'true', '1h not chosen after reload');
    within('calls after reload', num(await statText('calls')), before2.calls, after2.calls);
  });

  await h.check('analytics: screenshots of the last hour, filtered, light and dark', async () => {
    await h.shots('analytics-1h-model');
    await page.evaluate(() => (document.documentElement.dataset.theme = 'dark'));
    await page.waitForTimeout(100);
    await h.shots('analytics-1h-model-dark');
    await page.evaluate(() => delete document.documentElement.dataset.theme);
  });

  await h.check('analytics: export CSV holds what the page shows', async () => {
    const shown = await tableRows('top-users');
    assert(shown.length > 0, 'no top users to export');
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid="export-csv"]')]);
    assert(/^tokentap-usage-1h-\d{4}-\d\d-\d\d\.csv$/.test(dl.suggestedFilename()), dl.suggestedFilename());
    const { meta, sections } = csvSections(readFileSync(await dl.path(), 'utf8'));
    assert(meta['tokentap export'] === 'usage' && meta.range === '1h', JSON.stringify(meta));
    assert(meta['filters.model'] === model, 'filter not in the export: ' + JSON.stringify(meta));
    const top = sections['Top users'];
    assert(top, 'no Top users section: ' + Object.keys(sections).join(', '));
    assert(top.header.join(',') === 'user,calls,errors,tokens,share,cost_usd', top.header.join(','));
    assert(top.rows.length === shown.length, top.rows.length + ' rows exported, ' + shown.length + ' shown');
    top.rows.forEach((r, i) => {
      assert(r[0] === shown[i][0] && Number(r[1]) === num(shown[i][1]) && Number(r[2]) === num(shown[i][2]) &&
             Number(r[3]) === num(shown[i][3]), 'row ' + i + ': ' + r.join(',') + ' vs ' + shown[i].join(' | '));
    });
    const summary = Object.fromEntries(sections.Summary.rows.map((r) => [r[0], r[1]]));
    assert(Number(summary.calls) === num(await statText('calls')), 'summary calls ' + summary.calls);
    const series = sections['Calls and errors'];
    assert(series.header.join(',') === 'time,Calls,Errors', series.header.join(','));
    assert(series.rows.length >= 60 && series.rows.length <= 61, series.rows.length + ' minute points in an hour');
  });

  await h.check('analytics: export JSON holds the range, filters and the same rows', async () => {
    const shown = await tableRows('top-users');
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid="export-json"]')]);
    assert(/^tokentap-usage-1h-\d{4}-\d\d-\d\d\.json$/.test(dl.suggestedFilename()), dl.suggestedFilename());
    const j = JSON.parse(readFileSync(await dl.path(), 'utf8'));
    assert(j.view === 'usage' && j.range === '1h' && j.filters.model === model, JSON.stringify(j).slice(0, 300));
    assert(Date.parse(j.to) - Date.parse(j.from) === 3600e3, 'window ' + j.from + ' ' + j.to);
    assert(j.bucket === '1m', 'bucket ' + j.bucket);
    const ids = j.sections.map((s) => s.id).join(',');
    assert(ids === 'summary,calls,tokens,distribution,topUsers', ids);
    const top = j.sections.find((s) => s.id === 'topUsers').rows;
    assert(JSON.stringify(top.map((r) => [r.user, r.calls])) ===
           JSON.stringify(shown.map((r) => [r[0], num(r[1])])), 'JSON rows differ from the table');
  });

  await h.check('analytics: a failing endpoint shows its error and a working retry', async () => {
    await h.expectingErrors([500], async () => {
      const pattern = '**/api/v1/usage/overview?**';
      await page.route(pattern, (r) => r.fulfill({
        status: 500, contentType: 'application/json',
        body: JSON.stringify({ error: { code: 'internal', message: 'overview broke for the test' } }),
      }));
      await page.click('[data-testid="refresh"]');
      await settle();
      const alert = page.locator('[data-testid="overview"] [role="alert"]');
      assert((await alert.innerText()).includes('overview broke for the test'), await alert.innerText());
      // The rest of the page is still there.
      assert((await tableRows('top-users')).length > 0, 'the top users went too');
      assert(!/no data/.test(await chartLabel('chart-calls')), 'the calls chart went too');
      await page.unroute(pattern);
      await alert.getByRole('button', { name: 'Try again' }).click();
      await page.locator('[data-testid="stat-calls"]').waitFor();
      await settle();
      assert(num(await statText('calls')) > 0, 'no calls after retry');
    });
  });

  await h.check('analytics: a quick change aborts the requests it made stale', async () => {
    const aborted = [];
    const onFail = (r) => { if (r.url().includes('range=24h')) aborted.push(r.failure()?.errorText); };
    page.on('requestfailed', onFail);
    const slow = '**/api/v1/usage/overview?range=24h**';
    await page.route(slow, async (r) => {
      await new Promise((ok) => setTimeout(ok, 2000));
      await r.continue().catch(() => {});
    });
    await page.click('[data-range="24h"]');
    await page.waitForTimeout(300);
    await page.click('[data-range="7d"]');
    await until(() => params().range === '7d', { what: 'range=7d' });
    await settle();
    await page.waitForTimeout(2200); // past the slow answer
    page.off('requestfailed', onFail);
    await page.unroute(slow);
    const w = page.locator('[data-testid="window"]');
    const span = Date.parse(await w.getAttribute('data-to')) - Date.parse(await w.getAttribute('data-from'));
    assert(span === 7 * 24 * 3600e3, 'the window shown is ' + span + ' ms, not 7 days');
    assert(aborted.length > 0 && aborted.every((e) => /ABORTED/i.test(e)), 'aborted: ' + JSON.stringify(aborted));
  });

  await h.check('analytics: a custom range from the datetime inputs, kept across a reload', async () => {
    await page.click('[data-range="custom"]');
    const from = new Date(Date.now() - 2 * 3600e3);
    from.setSeconds(0, 0);
    const pad = (n) => String(n).padStart(2, '0');
    const local = `${from.getFullYear()}-${pad(from.getMonth() + 1)}-${pad(from.getDate())}T${pad(from.getHours())}:${pad(from.getMinutes())}`;
    await page.fill('#range-from', local);
    await page.fill('#range-to', '');
    await page.getByRole('button', { name: 'Apply' }).click();
    await until(() => params().range === 'custom' && params().from, { what: 'a custom range in the URL' });
    assert(Date.parse(params().from) === from.getTime(), 'from= ' + params().from);
    await settle();
    const w = page.locator('[data-testid="window"]');
    assert(Date.parse(await w.getAttribute('data-from')) === from.getTime(), 'window from ' + await w.getAttribute('data-from'));
    const path = '/api/v1/usage/overview?from=' + encodeURIComponent(from.toISOString()) +
      '&model=' + encodeURIComponent(model);
    const before = await q(path);
    await page.reload();
    await page.locator('[data-testid="stat-calls"]').waitFor();
    await settle();
    const after = await q(path);
    assert(await page.locator('#range-from').inputValue() === local, 'the from input lost its value');
    within('calls in the custom range', num(await statText('calls')), before.calls, after.calls);
    // Back to a preset, no filter.
    await page.click('[data-range="24h"]');
    await page.locator('[data-testid="filters"] button', { hasText: 'Clear filters' }).click();
    await until(() => !params().from && !params().model && params().range === '24h', { what: 'cleared' });
    await settle();
  });

  await h.check('analytics: the cost view (keyboard tabs) matches the API', async () => {
    await page.locator('#tab-usage').focus();
    const before = await q('/api/v1/cost/overview?range=24h');
    const bm0 = await q('/api/v1/cost/by-model?range=24h');
    await page.keyboard.press('ArrowRight');
    await until(() => params().view === 'cost', { what: 'view=cost' });
    assert(await page.evaluate(() => document.activeElement?.id) === 'tab-cost', 'focus did not follow the tab');
    await page.locator('[data-testid="stat-cost_usd"]').waitFor();
    await settle();
    const after = await q('/api/v1/cost/overview?range=24h');
    const bm1 = await q('/api/v1/cost/by-model?range=24h');
    const spend = await statValue('cost_usd');
    assert(before.cost_usd - 1e-9 <= spend && spend <= after.cost_usd + 1e-9,
      `spend ${spend} not within ${before.cost_usd}..${after.cost_usd}`);
    const label = await chartLabel('chart-cost');
    const n = Number(/: (\d+) series/.exec(label)?.[1]);
    assert(n >= 2 && n <= 10 && n === Math.min(10, bm1.models.length), label + ' for ' + bm1.models.length + ' models');
    const rows = await tableRows('cost-by-model');
    assert(rows.length === bm1.models.length || rows.length === bm0.models.length,
      rows.length + ' rows for ' + bm1.models.length + ' models');
    for (const [m, p, cost] of rows) {
      const a = bm0.models.find((x) => x.model === m && x.provider === p)?.cost_usd ?? 0;
      const b = bm1.models.find((x) => x.model === m && x.provider === p)?.cost_usd;
      assert(b != null, m + ' is not in the API answer');
      // Costs are shown rounded (two decimals from $1 up): allow half of
      // the last digit shown.
      const decimals = (String(cost).split('.')[1] ?? '').replace(/\D/g, '').length;
      const slack = 0.5 * 10 ** -decimals + 1e-9;
      assert(num(cost) >= a - slack && num(cost) <= b + slack, `${m}: ${cost} not within ${a}..${b}`);
    }
    assert((await tableRows('cost-by-provider')).length >= 1, 'no providers');
    await h.pageChecks('analytics-cost');
  });

  await h.check('analytics: the performance view: percentiles, throughput, errors', async () => {
    await page.click('#tab-performance');
    await until(() => params().view === 'performance', { what: 'view=performance' });
    await page.locator('[data-testid="stat-p95"]').waitFor();
    await settle();
    const o = await q('/api/v1/performance/overview?range=24h');
    const p95 = await statValue('p95');
    // Percentiles move little between two requests; within 25% of the API's.
    assert(p95 > 0 && Math.abs(p95 - o.latency_ms.p95) / o.latency_ms.p95 < 0.25, `p95 ${p95} vs ${o.latency_ms.p95}`);
    assert(/: 3 series/.test(await chartLabel('chart-latency')), await chartLabel('chart-latency'));
    assert(/: 2 series/.test(await chartLabel('chart-throughput')), await chartLabel('chart-throughput'));
    const e = await q('/api/v1/performance/errors?range=24h');
    const types = (await tableRows('errors-by-type')).map((r) => r[0]);
    if (e.by_type.length) {
      assert(types.length > 0, 'no error types shown');
      for (const t of types)
        assert(e.by_type.some((x) => (x.error_type ?? 'status only') === t), t + ' not in the API answer');
    }
    await h.pageChecks('analytics-performance');
    // Back button returns to the previous view.
    await page.goBack();
    await until(() => params().view === 'cost', { what: 'back to cost' });
  });

  await h.check('analytics: no console warnings from the page', async () => {
    page.off('console', onConsole);
    assert(!warnings.length, warnings.join(' | '));
  });
}
