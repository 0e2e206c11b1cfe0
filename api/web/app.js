// The bodycam operations console: sign-in, then the live wall, recordings,
// the viewing audit, cases, dock uploads and the supervision dashboard. Plain ES modules, no build step; everything is
// served from the binary under the page's strict Content-Security-Policy.

import { api, onUnauthorized } from './api.js';
import { fmtClock, fmtAgo, toast } from './ui.js';
import { initLive, startLive, stopLive, closeAll, resetLive, setDevices, setLiveCaps } from './live.js';
import { initRecordings, setRecordingDevices, setRecordingCaps, refreshIfShown, handleEscape, openRecording } from './recordings.js';
import { closeSync } from './sync.js';
import { initCases, setCasesCaps, showCases, handleCasesEscape } from './cases.js';
import { initAudit, setAuditDevices, setAuditCaps, startAudit, stopAudit } from './audit.js';
import { initDashboard, setDashboardCaps, showDashboard } from './dashboard.js';
import { initUploads, setUploadsCaps, setUploadDevices, startUploads, stopUploads, resetUploads } from './uploads.js';
import { setCopyCaps, approvalsShown, initApprovals, showApprovals } from './copies.js';

const $ = (id) => document.getElementById(id);

// What each role may do, as the server enforces it: the console shows only
// what works for the one signed in (the server stays the authority; a 403
// still shows its reason).
const CAN = {
  live: ['supervisor', 'auditor', 'admin'], // who is live, sessions in progress
  watch: ['supervisor', 'auditor'], // WHEP
  views: ['supervisor', 'auditor'], // the viewing audit's history
  devices: ['supervisor', 'auditor', 'admin'],
  cases: ['officer', 'supervisor', 'auditor'], // admins read no evidence
  fileCase: ['officer', 'supervisor'],
  changeCase: ['officer', 'supervisor'], // the server decides which cases
  recordings: ['officer', 'supervisor', 'auditor'], // who reads footage
  bookmark: ['officer', 'supervisor'], // sets bookmarks (removes their own; a supervisor anyone's)
  uploads: ['supervisor', 'auditor', 'admin', 'dock'], // a dock its own, a supervisor its unit's
  dashboard: ['supervisor', 'auditor'], // a supervisor their unit's
};
const capsOf = (role) => Object.fromEntries(Object.entries(CAN).map(([k, roles]) => [k, roles.includes(role)]));

let view = null;
let caps = capsOf('');
let signedIn = false;
let who = null; // GET /api/v1/session's answer for the one signed in
let passwordForced = false; // the password view is shown because an admin set the password
let lastStatus = null;
let devicesTimer = null;
let mode = 'account';

function showSignIn(message, kind = 'error') {
  signedIn = false;
  passwordForced = false;
  stopLive();
  stopAudit();
  resetUploads();
  clearInterval(devicesTimer);
  closeAll('signed out');
  resetLive();
  $('boot').hidden = true;
  $('console-view').hidden = true;
  $('password-view').hidden = true;
  $('signin-view').hidden = false;
  const err = $('signin-error');
  err.hidden = !message;
  err.textContent = message || '';
  err.classList.toggle('info', kind === 'info');
  $('token').value = '';
  $('password').value = '';
  setMode(mode);
}

function setMode(m) {
  mode = m;
  for (const b of document.querySelectorAll('.seg')) b.setAttribute('aria-pressed', String(b.dataset.mode === m));
  $('account-fields').hidden = m !== 'account';
  $('token-fields').hidden = m !== 'token';
  (m === 'token' ? $('token') : ($('user').value ? $('password') : $('user'))).focus();
}

const VIEWS = ['live', 'recordings', 'audit', 'cases', 'uploads', 'dashboard', 'approvals'];

function allowedViews() {
  // A dock (a workstation's account) sees its uploads and nothing else.
  if (who && who.role === 'dock') return ['uploads'];
  // Cases stays a tab for every role: an admin finds there why it is empty.
  return VIEWS.filter((v) => v === 'recordings' || v === 'cases' || (v === 'approvals' ? approvalsShown()
    : v === 'uploads' ? caps.uploads : v === 'dashboard' ? caps.dashboard : v === 'live' ? caps.watch : caps.live || caps.views));
}

// resetNote says when and by whom an admin last set the user's password
// (the first one, or a reset): the user sees who could have signed in as
// them.
function resetNote(w) {
  if (!w.password_reset_by) return '';
  return `Your password was last set by the administrator ${w.password_reset_by} on ${new Date(w.password_reset_at).toLocaleString()}.`;
}

