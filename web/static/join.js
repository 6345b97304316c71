// join.js — the official's join page:
//   /join/<meeting>?token=<jwt>[&autojoin=1][&name=...][&hold=<seconds>]
//
// A preview screen (camera + microphone check, name, Join) and then the meeting, laid out
// like the MCUs officials know (see layout.js): the chair site and the current speaker in
// two main windows, everyone else in a strip, a shared screen (the content channel) in the
// main area with chair and speaker beside it; a small self-view; the floor panel (mode, who
// speaks, the request queue, and the chair's controls); the controls. hold= sets the talk
// hold time (default 3 s). The signaling and WebRTC work is in cau-client.js.
//
// Test hook: window.cauState = {joined, participants, remoteVideos(), layout(), floor, ...};
// see below.

import {
  CauClient, CloseCode, FloorActions, FloorMode, Source, clampName, decodeTokenClaims, floorAllows, floorGrant,
  floorQueuePosition,
} from './cau-client.js';
import { DEFAULT_HOLD_MS, LayoutPlanner, MAX_HOLD_MS, MIN_HOLD_MS } from './layout.js';

const $ = (id) => document.getElementById(id);

const params = new URLSearchParams(location.search);
const token = params.get('token') || '';
const autojoin = params.get('autojoin') === '1';
const pathMeeting = (() => {
  try {
    return decodeURIComponent(location.pathname.split('/')[2] || '');
  } catch {
    return '';
  }
})();
const claims = token ? decodeTokenClaims(token) : null;

const holdMs = (() => {
  const v = Number.parseFloat(params.get('hold') ?? '');
  return Number.isFinite(v) ? Math.min(MAX_HOLD_MS, Math.max(MIN_HOLD_MS, Math.round(v * 1000))) : DEFAULT_HOLD_MS;
})();
// How often the page reads the remote audio levels to find who talks.
const AUDIO_POLL_MS = 250;

const VIDEO_CONSTRAINTS = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
const AUDIO_CONSTRAINTS = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

const page = {
  client: null,
  /** @type {MediaStream|null} microphone + camera */
  local: null,
  micMuted: false,
  camMuted: false,
  soundBlocked: false,
  leaving: false,
  /** participant id → tile element (camera) */
  tiles: new Map(),
  /** participant id → stage element (screen) */
  screens: new Map(),
  errors: [],
  planner: new LayoutPlanner({ holdMs }),
  /** the last layout plan (see layout.js) */
  plan: null,
  layoutTimer: 0,
  audioTimer: 0,
  audioBusy: false,
  /** whether the floor panel is shown */
  panelOpen: true,
  /** whether the user opened or closed the panel (then the page leaves it so) */
  panelChosen: false,
  /** floor actions waiting for the server, by a key of action and site */
  floorBusy: new Set(),
};

// ---- test hook ---------------------------------------------------------------------------

function describeVideo(v) {
  const q = typeof v.getVideoPlaybackQuality === 'function' ? v.getVideoPlaybackQuality() : null;
  const holder = v.closest('[data-participant]');
  return {
    participant: holder?.dataset.participant || '',
    source: holder?.dataset.source || '',
    width: v.videoWidth,
    height: v.videoHeight,
    frames: q ? q.totalVideoFrames : 0,
    currentTime: v.currentTime,
  };
}

window.cauState = {
  joined: false,
  selfId: '',
  meeting: '',
  /** how many times the page joined again after losing its connection */
  reconnects: 0,
  /** ids of the other participants, as the page shows them */
  get participants() {
    return [...page.tiles.keys()];
  },
  /** the talk hold time in ms */
  holdMs,
  /** the floor as the page knows it (see docs/protocol/floor.md) */
  get floor() {
    return page.client?.floor || null;
  },
  /**
   * The view: {layout: grid|main|content, main: [{participant, window, width, height,
   * frames, currentTime}], strip: [ids], content: [ids], speaker, previous}.
   */
  layout() {
    const tiles = (sel) => [...document.querySelectorAll(sel)];
    return {
      layout: $('view').dataset.layout,
      main: tiles('#main > .tile').map((t) => ({ ...describeVideo(t.querySelector('video')), window: t.dataset.window || '' })),
      strip: tiles('#strip > .tile').map((t) => t.dataset.participant),
      content: tiles('#stage > .tile').map((t) => t.dataset.participant),
      speaker: page.plan?.speaker || null,
      previous: page.plan?.previous || null,
    };
  },
  /** every remote video element that has a video track */
  remoteVideos() {
    return [...document.querySelectorAll('#grid video, #stage video')]
      .filter((v) => v.srcObject && v.srcObject.getVideoTracks().length > 0)
      .map(describeVideo);
  },
  get connection() {
    return page.client ? page.client.state : 'idle';
  },
  get errors() {
    return page.errors.slice();
  },
  /** media statistics of both connections (a promise) */
  stats() {
    return page.client ? page.client.getStats() : Promise.resolve(null);
  },
};

// ---- banner, screens -----------------------------------------------------------------------

let bannerTimer = 0;

