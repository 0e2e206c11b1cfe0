// DOM and formatting helpers. Everything is built with DOM calls (never
// innerHTML with data), so device ids, names and server messages can hold
// any character.

const SVG_NS = 'http://www.w3.org/2000/svg';

// h builds an element: h('button', {class: 'x', onclick: fn}, 'text', child).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  if (!attrs) return;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'testid') el.dataset.testid = v;
    else if (k in el && typeof v !== 'string' && k !== 'list') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

// Icons: 16x16 stroked paths (drawn here, so no icon font or CDN is needed).
const ICONS = {
  live: 'M8 8m-2 0a2 2 0 1 0 4 0a2 2 0 1 0 -4 0M4.5 4.5a5 5 0 0 0 0 7M11.5 4.5a5 5 0 0 1 0 7M2.4 2.4a8 8 0 0 0 0 11.2M13.6 2.4a8 8 0 0 1 0 11.2',
  film: 'M2 3h12v10H2zM5 3v10M11 3v10M2 6h3M2 10h3M11 6h3M11 10h3',
  list: 'M5 4h9M5 8h9M5 12h9M2 4h.01M2 8h.01M2 12h.01',
  muted: 'M2 6h3l4-3v10l-4-3H2zM11 6l4 4M15 6l-4 4',
  sound: 'M2 6h3l4-3v10l-4-3H2zM11.5 5.5a3.5 3.5 0 0 1 0 5M13.5 3.5a6.5 6.5 0 0 1 0 9',
  close: 'M4 4l8 8M12 4l-8 8',
  play: 'M5 3l8 5-8 5z',
  shield: 'M8 1.5l5.5 2v4c0 3.5-2.5 6-5.5 7-3-1-5.5-3.5-5.5-7v-4zM5.5 8l2 2 3-3.5',
  refresh: 'M13 3v3.5H9.5M3 13V9.5h3.5M12.6 6.5A5 5 0 0 0 3.6 5.5M3.4 9.5a5 5 0 0 0 9 1',
  copy: 'M5.5 5.5h8v8h-8zM10.5 5.5v-3h-8v8h3',
  signout: 'M6 2.5H3v11h3M10.5 5l3 3-3 3M13.5 8H6',
  expand: 'M2.5 6V2.5H6M10 2.5h3.5V6M13.5 10v3.5H10M6 13.5H2.5V10',
  download: 'M8 2v8M4.5 7L8 10.5 11.5 7M2.5 13.5h11',
  retry: 'M13 3v3.5H9.5M12.6 6.5A5 5 0 1 0 13 9',
};

export function icon(name, cls = 'icon') {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', '0 0 16 16');
  svg.setAttribute('class', cls);
  svg.setAttribute('aria-hidden', 'true');
  const p = document.createElementNS(SVG_NS, 'path');
  p.setAttribute('d', ICONS[name] || '');
  svg.append(p);
  return svg;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

// Times are shown in the browser's local time zone, to the second.
export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (isNaN(d)) return '—';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtClock(d = new Date()) {
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// fmtDuration: 0:42, 12:05, 1:02:03.
export function fmtDuration(ms) {
  if (ms == null || !isFinite(ms) || ms < 0) return '—';
  const s = Math.floor(ms / 1000);
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  return hh ? `${hh}:${pad(mm)}:${pad(ss)}` : `${mm}:${pad(ss)}`;
}

// fmtAgo: "12s", "4m 03s", "2h 15m", "3d 4h".
export function fmtAgo(iso, now = Date.now()) {
  const t = new Date(iso).getTime();
  if (!isFinite(t)) return '—';
  const s = Math.max(0, Math.floor((now - t) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

export function fmtBytes(n) {
  if (n == null) return '—';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function shortHash(hex) {
  if (!hex) return '—';
  return hex.length > 16 ? `${hex.slice(0, 8)}…${hex.slice(-6)}` : hex;
}

// toast shows a short message at the bottom of the screen.
let toastTimer;
export function toast(msg, kind = 'info') {
  let el = document.getElementById('toast');
  if (!el) {
    el = h('div', { id: 'toast', class: 'toast', role: 'status', 'aria-live': 'polite' });
    document.body.append(el);
  }
  el.textContent = msg;
  el.className = `toast toast-${kind} show`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove('show'), 2600);
}

// copyText copies to the clipboard (or, where the page is not a secure
// context, selects a field holding the text so Ctrl+C copies it).
export async function copyText(text, what = 'Value') {
  try {
    await navigator.clipboard.writeText(text);
    toast(`${what} copied`, 'ok');
  } catch {
    const field = h('textarea', { class: 'copy-field', readonly: true }, text);
    document.body.append(field);
    field.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch { /* not available */ }
    field.remove();
    toast(ok ? `${what} copied` : `Copy failed: ${text}`, ok ? 'ok' : 'warn');
  }
}

// hashButton shows a shortened hash; hover shows it in full, a click or
// Enter copies it.
export function hashButton(hex, label) {
  if (!hex) return h('span', { class: 'muted' }, '—');
  return h('button', { type: 'button', class: 'hash', title: `${label}: ${hex}\n(click to copy)`, dataset: { full: hex },
    'aria-label': `${label} ${hex}, copy`, onclick: () => copyText(hex, label) }, shortHash(hex));
}

export function badge(text, kind, attrs = {}) {
  return h('span', { class: `badge badge-${kind}`, ...attrs }, text);
}

export function stateBadge(state) {
  const kind = { live: 'live', complete: 'ok', interrupted: 'warn' }[state] || 'muted';
  return badge(state ? state.toUpperCase() : '?', kind, { testid: 'rec-state' });
}

// clear empties el, then appends children (arrays are flattened).
export function clear(el, ...children) { el.replaceChildren(); append(el, children); return el; }
