// The supervision dashboard (GET /api/v1/stats): a period's numbers per
// unit and officer, cases by state and step, overdue cases, and day and
// week trends as charts; every table also as CSV. A supervisor sees their
// unit's (the server scopes), an auditor everything.

import { api } from './api.js';
import { h, clear, fmtTime } from './ui.js';
import { barChart } from './chart.js';

let els;
let shown = false;

const DAY = 86400000;
const isoDay = (t) => new Date(t).toISOString().slice(0, 10);

export function initDashboard(elements) {
  els = elements;
  // The last 7 days (UTC, as the server counts days), today included.
  const today = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate());
  els.from.value = isoDay(today - 6 * DAY);
  els.to.value = isoDay(today);
  els.form.addEventListener('submit', (ev) => { ev.preventDefault(); load(); });
}

// setDashboardCaps: a supervisor of a unit sees that unit only; the unit
// field is for those who see every unit.
export function setDashboardCaps({ unit }) {
  els.unitField.hidden = !!unit;
  els.unit.value = '';
  shown = false;
}

export function showDashboard() {
  if (!shown) load();
}

function params() {
  const p = { from: `${els.from.value}T00:00:00Z`, to: `${isoDay(Date.parse(els.to.value) + DAY)}T00:00:00Z` };
  if (els.unit.value.trim()) p.unit = els.unit.value.trim();
  if (els.officer.value.trim()) p.officer = els.officer.value.trim();
  return p;
}

const pct = (f) => (f == null ? '—' : `${(f * 100).toFixed(1)} %`);
const hrs = (f) => (f == null ? '—' : String(f));

function csvLink(table, p) {
  return h('a', { class: 'btn btn-sm btn-ghost', href: api.statsCSVURL(table, p), download: '', testid: `csv-${table}` }, 'CSV');
}

function panel(title, table, p, ...body) {
  return h('div', { class: 'panel', testid: `panel-${table}` },
    h('h2', { class: 'panel-title' }, title, h('span', { class: 'grow' }), table ? csvLink(table, p) : null), ...body);
}

function grid(head, rows, empty) {
  return h('div', { class: 'table-wrap table-scroll' }, h('table', { class: 'grid' },
    h('thead', {}, h('tr', {}, head.map((c) => h('th', {}, c)))),
    h('tbody', {}, rows.length ? rows : h('tr', { class: 'empty' }, h('td', { colspan: head.length }, empty)))));
}

const ROW_HEAD = ['Recordings', 'Hours', 'Ended silent', 'Live now', 'Silent on duty', 'Uploads pending', 'Stored ≤ 24 h',
  'Important, no case', 'Refusals', 'Verification failures', 'Overdue cases'];

function rowCells(r) {
  const cells = [['recordings', r.recordings], ['hours', r.hours_recorded], ['silent', r.silent_recordings], ['live', r.devices_live_now],
    ['silent-devices', r.devices_silent_on_duty], ['pending', r.uploads_pending], ['stored', pct(r.stored_within_24h_share)],
    ['important', r.important_in_no_case], ['refusals', r.refusals], ['verify', r.verification_failures], ['overdue', r.cases_overdue]];
  return cells.map(([k, v]) => h('td', { class: 'num', testid: `cell-${k}` }, String(v)));
}