/** Shows a message at the top. kind: info|warn|error; ttl 0 keeps it. */
function showBanner(text, kind = 'info', ttl = 0, action = null) {
  clearTimeout(bannerTimer);
  const b = $('banner');
  b.dataset.kind = kind;
  $('banner-text').textContent = text;
  const btn = $('banner-action');
  if (action) {
    btn.textContent = action.label;
    btn.onclick = action.run;
    btn.hidden = false;
  } else {
    btn.hidden = true;
    btn.onclick = null;
  }
  b.hidden = false;
  if (ttl > 0) bannerTimer = setTimeout(hideBanner, ttl);
}

function hideBanner() {
  clearTimeout(bannerTimer);
  $('banner').hidden = true;
}

function showScreen(id) {
  for (const s of ['preview-screen', 'meeting-screen', 'end-screen']) $(s).hidden = s !== id;
  document.body.dataset.screen = id;
}

function recordError(code, message) {
  page.errors.push({ code, message, at: new Date().toISOString() });
  if (page.errors.length > 50) page.errors.shift();
}

/** Ends the page: the end screen with a title, details and (maybe) a rejoin button. */
function showEnd(title, detail, { error = false, rejoin = true } = {}) {
  stopLocalMedia();
  hideBanner();
  $('end-title').textContent = title;
  $('end-detail').textContent = detail || '';
  $('end-screen').dataset.kind = error ? 'error' : 'info';
  $('rejoin-button').hidden = !rejoin;
  showScreen('end-screen');
}

function setConnStatus(state, text) {
  const el = $('conn-status');
  el.dataset.state = state;
  el.textContent = text;
}

// ---- local media ----------------------------------------------------------------------------

/**
 * Opens microphone and camera. Falls back to one of them, then to none, and says why.
 * Returns a MediaStream (possibly with no tracks) or null.
 */
async function openLocalMedia(micId, camId) {
  const md = navigator.mediaDevices;
  if (!md || !md.getUserMedia) {
    warnMedia('This browser cannot use a camera or microphone here (the page needs https or localhost).');
    return null;
  }
  const audio = micId ? { ...AUDIO_CONSTRAINTS, deviceId: { exact: micId } } : AUDIO_CONSTRAINTS;
  const video = camId ? { ...VIDEO_CONSTRAINTS, deviceId: { exact: camId } } : VIDEO_CONSTRAINTS;
  const attempts = [
    { audio, video },
    { audio, video: false },
    { audio: false, video },
  ];
  let firstErr = null;
  for (const c of attempts) {
    try {
      const s = await md.getUserMedia(c);
      if (firstErr) {
        warnMedia(
          (c.video ? 'No microphone' : 'No camera') + ` could be opened (${mediaErrorText(firstErr)}). Others will ` +
            (c.video ? 'not hear you.' : 'not see you.'),
        );
      } else {
        warnMedia('');
      }
      return s;
    } catch (err) {
      firstErr = firstErr || err;
    }
  }
  warnMedia(`Camera and microphone could not be opened (${mediaErrorText(firstErr)}). You can still join to watch and listen.`);
  return null;
}

function mediaErrorText(err) {
  if (!err) return 'unknown error';
  switch (err.name) {
    case 'NotAllowedError':
      return 'permission denied';
    case 'NotFoundError':
      return 'no device found';
    case 'NotReadableError':
      return 'the device is in use by another program';
    case 'OverconstrainedError':
      return 'the chosen device is not available';
    default:
      return err.message || err.name;
  }
}

function warnMedia(text) {
  const w = $('media-warning');
  w.textContent = text;
  w.hidden = !text;
  if (text) recordError('media', text);
}

function stopLocalMedia() {
  page.local?.getTracks().forEach((t) => t.stop());
}

function applyLocalMute() {
  for (const t of page.local?.getAudioTracks() || []) t.enabled = !page.micMuted;
  for (const t of page.local?.getVideoTracks() || []) t.enabled = !page.camMuted;
}

async function fillDeviceLists() {
  if (!navigator.mediaDevices?.enumerateDevices) return;
  let devices = [];
  try {
    devices = await navigator.mediaDevices.enumerateDevices();
  } catch {
    return;
  }
  const fill = (select, kind, current) => {
    select.replaceChildren();
    let n = 0;
    for (const d of devices) {
      if (d.kind !== kind) continue;
      n++;
      const o = document.createElement('option');
      o.value = d.deviceId;
      o.textContent = d.label || `${kind === 'audioinput' ? 'Microphone' : 'Camera'} ${n}`;
      if (d.deviceId === current) o.selected = true;
      select.append(o);
    }
    select.disabled = n === 0;
  };
  const mic = page.local?.getAudioTracks()[0]?.getSettings().deviceId;
  const cam = page.local?.getVideoTracks()[0]?.getSettings().deviceId;
  fill($('mic-select'), 'audioinput', mic);
  fill($('cam-select'), 'videoinput', cam);
}

async function reopenFromSelects() {
  stopLocalMedia();
  page.local = await openLocalMedia($('mic-select').value, $('cam-select').value);
  applyLocalMute();
  updatePreview();
}

function updatePreview() {
  const v = $('preview-video');
  v.srcObject = page.local;
  const hasVideo = !!page.local?.getVideoTracks().length;
  $('preview-off').hidden = hasVideo && !page.camMuted;
  setToggle($('preview-mic'), !page.micMuted, 'i-mic', 'i-mic-off');
  setToggle($('preview-cam'), !page.camMuted, 'i-cam', 'i-cam-off');
}

