// The web UI in real Chromium (Debian's, driven by playwright-core; no
// browser download), against a running stack with demo traffic.
//
//   node e2e/ui.mjs --url http://127.0.0.1:PORT --key ADMIN_KEY --out DIR [--only a,b]
//
// Signs in, then runs every page module in e2e/pages/ in name order (or
// only those whose names contain one of --only's words), then signs out.
// Prints one line per check ("ok ..." / "FAIL ...") and a JSON line of
// measurements ("measure {...}"); exits 1 if a check failed.  Screenshots
// of every page at desktop and phone width go to DIR.
import { readdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { assert, openHarness } from './harness.mjs';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    key: { type: 'string' },
    out: { type: 'string', default: 'ui-artifacts' },
    only: { type: 'string', default: process.env.TT_UI_ONLY || '' },
    chromium: { type: 'string', default: process.env.CHROMIUM || '/usr/bin/chromium' },
  },
});
if (!args.url || !args.key) {
  console.error('usage: node e2e/ui.mjs --url URL --key KEY [--out DIR] [--only NAMES]');
  process.exit(2);
}

const h = await openHarness(args);
const { page, context } = h;

await h.check('signed out: a deep link lands on the login page and keeps where it was going', async () => {
  await page.goto(args.url + '/no/such/page?x=1');
  await page.waitForURL(/\/login\?next=/);
  assert(decodeURIComponent(page.url()).includes('next=/no/such/page?x=1'), page.url());
  await h.axeCheck('login page');
  await h.shots('login');
});

await h.check('a wrong key is refused with a message', async () => {
  await page.fill('#key', 'tt_not_a_real_key');
  await page.click('button[type=submit]');
  await page.getByRole('alert').waitFor();
  assert((await page.getByRole('alert').innerText()).includes('not valid'), 'no error shown');
});

await h.check('log in: a session cookie (HttpOnly, SameSite=Strict), no key in storage', async () => {
  await page.fill('#key', args.key);
  await page.click('button[type=submit]');
  await page.getByRole('heading', { name: 'Not found' }).waitFor();
  assert(new URL(page.url()).pathname === '/no/such/page', page.url());
  const c = (await context.cookies()).find((x) => x.name === 'tt_session');
  assert(c && c.httpOnly && c.sameSite === 'Strict', JSON.stringify(c));
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
  assert(!stored.includes(args.key), 'the key is in web storage');
});


const only = args.only.split(',').map((s) => s.trim()).filter(Boolean);
const dir = new URL('./pages/', import.meta.url);
for (const f of readdirSync(dir).filter((n) => n.endsWith('.mjs')).sort()) {
  if (only.length && !only.some((w) => f.includes(w))) continue;
  console.log('# ' + f);
  const mod = await import(new URL(f, dir));
  await h.check(f + ': runs to the end', () => mod.default(h));
}

await h.check('log out ends the session', async () => {
  await page.click('[data-testid="logout"]');
  await page.locator('#key').waitFor();
  assert(new URL(page.url()).pathname === '/login', page.url());
  const st = await page.evaluate(async () => (await fetch('/api/v1/session')).status);
  assert(st === 401, 'session still answers ' + st);
});

await h.check('no console errors', async () => {
  // The wrong key's 401 is the browser reporting a failed request, not an
  // error of the page.
  const real = h.consoleErrors.filter((e) => !/status of 401/.test(e));
  assert(!real.length, real.join(' | '));
});

await h.browser.close();
console.log('measure ' + JSON.stringify(h.measure));
process.exit(h.failed ? 1 : 0);
