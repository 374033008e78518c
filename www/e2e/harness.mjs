// What every browser check shares: Chromium (Debian's, driven by
// playwright-core), the check/assert reporting, the axe-core scan, the
// screenshots at desktop and phone width, and an API client that uses the
// admin key directly (for setting things up and checking the UI's work
// from the server's side).
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';

const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

export async function openHarness(args) {
  mkdirSync(args.out, { recursive: true });
  const browser = await chromium.launch({
    executablePath: args.chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  const context = await browser.newContext({ viewport: DESKTOP, acceptDownloads: true });
  const page = await context.newPage();
  const h = {
    args,
    browser,
    context,
    page,
    failed: 0,
    measure: {},
    consoleErrors: [],
  };
  page.on('console', (m) => {
    if (m.type() === 'error') h.consoleErrors.push(page.url() + ': ' + m.text());
  });
  page.on('pageerror', (e) => h.consoleErrors.push(page.url() + ': ' + String(e)));

  /** Run one named check; a throw is reported as FAIL and counted. */
  h.check = async (name, fn) => {
    const t0 = Date.now();
    try {
      await fn();
      console.log('ok   ' + name + ' (' + (Date.now() - t0) + ' ms)');
    } catch (e) {
      h.failed++;
      console.log('FAIL ' + name + ': ' + (e && e.message ? e.message : e));
      await page.screenshot({ path: `${args.out}/FAIL-${name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60)}.png`,
                              fullPage: true }).catch(() => {});
    }
  };

  /** axe-core on the page as it is: no serious or critical violations. */
  h.axeCheck = async (label) => {
    await page.addScriptTag({ path: axePath });
    const r = await page.evaluate(async () =>
      // eslint-disable-next-line no-undef
      axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'best-practice'] }));
    const bad = r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    assert(!bad.length, label + ': ' + bad.map((v) =>
      `${v.id} (${v.impact}: ${v.nodes.length} nodes: ${v.nodes.slice(0, 2).map((n) => n.target.join(' ')).join('; ')})`).join(', '));
  };

  /** Screenshots NAME-desktop.png and NAME-phone.png of the whole page. */
  h.shots = async (name) => {
    await page.screenshot({ path: `${args.out}/${name}-desktop.png`, fullPage: true });
    await page.setViewportSize(PHONE);
    await page.waitForTimeout(200);
    await page.screenshot({ path: `${args.out}/${name}-phone.png`, fullPage: true });
    await page.setViewportSize(DESKTOP);
  };

  /** Go to a path of the app (client-side, as a click on a link would). */
  h.go = async (path) => {
    await page.evaluate((p) => {
      history.pushState({}, '', p);
      dispatchEvent(new PopStateEvent('popstate'));
    }, path);
  };

  /** The REST API with the admin key: h.api('GET', '/api/v1/rules'). */
  h.api = async (method, path, body) => {
    const r = await fetch(args.url + path, {
      method,
      headers: {
        Authorization: 'Bearer ' + args.key,
        ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = text;
    }
    return { status: r.status, data };
  };

  /**
   * Run fn, which makes the API refuse or fail on purpose: the browser
   * logs those answers ("status of 400") as console errors, which are not
   * the page's.  Drops those of the given statuses logged during fn (only
   * those) and returns how many it dropped.
   */
  h.expectingErrors = async (statuses, fn) => {
    const mark = h.consoleErrors.length;
    await fn();
    await page.waitForTimeout(100);
    const re = new RegExp('status of (' + statuses.join('|') + ')\\b');
    const mine = h.consoleErrors.splice(mark);
    const keep = mine.filter((e) => !re.test(e));
    h.consoleErrors.push(...keep);
    return mine.length - keep.length;
  };

  /** The standard page checks: no serious axe violation, light and dark, and screenshots. */
  h.pageChecks = async (name) => {
    await h.axeCheck(name);
    await page.evaluate(() => (document.documentElement.dataset.theme = 'dark'));
    await h.axeCheck(name + ' (dark)');
    await page.evaluate(() => delete document.documentElement.dataset.theme);
    await h.shots(name);
  };
  return h;
}

export function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

/**
 * Poll fn until it returns a truthy value (returned) or time runs out;
 * `what` (text, or a function giving it at the time) names what failed.
 */
export async function until(fn, { timeout = 10000, every = 250, what = 'condition' } = {}) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > end)
      throw new Error('timed out waiting for ' + (typeof what === 'function' ? what() : what));
    await new Promise((r) => setTimeout(r, every));
  }
}
