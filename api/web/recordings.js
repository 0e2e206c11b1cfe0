// Recordings: pick a device, list its recordings, open one to play it, read
// its segments (hashes and chain links), its gaps, its bookmarks (moments
// marked for review: set at the player's position, removed with a reason),
// its retention (categories, kept until when and by which rule; officers and
// supervisors change the categories, with a reason), and verify it. A
// recording is a live stream's (kind "stream") or a recorder's own file a
// dock uploaded (kind "upload": its origin, the file as uploaded, and the
// recordings of the same event, when the server says them). A stream
// recording plays as stored or as its review proxy (small, for a slow
// link), and clips of it are asked for between two marks of the player. A
// redacted copy is asked for from boxes drawn on the paused picture (moved
// at later times: positions in between follow a straight line, as the
// server draws them) and spans of sound to mute, previewed over the player.

import { api, ApiError } from './api.js';
import { h, icon, badge, stateBadge, hashButton, fmtTime, fmtDuration, fmtBytes, fmtClock, clear, toast } from './ui.js';
import { openSync } from './sync.js';
import { downloadLink } from './copies.js';

let els;
let devices = [];
let current = null; // the open recording's id
let listToken = 0;
let canBookmark = false; // officers and supervisors set and remove bookmarks
let canRemoveAny = false; // supervisors remove anyone's
let whoAmI = '';
let classes = null; // the configured retention classes (GET /api/v1/categories), once

// setRecordingCaps says what the one signed in may do here besides reading.
export function setRecordingCaps({ bookmark, removeAny, user }) {
  canBookmark = !!bookmark;
  canRemoveAny = !!removeAny;
  whoAmI = user || '';
}

export function initRecordings(elements) {
  els = elements;
  els.device.addEventListener('change', () => loadList());
  els.stateFilter.addEventListener('change', () => loadList());
  els.from.addEventListener('change', () => loadList());
  els.to.addEventListener('change', () => loadList());
  els.kind.addEventListener('change', () => loadList());
  // Officer, unit, case and category narrow the list across devices (the
  // server filters; what the user may not read is never listed).
  for (const el of [els.officer, els.unit, els.caseID].filter(Boolean)) {
    let timer = null;
    el.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(() => loadList(), 400); });
  }
  if (els.category) {
    els.category.addEventListener('change', () => loadList());
    // The classes are read when the list is first narrowed by one (the
    // console starts before sign-in).
    let asked = false;
    const offer = () => {
      if (asked) return;
      asked = true;
      api.categories().then((c) => {
        for (const cl of c.items || []) els.category.append(h('option', { value: cl.name }, cl.name.replace(/_/g, ' ')));
      }).catch(() => { asked = false; });
    };
    els.category.addEventListener('focus', offer);
    els.category.addEventListener('pointerdown', offer);
  }
  els.refresh.addEventListener('click', () => loadList());
  if (els.sync) {
    els.sync.addEventListener('click', () => {
      // The stored recordings the list shows (its filters choose the
      // devices and the time span), oldest first, at most maxTogether.
      const ids = listed.filter((r) => r.state !== 'live' && kindOf(r) === 'stream').map((r) => r.id).slice(0, maxTogether).reverse();
      if (!ids.length) { toast('No stored recordings listed to play together', 'error'); return; }
      openSync(`${ids.length} recording(s) listed`, ids, { onOpenRecording: openRecording });
    });
  }
  loadList();
}

// maxTogether bounds the players of one synchronised view.
const maxTogether = 9;
let listed = []; // the recordings the list shows

// ALL lists every recording the signed-in user may read (no device filter).
const ALL = '*';

// setRecordingDevices fills the device picker; null when this role may not
// list devices (an officer): then the list shows what the server lets them
// read.
export function setRecordingDevices(list) {
  const chosen = els.device.value;
  if (list == null) {
    devices = [];
    clear(els.device, h('option', { value: ALL }, 'all I may read'));
    els.device.value = ALL;
    if (chosen !== ALL) loadList();
    return;
  }
  devices = list.slice().sort((a, b) => a.id.localeCompare(b.id));
  // Every device the user may read by default: recent recordings across
  // them, narrowed by the filters.
  clear(els.device, h('option', { value: ALL }, devices.length ? 'all devices' : 'all (no devices registered)'),
    devices.map((d) => h('option', { value: d.id }, d.id + (d.name && d.name !== d.id ? ` — ${d.name}` : '') + (d.disabled ? ' (disabled)' : ''))));
  if (chosen === ALL || devices.some((d) => d.id === chosen)) els.device.value = chosen;
  else { els.device.value = ALL; loadList(); }
}

export function refreshIfShown() {
  if (els.device.value && !els.list.dataset.loading) loadList({ quiet: true });
}

function dayStart(v) { return v ? new Date(v + 'T00:00:00').toISOString() : ''; }
function dayEnd(v) {
  if (!v) return '';
  const d = new Date(v + 'T00:00:00');
  d.setDate(d.getDate() + 1);
  return d.toISOString();
}

async function loadList({ quiet = false } = {}) {
  const device = els.device.value;
  const my = ++listToken;
  if (!device) {
    clear(els.list, h('tr', { class: 'empty' }, h('td', { colspan: 9 }, 'Choose a device to list its recordings.')));
    els.listCount.textContent = '';
    return;
  }
  const params = { limit: '500' };
  if (device !== ALL) params.device = device;
  els.table.classList.toggle('all-devices', device === ALL);
  if (els.stateFilter.value) params.state = els.stateFilter.value;
  const kind = els.kind.value;
  if (kind) params.kind = kind;
  if (els.from.value) params.from = dayStart(els.from.value);
  if (els.to.value) params.to = dayEnd(els.to.value);
  for (const [name, el] of [['officer', els.officer], ['unit', els.unit], ['case', els.caseID], ['category', els.category]]) {
    const v = el && el.value.trim();
    if (v) params[name] = v;
  }
  if (!quiet) clear(els.list, h('tr', { class: 'empty' }, h('td', { colspan: 9 }, 'Loading…')));
  els.list.dataset.loading = '1';
  try {
    const body = await api.recordings(params);
    if (my !== listToken) return;
    // The kind is also checked here: a server that does not filter by kind
    // yet lists every recording ("" or no kind is a stream's).
    const items = (body.items || []).filter((r) => !kind || kindOf(r) === kind)
      .sort((a, b) => new Date(b.started_at) - new Date(a.started_at));
    renderList(items);
  } catch (err) {
    if (my !== listToken) return;
    clear(els.list, h('tr', { class: 'empty error' }, h('td', { colspan: 9 }, `Could not list recordings: ${err.message}`)));
  } finally {
    delete els.list.dataset.loading;
  }
}

