import { describe, expect, it, vi } from 'vitest';
import {
  INBOX_EVENT, REDACTED, TYPES, bodyFromForm, channelSummary, destinationMoved, emptyForm,
  formField, formFromChannel, inboxChanged, newHeader, outcomeText, routesBody, routesFromApi,
  unreadLabel,
} from './channels.js';

function form(type, values = {}, name = 'ops') {
  const f = emptyForm(type);
  f.name = name;
  Object.assign(f.values, values);
  return f;
}

describe('new channel bodies', () => {
  it('webhook: only its fields, headers and format', () => {
    const f = form('webhook', { url: 'https://example.com/h?t=1', secret: 's3', format: 'alertmanager' });
    f.values.headers = [{ ...newHeader('Authorization'), value: 'Bearer x' }, newHeader()];
    f.timeout_ms = '5000';
    const { body, errors } = bodyFromForm(f);
    expect(errors).toEqual({});
    expect(body).toEqual({
      name: 'ops', type: 'webhook', enabled: true,
      config: { timeout_ms: 5000, url: 'https://example.com/h?t=1', format: 'alertmanager',
                secret: 's3', headers: { Authorization: 'Bearer x' } },
    });
  });
  it('email: addresses split, STARTTLS only for smtp://', () => {
    const f = form('email', { smtp_url: 'smtps://mail.example.com:465', from: 'a@example.com',
                              to: 'b@example.com,\n c@example.com' });
    const { body } = bodyFromForm(f);
    expect(body.config).toEqual({ smtp_url: 'smtps://mail.example.com:465', from: 'a@example.com',
                                  to: ['b@example.com', 'c@example.com'] });
    f.values.smtp_url = 'smtp://mail.example.com:587';
    expect(bodyFromForm(f).body.config.starttls).toBe(true);
  });
  it('in_app and slack', () => {
    expect(bodyFromForm(form('in_app')).body).toEqual({ name: 'ops', type: 'in_app', config: {}, enabled: true });
    const s = bodyFromForm(form('slack', { webhook_url: 'https://hooks.slack.com/services/T/B/x' }));
    expect(s.body.config).toEqual({ webhook_url: 'https://hooks.slack.com/services/T/B/x' });
  });
  it('every type has fields with labels and help', () => {
    for (const t of Object.values(TYPES))
      for (const fd of t.fields) expect(fd.label && fd.help).toBeTruthy();
  });
});