/** Marks a toggle button on (true) or off and swaps its icon. */
function setToggle(button, on, iconOn, iconOff) {
  button.setAttribute('aria-pressed', String(on));
  button.classList.toggle('off', !on);
  button.querySelector('use').setAttribute('href', '#' + (on ? iconOn : iconOff));
}

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
  tile.querySelector('.site').textContent = source === Source.SCREEN ? 'Screen' : p.site || '';
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

function addParticipant(p) {
  if (page.tiles.has(p.id)) return updateParticipant(p);
  const tile = newTile(p, Source.CAMERA);
  labelTile(tile, p, Source.CAMERA);
  $('strip').append(tile);
  page.tiles.set(p.id, tile);
  layout();
  renderFloor();
}

function updateParticipant(p) {
  const tile = page.tiles.get(p.id);
  if (!tile) return addParticipant(p);
  labelTile(tile, p, Source.CAMERA);
  const screen = page.screens.get(p.id);
  if (screen) labelTile(screen, p, Source.SCREEN);
  layout();
}

function removeParticipant(id) {
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

function setMedia(participantId, source, stream) {
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
  const p = v.play();
  if (!p) return;
  p.catch((err) => {
    if (err.name !== 'NotAllowedError' || v.muted) return;
    page.soundBlocked = true;
    v.muted = true;
    v.play().catch(() => {});
    $('sound-button').hidden = false;
  });
}

function enableSound() {
  page.soundBlocked = false;
  $('sound-button').hidden = true;
  for (const tile of page.tiles.values()) {
    const v = tile.querySelector('video');
    v.muted = false;
    play(v);
  }
}

// ---- layout: main windows, strip, content ----------------------------------------------------

const WINDOW_TEXT = {
  chair: 'Chair · Chủ tọa',
  speaker: 'Speaking · Đang phát biểu',
  previous: 'Previous · Trước đó',
};

/** Sets an element's text and shows it, or hides it when text is empty; writes only changes. */
function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
  setHidden(el, !text);
}

function setHidden(el, hidden) {
  if (el.hidden !== hidden) el.hidden = hidden;
}

function setData(el, key, value) {
  if (el.dataset[key] !== value) el.dataset[key] = value;
}

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
function layout() {
  clearTimeout(page.layoutTimer);
  page.layoutTimer = 0;
  const c = page.client;
  const participants = c ? [...c.participants.values()].filter((p) => page.tiles.has(p.id)) : [];
  const plan = page.planner.plan(
    { self: c?.self || null, participants, floor: c?.floor || null, content: [...page.screens.keys()] },
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
    setText(tile.querySelector('.window-badge'), WINDOW_TEXT[tile.dataset.window] || '');
    tile.classList.toggle('talking', plan.talking.has(id));
    const g = controlled && p ? floorGrant(floor, p.site) : null;
    const pos = controlled && p ? floorQueuePosition(floor, p.site) : 0;
    let ftext = '';
    if (g && tile.dataset.window !== 'speaker') ftext = 'On the floor · Đang phát biểu';
    else if (!g && pos > 0) ftext = `Hand raised #${pos} · Xin phát biểu`;
    setText(tile.querySelector('.floor-badge'), ftext);
    tile.classList.toggle('has-floor', !!g);
  }

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
}

