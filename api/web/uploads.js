// Uploads: the files workstations (docks, `bodycam dock`) send in from
// docked recorders, per workstation and device: in progress (offset of
// size, and the rate between two polls), stored (the recording it became),
// refused (why: a SHA-256 mismatch names both hashes), abandoned. Polled
// while shown. The server decides what each role lists: a dock its own, a
// supervisor the uploads of the unit's devices, admins and auditors all.

import { api } from './api.js';
import { h, badge, hashButton, fmtTime, fmtAgo, fmtBytes, fmtDuration, clear } from './ui.js';

const POLL_MS = 3000;
const STATES = ['receiving', 'finishing', 'stored', 'refused', 'abandoned'];
const IN_PROGRESS = new Set(['receiving', 'finishing']);

let els;
let hooks = {};
let timer = null;
let shown = false;
let loadToken = 0;
let readsRecordings = false; // this role may open a recording
let isDock = false;
// What the pickers offer: every dock and device seen (the list is
// filtered by the server, so a filtered answer must not shrink them).
const seenDocks = new Set();
const seenDevices = new Set();
// The previous poll's offset of each upload in progress, for its rate.
const samples = new Map(); // id -> {offset, at, rate}

export function initUploads(elements, h_ = {}) {
  els = elements;
  hooks = h_;
  clear(els.state, h('option', { value: '' }, 'any'), STATES.map((s) => h('option', { value: s }, s)));
  for (const el of [els.dock, els.device, els.state]) el.addEventListener('change', () => load());
  els.refresh.addEventListener('click', () => load());
}

// setUploadsCaps says what the signed-in role may do here: open
// recordings (supervisors, auditors), and whether it is a dock (which
// lists only its own uploads: no dock picker).
export function setUploadsCaps({ recordings, dock }) {
  readsRecordings = !!recordings;
  isDock = !!dock;
  els.dockField.hidden = isDock;
  els.intro.textContent = isDock
    ? 'The files this workstation uploaded: in progress, stored (with the recording each became), refused with why.'
    : 'Files workstations (docks) uploaded from docked recorders: in progress, stored, refused with why, abandoned.';
}

// setUploadDevices adds the registered devices to the device picker.
export function setUploadDevices(list) {
  for (const d of list || []) seenDevices.add(d.id);
  fillPicker(els.device, seenDevices, 'all devices');
}

// resetUploads forgets what a previous sign-in saw.
export function resetUploads() {
  stopUploads();
  seenDocks.clear();
  seenDevices.clear();
  samples.clear();
  for (const el of [els.dock, els.device, els.state]) el.value = '';
  fillPicker(els.dock, seenDocks, 'all workstations');
  fillPicker(els.device, seenDevices, 'all devices');
  clear(els.body);
  els.count.textContent = '';
}

export function startUploads() {
  stopUploads();
  shown = true;
  load();
  timer = setInterval(() => load({ quiet: true }), POLL_MS);
}

export function stopUploads() {
  shown = false;
  clearInterval(timer);
  timer = null;
}

function fillPicker(select, set, allLabel) {
  const chosen = select.value;
  const values = [...set].sort((a, b) => a.localeCompare(b));
  if (chosen && !set.has(chosen)) values.push(chosen);
  clear(select, h('option', { value: '' }, allLabel), values.map((v) => h('option', { value: v }, v)));
  select.value = chosen;
}

async function load({ quiet = false } = {}) {
  const my = ++loadToken;
  const params = { limit: '500' };
  if (!isDock && els.dock.value) params.dock = els.dock.value;
  if (els.device.value) params.device = els.device.value;
  if (els.state.value) params.state = els.state.value;
  if (!quiet && !els.body.childElementCount) clear(els.body, h('p', { class: 'empty-state muted' }, 'Loading…'));
  let body;
  try {
    body = await api.uploads(params);
  } catch (err) {
    if (my !== loadToken || !shown) return;
    showError(err);
    return;
  }
  if (my !== loadToken || !shown) return;
  els.error.hidden = true;
  render(body.items || [], Object.keys(params).length > 1);
}

function showError(err) {
  let msg = `Could not list uploads: ${err.message}.`;
  if (err.status === 503) msg = 'Dock upload is not configured on this server (its upload endpoints answer 503): nothing can be uploaded or listed.';
  else if (err.status === 403) msg = `Your role may not list uploads (${err.message}).`;
  else if (err.status === 0) msg = `The server is unreachable: the list below is from ${fmtTime(new Date().toISOString())} or earlier and is not updating.`;
  els.error.hidden = false;
  els.error.textContent = msg;
  if (!els.body.querySelector('[data-testid="upload"]')) clear(els.body);
}

// rateOf: bytes per second between this poll and the previous one, for an
// upload in progress (null until there are two polls to compare).
function rateOf(u, now) {
  if (!IN_PROGRESS.has(u.state)) { samples.delete(u.id); return null; }
  const prev = samples.get(u.id);
  let rate = prev ? prev.rate : null;
  if (prev && now > prev.at) {
    if (u.offset !== prev.offset) rate = Math.max(0, (u.offset - prev.offset) / ((now - prev.at) / 1000));
    else if (now - prev.changed > 2 * POLL_MS) rate = 0; // no byte for two polls: stalled
  }
  const changed = !prev || u.offset !== prev.offset ? now : prev.changed;
  samples.set(u.id, { offset: u.offset, at: now, rate, changed });
  return rate;
}

