// cau-client.js — Cầu's signaling client as a reusable ES module: one endpoint's session.
//
// It speaks the protocol of docs/protocol (package protocol in Go) over the /ws WebSocket:
// join, requests and replies, reconnection with backoff, the participant list and the
// floor. The participant list is kept in roster.js, the two peer connections with the
// bridge in media-link.js, the binding of remote streams to participants in
// remote-streams.js, the protocol's constants in protocol.js and the floor rules in
// floor.js; this module re-exports those, so a page imports everything from here. The
// join page and the meeting-room kiosk page share it.
//
// Usage:
//   const c = new CauClient({token, name});
//   c.setLocalMedia(stream);                  // microphone + camera, before or after join
//   c.addEventListener('media', (e) => ...);  // a participant's camera/screen stream
//   c.addEventListener('floor', (e) => ...);  // who may speak now (floor control)
//   await c.join();
//   await c.floorAction('request');           // raise the hand (training mode)
//   ...; c.leave();
//
// Events (CustomEvent; the payload is in event.detail):
//   state               {state, attempt?, delay?}   idle|connecting|joined|reconnecting|closed
//   joined              {meeting, self, participants, floor, reconnected}
//   floor               {floor, previous, muteAll, joined}   the floor changed (newest version
//                       only); muteAll: the chair ordered "mute all" and this client muted
//                       its microphone; joined: the state came with a (re)join
//   mutechange          {source, muted, reason}   the client muted a source by itself
//                       (reason 'mute_all'); pages update their buttons
//   participantjoined   {participant}
//   participantupdated  {participant, previous}
//   participantleft     {id, participant}
//   recording           {active, since, by}   the meeting's recording state (after joined)
//   speaker             {speaker}   who speaks, Last-N, pins (docs/protocol/speaker.md)
//   media               {participant, source, stream}   stream null: the source stopped
//   mediamoved          {reason}   the server moved our media to another bridge (reconnect)
//   servererror         {code, message, id, request}   an error message from the server;
//                       request: the kind of the request it answered (e.g. 'floor_action'),
//                       whose promise is rejected with it too
//   closed              {code, reason, fatal, message, serverError}  the session ended for good

import { FloorActions, FloorMode, floorAllows, floorGrant, floorQueuePosition, normalizeFloor } from './floor.js';
import { MediaLink } from './media-link.js';
import {
  CauError, CloseCode, ErrorCode, PROTOCOL_VERSION, Source, clampName, decodeTokenClaims, defaultSignalURL,
  msidTracksByMid,
} from './protocol.js';
import { RemoteStreams } from './remote-streams.js';
import { Publications } from './publish.js';
import { PendingRequests } from './requests.js';
import { Keepalive } from './keepalive.js';
import { Roster } from './roster.js';

export {
  CauError, CloseCode, ErrorCode, FloorActions, FloorMode, PROTOCOL_VERSION, Source, clampName, decodeTokenClaims,
  defaultSignalURL, floorAllows, floorGrant, floorQueuePosition, msidTracksByMid,
};

const REQUEST_TIMEOUT_MS = 15000;
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 15000;

/**
 * One endpoint's session with Cầu. It reconnects (a fresh join with the same token) after
 * an unexpected drop, with backoff, but not after leave(), a rejected token (4001), a
 * replacement (4004), the meeting's end (4005) or the room's own device holding it (4006).
 */
