// Approval before copying: where the console offers a download (an
// original, an MP4, a clip or redacted copy, a case export) and the server
// requires approval, it offers "Request a copy" instead, and the user's
// granted requests as download links carrying the grant. Supervisors decide
// the requests of others on the Approvals page. Watching is not a copy and
// is not touched here.

import { getJSON, postJSON } from './api.js';
import { h, icon, clear, toast, fmtTime, badge } from './ui.js';

let mode = 'off'; // GET /api/v1/session's copy_approval: off, required or exempt
let me = '';
let role = '';
let els = null;

export function setCopyCaps(w) {
  mode = w.copy_approval || 'off';
  me = w.user;
  role = w.role;
}

// copyMode is the server's rule: off, required or exempt (this user's
// role copies without a grant).
export function copyMode() { return mode; }

// myGrants lists this user's granted, usable requests for kind id.
export async function myGrants(kind, id) {
  const body = await getJSON('/api/v1/copy-requests?' + new URLSearchParams({ state: 'granted' }));
  return (body.items || []).filter((c) => c.requested_by === me && c.kind === kind && c.target_id === id);
}

// approvalsShown says whether the Approvals page is for this user.
export function approvalsShown() { return role === 'supervisor' && mode !== 'off'; }

const copyAPI = {
  list: (params) => getJSON('/api/v1/copy-requests?' + new URLSearchParams(params || {})),
  ask: (body) => postJSON('/api/v1/copy-requests', body),
  decide: (id, body) => postJSON('/api/v1/copy-requests/' + encodeURIComponent(id) + '/decision', body),
};

function withGrant(href, grant) { return href + (href.includes('?') ? '&' : '?') + 'grant=' + encodeURIComponent(grant); }

// downloadLink is a download of what kind ("recording" or "case") id
// copies: the plain link (attrs, label) when no approval is needed; else
// the user's granted requests for it as links carrying the grant, and a
// "Request a copy" form (reason, uses).
export function downloadLink(kind, id, attrs, label) {
  const plain = () => h('a', { class: 'btn', ...attrs }, icon('download'), label);
  if (mode !== 'required') return plain();
  const box = h('span', { class: 'copy-box', testid: 'copy-box' });
  const grants = h('span', { class: 'copy-grants', testid: 'copy-grants' });
  const load = async () => {
    try {
      clear(grants, (await myGrants(kind, id)).map((c) =>
        h('a', { class: 'btn', ...attrs, href: withGrant(attrs.href, c.id), testid: 'copy-download',
          title: `Granted by ${c.decided_by} until ${fmtTime(c.expires_at)}; ${c.uses_left} of ${c.uses} use(s) left. Each download takes one.`,
          onclick: () => setTimeout(load, 1500) }, icon('download'), `${label} (${c.uses_left} left)`)));
    } catch (err) { if (err.status !== 401) toast(`Copy requests: ${err.message}`, 'warn'); }
  };
  const reason = h('input', { maxlength: 500, required: true, placeholder: 'Why the copy is needed', testid: 'copy-reason', class: 'grow' });
  const uses = h('input', { type: 'number', min: 1, max: 20, value: 1, testid: 'copy-uses', class: 'copy-uses', title: 'Downloads the grant will allow' });
  const form = h('form', { class: 'copy-form', hidden: true, onsubmit: async (ev) => {
    ev.preventDefault();
    if (!reason.value.trim()) { reason.focus(); return; }
    try {
      const c = await copyAPI.ask({ kind, id, reason: reason.value, uses: Number(uses.value) || 1 });
      toast(`Copy requested (${c.id}): a supervisor other than you decides it.`, 'info');
      form.hidden = true;
      reason.value = '';
    } catch (err) { toast(`No copy request: ${err.message}`, 'error'); }
  } }, reason, h('label', {}, 'Uses ', uses), h('button', { type: 'submit', class: 'btn btn-small', testid: 'copy-ask' }, 'Ask'));
  const open = h('button', { type: 'button', class: 'btn', testid: 'copy-request',
    title: `Copies leave the system only with a supervisor's approval: ask for a copy of this ${kind}`,
    onclick: () => { form.hidden = !form.hidden; if (!form.hidden) reason.focus(); } }, icon('download'), `Request a copy (${label})`);
  load();
  return h('span', { class: 'copy-wrap' }, box, open, grants, form);
}

export function initApprovals(elements) {
  els = elements;
  els.refresh.addEventListener('click', () => showApprovals());
}

// showApprovals lists the pending requests this supervisor may decide
// (not their own), with approve and refuse.
export async function showApprovals() {
  if (!els) return;
  els.error.hidden = true;
  let items;
  try {
    items = ((await copyAPI.list({ state: 'pending' })).items || []).filter((c) => c.requested_by !== me);
  } catch (err) {
    els.error.hidden = false;
    els.error.textContent = `Copy requests: ${err.message}`;
    return;
  }
  els.count.textContent = items.length ? `(${items.length} pending)` : '';
  if (!items.length) {
    clear(els.list, h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No copy request waits for your decision.')));
    return;
  }
  clear(els.list, items.map((c) => {
    const note = h('input', { maxlength: 500, placeholder: 'Note (optional)', testid: 'approval-note' });
    const validFor = h('select', { testid: 'approval-valid' }, ['1h', '8h', '24h', '72h', '168h'].map((d) => h('option', { value: d, selected: d === '24h' }, d)));
    const decide = (approve) => async () => {
      try {
        await copyAPI.decide(c.id, { approve, note: note.value, valid_for: approve ? validFor.value : '' });
        toast(`${c.id} ${approve ? 'granted' : 'refused'}.`, 'info');
      } catch (err) { toast(`Not decided: ${err.message}`, 'error'); }
      showApprovals();
    };
    return h('tr', { testid: 'approval-row', dataset: { id: c.id } },
      h('td', {}, badge(c.kind, 'muted'), ' ', h('span', { class: 'mono' }, c.target_id)),
      h('td', {}, c.requested_by),
      h('td', { class: 'clip', title: c.reason }, c.reason),
      h('td', {}, String(c.uses)),
      h('td', {}, fmtTime(c.requested_at)),
      h('td', { class: 'approval-actions' }, note, validFor,
        h('button', { type: 'button', class: 'btn btn-small btn-primary', testid: 'approval-grant', onclick: decide(true) }, 'Grant'),
        h('button', { type: 'button', class: 'btn btn-small', testid: 'approval-refuse', onclick: decide(false) }, 'Refuse')));
  }));
}


