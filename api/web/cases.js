// Cases: the list of cases this user may read, filing a new one, and one
// case's workflow (a stepper with who, when and why per step), its evidence
// links (removed ones kept, struck through, with who and why), its custody
// excerpt and its court export.

import { api } from './api.js';
import { h, icon, badge, fmtTime, clear, toast } from './ui.js';
import { openSync } from './sync.js';
import { downloadLink } from './copies.js';
import { sharesSection } from './shares.js';

// The workflow, in order; no step can be skipped or undone.
export const STATES = ['filed', 'investigating', 'under_review', 'decided', 'closed', 'archived'];
const STATE_KIND = { filed: 'info', investigating: 'warn', under_review: 'warn', decided: 'ok', closed: 'muted', archived: 'muted' };
const label = (s) => (s || '').replace(/_/g, ' ');

export function caseBadge(state, attrs = {}) {
  return badge(label(state) || '?', STATE_KIND[state] || 'muted', attrs);
}

let els;
let caps = { cases: false, fileCase: false, changeCase: false };
let onOpenRecording = () => {};
let current = null; // the open case's id
let listToken = 0;
let openToken = 0;

export function initCases(elements, { openRecording } = {}) {
  els = elements;
  if (openRecording) onOpenRecording = openRecording;
  els.refresh.addEventListener('click', () => { loadList(); if (current) openCase(current, { quiet: true }); });
  els.newBtn.addEventListener('click', () => toggleNew());
  els.newCancel.addEventListener('click', () => toggleNew(false));
  els.newForm.addEventListener('submit', createCase);
}

// setCasesCaps shows what the role may do: admins read no evidence (a note
// instead), auditors read, officers and supervisors file and change.
export function setCasesCaps(c, role) {
  caps = c;
  els.note.hidden = caps.cases;
  els.note.textContent = caps.cases ? '' : `Your role (${role}) has no access to cases: they hold evidence, which officers, supervisors and auditors read.`;
  els.body.hidden = !caps.cases;
  els.newBtn.hidden = !caps.fileCase;
  els.officerField.hidden = role !== 'supervisor';
  clear(els.officers);
  if (role === 'supervisor') loadOfficers();
  if (!caps.fileCase) toggleNew(false);
  closeCase();
  clear(els.list);
  els.count.textContent = '';
}

// loadOfficers offers the supervisor's officers (their unit's) as choices
// for the officer in charge; typing an id still works.
async function loadOfficers() {
  try {
    const { items } = await api.officers();
    clear(els.officers);
    for (const o of items) {
      const who = [o.name, o.badge_number && `badge ${o.badge_number}`, o.unit && `unit ${o.unit}`].filter(Boolean).join(' · ');
      els.officers.append(h('option', { value: o.id, label: who || o.id }));
    }
  } catch {
    // Typing the id still works; the server checks it.
  }
}

export function showCases() {
  if (!caps.cases) return;
  loadList();
  if (current) openCase(current, { quiet: true });
}

function toggleNew(show = els.newPanel.hidden) {
  els.newPanel.hidden = !show;
  els.newError.hidden = true;
  els.newBtn.setAttribute('aria-expanded', String(show));
  if (show) els.newId.focus();
}

async function loadList() {
  const my = ++listToken;
  try {
    const body = await api.cases();
    if (my !== listToken) return;
    renderList(body.items || []);
  } catch (err) {
    if (my !== listToken) return;
    clear(els.list, h('tr', { class: 'empty error' }, h('td', { colspan: 6 }, `Could not list cases: ${err.message}`)));
  }
}

function renderList(items) {
  els.count.textContent = `${items.length} case${items.length === 1 ? '' : 's'}`;
  if (!items.length) {
    clear(els.list, h('tr', { class: 'empty' }, h('td', { colspan: 6 },
      caps.fileCase ? 'No cases yet: file one with New case.' : 'No cases you may read.')));
    return;
  }
  clear(els.list, items.map((c) => {
    const row = h('tr', { testid: 'case-item', dataset: { case: c.id, state: c.state }, class: c.id === current ? 'selected' : '' },
      h('td', {}, caseBadge(c.state)),
      h('td', {}, h('button', { type: 'button', class: 'link mono', title: `Open case ${c.id}`, onclick: () => openCase(c.id) }, c.id)),
      h('td', { class: 'clip title', title: c.title }, c.title || h('span', { class: 'muted' }, 'untitled')),
      h('td', {}, c.officer || '—'),
      h('td', {}, c.unit || h('span', { class: 'muted' }, '—')),
      h('td', { class: 'mono' }, fmtTime(c.updated_at || c.created_at)));
    row.addEventListener('click', (ev) => { if (!ev.target.closest('button')) openCase(c.id); });
    return row;
  }));
}