/** Reads who is talking a few times a second (voice-activated switching). */
function startAudioWatch() {
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

function stopAudioWatch() {
  clearInterval(page.audioTimer);
  page.audioTimer = 0;
}

// ---- meeting controls ---------------------------------------------------------------------

/** Why the floor keeps this site's microphone or camera off the air, or ''. */
function floorHint(allowed) {
  const c = page.client;
  const f = c?.floor;
  if (!f || !c.self || (allowed.mic && allowed.camera)) return '';
  if (f.ended) return 'The meeting has ended. Cuộc họp đã kết thúc.';
  if (allowed.mic) return 'The chair gave you the microphone only. Chủ tọa chỉ cấp micrô.';
  if (allowed.camera) return 'The chair gave you the camera only. Chủ tọa chỉ cấp camera.';
  const asked = floorQueuePosition(f, c.self.site) > 0;
  if (asked) {
    return 'Your microphone and camera go on air when the chair gives you the floor. ' +
      'Đã xin phát biểu, chờ chủ tọa cho phép.';
  }
  if (mayRequest()) {
    return f.mode === FloorMode.TRAINING
      ? 'Training mode: press “Request the floor” to speak. Chế độ tập huấn: bấm “Xin phát biểu” để phát biểu.'
      : 'Directed mode: the chair gives microphone and camera. Chế độ chỉ đạo: chủ tọa cấp micrô và camera.';
  }
  return 'Only sites given the floor are on air. Chỉ điểm cầu được cấp quyền mới phát.';
}

function refreshControls() {
  const c = page.client;
  const joined = !!c?.self;
  const allowed = joined ? c.floorAllows() : { mic: true, camera: true };
  setToggle($('mic-button'), !page.micMuted, 'i-mic', 'i-mic-off');
  setToggle($('cam-button'), !page.camMuted, 'i-cam', 'i-cam-off');
  const sharing = !!c?.sharingScreen;
  $('screen-button').classList.toggle('active', sharing);
  $('screen-button').setAttribute('aria-pressed', String(sharing));
  const hasMic = !!page.local?.getAudioTracks().length;
  const hasCam = !!page.local?.getVideoTracks().length;
  const hint = floorHint(allowed);
  $('mic-button').disabled = !hasMic || !allowed.mic;
  $('cam-button').disabled = !hasCam || !allowed.camera;
  $('mic-button').title = !allowed.mic ? `Microphone off the air: ${hint}` : page.micMuted ? 'Unmute microphone' : 'Mute microphone';
  $('cam-button').title = !allowed.camera ? `Camera off the air: ${hint}` : page.camMuted ? 'Turn camera on' : 'Turn camera off';
  // The content channel follows the camera; a running share can always be stopped.
  $('screen-button').disabled = !navigator.mediaDevices?.getDisplayMedia || (!allowed.camera && !sharing);
  $('screen-button').title = sharing ? 'Stop sharing' : allowed.camera ? 'Share screen' : `Sharing off the air: ${hint}`;
  $('floor-hint').textContent = hint;
  $('floor-hint').hidden = !hint;
  const self = $('self-view');
  self.classList.toggle('mic-muted', page.micMuted || !hasMic);
  self.classList.toggle('no-video', page.camMuted || !hasCam);
  self.classList.toggle('sharing', sharing);
  const air = $('self-air');
  air.textContent = !allowed.mic && !allowed.camera ? 'Not on air · Không phát'
    : !allowed.mic ? 'Camera only · Chỉ camera' : !allowed.camera ? 'Microphone only · Chỉ micrô' : '';
  air.hidden = !joined || !air.textContent;
  self.classList.toggle('off-air', joined && !allowed.mic && !allowed.camera);
}

function toggleMic() {
  const want = !page.micMuted;
  // The client refuses to unmute while the floor keeps the microphone off the air.
  if (page.client && !page.client.setMuted(Source.MICROPHONE, want)) {
    refreshControls();
    return;
  }
  page.micMuted = want;
  applyLocalMute();
  refreshControls();
  updatePreview();
}

function toggleCam() {
  const want = !page.camMuted;
  if (page.client && !page.client.setMuted(Source.CAMERA, want)) {
    refreshControls();
    return;
  }
  page.camMuted = want;
  applyLocalMute();
  refreshControls();
  updatePreview();
}

async function toggleScreen() {
  const c = page.client;
  if (!c) return;
  if (c.sharingScreen) {
    await c.stopScreenShare();
    refreshControls();
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
  } catch (err) {
    if (err.name !== 'NotAllowedError') showBanner(`Screen sharing failed: ${mediaErrorText(err)}`, 'warn', 6000);
    return;
  }
  const track = stream.getVideoTracks()[0];
  track?.addEventListener('ended', () => {
    // The browser's own "Stop sharing" button.
    if (c.sharingScreen && c.local.get(Source.SCREEN)?.track === track) c.stopScreenShare().then(refreshControls);
  });
  try {
    await c.startScreenShare(stream);
  } catch (err) {
    stream.getTracks().forEach((t) => t.stop());
    showBanner(`Screen sharing failed: ${err.message}`, 'warn', 6000);
  }
  refreshControls();
}

// ---- floor control ---------------------------------------------------------------------------

const MODE_TEXT = {
  [FloorMode.DISCUSSION]: {
    name: 'Discussion', vi: 'Thảo luận',
    help: 'Every site may speak. Mọi điểm cầu đều được phát biểu.',
  },
  [FloorMode.TRAINING]: {
    name: 'Training', vi: 'Tập huấn',
    help: 'Sites request the floor; the chair gives it to one site at a time. ' +
      'Điểm cầu xin phát biểu, chủ tọa cho phép từng điểm cầu.',
  },
  [FloorMode.DIRECTED]: {
    name: 'Directed', vi: 'Chỉ đạo',
    help: 'The chair gives microphone and camera to one or more sites. ' +
      'Chủ tọa cấp micrô và camera cho một hoặc nhiều điểm cầu.',
  },
};

/** Whether this endpoint may ask for the floor for its site (see rooms.Floor.site). */
function mayRequest() {
  const c = page.client;
  const f = c?.floor;
  const self = c?.self;
  if (!f || !self || f.ended || f.mode === FloorMode.DISCUSSION || !self.site) return false;
  if (self.site === f.chair_site) return false; // the chair site always has the floor
  return self.role === 'participant' || self.role === 'room' || self.role === 'admin';
}

/** Whether this endpoint controls the floor: an admin, or the chair at the chair site. */
function isChair() {
  const c = page.client;
  const self = c?.self;
  if (!self || !c.floor) return false;
  if (self.role === 'admin') return true;
  return self.role === 'chair' && (!c.floor.chair_site || c.floor.chair_site === self.site);
}

/** Everyone at a site, this endpoint included. */
function atSite(site) {
  const c = page.client;
  const out = [...(c?.participants.values() || [])].filter((p) => p.site === site);
  if (c?.self?.site === site) out.unshift(c.self);
  return out;
}

/** A site's display name: the names of its endpoints, or its id. */
function siteName(site) {
  const names = [...new Set(atSite(site).map((p) => p.name).filter(Boolean))];
  return names.length ? names.join(', ') : site;
}

/** A list item's site label: name (bold) and site id. */
function siteLabel(site) {
  const frag = document.createDocumentFragment();
  const who = document.createElement('span');
  who.className = 'who';
  who.textContent = siteName(site);
  frag.append(who);
  if (who.textContent !== site) {
    const id = document.createElement('span');
    id.className = 'site-id';
    id.textContent = site;
    frag.append(' ', id);
  }
  if (site === page.client?.self?.site) {
    const me = document.createElement('span');
    me.className = 'you';
    me.textContent = '(you · bạn)';
    frag.append(' ', me);
  }
  return frag;
}

function clock(ts) {
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleTimeString('vi-VN', { hour: '2-digit', minute: '2-digit' });
}

function floorButton(action, site, text, label, extraClass = '') {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = `action small ${extraClass}`.trim();
  b.dataset.action = action;
  b.dataset.site = site;
  b.textContent = text;
  b.setAttribute('aria-label', `${label} ${siteName(site)}`);
  // Not disabled while the server answers (that would drop keyboard focus); floorAction
  // ignores a second press.
  if (page.floorBusy.has(`${action}:${site}`)) b.setAttribute('aria-busy', 'true');
  return b;
}

/** Redraws the floor panel and the site's floor button from the client's floor state. */
function renderFloor() {
  const c = page.client;
  const f = c?.floor;
  const self = c?.self;
  const mode = f?.mode || FloorMode.DISCUSSION;
  const text = MODE_TEXT[mode] || MODE_TEXT[FloorMode.DISCUSSION];
  const chair = isChair();
  // The lists are rebuilt: remember which of their buttons has the keyboard focus.
  const focused = document.activeElement?.closest?.('#floor-speakers button, #floor-requests button');
  const focusKey = focused ? { action: focused.dataset.action, site: focused.dataset.site } : null;

  const modeEl = $('floor-mode');
  modeEl.dataset.mode = f?.ended ? 'ended' : mode;
  modeEl.textContent = f?.ended ? 'Ended · Đã kết thúc' : `${text.name} · ${text.vi}`;
  $('floor-mode-help').textContent = f?.ended ? 'The chair ended the meeting. Chủ tọa đã kết thúc cuộc họp.' : text.help;

  // This site's own state.
  const status = $('floor-self-status');
  let st = '';
  if (f && self && !f.ended) {
    const g = floorGrant(f, self.site);
    const pos = floorQueuePosition(f, self.site);
    if (self.site && self.site === f.chair_site) st = 'Chair site: always on air. Điểm cầu chủ tọa: luôn được phát.';
    else if (mode === FloorMode.DISCUSSION) st = '';
    else if (g) {
      const media = g.mic && g.camera ? 'microphone and camera · micrô và camera' : g.mic ? 'microphone · micrô' : 'camera';
      st = `You have the floor (${media}). Bạn đang được phát biểu.`;
    } else if (pos > 0) st = `You asked for the floor: number ${pos} in the queue. Đã xin phát biểu, thứ tự ${pos}.`;
  }
  status.textContent = st;
  status.hidden = !st;

  // Speakers.
  const speakers = $('floor-speakers');
  speakers.replaceChildren();
  for (const g of f?.speakers || []) {
    const li = document.createElement('li');
    li.dataset.site = g.site;
    const label = document.createElement('span');
    label.className = 'label';
    label.append(siteLabel(g.site));
    const media = document.createElement('span');
    media.className = 'media';
    media.textContent = [g.mic ? 'Mic' : '', g.camera ? 'Camera' : ''].filter(Boolean).join(' + ') +
      (clock(g.since) ? ` · ${clock(g.since)}` : '');
    li.append(label, media);
    if (chair) li.append(floorButton(FloorActions.REVOKE, g.site, 'Revoke · Thu hồi', 'Take the floor back from'));
    speakers.append(li);
  }
  $('floor-speakers-none').hidden = (f?.speakers || []).length > 0;
  // In discussion mode every site may speak: nobody holds or waits for the floor.
  $('floor-speakers-section').hidden = mode === FloorMode.DISCUSSION && !(f?.speakers || []).length;

  // Requests, oldest first.
  const requests = $('floor-requests');
  requests.replaceChildren();
  for (const r of f?.requests || []) {
    const li = document.createElement('li');
    li.dataset.site = r.site;
    const label = document.createElement('span');
    label.className = 'label';
    label.append(siteLabel(r.site));
    const at = document.createElement('span');
    at.className = 'media';
    at.textContent = clock(r.at);
    li.append(label, at);
    if (chair) {
      const actions = document.createElement('span');
      actions.className = 'row-actions';
      actions.append(
        floorButton(FloorActions.GRANT, r.site, 'Grant · Cho phép', 'Give the floor to', 'ok'),
        floorButton(FloorActions.DENY, r.site, 'Deny · Từ chối', 'Refuse the request of'),
      );
      li.append(actions);
    }
    requests.append(li);
  }
  const nreq = (f?.requests || []).length;
  $('floor-requests-none').hidden = nreq > 0;
  $('floor-requests-section').hidden = mode === FloorMode.DISCUSSION && nreq === 0;
  $('floor-requests-count').textContent = nreq > 0 ? `(${nreq})` : '';
  const badge = $('panel-badge');
  badge.textContent = String(nreq);
  badge.hidden = !(chair && nreq > 0);

  // The chair's controls.
  $('floor-chair').hidden = !chair || !f || f.ended;
  if (chair && f) {
    for (const b of document.querySelectorAll('.mode-switch button')) {
      b.setAttribute('aria-pressed', String(b.dataset.mode === mode));
    }
    const form = $('grant-form');
    form.hidden = mode === FloorMode.DISCUSSION;
    $('grant-media').hidden = mode !== FloorMode.DIRECTED;
    const select = $('grant-site');
    const chosen = select.value;
    const sites = [...new Set([...c.participants.values()].map((p) => p.site))]
      .filter((site) => site && site !== f.chair_site);
    select.replaceChildren(...sites.map((site) => {
      const o = document.createElement('option');
      o.value = site;
      const g = floorGrant(f, site);
      o.textContent = `${siteName(site)}${siteName(site) !== site ? ` (${site})` : ''}${g ? ' — speaking' : ''}`;
      o.selected = site === chosen;
      return o;
    }));
    $('grant-button').disabled = sites.length === 0;
  }

  // The site's own floor button in the controls.
  const fb = $('floor-button');
  const show = mayRequest();
  fb.hidden = !show;
  if (show) {
    let action = FloorActions.REQUEST;
    let label = 'Request the floor · Xin phát biểu';
    if (floorGrant(f, self.site)) {
      action = FloorActions.YIELD;
      label = 'Yield the floor · Nhường lời';
    } else if (floorQueuePosition(f, self.site) > 0) {
      action = FloorActions.WITHDRAW;
      label = 'Withdraw request · Rút yêu cầu';
    }
    fb.dataset.action = action;
    fb.querySelector('.pill-text').textContent = label;
    fb.classList.toggle('active', action !== FloorActions.REQUEST);
  }
  if (focusKey) restoreFocus(focusKey);
  refreshControls();
}

/**
 * Puts the keyboard focus back after the lists were rebuilt: on the same button, else on
 * another button for the same site (granted: now Revoke), else on the first in the lists,
 * else on the panel's title.
 */
function restoreFocus({ action, site }) {
  const panel = $('floor-panel');
  const inLists = '#floor-requests button, #floor-speakers button';
  const sel = (a) => `button[data-action="${CSS.escape(a)}"][data-site="${CSS.escape(site)}"]`;
  const target = panel.querySelector(sel(action)) ||
    panel.querySelector(`#floor-requests button[data-site="${CSS.escape(site)}"], #floor-speakers button[data-site="${CSS.escape(site)}"]`) ||
    panel.querySelector(inLists) || $('floor-title');
  target.focus();
}

const FLOOR_ERRORS = {
  forbidden: 'You may not do that',
  not_joined: 'Not connected',
  disconnected: 'Not connected',
  timeout: 'The server did not answer',
};

/** Runs a floor action; a refusal is shown in the banner. */
async function floorAction(action, opts = {}) {
  const c = page.client;
  if (!c) return null;
  const key = `${action}:${opts.site || ''}`;
  if (page.floorBusy.has(key)) return null;
  page.floorBusy.add(key);
  renderFloor();
  try {
    return await c.floorAction(action, opts);
  } catch (err) {
    recordError(err.code || 'floor', err.message);
    // The end of the meeting closes the socket, maybe before the reply: the end screen says it.
    if (c.state === 'closed') return null;
    const what = FLOOR_ERRORS[err.code] || 'Refused';
    showBanner(`${what}: ${err.message || err.code}. Không thực hiện được.`, 'warn', 8000);
    return null;
  } finally {
    page.floorBusy.delete(key);
    renderFloor();
  }
}

/** Says a floor change out loud (screen readers) and, for this site, in the banner. */
function announceFloor({ floor: f, previous: prev, muteAll, joined }) {
  const self = page.client?.self;
  const say = (t) => {
    $('floor-live').textContent = t;
  };
  if (muteAll) showBanner('The chair muted all microphones. Chủ tọa đã tắt tất cả micrô.', 'info', 6000);
  if (joined || !prev || !self) return;
  if (f.ended && !prev.ended) {
    showBanner('The chair ended the meeting. Chủ tọa đã kết thúc cuộc họp.', 'info');
    return;
  }
  if (f.mode !== prev.mode) {
    const t = MODE_TEXT[f.mode];
    if (t) {
      say(`Mode: ${t.name}. ${t.help}`);
      showBanner(`Mode: ${t.name} · Chế độ: ${t.vi}`, 'info', 5000);
    }
    return;
  }
  const had = floorGrant(prev, self.site);
  const has = floorGrant(f, self.site);
  if (has && !had) {
    showBanner('You have the floor: you are on air. Bạn được phát biểu.', 'info', 6000);
  } else if (had && !has) {
    showBanner('Your turn has ended. Đã kết thúc lượt phát biểu.', 'info', 5000);
  } else if (!has && floorQueuePosition(prev, self.site) > 0 && floorQueuePosition(f, self.site) === 0) {
    showBanner('The chair declined your request. Chủ tọa chưa cho phép phát biểu.', 'info', 6000);
  }
  if (isChair()) {
    const before = new Set(prev.requests.map((r) => r.site));
    for (const r of f.requests) {
      if (!before.has(r.site)) say(`${siteName(r.site)} requests the floor.`);
    }
  }
}

function togglePanel(open = !page.panelOpen) {
  page.panelOpen = open;
  $('floor-panel').hidden = !open;
  $('panel-button').setAttribute('aria-expanded', String(open));
  $('panel-button').classList.toggle('active', open);
}

/**
 * Opens the floor panel by itself where it matters, on wide screens and until the user
 * chooses: always for the chair, and for a site once the floor is controlled (training or
 * directed mode); in discussion mode a site sees the meeting without it.
 */
function autoPanel({ floor: f, previous: prev }) {
  if (page.panelChosen || !window.matchMedia('(min-width: 900px)').matches) return;
  const controlled = f.mode !== FloorMode.DISCUSSION;
  if (isChair() || (controlled && (!prev || prev.mode !== f.mode))) togglePanel(true);
}

function onPanelClick(e) {
  const b = e.target.closest('button[data-action]');
  if (!b || b.disabled) return;
  const { action, site } = b.dataset;
  if (action === FloorActions.GRANT) {
    const directed = page.client?.floor?.mode === FloorMode.DIRECTED;
    floorAction(action, {
      site, mic: directed ? $('grant-mic').checked : true, camera: directed ? $('grant-camera').checked : true,
    });
  } else {
    floorAction(action, { site });
  }
}

function startFloorControls() {
  $('floor-panel').addEventListener('click', onPanelClick);
  for (const b of document.querySelectorAll('.mode-switch button')) {
    b.addEventListener('click', () => {
      if (b.getAttribute('aria-pressed') !== 'true') floorAction(FloorActions.SET_MODE, { mode: b.dataset.mode });
    });
  }
  $('grant-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const site = $('grant-site').value;
    if (!site) return;
    const directed = page.client?.floor?.mode === FloorMode.DIRECTED;
    floorAction(FloorActions.GRANT, {
      site, mic: directed ? $('grant-mic').checked : true, camera: directed ? $('grant-camera').checked : true,
    });
  });
  $('mute-all-button').addEventListener('click', () => floorAction(FloorActions.MUTE_ALL));
  $('end-meeting-button').addEventListener('click', () => {
    const d = $('end-dialog');
    d.returnValue = '';
    d.showModal();
  });
  $('end-dialog').addEventListener('close', () => {
    if ($('end-dialog').returnValue === 'end') floorAction(FloorActions.END);
  });
  $('floor-button').addEventListener('click', () => floorAction($('floor-button').dataset.action));
  $('panel-button').addEventListener('click', () => {
    page.panelChosen = true;
    togglePanel();
  });
  togglePanel(false);
}