describe('checks before sending', () => {
  it('required fields, URLs, addresses, numbers', () => {
    const f = form('email', { smtp_url: 'http://x', from: 'nope', to: '' }, '');
    f.timeout_ms = '99';
    const { body, errors } = bodyFromForm(f);
    expect(body).toBeNull();
    expect(Object.keys(errors).sort()).toEqual(['from', 'name', 'smtp_url', 'timeout_ms', 'to']);
    expect(errors.smtp_url).toMatch(/smtp:\/\/ or smtps:\/\//);
  });
  it('a password needs a user name', () => {
    const f = form('email', { smtp_url: 'smtp://m.example.com', from: 'a@b.c', to: 'd@e.f', password: 'pw' });
    expect(bodyFromForm(f).errors.username).toBe('is required with a password');
  });
  it('header names: tokens, not reserved, not twice', () => {
    const f = form('webhook', { url: 'https://example.com/' });
    f.values.headers = [{ ...newHeader('Content-Type'), value: 'x' }];
    expect(bodyFromForm(f).errors.headers).toMatch(/set by tokentap/);
    f.values.headers = [{ ...newHeader('X-A'), value: '1' }, { ...newHeader('x-a'), value: '2' }];
    expect(bodyFromForm(f).errors.headers).toMatch(/twice/);
    f.values.headers = [{ ...newHeader('bad name'), value: '1' }];
    expect(bodyFromForm(f).errors.headers).toMatch(/not a header name/);
  });
  it('a secret is required for a new channel', () => {
    expect(bodyFromForm(form('pagerduty')).errors.routing_key).toBe('is required');
  });
});

describe('editing keeps secrets', () => {
  const ch = {
    id: 7, name: 'hook', type: 'webhook', enabled: true,
    config: { url: 'https://example.com/' + REDACTED, secret: REDACTED, format: 'tokentap',
              headers: { Authorization: REDACTED }, timeout_ms: 10000, min_interval_ms: 0 },
  };
  it('the form shows no secret and remembers which are stored', () => {
    const f = formFromChannel(ch);
    expect(f.values.secret).toBe('');
    expect(f.stored.secret).toBe(true);
    expect(f.values.url).toBe('https://example.com/' + REDACTED);
    expect(f.values.headers.map((h) => [h.name, h.value, h.stored])).toEqual([['Authorization', '', true]]);
  });
  it('an unchanged edit leaves secrets out (the API keeps them)', () => {
    const f = formFromChannel(ch);
    f.name = 'hook 2';
    const { body, errors } = bodyFromForm(f);
    expect(errors).toEqual({});
    expect(body).toEqual({ name: 'hook 2', config: {
      timeout_ms: 10000, min_interval_ms: 0, format: 'tokentap', headers: { Authorization: REDACTED } } });
  });
  it('a new secret is sent, a removed one is null', () => {
    const f = formFromChannel(ch);
    f.values.secret = 'new';
    expect(bodyFromForm(f).body.config.secret).toBe('new');
    f.clear.secret = true;
    expect(bodyFromForm(f).body.config.secret).toBeNull();
  });
  it('a new destination needs the secrets again', () => {
    const f = formFromChannel(ch);
    f.values.url = 'https://other.example.com/x';
    expect(destinationMoved(f)).toBe(true);
    const { errors } = bodyFromForm(f);
    expect(errors.secret).toMatch(/entered again/);
    expect(errors.headers).toMatch(/entered again/);
    f.values.url = 'https://example.com/other';
    expect(destinationMoved(f)).toBe(false);
  });
  it('a URL still holding ******** is refused', () => {
    const f = formFromChannel(ch);
    f.values.url = 'https://example.com:8443/' + REDACTED;
    expect(bodyFromForm(f).errors.url).toMatch(/whole URL/);
  });
  it('a Slack URL left empty is kept', () => {
    const f = formFromChannel({ id: 3, name: 's', type: 'slack',
                                config: { webhook_url: 'https://hooks.slack.com/' + REDACTED } });
    expect(f.views.webhook_url).toBe('https://hooks.slack.com/' + REDACTED);
    expect(bodyFromForm(f).body).toEqual({ name: 's', config: {} });
  });
});

describe('words', () => {
  it('API fields map to form fields', () => {
    expect(formField('config.to[1]')).toBe('to');
    expect(formField('config.headers.X-Key')).toBe('headers');
    expect(formField('name')).toBe('name');
    expect(formField('config')).toBe('_form');
    expect(formField(undefined)).toBe('_form');
  });
  it('summaries and outcomes', () => {
    expect(channelSummary({ type: 'email', config: { to: ['a@b'], smtp_url: 'smtp://m:25' } })).toBe('a@b via smtp://m:25');
    expect(channelSummary({ type: 'in_app', config: {} })).toBe('the inbox');
    expect(outcomeText({ status: 'sent', last_code: 200, channel_type: 'webhook',
                         tries: [{ outcome: 'sent', code: 200, latency_ms: 12 }] }))
      .toEqual({ ok: true, text: 'Delivered (HTTP 200, 12 ms)' });
    expect(outcomeText({ status: 'failed', last_error: 'connection refused', tries: [] }))
      .toEqual({ ok: false, text: 'Not delivered: connection refused' });
  });
  it('routes round-trip', () => {
    const r = routesFromApi({ critical: [2, 1], high: [], medium: [], low: [3], fallback: [4] });
    expect(r.critical.has(1)).toBe(true);
    expect(routesBody(r)).toEqual({ critical: [1, 2], high: [], medium: [], low: [3], fallback: [4] });
  });
  it('the bell label', () => {
    expect(unreadLabel(0).label).toBe('Inbox, no unread notifications');
    expect(unreadLabel(3)).toEqual({ label: 'Inbox, 3 unread', badge: '3' });
    expect(unreadLabel(100, true)).toEqual({ label: 'Inbox, 100+ unread', badge: '99+' });
  });
  it('the inbox signal', () => {
    const fn = vi.fn();
    addEventListener(INBOX_EVENT, fn);
    inboxChanged();
    expect(fn).toHaveBeenCalledTimes(1);
    removeEventListener(INBOX_EVENT, fn);
  });
});

describe('errorField', () => {
  it('reads the field back from the message', async () => {
    const { errorField } = await import('./channels.js');
    expect(errorField({ status: 400, code: 'invalid_field',
                        message: 'budgets[0].limit_usd must be a number above 0, got -5' }))
      .toEqual({ field: 'budgets[0].limit_usd', text: 'must be a number above 0, got -5' });
    expect(errorField({ status: 400, message: 'config.headers.X-A.b is redacted: send the value itself' }).field)
      .toBe('config.headers.X-A.b');
    expect(errorField({ status: 400, field: 'name', message: 'name must be 1 to 64 bytes' }))
      .toEqual({ field: 'name', text: 'must be 1 to 64 bytes' });
    expect(errorField({ status: 409, message: 'a channel of this workspace has that name' }))
      .toEqual({ field: null, text: 'a channel of this workspace has that name' });
  });
});