async function createCase(ev) {
  ev.preventDefault();
  const body = { id: els.newId.value.trim(), title: els.newTitle.value.trim() };
  const officer = els.newOfficer.value.trim();
  if (!els.officerField.hidden && officer) body.officer = officer;
  const members = els.newMembers.value.split(/[\s,]+/).filter(Boolean);
  if (members.length) body.members = members;
  const showErr = (msg) => { els.newError.hidden = false; els.newError.textContent = msg; };
  if (!body.id) { showErr('Give the case an id (letters, digits, . _ -).'); els.newId.focus(); return; }
  if (!els.officerField.hidden && !officer) { showErr('Name the officer in charge (an officer of your unit).'); els.newOfficer.focus(); return; }
  els.newSubmit.disabled = true;
  try {
    const c = await api.createCase(body);
    els.newForm.reset();
    toggleNew(false);
    toast(`Case ${c.id} filed`, 'ok');
    await loadList();
    openCase(c.id);
  } catch (err) {
    const why = { 400: 'Refused', 403: 'Not allowed', 409: 'Conflict' }[err.status];
    showErr(why ? `${why}: ${err.message}` : `Could not file the case: ${err.message}`);
  } finally {
    els.newSubmit.disabled = false;
  }
}

// openCase shows one case: its workflow, evidence, custody and export.
export async function openCase(id, { quiet = false } = {}) {
  const my = ++openToken;
  current = id;
  for (const tr of els.list.querySelectorAll('tr[data-case]')) tr.classList.toggle('selected', tr.dataset.case === id);
  els.detail.hidden = false;
  if (!quiet) clear(els.detail, h('div', { class: 'panel-pad muted' }, `Loading case ${id}…`));
  let c;
  try {
    c = await api.caseGet(id);
  } catch (err) {
    if (my !== openToken) return;
    clear(els.detail, h('div', { class: 'panel-pad error' }, `Could not open case ${id}: ${err.message}`));
    return;
  }
  if (my !== openToken) return;
  const custodyOpen = !!els.detail.querySelector('[data-testid="case-custody-section"]');
  renderDetail(c);
  if (custodyOpen) showCustody(c);
  if (!quiet) els.detail.scrollIntoView({ block: 'start' });
}

function closeCase() {
  current = null;
  openToken++;
  els.detail.hidden = true;
  clear(els.detail);
  for (const tr of els.list.querySelectorAll('tr.selected')) tr.classList.remove('selected');
}

export function handleCasesEscape() {
  if (!els.detail.hidden) { closeCase(); return true; }
  return false;
}

function renderDetail(c) {
  const exportURL = api.caseExportURL(c.id);
  const custodyBtn = h('button', { type: 'button', class: 'btn', testid: 'case-custody',
    title: 'The custody ledger\'s events about this case and its recordings', onclick: () => showCustody(c) }, icon('list'), 'Custody');
  const header = h('div', { class: 'detail-head' },
    h('div', { class: 'detail-title' },
      caseBadge(c.state, { testid: 'case-state', dataset: { state: c.state } }),
      h('h3', { class: 'mono' }, c.id),
      c.title ? h('span', { class: 'case-title-text', title: c.title }, c.title) : null),
    h('div', { class: 'detail-actions' },
      custodyBtn,
      (c.evidence || []).some((l) => l.active)
        ? h('button', { type: 'button', class: 'btn', testid: 'case-sync', title: "The case's recordings side by side, played together by their recorded times",
          onclick: () => openSync(`case ${c.id}`, [...new Set((c.evidence || []).filter((l) => l.active).map((l) => l.recording_id))], { onOpenRecording }) },
        icon('play'), 'Play together')
        : null,
      downloadLink('case', c.id, { testid: 'case-export', href: exportURL, download: `case-${c.id}.zip`,
        title: 'The court export: a zip checked offline with `bodycam verify` (recorded in the custody ledger)' }, 'Export'),
      h('a', { class: 'btn', testid: 'case-audit', href: api.caseAuditURL(c.id), download: `audit-case-${c.id}.pdf`,
        title: 'The audit report: the case\'s custody history as a signed PDF (README, "Audit reports")' }, icon('list'), 'Audit report'),
      h('button', { type: 'button', class: 'btn', title: 'Reload the case', onclick: () => openCase(c.id, { quiet: true }) }, icon('refresh'), 'Reload'),
      h('button', { type: 'button', class: 'btn btn-ghost btn-icon', 'aria-label': 'Close the case', title: 'Close (Esc)', onclick: closeCase }, icon('close'))));

  clear(els.detail,
    header,
    h('div', { class: 'case-body' },
      h('dl', { class: 'facts' },
        fact('Officer in charge', c.officer || '—'), fact('Unit', c.unit || '—'),
        fact('Members', (c.members || []).length ? c.members.join(', ') : '—'),
        fact('Filed', `${fmtTime(c.created_at)}${c.created_by ? ` by ${c.created_by}` : ''}`),
        fact('Updated', fmtTime(c.updated_at))),
      workflowSection(c)),
    evidenceSection(c),
    sharesSection(c, { canShare: caps.changeCase }));
}