// ---- joining -------------------------------------------------------------------------------

function join() {
  if (page.client) return;
  const name = clampName($('name-input').value || params.get('name') || claims?.name || '');
  $('join-button').disabled = true;
  setConnStatus('connecting', 'Connecting…');
  const c = new CauClient({ token, name });
  page.client = c;

  c.addEventListener('state', (e) => {
    const { state, attempt, delay } = e.detail;
    switch (state) {
      case 'connecting':
        setConnStatus('connecting', 'Connecting…');
        break;
      case 'joined':
        setConnStatus('joined', 'Connected');
        break;
      case 'reconnecting':
        window.cauState.joined = false;
        setConnStatus('reconnecting', 'Reconnecting…');
        if (delay !== undefined) {
          const wait = `${Math.ceil(delay / 1000)} s (attempt ${attempt})`;
          showBanner(
            window.cauState.selfId
              ? `Connection lost. Reconnecting in ${wait}… Mất kết nối, đang kết nối lại…`
              : `Cannot reach the meeting server. Retrying in ${wait}… Không kết nối được máy chủ…`,
            'warn',
          );
        }
        break;
      case 'closed':
        setConnStatus('closed', 'Disconnected');
        break;
    }
  });

  c.addEventListener('joined', (e) => {
    const { meeting, self, participants, reconnected } = e.detail;
    window.cauState.joined = true;
    window.cauState.selfId = self.id;
    window.cauState.meeting = meeting;
    $('meeting-id').textContent = meeting;
    document.title = `Cầu — ${meeting}`;
    if (reconnected) {
      window.cauState.reconnects++;
      showBanner('Reconnected. Đã kết nối lại.', 'info', 3000);
    }
    else hideBanner();
    showScreen('meeting-screen');
    $('self-video').srcObject = page.local;
    $('self-view').querySelector('.name').textContent = self.name ? `${self.name} (you)` : 'You';
    for (const p of participants) addParticipant(p);
    refreshControls();
    layout();
    renderFloor();
    startAudioWatch();
  });
  c.addEventListener('floor', (e) => {
    autoPanel(e.detail);
    renderFloor();
    layout();
    announceFloor(e.detail);
  });
  c.addEventListener('mutechange', (e) => {
    // The client muted a source by itself (the chair's "mute all"): follow it.
    if (e.detail.source === Source.MICROPHONE) page.micMuted = e.detail.muted;
    if (e.detail.source === Source.CAMERA) page.camMuted = e.detail.muted;
    applyLocalMute();
    refreshControls();
  });
  c.addEventListener('participantjoined', (e) => addParticipant(e.detail.participant));
  c.addEventListener('participantupdated', (e) => updateParticipant(e.detail.participant));
  c.addEventListener('participantleft', (e) => removeParticipant(e.detail.id));
  c.addEventListener('media', (e) => setMedia(e.detail.participant, e.detail.source, e.detail.stream));
  c.addEventListener('servererror', (e) => {
    const { code, message, request } = e.detail;
    if (request === 'floor_action') return; // floorAction reports it
    recordError(code, message);
    if (code === 'unauthorized' || code === 'forbidden') return; // the close that follows says it
    showBanner(`Server error: ${message || code}`, 'warn', 8000);
  });
  c.addEventListener('closed', (e) => onClosed(e.detail));
  c.addEventListener('mediamoved', () => {
    showBanner('Media server changed, restoring audio and video… Đang khôi phục hình ảnh và âm thanh…', 'info', 4000);
  });

  if (page.local) c.setLocalMedia(page.local);
  if (page.micMuted) c.setMuted(Source.MICROPHONE, true);
  if (page.camMuted) c.setMuted(Source.CAMERA, true);
  c.join().catch(() => {
    // onClosed has shown why.
  });
}

