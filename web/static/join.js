// join.js — the official's join page: /join/<meeting>?token=<jwt>[&autojoin=1][&name=...]
//
// A preview screen (camera + microphone check, name, Join) and then the meeting: a grid of
// the other participants, a large stage for shared screens, a small self-view and the
// controls. The signaling and WebRTC work is in cau-client.js.
//
// Test hook: window.cauState = {joined, participants, remoteVideos(), ...}; see below.

import { CauClient, CloseCode, Source, clampName, decodeTokenClaims } from './cau-client.js';

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
  $('grid').append(tile);
  page.tiles.set(p.id, tile);
  layout();
}

function updateParticipant(p) {
  const tile = page.tiles.get(p.id);
  if (!tile) return addParticipant(p);
  labelTile(tile, p, Source.CAMERA);
  const screen = page.screens.get(p.id);
  if (screen) labelTile(screen, p, Source.SCREEN);
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

/** Sizes the grid for the number of tiles and shows the stage when a screen is shared. */
function layout() {
  const n = page.tiles.size;
  const grid = $('grid');
  grid.dataset.count = String(n);
  const cols = n <= 1 ? 1 : n <= 4 ? 2 : n <= 9 ? 3 : n <= 16 ? 4 : Math.ceil(Math.sqrt(n));
  grid.style.setProperty('--cols', String(cols));
  grid.style.setProperty('--rows', String(Math.max(1, Math.ceil(n / cols))));
  $('alone').hidden = n > 0;
  const staged = page.screens.size > 0;
  $('stage').hidden = !staged;
  $('meeting-screen').classList.toggle('has-stage', staged);
}

// ---- meeting controls ---------------------------------------------------------------------

function refreshControls() {
  const c = page.client;
  setToggle($('mic-button'), !page.micMuted, 'i-mic', 'i-mic-off');
  $('mic-button').title = page.micMuted ? 'Unmute microphone' : 'Mute microphone';
  setToggle($('cam-button'), !page.camMuted, 'i-cam', 'i-cam-off');
  $('cam-button').title = page.camMuted ? 'Turn camera on' : 'Turn camera off';
  const sharing = !!c?.sharingScreen;
  $('screen-button').classList.toggle('active', sharing);
  $('screen-button').setAttribute('aria-pressed', String(sharing));
  $('screen-button').title = sharing ? 'Stop sharing' : 'Share screen';
  const hasMic = !!page.local?.getAudioTracks().length;
  const hasCam = !!page.local?.getVideoTracks().length;
  $('mic-button').disabled = !hasMic;
  $('cam-button').disabled = !hasCam;
  $('screen-button').disabled = !navigator.mediaDevices?.getDisplayMedia;
  const self = $('self-view');
  self.classList.toggle('mic-muted', page.micMuted || !hasMic);
  self.classList.toggle('no-video', page.camMuted || !hasCam);
  self.classList.toggle('sharing', sharing);
}

function toggleMic() {
  page.micMuted = !page.micMuted;
  applyLocalMute();
  page.client?.setMuted(Source.MICROPHONE, page.micMuted);
  refreshControls();
  updatePreview();
}

function toggleCam() {
  page.camMuted = !page.camMuted;
  applyLocalMute();
  page.client?.setMuted(Source.CAMERA, page.camMuted);
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
  });
  c.addEventListener('participantjoined', (e) => addParticipant(e.detail.participant));
  c.addEventListener('participantupdated', (e) => updateParticipant(e.detail.participant));
  c.addEventListener('participantleft', (e) => removeParticipant(e.detail.id));
  c.addEventListener('media', (e) => setMedia(e.detail.participant, e.detail.source, e.detail.stream));
  c.addEventListener('servererror', (e) => {
    const { code, message } = e.detail;
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
