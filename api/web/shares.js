// A case's shares with recipients outside (prosecutors, the defence): who
// got what, until when, downloads and receipts; a form to share chosen
// recordings (the link and the one-time code are shown once), revoke, and
// issue a new code. The recipient's own page is share.js.

import { getJSON, postJSON } from './api.js';
import { h, badge, fmtTime, clear, toast, copyText, shortHash } from './ui.js';
import { copyMode, myGrants } from './copies.js';

const sharesURL = (id) => '/api/v1/cases/' + encodeURIComponent(id) + '/shares';

const STATE_KIND = { active: 'ok', revoked: 'bad', expired: 'muted', 'used up': 'muted' };

// sharesSection is the case's "Shared outside" section; canShare: the user
// may change the case (officers and supervisors).
export function sharesSection(c, { canShare }) {
  const body = h('div', { testid: 'case-shares-body' }, h('p', { class: 'muted small' }, 'Loading shares…'));
  const once = h('div', { testid: 'share-made', hidden: true, class: 'share-made' });
  const section = h('section', { class: 'subsection', testid: 'case-shares-section' },
    h('h4', {}, 'Shared outside ', h('span', { class: 'muted hint' },
      'Recipients without an account: a link and a one-time code, expiring, revocable, each download receipted and in the custody ledger.')),
    once, body,
    canShare ? shareForm(c, (made) => { showMade(once, made); load(); }) : null);
  async function load() {
    let items;
    try {
      ({ items } = await getJSON(sharesURL(c.id)));
    } catch (e) {
      clear(body, h('p', { class: 'error small' }, `Shares could not be listed: ${e.message}`));
      return;
    }
    if (!items.length) {
      clear(body, h('p', { class: 'muted', testid: 'case-no-shares' }, 'Nothing shared outside yet.'));
      return;
    }
    clear(body, h('div', { class: 'table-wrap' }, h('table', { class: 'grid', testid: 'case-shares' },
      h('thead', {}, h('tr', {}, ['State', 'Recipient', 'Recordings', 'Downloads', 'Until', 'Shared by', ''].map((t) => h('th', {}, t)))),
      h('tbody', {}, items.map((s) => shareRow(c, s, { canShare, reload: load, showMade: (m) => showMade(once, m) }))))));
  }
  load();
  return section;
}

function shareRow(c, s, { canShare, reload, showMade }) {
  const actions = h('td', { class: 'actions' });
  if (canShare && s.state === 'active') {
    actions.append(
      h('button', { type: 'button', class: 'btn btn-sm', testid: 'share-new-code', title: 'A new one-time code; the old one and the open session end',
        onclick: async () => {
          // A new code by another than the share's maker takes a use of
          // their own grant of the case (the server ignores it for the maker).
          let path = sharesURL(c.id) + '/' + encodeURIComponent(s.id) + '/code';
          try {
            if (copyMode() === 'required') {
              const [g] = await myGrants('case', c.id);
              if (g) path += '?grant=' + encodeURIComponent(g.id);
            }
            showMade(await postJSON(path));
            reload();
          } catch (e) { toast(e.message, 'error'); }
        } }, 'New code'),
      h('button', { type: 'button', class: 'btn btn-sm btn-danger', testid: 'share-revoke', onclick: () => askRevoke(c, s, actions, reload) }, 'Revoke'));
  }
  const receipts = (s.receipts || []).map((r) => h('div', { class: 'small muted', testid: 'share-receipt' },
    `#${r.download} ${fmtTime(r.at)} · sha256 `, shortHash(r.sha256)));
  return h('tr', { testid: 'case-share', dataset: { share: s.id, state: s.state } },
    h('td', {}, badge(s.state, STATE_KIND[s.state] || 'muted', { testid: 'share-state' }),
      s.revoked_reason ? h('div', { class: 'small why', title: s.revoked_reason }, `“${s.revoked_reason}”`) : null),
    h('td', {}, h('strong', {}, s.recipient.name), h('div', { class: 'small muted' }, s.recipient.organisation, s.recipient.email ? ` · ${s.recipient.email}` : ''),
      h('div', { class: 'small', title: s.purpose }, s.purpose)),
    h('td', { class: 'mono small' }, s.recordings.join(', '), s.copies ? h('div', { class: 'muted' }, `+ ${s.copies}`) : null),
    h('td', {}, h('span', { testid: 'share-downloads' }, `${s.downloads} / ${s.max_downloads}`), receipts,
      s.opened ? h('div', { class: 'small muted' }, 'opened') : null),
    h('td', { class: 'small' }, fmtTime(s.expires_at)),
    h('td', { class: 'small' }, s.created_by, h('div', { class: 'muted' }, fmtTime(s.created_at))),
    actions);
}

function askRevoke(c, s, cell, reload) {
  const reason = h('input', { type: 'text', testid: 'share-revoke-reason', placeholder: 'Why revoke it (required)', maxlength: '500' });
  const err = h('span', { class: 'error small', role: 'alert' });
  const confirm = h('button', { type: 'submit', class: 'btn btn-sm btn-danger', testid: 'share-revoke-confirm' }, 'Revoke');
  clear(cell, h('form', { class: 'inline-form', onsubmit: async (ev) => {
    ev.preventDefault();
    const why = reason.value.trim();
    if (!why) { err.textContent = 'A reason is required.'; reason.focus(); return; }
    confirm.disabled = true;
    try {
      await postJSON(sharesURL(c.id) + '/' + encodeURIComponent(s.id) + '/revoke', { reason: why });
      toast(`Share with ${s.recipient.name} revoked`, 'ok');
      reload();
    } catch (e) {
      err.textContent = e.message;
      confirm.disabled = false;
    }
  } }, reason, confirm, h('button', { type: 'button', class: 'btn btn-sm btn-ghost', onclick: reload }, 'Cancel'), err));
  reason.focus();
}

