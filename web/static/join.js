// join.js — the official's join page:
//   /join/<meeting>?token=<jwt>[&autojoin=1][&name=...][&hold=<seconds>]
//
// A preview screen (camera + microphone check, name, Join) and then the meeting, laid out
// like the MCUs officials know (see layout.js): the chair site and the current speaker in
// two main windows, everyone else in a strip, a shared screen (the content channel) in the
// main area with chair and speaker beside it; a small self-view; the floor panel (mode, who
// speaks, the request queue, and the chair's controls); the controls. hold= sets the talk
// hold time (default 3 s). The signaling and WebRTC work is in cau-client.js; the page's parts
// are join-page.js (state, helpers), local-media.js, grid.js, controls.js, floor-roles.js
// and floor-panel.js; this module wires them together and runs the join.
//
// Test hook: window.cauState = {joined, participants, remoteVideos(), layout(), floor, ...};
// see below.

import { CauClient, CloseCode, Source, clampName } from './cau-client.js';
import { t, translatePage } from './i18n.js';
import { watchRecording } from './recording-badge.js';
import { refreshControls, toggleCam, toggleMic, toggleScreen } from './controls.js';
import { announceFloor, autoPanel, renderFloor, startFloorControls } from './floor-panel.js';
import {
  addParticipant, enableSound, layout, removeParticipant, setMedia, startAudioWatch, stopAudioWatch, updateParticipant,
  viewTiles,
} from './grid.js';
import {
  $, autojoin, claims, hideBanner, holdMs, page, params, pathMeeting, recordError, setConnStatus, showBanner, showScreen,
  token,
} from './join-page.js';
import { applyLocalMute, fillDeviceLists, openLocalMedia, reopenFromSelects, stopLocalMedia, updatePreview } from './local-media.js';
import { ViewReporter } from './view-report.js';

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
  /** the slot streams that carry a participant now (joined with slots=1) */
  slotsOf(participant) {
    return page.client ? page.client._remote.slots.slotsOf(participant) : [];
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


// ---- joining -------------------------------------------------------------------------------

function join() {
  if (page.client) return;
  const name = clampName($('name-input').value || params.get('name') || claims?.name || '');
  $('join-button').disabled = true;
  setConnStatus('connecting', t('conn.connecting'));
  // slots=1: receive in slots (a large discussion meeting negotiates once whatever its size).
  const c = new CauClient({ token, name, slots: params.get('slots') === '1' });
  page.client = c;
  page.view = new ViewReporter((tiles) => c.sendView(tiles), viewTiles);
  watchRecording(c);

  c.addEventListener('state', (e) => {
    const { state, attempt, delay } = e.detail;
    switch (state) {
      case 'connecting':
        setConnStatus('connecting', t('conn.connecting'));
        break;
      case 'joined':
        setConnStatus('joined', t('conn.joined'));
        break;
      case 'reconnecting':
        window.cauState.joined = false;
        setConnStatus('reconnecting', t('conn.reconnecting'));
        if (delay !== undefined) {
          const wait = { s: Math.ceil(delay / 1000), attempt };
          showBanner(t(window.cauState.selfId ? 'conn.lost' : 'conn.unreachable', wait), 'warn');
        }
        break;
      case 'closed':
        setConnStatus('closed', t('conn.closed'));
        break;
    }
  });

  c.addEventListener('joined', (e) => {
    const { meeting, self, participants, reconnected } = e.detail;
    window.cauState.joined = true;
    window.cauState.selfId = self.id;
    window.cauState.meeting = meeting;
    $('meeting-id').textContent = meeting;
    document.title = t('join.page_title', { meeting });
    if (reconnected) {
      window.cauState.reconnects++;
      showBanner(t('conn.reconnected'), 'info', 3000);
    }
    else hideBanner();
    showScreen('meeting-screen');
    $('self-video').srcObject = page.local;
    $('self-view').querySelector('.name').textContent = self.name ? t('join.you_named', { name: self.name }) : t('join.you');
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
  c.addEventListener('speaker', () => layout());
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
    showBanner(t('conn.server_error', { message: message || code }), 'warn', 8000);
  });
  c.addEventListener('closed', (e) => onClosed(e.detail));
  c.addEventListener('mediamoved', () => {
    showBanner(t('conn.media_moved'), 'info', 4000);
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
  const server = serverError?.message ? t('end.server', { message: serverError.message }) : '';
  if (page.leaving || code === 1000) {
    showEnd(t('end.left'), t('end.left_detail'));
    return;
  }
  recordError(`close_${code}`, message);
  switch (code) {
    case CloseCode.UNAUTHORIZED:
      showEnd(t('end.invalid'), t('end.invalid_detail', { server }).trim(), { error: true, rejoin: false });
      break;
    case CloseCode.REPLACED:
      showEnd(t('end.replaced'), t('end.replaced_detail'), { error: true, rejoin: true });
      break;
    case CloseCode.ENDPOINT_IN_USE:
      showEnd(t('end.in_use'), t('end.in_use_detail'), { error: true, rejoin: true });
      break;
    case CloseCode.MEETING_ENDED:
      showEnd(t('end.ended'), t('end.ended_detail'), { rejoin: false });
      break;
    default:
      showEnd(t('end.disconnected'), `${message || ''} ${server}`.trim(), { error: true, rejoin: true });
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
  translatePage();
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
    showEnd(t('end.invalid'), t('end.no_token'), { error: true, rejoin: false });
    return;
  }
  if (!claims) {
    showEnd(t('end.invalid'), t('end.bad_token'), { error: true, rejoin: false });
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
    setConnStatus('connecting', t('conn.starting'));
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
  showBanner(t('page.failed', { why: err.message }), 'error');
});
