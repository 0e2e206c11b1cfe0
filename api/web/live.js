// "Live now" (who is publishing, polled every 2 s) and the live wall: WHEP
// viewing sessions, one tile each.

import { api, request, CONSOLE_HEADER, ApiError } from './api.js';
import { h, icon, badge, fmtAgo, fmtClock, fmtDuration, fmtTime, clear, toast } from './ui.js';

const POLL_MS = 2000;
const STATS_MS = 1000;
const ICE_GATHER_CAP_MS = 2000;
const STALL_MS = 4000;

// What the console knows about who is live, for the wall to consult.
const state = {
  live: new Map(), // device id -> live item
  devices: new Map(), // device id -> device (name, officer)
  lastPoll: 0,
  pollError: null,
  timer: null,
  statsTimer: null,
  tiles: new Set(),
};

let els;
let hooks = { onStatus() {}, onCount() {} };

export function initLive(elements, callbacks) {
  els = elements;
  hooks = { ...hooks, ...callbacks };
  els.closeAll.addEventListener('click', () => closeAll('closed by you'));
  els.muteAll.addEventListener('click', () => { muteAllExcept(null); toast('All views muted'); });
  // Leaving the page hangs up every session (keepalive lets the DELETE
  // outlive the page).
  addEventListener('pagehide', () => {
    for (const t of state.tiles) t.hangup({ keepalive: true });
  });
  renderWall();
}

let caps = { watch: true };

// setLiveCaps says what the signed-in role may do (watch or only list).
export function setLiveCaps(c) {
  caps = c;
  resetLive();
}

// resetLive forgets the list (a new sign-in may see it differently).
export function resetLive() {
  rows.clear();
  state.live = new Map();
  els.liveList.replaceChildren();
}

export function setDevices(list) {
  state.devices = new Map(list.map((d) => [d.id, d]));
}

export function startLive() {
  stopLive();
  poll();
  state.timer = setInterval(poll, POLL_MS);
  state.statsTimer = setInterval(() => state.tiles.forEach((t) => t.sample()), STATS_MS);
}

export function stopLive() {
  clearInterval(state.timer);
  clearInterval(state.statsTimer);
  state.timer = state.statsTimer = null;
}

// closeAll hangs up every tile (sign-out, expired session).
export function closeAll(reason) {
  for (const t of [...state.tiles]) t.close(reason);
}


async function poll() {
  try {
    const body = await api.live();
    const items = (body.items || []).slice().sort((a, b) => a.device_id.localeCompare(b.device_id));
    state.live = new Map(items.map((i) => [i.device_id, i]));
    state.lastPoll = Date.now();
    state.pollError = null;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return;
    state.pollError = err.message;
  }
  renderList();
  for (const t of state.tiles) t.liveChanged(state.live.get(t.device));
  hooks.onStatus({ ok: !state.pollError, error: state.pollError, at: state.lastPoll });
}

function deviceLabel(id) {
  const d = state.devices.get(id);
  if (!d) return '';
  return [d.name !== id && d.name, d.officer_id && `officer ${d.officer_id}`].filter(Boolean).join(' · ');
}

// renderList updates the list in place (elements are kept per device, so a
// click or keyboard focus is never lost to the 2-second refresh).
const rows = new Map(); // device id -> {li, since, open, label, chips, codecs}

function renderList() {
  const list = els.liveList;
  const items = [...state.live.values()];
  els.liveCount.textContent = String(items.length);
  els.liveCount.closest('h2')?.classList.toggle('none-live', !items.length);
  for (const [id, row] of rows) {
    if (!state.live.has(id)) { row.li.remove(); rows.delete(id); }
  }
  let empty = list.querySelector('.empty');
  if (!items.length) {
    if (!empty) { empty = h('li', { class: 'empty' }); list.append(empty); }
    empty.textContent = state.pollError ? 'Cannot reach the server.' : 'No device is publishing.';
    return;
  }
  empty?.remove();
  const now = Date.now();
  let prev = null;
  for (const it of items) {
    let row = rows.get(it.device_id);
    if (!row) {
      row = makeRow(it.device_id);
      rows.set(it.device_id, row);
    }
    // Keep the sorted order without moving nodes that are already in place.
    const want = prev ? prev.nextSibling : list.firstChild;
    if (want !== row.li) list.insertBefore(row.li, want);
    prev = row.li;
    const open = [...state.tiles].filter((t) => t.device === it.device_id && !['ended', 'failed', 'error'].includes(t.el.dataset.state)).length;
    row.open.hidden = !open;
    row.open.textContent = `${open} open`;
    const label = deviceLabel(it.device_id);
    row.label.hidden = !label;
    row.label.textContent = label;
    row.since.textContent = fmtAgo(it.since, now);
    row.since.dateTime = it.since;
    row.meta.title = `live since ${fmtTime(it.since)} from ${it.remote_addr || '?'}; recording ${it.recording_id || '?'}`;
    row.remote.textContent = it.remote_addr || '';
    const codecs = (it.codecs || []).join('\n');
    if (row.codecs !== codecs) {
      row.codecs = codecs;
      clear(row.chips, (it.codecs || []).map((c) => h('span', { class: 'chip', title: c }, c.replace(/ \(stored as [^)]*\)/, ''))));
    }
  }
}

