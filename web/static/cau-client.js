// cau-client.js — Cầu's signaling + WebRTC client as a reusable ES module.
//
// It speaks the protocol of docs/protocol (package protocol in Go) over the /ws WebSocket
// and keeps the two peer connections an endpoint has with its bridge:
//   - the publisher (endpoint → bridge): this client offers, the bridge answers;
//   - the subscriber (bridge → endpoint): the bridge offers, this client answers.
// The join page, the meeting-room kiosk page and the technicians' console share it.
//
// Usage:
//   const c = new CauClient({token, name});
//   c.setLocalMedia(stream);                  // microphone + camera, before or after join
//   c.addEventListener('media', (e) => ...);  // a participant's camera/screen stream
//   c.addEventListener('floor', (e) => ...);  // who may speak now (floor control)
//   await c.join();
//   await c.floorAction('request');           // raise the hand (training mode)
//   ...
//   c.leave();
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
//   media               {participant, source, stream}   stream null: the source stopped
//   mediamoved          {reason}   the server moved our media to another bridge (reconnect)
//   servererror         {code, message, id, request}   an error message from the server;
//                       request: the kind of the request it answered (e.g. 'floor_action'),
//                       whose promise is rejected with it too
//   closed              {code, reason, fatal, message, serverError}  the session ended for good

/** Protocol version spoken by this client. */
export const PROTOCOL_VERSION = 1;

/** Track sources. */
export const Source = Object.freeze({
  MICROPHONE: 'microphone',
  CAMERA: 'camera',
  SCREEN: 'screen',
});

/** Floor-control modes (see protocol/floor.go and docs/protocol/floor.md). */
export const FloorMode = Object.freeze({
  DISCUSSION: 'discussion', // every site may speak
  TRAINING: 'training', // sites request the floor, the chair grants it to one at a time
  DIRECTED: 'directed', // the chair grants microphone and/or camera to one or more sites
});

/** Floor actions: request, withdraw and yield are a site's; the others the chair's. */
export const FloorActions = Object.freeze({
  REQUEST: 'request',
  WITHDRAW: 'withdraw',
  YIELD: 'yield',
  GRANT: 'grant',
  DENY: 'deny',
  REVOKE: 'revoke',
  MUTE_ALL: 'mute_all',
  SET_MODE: 'set_mode',
  END: 'end',
});

/**
 * What the floor lets a site send now: {mic, camera} (the screen follows the camera).
 * Mirrors rooms.FloorState.Allowed on the server: nothing once the meeting ended;
 * everything for the chair site and, in discussion mode, for every site; otherwise what
 * the site's grant allows. A null floor (a server without floor control) allows everything.
 */
export function floorAllows(floor, site) {
  if (!floor) return { mic: true, camera: true };
  if (floor.ended) return { mic: false, camera: false };
  if ((site && site === floor.chair_site) || floor.mode === FloorMode.DISCUSSION) return { mic: true, camera: true };
  const g = floorGrant(floor, site);
  return g ? { mic: !!g.mic, camera: !!g.camera } : { mic: false, camera: false };
}

/** The grant the site holds ({site, mic, camera, since}), or null. */
export function floorGrant(floor, site) {
  return (site && floor?.speakers?.find((g) => g.site === site)) || null;
}

/** The site's place in the request queue (1 = next), or 0 when it has not asked. */
export function floorQueuePosition(floor, site) {
  const i = site && floor?.requests ? floor.requests.findIndex((r) => r.site === site) : -1;
  return i + 1;
}

/** A floor state with its optional lists filled in, frozen. */
function normalizeFloor(f) {
  return Object.freeze({
    mode: f.mode || FloorMode.DISCUSSION,
    chair_site: f.chair_site || '',
    speakers: Object.freeze((Array.isArray(f.speakers) ? f.speakers : []).map((g) => Object.freeze({ ...g }))),
    requests: Object.freeze((Array.isArray(f.requests) ? f.requests : []).map((r) => Object.freeze({ ...r }))),
    previous: f.previous || '',
    mute_epoch: Number(f.mute_epoch) || 0,
    ended: !!f.ended,
    version: Number(f.version) || 0,
  });
}