function setWho(w) {
  who = w;
  const name = w.name && w.name !== w.user ? `${w.name} (${w.user})` : w.user;
  $('who').textContent = w.role && w.role !== w.user ? `${name} · ${w.role}` : name;
  $('who').title = `Signed in as ${w.user}, role ${w.role}${w.unit ? `, unit ${w.unit}` : ''}. ${resetNote(w)}`.trim();
  // Only a password sign-in has a password to change (not the admin token).
  $('change-password').hidden = w.credential !== 'password';
}

// showSession opens what a sign-in may do: the console, or first the
// password form when an admin set the password.
function showSession(w) {
  if (w.must_change_password) showPasswordForm(w, true);
  else showConsole(w);
}

function showPasswordForm(w, forced) {
  who = w;
  passwordForced = forced;
  if (forced) {
    signedIn = false;
    stopLive();
    stopAudit();
    stopUploads();
    clearInterval(devicesTimer);
    closeAll('a new password is required');
    resetLive();
  }
  $('boot').hidden = true;
  $('signin-view').hidden = true;
  $('console-view').hidden = true;
  $('password-view').hidden = false;
  const notice = $('password-notice');
  notice.textContent = forced ? `${resetNote(w)} Set a password of your own to continue: until then this sign-in can do nothing else.`.trim() : resetNote(w);
  notice.hidden = !notice.textContent;
  $('password-user').value = w.user;
  $('password-cancel').textContent = forced ? 'Sign out' : 'Cancel';
  for (const id of ['current-password', 'new-password', 'repeat-password']) $(id).value = '';
  $('password-error').hidden = true;
  $('current-password').focus();
}

function leavePasswordForm() {
  $('password-view').hidden = true;
  $('console-view').hidden = false;
}

async function setPassword(ev) {
  ev.preventDefault();
  const err = $('password-error');
  const show = (msg, field) => { err.hidden = false; err.textContent = msg; if (field) field.focus(); };
  const current = $('current-password').value;
  const next = $('new-password').value;
  if (!current) return show('Enter your current password.', $('current-password'));
  if ([...next].length < 12) return show('The new password needs at least 12 characters.', $('new-password'));
  if (next !== $('repeat-password').value) return show('The two new passwords differ.', $('repeat-password'));
  if (next === current) return show('Choose a password other than the current one.', $('new-password'));
  const btn = $('password-submit');
  btn.disabled = true;
  try {
    await api.setPassword(who.user, current, next);
    // The session goes on under a new cookie the answer set.
    const w = await api.session();
    if (passwordForced) showConsole(w);
    else { setWho(w); leavePasswordForm(); }
    toast('Password changed. Your API tokens were revoked and your other sessions ended.');
  } catch (e) {
    if (e.status === 401) showSignIn('Your session has ended: sign in again.');
    else if (e.status === 403) show('The current password is wrong.', $('current-password'));
    else if (e.status === 429) show(`Locked: ${e.message}.`);
    else show(`The password was not changed: ${e.message}`);
  } finally {
    btn.disabled = false;
  }
}

function showConsole(w) {
  signedIn = true;
  passwordForced = false;
  caps = capsOf(w.role);
  $('boot').hidden = true;
  $('signin-view').hidden = true;
  $('password-view').hidden = true;
  $('console-view').hidden = false;
  setWho(w);
  setCopyCaps(w);
  $('console-view').classList.toggle('no-sidebar', !caps.live);
  $('conn').hidden = !caps.live; // the live poll is what it reports on
  for (const el of document.querySelectorAll('[data-needs]')) el.hidden = !caps[el.dataset.needs];
  for (const b of document.querySelectorAll('.tab')) b.hidden = !allowedViews().includes(b.dataset.view);
  $('key-approvals').hidden = !allowedViews().includes('approvals');
  const note = $('live-note');
  note.hidden = caps.watch;
  note.textContent = caps.watch ? '' : `Your role (${who.role}) sees who is live but does not watch: live viewing takes a supervisor or auditor account.`;
  setLiveCaps(caps);
  setAuditCaps(caps);
  setCasesCaps(caps, who.role);
  setUploadsCaps({ recordings: caps.recordings, dock: who.role === 'dock' });
  setDashboardCaps({ unit: who.role === 'supervisor' ? who.unit : '' });
  setRecordingCaps({ bookmark: caps.bookmark, removeAny: who.role === 'supervisor', user: who.user });
  if (caps.live) startLive();
  loadDevices();
  clearInterval(devicesTimer);
  if (caps.devices) devicesTimer = setInterval(loadDevices, 30000);
  setView(allowedViews().includes(view) ? view : allowedViews()[0]);
}