function makeRow(device) {
  const row = { codecs: null };
  row.open = badge('', 'info', { hidden: true });
  row.label = h('div', { class: 'live-item-label' });
  row.since = h('time', { testid: 'since' });
  row.remote = h('span', { class: 'muted' });
  row.meta = h('div', { class: 'live-item-meta' }, h('span', {}, 'since ', row.since), row.remote);
  row.chips = h('div', { class: 'chips' });
  const watch = caps.watch ? h('button', { type: 'button', class: 'btn btn-primary btn-sm', testid: 'watch',
    title: `Open a live view of ${device}`, onclick: () => openTile(device, { clickedAt: performance.now() }) },
    icon('play'), 'Watch') : null;
  row.li = h('li', { class: 'live-item', testid: 'live-item', dataset: { device } },
    h('div', { class: 'live-item-main' },
      h('div', { class: 'live-item-title' },
        h('span', { class: 'dot dot-live', 'aria-hidden': 'true' }),
        h('strong', { class: 'device-id', title: device }, device),
        row.open),
      row.label, row.meta, row.chips),
    watch);
  return row;
}

function renderWall() {
  const n = state.tiles.size;
  els.wallCount.textContent = n ? `${n} view${n === 1 ? '' : 's'}` : 'no views';
  els.wallEmpty.hidden = n > 0;
  els.closeAll.disabled = n === 0;
  els.muteAll.disabled = n === 0;
  // Size the grid so the views fit the screen: 1, 2 side by side, 2x2,
  // 3x2, 3x3, then four across (scrolling).
  const [cols, rows] = n <= 1 ? [1, 1] : n === 2 ? [2, 1] : n <= 4 ? [2, 2] : n <= 6 ? [3, 2] : n <= 9 ? [3, 3] : [4, Math.ceil(n / 4)];
  els.wall.dataset.count = String(n);
  els.wall.style.setProperty('--cols', String(cols));
  els.wall.style.setProperty('--rows', String(Math.min(rows, 3)));
  hooks.onCount(n);
}

function muteAllExcept(keep) {
  for (const t of state.tiles) if (t !== keep) t.setMuted(true);
}

// openTile adds a tile for device to the wall and starts watching.
export function openTile(device, opts = {}) {
  const t = new Tile(device);
  state.tiles.add(t);
  els.wall.append(t.el);
  renderWall();
  renderList();
  hooks.onOpen?.();
  t.connect(opts.clickedAt);
  return t;
}

// Tile: one live view (one WHEP session).
class Tile {
  constructor(device) {
    this.device = device;
    this.pc = null;
    this.location = null;
    this.closed = false;
    this.ended = false;
    this.lastFrames = 0;
    this.lastFrameAt = 0;
    this.lastBytes = null;
    this.build();
  }

