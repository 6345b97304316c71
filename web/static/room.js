// room.js — the meeting-room kiosk: /room/<endpoint>?token=<device token>[&poll=<seconds>]
//
// A screen, a camera and a microphone in a meeting room, with nobody at the keyboard. The
// page shows the site and its next meeting (title, time in Vietnam time, a countdown),
// asks the REST API for a join token when the test window opens (or the meeting starts),
// joins by itself and shows every other site in a full-screen grid; it rejoins after a
// network drop or a reload, leaves when the meeting ends, and reads its plan again every
// 30 s (poll=…), so a rescheduled or cancelled meeting is followed.
//
// The device token (role room, this endpoint) only reads the plan and mints join tokens;
// each join token names one meeting and lives minutes. Signaling and WebRTC are in
// cau-client.js.
//
// Test hook: window.cauRoom = {state, joined, selfId, meeting, sessions, joins, leaves, ...}.

import { playOrMute } from './autoplay.js';
import { CauClient, CloseCode, Source, clampName } from './cau-client.js';
import { fmtDay, fmtTime, sameDay, t, translatePage } from './i18n.js';
import { watchRecording } from './recording-badge.js';
import { markSpeaker } from './speaker-marks.js';
import { ViewReporter } from './view-report.js';

const $ = (id) => document.getElementById(id);

const params = new URLSearchParams(location.search);
const deviceToken = params.get('token') || '';
const endpointId = (() => {
  try {
    return decodeURIComponent(location.pathname.split('/')[2] || '');
  } catch {
    return '';
  }
})();
const POLL_MS = Math.min(300, Math.max(1, Number(params.get('poll')) || 30)) * 1000;
const RETRY_MS = 3000; // after a failed join-token request or a session that ended badly
const IN_USE_RETRY_MS = 20000; // the room's own device holds the endpoint: try again, gently

/** This device's own id, kept across reloads: the server lets only it replace its session. */
const DEVICE_ID = (() => {
  try {
    let id = localStorage.getItem('cau.device');
    if (!/^[A-Za-z0-9_-]{8,64}$/.test(id || '')) {
      id = Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, '0')).join('');
      localStorage.setItem('cau.device', id);
    }
    return id;
  } catch {
    return ''; // no storage (a locked-down browser): the kiosk joins as any session does
  }
})();
const API = `/api/v1/endpoints/${encodeURIComponent(endpointId)}`;

const VIDEO_CONSTRAINTS = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
const AUDIO_CONSTRAINTS = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

const kiosk = {
  /** the last /next answer: {endpoint, site, now, plan} */
  info: null,
  /** server clock minus local clock, ms (the server's "now" at the last poll) */
  skew: 0,
  /** @type {CauClient|null} */
  client: null,
  clientMeeting: '',
  /** a join is being prepared (token, devices) */
  starting: false,
  /** don't rejoin this sitting: "<meeting>@<end>" (it ended for us, or another device
   * took our place); a rescheduled meeting has another end, so it is joined again */
  doneWith: '',
  clientKey: '',
  retryAt: 0,
  /** @type {MediaStream|null} */
  local: null,
  soundBlocked: false,
  tiles: new Map(),
  pollTimer: 0,
  edgeTimer: 0,
  errors: [],
  state: 'loading',
};

// ---- test hook ----------------------------------------------------------------------------

window.cauRoom = {
  joined: false,
  selfId: '',
  meeting: '',
  /** CauClient sessions started (a reload or a fresh join token starts a new one) */
  sessions: 0,
  /** 'joined' events, reconnects included */
  joins: 0,
  /** sessions ended (left at the end, cancelled, dropped for good) */
  leaves: 0,
  polls: 0,
  /** Date.now() of the latest 'joined' and of the latest session end */
  joinedAt: 0,
  leftAt: 0,
  get state() {
    return kiosk.state;
  },
  get plan() {
    return kiosk.info;
  },
  get participants() {
    return [...kiosk.tiles.keys()];
  },
  get errors() {
    return kiosk.errors.slice();
  },
  remoteVideos() {
    return [...document.querySelectorAll('#grid video')]
      .filter((v) => v.srcObject && v.srcObject.getVideoTracks().length > 0)
      .map((v) => ({
        participant: v.closest('[data-participant]')?.dataset.participant || '',
        width: v.videoWidth,
        height: v.videoHeight,
        frames: typeof v.getVideoPlaybackQuality === 'function' ? v.getVideoPlaybackQuality().totalVideoFrames : 0,
      }));
  },
};