function kindOf(r) { return r.kind || 'stream'; }

// originBadges: an uploaded recording's marks in the list: "uploaded", the
// recorder's important mark, its file name, and a link to the same event's
// other recordings.
function originBadges(r) {
  const same = Array.isArray(r.same_event) ? r.same_event : [];
  const sameMark = same.length ? h('span', { class: 'muted small', testid: 'rec-same-mark', title: `Same event as ${same.join(', ')}` }, ` ⇄ ${same.length}`) : null;
  if (kindOf(r) !== 'upload') return sameMark;
  const o = r.origin || null;
  return [
    ' ', badge('uploaded', 'info', { testid: 'rec-uploaded', title: o ? `Uploaded by dock ${o.dock}: ${o.file_name}` : 'A recorder\'s own file, uploaded by a dock' }),
    o && o.important ? h('span', { class: 'important', testid: 'rec-important', title: 'Marked important on the recorder' }, ' ★') : null,
    o ? h('span', { class: 'muted small origin-file', testid: 'rec-origin-file', title: `${o.file_name} from dock ${o.dock}` }, ` ${o.file_name}`) : null,
    sameMark,
  ];
}

// endTime shows only the time when the recording ended the day it started.
function endTime(start, end) {
  const full = fmtTime(end);
  return full.slice(0, 10) === fmtTime(start).slice(0, 10) ? full.slice(11) : full;
}

function renderList(items) {
  listed = items;
  els.listCount.textContent = `${items.length} recording${items.length === 1 ? '' : 's'}`;
  clear(els.list);
  if (!items.length) {
    els.list.append(h('tr', { class: 'empty' }, h('td', { colspan: 9 }, 'No recordings match.')));
    return;
  }
  for (const r of items) {
    const dur = r.ended_at ? new Date(r.ended_at) - new Date(r.started_at) : Date.now() - new Date(r.started_at);
    const open = h('button', { type: 'button', class: 'link mono', testid: 'open-recording', title: `Open ${r.id}`,
      onclick: () => openRecording(r.id) }, r.id);
    const codecs = (r.codecs || []).join(', ');
    const row = h('tr', { testid: 'rec-item', dataset: { recording: r.id, state: r.state, kind: kindOf(r) }, class: r.id === current ? 'selected' : '' },
      h('td', {}, stateBadge(r.state)),
      h('td', { class: 'col-device device-id' }, r.device_id),
      h('td', { class: 'rec-id-cell' }, open, originBadges(r)),
      h('td', { class: 'mono' }, fmtTime(r.started_at)),
      h('td', { class: 'mono' }, r.ended_at ? endTime(r.started_at, r.ended_at) : h('span', { class: 'muted' }, r.state === 'live' ? 'recording…' : '—')),
      h('td', { class: 'num' }, fmtDuration(dur)),
      h('td', { class: 'num' }, String(r.segment_count)),
      h('td', { class: 'clip codecs', title: codecs }, codecs.replace(/ \(stored as [^)]*\)/g, '')),
      h('td', { class: 'clip reason', title: r.end_reason || '' }, r.end_reason || h('span', { class: 'muted' }, '—')));
    row.addEventListener('click', (ev) => { if (!ev.target.closest('button')) openRecording(r.id); });
    els.list.append(row);
  }
}

// openRecording shows one recording's player, verification and segments.
export async function openRecording(id) {
  current = id;
  for (const tr of els.list.querySelectorAll('tr[data-recording]')) tr.classList.toggle('selected', tr.dataset.recording === id);
  els.detail.hidden = false;
  clear(els.detail, h('div', { class: 'panel-pad muted' }, `Loading ${id}…`));
  let rec;
  try {
    rec = await api.recording(id);
  } catch (err) {
    if (current !== id) return;
    clear(els.detail, h('div', { class: 'panel-pad error' }, `Could not open ${id}: ${err.message}`));
    return;
  }
  if (current !== id) return;
  // Opened from elsewhere (a case, an upload) with no device chosen: list
  // the recording's device beside it.
  if (!els.device.value && [...els.device.options].some((o) => o.value === rec.device_id)) {
    els.device.value = rec.device_id;
    loadList();
  }
  renderDetail(rec);
  els.detail.scrollIntoView({ block: 'start' });
}

function closeDetail() {
  current = null;
  const v = els.detail.querySelector('video');
  if (v) { v.pause(); v.removeAttribute('src'); v.load(); }
  els.detail.hidden = true;
  clear(els.detail);
  for (const tr of els.list.querySelectorAll('tr.selected')) tr.classList.remove('selected');
}

// uploadPlayer: how an uploaded file plays, by its name's extension (as the
// server's /media serves it: a video file remuxed to MP4, sound and
// pictures as stored). Without an origin the server predates playback of
// uploads: nothing is offered.
function uploadPlayer(rec, media) {
  const o = rec.origin;
  if (!o) return h('div', { class: 'no-media' }, 'An uploaded file: this server does not play it in the browser.');
  const ext = (o.file_name.match(/\.[^.]+$/) || [''])[0].toLowerCase();
  if (['.jpg', '.jpeg', '.png'].includes(ext)) return h('img', { testid: 'rec-image', class: 'rec-image', src: media, alt: o.file_name });
  if (['.wav', '.mp3', '.aac', '.amr', '.ogg', '.opus', '.oga', '.flac', '.m4a'].includes(ext)) return h('audio', { testid: 'rec-audio', controls: true, preload: 'metadata', src: media });
  return h('video', { testid: 'rec-video', controls: true, preload: 'metadata', src: media });
}