  build() {
    this.video = h('video', { testid: 'live-video', autoplay: true, playsinline: true, muted: true, disablepictureinpicture: true });
    this.video.muted = true;
    this.liveBadge = badge('CONNECTING', 'muted', { testid: 'tile-badge' });
    this.overlay = h('div', { class: 'tile-overlay', testid: 'tile-message', role: 'status' });
    this.clock = h('span', { class: 'tile-clock', title: 'time watched' }, '0:00');
    this.codecs = h('span', { class: 'tile-codecs', testid: 'tile-codecs' });
    this.stateEl = h('span', { class: 'tile-state', testid: 'tile-state' }, 'starting');
    this.quality = h('span', { class: 'tile-quality muted', testid: 'tile-quality' });
    this.muteBtn = h('button', { type: 'button', class: 'btn btn-sm btn-ghost', testid: 'unmute', 'aria-pressed': 'false',
      onclick: () => this.setMuted(!this.video.muted) });
    this.retryBtn = h('button', { type: 'button', class: 'btn btn-sm', testid: 'reconnect', hidden: true,
      onclick: () => this.connect(performance.now()) }, icon('retry'), 'Reconnect');
    this.fullBtn = h('button', { type: 'button', class: 'btn btn-sm btn-ghost btn-icon', title: 'Full screen', 'aria-label': 'Full screen',
      onclick: () => this.videoBox.requestFullscreen?.().catch(() => {}) }, icon('expand'));
    this.closeBtn = h('button', { type: 'button', class: 'btn btn-sm btn-ghost btn-icon', testid: 'close-tile',
      title: `Close this view of ${this.device} (hangs up)`, 'aria-label': `Close view of ${this.device}`,
      onclick: () => this.close('closed by you') }, icon('close'));
    const label = deviceLabel(this.device);
    this.videoBox = h('div', { class: 'tile-video' }, this.video,
      h('div', { class: 'tile-top' }, this.liveBadge, this.clock), this.overlay);
    this.el = h('article', { class: 'tile', testid: 'tile', dataset: { device: this.device, state: 'connecting' },
      'aria-label': `Live view of ${this.device}` },
      this.videoBox,
      h('div', { class: 'tile-bar' },
        h('div', { class: 'tile-id' }, h('strong', { class: 'device-id' }, this.device), label ? h('span', { class: 'muted' }, label) : null),
        h('div', { class: 'tile-actions' }, this.retryBtn, this.muteBtn, this.fullBtn, this.closeBtn)),
      h('div', { class: 'tile-meta' }, this.stateEl, this.codecs, this.quality));
    this.el.pc = null;
    this.setMuted(true);
    this.video.addEventListener('dblclick', () => this.videoBox.requestFullscreen?.().catch(() => {}));
  }

  // show sets the tile's state (connecting, live, stalled, ended, failed,
  // error), the line under the picture, and a message over it: a string, or
  // [title, detail].
  show(st, text, message = '') {
    this.el.dataset.state = st;
    this.stateEl.textContent = text;
    this.stateEl.className = `tile-state state-${st}`;
    const badges = { connecting: ['CONNECTING', 'muted'], live: ['LIVE', 'live'], stalled: ['LIVE', 'warn'],
      ended: ['ENDED', 'muted'], failed: ['OFFLINE', 'bad'], error: ['ERROR', 'bad'] };
    const [b, kind] = badges[st] || ['?', 'muted'];
    this.liveBadge.textContent = b;
    this.liveBadge.className = `badge badge-${kind}`;
    const [title, detail] = Array.isArray(message) ? message : [message, ''];
    clear(this.overlay, title ? h('strong', {}, title) : null, detail ? h('span', {}, detail) : null);
    this.overlay.hidden = !message;
    this.overlay.className = `tile-overlay overlay-${st}`;
    const over = ['ended', 'failed', 'error'].includes(st);
    this.retryBtn.hidden = !over;
    this.muteBtn.hidden = over;
    this.fullBtn.hidden = over;
    this.clock.hidden = st === 'error' || (st === 'connecting' && this.firstFrameAt == null);
    this.retryBtn.disabled = st === 'ended' && !state.live.has(this.device);
  }

  setMuted(muted) {
    if (!muted) muteAllExcept(this); // one view is heard at a time
    this.video.muted = muted;
    this.muteBtn.setAttribute('aria-pressed', String(!muted));
    this.muteBtn.classList.toggle('btn-on', !muted);
    clear(this.muteBtn, icon(muted ? 'muted' : 'sound'), muted ? 'Unmute' : 'Mute');
    this.muteBtn.title = muted ? `Listen to ${this.device} (mutes the other views)` : `Mute ${this.device}`;
    if (!muted) this.video.play().catch(() => {});
  }

