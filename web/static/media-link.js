// media-link.js — the two WebRTC peer connections an endpoint keeps with its bridge:
//   - the publisher (endpoint → bridge): this side offers, the bridge answers;
//   - the subscriber (bridge → endpoint): the bridge offers, this side answers.
// It exchanges offers, answers and ICE candidates through the functions CauClient gives
// it (the WebSocket is the client's), holds candidates that arrive before their
// description, runs one publisher negotiation at a time, and reports remote tracks and
// failures back through callbacks. It knows nothing of participants or the floor.

import { msidTracksByMid } from './protocol.js';

/**
 * The camera's simulcast layers, low to high (RIDs q/h/f, as the bridge names them): a
 * quarter, a half and the full resolution (180p/360p/720p from a 720p camera), each with
 * a ceiling so the three together stay near what one full layer alone would take.
 */
export const CAMERA_LAYERS = Object.freeze([
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'f', maxBitrate: 1_200_000 },
]);

/**
 * The peer connections of one session. open() replaces both connections (a join, a
 * rejoin, a move to another bridge); everything that finishes late checks that its
 * connection is still the current one.
 */
export class MediaLink {
  /**
   * @param {object} opts
   * @param {RTCConfiguration} opts.rtcConfig
   * @param {(level: string, ...args: any[]) => void} opts.log
   * @param {(type: string, data: object) => boolean} opts.send  sends a message; false when not connected
   * @param {(type: string, data: object, expect: string) => Promise<object>} opts.request  a request and its reply
   * @param {(e: RTCTrackEvent) => void} opts.onTrack  a remote track arrived on the subscriber
   * @param {(why: string) => void} opts.onFailed  a connection failed: the session must reconnect
   * @param {(err: Error) => void} opts.onPublishError  a publisher negotiation failed
   */
  constructor({ rtcConfig, log, send, request, onTrack, onFailed, onPublishError }) {
    this.rtcConfig = rtcConfig;
    this.log = log;
    this._send = send;
    this._request = request;
    this._onTrack = onTrack;
    this._onFailed = onFailed;
    this._onPublishError = onPublishError;
    this._pub = null;
    this._sub = null;
    this._pubQueue = []; // remote candidates waiting for the publisher's remote description
    this._subQueue = [];
    this._pubOutQueue = null; // local publisher candidates held until the first offer is out
    this._pubBusy = false;
    this._pubAgain = false;
    this._subChain = Promise.resolve();
    /** The codec the camera is published in first ('video/H264'), or null: the browser's. */
    this.videoCodec = null;
  }

  /** The publisher connection, or null when closed. */
  get publisher() {
    return this._pub;
  }

  /** The subscriber connection, or null when closed. */
  get subscriber() {
    return this._sub;
  }

  /** Closes any connections and opens two fresh ones. */
  open() {
    this.close();
    const pub = new RTCPeerConnection(this.rtcConfig);
    const sub = new RTCPeerConnection(this.rtcConfig);
    this._pub = pub;
    this._sub = sub;
    this._pubQueue = [];
    this._subQueue = [];
    this._pubOutQueue = [];
    this._subChain = Promise.resolve();
    pub.onicecandidate = (e) => this._onLocalCandidate('publisher', e.candidate);
    sub.onicecandidate = (e) => this._onLocalCandidate('subscriber', e.candidate);
    const watch = (pc, target) => {
      pc.onconnectionstatechange = () => {
        if (pc !== this._pub && pc !== this._sub) return;
        this.log('debug', target, 'connection', pc.connectionState);
        if (pc.connectionState === 'failed') this._onFailed(`${target} connection failed`);
      };
    };
    watch(pub, 'publisher');
    watch(sub, 'subscriber');
    sub.ontrack = (e) => this._onTrack(e);
  }