function renderDetail(rec) {
  const media = api.mediaURL(rec.id);
  const uploaded = kindOf(rec) === 'upload';
  const hasMedia = uploaded ? !!rec.origin : rec.segments.some((s) => s.kind === 'media');
  const video = uploaded ? uploadPlayer(rec, media)
    : hasMedia ? h('video', { testid: 'rec-video', controls: true, preload: 'metadata', src: media })
      : h('div', { class: 'no-media' }, 'No media stored yet.');
  const result = h('div', { class: 'verify-result', testid: 'verify-result', role: 'status', 'aria-live': 'polite', hidden: true });
  const verifyBtn = h('button', { type: 'button', class: 'btn btn-primary', testid: 'verify',
    title: 'Re-read every object, recompute every hash and chain link, check the signed manifest' }, icon('shield'), 'Verify');
  verifyBtn.addEventListener('click', () => runVerify(rec, verifyBtn, result));
  const header = h('div', { class: 'detail-head' },
    h('div', { class: 'detail-title' },
      stateBadge(rec.state),
      h('h3', { class: 'mono', testid: 'rec-id' }, rec.id),
      uploaded ? badge('uploaded file', 'info', { testid: 'rec-detail-uploaded' }) : null,
      uploaded && rec.origin && rec.origin.important ? badge('★ important', 'warn', { title: 'Marked important on the recorder' }) : null),
    h('div', { class: 'detail-actions' },
      verifyBtn,
      h('button', { type: 'button', class: 'btn', title: 'Reload the segments (a live recording grows)', onclick: () => openRecording(rec.id) }, icon('refresh'), 'Reload'),
      uploaded && rec.origin
        ? downloadLink('recording', rec.id, { href: api.originalURL(rec.id), download: rec.origin.file_name, testid: 'rec-original',
          title: 'Download the file exactly as the recorder made it (the stored original)' }, 'Original')
        : hasMedia ? downloadLink('recording', rec.id, { href: media + '?download=1', download: `${rec.id}.mp4`, title: 'Download the recording as one MP4' }, 'MP4') : null,
      h('a', { class: 'btn', href: api.recordingAuditURL(rec.id), download: `audit-recording-${rec.id}.pdf`, testid: 'rec-audit',
        title: 'The audit report: the recording\'s custody history as a signed PDF (README, "Audit reports")' }, icon('list'), 'Audit report'),
      h('button', { type: 'button', class: 'btn btn-ghost btn-icon', 'aria-label': 'Close the recording', title: 'Close (Esc)', onclick: closeDetail }, icon('close'))));

  const playerBox = h('div', { class: 'player' }, video);
  clear(els.detail,
    header,
    h('div', { class: 'detail-body' },
      playerBox,
      h('div', { class: 'detail-side' }, factsList(rec), retentionSection(rec), originSection(rec), result)),
    timelineSection(rec, video),
    !uploaded && hasMedia ? renditionSection(rec, video) : null,
    bookmarksSection(rec, video),
    !uploaded && hasMedia ? clipsSection(rec, video) : null,
    !uploaded && hasMedia ? redactSection(rec, video, playerBox) : null,
    gapsSection(rec),
    segmentsSection(rec));
}

function factsList(rec) {
  const dur = rec.ended_at ? new Date(rec.ended_at) - new Date(rec.started_at) : null;
  const size = rec.segments.reduce((n, s) => n + (s.size || 0), 0);
  return h('dl', { class: 'facts' },
    fact('Kind', kindOf(rec) === 'upload' ? 'uploaded file' : 'live stream'),
    fact('Device', rec.device_id), fact('Officer', rec.officer_id || '—'), fact('Case', rec.case_id || '—'),
    fact('Started', fmtTime(rec.started_at)), fact('Ended', rec.ended_at ? fmtTime(rec.ended_at) : (rec.state === 'live' ? 'still recording' : '—')),
    fact('Duration', dur != null ? fmtDuration(dur) : '—'), fact('End reason', rec.end_reason || '—'),
    fact('Segments', `${rec.segments.length} (${fmtBytes(size)})`), fact('Codecs', (rec.codecs || []).join(', ') || '—'),
    rec.manifest_key ? fact('Manifest', rec.manifest_key) : null);
}

const TIME_SOURCES = {
  file: "from the file's own metadata",
  given: 'given by the dock (the file name or a sidecar)',
  received: 'the time of upload: neither the file nor the dock said',
};

// originSection: where an uploaded recording came from (the recorder's
// file, the dock that sent it) and the recordings of the same event.
function originSection(rec) {
  const same = Array.isArray(rec.same_event) ? rec.same_event : [];
  if (kindOf(rec) !== 'upload' && !same.length) return null;
  const o = rec.origin;
  return h('section', { class: 'origin', testid: 'rec-origin' },
    kindOf(rec) === 'upload' ? h('h4', {}, 'Origin ', badge('uploaded', 'info')) : null,
    kindOf(rec) === 'upload' && !o ? h('p', { class: 'muted small' }, 'A recorder\'s own file uploaded by a dock; this server does not list its origin.') : null,
    o ? h('dl', { class: 'facts' },
      fact('File', h('span', { class: 'mono', testid: 'rec-origin-name' }, o.file_name)),
      fact('Size', fmtBytes(o.size)),
      fact('SHA-256', hashButton(o.sha256, 'SHA-256 of the uploaded file')),
      fact('Dock', h('span', { class: 'mono', testid: 'rec-origin-dock' }, o.dock)),
      fact('Important', h('span', { testid: 'rec-origin-important' }, o.important ? '★ yes (marked on the recorder)' : 'no')),
      fact('Time', h('span', { testid: 'rec-origin-time' }, TIME_SOURCES[o.time_source] || o.time_source || '—'))) : null,
    same.length ? h('p', { class: 'small', testid: 'rec-same-event' }, 'Same event: ',
      same.map((id, i) => [i ? ', ' : '', h('button', { type: 'button', class: 'link mono', title: `Open ${id}`, onclick: () => openRecording(id) }, id)]),
      h('span', { class: 'muted' }, kindOf(rec) === 'upload' ? ' (this uploaded original is the primary copy)' : ' (a recorder\'s own file: the primary copy)')) : null);
}

// retainText says a recording's retain_until in words.
function retainText(until) {
  if (until == null) return 'from its end (still recording)';
  if (until === 'permanent' || until === 'held by case') return until;
  return 'until ' + fmtTime(until);
}

