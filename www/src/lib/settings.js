// The logic of the Settings page, apart from its components so it can be
// tested without a browser: the quiet hours form and its description, the
// time zones to offer, the new-key form and a key's dates.

export const THEMES = [
  { value: 'system', label: 'System', hint: 'follow the device' },
  { value: 'light', label: 'Light', hint: '' },
  { value: 'dark', label: 'Dark', hint: '' },
];

export const ROLES = [
  { value: 'read', hint: 'reads dashboards, analytics and sessions' },
  { value: 'ingest', hint: 'sends events only (POST /api/v1/events)' },
  { value: 'admin', hint: 'everything, including keys of every workspace' },
];

/** The browser's IANA time zone, or UTC. */
export function browserZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

/**
 * The zones to offer: the browser's list (with UTC, which some browsers
 * leave out), plus the ones given (the stored zone, the browser's) when
 * missing; sorted.
 */
export function timeZones(...extra) {
  let list = [];
  try {
    list = Intl.supportedValuesOf('timeZone');
  } catch {
    list = [];
  }
  const set = new Set(list);
  set.add('UTC');
  for (const z of extra) if (z) set.add(z);
  return [...set].sort();
}

const HHMM = /^([01]\d|2[0-3]):[0-5]\d$/;

/**
 * The quiet hours form ({start, end, timezone}) as the PUT body, or
 * {errors: {field: message}}.  <input type=time> may give seconds
 * ("22:00:00"): they are dropped.
 */
export function quietBody(form) {
  const cut = (v) => String(v ?? '').trim().slice(0, 5);
  const body = { start: cut(form.start), end: cut(form.end), timezone: String(form.timezone ?? '').trim() };
  const errors = {};
  if (!HHMM.test(body.start)) errors.start = 'Give a start time, e.g. 22:00.';
  if (!HHMM.test(body.end)) errors.end = 'Give an end time, e.g. 07:00.';
  else if (body.end === body.start) errors.end = 'The end must differ from the start.';
  if (!body.timezone) errors.timezone = 'Choose a time zone.';
  return Object.keys(errors).length ? { errors } : { body };
}

/** Whether the GET /api/v1/quiet-hours answer holds quiet hours. */
export const quietSet = (q) => !!(q && q.start && q.end);

/** "22:00 to 07:00 (Europe/Berlin), across midnight", or "Off". */
export function describeQuiet(q) {
  if (!quietSet(q)) return 'Off';
  const over = q.end < q.start ? ', across midnight' : '';
  return `${q.start} to ${q.end} (${q.timezone || 'UTC'})${over}`;
}

/** Minutes since midnight of "HH:MM". */
const minutes = (s) => Number(s.slice(0, 2)) * 60 + Number(s.slice(3, 5));

/**
 * Whether quiet hours are on at nowMs, in their zone (null when that
 * cannot be told: no quiet hours, an unknown zone).
 */
export function quietNow(q, nowMs = Date.now()) {
  if (!quietSet(q)) return null;
  let hm;
  try {
    hm = new Intl.DateTimeFormat('en-GB', { timeZone: q.timezone || 'UTC', hour: '2-digit',
                                            minute: '2-digit', hourCycle: 'h23' }).format(nowMs);
  } catch {
    return null;
  }
  const now = minutes(hm), s = minutes(q.start), e = minutes(q.end);
  return s < e ? now >= s && now < e : now >= s || now < e;
}

const WORKSPACE = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/**
 * The new-key form ({name, role, workspace}) as the POST body, or
 * {errors}.  An empty workspace is left out (the API's default).
 */
export function keyBody(form) {
  const body = { name: String(form.name ?? '').trim(), role: form.role };
  const errors = {};
  if (!body.name) errors.name = 'Give the key a name, e.g. what will use it.';
  else if (new TextEncoder().encode(body.name).length > 128) errors.name = 'At most 128 bytes.';
  if (!ROLES.some((r) => r.value === body.role)) errors.role = 'Choose a role.';
  const ws = String(form.workspace ?? '').trim();
  if (ws) {
    if (!WORKSPACE.test(ws))
      errors.workspace = 'Lower-case letters, digits, - and _ (first a letter or digit), at most 64.';
    else body.workspace = ws;
  }
  return Object.keys(errors).length ? { errors } : { body };
}

/** "in 11 h 5 min", "in 3 min", "expired", "never" (null). */
export function expiresIn(iso, nowMs = Date.now()) {
  if (iso == null) return 'never (a key, not a session)';
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return '–';
  const m = Math.round((t - nowMs) / 60000);
  if (m <= 0) return 'expired';
  if (m < 60) return 'in ' + m + ' min';
  const h = Math.floor(m / 60);
  return 'in ' + h + ' h' + (m % 60 ? ' ' + (m % 60) + ' min' : '');
}

/** A key's date for the list: "2026-11-22 12:57" in the browser's zone, or "never". */
export function keyDate(iso) {
  if (iso == null || iso === '') return 'never';
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return String(iso);
  const d = new Date(t);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}
