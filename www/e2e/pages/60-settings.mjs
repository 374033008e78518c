// Settings: the theme (kept across a reload), quiet hours set and cleared
// through the form and checked with the API, an API key made in the UI
// that works until it is revoked in the UI, what a read-only user sees,
// and the keyboard shortcuts (the list, the ? overlay, g s).
import { assert, until } from '../harness.mjs';

export default async function settings(h) {
  const { page, args } = h;
  const dataTheme = () => page.evaluate(() => document.documentElement.dataset.theme ?? null);
  const asKey = async (key, path = '/api/v1/session') => {
    const r = await fetch(args.url + path, { headers: { Authorization: 'Bearer ' + key } });
    return { status: r.status, data: await r.json().catch(() => null) };
  };

  await h.check('settings: who is signed in', async () => {
    await h.go('/settings');
    await page.getByRole('heading', { name: 'Settings', level: 1 }).waitFor();
    const me = (await h.api('GET', '/api/v1/session')).data;
    await page.locator('[data-testid="me-role"]').waitFor();
    assert((await page.locator('[data-testid="me-role"]').innerText()) === me.role, 'role');
    assert((await page.locator('[data-testid="me-workspace"]').innerText()) === me.workspace, 'workspace');
    assert((await page.locator('[data-testid="me"]').innerText()).includes('Session ends'), 'no expiry');
  });

  await h.check('settings: the theme goes dark, survives a reload, and back to the system’s', async () => {
    assert((await page.isChecked('[data-testid="theme-system"]')), 'system is not the default');
    assert((await dataTheme()) === null, 'a theme is forced by default');
    await page.check('[data-testid="theme-dark"]');
    assert((await dataTheme()) === 'dark', 'data-theme is ' + (await dataTheme()));
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert(bg === 'rgb(15, 20, 26)', 'the page is not dark: ' + bg);
    await page.reload();
    await page.locator('[data-testid="theme-dark"]').waitFor();
    assert((await dataTheme()) === 'dark', 'after reload data-theme is ' + (await dataTheme()));
    assert(await page.isChecked('[data-testid="theme-dark"]'), 'dark not checked after reload');
    await page.check('[data-testid="theme-light"]');
    assert((await dataTheme()) === 'light', 'light');
    await page.check('[data-testid="theme-system"]');
    assert((await dataTheme()) === null, 'system still forces ' + (await dataTheme()));
    await page.reload();
    await page.locator('[data-testid="theme-system"]').waitFor();
    assert((await dataTheme()) === null && (await page.isChecked('[data-testid="theme-system"]')), 'system after reload');
  });

  await h.check('settings: quiet hours set through the form, then cleared', async () => {
    await h.api('DELETE', '/api/v1/quiet-hours');
    await page.reload();
    const state = page.locator('[data-testid="quiet-state"]');
    await state.waitFor();
    assert((await state.innerText()).includes('Off'), 'state: ' + (await state.innerText()));
    const zone = await page.evaluate(() => Intl.DateTimeFormat().resolvedOptions().timeZone);
    assert((await page.inputValue('#qh-tz')) === zone, 'the zone is not the browser’s ' + zone);
    // The same start and end is refused before it is sent.
    await page.fill('#qh-start', '08:00');
    await page.fill('#qh-end', '08:00');
    await page.click('[data-testid="quiet-save"]');
    await page.getByText('The end must differ from the start.').waitFor();
    assert(JSON.stringify((await h.api('GET', '/api/v1/quiet-hours')).data) === '{}', 'stored anyway');

    await page.fill('#qh-start', '23:15');
    await page.fill('#qh-end', '06:45');
    await page.selectOption('#qh-tz', 'America/New_York');
    await page.click('[data-testid="quiet-save"]');
    await page.locator('[data-testid="quiet"] [role="status"]', { hasText: 'Saved' }).waitFor();
    const q = (await h.api('GET', '/api/v1/quiet-hours')).data;
    assert(q.start === '23:15' && q.end === '06:45' && q.timezone === 'America/New_York', JSON.stringify(q));
    assert((await state.innerText()).includes('23:15 to 06:45 (America/New_York), across midnight'),
           'state: ' + (await state.innerText()));
    // What is stored is what a reload shows.
    await page.reload();
    await state.waitFor();
    assert((await page.inputValue('#qh-start')) === '23:15' && (await page.inputValue('#qh-tz')) === 'America/New_York',
           'the form does not show what is stored');

    await page.click('[data-testid="quiet-clear"]');
    await page.locator('[data-testid="quiet"] [role="status"]', { hasText: 'cleared' }).waitFor();
    assert(JSON.stringify((await h.api('GET', '/api/v1/quiet-hours')).data) === '{}', 'not cleared');
    assert((await state.innerText()).includes('Off'), 'state after clear: ' + (await state.innerText()));
  });

  await h.check('settings: an API key made here works until it is revoked here', async () => {
    const name = 'e2e-key-' + Date.now().toString(36);
    await page.fill('#key-name', name);
    await page.selectOption('#key-role', 'read');
    await page.click('[data-testid="key-create"]');
    const secretBox = page.locator('[data-testid="key-secret"]');
    await secretBox.waitFor();
    const secret = await secretBox.inputValue();
    assert(/^tt_[0-9a-f]{40}$/.test(secret), 'secret: ' + secret);
    assert(await page.getByText('it is shown this once').isVisible(), 'no warning');
    await page.click('[data-testid="key-copy"]');
    await page.locator('dialog [role="status"]', { hasText: /Copied|copy it/ }).waitFor();
    // It works, as the key it says it is.
    const who = await asKey(secret);
    assert(who.status === 200 && who.data.name === name && who.data.role === 'read', JSON.stringify(who));
    assert((await asKey(secret, '/api/v1/sessions')).status === 200, 'a read key cannot read');
    // Shown once: closing the dialog forgets it.
    await page.keyboard.press('Escape');
    await secretBox.waitFor({ state: 'detached' });
    assert(!(await page.content()).includes(secret), 'the secret is still in the page');
    const row = page.locator('[data-testid="key-list"] tbody tr', { hasText: name });
    await row.waitFor();
    assert((await row.getAttribute('data-prefix')) === secret.slice(0, 11), 'prefix');
    assert((await row.innerText()).toLowerCase().includes('read'), 'role not listed');
    // Revoke, through the confirmation.
    await row.getByRole('button', { name: 'Revoke ' + name }).click();
    const dlg = page.getByRole('dialog', { name: 'Revoke this key?' });
    await dlg.waitFor();
    assert((await dlg.innerText()).includes(name), 'the dialog does not name the key');
    await dlg.locator('[data-testid="key-revoke-confirm"]').click();
    await row.waitFor({ state: 'detached' });
    await until(async () => (await asKey(secret)).status === 401, { what: 'the revoked key to get 401' });
    const keys = (await h.api('GET', '/api/v1/keys')).data.keys;
    assert(!keys.some((k) => k.name === name), 'still listed by the API');
  });

  await h.check('settings: a read-only user sees quiet hours but cannot change them, and no keys', async () => {
    const made = await h.api('POST', '/api/v1/keys', { role: 'read', name: 'e2e-reader' });
    assert(made.status === 201, 'POST keys ' + made.status);
    await h.api('PUT', '/api/v1/quiet-hours', { start: '21:00', end: '06:00', timezone: 'Europe/Berlin' });
    const ctx = await h.browser.newContext({ viewport: { width: 1280, height: 800 } });
    try {
      const p = await ctx.newPage();
      await p.goto(args.url + '/login?next=/settings');
      await p.fill('#key', made.data.key);
      await p.click('button[type=submit]');
      await p.getByRole('heading', { name: 'Settings', level: 1 }).waitFor();
      await p.locator('[data-testid="quiet-state"]', { hasText: '21:00 to 06:00 (Europe/Berlin)' }).waitFor();
      assert(await p.isDisabled('#qh-start'), 'a reader can edit quiet hours');
      assert((await p.locator('[data-testid="quiet-save"]').count()) === 0, 'a reader has a save button');
      await p.locator('[data-testid="quiet-readonly"]').waitFor();
      await p.locator('[data-testid="keys-note"]').waitFor();
      assert((await p.locator('[data-testid="key-list"], [data-testid="key-form"]').count()) === 0, 'a reader sees keys');
    } finally {
      await ctx.close();
      await h.api('DELETE', '/api/v1/keys/' + made.data.id);
      await h.api('DELETE', '/api/v1/quiet-hours');
    }
  });

  await h.check('settings: the shortcuts are listed, the ? overlay opens and Escape closes it', async () => {
    const list = page.locator('[data-testid="shortcut-list"]');
    const text = await list.innerText();
    for (const s of ['Go to Settings', 'Go to Crosstalk', 'Show these shortcuts', 'Change the theme'])
      assert(text.includes(s), 'missing: ' + s);
    assert(!text.includes('Next session'), 'another page’s shortcut is listed');
    // On the crosstalk list its own j/k are in the overlay too.
    await h.go('/crosstalk');
    await page.getByRole('heading', { name: 'Crosstalk', level: 1 }).click();
    await page.keyboard.press('?');
    const overlay = page.locator('[data-testid="shortcuts"]');
    await overlay.waitFor({ state: 'visible' });
    assert((await overlay.innerText()).includes('Next session'), 'the page’s shortcut is not in the overlay');
    await page.keyboard.press('Escape');
    await overlay.waitFor({ state: 'hidden' });
    // g then s goes to settings.
    await page.keyboard.press('g');
    await page.keyboard.press('s');
    await page.waitForURL((u) => u.pathname === '/settings');
    await page.getByRole('heading', { name: 'Settings', level: 1 }).waitFor();
    // The crosstalk page's own keys went with it.
    const after = await list.innerText();
    assert(!after.includes('Next session'), 'a page’s shortcut outlived the page');
    assert(after.includes('Go to Settings'), 'the list lost the global shortcuts');
  });

  await h.check('settings: accessible, light and dark; screenshots', async () => {
    await page.locator('[data-testid="key-list"]').waitFor();
    await h.pageChecks('settings');
  });
}