// retentionSection: the recording's categories (retention classes), how
// long it is kept and by which rule; officers and supervisors (canBookmark:
// the same roles) change the categories with a reason. The server refuses
// what the user may not do (an officer shortening the retention, a
// supervisor their own footage's), and says why.
function retentionSection(rec) {
  if (!Array.isArray(rec.categories)) return null; // a server without retention classes
  const shown = h('div', { testid: 'rec-retention' });
  const render = (r) => {
    clear(shown,
      h('p', { class: 'small' }, 'Categories: ',
        r.categories.length ? r.categories.map((c) => [badge(c.replace(/_/g, ' '), 'info', { testid: 'rec-category', dataset: { category: c } }), ' '])
          : h('span', { class: 'muted', testid: 'rec-no-category' }, 'none')),
      h('p', { class: 'small' }, 'Kept ', h('strong', { testid: 'rec-retain-until' }, retainText(r.retain_until)),
        h('span', { class: 'muted', testid: 'rec-retention-rule' }, ` · ${r.retention_rule || ''}`)));
  };
  render(rec);
  let editor = null;
  if (canBookmark && !rec.deleted_at) {
    const form = h('form', { class: 'category-form', testid: 'category-form', hidden: true });
    const edit = h('button', { type: 'button', class: 'btn btn-small', testid: 'category-edit', title: 'Change the categories (with why)',
      onclick: async () => {
        if (!form.hidden) { form.hidden = true; return; }
        try {
          classes = classes || await api.categories();
        } catch (err) { toast(`Categories could not be read: ${err.message}`, 'error'); return; }
        const boxes = (classes.items || []).map((c) => h('label', { class: 'category-choice' },
          h('input', { type: 'checkbox', value: c.name, checked: rec.categories.includes(c.name), testid: 'category-choice', dataset: { category: c.name } }),
          ` ${c.name.replace(/_/g, ' ')} `, h('span', { class: 'muted small' }, c.period)));
        const reason = h('input', { type: 'text', maxlength: '500', required: true, placeholder: 'Why', testid: 'category-reason', 'aria-label': 'Why the categories change' });
        const save = h('button', { type: 'submit', class: 'btn', testid: 'category-save' }, 'Save categories');
        clear(form, h('div', { class: 'category-choices' }, boxes), reason, save);
        form.onsubmit = async (ev) => {
          ev.preventDefault();
          const chosen = [...form.querySelectorAll('input[type=checkbox]:checked')].map((b) => b.value);
          save.disabled = true;
          try {
            const r = await api.setCategories(rec.id, chosen, reason.value.trim());
            Object.assign(rec, r);
            render(rec);
            form.hidden = true;
            toast('Categories saved (in the custody ledger)', 'ok');
          } catch (err) { toast(`Not changed: ${err.message}`, 'error'); }
          save.disabled = false;
        };
        form.hidden = false;
        reason.focus();
      } }, 'Change');
    editor = [edit, form];
  }
  return h('section', { class: 'retention', testid: 'rec-retention-section' }, h('h4', {}, 'Retention ', editor ? editor[0] : null), shown,
    editor ? editor[1] : null);
}

// timelineSection: the recording's thumbnails (one per segment) as a strip
// and its timeline sprite as a scrub bar: hovering shows the tile of that
// moment, a click (on either) seeks the player there. Both are made by jobs
// when the recording is closed; until then the section says so. Times are
// from the recording's start, as bookmarks' offsets are.
function timelineSection(rec, player) {
  const seekable = player && typeof player.currentTime === 'number';
  const seek = (sec) => { if (seekable) { player.currentTime = sec; player.play().catch(() => {}); } };
  const strip = h('div', { class: 'thumb-strip', testid: 'thumbnails' }, h('p', { class: 'muted small' }, 'Loading thumbnails…'));
  const scrub = h('div', { class: 'sprite-scrub', testid: 'sprite-scrub', hidden: true });
  const count = badge('…', 'info');
  const later = 'Made when the recording is closed (background jobs); none yet.';
  (async () => {
    try {
      const items = (await api.thumbnails(rec.id)).items || [];
      if (current !== rec.id) return;
      count.textContent = String(items.length);
      clear(strip, items.map((t) => h('button', { type: 'button', class: 'thumb', testid: 'thumbnail', disabled: !seekable,
        title: `${fmtDuration(t.at_seconds * 1000)}${seekable ? ': play from here' : ''}`, dataset: { at: String(t.at_seconds) },
        onclick: () => seek(t.at_seconds) },
      h('img', { src: t.url, width: String(t.width), height: String(t.height), loading: 'lazy', alt: `Frame at ${fmtDuration(t.at_seconds * 1000)}` }),
      h('span', { class: 'mono small' }, fmtDuration(t.at_seconds * 1000)))));
    } catch (err) {
      if (current !== rec.id) return;
      count.textContent = '0';
      clear(strip, h('p', { class: 'muted small', testid: 'no-thumbnails' }, err instanceof ApiError && err.status === 404 ? later : `Thumbnails could not be read: ${err.message}`));
    }
  })();
  (async () => {
    let idx;
    try {
      idx = await api.spriteIndex(rec.id);
    } catch { return; } // none yet: the strip says why
    if (current !== rec.id || !idx.tiles || !idx.tiles.length) return;
    const tiles = idx.tiles;
    const end = tiles[tiles.length - 1].at_seconds + idx.every_seconds;
    const url = api.spriteURL(rec.id);
    const preview = h('div', { class: 'sprite-tile', testid: 'sprite-tile', hidden: true });
    Object.assign(preview.style, { width: `${idx.tile_width}px`, height: `${idx.tile_height}px`, backgroundImage: `url("${url}")` });
    const label = h('span', { class: 'mono small sprite-time' });
    preview.append(label);
    const bar = h('div', { class: 'sprite-bar', testid: 'sprite-bar', title: 'Scrub: hover to see the moment, click to play from it' });
    const tileAt = (ev) => {
      const r = bar.getBoundingClientRect();
      const sec = Math.max(0, Math.min(1, (ev.clientX - r.left) / r.width)) * end;
      let i = tiles.findIndex((t) => t.at_seconds > sec) - 1;
      if (i < -1) i = tiles.length - 1;
      return { sec, tile: tiles[Math.max(0, i)], x: ev.clientX - r.left, w: r.width };
    };
    bar.addEventListener('mousemove', (ev) => {
      const { sec, tile, x, w } = tileAt(ev);
      preview.hidden = false;
      preview.style.backgroundPosition = `-${tile.x}px -${tile.y}px`;
      preview.style.left = `${Math.max(0, Math.min(w - idx.tile_width, x - idx.tile_width / 2))}px`;
      preview.dataset.at = String(tile.at_seconds);
      label.textContent = fmtDuration(sec * 1000);
    });
    bar.addEventListener('mouseleave', () => { preview.hidden = true; });
    bar.addEventListener('click', (ev) => seek(tileAt(ev).sec));
    clear(scrub, preview, bar);
    scrub.hidden = false;
  })();
  return h('section', { class: 'subsection', testid: 'timeline-section' }, h('h4', {}, 'Timeline ', count), scrub, strip);
}