function onClosed({ code, message, serverError }) {
  window.cauState.joined = false;
  stopAudioWatch();
  clearTimeout(page.layoutTimer);
  if ($('end-dialog').open) $('end-dialog').close();
  for (const id of [...page.tiles.keys()]) removeParticipant(id);
  const server = serverError?.message ? `Server: ${serverError.message}.` : '';
  if (page.leaving || code === 1000) {
    showEnd('You left the meeting', 'Bạn đã rời cuộc họp.');
    return;
  }
  recordError(`close_${code}`, message);
  switch (code) {
    case CloseCode.UNAUTHORIZED:
      showEnd('Your link is invalid or expired', `${server} Ask the meeting organiser for a new link. ` +
        'Đường dẫn không hợp lệ hoặc đã hết hạn.', { error: true, rejoin: false });
      break;
    case CloseCode.REPLACED:
      showEnd('You joined from another window or device', 'This window was disconnected. ' +
        'Bạn đã vào họp từ cửa sổ hoặc thiết bị khác.', { error: true, rejoin: true });
      break;
    case CloseCode.MEETING_ENDED:
      showEnd('The meeting has ended', 'Cuộc họp đã kết thúc.', { rejoin: false });
      break;
    default:
      showEnd('Disconnected', `${message || ''} ${server}`.trim(), { error: true, rejoin: true });
  }
}

