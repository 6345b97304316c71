// watch.js — a WHEP player: /watch/<meeting>?token=<join token>[&site=<site id>] plays one
// camera and microphone of a meeting (the named site's, else the floor holder's, else the
// chair's site), receive-only, for a wall screen, an overflow room or a restream. It
// speaks the WHEP draft with the server's /whep endpoint: one POST of its offer, its later
// ICE candidates by PATCH (trickle-ice-sdpfrag with If-Match), DELETE when the page goes.
// A lost session is started again after a pause, so an unattended screen recovers.
//
// The token is moved from the URL to this tab's sessionStorage at once and the URL cleaned.
//
// Test hook: window.cauWatch = {state, sessions, patches, error, pc}.

import { t, translatePage } from './i18n.js';
import { takeToken } from './page-token.js';

const TOKEN_KEY = 'cau.watch.token';
const RETRY_MS = 3000;
const $ = (id) => document.getElementById(id);

const state = { state: 'idle', sessions: 0, patches: 0, error: '' };
window.cauWatch = state;

const token = takeToken(TOKEN_KEY);
const meeting = decodeURIComponent(location.pathname.split('/').pop() || '');
const site = new URLSearchParams(location.search).get('site') || '';

function show(key, params) {
  state.state = key;
  $('status').textContent = t(`watch.${key}`, params);
  $('status').hidden = key === 'playing';
}

/** One WHEP session: resolves when it ends (the connection failed or closed). */
async function session() {
  const pc = new RTCPeerConnection();
  state.pc = pc;
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  const stream = new MediaStream();
  pc.ontrack = (e) => {
    stream.addTrack(e.track);
    $('player').srcObject = stream;
  };
  let resource = '';
  let etag = '';
  let ended;
  const over = new Promise((resolve) => { ended = resolve; });
  // Candidates gathered before the answer wait for the resource's URL and ETag.
  const pending = [];
  let flushing = Promise.resolve();
  const flush = () => {
    if (!resource || !pending.length) return;
    const batch = pending.splice(0);
    const mid = pc.getTransceivers()[0].mid;
    const frag = [`a=ice-ufrag:${ufrag}`, `a=ice-pwd:${pwd}`, 'm=video 9 UDP/TLS/RTP/SAVPF 0', `a=mid:${mid}`,
      ...batch.map((c) => (c ? `a=${c.candidate}` : 'a=end-of-candidates'))].join('\r\n') + '\r\n';
    flushing = flushing.then(async () => {
      const r = await fetch(resource, { method: 'PATCH', body: frag,
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/trickle-ice-sdpfrag', 'If-Match': etag } });
      if (r.ok) state.patches++;
      else state.error = `PATCH ${r.status}`;
    }).catch((e) => { state.error = String(e); });
  };
  pc.onicecandidate = (e) => {
    if (e.candidate && !e.candidate.candidate) return;
    pending.push(e.candidate);
    flush();
  };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === 'connected') show('playing');
    if (pc.connectionState === 'failed' || pc.connectionState === 'closed') ended();
  };
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  const ufrag = /a=ice-ufrag:(\S+)/.exec(offer.sdp)?.[1] || '';
  const pwd = /a=ice-pwd:(\S+)/.exec(offer.sdp)?.[1] || '';
  const url = `/whep/${encodeURIComponent(meeting)}${site ? '/' + encodeURIComponent(site) : ''}`;
  const r = await fetch(url, { method: 'POST', body: pc.localDescription.sdp,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/sdp' } });
  if (!r.ok) {
    pc.close();
    const body = await r.json().catch(() => ({}));
    const err = new Error(body.error?.message || `HTTP ${r.status}`);
    err.status = r.status;
    throw err;
  }
  resource = new URL(r.headers.get('Location'), location.href).href;
  etag = r.headers.get('ETag') || '*';
  state.sessions++;
  await pc.setRemoteDescription({ type: 'answer', sdp: await r.text() });
  flush();
  const leave = () => fetch(resource, { method: 'DELETE', keepalive: true, headers: { Authorization: `Bearer ${token}` } });
  addEventListener('pagehide', leave, { once: true });
  await over;
  removeEventListener('pagehide', leave);
  await flushing;
  pc.close();
  leave().catch(() => {});
}

async function main() {
  await translatePage();
  $('meeting-id').textContent = meeting;
  $('unmute').onclick = () => {
    $('player').muted = false;
    $('unmute').hidden = true;
  };
  if (!token) {
    show('no_token');
    return;
  }
  for (;;) {
    show('connecting');
    try {
      await session();
      show('lost');
    } catch (e) {
      state.error = String(e);
      if (e.status === 401 || e.status === 403) {
        show('refused', { why: e.message });
        return;
      }
      show('lost');
    }
    await new Promise((r) => setTimeout(r, RETRY_MS));
  }
}

main();
