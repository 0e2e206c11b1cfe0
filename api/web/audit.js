// Viewing audit: live sessions in progress, and who watched what (the
// server records every live viewing session).

import { api } from './api.js';
import { h, badge, fmtTime, fmtAgo, fmtDuration, clear } from './ui.js';

let els;
let timer = null;

export function initAudit(elements) {
  els = elements;
  els.device.addEventListener('change', load);
  els.refresh.addEventListener('click', load);
}

export function setAuditDevices(list) {
  const chosen = els.device.value;
  clear(els.device, h('option', { value: '' }, 'all devices'),
    list.map((d) => h('option', { value: d.id }, d.id)));
  if (list.some((d) => d.id === chosen)) els.device.value = chosen;
}

let caps = { live: true, views: true };

// setAuditCaps shows what the role may read: sessions in progress (live)
// and the history of viewing (views).
export function setAuditCaps(c) {
  caps = c;
  els.viewersPanel.hidden = !caps.live;
  els.viewsPanel.hidden = !caps.views;
  els.viewsNote.hidden = caps.views;
}

export function startAudit() {
  stopAudit();
  load();
  timer = setInterval(load, 5000);
}

export function stopAudit() {
  clearInterval(timer);
  timer = null;
}

async function load() {
  const device = els.device.value;
  try {
    const empty = Promise.resolve({ items: [] });
    const [viewers, views] = await Promise.all([caps.live ? api.viewers() : empty, caps.views ? api.views(device) : empty]);
    const now = Date.now();
    const active = (viewers.items || []).filter((v) => !device || v.device_id === device);
    els.viewersCount.textContent = String(active.length);
    clear(els.viewers, active.length
      ? active.map((v) => h('tr', { testid: 'viewer', title: v.node_id ? `served by node ${v.node_id}` : '' },
        h('td', {}, v.connected ? badge('CONNECTED', 'ok') : badge('CONNECTING', 'muted')),
        h('td', { class: 'device-id' }, v.device_id), h('td', {}, v.user), h('td', { class: 'mono' }, v.remote_addr),
        h('td', {}, [v.video, v.audio].filter(Boolean).join(' · ')),
        h('td', {}, fmtTime(v.started_at)), h('td', { class: 'num' }, fmtAgo(v.started_at, now)),
        h('td', { class: 'num' }, v.dropped_units ? h('span', { class: 'warn' }, String(v.dropped_units)) : '0')))
      : h('tr', { class: 'empty' }, h('td', { colspan: 8 }, 'Nobody is watching live.')));
    const items = views.items || [];
    els.viewsCount.textContent = String(items.length);
    clear(els.views, items.length
      ? items.map((v) => h('tr', {},
        h('td', {}, v.ended_at ? badge('ENDED', 'muted') : badge('WATCHING', 'live')),
        h('td', { class: 'device-id' }, v.device_id), h('td', {}, v.user), h('td', { class: 'mono' }, v.remote_addr),
        h('td', {}, fmtTime(v.started_at)), h('td', {}, v.ended_at ? fmtTime(v.ended_at) : '—'),
        h('td', { class: 'num' }, fmtDuration((v.ended_at ? new Date(v.ended_at) : now) - new Date(v.started_at))),
        h('td', {}, [v.video, v.audio].filter(Boolean).join(' · ')),
        h('td', {}, v.end_reason || ''),
        h('td', { class: 'mono small clip', title: v.recording_id }, v.recording_id)))
      : h('tr', { class: 'empty' }, h('td', { colspan: 10 }, 'No viewing sessions recorded.')));
    // Viewers of nodes that did not answer are missing: say so.
    const unreachable = viewers.unreachable_nodes || [];
    els.error.hidden = !unreachable.length;
    els.error.textContent = unreachable.length
      ? `Viewers of ${unreachable.includes('*') ? 'other nodes' : 'node ' + unreachable.join(', ')} are not listed: not answering now.` : '';
  } catch (err) {
    els.error.hidden = false;
    els.error.textContent = `Could not load the audit: ${err.message}`;
  }
}