function render(items, filtered) {
  const now = Date.now();
  for (const u of items) { seenDocks.add(u.dock); seenDevices.add(u.device_id); }
  fillPicker(els.dock, seenDocks, 'all workstations');
  fillPicker(els.device, seenDevices, 'all devices');
  const alive = new Set(items.map((u) => u.id));
  for (const id of samples.keys()) if (!alive.has(id)) samples.delete(id);

  const counts = Object.fromEntries(STATES.map((s) => [s, 0]));
  for (const u of items) counts[u.state] = (counts[u.state] || 0) + 1;
  els.count.textContent = `${items.length} upload${items.length === 1 ? '' : 's'}`;
  clear(els.summary,
    summaryChip('In progress', counts.receiving + counts.finishing, 'info', 'in-progress'),
    summaryChip('Stored', counts.stored, 'ok', 'stored'),
    summaryChip('Refused', counts.refused, counts.refused ? 'bad' : 'muted', 'refused'),
    summaryChip('Abandoned', counts.abandoned, counts.abandoned ? 'warn' : 'muted', 'abandoned'));

  if (!items.length) {
    clear(els.body, h('div', { class: 'empty-state', testid: 'uploads-empty' },
      filtered
        ? [h('p', {}, h('strong', {}, 'No uploads match the filters.')), h('p', { class: 'muted' }, 'Choose another workstation, device or state, or clear the filters.')]
        : [h('p', {}, h('strong', {}, isDock ? 'This workstation has uploaded nothing yet.' : 'No uploads yet.')),
          h('p', { class: 'muted' }, isDock
            ? 'Files appear here as soon as bodycam dock starts sending them.'
            : 'A workstation (a dock account running bodycam dock, or any tus client) uploads a docked recorder\'s files; each one appears here from its first byte.')]));
    return;
  }

  // Per workstation, then per device; newest first within.
  const byDock = new Map();
  for (const u of items) {
    if (!byDock.has(u.dock)) byDock.set(u.dock, new Map());
    const devs = byDock.get(u.dock);
    if (!devs.has(u.device_id)) devs.set(u.device_id, []);
    devs.get(u.device_id).push(u);
  }
  const docks = [...byDock.keys()].sort((a, b) => a.localeCompare(b));
  clear(els.body, docks.map((dock) => dockPanel(dock, byDock.get(dock), now)));
}

function summaryChip(label, n, kind, key) {
  return h('span', { class: `summary-chip summary-${kind}`, testid: `uploads-${key}`, dataset: { n: String(n) } },
    h('strong', {}, String(n)), ' ', label.toLowerCase());
}

function dockPanel(dock, devs, now) {
  const devices = [...devs.keys()].sort((a, b) => a.localeCompare(b));
  const all = devices.flatMap((d) => devs.get(d));
  const active = all.filter((u) => IN_PROGRESS.has(u.state));
  const rates = active.map((u) => samples.get(u.id)?.rate).filter((r) => r != null);
  const total = rates.reduce((a, b) => a + b, 0);
  return h('section', { class: 'panel uploads-dock', testid: 'uploads-station', dataset: { dock } },
    h('h2', { class: 'panel-title' }, 'Workstation ', h('span', { class: 'mono' }, dock),
      h('span', { class: 'count' }, String(all.length)),
      active.length ? h('span', { class: 'muted small' }, `${active.length} in progress${rates.length ? ` · ${fmtRate(total)}` : ''}`) : null),
    h('div', { class: 'table-wrap' }, h('table', { class: 'grid uploads' },
      h('thead', {}, h('tr', {}, ['State', 'File', 'Progress', 'Rate', 'Recorded', 'Result', 'Updated'].map((t) => h('th', {}, t)))),
      h('tbody', {}, devices.map((d) => [
        h('tr', { class: 'group', testid: 'uploads-device-group', dataset: { device: d } },
          h('td', { colspan: 7 }, 'Device ', h('span', { class: 'device-id' }, d), ' ', h('span', { class: 'muted small' }, countText(devs.get(d))))),
        devs.get(d).map((u) => uploadRow(u, now)),
      ])))));
}

function countText(list) {
  const n = (s) => list.filter((u) => s.includes(u.state)).length;
  const parts = [[n(['receiving', 'finishing']), 'in progress'], [n(['stored']), 'stored'], [n(['refused']), 'refused'], [n(['abandoned']), 'abandoned']];
  return parts.filter(([k]) => k).map(([k, t]) => `${k} ${t}`).join(' · ');
}

const STATE_KIND = { receiving: 'info', finishing: 'info', stored: 'ok', refused: 'bad', abandoned: 'warn' };

