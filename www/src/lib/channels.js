// The Channels and Inbox pages' logic, apart from the pages so it can be
// tested: each channel type's form fields, the form to and from the API's
// body (secrets are write-only: the API shows them as ********, and a
// secret left empty in an edit is kept), client-side checks, the API's 400
// field paths back to a form field, the delivery log's words, and the
// signal that tells the header's bell the inbox changed.

import { SEVERITIES } from './rules.js';

export const REDACTED = '********';
export const DEFAULT_EVENTS_URL = 'https://events.pagerduty.com/v2/enqueue';

/**
 * The types and their config fields, in form order.  kind: text, url,
 * email, list (addresses), bool, select, secret (a password input; empty in
 * an edit keeps the stored one), headers (names and secret values).
 */
export const TYPES = {
  email: {
    label: 'Email',
    help: 'Sends each notification as an email through your SMTP server.',
    fields: [
      { key: 'smtp_url', label: 'SMTP server', kind: 'url', schemes: ['smtp', 'smtps'], required: true,
        placeholder: 'smtp://mail.example.com:587',
        help: 'smtp://host:port (upgraded with STARTTLS) or smtps://host:port (TLS from the start); no user name, path or query.' },
      { key: 'starttls', label: 'Use STARTTLS', kind: 'bool',
        help: 'For smtp:// servers: upgrade the connection to TLS. Not used with smtps://.' },
      { key: 'username', label: 'User name', kind: 'text', help: 'For SMTP authentication; needed with a password.' },
      { key: 'password', label: 'Password', kind: 'secret', help: 'Write-only: never shown again once saved.' },
      { key: 'from', label: 'From', kind: 'email', required: true, placeholder: 'alerts@example.com',
        help: 'A plain address, without a display name.' },
      { key: 'to', label: 'To', kind: 'list', required: true, placeholder: 'oncall@example.com, team@example.com',
        help: '1 to 20 addresses, separated by commas or new lines.' },
    ],
  },
  slack: {
    label: 'Slack',
    help: 'Posts to a Slack channel through an incoming webhook.',
    fields: [
      { key: 'webhook_url', label: 'Incoming webhook URL', kind: 'secret', url: true, required: true,
        placeholder: 'https://hooks.slack.com/services/…',
        help: "From your Slack app's Incoming Webhooks. Secret: only its host is shown once saved." },
    ],
  },
  pagerduty: {
    label: 'PagerDuty',
    help: 'Opens and resolves PagerDuty incidents through the Events API v2.',
    fields: [
      { key: 'routing_key', label: 'Integration key', kind: 'secret', required: true,
        help: "The service integration's routing key (Events API v2). Write-only." },
      { key: 'events_url', label: 'Events API URL', kind: 'url', schemes: ['http', 'https'],
        placeholder: DEFAULT_EVENTS_URL, help: "Leave empty for PagerDuty's own endpoint." },
    ],
  },
  webhook: {
    label: 'Webhook',
    help: 'POSTs a JSON document to your URL, signed when a secret is set.',
    fields: [
      { key: 'url', label: 'URL', kind: 'url', schemes: ['http', 'https'], required: true,
        placeholder: 'https://example.com/hooks/tokentap',
        help: 'http:// or https://. Its path, query and user info are secret: shown as ******** once saved.' },
      { key: 'format', label: 'Payload format', kind: 'select',
        options: [['tokentap', 'tokentap JSON'], ['alertmanager', 'Alertmanager webhook']],
        help: 'tokentap\'s own document, or the one Alertmanager sends, for receivers that expect it.' },
      { key: 'secret', label: 'Signing secret', kind: 'secret',
        help: 'Signs every request (X-Tokentap-Signature, HMAC-SHA256). Write-only.' },
      { key: 'headers', label: 'Extra headers', kind: 'headers',
        help: 'Sent with every request, such as Authorization. Their values are secret.' },
    ],
  },
  in_app: {
    label: 'In-app',
    help: 'Notifications go to the inbox of this web UI (the bell at the top).',
    fields: [],
  },
};

export const TYPE_ORDER = ['email', 'slack', 'pagerduty', 'webhook', 'in_app'];

const RESERVED_HEADERS = ['host', 'content-type', 'content-length', 'transfer-encoding',
                          'x-tokentap-signature'];

let hdrSeq = 0;
export function newHeader(name = '', stored = false) {
  return { key: ++hdrSeq, name, value: '', stored, orig: stored ? name : '' };
}

