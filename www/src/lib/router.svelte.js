// Client-side routes on the History API; nginx answers every unknown path
// with index.html, so deep links and reloads land here.

export const route = $state({ path: location.pathname, query: location.search });

export function navigate(path, { replace = false, scroll = true } = {}) {
  if (path === route.path + route.query) return;
  if (replace) history.replaceState({}, '', path);
  else history.pushState({}, '', path);
  const u = new URL(path, location.origin);
  route.path = u.pathname;
  route.query = u.search;
  if (scroll) window.scrollTo(0, 0);
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

/**
 * Match a route pattern ('/alerts/:id') against a path: the parameters
 * ({id: '42'}) or null.
 */
export function matchPath(pattern, path) {
  const a = pattern.split('/');
  const b = (path.length > 1 ? path.replace(/\/+$/, '') : path).split('/');
  if (a.length !== b.length) return null;
  const params = {};
  for (let i = 0; i < a.length; i++) {
    if (a[i].startsWith(':')) {
      if (!b[i]) return null;
      params[a[i].slice(1)] = decodeURIComponent(b[i]);
    } else if (a[i] !== b[i]) return null;
  }
  return params;
}

/** The query string as an object, and a way to replace parts of it. */
export function queryParams() {
  return Object.fromEntries(new URLSearchParams(route.query));
}
export function setQuery(changes, { replace = true } = {}) {
  const q = new URLSearchParams(route.query);
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined || v === null || v === '') q.delete(k);
    else q.set(k, v);
  }
  const s = q.toString();
  navigate(route.path + (s ? '?' + s : ''), { replace, scroll: false });
}
