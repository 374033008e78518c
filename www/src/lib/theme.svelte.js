// Light or dark: the system's by default, or the one chosen in Settings
// (kept in localStorage: it is a preference, not a secret).
const KEY = 'tt-theme';

export const theme = $state({ choice: localStorage.getItem(KEY) || 'system' });

export function applyTheme() {
  const c = theme.choice;
  if (c === 'light' || c === 'dark') document.documentElement.dataset.theme = c;
  else delete document.documentElement.dataset.theme;
}

export function setTheme(choice) {
  theme.choice = choice;
  if (choice === 'system') localStorage.removeItem(KEY);
  else localStorage.setItem(KEY, choice);
  applyTheme();
}