export class CauClient extends EventTarget {
  /**
   * @param {object} opts
   * @param {string} opts.token  the JWT from the join link
   * @param {string} [opts.name] display name; empty: the server uses the token's name
   * @param {string} [opts.device] a room device's own id, kept across reloads (kiosk only)
   * @param {string} [opts.url]  signaling URL; default /ws on this host
   * @param {RTCConfiguration} [opts.rtcConfig] extra peer-connection settings
   * @param {boolean} [opts.reconnect] reconnect after unexpected drops (default true)
   * @param {boolean} [opts.obeyMuteAll] mute the microphone when the chair orders "mute
   *   all" (default true; a page with no way to unmute may prefer to handle it itself)
   * @param {boolean} [opts.slots] receive cameras and microphones in slots (slot-streams.js)
   * @param {(level: string, ...args: any[]) => void} [opts.log]
   */
  constructor({
    token, name = '', device = '', url, rtcConfig = {}, reconnect = true, obeyMuteAll = true, slots = false, log,
  } = {}) {
    super();
    if (!token) throw new CauError('no_token', 'no token');
    [this.token, this.device, this.name] = [token, device, clampName(name)];
    this.url = url || defaultSignalURL();
    this.rtcConfig = { bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require', ...rtcConfig };
    this.autoReconnect = reconnect;
    this.obeyMuteAll = obeyMuteAll;
    this.slots = !!slots;
    this.log = log || ((level, ...args) => (console[level] || console.log)('[cau]', ...args));

    this.state = 'idle';
    this.meeting = '';
    this.self = null;
    this._roster = new Roster({
      changed: (p, previous) => {
        if (!previous) this._emit('participantjoined', { participant: p });
        else this._emit('participantupdated', { participant: p, previous });
        this._remote.announced(p); // streams that arrived before we knew whose they are
      },
      left: (id, p) => {
        this._remote.left(p);
        this._emit('participantleft', { id, participant: p });
      },
    });
    /** @type {Map<string, object>} participants other than self, by id */
    this.participants = this._roster.byId;
    /** The floor as the server last announced it (see floorAllows); null before joined. */
    this.floor = null;
    this.speaker = null; // the last speaker message's data (dominant, Last-N, pins)
    this._muteEpoch = null; // the last "mute all" order seen; null before the first join

    this._ws = null;
    this._requests = new PendingRequests(REQUEST_TIMEOUT_MS);
    this._media = new MediaLink({
      rtcConfig: this.rtcConfig,
      log: this.log,
      send: (type, data) => this._send(type, data),
      request: (type, data, expect) => this._request(type, data, expect),
      onTrack: (e) => this._onRemoteTrack(e),
      onFailed: (why) => this._scheduleReconnect(why),
      onPublishError: (err) => this._onPublishError(err),
    });
    this._pubs = new Publications(this._media, this.log, this);
    /** Local publications: source → {track, stream, transceiver}. */
    this.local = this._pubs.local;
    /** Sources the user muted (kept across reconnects). */
    this.muted = this._pubs.muted;
    this._remote = new RemoteStreams((detail) => this._emit('media', detail));
    this._resumeToken = ''; // of the last joined (or reconnect): sent when joining again
    this._leaving = false;
    this._closed = false;
    this._attempt = 0;
    this._retryTimer = 0;
    this._keepalive = new Keepalive(() => this._send('ping'),
      () => this._scheduleReconnect('no answer from the server', !!this._resumeToken));
    /** The last error message the server sent, e.g. {code: 'unauthorized', message}. */
    this.lastServerError = null;
    this._firstJoin = null; // {resolve, reject} of join()
  }

  // ---- public API -------------------------------------------------------------------

  /** Opens the session. Resolves with the joined payload; rejects on a fatal failure. */
  join() {
    if (this._closed) return Promise.reject(new CauError('closed', 'client closed'));
    if (this._firstJoin) return this._firstJoin.promise;
    let resolve;
    let reject;
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this._firstJoin = { promise, resolve, reject };
    this._connect();
    return promise;
  }

  /**
   * Sets the microphone and camera to publish: the audio and video tracks of stream
   * (either may be missing). Call before or after join; a later call replaces them.
   */
  setLocalMedia(stream) {
    this._pubs.setCamera(stream);
    this._republish();
  }

  /** Publishes a screen (or window) capture as the "screen" source. */
  async startScreenShare(stream) {
    this._pubs.setScreen(stream);
    await this._republish();
  }

  /** Stops publishing the screen; the capture's tracks are stopped. */
  async stopScreenShare() {
    if (this._pubs.clearScreen()) await this._republish();
  }

  /** Whether a screen is being published. */
  get sharingScreen() {
    return this.local.has(Source.SCREEN);
  }

  /**
   * Mutes or unmutes a local source: the track sends silence/black and others are told.
   * Unmuting is refused (returns false, nothing changes) while the floor does not let this
   * site send that source: see mayUnmute. Returns true when the request was applied.
   */
  setMuted(source, muted) {
    if (!muted && this.muted.has(source) && !this.mayUnmute(source)) return false;
    this._pubs.setMuted(source, muted);
    if (this.state === 'joined') this._send('mute', { source, muted: !!muted });
    return true;
  }

  /** Whether a local source is muted. */
  isMuted(source) {
    return this.muted.has(source);
  }

  /** What the floor lets this endpoint's site send now: {mic, camera}. */
  floorAllows() {
    return floorAllows(this.floor, this.self?.site);
  }

  /**
   * Whether the floor lets this site send source now, so that unmuting it means something:
   * in discussion mode, at the chair site, or while holding the floor with that medium.
   */
  mayUnmute(source) {
    const allowed = this.floorAllows();
    return source === Source.MICROPHONE ? allowed.mic : allowed.camera;
  }

  /**
   * Asks for a floor change. action is one of FloorActions; opts: {site, mic, camera, mode}
   * as the action needs (grant/deny/revoke name a site; grant in directed mode gives mic
   * and/or camera; set_mode names a mode). Resolves with the floor after the change;
   * rejects with a CauError whose code is the server's (forbidden, bad_message, …).
   */
  floorAction(action, opts = {}) {
    if (this.state !== 'joined') {
      return Promise.reject(new CauError('not_joined', 'not in the meeting (yet)'));
    }
    const data = { action: String(action) };
    if (opts.site) data.site = String(opts.site);
    if (opts.mic) data.mic = true;
    if (opts.camera) data.camera = true;
    if (opts.mode) data.mode = String(opts.mode);
    // Every floor change is also broadcast without an id: only the reply with our id
    // answers this request.
    return this._request('floor_action', data, 'floor', { strictId: true }).then((state) => {
      this._applyFloor(state, false);
      return normalizeFloor(state || {});
    });
  }

  /** Pins a site (on) or unpins it: for everyone if we chair, else for us; false if not joined. */
  pin(site, on) {
    return this.state === 'joined' && this._send('pin', { site: String(site), on: !!on });
  }

  /**
   * Tells the server how large each remote video is shown (docs/protocol/view.md):
   * tiles [{participant, source, height}], height in device pixels, 0 = not shown. It is
   * kept and sent again after a rejoin; false if not joined (sent at the join).
   */
  sendView(tiles) {
    this._view = tiles;
    return this.state === 'joined' && this._send('view', { tiles });
  }

  /** Remote audio levels now: participant id → the loudest of its tracks, 0..1 (1 = 0 dBov). */
  async audioLevels() {
    const out = new Map();
    for (const [track, level] of await this._media.audioLevels()) {
      const owner = this._remote.ownerOfTrack(track);
      if (owner) out.set(owner.participant, Math.max(out.get(owner.participant) || 0, level));
    }
    return out;
  }

  /** Leaves the meeting for good: tells the server, closes the connections. */
  leave() {
    if (this._closed) return;
    this._leaving = true;
    this._send('leave'); // only while the socket is open
    this._finish({ code: 1000, reason: 'left', fatal: false, message: 'You left the meeting.' });
  }

  /** Media statistics of both connections, for diagnostics: {publisher, subscriber}. */
  getStats() {
    return this._media.stats();
  }

  // ---- connection lifecycle -----------------------------------------------------------

  _setState(state, extra = {}) {
    this.state = state;
    this._emit('state', { state, ...extra });
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _connect() {
    clearTimeout(this._retryTimer);
    this._setState(this._attempt > 0 ? 'reconnecting' : 'connecting', { attempt: this._attempt });
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      this._finish({ code: 0, reason: 'bad_url', fatal: true, message: String(err) });
      return;
    }
    this._ws = ws;
    ws.onopen = () => {
      if (ws !== this._ws) return;
      this._roster.reset();
      this._keepalive.start();
      // The connections exist before the join is answered, so an offer or a candidate
      // that the server sends right behind "joined" is never dropped; resuming, the lost
      // socket's are kept, and renewed only if joined says so (docs/protocol/resume.md).
      if (!this._resumeToken) this._setupMedia();
      const data = { token: this.token, ...(this.name && { name: this.name }) };
      if (this.device) data.device = this.device;
      data[this.slots ? 'slots' : 'slots_auto'] = true; // auto: the server's choice, by meeting size
      if (this._resumeToken) data.resume = this._resumeToken;
      this._request('join', data, 'joined').then(
        (joined) => this._onJoined(joined),
        (err) => this.log('warn', 'join failed', err),
      );
    };
    ws.onmessage = (ev) => {
      if (ws !== this._ws) return;
      this._keepalive.heard();
      this._onMessage(ev.data);
    };
    ws.onclose = (ev) => {
      if (ws !== this._ws) return;
      this._onSocketClosed(ev.code, ev.reason);
    };
    ws.onerror = () => {
      // onclose follows with the details.
    };
  }

  _onSocketClosed(code, reason) {
    this._keepalive.stop();
    this._ws = null;
    this._requests.rejectAll(new CauError('disconnected', `connection closed (${code})`));
    if (this._leaving || this._closed) return;
    const fatal = {
      [CloseCode.UNAUTHORIZED]: 'Your link is invalid or expired.',
      [CloseCode.REPLACED]: 'You joined this meeting from another window or device.',
      [CloseCode.MEETING_ENDED]: 'The meeting has ended.',
      [CloseCode.ENDPOINT_IN_USE]: 'This room is connected from its own device.',
    }[code];
    if (fatal || !this.autoReconnect) {
      this._finish({
        code,
        reason,
        fatal: !!fatal && code !== CloseCode.MEETING_ENDED,
        message: fatal || `Disconnected (${code}${reason ? ': ' + reason : ''}).`,
      });
      return;
    }
    // Cut off for sending too much: something is wrong here, so wait longer (≥ 4 s).
    if (code === CloseCode.RATE_LIMITED) this._attempt = Math.max(this._attempt, 3);
    this._scheduleReconnect(`socket closed (${code}${reason ? ' ' + reason : ''})`, !!this._resumeToken);
  }

  _scheduleReconnect(why, keepMedia = false) {
    if (this._closed || this._leaving) return;
    this.log('warn', 'reconnecting:', why);
    if (!keepMedia) this._teardownMedia(); // with a resume token the media goes on meanwhile
    if (!keepMedia) this._resumeToken = ''; // nothing left to resume: join afresh
    this._closeSocket('reconnecting');
    this._keepalive.stop();
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this._attempt);
    const delay = Math.round(base / 2 + (Math.random() * base) / 2);
    this._attempt++;
    this._setState('reconnecting', { attempt: this._attempt, delay, reason: why });
    clearTimeout(this._retryTimer);
    this._retryTimer = setTimeout(() => this._connect(), delay);
  }