function uploadRow(u, now) {
  const rate = rateOf(u, now);
  const pct = u.size > 0 ? Math.min(100, (u.offset / u.size) * 100) : 0;
  const progressing = IN_PROGRESS.has(u.state);
  const progress = h('div', { class: 'upload-progress' },
    h('progress', { max: String(u.size || 1), value: String(Math.min(u.offset || 0, u.size || 0)), testid: 'upload-progress',
      'aria-label': `${u.file_name}: ${fmtBytes(u.offset)} of ${fmtBytes(u.size)}` }),
    h('span', { class: 'mono small' }, `${fmtBytes(u.offset)} / ${fmtBytes(u.size)}`, progressing ? ` · ${pct.toFixed(pct < 10 ? 1 : 0)}%` : ''));
  let rateCell = h('span', { class: 'muted' }, '—');
  if (progressing && u.state === 'finishing') rateCell = h('span', { class: 'muted', title: 'Every byte is in: the server hashes and stores the file' }, 'hashing…');
  else if (progressing && rate === 0) rateCell = h('span', { class: 'warn', title: `No byte since ${fmtTime(u.updated_at)}` }, 'stalled');
  else if (progressing && rate != null) {
    const eta = rate > 0 ? ((u.size - u.offset) / rate) * 1000 : null;
    rateCell = h('span', { class: 'mono', title: eta != null ? `about ${fmtDuration(eta)} left at this rate` : '' }, fmtRate(rate),
      eta != null ? h('span', { class: 'muted small' }, ` · ${fmtDuration(eta)} left`) : null);
  } else if (progressing) rateCell = h('span', { class: 'muted', title: 'The rate shows from the next poll' }, 'measuring…');

  return h('tr', { testid: 'upload', class: u.state === 'refused' ? 'row-bad-soft' : '', dataset: { upload: u.id, state: u.state, device: u.device_id, dock: u.dock } },
    h('td', {}, badge(u.state, STATE_KIND[u.state] || 'muted', { testid: 'upload-state' })),
    h('td', { class: 'upload-file' },
      h('span', { class: 'mono', testid: 'upload-file', title: `upload ${u.id}` }, u.file_name),
      u.important ? h('span', { class: 'important', title: 'Marked important on the recorder', testid: 'upload-important' }, ' ★') : null),
    h('td', {}, progress),
    h('td', { class: 'num' }, rateCell),
    h('td', { class: 'small' }, recorded(u)),
    h('td', { class: 'detail-cell', testid: 'upload-result' }, result(u)),
    h('td', { class: 'small', title: fmtTime(u.updated_at) }, `${fmtAgo(u.updated_at, now)} ago`));
}

function recorded(u) {
  if (!u.started_at) return h('span', { class: 'muted', title: 'The dock gave no recorded time (or the file said none yet)' }, '—');
  const source = { file: 'from the file', given: 'given by the dock', received: 'time of upload' }[u.time_source] || u.time_source || '';
  return h('span', { title: source ? `Recorded time ${source}` : '' }, fmtTime(u.started_at),
    u.ended_at && u.ended_at !== u.started_at ? h('span', { class: 'muted' }, ` · ${fmtDuration(new Date(u.ended_at) - new Date(u.started_at))}`) : null);
}

function result(u) {
  switch (u.state) {
    case 'stored': {
      const rec = readsRecordings && hooks.openRecording
        ? h('button', { type: 'button', class: 'link mono', testid: 'upload-recording', title: `Open recording ${u.recording_id} in Recordings`,
          onclick: () => hooks.openRecording(u.recording_id) }, u.recording_id)
        : h('span', { class: 'mono', testid: 'upload-recording', title: 'Admins and docks read no evidence: open it as a supervisor or auditor' }, u.recording_id);
      return ['Recording ', rec, ' · SHA-256 ', hashButton(u.sha256, 'SHA-256 of the stored file')];
    }
    case 'refused':
      return [h('p', { class: 'bad', testid: 'upload-reason', title: u.reason }, withHashes(u.reason || 'refused', u)),
        h('p', { class: 'small muted' }, 'Nothing was stored; the dock may send it again or delete it.')];
    case 'abandoned':
      return h('span', { class: 'warn', testid: 'upload-reason', title: u.reason }, withHashes(u.reason || 'abandoned: no byte came for too long', u));
    case 'finishing':
      return h('span', { class: 'muted' }, 'every byte is in: hashing and storing');
    default:
      return h('span', { class: 'muted' }, 'declared SHA-256 ', hashButton(u.sha256, 'Declared SHA-256'));
  }
}

// withHashes shows the server's reason with each SHA-256 in it as a
// shortened hash (hover for all of it, click to copy).
function withHashes(text, u) {
  const label = (hex) => (hex === u.sha256 ? 'Declared SHA-256' : hex === u.received_sha256 ? 'Received SHA-256' : 'SHA-256');
  return text.split(/([0-9a-f]{64})/).map((part, i) => (i % 2 ? hashButton(part, label(part)) : part));
}

function fmtRate(bps) {
  if (bps == null) return '—';
  return `${fmtBytes(Math.round(bps))}/s`;
}
