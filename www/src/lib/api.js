// The REST API from the browser: same origin, the session cookie (never a
// key in storage), and the header the API asks of cookie-authenticated
// changes.

export class ApiError extends Error {
  constructor(status, code, message, requestId, field) {
    super(message || code || 'HTTP ' + status);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
    this.field = field; // invalid_field: the path of the bad field
  }
}

let onUnauthorized = () => {};

/** Called with no arguments whenever the API answers 401. */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

/** fetch JSON: api('/api/v1/live/stats'), api(path, {method, body}). */
export async function api(path, { method = 'GET', body, signal } = {}) {
  const headers = { Accept: 'application/json', 'X-Requested-With': 'tokentap' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let r;
  try {
    r = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      signal,
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'tokentap is not reachable');
  }
  if (r.status === 204) return null;
  let data = null;
  const text = await r.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!r.ok) {
    const e = data && data.error ? data.error : {};
    if (r.status === 401) onUnauthorized();
    throw new ApiError(r.status, e.code, e.message, e.request_id, e.field);
  }
  return data;
}