  /** Ends the session for good and tells listeners why. */
  _finish({ code, reason, fatal, message }) {
    if (this._closed) return;
    this._closed = true;
    clearTimeout(this._retryTimer);
    this._keepalive.stop();
    this._requests.rejectAll(new CauError('closed', message));
    this._closeSocket('bye');
    this._teardownMedia();
    this._setState('closed', { code, reason });
    if (this._firstJoin && this.self === null) {
      this._firstJoin.reject(new CauError(code === CloseCode.UNAUTHORIZED ? 'unauthorized' : 'closed', message));
    }
    this._emit('closed', { code, reason, fatal, message, serverError: this.lastServerError });
  }

  /** Closes the socket, if any, normally with reason; it is forgotten at once. */
  _closeSocket(reason) {
    const ws = this._ws;
    if (!ws) return;
    this._ws = null;
    try {
      ws.close(1000, reason);
    } catch {
      /* already closed */
    }
  }

  // ---- messages -----------------------------------------------------------------------

  _send(type, data, id) {
    const ws = this._ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify({ v: PROTOCOL_VERSION, type, id: id || undefined, data }));
    return true;
  }

  /** Sends a request and waits for its reply of kind expect (see PendingRequests). */
  _request(type, data, expect, opts) {
    return this._requests.request((t, d, id) => this._send(t, d, id), type, data, expect, opts);
  }

  _settle(id, type, data) {
    return this._requests.settle(id, type, data);
  }

  _onMessage(raw) {
    let msg;
    try {
      msg = JSON.parse(raw);
    } catch {
      this.log('warn', 'unreadable message', raw);
      return;
    }
    if (!msg || msg.v !== PROTOCOL_VERSION || typeof msg.type !== 'string') {
      this.log('warn', 'unexpected message', msg);
      return;
    }
    const data = msg.data || {};
    switch (msg.type) {
      case 'joined': // here, before the next message: the subscriber offer may follow at once
        if (this._resumeToken && !data.resumed) this._setupMedia();
        this._resumeToken = data.resume || '';
      // falls through
      case 'answer':
        this._settle(msg.id, msg.type, data);
        break;
      case 'offer':
        this._media.subscriberOffer(data.sdp);
        break;
      case 'candidate':
        this._media.remoteCandidate(data);
        break;
      case 'roster': // participants who entered or changed (latest state), and who left
        this._roster.apply(data, this.self?.id);
        break;
      case 'floor':
        // A reply to our floor_action carries our id; changes made by anyone come without.
        this._settle(msg.id, 'floor', data);
        this._applyFloor(data, false);
        break;
      case 'recording': // the meeting is (no longer) recorded: pages show an indicator
        this._emit('recording', data);
        break;
      case 'speaker': // who speaks, who is in the grid, what is pinned
        this._emit('speaker', { speaker: (this.speaker = data) });
        break;
      case 'slots': // which participant each of our slots carries now
        this._remote.slots.mapped(data.slots || []);
        break;
      case 'publish_layers': // dynacast: send only the camera layers someone needs
        this._pubs.applyLayers(data.sources || []);
        break;
      case 'reconnect':
        if (data.resume) this._resumeToken = data.resume;
        this._onMediaMoved(data.reason);
        break;
      case 'pong': // the keepalive only needs to hear something
        break;
      case 'error':
        this._onServerError(msg.id, data);
        break;
      default:
        this.log('debug', 'ignored message', msg.type);
    }
  }

  _onServerError(id, data) {
    const entry = this._settle(id, 'error', data);
    const request = entry?.type || '';
    // A refused floor action is the caller's to report; it says nothing about the session.
    if (request !== 'floor_action') this.lastServerError = { code: data.code, message: data.message };
    this.log('warn', 'server error', data.code, data.message);
    this._emit('servererror', { code: data.code, message: data.message, id, request });
    // An unauthorized join is followed by a 4001 close; the close handler ends the session.
  }

  /**
   * The server moved our media to another bridge (ours failed): the socket and our
   * participant id stay; both connections are replaced and everything is published again.
   * The new bridge sends a fresh subscriber offer.
   */
  _onMediaMoved(reason) {
    if (this.state !== 'joined') return;
    this.log('warn', 'media moved to another bridge:', reason || '(no reason)');
    this._setupMedia();
    this._emit('mediamoved', { reason: reason || '' });
    this._republish();
  }

  _onJoined(j) {
    const reconnected = this.self !== null;
    this._attempt = 0;
    this.meeting = j.meeting;
    this.self = j.self;
    const fresh = new Map((j.participants || []).map((p) => [p.id, p]));
    // A large meeting's list does not fit joined: the next `more` participants of roster
    // messages complete it, and only then do we know who left while we were away.
    this._roster.joined(fresh, j.more);
    this._setState('joined');
    // The floor in joined is authoritative, even if older than ours: an ad hoc meeting that
    // emptied while we were away starts a new floor.
    if (j.floor) this.floor = normalizeFloor(j.floor);
    this._emit('joined', {
      meeting: j.meeting, self: j.self, participants: [...fresh.values()], floor: this.floor, reconnected,
    });
    for (const p of fresh.values()) this._roster.upsert(p, this.self?.id);
    if (j.floor) this._applyFloor(j.floor, true);
    for (const source of this.muted) this._send('mute', { source, muted: true });
    if (this._view) this._send('view', { tiles: this._view });
    this._media.useICEServers(j.ice_servers); // the bridge's TURN servers, minted for this join
    this._republish();
    if (this._firstJoin) this._firstJoin.resolve(j);
  }

  // ---- floor -----------------------------------------------------------------------------

  /**
   * Installs a floor state: the newest by version wins, except the one in joined
   * (authoritative). A new "mute all" order mutes the microphone, except at the chair site
   * (the chair orders it to be heard). Emits floor.
   */
  _applyFloor(raw, fromJoin) {
    if (!raw || typeof raw !== 'object') return;
    const state = normalizeFloor(raw);
    const previous = fromJoin ? null : this.floor;
    if (!fromJoin && previous && !(state.version > previous.version)) return;
    this.floor = state;
    let muteAll = false;
    if (this._muteEpoch !== null && state.mute_epoch > this._muteEpoch && state.chair_site !== this.self?.site) {
      muteAll = true;
      if (this.obeyMuteAll && !this.muted.has(Source.MICROPHONE)) {
        this.setMuted(Source.MICROPHONE, true);
        this._emit('mutechange', { source: Source.MICROPHONE, muted: true, reason: 'mute_all' });
      }
    }
    if (this._muteEpoch === null || state.mute_epoch > this._muteEpoch || fromJoin) this._muteEpoch = state.mute_epoch;
    this._emit('floor', { floor: state, previous, muteAll, joined: !!fromJoin });
  }

  // ---- media ----------------------------------------------------------------------------

  /** Fresh peer connections (a join, or a move to another bridge). */
  _setupMedia() {
    this._teardownMedia();
    this._media.open();
  }

  _teardownMedia() {
    // Remote streams die with the subscriber connection: tell listeners first.
    this._remote.clear();
    this._pubs.detach();
    this._media.close();
  }

  _onRemoteTrack(e) {
    const stream = e.streams[0];
    if (!stream) {
      this.log('warn', 'remote track without a stream', e.track.id);
      return;
    }
    this._remote.arrived(stream, this.participants);
  }

  _onPublishError(err) {
    if (this._closed) return;
    this.log('error', 'publisher negotiation', err);
    this._emit('servererror', { code: err.code || 'negotiation', message: err.message });
    if (err.code !== ErrorCode.BAD_SDP) this._scheduleReconnect('publisher negotiation failed');
  }

  /** Brings the publisher connection in line with this.local (only once joined). */
  async _republish() {
    if (this.state !== 'joined') return; // _onJoined publishes
    await this._pubs.publish();
  }
}
