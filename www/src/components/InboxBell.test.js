import { flushSync, mount, unmount } from 'svelte';
import { afterEach, describe, expect, it, vi } from 'vitest';
import InboxBell from './InboxBell.svelte';
import { inboxChanged } from '../lib/channels.js';

function answer(n, next = null) {
  return { ok: true, status: 200, text: async () => JSON.stringify({ inbox: Array(n).fill({}), next_cursor: next }) };
}
const settle = () => new Promise((r) => setTimeout(r, 0));

describe('InboxBell', () => {
  afterEach(() => vi.unstubAllGlobals());
  it('shows the unread count and follows inboxChanged()', async () => {
    const fetch = vi.fn().mockResolvedValueOnce(answer(3)).mockResolvedValueOnce(answer(1));
    vi.stubGlobal('fetch', fetch);
    const target = document.createElement('div');
    const c = mount(InboxBell, { target });
    await settle();
    flushSync();
    const a = target.querySelector('a');
    expect(fetch.mock.calls[0][0]).toBe('/api/v1/notifications/inbox?unread=true&limit=100');
    expect(a.getAttribute('aria-label')).toBe('Inbox, 3 unread');
    expect(a.querySelector('.count').textContent).toBe('3');
    inboxChanged();
    await settle();
    flushSync();
    expect(a.getAttribute('aria-label')).toBe('Inbox, 1 unread');
    unmount(c);
  });
  it('asks again when the inbox changes while a count is on its way', async () => {
    let release;
    const first = new Promise((r) => (release = r));
    const fetch = vi.fn().mockReturnValueOnce(first).mockResolvedValueOnce(answer(0));
    vi.stubGlobal('fetch', fetch);
    const target = document.createElement('div');
    const c = mount(InboxBell, { target });
    flushSync(); // mounted: the first count is asked for
    inboxChanged(); // a row marked read while the first count is out
    release(answer(2));
    await settle();
    await settle();
    flushSync();
    expect(fetch).toHaveBeenCalledTimes(2);
    expect(target.querySelector('a').getAttribute('aria-label')).toBe('Inbox, no unread notifications');
    unmount(c);
  });
  it('says when there is nothing unread, and no badge', async () => {
    vi.stubGlobal('fetch', vi.fn().mockResolvedValue(answer(0)));
    const target = document.createElement('div');
    const c = mount(InboxBell, { target });
    await settle();
    flushSync();
    expect(target.querySelector('a').getAttribute('aria-label')).toBe('Inbox, no unread notifications');
    expect(target.querySelector('.count')).toBeNull();
    unmount(c);
  });
});