async function loadDevices() {
  if (!caps.devices) {
    // The server lists what this user may read (a dock reads none).
    if (caps.recordings) setRecordingDevices(null);
    return;
  }
  try {
    const body = await api.devices();
    const items = body.items || [];
    setDevices(items);
    setRecordingDevices(items);
    setAuditDevices(items);
    setUploadDevices(items);
  } catch (err) {
    if (err.status !== 401) toast(`Could not list devices: ${err.message}`, 'warn');
  }
}

function setView(name) {
  if (!allowedViews().includes(name)) return;
  view = name;
  for (const b of document.querySelectorAll('.tab')) {
    const on = b.dataset.view === name;
    b.classList.toggle('active', on);
    if (on) b.setAttribute('aria-current', 'page'); else b.removeAttribute('aria-current');
  }
  for (const v of VIEWS) $(`view-${v}`).hidden = v !== name;
  if (name === 'audit') startAudit(); else stopAudit();
  if (name === 'uploads') startUploads(); else stopUploads();
  if (name === 'recordings') refreshIfShown();
  if (name === 'cases') showCases();
  if (name === 'dashboard') showDashboard();
  if (name === 'approvals') showApprovals();
}

async function signIn(ev) {
  ev.preventDefault();
  const err = $('signin-error');
  const show = (msg) => { err.hidden = false; err.classList.remove('info'); err.textContent = msg; };
  let body;
  if (mode === 'token') {
    const token = $('token').value.trim();
    if (!token) { show('Enter the admin token.'); $('token').focus(); return; }
    body = { token };
  } else {
    const user = $('user').value.trim();
    const password = $('password').value;
    if (!user || !password) { show('Enter your user name and password.'); (user ? $('password') : $('user')).focus(); return; }
    body = { user, password };
  }
  const btn = $('signin');
  btn.disabled = true;
  btn.textContent = 'Signing in…';
  try {
    await api.signIn(body);
    // The session's own view of who signed in (name, unit, role, and
    // whether an admin's password must be replaced first).
    showSession(await api.session());
    $('token').value = '';
    $('password').value = '';
  } catch (e) {
    if (e.status === 401) show(mode === 'token' ? 'Wrong token: the server refused it.' : 'Wrong user or password.');
    else if (e.status === 429) show(`Locked: ${e.message}.`);
    else show(`Sign-in failed: ${e.message}`);
    (mode === 'token' ? $('token') : $('password')).select();
  } finally {
    btn.disabled = false;
    btn.textContent = 'Sign in';
  }
}

async function signOut() {
  closeAll('signed out');
  try { await api.signOut(); } catch { /* the cookie is dropped either way */ }
  showSignIn('Signed out.', 'info');
}

function renderStatus() {
  const el = $('conn');
  const text = $('conn-text');
  if (!lastStatus) return;
  if (lastStatus.ok) {
    el.className = 'conn conn-ok';
    text.textContent = 'online';
    el.title = `Server reachable; live list updated ${fmtAgo(new Date(lastStatus.at).toISOString())} ago`;
  } else {
    el.className = 'conn conn-bad';
    text.textContent = 'server unreachable';
    el.title = lastStatus.error || '';
  }
}

function tick() {
  $('clock').textContent = fmtClock();
  if (signedIn && caps.live && lastStatus && lastStatus.ok && Date.now() - lastStatus.at > 7000) {
    $('conn').className = 'conn conn-warn';
    $('conn-text').textContent = `stale ${fmtAgo(new Date(lastStatus.at).toISOString())}`;
  }
}