/** Close codes the server uses (see protocol.go). */
export const CloseCode = Object.freeze({
  UNAUTHORIZED: 4001,
  JOIN_TIMEOUT: 4002,
  RATE_LIMITED: 4003,
  REPLACED: 4004,
  MEETING_ENDED: 4005,
});

/** Error codes the server uses in error messages. */
export const ErrorCode = Object.freeze({
  BAD_MESSAGE: 'bad_message',
  UNKNOWN_KIND: 'unknown_kind',
  UNSUPPORTED_VERSION: 'unsupported_version',
  UNAUTHORIZED: 'unauthorized',
  FORBIDDEN: 'forbidden',
  NOT_JOINED: 'not_joined',
  BAD_SDP: 'bad_sdp',
  RATE_LIMITED: 'rate_limited',
  INTERNAL: 'internal',
});

const MAX_NAME_CHARS = 64;
const PING_EVERY_MS = 20000;
// A ping unanswered for this long (checked at the next ping) means the socket is dead.
const PONG_WAIT_MS = 15000;
const REQUEST_TIMEOUT_MS = 15000;
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 15000;

/** The /ws URL on the page's own host (ws: or wss: by the page's scheme). */
export function defaultSignalURL(loc = window.location) {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}/ws`;
}

/**
 * Decodes a JWT's payload for display only (no signature check: the server verifies).
 * Returns null when the token is not a readable JWT.
 */
export function decodeTokenClaims(token) {
  try {
    const part = String(token).split('.')[1];
    if (!part) return null;
    let b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    b64 += '='.repeat((4 - (b64.length % 4)) % 4);
    const bin = atob(b64);
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder('utf-8').decode(bytes));
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

/** Cuts a display name to the protocol's limit (64 characters, counted as code points). */
export function clampName(name) {
  return Array.from(String(name ?? '').trim()).slice(0, MAX_NAME_CHARS).join('');
}

/** Reads the msid track id of each m-section of an SDP, keyed by mid. */
export function msidTracksByMid(sdp) {
  const out = new Map();
  let mid = null;
  let track = null;
  const flush = () => {
    if (mid !== null && track) out.set(mid, track);
  };
  for (const line of String(sdp).split(/\r?\n/)) {
    if (line.startsWith('m=')) {
      flush();
      mid = null;
      track = null;
    } else if (line.startsWith('a=mid:')) {
      mid = line.slice(6).trim();
    } else if (line.startsWith('a=msid:')) {
      const parts = line.slice(7).trim().split(/\s+/);
      if (parts.length >= 2 && parts[1] !== '-') track = parts[1];
    }
  }
  flush();
  return out;
}

/** A server error reply, or a failure to get one. */
export class CauError extends Error {
  constructor(code, message) {
    super(message || code);
    this.name = 'CauError';
    this.code = code;
  }
}

/**
 * One endpoint's session with Cầu. It reconnects (a fresh join with the same token)
 * after an unexpected drop, with backoff, but not after leave(), a rejected token (4001),
 * a replacement by another session (4004) or the end of the meeting (4005).
 */
export class CauClient extends EventTarget {
  /**
   * @param {object} opts
   * @param {string} opts.token  the JWT from the join link
   * @param {string} [opts.name] display name; empty: the server uses the token's name
   * @param {string} [opts.url]  signaling URL; default /ws on this host
   * @param {RTCConfiguration} [opts.rtcConfig] extra peer-connection settings
   * @param {boolean} [opts.reconnect] reconnect after unexpected drops (default true)
   * @param {boolean} [opts.obeyMuteAll] mute the microphone when the chair orders "mute
   *   all" (default true; a page with no way to unmute may prefer to handle it itself)
   * @param {(level: string, ...args: any[]) => void} [opts.log]
   */
  constructor({ token, name = '', url, rtcConfig = {}, reconnect = true, obeyMuteAll = true, log } = {}) {
    super();
    if (!token) throw new CauError('no_token', 'no token');
    this.token = token;
    this.name = clampName(name);
    this.url = url || defaultSignalURL();
    this.rtcConfig = { bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require', ...rtcConfig };
    this.autoReconnect = reconnect;
    this.obeyMuteAll = obeyMuteAll;
    this.log = log || ((level, ...args) => (console[level] || console.log)('[cau]', ...args));

    this.state = 'idle';
    this.meeting = '';
    this.self = null;
    /** @type {Map<string, object>} participants other than self, by id */
    this.participants = new Map();
    /** Local publications: source → {track, stream, transceiver}. */
    this.local = new Map();
    /** Sources the user muted (kept across reconnects). */
    this.muted = new Set();
    /** The floor as the server last announced it (see floorAllows); null before joined. */
    this.floor = null;
    this._muteEpoch = null; // the last "mute all" order seen; null before the first join

    this._ws = null;
    this._seq = 0;
    this._pending = new Map(); // request id → {resolve, reject, timer, kind}
    this._pub = null;
    this._sub = null;
    this._pubQueue = []; // remote candidates waiting for the publisher's remote description
    this._subQueue = [];
    this._pubOutQueue = null; // local publisher candidates held until the first offer is out
    this._pubBusy = false;
    this._pubAgain = false;
    this._subChain = Promise.resolve();
    this._remote = new Map(); // stream id → {stream, participant, source}
    this._heard = new Set(); // participants announced on this socket (maybe before joined)
    this._orphans = new Map(); // stream id → stream, arrived before its participant
    this._leaving = false;
    this._closed = false;
    this._attempt = 0;
    this._retryTimer = 0;
    this._pingTimer = 0;
    this._lastHeard = 0;
    this._pingSentAt = 0;
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
    const mic = stream?.getAudioTracks()[0] || null;
    const cam = stream?.getVideoTracks()[0] || null;
    this._setLocal(Source.MICROPHONE, mic, stream);
    this._setLocal(Source.CAMERA, cam, stream);
    this._applyMute(Source.MICROPHONE);
    this._applyMute(Source.CAMERA);
    this._republish();
  }

  /** Publishes a screen (or window) capture as the "screen" source. */
  async startScreenShare(stream) {
    const track = stream.getVideoTracks()[0];
    if (!track) throw new CauError('no_track', 'the capture has no video');
    if ('contentHint' in track) track.contentHint = 'detail';
    this._retireTransceiver(this.local.get(Source.SCREEN));
    this.local.set(Source.SCREEN, { track, stream, transceiver: null });
    await this._republish();
  }

  /** Stops publishing the screen; the capture's tracks are stopped. */
  async stopScreenShare() {
    const pub = this.local.get(Source.SCREEN);
    if (!pub) return;
    this.local.delete(Source.SCREEN);
    pub.stream?.getTracks().forEach((t) => t.stop());
    this._retireTransceiver(pub);
    await this._republish();
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
    if (muted) this.muted.add(source);
    else this.muted.delete(source);
    this._applyMute(source);
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

  /**
   * The audio level of every remote participant whose audio arrives now: a Map from
   * participant id to the loudest of their audio tracks, 0..1 (linear, 1 = 0 dBov), as
   * the browser last measured it (RTP audio-level of the last packets, else the decoded
   * track's level from the statistics). Pages use it to find who is talking.
   */
  async audioLevels() {
    const out = new Map();
    const sub = this._sub;
    if (!sub) return out;
    const now = performance.timeOrigin + performance.now();
    for (const r of sub.getReceivers()) {
      const track = r.track;
      if (!track || track.kind !== 'audio' || track.readyState !== 'live') continue;
      const owner = this._ownerOfTrack(track);
      if (!owner) continue;
      let level = null;
      if (typeof r.getSynchronizationSources === 'function') {
        for (const s of r.getSynchronizationSources()) {
          if (typeof s.audioLevel !== 'number') continue;
          // A source not heard for a second has stopped (muted, or no longer forwarded).
          const fresh = !(s.timestamp > 0) || now - s.timestamp < 1000;
          level = Math.max(level ?? 0, fresh ? s.audioLevel : 0);
        }
      }
      if (level === null) {
        try {
          for (const st of (await r.getStats()).values()) {
            if (st.type === 'inbound-rtp' && typeof st.audioLevel === 'number') level = Math.max(level ?? 0, st.audioLevel);
          }
        } catch {
          /* the connection closed meanwhile */
        }
      }
      out.set(owner.participant, Math.max(out.get(owner.participant) || 0, level || 0));
    }
    return out;
  }

  /** Leaves the meeting for good: tells the server, closes the connections. */
  leave() {
    if (this._closed) return;
    this._leaving = true;
    if (this._ws && this._ws.readyState === WebSocket.OPEN) {
      this._send('leave');
    }
    this._finish({ code: 1000, reason: 'left', fatal: false, message: 'You left the meeting.' });
  }

  /**
   * A summary of the media statistics of both connections, for diagnostics:
   * {publisher: {state, outbound: [...]}, subscriber: {state, inbound: [...]}}.
   */
  async getStats() {
    const pick = (r, keys) => Object.fromEntries(keys.filter((k) => r[k] !== undefined).map((k) => [k, r[k]]));
    const summary = async (pc, type, keys) => {
      if (!pc) return null;
      const out = { state: pc.connectionState, [type === 'outbound-rtp' ? 'outbound' : 'inbound']: [] };
      const list = out.outbound || out.inbound;
      for (const r of (await pc.getStats()).values()) {
        if (r.type === type) list.push(pick(r, keys));
        if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') {
          out.rtt = r.currentRoundTripTime;
          out.availableOutgoingBitrate = r.availableOutgoingBitrate;
        }
      }
      return out;
    };
    const common = ['kind', 'ssrc', 'mid', 'packetsLost', 'nackCount', 'pliCount', 'firCount', 'frameWidth', 'frameHeight'];
    return {
      publisher: await summary(this._pub, 'outbound-rtp', [...common, 'packetsSent', 'bytesSent', 'framesEncoded',
        'keyFramesEncoded', 'framesPerSecond', 'qualityLimitationReason', 'targetBitrate', 'retransmittedPacketsSent']),
      subscriber: await summary(this._sub, 'inbound-rtp', [...common, 'trackIdentifier', 'packetsReceived', 'bytesReceived',
        'framesReceived', 'framesDecoded', 'keyFramesDecoded', 'framesDropped', 'freezeCount', 'totalFreezesDuration',
        'jitter']),
    };
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
      this._lastHeard = Date.now();
      this._heard = new Set();
      this._startPing();
      // The connections exist before the join is answered, so an offer or a candidate
      // that the server sends right behind "joined" is never dropped.
      this._setupMedia();
      const data = { token: this.token };
      if (this.name) data.name = this.name;
      this._request('join', data, 'joined').then(
        (joined) => this._onJoined(joined),
        (err) => this.log('warn', 'join failed', err),
      );
    };
    ws.onmessage = (ev) => {
      if (ws !== this._ws) return;
      this._lastHeard = Date.now();
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
    this._stopPing();
    this._ws = null;
    this._rejectPending(new CauError('disconnected', `connection closed (${code})`));
    if (this._leaving || this._closed) return;
    const fatal = {
      [CloseCode.UNAUTHORIZED]: 'Your link is invalid or expired.',
      [CloseCode.REPLACED]: 'You joined this meeting from another window or device.',
      [CloseCode.MEETING_ENDED]: 'The meeting has ended.',
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
    this._scheduleReconnect(`socket closed (${code}${reason ? ' ' + reason : ''})`);
  }

  _scheduleReconnect(why) {
    if (this._closed || this._leaving) return;
    this.log('warn', 'reconnecting:', why);
    this._teardownMedia();
    if (this._ws) {
      const ws = this._ws;
      this._ws = null;
      try {
        ws.close(1000, 'reconnecting');
      } catch {
        /* already closed */
      }
    }
    this._stopPing();
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
    this._stopPing();
    this._rejectPending(new CauError('closed', message));
    if (this._ws) {
      const ws = this._ws;
      this._ws = null;
      try {
        ws.close(1000, 'bye');
      } catch {
        /* already closed */
      }
    }
    this._teardownMedia();
    this._setState('closed', { code, reason });
    if (this._firstJoin && this.self === null) {
      this._firstJoin.reject(new CauError(code === CloseCode.UNAUTHORIZED ? 'unauthorized' : 'closed', message));
    }
    this._emit('closed', { code, reason, fatal, message, serverError: this.lastServerError });
  }

  _startPing() {
    this._stopPing();
    this._pingSentAt = 0;
    // The server answers every ping. A ping sent on the last tick and nothing heard since
    // means the socket is dead (this holds even when a hidden tab's timers are throttled).
    this._pingTimer = setInterval(() => {
      const now = Date.now();
      if (this._pingSentAt && this._lastHeard < this._pingSentAt && now - this._pingSentAt > PONG_WAIT_MS) {
        this._scheduleReconnect('no answer from the server');
        return;
      }
      if (this._send('ping')) this._pingSentAt = now;
    }, PING_EVERY_MS);
  }

  _stopPing() {
    clearInterval(this._pingTimer);
    this._pingTimer = 0;
  }

  // ---- messages -----------------------------------------------------------------------

  _send(type, data, id) {
    const ws = this._ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    const msg = { v: PROTOCOL_VERSION, type };
    if (id) msg.id = id;
    if (data !== undefined) msg.data = data;
    ws.send(JSON.stringify(msg));
    return true;
  }

  /**
   * Sends a request with an id and waits for the reply of kind `expect` (or an error).
   * opts.strictId: only a reply carrying the id answers it (the kind is also broadcast).
   */
  _request(type, data, expect, { strictId = false } = {}) {
    const id = `${type}-${++this._seq}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new CauError('timeout', `no ${expect} for ${type}`));
      }, REQUEST_TIMEOUT_MS);
      this._pending.set(id, { resolve, reject, timer, expect, type, strictId });
      if (!this._send(type, data, id)) {
        clearTimeout(timer);
        this._pending.delete(id);
        reject(new CauError('disconnected', 'not connected'));
      }
    });
  }

  /** Answers the pending request a reply belongs to; returns its entry, or null. */
  _settle(id, type, data) {
    let entry = id ? this._pending.get(id) : undefined;
    if (entry && type !== 'error' && entry.expect !== type) entry = undefined;
    if (!entry && type !== 'error') {
      // A reply without its id: give it to the oldest request waiting for this kind.
      for (const [pid, e] of this._pending) {
        if (e.expect === type && !e.strictId) {
          id = pid;
          entry = e;
          break;
        }
      }
    }
    if (!entry) return null;
    this._pending.delete(id);
    clearTimeout(entry.timer);
    if (type === 'error') entry.reject(new CauError(data?.code || 'error', data?.message || ''));
    else entry.resolve(data);
    return entry;
  }

  _rejectPending(err) {
    for (const e of this._pending.values()) {
      clearTimeout(e.timer);
      e.reject(err);
    }
    this._pending.clear();
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
      case 'joined':
      case 'answer':
        this._settle(msg.id, msg.type, data);
        break;
      case 'offer':
        this._onSubscriberOffer(data.sdp);
        break;
      case 'candidate':
        this._onRemoteCandidate(data);
        break;
      case 'participant_joined':
        this._upsertParticipant(data);
        break;
      case 'participant_updated':
        this._upsertParticipant(data);
        break;
      case 'participant_left':
        this._removeParticipant(data.id);
        break;
      case 'floor':
        // A reply to our floor_action carries our id; changes made by anyone come without.
        this._settle(msg.id, 'floor', data);
        this._applyFloor(data, false);
        break;
      case 'reconnect':
        this._onMediaMoved(data.reason);
        break;
      case 'pong':
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
    // Participants who left while we were away. One who joined at the same moment as us
    // may be announced on this socket before our joined arrives, and is not in its list.
    for (const id of [...this.participants.keys()]) {
      if (!fresh.has(id) && !this._heard.has(id)) this._removeParticipant(id);
    }
    this._setState('joined');
    // The floor in joined is authoritative, even if older than ours: an ad hoc meeting that
    // emptied while we were away starts a new floor.
    if (j.floor) this.floor = normalizeFloor(j.floor);
    this._emit('joined', {
      meeting: j.meeting, self: j.self, participants: [...fresh.values()], floor: this.floor, reconnected,
    });
    for (const p of fresh.values()) this._upsertParticipant(p);
    if (j.floor) this._applyFloor(j.floor, true);
    for (const source of this.muted) this._send('mute', { source, muted: true });
    this._useICEServers(j.ice_servers);
    this._republish();
    if (this._firstJoin) this._firstJoin.resolve(j);
  }

  /**
   * Gives both connections the bridge's TURN servers from joined (credentials minted for
   * this join). Nothing else is needed for the fallback: ICE gathers relayed candidates
   * next to the direct ones and uses them only when no direct path works (a firewall
   * that lets only TCP/TLS 443 through).
   */
  _useICEServers(servers) {
    if (!Array.isArray(servers) || servers.length === 0) return;
    this.rtcConfig = { ...this.rtcConfig, iceServers: servers };
    for (const pc of [this._pub, this._sub]) {
      try {
        pc?.setConfiguration(this.rtcConfig);
      } catch (err) {
        this.log('warn', 'TURN servers not applied', err);
      }
    }
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

  // ---- participants ---------------------------------------------------------------------

  _upsertParticipant(p) {
    if (!p || !p.id || (this.self && p.id === this.self.id)) return;
    const previous = this.participants.get(p.id) || null;
    this.participants.set(p.id, p);
    this._heard.add(p.id);
    if (!previous) this._emit('participantjoined', { participant: p });
    else this._emit('participantupdated', { participant: p, previous });
    // Streams that arrived before we knew whose they are.
    for (const [source, streamId] of Object.entries(p.streams || {})) {
      const stream = this._orphans.get(streamId);
      if (stream) {
        this._orphans.delete(streamId);
        this._bindStream(stream, p.id, source);
      }
    }
  }

  _removeParticipant(id) {
    const p = this.participants.get(id);
    if (!p) return;
    this.participants.delete(id);
    for (const [sid, r] of this._remote) {
      if (r.participant === id) this._remote.delete(sid);
    }
    for (const sid of Object.values(p.streams || {})) this._orphans.delete(sid);
    this._emit('participantleft', { id, participant: p });
  }

  _ownerOf(streamId) {
    for (const p of this.participants.values()) {
      for (const [source, sid] of Object.entries(p.streams || {})) {
        if (sid === streamId) return { participant: p.id, source };
      }
    }
    return null;
  }

  /** The participant and source whose remote stream carries track, or null. */
  _ownerOfTrack(track) {
    for (const r of this._remote.values()) {
      if (r.stream.getTrackById(track.id)) return { participant: r.participant, source: r.source };
    }
    return null;
  }

  _bindStream(stream, participant, source) {
    const known = this._remote.get(stream.id);
    if (known && known.stream === stream) {
      this._emit('media', { participant, source, stream });
      return;
    }
    this._remote.set(stream.id, { stream, participant, source });
    stream.addEventListener('removetrack', () => {
      const r = this._remote.get(stream.id);
      if (!r || r.stream !== stream) return;
      if (stream.getTracks().length === 0) {
        this._remote.delete(stream.id);
        this._emit('media', { participant: r.participant, source: r.source, stream: null });
      } else {
        this._emit('media', { participant: r.participant, source: r.source, stream });
      }
    });
    this._emit('media', { participant, source, stream });
  }

  // ---- WebRTC -------------------------------------------------------------------------

  _setupMedia() {
    this._teardownMedia();
    const pub = new RTCPeerConnection(this.rtcConfig);
    const sub = new RTCPeerConnection(this.rtcConfig);
    this._pub = pub;
    this._sub = sub;
    this._pubQueue = [];
    this._subQueue = [];
    this._pubOutQueue = [];
    this._subChain = Promise.resolve();
    pub.onicecandidate = (e) => this._onLocalCandidate('publisher', pub, e.candidate);
    sub.onicecandidate = (e) => this._onLocalCandidate('subscriber', sub, e.candidate);
    const watch = (pc, target) => {
      pc.onconnectionstatechange = () => {
        if (pc !== this._pub && pc !== this._sub) return;
        this.log('debug', target, 'connection', pc.connectionState);
        if (pc.connectionState === 'failed') this._scheduleReconnect(`${target} connection failed`);
      };
    };
    watch(pub, 'publisher');
    watch(sub, 'subscriber');
    sub.ontrack = (e) => this._onRemoteTrack(e);
  }

  _teardownMedia() {
    // Remote streams die with the subscriber connection: tell listeners first.
    for (const r of this._remote.values()) {
      this._emit('media', { participant: r.participant, source: r.source, stream: null });
    }
    this._remote.clear();
    this._orphans.clear();
    for (const pub of this.local.values()) pub.transceiver = null;
    for (const pc of [this._pub, this._sub]) {
      if (pc) {
        pc.onicecandidate = null;
        pc.ontrack = null;
        pc.onconnectionstatechange = null;
        pc.close();
      }
    }
    this._pub = null;
    this._sub = null;
    this._pubBusy = false;
    this._pubAgain = false;
  }

  _onLocalCandidate(target, pc, cand) {
    if (!cand || !cand.candidate) return; // end of gathering: nothing to send
    const init = { candidate: cand.candidate };
    if (cand.sdpMid != null) init.sdpMid = cand.sdpMid;
    if (cand.sdpMLineIndex != null) init.sdpMLineIndex = cand.sdpMLineIndex;
    if (cand.usernameFragment != null) init.usernameFragment = cand.usernameFragment;
    const msg = { target, candidate: init };
    if (target === 'publisher' && this._pubOutQueue) {
      this._pubOutQueue.push(msg); // the offer has not gone out yet
      return;
    }
    this._send('candidate', msg);
  }

  _onRemoteCandidate({ target, candidate }) {
    const pc = target === 'publisher' ? this._pub : target === 'subscriber' ? this._sub : null;
    if (!pc || !candidate) return;
    if (!pc.remoteDescription) {
      (target === 'publisher' ? this._pubQueue : this._subQueue).push(candidate);
      return;
    }
    pc.addIceCandidate(candidate).catch((err) => this.log('warn', 'add candidate', target, err));
  }

  async _flushRemoteCandidates(pc, queue) {
    const list = queue.splice(0);
    for (const c of list) {
      try {
        await pc.addIceCandidate(c);
      } catch (err) {
        this.log('warn', 'add held candidate', err);
      }
    }
  }

  _onSubscriberOffer(sdp) {
    const sub = this._sub;
    if (!sub || !sdp) return;
    this._subChain = this._subChain.then(async () => {
      if (sub !== this._sub) return;
      try {
        await sub.setRemoteDescription({ type: 'offer', sdp });
        await this._flushRemoteCandidates(sub, this._subQueue);
        const answer = await sub.createAnswer();
        await sub.setLocalDescription(answer);
        if (sub === this._sub) this._send('answer', { sdp: sub.localDescription.sdp });
      } catch (err) {
        this.log('error', 'subscriber negotiation', err);
        if (sub === this._sub) this._scheduleReconnect('subscriber negotiation failed');
      }
    });
  }

  _onRemoteTrack(e) {
    const stream = e.streams[0];
    if (!stream) {
      this.log('warn', 'remote track without a stream', e.track.id);
      return;
    }
    const owner = this._ownerOf(stream.id);
    if (owner) this._bindStream(stream, owner.participant, owner.source);
    else this._orphans.set(stream.id, stream); // its participant event comes later
  }

  _setLocal(source, track, stream) {
    const cur = this.local.get(source);
    if (cur && cur.track === track) return;
    if (!track) {
      if (cur) {
        this._retireTransceiver(cur);
        this.local.delete(source);
      }
      return;
    }
    if (cur && cur.transceiver) {
      cur.transceiver.sender.replaceTrack(track).catch((err) => this.log('warn', 'replace track', err));
      this.local.set(source, { track, stream, transceiver: cur.transceiver });
      return;
    }
    this.local.set(source, { track, stream, transceiver: null });
  }

  _applyMute(source) {
    const pub = this.local.get(source);
    if (pub && pub.track) pub.track.enabled = !this.muted.has(source);
  }

  _retireTransceiver(pub) {
    const t = pub?.transceiver;
    if (!t || !this._pub) return;
    try {
      t.sender.replaceTrack(null);
      t.direction = 'inactive';
    } catch (err) {
      this.log('warn', 'retire transceiver', err);
    }
  }

  /** Brings the publisher connection in line with this.local (only once joined). */
  async _republish() {
    if (!this._pub || this.state !== 'joined') return; // _onJoined publishes
    this._attachLocal();
    await this._negotiatePublisher();
  }

  /** Adds a transceiver for every local track that has none on this publisher. */
  _attachLocal() {
    const pc = this._pub;
    if (!pc) return;
    for (const pub of this.local.values()) {
      if (pub.transceiver || !pub.track) continue;
      pub.transceiver = pc.addTransceiver(pub.track, {
        direction: 'sendonly',
        streams: pub.stream ? [pub.stream] : [],
      });
    }
  }

  /** The offer's track list: each active local transceiver's msid track id and source. */
  _trackList(sdp) {
    const byMid = msidTracksByMid(sdp);
    const tracks = [];
    for (const [source, pub] of this.local) {
      const t = pub.transceiver;
      if (!t || !pub.track) continue;
      const id = (t.mid && byMid.get(t.mid)) || pub.track.id;
      tracks.push({ id, source });
    }
    return tracks;
  }

  /** Offers the publisher connection's current tracks; one negotiation at a time. */
  async _negotiatePublisher() {
    if (this._pubBusy) {
      this._pubAgain = true;
      return;
    }
    const pc = this._pub;
    if (!pc) return;
    if (pc.getTransceivers().length === 0) return; // nothing to publish (yet)
    this._pubBusy = true;
    try {
      do {
        this._pubAgain = false;
        const offer = await pc.createOffer();
        await pc.setLocalDescription(offer);
        const sdp = pc.localDescription.sdp;
        const reply = this._request('offer', { sdp, tracks: this._trackList(sdp) }, 'answer');
        const held = this._pubOutQueue;
        this._pubOutQueue = null;
        for (const m of held || []) this._send('candidate', m);
        const answer = await reply;
        if (pc !== this._pub) return;
        await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
        await this._flushRemoteCandidates(pc, this._pubQueue);
      } while (this._pubAgain && pc === this._pub);
    } catch (err) {
      if (pc !== this._pub || this._closed) return;
      this.log('error', 'publisher negotiation', err);
      this._emit('servererror', { code: err.code || 'negotiation', message: err.message });
      if (err.code !== ErrorCode.BAD_SDP) this._scheduleReconnect('publisher negotiation failed');
    } finally {
      if (pc === this._pub) this._pubBusy = false;
    }
  }
}
