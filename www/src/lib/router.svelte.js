// Client-side routes on the History API; nginx answers every unknown path
// with index.html, so deep links and reloads land here.

export const route = $state({ path: location.pathname, query: location.search });

export function navigate(path, { replace = false } = {}) {
  if (path === route.path + route.query) return;
  if (replace) history.replaceState({}, '', path);
  else history.pushState({}, '', path);
  const u = new URL(path, location.origin);
  route.path = u.pathname;
  route.query = u.search;
  window.scrollTo(0, 0);
}

addEventListener('popstate', () => {
  route.path = location.pathname;
  route.query = location.search;
});

/** Where the login page goes next: ?next= when it is a path of ours. */
export function nextPath(query) {
  const next = new URLSearchParams(query).get('next');
  return next && next.startsWith('/') && !next.startsWith('//') ? next : '/';
}

/** A click on an <a href="/..."> inside the app: route it here. */
export function linkHandler(e) {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey)
    return;
  const a = e.target.closest && e.target.closest('a[href]');
  if (!a || a.target || a.origin !== location.origin || a.hasAttribute('download'))
    return;
  if (a.pathname.startsWith('/api/') || a.pathname.startsWith('/ws/')) return;
  e.preventDefault();
  navigate(a.pathname + a.search);
}