/** A new channel's form. */
export function emptyForm(type = 'webhook') {
  return {
    id: null,
    type,
    name: '',
    enabled: true,
    timeout_ms: '',
    min_interval_ms: '',
    values: {
      smtp_url: '', starttls: true, username: '', password: '', from: '', to: '',
      webhook_url: '', routing_key: '', events_url: '', url: '', secret: '',
      format: 'tokentap', headers: [],
    },
    stored: {}, // secret key -> true: the channel has one (kept when left empty)
    views: {}, // URL key -> the redacted URL the API showed
    clear: {}, // optional secret key -> true: remove it (null)
  };
}

/** The edit form of a channel as the API shows it (secrets redacted). */
export function formFromChannel(ch) {
  const f = emptyForm(ch.type);
  const c = ch.config ?? {};
  f.id = ch.id;
  f.name = ch.name ?? '';
  f.enabled = ch.enabled !== false;
  f.timeout_ms = c.timeout_ms == null ? '' : String(c.timeout_ms);
  f.min_interval_ms = c.min_interval_ms == null ? '' : String(c.min_interval_ms);
  for (const fd of TYPES[ch.type]?.fields ?? []) {
    const v = c[fd.key];
    if (v == null) continue;
    if (fd.kind === 'secret') {
      f.stored[fd.key] = true;
      if (fd.url) f.views[fd.key] = v;
    } else if (fd.kind === 'list') f.values[fd.key] = (Array.isArray(v) ? v : [v]).join(', ');
    else if (fd.kind === 'headers')
      f.values.headers = Object.keys(v).map((name) => newHeader(name, true));
    else if (fd.kind === 'bool') f.values[fd.key] = !!v;
    else {
      f.values[fd.key] = String(v);
      if (fd.kind === 'url') f.views[fd.key] = v;
    }
  }
  if (ch.type === 'email' && c.starttls == null) f.values.starttls = true;
  return f;
}

/** Bytes of a string in UTF-8 (the API's limits are in bytes). */
export function utf8Len(s) {
  return new TextEncoder().encode(s).length;
}

function urlProblem(s, schemes) {
  if (/[\s\x00-\x1f\x7f]/.test(s)) return 'must not contain spaces or line breaks';
  let u;
  try {
    u = new URL(s);
  } catch {
    return 'is not a valid URL';
  }
  const scheme = u.protocol.replace(/:$/, '');
  if (!schemes.includes(scheme))
    return 'must be ' + schemes.map((x) => x + '://').join(' or ') + ' URL';
  if (!u.hostname) return 'has no host';
  if (u.hash) return 'must not have a #fragment';
  return null;
}

const ADDR = /^[^\s<>,;:"()[\]\\@]+@[^\s<>,;:"()[\]\\@]+$/;
function addrProblem(a) {
  if (!ADDR.test(a)) return 'must be a plain address such as alerts@example.com';
  const dom = a.split('@')[1];
  if (dom.startsWith('.') || dom.endsWith('.') || dom.includes('..'))
    return 'must be a plain address such as alerts@example.com';
  return null;
}

/** "a@x, b@y\nc@z" into ["a@x", "b@y", "c@z"]. */
export function splitList(s) {
  return String(s ?? '').split(/[\s,;]+/).map((x) => x.trim()).filter(Boolean);
}

/** Where a URL sends to (scheme, host, port), or null when it does not parse. */
export function destination(s) {
  try {
    const u = new URL(s);
    const dflt = { http: '80', https: '443', smtp: '25', smtps: '465' }[u.protocol.replace(/:$/, '')];
    return u.protocol + '//' + u.hostname.toLowerCase() + ':' + (u.port || dflt || '');
  } catch {
    return null;
  }
}

/**
 * Whether an edit sends the channel somewhere else: then the API keeps no
 * stored secret, and each must be entered again.
 */
export function destinationMoved(form) {
  if (!form.id) return false;
  const key = { email: 'smtp_url', pagerduty: 'events_url', webhook: 'url' }[form.type];
  if (!key) return false;
  const before = form.views[key];
  if (before == null) return false;
  let now = form.values[key].trim();
  if (key === 'events_url' && !now) now = DEFAULT_EVENTS_URL;
  return destination(before) !== destination(now);
}

/**
 * The API body from the form: {body, errors}.  errors maps a form field
 * (name, timeout_ms, a config key, "headers") to a message; body is null
 * when there are errors.  A new channel's body has name, type, config and
 * enabled; an edit's has name and config (enabled is its own switch).
 */
