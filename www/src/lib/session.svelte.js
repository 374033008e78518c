// Who is logged in: the API's session cookie, asked of GET /api/v1/session.
import { api, setUnauthorizedHandler } from './api.js';

export const session = $state({ user: null, checked: false });

setUnauthorizedHandler(() => {
  session.user = null;
});

export async function checkSession() {
  try {
    session.user = await api('/api/v1/session');
  } catch {
    session.user = null;
  }
  session.checked = true;
  return session.user;
}

export async function login(key) {
  session.user = await api('/api/v1/session', { method: 'POST', body: { key } });
  session.checked = true;
  return session.user;
}

export async function logout() {
  try {
    await api('/api/v1/session', { method: 'DELETE' });
  } finally {
    session.user = null;
  }
}