function recordError(code, message) {
  kiosk.errors.push({ code, message, at: new Date().toISOString() });
  if (kiosk.errors.length > 50) kiosk.errors.shift();
}

function setState(s) {
  kiosk.state = s;
  document.body.dataset.state = s;
}

// ---- times (shown in Vietnam time by i18n.js) ---------------------------------------------

const pad = (n) => String(n).padStart(2, '0');
const hhmm = (ms) => fmtTime(ms);

/** "1 ngày 02:03:04" or "02:03:04". */
function duration(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const days = Math.floor(s / 86400);
  const rest = `${pad(Math.floor((s % 86400) / 3600))}:${pad(Math.floor((s % 3600) / 60))}:${pad(s % 60)}`;
  return days > 0 ? t('room.days', { days, rest }) : rest;
}

const serverNow = () => Date.now() + kiosk.skew;

// ---- the plan ------------------------------------------------------------------------------

function showBanner(text, kind = 'warn') {
  const b = $('banner');
  b.textContent = text;
  b.dataset.kind = kind;
  b.hidden = !text;
}

async function api(method, path) {
  const res = await fetch(API + path, {
    method,
    headers: { Authorization: `Bearer ${deviceToken}` },
    cache: 'no-store',
  });
  let body = null;
  try {
    body = await res.json();
  } catch {
    /* not JSON */
  }
  if (!res.ok) {
    const err = new Error(body?.error?.message || `HTTP ${res.status}`);
    err.status = res.status;
    err.code = body?.error?.code || 'http';
    throw err;
  }
  return body;
}

/** Reads the plan now, and again every POLL_MS. */
async function poll() {
  clearTimeout(kiosk.pollTimer);
  try {
    const t0 = Date.now();
    const info = await api('GET', '/next');
    const rtt = Date.now() - t0;
    kiosk.skew = Date.parse(info.now) - (t0 + rtt / 2);
    kiosk.info = info;
    window.cauRoom.polls++;
    if (kiosk.state === 'offline' || kiosk.state === 'loading' || kiosk.state === 'refused') setState('idle');
    if (!kiosk.client) showBanner('');
  } catch (err) {
    recordError(err.code || 'network', err.message);
    if (err.status === 401 || err.status === 403 || err.status === 404) {
      setState('refused');
      showBanner(t('room.refused', { why: err.message }), 'error');
    } else if (!kiosk.client) {
      setState('offline');
      showBanner(t('room.offline'));
    }
  }
  kiosk.pollTimer = setTimeout(poll, POLL_MS);
  tick();
}

/** What the plan says to do at the server's now: {meeting, connect, start, end} or null. */
function current() {
  const p = kiosk.info?.plan;
  if (!p) return null;
  const m = p.meeting;
  const connect = Date.parse(p.connect_at);
  const start = Date.parse(m.start);
  const end = Date.parse(p.disconnect_at);
  const now = serverNow();
  if (now >= end || m.state === 'ended' || m.state === 'cancelled') return null;
  return { meeting: m, connect, start, end, now, inWindow: now >= connect, key: `${m.id}@${p.disconnect_at}` };
}

/** Once a second: the clock, the countdown, and joining or leaving on time. */
function tick() {
  const now = serverNow();
  $('clock').textContent = hhmm(now);
  const c = current();
  render(c);
  // The 1 s tick would join or leave up to a second late: wake at the edge itself.
  if (c) {
    const edge = (c.inWindow ? c.end : c.connect) - now;
    if (edge > 0 && edge < 1000) {
      clearTimeout(kiosk.edgeTimer);
      kiosk.edgeTimer = setTimeout(tick, edge + 10);
    }
  }
  if (kiosk.client && (!c || !c.inWindow || c.meeting.id !== kiosk.clientMeeting)) {
    if (!c) kiosk.doneWith = kiosk.clientKey; // over: a late answer of the API must not bring it back
    leave(c ? 'the plan changed' : 'the meeting is over');
    return;
  }
  if (c && c.inWindow && !kiosk.client && !kiosk.starting && c.key !== kiosk.doneWith && Date.now() >= kiosk.retryAt) {
    startSession();
  }
}

