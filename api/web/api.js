// Thin wrappers over the bodycam JSON API (/api/v1). The session cookie set
// at sign-in authenticates every same-origin request; requests that change
// something also carry X-Bodycam-Console, without which the server answers
// 403 to cookie-authenticated writes.

export const CONSOLE_HEADER = { 'X-Bodycam-Console': '1' };

// ApiError carries the HTTP status and the server's message.
export class ApiError extends Error {
  constructor(status, message, response) {
    super(message);
    this.status = status;
    this.response = response;
  }
}

// Listeners told when any call answers 401 (the session expired or was
// revoked), so the console can return to the sign-in screen.
const unauthorizedListeners = new Set();
export function onUnauthorized(fn) { unauthorizedListeners.add(fn); }

async function errorFrom(res) {
  let msg = `${res.status} ${res.statusText}`.trim();
  try {
    const type = res.headers.get('Content-Type') || '';
    if (type.includes('json')) {
      const body = await res.json();
      if (body && body.error) msg = body.error;
    } else {
      const text = (await res.text()).trim();
      if (text) msg = text.slice(0, 300);
    }
  } catch { /* keep the status line */ }
  return new ApiError(res.status, msg, res);
}

// request sends one API request and returns the Response, throwing ApiError
// for any status outside 2xx. quiet401 leaves 401 to the caller (sign-in).
export async function request(method, path, { body, type, quiet401 = false, signal, keepalive } = {}) {
  const headers = {};
  if (method !== 'GET' && method !== 'HEAD') Object.assign(headers, CONSOLE_HEADER);
  let payload;
  if (body !== undefined) {
    if (type) {
      headers['Content-Type'] = type;
      payload = body;
    } else {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(body);
    }
  }
  let res;
  try {
    res = await fetch(path, { method, headers, body: payload, credentials: 'same-origin', cache: 'no-store', signal, keepalive });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'server unreachable (' + err.message + ')');
  }
  if (!res.ok) {
    const err = await errorFrom(res);
    if (res.status === 401 && !quiet401) unauthorizedListeners.forEach((fn) => fn(err));
    throw err;
  }
  return res;
}

export async function getJSON(path, opts) {
  const res = await request('GET', path, opts);
  return res.json();
}

export async function postJSON(path, body, opts) {
  const res = await request('POST', path, { ...opts, body });
  return res.status === 204 ? null : res.json();
}

export const api = {
  session: () => getJSON('/api/v1/session', { quiet401: true }),
  // signIn takes {user, password} or {token} (the bootstrap admin token).
  signIn: (credentials) => postJSON('/api/v1/session', credentials, { quiet401: true }),
  signOut: () => request('DELETE', '/api/v1/session', { quiet401: true }),
  // setPassword changes the signed-in user's own password (the session goes
  // on under a new cookie; API tokens and other sessions end).
  setPassword: (user, current, password) => postJSON('/api/v1/users/' + encodeURIComponent(user) + '/password', { current_password: current, password }),
  live: () => getJSON('/api/v1/live'),
  viewers: () => getJSON('/api/v1/live/viewers'),
  views: (device) => getJSON('/api/v1/live/views' + (device ? '?device=' + encodeURIComponent(device) : '')),
  devices: () => getJSON('/api/v1/devices'),
  recordings: (params) => getJSON('/api/v1/recordings?' + new URLSearchParams(params)),
  recording: (id) => getJSON('/api/v1/recordings/' + encodeURIComponent(id)),
  verify: (id) => postJSON('/api/v1/recordings/' + encodeURIComponent(id) + '/verify'),
  bookmarks: (id) => getJSON('/api/v1/recordings/' + encodeURIComponent(id) + '/bookmarks'),
  addBookmark: (id, offsetSeconds, note) => postJSON('/api/v1/recordings/' + encodeURIComponent(id) + '/bookmarks', { offset_seconds: offsetSeconds, note }),
  removeBookmark: (id, bookmark, reason) => postJSON('/api/v1/recordings/' + encodeURIComponent(id) + '/bookmarks/' + encodeURIComponent(bookmark) + '/remove', { reason }),
  // categories: the configured retention classes; setCategories replaces
  // a recording's (the whole set, with why).
  categories: () => getJSON('/api/v1/categories'),
  setCategories: async (id, categories, reason) =>
    (await request('PUT', '/api/v1/recordings/' + encodeURIComponent(id) + '/categories', { body: { categories, reason } })).json(),
  mediaURL: (id) => '/api/v1/recordings/' + encodeURIComponent(id) + '/media',
  // proxyURL: the review proxy (640×360, small), made when the recording closed.
  proxyURL: (id) => '/api/v1/recordings/' + encodeURIComponent(id) + '/media?rendition=proxy',
  clips: (id) => getJSON('/api/v1/recordings/' + encodeURIComponent(id) + '/clips'),
  redactions: (id) => getJSON('/api/v1/recordings/' + encodeURIComponent(id) + '/redactions'),
  addRedaction: (id, body) => postJSON('/api/v1/recordings/' + encodeURIComponent(id) + '/redactions', body),
  addClip: (id, fromSeconds, toSeconds) => postJSON('/api/v1/recordings/' + encodeURIComponent(id) + '/clips', { from_seconds: fromSeconds, to_seconds: toSeconds }),
  // thumbnails: one per segment, each with its time and URL (a job makes
  // them when the recording is closed); spriteIndex: the timeline
  // sprite's tiles and times; spriteURL: the sprite itself.
  thumbnails: (id) => getJSON('/api/v1/recordings/' + encodeURIComponent(id) + '/thumbnails'),
  spriteIndex: (id) => getJSON('/api/v1/recordings/' + encodeURIComponent(id) + '/sprite/index'),
  spriteURL: (id) => '/api/v1/recordings/' + encodeURIComponent(id) + '/sprite',
  // originalURL: an uploaded recording's file exactly as the recorder made it.
  originalURL: (id) => '/api/v1/recordings/' + encodeURIComponent(id) + '/original',
  uploads: (params) => getJSON('/api/v1/uploads?' + new URLSearchParams(params)),
  whepURL: (device) => '/api/v1/live/' + encodeURIComponent(device) + '/whep',
  // stats: the supervision dashboard over {from, to[, unit][, officer]};
  // statsCSVURL: one of its tables as a CSV download.
  stats: (params) => getJSON('/api/v1/stats?' + new URLSearchParams(params)),
  statsCSVURL: (table, params) => '/api/v1/stats.csv?' + new URLSearchParams({ table, ...params }),
  cases: () => getJSON('/api/v1/cases'),
  caseGet: (id) => getJSON(caseURL(id)),
  createCase: (body) => postJSON('/api/v1/cases', body),
  officers: () => getJSON('/api/v1/officers'),
  transitionCase: (id, to, reason) => postJSON(caseURL(id) + '/transition', { to, reason }),
  linkEvidence: (id, body) => postJSON(caseURL(id) + '/evidence', body),
  unlinkEvidence: (id, link, reason) => postJSON(caseURL(id) + '/evidence/' + encodeURIComponent(link) + '/unlink', { reason }),
  caseCustody: (id) => getJSON(caseURL(id) + '/custody'),
  caseExportURL: (id) => caseURL(id) + '/export',
  caseAuditURL: (id) => caseURL(id) + '/audit?format=pdf',
  recordingAuditURL: (id) => '/api/v1/recordings/' + encodeURIComponent(id) + '/audit?format=pdf',
};

function caseURL(id) { return '/api/v1/cases/' + encodeURIComponent(id); }