function fact(k, v) { return [h('dt', {}, k), h('dd', {}, v)]; }

// The stepper: every state of the workflow, the ones reached with who
// moved the case there, when and why.
function workflowSection(c) {
  const at = STATES.indexOf(c.state);
  const steps = new Map((c.transitions || []).map((t) => [t.to, t]));
  const list = h('ol', { class: 'stepper', testid: 'case-steps' }, STATES.map((s, i) => {
    const t = steps.get(s);
    const status = i < at ? 'done' : i === at ? 'current' : 'todo';
    let who = null;
    let when = null;
    if (s === 'filed' && i <= at) { who = c.created_by || c.officer || ''; when = c.created_at; } else if (t) { who = t.by; when = t.at; }
    return h('li', { class: `step step-${status}`, testid: 'case-step', dataset: { state: s, status } },
      h('span', { class: 'step-mark', 'aria-hidden': 'true' }, i < at ? '✓' : String(i + 1)),
      h('div', { class: 'step-text' },
        h('strong', {}, label(s)),
        who ? h('span', { class: 'step-who small', title: `by ${who}` }, who) : null,
        when ? h('time', { class: 'step-when mono muted', datetime: when }, fmtTime(when)) : null,
        t && t.reason ? h('span', { class: 'step-why small', title: t.reason }, `“${t.reason}”`) : null));
  }));

  let move = null;
  if (c.next_state && caps.changeCase) {
    const reason = h('input', { type: 'text', testid: 'case-reason', placeholder: 'Why (required, kept forever)', maxlength: '1000',
      'aria-label': `Reason for moving to ${label(c.next_state)}` });
    const err = h('p', { class: 'form-error', testid: 'case-move-error', role: 'alert', hidden: true });
    const btn = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'case-move' }, 'Move to ', h('span', { testid: 'case-next' }, label(c.next_state)));
    move = h('form', { class: 'case-move', onsubmit: async (ev) => {
      ev.preventDefault();
      const why = reason.value.trim();
      if (!why) { err.hidden = false; err.textContent = 'Say why: every step of a case is recorded with its reason.'; reason.focus(); return; }
      btn.disabled = true;
      try {
        await api.transitionCase(c.id, c.next_state, why);
        toast(`Case ${c.id} moved to ${label(c.next_state)}`, 'ok');
        loadList();
        await openCase(c.id, { quiet: true });
      } catch (e) {
        err.hidden = false;
        err.textContent = e.status === 403 ? `Not allowed: ${e.message}`
          : e.status === 409 ? `Refused (out of order): ${e.message}` : `Could not move the case: ${e.message}`;
        btn.disabled = false;
      }
    } }, reason, btn, err);
  } else if (!c.next_state) {
    move = h('p', { class: 'muted small' }, 'The case is at the last step of its workflow.');
  }
  return h('section', { class: 'case-workflow' }, h('h4', {}, 'Workflow'), list, move);
}

function linkWindow(l) {
  if (!l.from && !l.to) return 'whole recording';
  return `${l.from ? fmtTime(l.from) : 'start'} → ${l.to ? fmtTime(l.to) : 'end'}`;
}