function render(c) {
  const info = kiosk.info;
  if (info) {
    $('site-name').textContent = info.site?.name || info.endpoint?.site || '';
    $('endpoint-name').textContent = info.endpoint?.name || endpointId;
    document.title = t('room.page_title', { site: info.site?.name || endpointId });
  }
  $('meeting-title').textContent = kiosk.client && c ? c.meeting.title : '';
  if (!info) return;
  const cd = $('countdown');
  if (!c) {
    $('next-title').textContent = t('room.none');
    $('next-time').textContent = t('room.none_detail');
    $('next-chair').textContent = '';
    cd.hidden = true;
    $('next-note').textContent = t('room.refresh_note', { s: POLL_MS / 1000 });
    return;
  }
  const m = c.meeting;
  $('next-title').textContent = m.title;
  const when = sameDay(c.start, c.end)
    ? `${fmtDay(c.start)} · ${hhmm(c.start)} – ${hhmm(c.end)}`
    : `${fmtDay(c.start)} ${hhmm(c.start)} – ${fmtDay(c.end)} ${hhmm(c.end)}`;
  $('next-time').textContent = t('room.when', { when });
  $('next-chair').textContent = m.chair_name
    ? t('room.chair', { chair: m.chair_name, sites: m.site_count }) : t('room.sites', { sites: m.site_count });
  cd.hidden = false;
  if (!c.inWindow) {
    cd.dataset.phase = 'waiting';
    cd.textContent = t('room.countdown', { d: duration(c.connect - c.now) });
    $('next-note').textContent = t('room.test_at', { time: hhmm(c.connect) });
  } else if (c.now < c.start) {
    cd.dataset.phase = 'testing';
    cd.textContent = t('room.testing', { d: duration(c.start - c.now) });
    $('next-note').textContent = kiosk.starting ? t('room.connecting') : '';
  } else {
    cd.dataset.phase = 'joining';
    cd.textContent = t('room.live', { time: hhmm(c.end) });
    $('next-note').textContent = kiosk.starting ? t('room.connecting') : '';
  }
}

// ---- joining and leaving ---------------------------------------------------------------------

async function openLocalMedia() {
  const md = navigator.mediaDevices;
  if (!md?.getUserMedia) return null;
  for (const c of [
    { audio: AUDIO_CONSTRAINTS, video: VIDEO_CONSTRAINTS },
    { audio: AUDIO_CONSTRAINTS, video: false },
    { audio: false, video: VIDEO_CONSTRAINTS },
  ]) {
    try {
      return await md.getUserMedia(c);
    } catch (err) {
      recordError('media', `${err.name}: ${err.message}`);
    }
  }
  showBanner(t('room.no_media'));
  return null;
}

async function startSession() {
  kiosk.starting = true;
  setState('joining');
  let grant;
  try {
    grant = await api('POST', '/join-token');
  } catch (err) {
    kiosk.starting = false;
    recordError(err.code || 'network', err.message);
    kiosk.retryAt = Date.now() + RETRY_MS;
    setState('idle');
    if (err.code === 'not_connectable') poll(); // our plan was stale
    return;
  }
  if (!kiosk.local) kiosk.local = await openLocalMedia();
  const c = current();
  if (!c || c.meeting.id !== grant.meeting) {
    kiosk.starting = false; // the plan moved on while we asked
    return;
  }
  const client = new CauClient({ token: grant.token, device: DEVICE_ID, name: clampName(kiosk.info?.endpoint?.name || '') });
  kiosk.client = client;
  kioskView.reset(); // the new session has no view yet
  watchRecording(client);
  kiosk.clientMeeting = grant.meeting;
  kiosk.clientKey = c.key;
  kiosk.starting = false;
  window.cauRoom.sessions++;

  client.addEventListener('state', (e) => {
    if (client !== kiosk.client) return;
    const s = e.detail.state;
    $('conn-status').dataset.state = s;
    $('conn-status').textContent = ['connecting', 'joined', 'reconnecting'].includes(s) ? t(`room.conn_${s}`) : '';
    if (s === 'reconnecting') {
      window.cauRoom.joined = false;
      setState('reconnecting');
      showBanner(t('room.lost'));
    }
  });
  client.addEventListener('joined', (e) => {
    if (client !== kiosk.client) return;
    const { meeting, self, participants } = e.detail;
    Object.assign(window.cauRoom, { joined: true, selfId: self.id, meeting, joinedAt: Date.now() });
    window.cauRoom.joins++;
    setState('joined');
    showBanner('');
    showScreen('meeting');
    $('self-video').srcObject = kiosk.local;
    for (const p of participants) addParticipant(p);
    layout();
  });
  client.addEventListener('participantjoined', (e) => client === kiosk.client && addParticipant(e.detail.participant));
  client.addEventListener('participantupdated', (e) => client === kiosk.client && labelTile(e.detail.participant));
  client.addEventListener('participantleft', (e) => client === kiosk.client && removeParticipant(e.detail.id));
  client.addEventListener('media', (e) => client === kiosk.client && setMedia(e.detail));
  client.addEventListener('speaker', () => client === kiosk.client && layout());
  client.addEventListener('servererror', (e) => recordError(e.detail.code, e.detail.message));
  client.addEventListener('closed', (e) => onClosed(client, e.detail));

  if (kiosk.local) client.setLocalMedia(kiosk.local);
  client.join().catch(() => {
    /* onClosed says why */
  });
  tick();
}