// showMade shows the link and the code of a share just made (or renewed):
// the only time the code is shown.
function showMade(box, s) {
  box.hidden = false;
  clear(box,
    h('p', {}, h('strong', {}, `Shared with ${s.recipient.name}. `),
      'Send the link and the code by different ways (e.g. the link by e-mail, the code by phone). The code is shown only now.'),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Link'), h('dd', {}, h('a', { href: s.link, class: 'mono', testid: 'share-link', target: '_blank', rel: 'noopener noreferrer' }, s.link),
        ' ', h('button', { type: 'button', class: 'btn btn-sm', onclick: () => copyText(s.link, 'Link') }, 'Copy')),
      h('dt', {}, 'One-time code'), h('dd', {}, h('span', { class: 'mono share-code', testid: 'share-code' }, s.code),
        ' ', h('button', { type: 'button', class: 'btn btn-sm', onclick: () => copyText(s.code, 'Code') }, 'Copy')),
      h('dt', {}, 'Until'), h('dd', {}, `${fmtTime(s.expires_at)} · at most ${s.max_downloads} download(s)`)),
    h('button', { type: 'button', class: 'btn btn-sm btn-ghost', onclick: () => { box.hidden = true; clear(box); } }, 'Done'));
}

function shareForm(c, done) {
  const linked = [...new Set((c.evidence || []).filter((l) => l.active).map((l) => l.recording_id))];
  if (!linked.length) return h('p', { class: 'muted small' }, 'Link recordings to the case to share them.');
  const field = (label, input) => h('label', { class: 'field' }, h('span', {}, label), input);
  const name = h('input', { type: 'text', testid: 'share-name', required: true, maxlength: '200', placeholder: 'A. Prosecutor' });
  const org = h('input', { type: 'text', testid: 'share-org', required: true, maxlength: '200', placeholder: "District Attorney's Office" });
  const email = h('input', { type: 'email', testid: 'share-email', maxlength: '200', placeholder: 'optional' });
  const purpose = h('input', { type: 'text', testid: 'share-purpose', required: true, maxlength: '500', placeholder: 'e.g. charging decision' });
  const days = h('input', { type: 'number', testid: 'share-days', min: '1', max: '90', value: '7' });
  const max = h('input', { type: 'number', testid: 'share-max', min: '1', max: '100', value: '3' });
  const redacted = h('input', { type: 'checkbox', testid: 'share-redacted' });
  const picks = linked.map((id) => ({ id, box: h('input', { type: 'checkbox', checked: true, testid: 'share-recording', value: id }) }));
  const err = h('p', { class: 'form-error', testid: 'share-error', role: 'alert', hidden: true });
  const btn = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'share-create' }, 'Share');
  // With approval before copying, a share takes a use of one of the user's
  // granted copy requests of the case ("Request a copy" by Export).
  const needsGrant = copyMode() === 'required';
  const grant = h('select', { testid: 'share-grant', 'aria-label': 'Copy approval' });
  const grantField = needsGrant ? h('label', { class: 'field' }, h('span', {}, 'Copy approval'), grant) : null;
  const loadGrants = () => myGrants('case', c.id).then((list) => {
    clear(grant, list.length ? list.map((g) => h('option', { value: g.id }, `${g.id} · ${g.uses_left} use(s) left · until ${fmtTime(g.expires_at)}`))
      : h('option', { value: '' }, 'none: request a copy of the case first'));
  }, (e) => clear(grant, h('option', { value: '' }, `copy requests: ${e.message}`)));
  if (needsGrant) loadGrants();
  return h('form', { class: 'share-form', testid: 'share-form', onsubmit: async (ev) => {
    ev.preventDefault();
    const recordings = picks.filter((p) => p.box.checked).map((p) => p.id);
    if (!recordings.length) { err.hidden = false; err.textContent = 'Choose at least one recording.'; return; }
    const body = { recipient: { name: name.value.trim(), organisation: org.value.trim() }, purpose: purpose.value.trim(), recordings,
      expires_in: `${Math.round(Number(days.value) * 24)}h`, max_downloads: Number(max.value) };
    if (email.value.trim()) body.recipient.email = email.value.trim();
    if (redacted.checked) body.copies = 'redaction';
    if (needsGrant) {
      if (!grant.value) { err.hidden = false; err.textContent = 'Sharing lets a copy leave: it needs your granted copy request of this case (Request a copy, by Export above).'; return; }
      body.grant = grant.value;
    }
    btn.disabled = true;
    err.hidden = true;
    try {
      done(await postJSON(sharesURL(c.id), body));
      toast(`Shared with ${body.recipient.name}`, 'ok');
      for (const el of [name, org, email, purpose]) el.value = '';
      if (needsGrant) loadGrants();
    } catch (e) {
      err.hidden = false;
      err.textContent = `Not shared: ${e.message}`;
    } finally {
      btn.disabled = false;
    }
  } },
  h('div', { class: 'share-fields' }, field('Recipient', name), field('Organisation', org), field('E-mail', email), field('Purpose', purpose),
    field('Days valid', days), field('Downloads', max), grantField),
  h('fieldset', { class: 'share-picks' }, h('legend', {}, 'Recordings'),
    picks.map((p) => h('label', { class: 'mono small' }, p.box, ' ', p.id)),
    h('label', { class: 'small', title: 'Add the redacted copies made of these recordings to the export' }, redacted, ' with redacted copies')),
  btn, err);
}
