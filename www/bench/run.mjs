// The web UI's benchmarks in Chromium (bench/ui runs this; see
// docs/benchmarks.md).
//
//   node bench/run.mjs --chart DIR [--url URL --key KEY] [--repeat N]
//
// --chart DIR: the built chart page (vite build --config bench/vite.config.js),
// served here on 127.0.0.1.  For lines and for stacked areas of ten series
// of 90 days of hourly points it records every animation frame and long
// task from mounting the chart, then while the pointer sweeps across it,
// every series is hidden and shown again, the window is resized and the
// theme switched; the same recording of the page left idle is the baseline.
// --url/--key: a running stack with demo traffic; signs in and navigates
// to the dashboard N times, timing the first live number against the app
// shell's load (static files through the same nginx).
// Prints one JSON line.
import { chromium } from 'playwright-core';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize } from 'node:path';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    chart: { type: 'string' },
    url: { type: 'string' },
    key: { type: 'string' },
    repeat: { type: 'string', default: '5' },
    chromium: { type: 'string', default: process.env.CHROMIUM || '/usr/bin/chromium' },
  },
});

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };
function serve(dir) {
  const srv = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname));
    let f = join(dir, path);
    if (!f.startsWith(dir) || !existsSync(f) || statSync(f).isDirectory()) f = join(dir, 'chart.html');
    res.writeHead(200, { 'Content-Type': TYPES[extname(f)] || 'application/octet-stream' });
    createReadStream(f).pipe(res);
  });
  return new Promise((r) => srv.listen(0, '127.0.0.1', () => r(srv)));
}

const browser = await chromium.launch({
  executablePath: args.chromium,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const out = {};

async function chartRun(page, kind) {
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.evaluate(() => window.bench.prepare(10, 90));
  await page.waitForTimeout(200);
  await page.evaluate(() => window.bench.reset());
  const firstDrawMs = await page.evaluate((k) => window.bench.show(k), kind);
  await page.waitForTimeout(300);
  const mount = await page.evaluate(() => window.bench.report());
  await page.evaluate(() => window.bench.reset());
  const box = await page.locator('[data-testid="bench-chart"] canvas.over').boundingBox();
  for (let i = 0; i <= 60; i++)
    await page.mouse.move(box.x + 60 + ((box.width - 70) * i) / 60, box.y + box.height / 2);
  await page.mouse.move(0, 0);
  const legend = page.locator('[data-testid="bench-chart"] .legend button');
  for (let i = 0; i < (await legend.count()); i++) await legend.nth(i).click();
  for (let i = 0; i < (await legend.count()); i++) await legend.nth(i).click();
  for (const w of [900, 600, 1280]) {
    await page.setViewportSize({ width: w, height: 800 });
    await page.waitForTimeout(100);
  }
  for (const t of ['dark', 'light']) {
    await page.evaluate((x) => (document.documentElement.dataset.theme = x), t);
    await page.waitForTimeout(100);
  }
  await page.waitForTimeout(200);
  const use = await page.evaluate(() => window.bench.report());
  return {
    points: await page.evaluate(() => window.bench.points),
    first_draw_ms: Math.round(firstDrawMs),
    mount,
    interaction: use,
  };
}

if (args.chart) {
  const srv = await serve(args.chart);
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${srv.address().port}/chart.html`);
  await page.waitForFunction(() => window.bench);
  await page.waitForTimeout(500);
  await page.evaluate(() => window.bench.reset());
  await page.waitForTimeout(2000);
  out.idle = await page.evaluate(() => window.bench.report());
  out.line = await chartRun(page, 'line');
  out.stacked = await chartRun(page, 'stacked');
  await page.close();
  srv.close();
}

if (args.url && args.key) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  await page.goto(args.url + '/login');
  await page.fill('#key', args.key);
  await page.click('button[type=submit]');
  await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
  const shell = [], first = [];
  for (let i = 0; i < +args.repeat; i++) {
    await page.goto('about:blank');
    const t0 = Date.now();
    await page.goto(args.url + '/', { waitUntil: 'load' });
    shell.push(Date.now() - t0);
    await page.waitForFunction(() => {
      const v = document.querySelector('[data-testid="tile-rps"] .value');
      return v && v.textContent !== '–';
    }, null, { timeout: 10000, polling: 'raf' });
    first.push(Date.now() - t0);
  }
  const med = (a) => a.slice().sort((x, y) => x - y)[Math.floor(a.length / 2)];
  out.dashboard = {
    runs: first.length,
    shell_load_ms: shell,
    first_live_numbers_ms: first,
    median_shell_ms: med(shell),
    median_first_ms: med(first),
    max_first_ms: Math.max(...first),
    ratio_to_shell: +(med(first) / med(shell)).toFixed(2),
  };
  await ctx.close();
}

await browser.close();
console.log(JSON.stringify(out));
