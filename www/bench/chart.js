// The chart benchmark's page (bench/ui builds it with vite.config.js here
// and drives it in Chromium): the app's own Chart component with 90 days of
// hourly points in ten series, and a record of every animation frame and
// long task while the driver hovers, toggles series, resizes and switches
// the theme.
import { mount, unmount } from 'svelte';
import Chart from '../src/components/Chart.svelte';
import '../src/app.css';

const HOUR = 3600e3;

/** days×24 hourly points for each of n series, shaped like daily traffic. */
function makeSeries(n, days) {
  const end = Math.floor(Date.now() / HOUR) * HOUR;
  const start = end - days * 24 * HOUR;
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  return Array.from({ length: n }, (_, k) => {
    const points = [];
    const scale = 10 + k * 7;
    for (let t = start; t < end; t += HOUR) {
      const h = new Date(t).getHours();
      const day = 0.3 + 0.7 * Math.max(0, Math.sin(((h - 6) / 24) * 2 * Math.PI));
      points.push([t, scale * day * (0.8 + 0.4 * rnd())]);
    }
    return { name: 'model-' + (k + 1), points };
  });
}

const frames = [];
const longTasks = [];
const draws = [];
let last = 0;
function tick(now) {
  if (last) frames.push(now - last);
  last = now;
  requestAnimationFrame(tick);
}
requestAnimationFrame(tick);
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) longTasks.push(Math.round(e.duration));
}).observe({ type: 'longtask', buffered: true });

let app = null;
let series = [];
window.bench = {
  points: 0,
  /** Make n series of `days` days of hourly points (not timed). */
  prepare(n = 10, days = 90) {
    series = makeSeries(n, days);
    this.points = series.reduce((a, s) => a + s.points.length, 0);
  },
  /** Mount a chart of `kind` with the prepared series; resolves after its first draw. */
  show(kind) {
    if (app) unmount(app);
    return new Promise((resolve) => {
      const t0 = performance.now();
      let first = true;
      app = mount(Chart, {
        target: document.getElementById('app'),
        props: {
          label: `${kind} chart, ${series.length} series`,
          kind,
          series,
          height: 320,
          testid: 'bench-chart',
          onrender: (ms) => {
            draws.push(ms);
            if (first) {
              first = false;
              resolve(performance.now() - t0);
            }
          },
        },
      });
    });
  },
  /** Forget what was recorded so far. */
  reset() {
    frames.length = longTasks.length = draws.length = 0;
    last = 0;
  },
  /** What was recorded since the last reset. */
  report() {
    const f = frames.slice().sort((a, b) => a - b);
    return {
      frames: f.length,
      frame_max_ms: f.length ? +f[f.length - 1].toFixed(1) : null,
      frame_p99_ms: f.length ? +f[Math.floor(f.length * 0.99)].toFixed(1) : null,
      long_tasks_ms: longTasks.slice(),
      draws: draws.length,
      draw_max_ms: draws.length ? +Math.max(...draws).toFixed(1) : null,
      draw_mean_ms: draws.length ? +(draws.reduce((a, b) => a + b, 0) / draws.length).toFixed(1) : null,
    };
  },
};