function leave() {
  page.leaving = true;
  page.client?.leave();
}

function rejoin() {
  // A fresh page: new devices, new session, same link.
  location.reload();
}

// ---- start ---------------------------------------------------------------------------------

async function start() {
  $('meeting-id').textContent = claims?.meeting || pathMeeting;
  $('banner-action').hidden = true;
  $('mic-button').addEventListener('click', toggleMic);
  $('cam-button').addEventListener('click', toggleCam);
  $('screen-button').addEventListener('click', toggleScreen);
  $('leave-button').addEventListener('click', leave);
  $('rejoin-button').addEventListener('click', rejoin);
  $('sound-button').addEventListener('click', enableSound);
  $('preview-mic').addEventListener('click', toggleMic);
  $('preview-cam').addEventListener('click', toggleCam);
  $('mic-select').addEventListener('change', reopenFromSelects);
  startFloorControls();
  $('cam-select').addEventListener('change', reopenFromSelects);
  $('join-form').addEventListener('submit', (e) => {
    e.preventDefault();
    join();
  });
  window.addEventListener('pagehide', () => {
    if (page.client && !page.leaving) leave();
  });

  if (!token) {
    showEnd('Your link is invalid or expired', 'The link has no access token. Ask the meeting organiser for a new link. ' +
      'Đường dẫn không hợp lệ.', { error: true, rejoin: false });
    return;
  }
  if (!claims) {
    showEnd('Your link is invalid or expired', 'The access token in the link cannot be read. ' +
      'Ask the meeting organiser for a new link. Đường dẫn không hợp lệ.', { error: true, rejoin: false });
    return;
  }
  if (claims.meeting && pathMeeting && claims.meeting !== pathMeeting) {
    console.warn(`[cau] the link's path names meeting ${pathMeeting} but its token is for ${claims.meeting}`);
  }

  const name = clampName(params.get('name') || claims.name || '');
  $('name-input').value = name;
  if (claims.site) {
    $('preview-site').textContent = claims.site;
    $('preview-site-row').hidden = false;
  }

  if (autojoin) {
    setConnStatus('connecting', 'Starting…');
    page.local = await openLocalMedia();
    if ($('media-warning').textContent) showBanner($('media-warning').textContent, 'warn', 10000);
    join();
    return;
  }
  showScreen('preview-screen');
  page.local = await openLocalMedia();
  updatePreview();
  await fillDeviceLists();
  $('name-input').focus();
}

start().catch((err) => {
  console.error('[cau] page start failed', err);
  showBanner(`The page failed to start: ${err.message}`, 'error');
});
