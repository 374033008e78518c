// Number and time formatting shared by every page.

// Intl formatters are slow to make and quick to use: one per option set.
const cache = new Map();
function formatter(key, opts) {
  let f = cache.get(key);
  if (!f) cache.set(key, (f = new Intl.NumberFormat('en-US', opts)));
  return f;
}
const nf = (digits) => formatter('n' + digits, { maximumFractionDigits: digits });

/** A count or rate: 1234 -> "1,234", 1234567 -> "1.23M", 0.5 -> "0.5". */
export function fmtNum(v) {
  if (v == null || !Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  if (a >= 1e9) return nf(2).format(v / 1e9) + 'B';
  if (a >= 1e6) return nf(2).format(v / 1e6) + 'M';
  if (a >= 1e4) return nf(1).format(v / 1e3) + 'k';
  return nf(a < 10 ? 2 : 1).format(v);
}

/** Dollars: small amounts keep their significant digits. */
export function fmtUsd(v) {
  if (v == null || !Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  const digits = a === 0 ? 2 : a < 0.01 ? 5 : a < 1 ? 4 : 2;
  return (
    (v < 0 ? '-$' : '$') +
    formatter('usd' + digits, {
      minimumFractionDigits: Math.min(2, digits),
      maximumFractionDigits: digits,
    }).format(a)
  );
}

/** Milliseconds: "850 ms", "1.25 s". */
export function fmtMs(v) {
  if (v == null || !Number.isFinite(v)) return '–';
  if (Math.abs(v) >= 1000) return nf(2).format(v / 1000) + ' s';
  return nf(0).format(v) + ' ms';
}

/** A percentage already in percent: 1.5833 -> "1.58%". */
export function fmtPct(v) {
  if (v == null || !Number.isFinite(v)) return '–';
  return nf(2).format(v) + '%';
}

/** "just now", "5 s ago", "3 min ago", "2 h ago", "4 d ago". */
export function timeAgo(iso, nowMs = Date.now()) {
  const t = typeof iso === 'number' ? iso : Date.parse(iso);
  if (!Number.isFinite(t)) return '–';
  const s = Math.round((nowMs - t) / 1000);
  if (s < 2) return 'just now';
  if (s < 60) return s + ' s ago';
  if (s < 3600) return Math.floor(s / 60) + ' min ago';
  if (s < 86400) return Math.floor(s / 3600) + ' h ago';
  return Math.floor(s / 86400) + ' d ago';
}

/** "1 session", "3 sessions", "1,200 sessions". */
export function plural(n, word, many = word + 's') {
  return fmtNum(n) + ' ' + (n === 1 ? word : many);
}

/** A time in full, in the browser's locale and zone (e.g. for a title); '' for none. */
export function fmtDateTime(iso) {
  return iso ? new Date(iso).toLocaleString() : '';
}