function render(st, p) {
  const t = st.totals;
  const card = (key, label, value, hint) => h('div', { class: 'stat-card', testid: `stat-${key}`, title: hint },
    h('span', { class: 'stat-value' }, String(value)), h('span', { class: 'stat-label' }, label));
  const cards = h('div', { class: 'stat-cards', testid: 'stat-cards' },
    card('recordings', 'recordings', t.recordings, 'Recordings that started in the period'),
    card('hours', 'hours recorded', t.hours_recorded, 'Their whole lengths, in hours'),
    card('live', 'devices live now', st.devices.live_now, 'Devices recording now'),
    card('silent', 'devices silent on duty', st.devices.silent_on_duty, 'Devices whose recording ended because they fell silent (timeout, lost connection)'),
    card('pending', 'uploads pending', st.uploads.pending, 'Dock uploads being received now'),
    card('stored', 'stored within 24 h', pct(st.uploads.stored_within_24h_share), 'Of the recordings whose fate is known, those stored within 24 h of their end'),
    card('important', 'important, in no case', t.important_in_no_case, 'Recordings marked important that no case links'),
    card('refusals', 'refusals', t.refusals, 'Refused requests (ledger)'),
    card('verify', 'verification failures', t.verification_failures, 'Failed verifications of recordings'),
    card('overdue', 'overdue cases', st.cases.overdue.length, 'Cases in a step longer than its limit'));

  const trend = (points, what) => h('div', { class: 'chart-box', testid: `chart-${what}` },
    h('h3', { class: 'chart-title' }, `Hours recorded per ${what}`),
    barChart(points, { value: (q) => q.hours, label: (q) => (what === 'week' ? `w ${q.start.slice(5)}` : q.start.slice(5)),
      tip: (q) => `${what === 'week' ? 'week of ' : ''}${q.start}: ${q.recordings} recording${q.recordings === 1 ? '' : 's'}, ${q.hours} h`,
      title: `Hours recorded per ${what}` }),
    h('h3', { class: 'chart-title' }, `Recordings per ${what}`),
    barChart(points, { value: (q) => q.recordings, label: (q) => q.start.slice(5),
      tip: (q) => `${q.start}: ${q.recordings} recording${q.recordings === 1 ? '' : 's'}`, title: `Recordings per ${what}` }));

  const units = st.units.map((r) => h('tr', { testid: 'unit-row', dataset: { unit: r.unit } }, h('td', {}, r.unit || '(no unit)'), rowCells(r)));
  const officers = st.officers.map((r) => h('tr', { testid: 'officer-row', dataset: { officer: r.officer } },
    h('td', {}, r.officer), h('td', {}, r.unit || '—'), rowCells(r)));
  const byState = Object.entries(st.cases.by_state).map(([state, n]) => h('tr', { testid: 'state-row', dataset: { state } },
    h('td', {}, state.replace('_', ' ')), h('td', { class: 'num', testid: 'cell-cases' }, String(n))));
  const steps = st.cases.steps.map((s) => h('tr', { testid: 'step-row', dataset: { state: s.state } },
    h('td', {}, s.state.replace('_', ' ')), h('td', { class: 'num' }, hrs(s.limit_hours)), h('td', { class: 'num', testid: 'cell-left' }, String(s.left)),
    h('td', { class: 'num', testid: 'cell-mean' }, hrs(s.mean_hours)), h('td', { class: 'num' }, hrs(s.median_hours)),
    h('td', { class: 'num', testid: 'cell-open' }, String(s.open)), h('td', { class: 'num', testid: 'cell-overdue' }, s.overdue ? h('span', { class: 'warn' }, String(s.overdue)) : '0')));
  const overdue = st.cases.overdue.map((o) => h('tr', { testid: 'overdue-row', dataset: { case: o.case_id } },
    h('td', {}, o.case_id), h('td', {}, o.state.replace('_', ' ')), h('td', {}, o.officer), h('td', {}, o.unit || '—'),
    h('td', {}, fmtTime(o.since)), h('td', { class: 'num' }, String(o.hours_in_step)), h('td', { class: 'num' }, String(o.limit_hours))));

  clear(els.body,
    h('p', { class: 'muted small', testid: 'dash-scope' },
      `${st.unit ? `Unit ${st.unit}` : 'Every unit'}${st.officer ? `, officer ${st.officer}` : ''}: ${fmtTime(st.from)} to ${fmtTime(st.to)} (UTC days). `,
      'Live devices, pending uploads, cases by state and overdue cases are as of now.'),
    cards,
    h('div', { class: 'chart-row' },
      panel('Per day', 'trend_day', p, trend(st.trend.day, 'day')),
      panel('Per week', 'trend_week', p, trend(st.trend.week, 'week'))),
    panel('Units', 'units', p, grid(['Unit', ...ROW_HEAD], units, 'Nothing recorded in the period.')),
    panel('Officers', 'officers', p, grid(['Officer', 'Unit', ...ROW_HEAD], officers, 'Nothing recorded in the period.')),
    h('div', { class: 'chart-row' },
      panel('Cases by state', 'cases', p, grid(['State', 'Cases'], byState, 'No cases.')),
      panel('Time in each step', 'steps', p, grid(['Step', 'Limit (h)', 'Left in period', 'Mean (h)', 'Median (h)', 'In it now', 'Overdue'], steps, 'No steps.'))),
    panel('Overdue cases', 'overdue', p, grid(['Case', 'Step', 'Officer', 'Unit', 'In it since', 'Hours in it', 'Limit (h)'], overdue, 'No case is overdue.')));
}

async function load() {
  const p = params();
  els.error.hidden = true;
  els.refresh.disabled = true;
  try {
    render(await api.stats(p), p);
    shown = true;
  } catch (err) {
    els.error.hidden = false;
    els.error.textContent = `Could not load the dashboard: ${err.message}`;
  } finally {
    els.refresh.disabled = false;
  }
}