// bookmarksSection: the recording's bookmarks by time (a click seeks the
// player there), and for officers and supervisors a note to set one at the
// player's position. Removed ones stay listed, struck, with who and why.
function bookmarksSection(rec, player) {
  const list = h('div', { testid: 'bookmarks' }, h('p', { class: 'muted small' }, 'Loading bookmarks…'));
  const count = badge('…', 'info');
  const seekable = player && typeof player.currentTime === 'number';
  const load = async () => {
    let items;
    try {
      items = (await api.bookmarks(rec.id)).items || [];
    } catch (err) {
      clear(list, h('p', { class: 'muted small' }, `Bookmarks could not be read: ${err.message}`));
      return;
    }
    if (current !== rec.id) return;
    count.textContent = String(items.filter((b) => !b.removed_at).length);
    if (!items.length) {
      clear(list, h('p', { class: 'muted small', testid: 'no-bookmarks' }, 'No bookmarks.'));
      return;
    }
    clear(list, h('ul', { class: 'bookmarks' }, items.map((b) => {
      const at = h('button', { type: 'button', class: 'link mono', disabled: !seekable || !!b.removed_at,
        title: seekable ? 'Play from here' : fmtTime(b.at),
        onclick: () => { player.currentTime = b.offset_seconds; player.play().catch(() => {}); } }, fmtDuration(b.offset_seconds * 1000));
      const remove = canBookmark && !b.removed_at && (b.created_by === whoAmI || canRemoveAny)
        ? h('button', { type: 'button', class: 'btn btn-ghost btn-small', testid: 'bookmark-remove', title: 'Remove this bookmark (it stays listed, with why)',
          onclick: async () => {
            const reason = window.prompt('Why is this bookmark removed?');
            if (!reason || !reason.trim()) return;
            try {
              await api.removeBookmark(rec.id, b.id, reason.trim());
              load();
            } catch (err) { toast(`Not removed: ${err.message}`, 'error'); }
          } }, 'Remove') : null;
      return h('li', { testid: 'bookmark', class: b.removed_at ? 'removed' : '', dataset: { id: b.id } },
        at, ' ', h('span', { class: 'note', testid: 'bookmark-note' }, b.note || '—'),
        h('span', { class: 'muted small' }, ` · ${b.created_by}, ${fmtTime(b.created_at)}`),
        b.removed_at ? h('span', { class: 'muted small', testid: 'bookmark-removed' }, ` · removed by ${b.removed_by}: ${b.removed_reason}`) : null,
        remove);
    })));
  };
  let form = null;
  if (canBookmark && seekable) {
    const note = h('input', { type: 'text', maxlength: '500', placeholder: 'What happens here', testid: 'bookmark-note-input', 'aria-label': 'Bookmark note' });
    const add = h('button', { type: 'submit', class: 'btn', testid: 'bookmark-add', title: "Mark the player's position" }, 'Bookmark this moment');
    form = h('form', { class: 'bookmark-form', onsubmit: async (ev) => {
      ev.preventDefault();
      add.disabled = true;
      try {
        await api.addBookmark(rec.id, Math.round(player.currentTime * 1000) / 1000, note.value);
        note.value = '';
        load();
      } catch (err) { toast(`Not bookmarked: ${err.message}`, 'error'); }
      add.disabled = false;
    } }, note, add);
  }
  load();
  return h('section', { class: 'subsection', testid: 'bookmarks-section' }, h('h4', {}, 'Bookmarks ', count), form, list);
}

// renditionSection switches the player between the stored original and
// the review proxy, keeping its position.
function renditionSection(rec, player) {
  const pick = (url, label) => {
    const at = player.currentTime || 0;
    const playing = !player.paused;
    player.src = url;
    player.addEventListener('loadedmetadata', () => {
      player.currentTime = at;
      if (playing) player.play().catch(() => {});
    }, { once: true });
    player.addEventListener('error', () => toast(`The ${label} cannot be played now (not made yet?)`, 'error'), { once: true });
  };
  const orig = h('input', { type: 'radio', name: 'rendition', value: 'original', checked: true, testid: 'rendition-original',
    onchange: () => pick(api.mediaURL(rec.id), 'original') });
  const proxy = h('input', { type: 'radio', name: 'rendition', value: 'proxy', testid: 'rendition-proxy',
    onchange: () => pick(api.proxyURL(rec.id), 'review proxy') });
  return h('section', { class: 'subsection rendition', testid: 'rendition' },
    h('h4', {}, 'Play'),
    h('label', { title: 'The stored bytes, as recorded' }, orig, ' Original'),
    ' ',
    h('label', { title: 'A small copy (640×360, ~0.7 Mbit/s) made for review on a slow link; the original is the evidence' }, proxy, ' Review proxy'));
}

// askedList lists the copies of one kind asked for of the recording (its
// jobs' states, and once made a link and "Play here", which plays it in the
// recording's player), again every 3 s while one is being made. It returns
// the list's element and a function that reloads it.
function askedList(rec, player, { name, fetch, describe }) {
  const list = h('div', { testid: `${name}s` }, h('p', { class: 'muted small' }, `Loading ${name}s…`));
  let timer = null;
  const load = async () => {
    clearTimeout(timer);
    let items;
    try {
      items = (await fetch(rec.id)).items || [];
    } catch (err) {
      clear(list, h('p', { class: 'muted small' }, `Could not be read: ${err.message}`));
      return;
    }
    if (current !== rec.id) return;
    if (!items.length) {
      clear(list, h('p', { class: 'muted small', testid: `no-${name}s` }, 'None asked for.'));
      return;
    }
    clear(list, h('ul', { class: 'clips' }, items.map((c) => h('li', { testid: name, dataset: { job: c.job_id, state: c.state } },
      h('span', { class: 'mono' }, describe(c.params || {})), ' ',
      c.made
        ? [h('a', { href: c.made.url, target: '_blank', rel: 'noopener', testid: `${name}-play`, title: `SHA-256 ${c.made.sha256}` }, 'Open'), ' ',
          h('button', { type: 'button', class: 'btn btn-small', testid: `${name}-play-here`, onclick: () => {
            player.src = c.made.url;
            player.play().catch(() => {});
          } }, 'Play here'), ' ',
          downloadLink('recording', rec.id, { href: c.made.url + '?download=1', download: `${rec.id}-${name}.mp4`, class: 'btn btn-small' }, 'Download')]
        : badge(c.state, c.state === 'failed' ? 'error' : 'info', { testid: `${name}-state`, title: c.error || '' }),
      h('span', { class: 'muted small' }, ` · ${c.requested_by}, ${fmtTime(c.created_at)}`)))));
    if (items.some((c) => c.state === 'queued' || c.state === 'running')) timer = setTimeout(load, 3000);
  };
  load();
  return { list, load };
}

