// The dashboard: first live numbers, tiles changing second by second,
// the live feed, accessibility in light and dark, reload, the phone menu.
import { assert } from '../harness.mjs';

export default async function dashboard(h) {
  const { page, args } = h;
  const tileText = (id) => page.locator(`[data-testid="${id}"] .value`).innerText();
  const sparkPoints = (id) =>
    page.locator(`[data-testid="${id}"] polyline`).getAttribute('points').catch(() => '');

  await h.check('dashboard: first live numbers soon after navigation', async () => {
    const t0 = Date.now();
    await page.goto(args.url + '/');
    await page.locator('[data-testid="live-status"]', { hasText: 'Live' }).waitFor({ timeout: 10000 });
    await page.waitForFunction(() => {
      const v = document.querySelector('[data-testid="tile-rps"] .value');
      return v && v.textContent !== '–';
    }, null, { timeout: 10000 });
    h.measure.first_live_numbers_ms = Date.now() - t0;
    h.measure.first_live_numbers_in_page_ms = await page.evaluate(() =>
      Math.round(performance.getEntriesByType('navigation')[0] ? performance.now() : 0));
  });

  await h.check('dashboard tiles change from one second to the next', async () => {
    // The numbers shown, not only the sparklines (which grow by a point a
    // second even if the numbers were stuck).
    const ids = ['tile-rps', 'tile-tokens', 'tile-cost', 'tile-errors', 'tile-p95'];
    const points = async () => ((await sparkPoints('tile-rps')) || '').split(' ').length;
    const before = await Promise.all(ids.map(tileText));
    const p0 = await points();
    await page.waitForTimeout(2500);
    const after = await Promise.all(ids.map(tileText));
    const changed = ids.filter((_, k) => before[k] !== after[k]);
    assert(changed.length >= 2, 'numbers changed: ' + changed.join(',') + ' ' + after.join(' | '));
    assert((await points()) >= p0 + 2, 'the sparkline did not grow');
  });

  await h.check('the live feed fills, pauses and filters', async () => {
    await page.locator('[data-testid="feed"] tbody tr').first().waitFor({ timeout: 10000 });
    await page.click('[data-testid="feed-pause"]');
    const a = await page.locator('[data-testid="feed"] tbody').innerText();
    await page.waitForTimeout(2200);
    const b = await page.locator('[data-testid="feed"] tbody').innerText();
    // Times ago tick on; the rows themselves stay.
    const rows = (s) => s.split('\n').map((l) => l.split('\t').slice(1).join('\t')).join('\n');
    assert(rows(a) === rows(b), 'the paused feed changed');
    await page.click('[data-testid="feed-pause"]');
    await page.fill('#feed-filter', 'zz-no-such-model');
    await page.getByText('No request matches.').waitFor();
    await page.fill('#feed-filter', '');
  });

  await h.check('dashboard: the crosstalk overview lists sessions the API knows', async () => {
    const box = page.locator('[data-testid="crosstalk-overview"]');
    // A session of our own (the demo's first may be a minute away): the
    // newest activity, so first in the card once it reloads (every 15 s).
    const mine = 'e2e-dash-' + Date.now().toString(36);
    const r = await h.api('POST', '/api/v1/events', [1, 2].map((round) => ({
      id: mine + '-' + round, provider: 'openai', model: 'gpt-4o-mini', input_tokens: 10,
      output_tokens: 5, cost_usd: 0.001, session: mine, round })));
    assert(r.status === 200, 'POST events ' + r.status);
    await box.locator(`li a[href="/crosstalk/${mine}"]`).waitFor({ timeout: 25000 });
    const ids = await box.locator('li a').evaluateAll((as) =>
      as.map((a) => decodeURIComponent(a.pathname.split('/').pop())));
    assert(ids.length >= 1 && ids.length <= 5, 'rows: ' + ids.length);
    for (const id of ids) {
      const r = await h.api('GET', '/api/v1/sessions/' + encodeURIComponent(id));
      assert(r.status === 200 && r.data.session.id === id, id + ": " + r.status);
    }
    const stats = await h.api('GET', '/api/v1/sessions/stats?range=24h');
    const shown = await box.locator('.xt-stats').innerText();
    const n = Number(shown.match(/^([\d,]+) sessions?/)[1].replace(/,/g, ''));
    assert(n >= 1 && n <= stats.data.sessions, `shown ${n}, the API ${stats.data.sessions}`);
  });

  await h.check('dashboard: accessible (axe: no serious or critical violations)', async () => {
    await h.axeCheck('dashboard');
  });

  await h.check('dashboard in dark mode is accessible too', async () => {
    await page.evaluate(() => (document.documentElement.dataset.theme = 'dark'));
    await h.axeCheck('dashboard (dark)');
    await h.shots('dashboard-dark');
    await page.evaluate(() => delete document.documentElement.dataset.theme);
    await h.shots('dashboard');
  });

  await h.check('reload keeps the session; the stream reconnects', async () => {
    await page.reload();
    await page.locator('[data-testid="live-status"]', { hasText: 'Live' }).waitFor({ timeout: 10000 });
    assert((await page.locator('[data-testid="who"]').innerText()).length > 0, 'no user shown');
  });

  await h.check('phone width: the menu opens and navigates', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.getByRole('button', { name: 'Menu' }).click();
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Dashboard' }).click();
    await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
    await page.setViewportSize({ width: 1280, height: 800 });
  });
}
