// grid.js — the meeting view of the join page: a tile per participant (camera) and per
// shared screen, placed as layout.js plans it (main windows, strip, content stage), with
// the floor badges, the voice-activated speaker switching and the browser's autoplay rules.

import { playOrMute } from './autoplay.js';
import { FloorMode, Source, floorGrant, floorQueuePosition } from './cau-client.js';
import { renderFloor } from './floor-panel.js';
import { t } from './i18n.js';
import { $, page, setData, setHidden, setText } from './join-page.js';
import { markSpeaker } from './speaker-marks.js';

// How often the page reads the remote audio levels to find who talks.
const AUDIO_POLL_MS = 250;

// ---- tiles -----------------------------------------------------------------------------------

function initials(name) {
  const words = String(name || '?').trim().split(/\s+/).filter(Boolean);
  const chars = words.length > 1 ? [words[0], words[words.length - 1]] : words;
  return chars.map((w) => Array.from(w)[0].toUpperCase()).join('') || '?';
}

function newTile(p, source) {
  const tile = $('tile-template').content.firstElementChild.cloneNode(true);
  tile.dataset.participant = p.id;
  tile.dataset.source = source;
  tile.classList.add('no-video');
  const v = tile.querySelector('video');
  v.addEventListener('resize', () => refreshVideoState(tile));
  v.addEventListener('playing', () => refreshVideoState(tile));
  return tile;
}

function labelTile(tile, p, source) {
  tile.querySelector('.name').textContent = p.name || p.site || p.id;
  tile.querySelector('.site').textContent = source === Source.SCREEN ? t('tile.screen') : p.site || '';
  tile.querySelector('.initials').textContent = initials(p.name || p.site);
  const muted = new Set(p.muted || []);
  tile.classList.toggle('mic-muted', source === Source.CAMERA && muted.has(Source.MICROPHONE));
  tile.classList.toggle('cam-muted', source === Source.CAMERA && muted.has(Source.CAMERA));
  tile.title = `${p.name || p.id}${p.site ? ' — ' + p.site : ''}`;
  refreshVideoState(tile);
}

function refreshVideoState(tile) {
  const v = tile.querySelector('video');
  const s = v.srcObject;
  const live = !!s && s.getVideoTracks().some((t) => t.readyState === 'live');
  tile.classList.toggle('no-video', !live || tile.classList.contains('cam-muted') || v.videoWidth === 0);
}

export function addParticipant(p) {
  if (page.tiles.has(p.id)) return updateParticipant(p);
  const tile = newTile(p, Source.CAMERA);
  labelTile(tile, p, Source.CAMERA);
  $('strip').append(tile);
  page.tiles.set(p.id, tile);
  layout();
  renderFloor();
}

export function updateParticipant(p) {
  const tile = page.tiles.get(p.id);
  if (!tile) return addParticipant(p);
  labelTile(tile, p, Source.CAMERA);
  const screen = page.screens.get(p.id);
  if (screen) labelTile(screen, p, Source.SCREEN);
  layout();
}

export function removeParticipant(id) {
  for (const map of [page.tiles, page.screens]) {
    const el = map.get(id);
    if (el) {
      const v = el.querySelector('video');
      v.srcObject = null;
      el.remove();
      map.delete(id);
    }
  }
  layout();
  renderFloor();
}

export function setMedia(participantId, source, stream) {
  const p = page.client?.participants.get(participantId);
  if (!p) return;
  let tile;
  if (source === Source.SCREEN) {
    tile = page.screens.get(participantId);
    if (!stream) {
      if (tile) {
        tile.querySelector('video').srcObject = null;
        tile.remove();
        page.screens.delete(participantId);
        layout();
      }
      return;
    }
    if (!tile) {
      tile = newTile(p, Source.SCREEN);
      tile.classList.add('screen-tile');
      labelTile(tile, p, Source.SCREEN);
      $('stage').append(tile);
      page.screens.set(participantId, tile);
      layout();
    }
  } else {
    tile = page.tiles.get(participantId);
    if (!tile) {
      addParticipant(p);
      tile = page.tiles.get(participantId);
    }
  }
  const v = tile.querySelector('video');
  if (v.srcObject !== stream) v.srcObject = stream;
  // Screens carry no sound worth hearing twice; the camera stream carries the microphone.
  v.muted = source === Source.SCREEN || page.soundBlocked;
  if (stream) play(v);
  refreshVideoState(tile);
}

/** Starts a remote video; if the browser blocks sound without a click, plays muted. */
function play(v) {
  playOrMute(v, () => {
    page.soundBlocked = true;
    $('sound-button').hidden = false;
  });
}

export function enableSound() {
  page.soundBlocked = false;
  $('sound-button').hidden = true;
  for (const tile of page.tiles.values()) {
    const v = tile.querySelector('video');
    v.muted = false;
    play(v);
  }
}

// ---- layout: main windows, strip, content ----------------------------------------------------

const WINDOWS = new Set(['chair', 'speaker', 'previous']);