// clipsSection lists the clips asked for of the recording and, for those
// who may, asks for one between two marks set at the player's position.
function clipsSection(rec, player) {
  const { list, load } = askedList(rec, player, { name: 'clip', fetch: api.clips,
    describe: (p) => `${fmtDuration(p.from_seconds * 1000)} – ${fmtDuration(p.to_seconds * 1000)}` });
  let form = null;
  if (canBookmark && player && typeof player.currentTime === 'number') {
    let from = null;
    let to = null;
    const shown = h('span', { class: 'mono', testid: 'clip-window' }, '—');
    const make = h('button', { type: 'submit', class: 'btn', testid: 'clip-make', disabled: true }, 'Make clip');
    const show = () => {
      shown.textContent = `${from === null ? '…' : fmtDuration(from * 1000)} – ${to === null ? '…' : fmtDuration(to * 1000)}`;
      make.disabled = from === null || to === null || to <= from;
    };
    const mark = (which) => () => {
      const t = Math.round(player.currentTime * 1000) / 1000;
      if (which === 'from') from = t; else to = t;
      show();
    };
    form = h('form', { class: 'clip-form', onsubmit: async (ev) => {
      ev.preventDefault();
      make.disabled = true;
      try {
        await api.addClip(rec.id, from, to);
        toast('Clip asked for: it is made in the background');
        load();
      } catch (err) { toast(`No clip: ${err.message}`, 'error'); }
      show();
    } },
    h('button', { type: 'button', class: 'btn btn-small', testid: 'clip-from', onclick: mark('from'), title: "The clip starts at the player's position" }, 'Mark start'),
    h('button', { type: 'button', class: 'btn btn-small', testid: 'clip-to', onclick: mark('to'), title: "The clip ends at the player's position" }, 'Mark end'),
    ' ', shown, ' ', make);
  }
  return h('section', { class: 'subsection', testid: 'clips-section' }, h('h4', {}, 'Clips'), form, list);
}

// videoRect is where the picture is inside the player (letterboxed).
function videoRect(v) {
  const W = v.clientWidth;
  const H = v.clientHeight;
  const vw = v.videoWidth || 16;
  const vh = v.videoHeight || 9;
  const s = Math.min(W / vw, H / vh);
  return { x: (W - vw * s) / 2, y: (H - vh * s) / 2, w: vw * s, h: vh * s };
}

// boxAt is where a box is at t (linear between its keys, held before the
// first and after the last), or null when it hides nothing then: as the
// server draws it.
function boxAt(b, t) {
  if (t < b.from || (b.to && t >= b.to) || !b.keys.length) return null;
  const keys = [...b.keys].sort((p, q) => p.at - q.at);
  const i = keys.findIndex((k) => k.at > t);
  if (i === 0) return keys[0];
  if (i === -1) return keys[keys.length - 1];
  const a = keys[i - 1];
  const c = keys[i];
  const f = (t - a.at) / (c.at - a.at);
  const lerp = (x, y) => x + (y - x) * f;
  return { x: lerp(a.x, c.x), y: lerp(a.y, c.y), w: lerp(a.w, c.w), h: lerp(a.h, c.h) };
}