function keys(ev) {
  if (!signedIn || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const t = ev.target;
  const typing = t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement || t.isContentEditable;
  if (ev.key === 'Escape') {
    if (document.fullscreenElement) return;
    if (closeSync()) { ev.preventDefault(); return; }
    if (view === 'recordings' && handleEscape()) ev.preventDefault();
    if (view === 'cases' && !typing && handleCasesEscape()) ev.preventDefault();
    return;
  }
  if (typing) return;
  const views = { 1: 'live', 2: 'recordings', 3: 'audit', 4: 'cases', 5: 'uploads', 6: 'dashboard', 7: 'approvals' };
  if (views[ev.key]) { setView(views[ev.key]); ev.preventDefault(); return; }
  if ((ev.key === 'm' || ev.key === 'M') && caps.watch) { $('mute-all').click(); ev.preventDefault(); }
}

function init() {
  initLive({
    liveList: $('live-list'), liveCount: $('live-count'), wall: $('wall'), wallEmpty: $('wall-empty'),
    wallCount: $('wall-count'), closeAll: $('close-all'), muteAll: $('mute-all'),
  }, {
    onStatus: (st) => { lastStatus = st; renderStatus(); },
    onCount: (n) => { const c = $('tab-live-count'); c.hidden = !n; c.textContent = String(n); c.title = `${n} open view${n === 1 ? '' : 's'}`; },
    onOpen: () => { if (view !== 'live') setView('live'); },
  });
  initRecordings({
    device: $('rec-device'), stateFilter: $('rec-state'), from: $('rec-from'), to: $('rec-to'), refresh: $('rec-refresh'),
    list: $('rec-list'), listCount: $('rec-count'), detail: $('rec-detail'), table: $('rec-table'), kind: $('rec-kind'), sync: $('rec-sync'),
    officer: $('rec-officer'), unit: $('rec-unit'), caseID: $('rec-case'), category: $('rec-category'),
  });
  $('rec-filters').addEventListener('submit', (ev) => ev.preventDefault());
  initUploads({
    dock: $('uploads-dock'), dockField: $('uploads-dock-field'), device: $('uploads-device'), state: $('uploads-state'),
    refresh: $('uploads-refresh'), count: $('uploads-count'), summary: $('uploads-summary'), error: $('uploads-error'),
    body: $('uploads-body'), intro: $('uploads-intro'),
  }, {
    openRecording: (id) => { setView('recordings'); openRecording(id); },
  });
  $('uploads-filters').addEventListener('submit', (ev) => ev.preventDefault());
  initDashboard({
    form: $('dash-filters'), from: $('dash-from'), to: $('dash-to'), unit: $('dash-unit'), unitField: $('dash-unit-field'),
    officer: $('dash-officer'), refresh: $('dash-refresh'), error: $('dash-error'), body: $('dash-body'),
  });
  initApprovals({ list: $('approvals-list'), count: $('approvals-count'), error: $('approvals-error'), refresh: $('approvals-refresh') });
  initAudit({
    device: $('audit-device'), refresh: $('audit-refresh'), viewers: $('viewers'), views: $('views'),
    viewersCount: $('viewers-count'), viewsCount: $('views-count'), error: $('audit-error'),
    viewersPanel: $('viewers-panel'), viewsPanel: $('views-panel'), viewsNote: $('views-note'),
  });
  initCases({
    list: $('cases-list'), count: $('cases-count'), detail: $('case-detail'), refresh: $('cases-refresh'),
    note: $('cases-note'), body: $('cases-body'), newBtn: $('case-new'), newPanel: $('case-new-panel'),
    newForm: $('case-new-form'), newId: $('case-id'), newTitle: $('case-title'), newOfficer: $('case-officer'),
    newMembers: $('case-members'), officerField: $('case-officer-field'), officers: $('case-officers'), newSubmit: $('case-create'),
    newCancel: $('case-new-cancel'), newError: $('case-new-error'),
  }, {
    openRecording: (id) => { setView('recordings'); openRecording(id); },
  });
  for (const b of document.querySelectorAll('.tab')) b.addEventListener('click', () => setView(b.dataset.view));
  for (const b of document.querySelectorAll('.seg')) b.addEventListener('click', () => { $('signin-error').hidden = true; setMode(b.dataset.mode); });
  $('signin-form').addEventListener('submit', signIn);
  $('signout').addEventListener('click', signOut);
  $('change-password').addEventListener('click', () => showPasswordForm(who, false));
  $('password-form').addEventListener('submit', setPassword);
  $('password-cancel').addEventListener('click', () => (passwordForced ? signOut() : leavePasswordForm()));
  for (const id of ['current-password', 'new-password', 'repeat-password']) $(id).addEventListener('input', () => { $('password-error').hidden = true; });
  for (const id of ['token', 'user', 'password']) $(id).addEventListener('input', () => { $('signin-error').hidden = true; });
  document.addEventListener('keydown', keys);
  onUnauthorized(() => { if (signedIn || passwordForced) showSignIn('Your session has expired or was revoked: sign in again.'); });
  tick();
  setInterval(tick, 1000);
  api.session().then(showSession).catch((err) => {
    showSignIn(err.status === 401 ? '' : `Cannot reach the server: ${err.message}`);
  });
}

init();
