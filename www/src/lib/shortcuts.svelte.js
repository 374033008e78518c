// Keyboard shortcuts: "g" then a letter goes to a page, "/" focuses the
// page's search box, "?" lists them all.  Pages add their own with
// addShortcut() while they are shown.  Keys typed into a field are the
// field's, never a shortcut.

export const shortcuts = $state({ list: [], overlay: false });

let pending = ''; // 'g' when a "g x" sequence has begun
let pendingTimer = 0;

/**
 * addShortcut({keys: 'g a', description, run}): returns a function that
 * removes it.  keys is one key ('?', 'j') or 'g' and a key.
 */
export function addShortcut(s) {
  shortcuts.list.push(s);
  return () => {
    // The list holds a proxy of s: find it by its function.
    const i = shortcuts.list.findIndex((x) => x.run === s.run);
    if (i >= 0) shortcuts.list.splice(i, 1);
  };
}

function typing(el) {
  if (!el) return false;
  const tag = el.tagName;
  return tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT' || el.isContentEditable;
}

/** The document's keydown listener. */
export function onKeydown(e) {
  if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
  if (typing(e.target)) return;
  const key = e.key;
  if (pending) {
    const seq = pending + ' ' + key;
    pending = '';
    clearTimeout(pendingTimer);
    const s = shortcuts.list.find((x) => x.keys === seq);
    if (s) {
      e.preventDefault();
      s.run();
    }
    return;
  }
  if (key === 'g' && shortcuts.list.some((x) => x.keys.startsWith('g '))) {
    pending = 'g';
    pendingTimer = setTimeout(() => (pending = ''), 1500);
    return;
  }
  const s = shortcuts.list.find((x) => x.keys === key);
  if (s) {
    e.preventDefault();
    s.run();
  }
}

/** Focus the page's search or filter box (marked data-search). */
export function focusSearch() {
  const el = document.querySelector('main [data-search]') ||
    document.querySelector('main input[type=search]');
  if (el) el.focus();
}
