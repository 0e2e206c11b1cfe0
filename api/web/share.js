// The page a share's recipient opens (/share/<id>): no account. It asks
// for the one-time code, then shows what was shared, the download (counted
// against the share's limit) and each download's signed receipt, with how
// to check it offline. It talks only to /api/v1/shared/<id>, whose cookie
// the server scopes to that path.

import { h, fmtTime, fmtBytes, clear } from './ui.js';

const id = decodeURIComponent(location.pathname.split('/').filter(Boolean)[1] || '');
const base = '/api/v1/shared/' + encodeURIComponent(id);
const root = document.getElementById('share');

async function call(method, path, body) {
  const res = await fetch(base + path, {
    method, credentials: 'same-origin', cache: 'no-store',
    headers: body ? { 'Content-Type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  let data = null;
  try { data = await res.json(); } catch { /* not JSON */ }
  return { status: res.status, data };
}

function page(...children) {
  clear(root, h('div', { class: 'share-page' },
    h('header', {}, h('h2', {}, 'Shared evidence'),
      h('p', { class: 'muted small' }, 'Body-worn camera footage shared with you through bodycam. Everything you do here is recorded in the custody ledger.')),
    ...children));
}

function refused(status, data) {
  const why = (data && data.error) || `error ${status}`;
  const title = { 404: 'No such share', 410: 'This share is no longer available' }[status] || 'Not available';
  page(h('section', { class: 'panel panel-pad', testid: 'share-refused', dataset: { status: String(status) } },
    h('h3', {}, title), h('p', { testid: 'share-refused-why' }, why),
    h('p', { class: 'muted small' }, 'Ask the sender for a new share if you still need it.')));
}

function codeForm(message) {
  const input = h('input', { type: 'text', testid: 'share-code-input', autocomplete: 'one-time-code', spellcheck: 'false', maxlength: '20',
    placeholder: 'XXXX-XXXX-XXXX', 'aria-label': 'One-time code', required: true });
  const err = h('p', { class: 'form-error', testid: 'share-error', role: 'alert', hidden: !message }, message || '');
  const btn = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'share-open' }, 'Open');
  page(h('section', { class: 'panel panel-pad' },
    h('p', {}, 'Enter the one-time code the sender gave you (by another way than this link). It opens the share once, in this browser.'),
    h('form', { onsubmit: async (ev) => {
      ev.preventDefault();
      btn.disabled = true;
      const { status, data } = await call('POST', '/open', { code: input.value.trim() });
      btn.disabled = false;
      if (status === 200) { show(data); return; }
      if (status === 404 || status === 410) { refused(status, data); return; }
      err.hidden = false;
      err.textContent = (data && data.error) || `error ${status}`;
    } }, input, btn), err));
  input.focus();
}

function show(s) {
  const left = s.max_downloads - s.downloads;
  const receipts = h('div', { testid: 'share-receipts' });
  const dl = left > 0
    ? h('a', { class: 'btn btn-primary', testid: 'share-download', href: s.download, download: s.file_name,
      onclick: () => setTimeout(poll, 1500) }, `Download ${s.file_name}`)
    : h('p', { class: 'muted', testid: 'share-used-up' }, 'Every download of this share was used.');
  page(
    h('section', { class: 'panel panel-pad', testid: 'share-content', dataset: { share: s.id } },
      h('dl', { class: 'facts' },
        h('dt', {}, 'Case'), h('dd', { testid: 'share-case' }, s.case_id, s.case_title ? ` — ${s.case_title}` : ''),
        h('dt', {}, 'For'), h('dd', { testid: 'share-recipient' }, `${s.recipient.name} (${s.recipient.organisation})`),
        h('dt', {}, 'Purpose'), h('dd', {}, s.purpose),
        h('dt', {}, 'Shared by'), h('dd', {}, `${s.shared_by} · ${fmtTime(s.shared_at)}`),
        h('dt', {}, 'Available until'), h('dd', { testid: 'share-expires' }, fmtTime(s.expires_at)),
        h('dt', {}, 'Downloads'), h('dd', { testid: 'share-downloads-left', dataset: { left: String(left) } }, `${s.downloads} of ${s.max_downloads} used`)),
      h('h4', {}, 'Recordings'),
      h('table', { class: 'grid', testid: 'share-recordings' },
        h('thead', {}, h('tr', {}, ['Recording', 'Device', 'Started', 'Ended'].map((t) => h('th', {}, t)))),
        h('tbody', {}, s.recordings.map((r) => h('tr', { testid: 'share-recording', dataset: { recording: r.id } },
          h('td', { class: 'mono' }, r.id), h('td', { class: 'mono' }, r.device_id), h('td', {}, fmtTime(r.started_at)), h('td', {}, fmtTime(r.ended_at)))))),
      h('p', { class: 'muted small' }, 'The download is a court export: the original recordings byte for byte with their signed manifests, playable copies, the custody record and the public keys. `bodycam verify ',
        s.file_name, '` checks it offline (README.txt inside says how to check it by hand).'),
      dl),
    h('section', { class: 'panel panel-pad' }, h('h4', {}, 'Receipts'),
      h('p', { class: 'muted small' }, 'Each download has a receipt the server signs: what was sent (its SHA-256), when, to whom. Keep it with the file.'),
      receipts,
      h('pre', {}, 'Check a receipt offline (the key is also at ' + location.origin + '/api/v1/keys):\n' +
        '  openssl pkeyutl -verify -pubin -inkey key.pem -rawin -in receipt.json -sigfile receipt.json.sig\n' +
        '  sha256sum ' + s.file_name + '   # must equal the receipt\'s "sha256"')));
  listReceipts(receipts, s.receipts || []);
}

async function listReceipts(box, list) {
  if (!list.length) { clear(box, h('p', { class: 'muted small', testid: 'share-no-receipts' }, 'No download yet.')); return; }
  const rows = [];
  for (const r of list) {
    const { status, data } = await call('GET', '/receipts/' + encodeURIComponent(r.id));
    if (status !== 200) { rows.push(h('p', { class: 'error small' }, `receipt ${r.id}: ${(data && data.error) || status}`)); continue; }
    const file = (b64, type) => URL.createObjectURL(new Blob([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], { type }));
    rows.push(h('div', { class: 'share-receipt', testid: 'share-receipt', dataset: { receipt: r.id, sha256: r.sha256, download: String(r.download) } },
      h('strong', {}, `Download ${r.download}`), ` · ${fmtTime(r.at)} · ${fmtBytes(r.size)} · sha256 `, h('span', { class: 'mono small' }, r.sha256), ' · ',
      h('a', { href: file(data.receipt_b64, 'application/json'), download: `${r.id}.receipt.json`, testid: 'share-receipt-json' }, 'receipt.json'), ' · ',
      h('a', { href: file(data.signature_b64, 'application/octet-stream'), download: `${r.id}.receipt.json.sig`, testid: 'share-receipt-sig' }, 'receipt.json.sig'), ' · ',
      h('a', { href: file(btoa(data.public_key_pem || ''), 'application/x-pem-file'), download: `${data.signing_key_id}.pem`, testid: 'share-receipt-key' }, 'key.pem')));
  }
  clear(box, rows);
}

// poll reloads the share after a download starts, until its receipt shows
// (a receipt is kept once the whole file went out).
let polls = 0;
async function poll() {
  const { status, data } = await call('GET', '');
  if (status === 200) {
    const had = document.querySelectorAll('[data-testid="share-receipt"]').length;
    if ((data.receipts || []).length > had || polls > 40) { polls = 0; show(data); return; }
  } else if (status === 410) {
    // used up by this download: show the receipts still
    polls = 0;
    refused(status, data);
    return;
  }
  polls++;
  setTimeout(poll, 1500);
}

async function start() {
  if (!id) { refused(404, { error: 'no share named in this address' }); return; }
  const { status, data } = await call('GET', '');
  if (status === 200) show(data);
  else if (status === 401) codeForm();
  else refused(status, data);
}

start();