  async connect(clickedAt = performance.now()) {
    this.hangup();
    this.teardown();
    this.ended = false;
    this.recording = '';
    this.clickedAt = clickedAt;
    this.firstFrameAt = null;
    this.startedAt = Date.now();
    this.lastFrames = 0;
    this.lastFrameAt = performance.now();
    this.lastBytes = null;
    this.codecs.textContent = '';
    this.codecs.classList.remove('warn');
    this.quality.textContent = '';
    this.show('connecting', 'negotiating', 'Connecting…');
    const pc = new RTCPeerConnection();
    this.pc = pc;
    this.el.pc = pc;
    const stream = new MediaStream();
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.ontrack = (ev) => {
      stream.addTrack(ev.track);
      if (this.video.srcObject !== stream) this.video.srcObject = stream;
    };
    pc.onconnectionstatechange = () => this.pc === pc && this.connectionChanged(pc.connectionState);
    this.video.requestVideoFrameCallback?.(() => this.firstFrame(pc));
    this.video.addEventListener('loadeddata', () => this.firstFrame(pc), { once: true });
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc);
      if (this.pc !== pc) return;
      const res = await request('POST', api.whepURL(this.device), { body: pc.localDescription.sdp, type: 'application/sdp' });
      const answer = await res.text();
      if (this.pc !== pc) { // closed while the offer was out: hang up what we got
        const loc = res.headers.get('Location');
        if (loc) fetch(loc, { method: 'DELETE', headers: CONSOLE_HEADER, keepalive: true }).catch(() => {});
        return;
      }
      this.location = res.headers.get('Location');
      this.recording = res.headers.get('X-Bodycam-Recording') || '';
      const given = (h) => { const v = res.headers.get(h); return v && v !== 'none' ? v : ''; };
      const video = given('X-Bodycam-Video') || 'no video';
      const audio = given('X-Bodycam-Audio') || 'no audio';
      const sent = (state.live.get(this.device)?.codecs || []).join(', ');
      this.codecs.textContent = `${video} · ${audio}`;
      // The publisher may send what the relay cannot pass on (say AAC with
      // no transcoder): flag the missing track rather than leave it silent.
      this.codecs.classList.toggle('warn', !given('X-Bodycam-Video') || !given('X-Bodycam-Audio'));
      this.codecs.title = `This view receives video: ${video}; audio: ${audio}` + (sent ? `\nThe device publishes: ${sent}` : '') +
        (this.recording ? `\nRecording: ${this.recording}` : '');
      this.el.dataset.video = video;
      this.el.dataset.audio = audio;
      await pc.setRemoteDescription({ type: 'answer', sdp: answer });
      if (this.pc === pc && this.firstFrameAt == null && pc.connectionState !== 'connected') this.show('connecting', 'connecting (ICE)', 'Connecting…');
    } catch (err) {
      if (this.pc !== pc) return;
      this.teardown();
      this.show('error', `error ${err.status || ''}`.trim(), whepMessage(err));
    }
  }

  firstFrame(pc) {
    if (this.pc !== pc || this.firstFrameAt != null) return;
    this.firstFrameAt = performance.now();
    const ms = Math.round(this.firstFrameAt - this.clickedAt);
    this.el.dataset.firstFrameMs = String(ms);
    this.lastFrameAt = performance.now();
    this.stateEl.title = `first picture ${(ms / 1000).toFixed(2)} s after opening the view`;
    this.show('live', 'connected');
  }

  connectionChanged(cs) {
    if (this.closed || this.ended) return;
    switch (cs) {
      case 'connected':
        if (this.firstFrameAt == null) this.show('connecting', 'connected, waiting for a picture', 'Waiting for the first picture…');
        else this.show('live', 'connected');
        break;
      case 'disconnected':
        this.show('stalled', 'connection interrupted', ['Connection interrupted', 'Trying to recover…']);
        break;
      case 'failed':
        this.teardown();
        this.show('failed', 'connection failed', ['Connection failed', `The connection to the relay failed at ${fmtClock()}.`]);
        break;
      case 'closed':
        break;
    }
  }

  // liveChanged hears each poll of GET /api/v1/live: when the device is no
  // longer publishing, the view says so rather than freeze on its last frame.
  liveChanged(item) {
    if (this.closed) return;
    if (this.ended) {
      // Reconnect makes sense only once the device publishes again.
      this.retryBtn.disabled = !item;
      this.retryBtn.title = item ? `Watch ${this.device} again` : `${this.device} is not publishing now`;
      return;
    }
    if (this.pc && !item) this.endStream('publisher stopped');
    // The device went away and came back between two polls: this session
    // ended with the old recording.
    else if (this.pc && this.recording && item.recording_id && item.recording_id !== this.recording) this.endStream('publisher reconnected');
  }

  endStream(reason) {
    this.ended = true;
    this.hangup();
    this.teardown();
    this.quality.textContent = '';
    this.show('ended', `stream ended · ${reason}`, ['Stream ended', `${reason[0].toUpperCase()}${reason.slice(1)} at ${fmtClock()}.`]);
  }

  // sample refreshes the tile's numbers and notices a stalled picture.
  async sample() {
    if (this.closed) return;
    if (this.startedAt && !this.ended && this.pc) this.clock.textContent = fmtDuration(Date.now() - this.startedAt);
    const pc = this.pc;
    if (!pc || this.ended) return;
    const q = this.video.getVideoPlaybackQuality?.();
    const frames = q ? q.totalVideoFrames : 0;
    const now = performance.now();
    if (frames > this.lastFrames) {
      this.lastFrames = frames;
      this.lastFrameAt = now;
      if (this.el.dataset.state === 'stalled' && pc.connectionState === 'connected') this.show('live', 'connected');
    } else if (this.firstFrameAt != null && now - this.lastFrameAt > STALL_MS && this.el.dataset.state === 'live') {
      this.show('stalled', 'no picture', ['No picture', `Nothing received for ${Math.round((now - this.lastFrameAt) / 1000)} s.`]);
    }
    try {
      const stats = await pc.getStats();
      let bytes = 0, fps = null;
      stats.forEach((r) => {
        if (r.type !== 'inbound-rtp') return;
        bytes += r.bytesReceived || 0;
        if (r.kind === 'video' && r.framesPerSecond != null) fps = r.framesPerSecond;
      });
      let rate = '';
      if (this.lastBytes != null) rate = `${(((bytes - this.lastBytes.bytes) * 8) / ((now - this.lastBytes.at) / 1000) / 1e6).toFixed(2)} Mb/s`;
      this.lastBytes = { bytes, at: now };
      const size = this.video.videoWidth ? `${this.video.videoWidth}×${this.video.videoHeight}` : '';
      this.quality.textContent = [size, fps != null ? `${Math.round(fps)} fps` : '', rate].filter(Boolean).join(' · ');
    } catch { /* the connection went away between samples */ }
  }

  // hangup ends the server-side session (DELETE its Location).
  hangup({ keepalive = false } = {}) {
    const loc = this.location;
    this.location = null;
    if (!loc) return Promise.resolve();
    if (keepalive) {
      fetch(loc, { method: 'DELETE', headers: CONSOLE_HEADER, keepalive: true, credentials: 'same-origin' }).catch(() => {});
      return Promise.resolve();
    }
    return request('DELETE', loc).catch((err) => {
      if (err.status !== 404) toast(`Hang-up of ${this.device} failed: ${err.message}`, 'warn'); // 404: already ended
    });
  }

  teardown() {
    const pc = this.pc;
    this.pc = null;
    if (pc) {
      pc.ontrack = pc.onconnectionstatechange = null;
      pc.close();
    }
    const s = this.video.srcObject;
    if (s) s.getTracks().forEach((t) => t.stop());
    this.video.srcObject = null;
  }

  close(reason) {
    if (this.closed) return;
    this.closed = true;
    const moveFocus = this.el.contains(document.activeElement);
    this.hangup();
    this.teardown();
    this.el.remove();
    state.tiles.delete(this);
    renderWall();
    renderList();
    if (moveFocus) (els.wall.querySelector('[data-testid="close-tile"]') || els.liveList.querySelector('button'))?.focus();
    if (reason === 'closed by you') toast(`Closed the view of ${this.device}`);
  }
}

// gathered waits until ICE gathering completes (the server takes no trickle),
// at most ICE_GATHER_CAP_MS: the candidates gathered by then go with the offer.
function gathered(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { clearTimeout(timer); pc.removeEventListener('icegatheringstatechange', check); resolve(); };
    const check = () => pc.iceGatheringState === 'complete' && done();
    const timer = setTimeout(done, ICE_GATHER_CAP_MS);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

function whepMessage(err) {
  switch (err.status) {
    case 404: return ['Not live', `${err.message}.`];
    case 403: return ['Not allowed', `${err.message}.`];
    case 429: return ['Too many live views', `${err.message}. Close a view, then reconnect.`];
    case 400: return ['Offer refused', `${err.message}.`];
    case 503: return ['Live viewing unavailable', `${err.message}.`];
    case 401: return ['Signed out', 'Sign in again to watch.'];
    case 0: return ['Cannot reach the server', err.message];
    default: return [err.status ? `Error ${err.status}` : 'Could not start the view', err.message];
  }
}