function evidenceSection(c) {
  const links = c.evidence || [];
  const active = links.filter((l) => l.active).length;
  const settled = c.state === 'closed' || c.state === 'archived';
  const rows = links.map((l) => {
    const open = h('button', { type: 'button', class: 'link mono', title: `Open ${l.recording_id} in Recordings`,
      onclick: () => onOpenRecording(l.recording_id) }, l.recording_id);
    let status;
    if (l.active) status = badge('linked', 'ok');
    else status = h('span', { class: 'unlinked' }, badge('removed', 'muted'),
      h('span', { class: 'small' }, ` by ${l.unlinked_by || '?'} · ${fmtTime(l.unlinked_at)}`),
      l.unlink_reason ? h('span', { class: 'small why', title: l.unlink_reason }, ` “${l.unlink_reason}”`) : null);
    const actions = h('td', { class: 'actions' });
    if (l.active && caps.changeCase) {
      actions.append(h('button', { type: 'button', class: 'btn btn-sm', testid: 'case-unlink', onclick: () => askUnlink(c, l, actions) }, 'Unlink'));
    }
    return h('tr', { testid: 'case-evidence-item', dataset: { link: l.id, recording: l.recording_id, active: String(!!l.active) }, class: l.active ? '' : 'row-removed' },
      h('td', {}, status),
      h('td', { class: 'struck' }, open),
      h('td', { class: 'struck' }, linkWindow(l)),
      h('td', { class: 'struck' }, l.linked_by, h('span', { class: 'muted small' }, ` · ${fmtTime(l.linked_at)}`)),
      h('td', { class: 'clip struck', title: l.note || '' }, l.note || h('span', { class: 'muted' }, '—')),
      actions);
  });
  const table = links.length
    ? h('div', { class: 'table-wrap' }, h('table', { class: 'grid', testid: 'case-evidence' },
      h('thead', {}, h('tr', {}, ['Status', 'Recording', 'Window', 'Linked by', 'Note', ''].map((t) => h('th', {}, t)))),
      h('tbody', {}, rows)))
    : h('p', { class: 'muted', testid: 'case-no-evidence' }, 'No evidence linked yet.');
  return h('section', { class: 'subsection', testid: 'case-evidence-section' },
    h('h4', {}, 'Evidence ', badge(String(active), active ? 'info' : 'muted'),
      links.length > active ? h('span', { class: 'muted hint' }, `${links.length - active} removed, kept on record ·`) : null,
      h('span', { class: 'muted hint' }, 'Linked recordings are on legal hold.')),
    table,
    caps.changeCase && !settled ? linkForm(c) : null,
    settled ? h('p', { class: 'muted small' }, `The case is ${label(c.state)}: its evidence is settled.`) : null);
}

// askUnlink turns the row's action cell into a reason field and a confirm.
function askUnlink(c, l, cell) {
  const reason = h('input', { type: 'text', testid: 'case-unlink-reason', placeholder: 'Why remove it (required)', maxlength: '1000' });
  const err = h('span', { class: 'error small', role: 'alert' });
  const confirm = h('button', { type: 'submit', class: 'btn btn-sm btn-danger', testid: 'case-unlink-confirm' }, 'Remove link');
  const form = h('form', { class: 'inline-form', onsubmit: async (ev) => {
    ev.preventDefault();
    const why = reason.value.trim();
    if (!why) { err.textContent = 'A reason is required.'; reason.focus(); return; }
    confirm.disabled = true;
    try {
      await api.unlinkEvidence(c.id, l.id, why);
      toast(`Link to ${l.recording_id} removed`, 'ok');
      await openCase(c.id, { quiet: true });
    } catch (e) {
      err.textContent = e.message;
      confirm.disabled = false;
    }
  } }, reason, confirm,
  h('button', { type: 'button', class: 'btn btn-sm btn-ghost', onclick: () => openCase(c.id, { quiet: true }) }, 'Cancel'), err);
  clear(cell, form);
  reason.focus();
}

let recordingsCache = null;
async function recordingOptions(datalist) {
  try {
    if (!recordingsCache) recordingsCache = (await api.recordings({ limit: '200' })).items || [];
    clear(datalist, recordingsCache.slice().sort((a, b) => new Date(b.started_at) - new Date(a.started_at))
      .map((r) => h('option', { value: r.id }, `${r.device_id} · ${fmtTime(r.started_at)} · ${r.state}`)));
  } catch { /* the id can still be pasted */ }
}