export function bodyFromForm(form) {
  const errors = {};
  const editing = !!form.id;
  const t = TYPES[form.type];
  if (!t) return { body: null, errors: { type: 'choose a type' } };
  const name = form.name.trim();
  if (!name) errors.name = 'is required';
  else if (utf8Len(name) > 64) errors.name = 'must be at most 64 bytes';
  else if (/[\x00-\x1f\x7f]/.test(name)) errors.name = 'must not contain control characters';

  const config = {};
  const int = (key, lo, hi) => {
    const s = String(form[key] ?? '').trim();
    if (!s) return;
    const n = Number(s);
    if (!Number.isInteger(n) || n < lo || n > hi) errors[key] = `must be a whole number from ${lo} to ${hi}`;
    else config[key] = n;
  };
  int('timeout_ms', 1000, 60000);
  int('min_interval_ms', 0, 3600000);
  const moved = destinationMoved(form);
  const v = form.values;

  for (const fd of t.fields) {
    const k = fd.key;
    const raw = v[k];
    if (fd.kind === 'bool') {
      if (k === 'starttls' && v.smtp_url.trim().toLowerCase().startsWith('smtps:')) continue;
      config[k] = !!raw;
    } else if (fd.kind === 'select') {
      config[k] = raw || fd.options[0][0];
    } else if (fd.kind === 'list') {
      const list = splitList(raw);
      if (!list.length) {
        if (fd.required) errors[k] = 'is required';
        continue;
      }
      if (list.length > 20) errors[k] = 'takes at most 20 addresses';
      const bad = list.find((a) => addrProblem(a));
      if (bad) errors[k] = `"${bad}" ${addrProblem(bad)}`;
      config[k] = list;
    } else if (fd.kind === 'secret') {
      const s = String(raw ?? '');
      if (form.clear[k] && !fd.required) {
        config[k] = null;
        continue;
      }
      if (!s) {
        if (editing && form.stored[k]) {
          if (moved) errors[k] = 'must be entered again: the destination changed';
          // else: left out, the stored one is kept
        } else if (fd.required) errors[k] = 'is required';
        continue;
      }
      if (fd.url) {
        const p = urlProblem(s.trim(), ['http', 'https']);
        if (p) errors[k] = p;
        config[k] = s.trim();
      } else {
        if (utf8Len(s) > 256) errors[k] = 'is too long';
        config[k] = s;
      }
    } else if (fd.kind === 'headers') {
      const hs = {};
      const seen = new Set();
      for (const h of raw) {
        const hn = h.name.trim();
        if (!hn && !h.value) continue;
        if (!/^[A-Za-z0-9!#$%&'*+\-.^_`|~]{1,128}$/.test(hn)) {
          errors.headers = `"${hn}" is not a header name (letters, digits and !#$%&'*+-.^_\`|~)`;
          continue;
        }
        if (RESERVED_HEADERS.includes(hn.toLowerCase())) {
          errors.headers = `${hn} is set by tokentap: a channel may not set it`;
          continue;
        }
        if (seen.has(hn.toLowerCase())) {
          errors.headers = `${hn} is there twice (names ignore case)`;
          continue;
        }
        seen.add(hn.toLowerCase());
        if (h.value) {
          if (/[\x00-\x08\x0a-\x1f\x7f]/.test(h.value)) errors.headers = `${hn}'s value has a line break`;
          hs[hn] = h.value;
        } else if (h.stored && h.orig.toLowerCase() === hn.toLowerCase()) {
          if (moved) errors.headers = `${hn}'s value must be entered again: the destination changed`;
          hs[hn] = REDACTED;
        } else errors.headers = `${hn} needs a value`;
      }
      if (Object.keys(hs).length > 20) errors.headers = 'at most 20 headers';
      config.headers = hs;
    } else {
      const s = String(raw ?? '').trim();
      if (!s) {
        if (fd.required) errors[k] = 'is required';
        continue;
      }
      if (fd.kind === 'url') {
        // The webhook URL as the API showed it (secret parts redacted):
        // left out, the stored one is kept.
        if (editing && k === 'url' && form.views.url === s) continue;
        const p = s.includes(REDACTED) ? 'still holds ********: enter the whole URL'
          : urlProblem(s, fd.schemes);
        if (p) errors[k] = p;
        else if (k === 'smtp_url' && !/^smtps?:\/\/[^/?#@]+\/?$/i.test(s))
          errors[k] = 'must be smtp://host:port or smtps://host:port, without a user, path or query';
      } else if (fd.kind === 'email') {
        const p = addrProblem(s);
        if (p) errors[k] = p;
      } else if (utf8Len(s) > 256) errors[k] = 'is too long';
      config[k] = s;
    }
  }
  if (form.type === 'email') {
    const hasPassword = !form.clear.password && (!!v.password || (editing && !!form.stored.password));
    if (hasPassword && !v.username.trim() && !errors.username)
      errors.username = 'is required with a password';
  }
  if (Object.keys(errors).length) return { body: null, errors };
  const body = editing ? { name, config } : { name, type: form.type, config, enabled: !!form.enabled };
  return { body, errors };
}

/**
 * The form field an API error is about: "name", "config.to[1]" -> "to",
 * "config.headers.X-Key" -> "headers", "config" -> "_form".
 */
export function formField(field) {
  if (!field) return '_form';
  if (field === 'name' || field === 'type' || field === 'enabled') return field;
  const m = /^config\.([a-z_]+)/.exec(field);
  return m ? m[1] : '_form';
}

/** A channel's destination in a few words, secrets as the API shows them. */
export function channelSummary(ch) {
  const c = ch.config ?? {};
  switch (ch.type) {
    case 'email':
      return (Array.isArray(c.to) ? c.to.join(', ') : '') + (c.smtp_url ? ' via ' + c.smtp_url : '');
    case 'slack':
      return c.webhook_url ?? '';
    case 'pagerduty':
      return c.events_url && c.events_url !== DEFAULT_EVENTS_URL ? c.events_url : 'PagerDuty Events API v2';
    case 'webhook':
      return (c.url ?? '') + (c.format === 'alertmanager' ? ' (Alertmanager format)' : '');
    case 'in_app':
      return 'the inbox';
    default:
      return '';
  }
}

/** A test's (or a delivery's) outcome in words: {ok, text}. */
export function outcomeText(n) {
  if (!n) return { ok: false, text: 'No answer' };
  const last = n.tries?.length ? n.tries[n.tries.length - 1] : null;
  const code = n.last_code ?? last?.code;
  const bits = [];
  if (code != null) bits.push(code >= 100 && code < 600 && n.channel_type !== 'email' ? 'HTTP ' + code : 'code ' + code);
  if (last?.latency_ms != null) bits.push(last.latency_ms + ' ms');
  const extra = bits.length ? ' (' + bits.join(', ') + ')' : '';
  if (n.status === 'sent') return { ok: true, text: 'Delivered' + extra };
  if (n.status === 'pending') return { ok: false, text: 'Still waiting for its first try' };
  const err = n.last_error || last?.error || 'failed';
  if (n.status === 'retrying') return { ok: false, text: 'Not delivered yet, will retry: ' + err + extra };
  return { ok: false, text: 'Not delivered: ' + err + extra };
}

/** The history's statuses, for the filter. */
export const STATUSES = ['sent', 'failed', 'retrying', 'pending'];

/** The severities a default route is set for: every one. */
export const ROUTES = SEVERITIES;

/** GET /channels/routes into {critical: Set, ..., fallback: id|''}. */
export function routesFromApi(r) {
  const out = {};
  for (const k of ROUTES) out[k] = new Set(r?.[k] ?? []);
  out.fallback = r?.fallback?.length ? String(r.fallback[0]) : '';
  return out;
}

/** The PUT body of the routes form. */
export function routesBody(form) {
  const body = {};
  for (const k of ROUTES) body[k] = [...form[k]].map(Number).sort((a, b) => a - b);
  body.fallback = form.fallback ? [Number(form.fallback)] : [];
  return body;
}

// The header's bell refreshes its count on this window event; pages that
// read or receive inbox rows send it.
export const INBOX_EVENT = 'tt-inbox-changed';
export function inboxChanged() {
  dispatchEvent(new Event(INBOX_EVENT));
}

/** The bell's accessible name and badge: "Inbox, 3 unread", "99+". */
export function unreadLabel(count, more = false) {
  if (!count) return { label: 'Inbox, no unread notifications', badge: '' };
  const n = more ? count + '+' : String(count);
  return { label: `Inbox, ${n} unread`, badge: count > 99 ? '99+' : n };
}

/** An inbox row's kind in words. */
export function kindText(kind) {
  return {
    test: 'Test',
    firing: 'Firing',
    renotify: 'Still firing',
    acknowledged: 'Acknowledged',
    resolved: 'Resolved',
    channel_disabled: 'Channel disabled',
  }[kind] ?? kind;
}

/**
 * The field an API 400 is about, and its message without the field's path
 * in front: {field, text}.  The API's errors name the field in `field`
 * and begin the message with it ("budgets[0].limit_usd must be ...");
 * ApiError keeps that `field`, and when an answer has none the path is
 * read back from the message.  Shared by the budget and channel forms.
 */
export function errorField(e) {
  const msg = e?.message ?? String(e);
  if (e?.field) {
    const text = msg.startsWith(e.field + ' ') ? msg.slice(e.field.length + 1) : msg;
    return { field: e.field, text };
  }
  if (e?.status === 400 || e?.code === 'invalid_field') {
    const m = /^([A-Za-z_]+(?:\[\d+\]|\.[^\s[]+)*) (.+)$/s.exec(msg);
    if (m) return { field: m[1], text: m[2] };
  }
  return { field: null, text: msg };
}