/** Leaves on purpose (the meeting ended, was cancelled or moved). */
function leave(why) {
  const c = kiosk.client;
  if (!c) return;
  console.info('[room] leaving:', why);
  c.leave(); // emits closed (1000) at once
}

function onClosed(client, { code, message }) {
  if (client !== kiosk.client) return;
  const key = kiosk.clientKey;
  kiosk.client = null;
  kiosk.clientMeeting = '';
  kiosk.clientKey = '';
  window.cauRoom.joined = false;
  window.cauRoom.leaves++;
  window.cauRoom.leftAt = Date.now();
  for (const id of [...kiosk.tiles.keys()]) removeParticipant(id);
  $('conn-status').dataset.state = 'idle';
  $('conn-status').textContent = '';
  showScreen('idle');
  setState('idle');
  switch (code) {
    case 1000: // we left
      break;
    case CloseCode.MEETING_ENDED:
      if (client.self) {
        kiosk.doneWith = key; // it ended while we were in it
      } else {
        // Refused at the door ("not open yet": the signaling node's clock runs behind
        // the API's): try again shortly.
        recordError('close_4005', message);
        kiosk.retryAt = Date.now() + RETRY_MS;
      }
      break;
    case CloseCode.REPLACED:
      // Only this device's own later session replaces it (a reload, another tab): that
      // one carries on.
      kiosk.doneWith = key;
      showBanner(t('room.replaced'), 'error');
      break;
    case CloseCode.ENDPOINT_IN_USE:
      // Another device of this room is in the meeting; the room is not lost: keep trying,
      // so this one takes over when that one leaves.
      recordError('close_4006', message);
      showBanner(t('room.in_use'), 'error');
      kiosk.retryAt = Date.now() + IN_USE_RETRY_MS;
      break;
    case CloseCode.UNAUTHORIZED:
      // The join token expired before a reconnect succeeded: a fresh one now.
      recordError('close_4001', message);
      kiosk.retryAt = 0;
      break;
    default:
      recordError(`close_${code}`, message);
      kiosk.retryAt = Date.now() + RETRY_MS;
  }
  poll();
}

// ---- the grid ---------------------------------------------------------------------------------

function showScreen(which) {
  $('idle-screen').hidden = which !== 'idle';
  $('meeting-screen').hidden = which !== 'meeting';
  document.body.dataset.screen = which;
}

function initials(name) {
  const words = String(name || '?').trim().split(/\s+/).filter(Boolean);
  const chars = words.length > 1 ? [words[0], words[words.length - 1]] : words;
  return chars.map((w) => Array.from(w)[0].toUpperCase()).join('') || '?';
}

function addParticipant(p) {
  if (kiosk.tiles.has(p.id)) return labelTile(p);
  const tile = $('tile-template').content.firstElementChild.cloneNode(true);
  tile.dataset.participant = p.id;
  tile.classList.add('no-video');
  const v = tile.querySelector('video');
  v.addEventListener('resize', () => refreshVideo(tile));
  v.addEventListener('playing', () => refreshVideo(tile));
  kiosk.tiles.set(p.id, tile);
  $('grid').append(tile);
  labelTile(p);
  layout();
}

function labelTile(p) {
  const tile = kiosk.tiles.get(p.id);
  if (!tile) return;
  tile.querySelector('.name').textContent = p.name || p.site || p.id;
  tile.querySelector('.site').textContent = p.site && p.site !== p.name ? p.site : '';
  tile.querySelector('.initials').textContent = initials(p.name || p.site);
  tile.classList.toggle('mic-muted', (p.muted || []).includes(Source.MICROPHONE));
  refreshVideo(tile);
}

function removeParticipant(id) {
  const tile = kiosk.tiles.get(id);
  if (!tile) return;
  tile.querySelector('video').srcObject = null;
  tile.remove();
  kiosk.tiles.delete(id);
  layout();
}