/**
 * Moves el to parent before ref, keeping its video playing: moveBefore keeps a media
 * element's state where the browser has it; otherwise the video is started again.
 */
function moveTile(parent, el, ref) {
  if (el.parentNode === parent && (ref === el || el.nextElementSibling === ref)) return; // in place
  if (el.isConnected && typeof parent.moveBefore === 'function') {
    try {
      parent.moveBefore(el, ref);
    } catch {
      parent.insertBefore(el, ref);
    }
  } else {
    parent.insertBefore(el, ref);
  }
  const v = el.querySelector('video');
  if (v.srcObject && v.paused) play(v);
}

/**
 * Places the tiles as the planner says: the main windows in #main, the others in #strip,
 * shared screens on the stage. Runs on every change and on every audio reading; it moves
 * a tile only when its place changes, and runs again when a held change is due.
 */
export function layout() {
  clearTimeout(page.layoutTimer);
  page.layoutTimer = 0;
  const c = page.client;
  const participants = c ? [...c.participants.values()].filter((p) => page.tiles.has(p.id)) : [];
  const plan = page.planner.plan(
    { self: c?.self || null, participants, floor: c?.floor || null, content: [...page.screens.keys()],
      dominant: c?.speaker?.dominant || null },
    performance.now(),
  );
  page.plan = plan;

  const main = $('main');
  const strip = $('strip');
  plan.main.forEach((m, i) => {
    const tile = page.tiles.get(m.id);
    if (!tile) return;
    moveTile(main, tile, main.children[i] || null);
    setData(tile, 'window', m.window);
  });
  plan.strip.forEach((id, i) => {
    const tile = page.tiles.get(id);
    if (!tile) return;
    moveTile(strip, tile, strip.children[i] || null);
    if ('window' in tile.dataset) delete tile.dataset.window;
  });

  const floor = c?.floor || null;
  const controlled = !!floor && floor.mode !== FloorMode.DISCUSSION;
  for (const [id, tile] of page.tiles) {
    const p = c?.participants.get(id);
    setText(tile.querySelector('.window-badge'), WINDOWS.has(tile.dataset.window) ? t(`window.${tile.dataset.window}`) : '');
    tile.classList.toggle('talking', plan.talking.has(id));
    const g = controlled && p ? floorGrant(floor, p.site) : null;
    const pos = controlled && p ? floorQueuePosition(floor, p.site) : 0;
    let ftext = '';
    if (g && tile.dataset.window !== 'speaker') ftext = t('tile.on_floor');
    else if (!g && pos > 0) ftext = t('tile.hand_raised', { pos });
    setText(tile.querySelector('.floor-badge'), ftext);
    tile.classList.toggle('has-floor', !!g);
  }
  markSpeaker({
    tiles: page.tiles, participants: c?.participants || new Map(), state: c?.speaker || null,
    status: $('speaker-status'), self: c?.self || null, selfEl: $('self-view'), onPin: (site, on) => c?.pin(site, on),
  });

  const view = $('view');
  setData(view, 'layout', plan.layout);
  setData(view, 'main', String(plan.main.length));
  setData(view, 'strip', String(plan.strip.length));
  const n = plan.strip.length;
  const cols = n <= 1 ? 1 : n <= 4 ? 2 : n <= 9 ? 3 : n <= 16 ? 4 : Math.ceil(Math.sqrt(n));
  if (strip.dataset.cols !== String(cols) || strip.dataset.count !== String(n)) {
    strip.dataset.cols = String(cols);
    strip.dataset.count = String(n);
    strip.style.setProperty('--cols', String(cols));
    strip.style.setProperty('--rows', String(Math.max(1, Math.ceil(n / cols))));
  }
  setHidden($('alone'), page.tiles.size > 0 || page.screens.size > 0);
  setHidden($('stage'), page.screens.size === 0);
  if (Number.isFinite(plan.recheckIn)) page.layoutTimer = setTimeout(layout, plan.recheckIn + 20);
  page.view?.update(); // the tiles' sizes drive the layers the bridge sends (view-report.js)
}

/** The remote video tiles for the view message: cameras and shared screens. */
export function* viewTiles() {
  for (const [participant, element] of page.tiles) yield { participant, source: Source.CAMERA, element };
  for (const [participant, element] of page.screens) yield { participant, source: Source.SCREEN, element };
}

/** Reads who is talking a few times a second (voice-activated switching). */
export function startAudioWatch() {
  clearInterval(page.audioTimer);
  page.audioTimer = setInterval(async () => {
    const c = page.client;
    if (!c || c.state !== 'joined' || page.audioBusy) return;
    page.audioBusy = true;
    try {
      page.planner.observeAudio(await c.audioLevels());
      layout();
    } catch (err) {
      console.debug('[cau] audio levels', err);
    } finally {
      page.audioBusy = false;
    }
  }, AUDIO_POLL_MS);
}

export function stopAudioWatch() {
  clearInterval(page.audioTimer);
  page.audioTimer = 0;
}