  /**
   * Gives both connections, and those opened later, these ICE servers: the bridge's TURN
   * servers from joined (credentials minted for this join). Nothing else is needed for the
   * fallback: ICE gathers relayed candidates next to the direct ones and uses them only
   * when no direct path works (a firewall that lets only TCP/TLS 443 through).
   */
  useICEServers(servers) {
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

  /** Closes both connections (their remote streams end with them). */
  close() {
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

  _onLocalCandidate(target, cand) {
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

  /** A candidate message from the server: {target, candidate}. */
  remoteCandidate({ target, candidate }) {
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

  /** The bridge's offer for the subscriber connection: answered in order of arrival. */
  subscriberOffer(sdp) {
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
        if (sub === this._sub) this._onFailed('subscriber negotiation failed');
      }
    });
  }

  /**
   * Adds a sending transceiver for every publication of local (source → {track, stream,
   * transceiver}) that has none on this publisher, and records it there.
   */
  attach(local) {
    const pc = this._pub;
    if (!pc) return;
    for (const [source, pub] of local) {
      if (pub.transceiver || !pub.track) continue;
      const init = {
        direction: 'sendonly',
        streams: pub.stream ? [pub.stream] : [],
      };
      // The camera goes as three layers: the bridge forwards each site the one its link
      // carries (a commune on a thin link keeps a smooth small picture). Screen share
      // stays one high layer.
      if (source === 'camera' && pub.track.kind === 'video') init.sendEncodings = CAMERA_LAYERS;
      pub.transceiver = pc.addTransceiver(pub.track, init);
      if (source === 'camera' && pub.track.kind === 'video' && this.videoCodec) this._prefer(pub.transceiver, this.videoCodec);
    }
  }

  /**
   * Puts mime's codecs first in what the transceiver offers (packetization mode 1 and
   * constrained baseline first for H.264: what room codecs decode); the bridge answers
   * with the first it knows, so that is what the browser sends. A browser that cannot
   * encode mime keeps its own order.
   */
  _prefer(transceiver, mime) {
    const caps = RTCRtpSender.getCapabilities?.('video')?.codecs || [];
    const rank = (c) => {
      if (c.mimeType.toLowerCase() !== mime.toLowerCase()) return 9;
      const f = c.sdpFmtpLine || '';
      return (f.includes('packetization-mode=1') ? 0 : 2) + (f.includes('profile-level-id=42e0') ? 0 : 1);
    };
    if (!caps.some((c) => rank(c) < 9) || !transceiver.setCodecPreferences) return;
    try {
      transceiver.setCodecPreferences([...caps].sort((a, b) => rank(a) - rank(b)));
    } catch (err) {
      this.log('warn', 'codec preferences', err);
    }
  }

  /** Stops sending a publication's track: its transceiver goes inactive until renegotiated. */
  retire(pub) {
    const t = pub?.transceiver;
    if (!t || !this._pub) return;
    try {
      t.sender.replaceTrack(null);
      t.direction = 'inactive';
    } catch (err) {
      this.log('warn', 'retire transceiver', err);
    }
  }

  /** The offer's track list: each active local transceiver's msid track id and source. */
  static trackList(local, sdp) {
    const byMid = msidTracksByMid(sdp);
    const tracks = [];
    for (const [source, pub] of local) {
      const t = pub.transceiver;
      if (!t || !pub.track) continue;
      const id = (t.mid && byMid.get(t.mid)) || pub.track.id;
      tracks.push({ id, source });
    }
    return tracks;
  }

  /** Offers the publisher connection's current tracks; one negotiation at a time. */
  async negotiate(local) {
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
        const reply = this._request('offer', { sdp, tracks: MediaLink.trackList(local, sdp) }, 'answer');
        const held = this._pubOutQueue;
        this._pubOutQueue = null;
        for (const m of held || []) this._send('candidate', m);
        const answer = await reply;
        if (pc !== this._pub) return;
        await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
        await this._flushRemoteCandidates(pc, this._pubQueue);
      } while (this._pubAgain && pc === this._pub);
    } catch (err) {
      if (pc !== this._pub) return;
      this._onPublishError(err);
    } finally {
      if (pc === this._pub) this._pubBusy = false;
    }
  }

  /**
   * The audio level of every live remote audio track: a Map from track to 0..1 (linear,
   * 1 = 0 dBov), as the browser last measured it (RTP audio-level of the last packets,
   * else the decoded track's level from the statistics).
   */
  async audioLevels() {
    const out = new Map();
    const sub = this._sub;
    if (!sub) return out;
    const now = performance.timeOrigin + performance.now();
    for (const r of sub.getReceivers()) {
      const track = r.track;
      if (!track || track.kind !== 'audio' || track.readyState !== 'live') continue;
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
      out.set(track, level || 0);
    }
    return out;
  }

  /**
   * A summary of the media statistics of both connections, for diagnostics:
   * {publisher: {state, outbound: [...]}, subscriber: {state, inbound: [...]}}.
   */
  async stats() {
    const pick = (r, keys) => Object.fromEntries(keys.filter((k) => r[k] !== undefined).map((k) => [k, r[k]]));
    const summary = async (pc, type, keys) => {
      if (!pc) return null;
      const out = { state: pc.connectionState, [type === 'outbound-rtp' ? 'outbound' : 'inbound']: [] };
      const list = out.outbound || out.inbound;
      const all = await pc.getStats();
      for (const r of all.values()) {
        if (r.type === type) list.push({ ...pick(r, keys), codec: all.get(r.codecId)?.mimeType });
        if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') {
          out.rtt = r.currentRoundTripTime;
          out.availableOutgoingBitrate = r.availableOutgoingBitrate;
        }
      }
      return out;
    };
    const common = ['kind', 'ssrc', 'mid', 'packetsLost', 'nackCount', 'pliCount', 'firCount', 'frameWidth', 'frameHeight'];
    return {
      publisher: await summary(this._pub, 'outbound-rtp', [...common, 'rid', 'packetsSent', 'bytesSent', 'framesEncoded',
        'keyFramesEncoded', 'framesPerSecond', 'qualityLimitationReason', 'targetBitrate', 'retransmittedPacketsSent']),
      subscriber: await summary(this._sub, 'inbound-rtp', [...common, 'trackIdentifier', 'packetsReceived', 'bytesReceived',
        'framesReceived', 'framesDecoded', 'keyFramesDecoded', 'framesDropped', 'freezeCount', 'totalFreezesDuration',
        'jitter']),
    };
  }
}