function linkForm(c) {
  recordingsCache = null; // fresh choices each time a case is shown
  const listID = `case-recordings-${Math.random().toString(36).slice(2)}`;
  const datalist = h('datalist', { id: listID });
  const rec = h('input', { type: 'text', list: listID, testid: 'case-link-recording', class: 'mono', placeholder: 'Pick or paste a recording id',
    spellcheck: 'false', autocomplete: 'off', 'aria-label': 'Recording to link' });
  const note = h('input', { type: 'text', testid: 'case-link-note', placeholder: 'Note (optional)', maxlength: '1000', 'aria-label': 'Note' });
  const err = h('p', { class: 'form-error', testid: 'case-link-error', role: 'alert', hidden: true });
  const btn = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'case-link' }, 'Link recording');
  rec.addEventListener('focus', () => recordingOptions(datalist), { once: true });
  recordingOptions(datalist);
  return h('form', { class: 'case-link-form', onsubmit: async (ev) => {
    ev.preventDefault();
    const id = rec.value.trim();
    if (!id) { err.hidden = false; err.textContent = 'Pick a recording, or paste its id.'; rec.focus(); return; }
    btn.disabled = true;
    try {
      const body = { recording_id: id };
      if (note.value.trim()) body.note = note.value.trim();
      await api.linkEvidence(c.id, body);
      toast(`${id} linked to ${c.id}`, 'ok');
      await openCase(c.id, { quiet: true });
    } catch (e) {
      err.hidden = false;
      err.textContent = e.status === 503 ? `Nothing linked: ${e.message}` : `Could not link: ${e.message}`;
      btn.disabled = false;
    }
  } }, rec, datalist, note, btn, err);
}

async function showCustody(c) {
  let section = els.detail.querySelector('[data-testid="case-custody-section"]');
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading the custody excerpt…'));
  const fresh = h('section', { class: 'subsection', testid: 'case-custody-section' },
    h('h4', {}, 'Custody ', h('span', { class: 'muted hint' },
      'An excerpt of the custody ledger, hash-chained to signed checkpoints (Ed25519, keys at /api/v1/keys): it is verifiable offline, and the Export includes it as custody.json.')),
    body);
  if (section) section.replaceWith(fresh); else els.detail.append(fresh);
  section = fresh;
  let x;
  try {
    x = await api.caseCustody(c.id);
  } catch (err) {
    clear(body, h('p', { class: 'error' }, `Could not read the custody excerpt: ${err.message}`));
    return;
  }
  const events = x.events || [];
  clear(body, events.length
    ? h('div', { class: 'table-wrap' }, h('table', { class: 'grid', testid: 'case-custody-table' },
      h('thead', {}, h('tr', {}, ['#', 'At', 'Actor', 'Action', 'Target', 'Outcome', 'Detail'].map((t) => h('th', {}, t)))),
      h('tbody', {}, events.map((e) => h('tr', { testid: 'custody-event', dataset: { action: e.action, outcome: e.outcome || 'ok' },
        class: e.outcome && e.outcome !== 'ok' ? 'row-warn' : '' },
        h('td', { class: 'num' }, String(e.seq)),
        h('td', { class: 'mono' }, fmtTime(e.at)),
        h('td', {}, e.actor, e.role ? h('span', { class: 'muted small' }, ` ${e.role}`) : null),
        h('td', {}, h('span', { class: 'mono' }, e.action)),
        h('td', { class: 'mono small' }, `${e.target_kind || ''}${e.target_kind ? ' ' : ''}${e.target_id || ''}`),
        h('td', {}, e.outcome && e.outcome !== 'ok' ? badge(e.outcome, 'warn') : badge(e.outcome || 'ok', 'ok')),
        h('td', { class: 'detail-cell', title: e.detail || '' }, e.detail || '')))))) 
    : h('p', { class: 'muted' }, 'No custody events.'),
  h('p', { class: 'muted small' }, `${events.length} event${events.length === 1 ? '' : 's'}; ${(x.checkpoints || []).length} signed checkpoint(s); anchored at #${x.anchor_seq ?? 0}.`));
  section.scrollIntoView({ block: 'nearest' });
}