// redactSection is the redaction editor. "Draw a box" lets the next drag
// on the picture make a box that hides from the player's position on; a
// box chosen in the list takes its next drag as its position at that
// moment. Boxes are previewed over the player as it plays; spans of sound
// are muted between two presses; "Make redacted copy" asks the server.
function redactSection(rec, player, playerBox) {
  const { list, load } = askedList(rec, player, { name: 'redaction', fetch: api.redactions,
    describe: (p) => `${(p.boxes || []).length} box(es), ${(p.mutes || []).length} muted span(s)` });
  const title = h('h4', {}, 'Redacted copies ', h('span', { class: 'muted hint' }, 'boxes are drawn by hand; the original never changes'));
  if (!canBookmark) return h('section', { class: 'subsection', testid: 'redact-section' }, title, list);
  const boxes = [];
  const mutes = [];
  let chosen = -1;
  let drawing = false;
  const overlay = h('div', { class: 'redact-overlay', testid: 'redact-overlay' });
  playerBox.append(overlay);
  const now = () => Math.round((player.currentTime || 0) * 1000) / 1000;
  const frac = (ev) => {
    const r = videoRect(player);
    const b = overlay.getBoundingClientRect();
    return { x: Math.min(1, Math.max(0, (ev.clientX - b.left - r.x) / r.w)), y: Math.min(1, Math.max(0, (ev.clientY - b.top - r.y) / r.h)) };
  };
  const draw = () => {
    const r = videoRect(player);
    const t = player.currentTime || 0;
    clear(overlay, ...boxes.map((b, i) => {
      const k = boxAt(b, t);
      if (!k) return null;
      const el = h('div', { class: `redact-box ${b.style}${i === chosen ? ' chosen' : ''}`, testid: 'redact-preview' }, String(i + 1));
      Object.assign(el.style, { left: `${r.x + k.x * r.w}px`, top: `${r.y + k.y * r.h}px`, width: `${k.w * r.w}px`, height: `${k.h * r.h}px` });
      return el;
    }));
  };
  for (const ev of ['timeupdate', 'seeked', 'loadedmetadata', 'pause', 'play']) player.addEventListener(ev, draw);
  (function tick() {
    if (!overlay.isConnected) return;
    if (!player.paused) draw();
    requestAnimationFrame(tick);
  })();
  let start = null;
  let rubber = null;
  const place = (el, p, q) => {
    const r = videoRect(player);
    Object.assign(el.style, { left: `${r.x + Math.min(p.x, q.x) * r.w}px`, top: `${r.y + Math.min(p.y, q.y) * r.h}px`,
      width: `${Math.abs(p.x - q.x) * r.w}px`, height: `${Math.abs(p.y - q.y) * r.h}px` });
  };
  const drawBtn = h('button', { type: 'button', class: 'btn btn-small', testid: 'redact-draw',
    title: "Drag on the picture: a new box from here on, or the chosen box's position at this moment" }, 'Draw a box');
  const setDrawing = (on) => {
    drawing = on;
    overlay.classList.toggle('drawing', on);
    drawBtn.classList.toggle('active', on);
  };
  overlay.addEventListener('pointerdown', (ev) => {
    if (!drawing) return;
    ev.preventDefault();
    player.pause();
    start = frac(ev);
    rubber = h('div', { class: 'redact-box rubber' });
    overlay.append(rubber);
    overlay.setPointerCapture(ev.pointerId);
  });
  overlay.addEventListener('pointermove', (ev) => { if (start) place(rubber, start, frac(ev)); });
  overlay.addEventListener('pointerup', (ev) => {
    if (!start) return;
    const p = frac(ev);
    const key = { at: now(), x: Math.min(p.x, start.x), y: Math.min(p.y, start.y), w: Math.abs(p.x - start.x), h: Math.abs(p.y - start.y) };
    start = null;
    if (key.w > 0.005 && key.h > 0.005) {
      if (chosen >= 0) {
        const b = boxes[chosen];
        b.keys = b.keys.filter((k) => k.at !== key.at).concat([key]);
        if (key.at < b.from) b.from = key.at;
      } else {
        boxes.push({ style: 'pixelate', from: key.at, to: 0, keys: [key] });
        chosen = boxes.length - 1;
      }
    }
    setDrawing(false);
    show();
    draw();
  });
  drawBtn.addEventListener('click', () => {
    if (!drawing) chosen = -1;
    setDrawing(!drawing);
    draw();
  });
  let muteFrom = null;
  const muteBtn = h('button', { type: 'button', class: 'btn btn-small', testid: 'redact-mute',
    title: 'Mute the sound from here; press again where the muting ends' }, 'Mute from here');
  muteBtn.addEventListener('click', () => {
    if (muteFrom === null) {
      muteFrom = now();
      muteBtn.textContent = 'Mute to here';
      return;
    }
    const to = now();
    if (to > muteFrom) mutes.push({ from: muteFrom, to });
    muteFrom = null;
    muteBtn.textContent = 'Mute from here';
    show();
  });
  const items = h('div', { testid: 'redact-items' });
  const make = h('button', { type: 'button', class: 'btn btn-primary btn-small', testid: 'redact-make', disabled: true }, 'Make redacted copy');
  const show = () => {
    make.disabled = !boxes.length && !mutes.length;
    clear(items, h('ul', { class: 'clips' },
      boxes.map((b, i) => h('li', { testid: 'redact-box', class: i === chosen ? 'selected' : '' },
        h('button', { type: 'button', class: 'link', title: 'Choose it: the next drag on the picture is its position at that moment',
          onclick: () => { chosen = i; setDrawing(true); show(); draw(); } }, `Box ${i + 1}`),
        h('select', { 'aria-label': `Box ${i + 1} style`, testid: 'redact-style', onchange: (ev) => { b.style = ev.target.value; draw(); } },
          h('option', { value: 'pixelate', selected: b.style === 'pixelate' }, 'pixelate'),
          h('option', { value: 'solid', selected: b.style === 'solid' }, 'solid')),
        h('span', { class: 'mono small' }, ` ${fmtDuration(b.from * 1000)} – ${b.to ? fmtDuration(b.to * 1000) : 'end'}, ${b.keys.length} position(s) `),
        h('button', { type: 'button', class: 'btn btn-small', title: "The box hides from the player's position",
          onclick: () => { b.from = now(); show(); draw(); } }, 'From here'),
        h('button', { type: 'button', class: 'btn btn-small', title: "The box hides until the player's position",
          onclick: () => { if (now() > b.from) b.to = now(); show(); draw(); } }, 'To here'),
        h('button', { type: 'button', class: 'btn btn-ghost btn-small', onclick: () => { boxes.splice(i, 1); chosen = -1; show(); draw(); } }, 'Remove'))),
      mutes.map((m, i) => h('li', { testid: 'redact-muted' }, h('span', { class: 'mono small' }, `Muted ${fmtDuration(m.from * 1000)} – ${fmtDuration(m.to * 1000)} `),
        h('button', { type: 'button', class: 'btn btn-ghost btn-small', onclick: () => { mutes.splice(i, 1); show(); } }, 'Remove')))));
  };
  make.addEventListener('click', async () => {
    make.disabled = true;
    try {
      await api.addRedaction(rec.id, {
        boxes: boxes.map((b) => ({ from_seconds: b.from, to_seconds: b.to, style: b.style,
          keys: b.keys.map((k) => ({ at_seconds: k.at, x: k.x, y: k.y, w: k.w, h: k.h })) })),
        mutes: mutes.map((m) => ({ from_seconds: m.from, to_seconds: m.to })),
      });
      toast('Redacted copy asked for: it is made in the background');
      load();
    } catch (err) { toast(`No redacted copy: ${err.message}`, 'error'); }
    make.disabled = false;
  });
  show();
  return h('section', { class: 'subsection', testid: 'redact-section' }, title,
    h('div', { class: 'clip-form' }, drawBtn, muteBtn, make), items, list);
}


function gapsSection(rec) {
  return h('section', { class: 'subsection', testid: 'gaps' },
    h('h4', {}, 'Gaps ', badge(String(rec.gaps.length), rec.gaps.length ? 'warn' : 'ok')),
    gapsTable(rec.gaps));
}

function segmentsSection(rec) {
  return h('section', { class: 'subsection', testid: 'segments-section' },
    h('h4', {}, 'Segments ', badge(String(rec.segments.length), 'info'),
      h('span', { class: 'muted hint' }, 'Hashes are shortened: hover to read in full, click to copy.')),
    segmentsTable(rec.segments));
}

function fact(k, v) {
  return [h('dt', {}, k), h('dd', {}, v)];
}

