// Bar charts as inline SVG, drawn here: no library, no build step, and
// nothing the page's Content-Security-Policy refuses (no inline style; the
// look is in style.css, classes chart-*).

const NS = 'http://www.w3.org/2000/svg';

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c != null) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

// niceMax rounds a chart's top up to 1, 2 or 5 times a power of ten.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// barChart draws one bar per point: value(p) its height, label(p) under it
// (thinned out when there are many), tip(p) its tooltip. The bars carry
// data-value, so that tests and screen readers read what is drawn.
export function barChart(points, { value, label, tip, title, width = 640, height = 180 }) {
  const left = 40, right = 8, top = 10, bottom = 26;
  const w = width - left - right, hgt = height - top - bottom;
  const max = niceMax(Math.max(0, ...points.map(value)));
  const svg = s('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': title, 'data-testid': 'chart' },
    s('title', {}, title));
  for (const f of [0, 0.5, 1]) {
    const y = top + hgt - f * hgt;
    svg.append(s('line', { class: 'chart-grid', x1: left, x2: left + w, y1: y, y2: y }),
      s('text', { class: 'chart-axis', x: left - 6, y: y + 4, 'text-anchor': 'end' }, String(+(max * f).toFixed(2))));
  }
  const n = Math.max(points.length, 1);
  const slot = w / n, bw = Math.max(1, Math.min(40, slot * 0.7));
  const every = Math.ceil(n / Math.max(1, Math.floor(w / 56)));
  points.forEach((p, i) => {
    const v = value(p), bh = max ? (v / max) * hgt : 0;
    const x = left + i * slot + (slot - bw) / 2;
    svg.append(s('rect', { class: 'chart-bar', x, y: top + hgt - bh, width: bw, height: bh, 'data-value': v, 'data-label': label(p) },
      s('title', {}, tip(p))));
    if (i % every === 0) svg.append(s('text', { class: 'chart-axis', x: x + bw / 2, y: height - 8, 'text-anchor': 'middle' }, label(p)));
  });
  return svg;
}
