// The arithmetic behind components/Chart.svelte, kept apart so it can be
// tested without a canvas: aligning series on one time axis, stacking,
// thinning a line to the pixels it has, and choosing axis ticks.

/** Ten colours told apart on light and dark backgrounds, in series order. */
export const PALETTE = [
  '#4e79a7', '#f28e2b', '#e15759', '#59a14f', '#b07aa1',
  '#76b7b2', '#edc948', '#ff9da7', '#9c755f', '#8f8f8f',
];

/**
 * Put series of [t, v] points on one sorted time axis:
 * {xs: Float64Array, ys: [Float64Array per series]}, NaN where a series
 * has no point at that time.  align([{points: [[1, 5], [3, 6]]}, {points:
 * [[2, 1]]}]) gives xs [1, 2, 3], ys [[5, NaN, 6], [NaN, 1, NaN]].
 */
export function align(series) {
  if (sameTimes(series)) {
    // The usual case (one API answer's buckets): no lookups needed.
    const first = series[0].points;
    const xs = new Float64Array(first.length);
    for (let i = 0; i < first.length; i++) xs[i] = first[i][0];
    return { xs, ys: series.map((s) => values(s.points, null)) };
  }
  const set = new Set();
  for (const s of series) {
    const p = s.points;
    for (let i = 0; i < p.length; i++) set.add(p[i][0]);
  }
  const xs = Float64Array.from(set).sort();
  const index = new Map();
  for (let i = 0; i < xs.length; i++) index.set(xs[i], i);
  return { xs, ys: series.map((s) => values(s.points, index, xs.length)) };
}

/** Whether every series has the same ascending times. */
function sameTimes(series) {
  if (!series.length) return false;
  const first = series[0].points;
  for (let i = 1; i < first.length; i++) if (!(first[i][0] > first[i - 1][0])) return false;
  for (const s of series) {
    const p = s.points;
    if (p.length !== first.length) return false;
    for (let i = 0; i < p.length; i++) if (p[i][0] !== first[i][0]) return false;
  }
  return true;
}

/** A series' values at their places on the axis (index: time -> place). */
function values(points, index, n = points.length) {
  const y = new Float64Array(n).fill(NaN);
  for (let i = 0; i < points.length; i++) {
    const v = points[i][1];
    y[index ? index.get(points[i][0]) : i] = v == null ? NaN : v;
  }
  return y;
}

/** Running sums of the aligned series, missing counted as 0: tops[k][i]. */
export function stack(ys) {
  const tops = [];
  let prev = null;
  for (const y of ys) {
    const top = new Float64Array(y.length);
    for (let i = 0; i < y.length; i++)
      top[i] = (prev ? prev[i] : 0) + (Number.isNaN(y[i]) ? 0 : y[i]);
    tops.push(top);
    prev = top;
  }
  return tops;
}

/**
 * The points of a line worth drawing at `cols` pixel columns: per column
 * its first, lowest, highest and last point, so the thinned line looks like
 * the whole one.  Returns indexes into xs, ascending.
 */
export function thin(xs, y, x0, x1, cols) {
  const n = xs.length;
  if (n <= cols * 4) return null; // few enough: draw them all
  const out = [];
  const span = x1 - x0 || 1;
  let col = -1, first = -1, lo = -1, hi = -1, last = -1;
  const flush = () => {
    if (first < 0) return;
    const idx = [first, lo, hi, last].filter((v, k, a) => v >= 0 && a.indexOf(v) === k);
    idx.sort((a, b) => a - b);
    out.push(...idx);
  };
  for (let i = 0; i < n; i++) {
    const c = Math.floor(((xs[i] - x0) / span) * cols);
    if (c !== col) {
      flush();
      col = c;
      first = lo = hi = last = -1;
    }
    const v = y[i];
    if (Number.isNaN(v)) {
      // A gap must stay a gap: keep the missing point itself.
      flush();
      out.push(i);
      first = lo = hi = last = -1;
      continue;
    }
    if (first < 0) first = lo = hi = i;
    if (v < y[lo]) lo = i;
    if (v > y[hi]) hi = i;
    last = i;
  }
  flush();
  return out;
}

/** About `count` round values covering [lo, hi]: {ticks, lo, hi}. */
export function niceTicks(lo, hi, count = 5) {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return { ticks: [0, 1], lo: 0, hi: 1 };
  if (lo === hi) {
    if (lo === 0) return { ticks: [0, 1], lo: 0, hi: 1 };
    lo = Math.min(0, lo);
    hi = Math.max(0, hi);
  }
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const first = Math.floor(lo / step) * step;
  const lastTick = Math.ceil(hi / step) * step;
  const ticks = [];
  for (let v = first; v <= lastTick + step / 2; v += step) ticks.push(+v.toPrecision(12));
  return { ticks, lo: first, hi: lastTick };
}

const MIN = 60e3, HOUR = 60 * MIN, DAY = 24 * HOUR;
const STEPS = [MIN, 5 * MIN, 15 * MIN, 30 * MIN, HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR,
               DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY];

/**
 * Time ticks between t0 and t1 (ms) at a round step giving at most
 * `count`, on local minute, hour and midnight boundaries:
 * {ticks: [ms...], step}.
 */
export function timeTicks(t0, t1, count = 6) {
  const span = Math.max(1, t1 - t0);
  const step = STEPS.find((s) => span / s <= count) ?? 30 * DAY;
  const tzOff = (t) => new Date(t).getTimezoneOffset() * MIN;
  let t = Math.ceil((t0 - tzOff(t0)) / step) * step + tzOff(t0);
  if (step >= DAY) {
    const d = new Date(t0);
    d.setHours(0, 0, 0, 0);
    if (d.getTime() < t0) d.setDate(d.getDate() + 1);
    t = d.getTime();
  }
  const ticks = [];
  for (; t <= t1; ) {
    ticks.push(t);
    if (step >= DAY) {
      const d = new Date(t);
      d.setDate(d.getDate() + step / DAY);
      t = d.getTime();
    } else t += step;
  }
  return { ticks, step };
}

const fmtDay = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
const fmtTime = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const fmtFull = new Intl.DateTimeFormat(undefined, {
  month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
});

/** A tick's label: the day for day steps, else the time (and the day at midnight). */
export function tickLabel(t, step) {
  if (step >= DAY) return fmtDay.format(t);
  const d = new Date(t);
  if (d.getHours() === 0 && d.getMinutes() === 0) return fmtDay.format(t);
  return fmtTime.format(t);
}

/** A point's time in a tooltip. */
export const pointLabel = (t) => fmtFull.format(t);

/** The index in sorted xs nearest to x. */
export function nearest(xs, x) {
  let lo = 0, hi = xs.length - 1;
  if (hi < 0) return -1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  if (lo > 0 && x - xs[lo - 1] < xs[lo] - x) lo--;
  return lo;
}