function refreshVideo(tile) {
  const v = tile.querySelector('video');
  const live = !!v.srcObject && v.srcObject.getVideoTracks().some((t) => t.readyState === 'live');
  tile.classList.toggle('no-video', !live || v.videoWidth === 0);
}

/** A participant's camera (with its microphone) or screen. Screens replace the camera
 * picture of their tile and span the grid: in a hall the slides matter more. */
function setMedia({ participant, source, stream }) {
  const tile = kiosk.tiles.get(participant);
  if (!tile) return;
  const v = tile.querySelector('video');
  if (source === Source.SCREEN) {
    tile.classList.toggle('screen-tile', !!stream);
    tile.dataset.source = stream ? 'screen' : 'camera';
    if (!stream) tile.screenStream = null;
    else tile.screenStream = stream;
  } else {
    tile.cameraStream = stream;
  }
  const show = tile.screenStream || tile.cameraStream || null;
  if (v.srcObject !== show) v.srcObject = show;
  // Sound comes with the camera stream; a screen shows without it, so keep the camera's
  // audio playing through a hidden element.
  syncAudio(tile);
  if (show) play(v);
  refreshVideo(tile);
  layout();
}

function syncAudio(tile) {
  const cam = tile.cameraStream;
  let a = tile.querySelector('audio');
  if (tile.screenStream && cam) {
    if (!a) {
      a = document.createElement('audio');
      a.autoplay = true;
      tile.append(a);
    }
    if (a.srcObject !== cam) a.srcObject = cam;
    a.muted = kiosk.soundBlocked;
    play(a);
  } else if (a) {
    a.srcObject = null;
    a.remove();
  }
  tile.querySelector('video').muted = !!tile.screenStream || kiosk.soundBlocked;
}

/** Plays; if the browser wants a gesture for sound, plays muted and asks for a touch. */
function play(el) {
  playOrMute(el, () => {
    kiosk.soundBlocked = true;
    $('sound-hint').hidden = false;
  });
}

function enableSound() {
  if (!kiosk.soundBlocked) return;
  kiosk.soundBlocked = false;
  $('sound-hint').hidden = true;
  for (const tile of kiosk.tiles.values()) {
    syncAudio(tile);
    play(tile.querySelector('video'));
  }
}

// The tiles' sizes drive the layers the bridge sends (view-report.js). A tile showing a
// participant's screen does not show its camera: that camera is reported hidden.
const kioskView = new ViewReporter((tiles) => kiosk.client?.sendView(tiles), function* tiles() {
  for (const [participant, tile] of kiosk.tiles) {
    yield { participant, source: Source.CAMERA, element: tile.screenStream ? null : tile };
    if (tile.screenStream) yield { participant, source: Source.SCREEN, element: tile };
  }
});

function layout() {
  kioskView.update();
  const n = kiosk.tiles.size;
  const grid = $('grid');
  grid.dataset.count = String(n);
  const screens = [...kiosk.tiles.values()].filter((t) => t.classList.contains('screen-tile')).length;
  const cells = n + screens * 3; // a screen spans a whole row, two rows high
  const cols = n <= 1 ? 1 : cells <= 4 ? 2 : cells <= 9 ? 3 : cells <= 16 ? 4 : Math.ceil(Math.sqrt(cells));
  grid.style.setProperty('--cols', String(cols));
  grid.style.setProperty('--rows', String(Math.max(1, Math.ceil(cells / cols))));
  $('alone').hidden = n > 0;
  // The bridges' choice: the speaker's tile highlighted, held-back sites marked (no pin
  // buttons: a hall's screen is not touched during a meeting).
  const c = kiosk.client;
  markSpeaker({ tiles: kiosk.tiles, participants: c?.participants || new Map(), state: c?.speaker || null,
    status: $('speaker-status'), self: c?.self || null, selfEl: $('self-view') });
}

// ---- start ------------------------------------------------------------------------------------

function start() {
  translatePage();
  document.addEventListener('pointerdown', enableSound);
  document.addEventListener('keydown', enableSound);
  window.addEventListener('online', () => poll());
  window.addEventListener('pagehide', () => kiosk.client?.leave());
  showScreen('idle');
  if (!deviceToken || !endpointId) {
    setState('refused');
    showBanner(t('room.no_token'), 'error');
    $('next-title').textContent = t('room.not_configured');
    return;
  }
  setInterval(tick, 1000);
  poll();
}

start();
