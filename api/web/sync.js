// Synchronised playback: several recordings of one incident (a case's, or
// any chosen) side by side, played together by their recorded times. One
// clock, in wall time, drives every player: each shows its moment of that
// time (its start plus its own position; the same reckoning as bookmarks'
// offsets), waits dark before its start and after its end, and is nudged
// back when it drifts more than a third of a second. Under the players,
// one lane per camera shows its span, its thumbnails and its bookmarks; a
// click on any of them (or on the timeline) moves the clock there. Sound
// comes from one camera at a time; "Open" jumps to that recording.

import { api } from './api.js';
import { h, icon, fmtTime, fmtDuration, clear, toast } from './ui.js';

let open = null; // the view shown: { el, stop }

const drift = 0.35; // seconds a player may be off the clock before it is moved

// openSync shows the view for the recordings ids (title says whose).
export async function openSync(title, ids, { onOpenRecording } = {}) {
  closeSync();
  const recs = [];
  for (const id of ids) {
    try {
      const r = await api.recording(id);
      if (r.segments.some((s) => s.kind === 'media' || s.kind === 'original')) recs.push(r);
    } catch (err) { toast(`${id} cannot be played: ${err.message}`, 'error'); }
  }
  if (!recs.length) { toast('Nothing to play together: no stored footage', 'error'); return; }
  const startOf = (r) => new Date(r.started_at).getTime();
  const endOf = (r) => new Date(r.ended_at || r.segments.reduce((t, s) => Math.max(t, new Date(s.started_at).getTime() + (s.duration_ms || 0)), 0)).getTime();
  const t0 = Math.min(...recs.map(startOf));
  const t1 = Math.max(...recs.map(endOf));
  let clock = t0; // wall time, ms
  let playing = false;
  let last = performance.now();
  let heard = 0;

  const tiles = recs.map((r, i) => {
    const video = h('video', { testid: 'sync-video', preload: 'auto', muted: true, playsinline: true });
    video.muted = i !== heard;
    // The review proxy when there is one (small, for many at once), else
    // the original.
    video.src = api.proxyURL(r.id);
    video.addEventListener('error', () => { if (video.src.includes('rendition=proxy')) video.src = api.mediaURL(r.id); });
    const sound = h('button', { type: 'button', class: 'btn btn-small', title: 'Hear this camera', onclick: () => {
      heard = i;
      tiles.forEach((t, j) => { t.video.muted = j !== heard; t.sound.classList.toggle('active', j === heard); });
    } }, icon('sound'), 'Sound');
    sound.classList.toggle('active', i === heard);
    const idle = h('div', { class: 'sync-idle' }, 'not recording at this time');
    const el = h('div', { class: 'sync-tile', testid: 'sync-tile', dataset: { recording: r.id, start: String(startOf(r)) } },
      h('div', { class: 'sync-player' }, video, idle),
      h('div', { class: 'sync-label' },
        h('span', { class: 'mono' }, r.device_id), h('span', { class: 'muted small' }, ` ${r.officer_id || ''}`),
        h('span', { class: 'sync-actions' }, sound,
          onOpenRecording ? h('button', { type: 'button', class: 'btn btn-small', testid: 'sync-open', onclick: () => { closeSync(); onOpenRecording(r.id); } }, 'Open') : null)));
    return { r, el, video, idle, sound, start: startOf(r), end: endOf(r) };
  });

  const range = h('input', { type: 'range', min: '0', max: String(t1 - t0), step: '100', value: '0', testid: 'sync-timeline', 'aria-label': 'Time' });
  range.addEventListener('input', () => { clock = t0 + Number(range.value); sync(true); });
  const clockText = h('span', { class: 'mono', testid: 'sync-clock' });
  const playBtn = h('button', { type: 'button', class: 'btn btn-primary', testid: 'sync-play' }, 'Play');
  playBtn.addEventListener('click', () => {
    playing = !playing;
    if (playing && clock >= t1) clock = t0;
    last = performance.now();
    playBtn.textContent = playing ? 'Pause' : 'Play';
    sync(true);
  });
  const pct = (t) => `${((t - t0) / Math.max(1, t1 - t0)) * 100}%`;
  const seekTo = (t) => { clock = Math.max(t0, Math.min(t1, t)); sync(true); };
  const lanes = h('div', { class: 'sync-lanes' }, tiles.map((t) => {
    const lane = h('div', { class: 'sync-lane', testid: 'sync-lane' });
    const span = h('div', { class: 'sync-span', title: `${t.r.device_id}: ${fmtTime(t.r.started_at)}` });
    Object.assign(span.style, { left: pct(t.start), width: `calc(${pct(t.end)} - ${pct(t.start)})` });
    span.addEventListener('click', (ev) => {
      const b = lane.getBoundingClientRect();
      seekTo(t0 + ((ev.clientX - b.left) / b.width) * (t1 - t0));
    });
    lane.append(h('span', { class: 'sync-lane-name mono small' }, t.r.device_id), span);
    api.thumbnails(t.r.id).then((res) => {
      for (const th of res.items || []) {
        const img = h('img', { src: th.url, alt: '', class: 'sync-thumb', title: fmtDuration(th.at_seconds * 1000), loading: 'lazy' });
        img.style.left = pct(t.start + th.at_seconds * 1000);
        img.addEventListener('click', () => seekTo(t.start + th.at_seconds * 1000));
        lane.append(img);
      }
    }).catch(() => {});
    api.bookmarks(t.r.id).then((res) => {
      for (const b of (res.items || []).filter((x) => !x.removed_at)) {
        const at = new Date(b.at).getTime();
        const tick = h('button', { type: 'button', class: 'sync-bookmark', testid: 'sync-bookmark', title: `${fmtTime(b.at)}: ${b.note || 'bookmark'}` });
        tick.style.left = pct(at);
        tick.addEventListener('click', () => seekTo(at));
        lane.append(tick);
      }
    }).catch(() => {});
    return lane;
  }));

  // sync puts every player at the clock's moment (hard: seek even when
  // close, after a jump).
  function sync(hard = false) {
    range.value = String(clock - t0);
    clockText.textContent = fmtTime(new Date(clock).toISOString());
    for (const t of tiles) {
      const rel = (clock - t.start) / 1000;
      const inside = rel >= 0 && clock <= t.end;
      t.el.classList.toggle('idle', !inside);
      if (!inside) {
        if (!t.video.paused) t.video.pause();
        continue;
      }
      if (t.video.readyState >= 1 && (hard || Math.abs(t.video.currentTime - rel) > drift)) t.video.currentTime = rel;
      if (playing && t.video.paused) t.video.play().catch(() => {});
      if (!playing && !t.video.paused) t.video.pause();
    }
  }
  let raf = 0;
  const tick = (now) => {
    if (playing) {
      clock += now - last;
      if (clock >= t1) {
        clock = t1;
        playing = false;
        playBtn.textContent = 'Play';
      }
      sync();
    }
    last = now;
    raf = requestAnimationFrame(tick);
  };
  raf = requestAnimationFrame(tick);
  for (const t of tiles) t.video.addEventListener('loadedmetadata', () => sync(true));

  const el = h('div', { class: 'sync-view', testid: 'sync-view', role: 'dialog', 'aria-label': `Play together: ${title}` },
    h('div', { class: 'detail-head' },
      h('div', { class: 'detail-title' }, h('h3', {}, `Play together: ${title}`),
        h('span', { class: 'muted small' }, `${tiles.length} camera(s), ${fmtTime(new Date(t0).toISOString())} – ${fmtTime(new Date(t1).toISOString())}`)),
      h('div', { class: 'detail-actions' }, playBtn, clockText,
        h('button', { type: 'button', class: 'btn btn-ghost btn-icon', testid: 'sync-close', 'aria-label': 'Close', title: 'Close (Esc)', onclick: closeSync }, icon('close')))),
    h('div', { class: `sync-grid n${Math.min(tiles.length, 9)}` }, tiles.map((t) => t.el)),
    h('div', { class: 'sync-timeline' }, range, lanes));
  document.body.append(el);
  open = {
    el,
    stop: () => {
      cancelAnimationFrame(raf);
      for (const t of tiles) { t.video.pause(); t.video.removeAttribute('src'); t.video.load(); }
    },
  };
  sync(true);
}

// closeSync closes the view; it reports whether one was open (Esc).
export function closeSync() {
  if (!open) return false;
  open.stop();
  open.el.remove();
  open = null;
  return true;
}