function gapsTable(gaps) {
  if (!gaps.length) return h('p', { class: 'muted', testid: 'no-gaps' }, 'No gaps recorded: the recording is continuous.');
  return h('div', { class: 'table-wrap' }, h('table', { class: 'grid' },
    h('thead', {}, h('tr', {}, ['Kind', 'Start', 'End', 'Length', 'Track', 'Detail'].map((t) => h('th', {}, t)))),
    h('tbody', {}, gaps.map((g) => h('tr', { testid: 'gap', class: 'row-warn' },
      h('td', {}, badge(g.kind, g.kind === 'damaged' ? 'bad' : 'warn')), h('td', {}, fmtTime(g.start)), h('td', {}, g.end ? fmtTime(g.end) : 'open'),
      h('td', { class: 'num' }, g.end ? fmtDuration(new Date(g.end) - new Date(g.start)) : '—'),
      h('td', {}, g.track || 'all'), h('td', {}, g.detail || ''))))));
}

function segmentsTable(segs) {
  if (!segs.length) return h('p', { class: 'muted' }, 'No segments stored yet.');
  let prev = null;
  const rows = segs.map((s) => {
    // Within the recording each link must name the previous segment's chain
    // hash; the first one links to the device's chain before it.
    let link;
    if (prev == null) link = h('span', { class: 'muted', title: 'links to the device chain before this recording' }, '↤');
    else if (s.prev_chain_hash === prev.chain_hash) link = h('span', { class: 'ok', title: 'links to the previous segment' }, '✓');
    else link = h('span', { class: 'bad', title: 'does not link to the previous segment' }, '✗');
    prev = s;
    return h('tr', { testid: 'segment', dataset: { seq: String(s.seq) } },
      h('td', { class: 'num' }, String(s.seq)),
      h('td', {}, s.kind),
      h('td', {}, fmtTime(s.started_at)),
      h('td', { class: 'num' }, s.kind === 'init' ? '—' : `${(s.duration_ms / 1000).toFixed(2)} s`),
      h('td', { class: 'num' }, fmtBytes(s.size)),
      h('td', { class: 'center', title: s.kind === 'media' ? (s.keyframe ? 'starts with a keyframe' : 'does not start with a keyframe') : '' },
        s.kind === 'media' ? (s.keyframe ? '●' : h('span', { class: 'warn' }, '○')) : ''),
      h('td', { testid: 'sha256' }, hashButton(s.sha256, `SHA-256 of segment ${s.seq}`)),
      h('td', { class: 'num' }, String(s.chain_seq)),
      h('td', {}, hashButton(s.prev_chain_hash, `Previous chain hash of segment ${s.seq}`)),
      h('td', { testid: 'chain-hash' }, hashButton(s.chain_hash, `Chain hash of segment ${s.seq}`)),
      h('td', { class: 'center' }, link));
  });
  return h('div', { class: 'table-wrap' }, h('table', { class: 'grid segments', testid: 'segments' },
    h('thead', {}, h('tr', {}, ['#', 'Kind', 'Started', 'Length', 'Size', 'Key', 'SHA-256', 'Chain #', 'Prev chain hash', 'Chain hash', 'Link']
      .map((t) => h('th', {}, t)))),
    h('tbody', {}, rows)));
}

async function runVerify(rec, btn, out) {
  btn.disabled = true;
  const label = btn.lastChild;
  label.textContent = 'Verifying…';
  out.hidden = false;
  out.className = 'verify-result verify-running';
  clear(out, h('strong', {}, 'Verifying…'), h('p', {}, 'Re-reading every object and recomputing its hash and chain link.'));
  for (const tr of els.detail.querySelectorAll('tr.row-bad')) tr.classList.remove('row-bad');
  try {
    const v = await api.verify(rec.id);
    out.dataset.ok = String(!!v.ok);
    const when = `checked at ${fmtClock()}`;
    if (v.ok) {
      out.className = 'verify-result verify-ok';
      const pending = /not yet written/.test(v.manifest || '');
      clear(out,
        h('strong', { class: 'verdict' }, '✓ Verified: intact'),
        h('p', {}, `${v.checked} object${v.checked === 1 ? '' : 's'} re-read and re-hashed; the hash chain holds`,
          v.chain_head ? [' up to ', hashButton(v.chain_head, 'Chain head')] : null),
        h('p', {}, 'Signed manifest: ', h('strong', {}, v.manifest || '—'), '.'),
        pending ? h('p', { class: 'muted' }, 'The recording is still live: its manifest is signed when it ends. Verify again then.') : null,
        v.gaps && v.gaps.length ? h('p', { class: 'warn' }, `${v.gaps.length} gap(s) recorded (listed below); gaps are declared, not failures.`) : null,
        h('p', { class: 'muted' }, when));
    } else {
      out.className = 'verify-result verify-bad';
      const seq = v.first_bad_seq;
      clear(out,
        h('strong', { class: 'verdict' }, seq != null ? `✗ Verification FAILED at segment #${seq}` : '✗ Verification FAILED'),
        h('p', {}, v.reason || 'no reason given'),
        v.manifest ? h('p', {}, 'Manifest: ', v.manifest) : null,
        h('p', { class: 'muted' }, `${v.checked || 0} object(s) checked before the failure; ${when}`));
      if (seq != null) {
        const row = els.detail.querySelector(`tr[data-testid="segment"][data-seq="${seq}"]`);
        if (row) { row.classList.add('row-bad'); row.scrollIntoView({ block: 'center' }); }
      }
    }
  } catch (err) {
    out.className = 'verify-result verify-bad';
    out.dataset.ok = 'error';
    clear(out, h('strong', { class: 'verdict' }, 'Verification could not run'), h('p', {}, err.message));
    if (!(err instanceof ApiError)) toast(err.message, 'bad');
  } finally {
    btn.disabled = false;
    label.textContent = 'Verify again';
  }
  // A live recording grows: show the segments the verdict covered.
  if (rec.state === 'live') refreshTables(rec.id);
}

async function refreshTables(id) {
  let rec;
  try { rec = await api.recording(id); } catch { return; }
  if (current !== id) return;
  const bad = els.detail.querySelector('tr.row-bad')?.dataset.seq;
  els.detail.querySelector('[data-testid="gaps"]')?.replaceWith(gapsSection(rec));
  els.detail.querySelector('[data-testid="segments-section"]')?.replaceWith(segmentsSection(rec));
  if (bad != null) els.detail.querySelector(`tr[data-testid="segment"][data-seq="${bad}"]`)?.classList.add('row-bad');
  const facts = els.detail.querySelector('.detail-side > .facts');
  if (facts) facts.replaceWith(factsList(rec));
}

export function handleEscape() {
  if (!els.detail.hidden) { closeDetail(); return true; }
  return false;
}
