// The web UI in real Chromium (Debian's, driven by playwright-core; no
// browser download), against a running stack with demo traffic.
//
//   node e2e/ui.mjs --url http://127.0.0.1:PORT --key KEY --out DIR
//
// Prints one line per check ("ok ..." / "FAIL ...") and a JSON line of
// measurements ("measure {...}"); exits 1 if a check failed.  Screenshots
// of every page at desktop and phone width go to DIR.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    key: { type: 'string' },
    out: { type: 'string', default: 'ui-artifacts' },
    chromium: { type: 'string', default: process.env.CHROMIUM || '/usr/bin/chromium' },
  },
});
if (!args.url || !args.key) {
  console.error('usage: node e2e/ui.mjs --url URL --key KEY [--out DIR]');
  process.exit(2);
}
mkdirSync(args.out, { recursive: true });
const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

let failed = 0;
const measure = {};
async function check(name, fn) {
  try {
    await fn();
    console.log('ok   ' + name);
  } catch (e) {
    failed++;
    console.log('FAIL ' + name + ': ' + (e && e.message ? e.message : e));
  }
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

const browser = await chromium.launch({
  executablePath: args.chromium,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
const page = await context.newPage();
const consoleErrors = [];
page.on('console', (m) => {
  if (m.type() === 'error') consoleErrors.push(m.text());
});
page.on('pageerror', (e) => consoleErrors.push(String(e)));

const tileText = (id) => page.locator(`[data-testid="${id}"] .value`).innerText();
const sparkPoints = (id) =>
  page.locator(`[data-testid="${id}"] polyline`).getAttribute('points').catch(() => '');

async function axeCheck(label) {
  await page.addScriptTag({ path: axePath });
  const r = await page.evaluate(async () =>
    // eslint-disable-next-line no-undef
    axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'best-practice'] }));
  const bad = r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert(!bad.length, label + ': ' + bad.map((v) => `${v.id} (${v.impact}: ${v.nodes.length} nodes)`).join(', '));
}

async function shots(name) {
  await page.screenshot({ path: `${args.out}/${name}-desktop.png`, fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(150);
  await page.screenshot({ path: `${args.out}/${name}-phone.png`, fullPage: true });
  await page.setViewportSize({ width: 1280, height: 800 });
}

await check('signed out: a deep link lands on the login page and keeps where it was going', async () => {
  await page.goto(args.url + '/no/such/page?x=1');
  await page.waitForURL(/\/login\?next=/);
  assert(decodeURIComponent(page.url()).includes('next=/no/such/page?x=1'), page.url());
  await axeCheck('login page');
  await shots('login');
});

await check('a wrong key is refused with a message', async () => {
  await page.fill('#key', 'tt_not_a_real_key');
  await page.click('button[type=submit]');
  await page.getByRole('alert').waitFor();
  assert((await page.getByRole('alert').innerText()).includes('not valid'), 'no error shown');
});

await check('log in: a session cookie (HttpOnly, SameSite=Strict), no key in storage', async () => {
  await page.fill('#key', args.key);
  await page.click('button[type=submit]');
  await page.getByRole('heading', { name: 'Not found' }).waitFor();
  assert(new URL(page.url()).pathname === '/no/such/page', page.url());
  const c = (await context.cookies()).find((x) => x.name === 'tt_session');
  assert(c && c.httpOnly && c.sameSite === 'Strict', JSON.stringify(c));
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
  assert(!stored.includes(args.key), 'the key is in web storage');
});

await check('dashboard: first live numbers soon after navigation', async () => {
  const t0 = Date.now();
  await page.goto(args.url + '/');
  await page.locator('[data-testid="live-status"]', { hasText: 'Live' }).waitFor({ timeout: 10000 });
  await page.waitForFunction(() => {
    const v = document.querySelector('[data-testid="tile-rps"] .value');
    return v && v.textContent !== '–';
  }, null, { timeout: 10000 });
  measure.first_live_numbers_ms = Date.now() - t0;
  measure.first_live_numbers_in_page_ms = await page.evaluate(() =>
    Math.round(performance.getEntriesByType('navigation')[0] ? performance.now() : 0));
});

await check('dashboard tiles change from one second to the next', async () => {
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

await check('the live feed fills, pauses and filters', async () => {
  await page.locator('tbody tr').first().waitFor({ timeout: 10000 });
  await page.click('[data-testid="feed-pause"]');
  const a = await page.locator('tbody').innerText();
  await page.waitForTimeout(2200);
  const b = await page.locator('tbody').innerText();
  // Times ago tick on; the rows themselves stay.
  const rows = (s) => s.split('\n').map((l) => l.split('\t').slice(1).join('\t')).join('\n');
  assert(rows(a) === rows(b), 'the paused feed changed');
  await page.click('[data-testid="feed-pause"]');
  await page.fill('#feed-filter', 'zz-no-such-model');
  await page.getByText('No request matches.').waitFor();
  await page.fill('#feed-filter', '');
});

await check('dashboard: accessible (axe: no serious or critical violations)', async () => {
  await axeCheck('dashboard');
});

await check('dashboard in dark mode is accessible too', async () => {
  await page.evaluate(() => (document.documentElement.dataset.theme = 'dark'));
  await axeCheck('dashboard (dark)');
  await shots('dashboard-dark');
  await page.evaluate(() => delete document.documentElement.dataset.theme);
  await shots('dashboard');
});

await check('reload keeps the session; the stream reconnects', async () => {
  await page.reload();
  await page.locator('[data-testid="live-status"]', { hasText: 'Live' }).waitFor({ timeout: 10000 });
  assert((await page.locator('[data-testid="who"]').innerText()).length > 0, 'no user shown');
});

await check('phone width: the menu opens and navigates', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.getByRole('button', { name: 'Menu' }).click();
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Dashboard' }).click();
  await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
  await page.setViewportSize({ width: 1280, height: 800 });
});

await check('log out ends the session', async () => {
  await page.click('[data-testid="logout"]');
  await page.locator('#key').waitFor();
  assert(new URL(page.url()).pathname === '/login', page.url());
  const st = await page.evaluate(async () => (await fetch('/api/v1/session')).status);
  assert(st === 401, 'session still answers ' + st);
});

await check('no console errors', async () => {
  // The wrong key's 401 is the browser reporting a failed request, not an
  // error of the page.
  const real = consoleErrors.filter((e) => !/status of 401/.test(e));
  assert(!real.length, real.join(' | '));
});

await browser.close();
console.log('measure ' + JSON.stringify(measure));
process.exit(failed ? 1 : 0);
