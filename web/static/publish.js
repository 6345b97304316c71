// publish.js — what this endpoint sends: its microphone, camera and screen publications,
// which of them the user muted, and bringing the publisher connection (media-link.js) in
// line with them. A muted track stays published and sends silence or black, so unmuting
// needs no renegotiation.

import { CauError, Source } from './protocol.js';

/** The local publications of one session. */
export class Publications {
  /**
   * @param {import('./media-link.js').MediaLink} media  the session's peer connections
   * @param {(level: string, ...args: any[]) => void} log
   * @param {EventTarget & {participants: Map<string, object>, state: string}} [session]  its
   *     participant events choose the camera's codec (followCodecs)
   */
  constructor(media, log, session) {
    this._media = media;
    this.log = log;
    /** source → {track, stream, transceiver}; transceiver null until attached */
    this.local = new Map();
    /** Sources the user muted (kept across reconnects). */
    this.muted = new Set();
    /** source → the RIDs the server last said someone needs (applyLayers) */
    this.activeLayers = new Map();
    const follow = () => {
      if (this.followCodecs(session.participants.values()) && session.state === 'joined') {
        this.publish().catch((err) => this.log('warn', 'publish in another codec', err));
      }
    };
    for (const type of ['participantjoined', 'participantupdated', 'participantleft']) {
      session?.addEventListener(type, follow);
    }
  }

  /** Sets the microphone and camera to the audio and video tracks of stream (or none). */
  setCamera(stream) {
    this._set(Source.MICROPHONE, stream?.getAudioTracks()[0] || null, stream);
    this._set(Source.CAMERA, stream?.getVideoTracks()[0] || null, stream);
    this.applyMute(Source.MICROPHONE);
    this.applyMute(Source.CAMERA);
  }

  /** Sets the screen capture to publish (its video track). */
  setScreen(stream) {
    const track = stream.getVideoTracks()[0];
    if (!track) throw new CauError('no_track', 'the capture has no video');
    if ('contentHint' in track) track.contentHint = 'detail';
    this._media.retire(this.local.get(Source.SCREEN));
    this.local.set(Source.SCREEN, { track, stream, transceiver: null });
  }

  /** Stops the screen publication and its capture; false when there was none. */
  clearScreen() {
    const pub = this.local.get(Source.SCREEN);
    if (!pub) return false;
    this.local.delete(Source.SCREEN);
    pub.stream?.getTracks().forEach((t) => t.stop());
    this._media.retire(pub);
    return true;
  }

  /** Records a source as muted or not and enables or disables its track. */
  setMuted(source, muted) {
    if (muted) this.muted.add(source);
    else this.muted.delete(source);
    this.applyMute(source);
  }

  /** Enables the source's track unless it is muted. */
  applyMute(source) {
    const pub = this.local.get(source);
    if (pub && pub.track) pub.track.enabled = !this.muted.has(source);
  }

  /**
   * Publishes the camera in H.264 while some participant decodes no VP8 (a room's
   * hardware codec, through the SIP gateway), so that it sees this endpoint too; in the
   * browser's own codec otherwise. Returns whether that changed (publish again).
   */
  followCodecs(participants) {
    const h264 = [...participants].some((p) => Array.isArray(p.video_codecs) && p.video_codecs.length > 0 &&
      !p.video_codecs.includes('VP8'));
    return this.preferVideoCodec(h264 ? 'video/H264' : null);
  }

  /**
   * Publishes the camera in mime's codec ('video/H264') rather than the browser's first
   * (null). A camera already published is retired and published again on a new
   * transceiver: the bridge takes a track's codec as fixed. Returns whether it changed.
   */
  preferVideoCodec(mime) {
    if (this._media.videoCodec === mime) return false;
    this._media.videoCodec = mime;
    const cam = this.local.get(Source.CAMERA);
    if (cam && cam.transceiver) {
      this._media.retire(cam);
      cam.transceiver = null;
    }
    return true;
  }

  /**
   * Sends only the simulcast layers someone needs (docs/protocol/publish_layers.md):
   * sources [{source, active: [rid…]}]. The other encodings are paused
   * (encodings[i].active = false); audio and a source without layers are never touched.
   * this.activeLayers keeps what was last applied (source → rids), for tests and pages.
   */
  async applyLayers(sources) {
    for (const { source, active } of sources) {
      const sender = this.local.get(source)?.transceiver?.sender;
      if (!sender || sender.track?.kind !== 'video' || !Array.isArray(active)) continue;
      const params = sender.getParameters();
      if (!params.encodings || !params.encodings.some((e) => e.rid)) continue;
      let changed = false;
      for (const e of params.encodings) {
        const on = !e.rid || active.includes(e.rid);
        if (e.active !== on) [e.active, changed] = [on, true];
      }
      this.activeLayers.set(source, active.slice());
      if (!changed) continue;
      try {
        await sender.setParameters(params);
        this.log('debug', 'publish layers', source, active.join(',') || '(none)');
      } catch (err) {
        this.log('warn', 'publish layers', source, err);
      }
    }
  }

  /** Forgets the transceivers (the publisher connection closed). */
  detach() {
    for (const pub of this.local.values()) pub.transceiver = null;
  }

  /** Attaches what has no transceiver yet and offers the publisher's current tracks. */
  async publish() {
    if (!this._media.publisher) return;
    this._media.attach(this.local);
    await this._media.negotiate(this.local);
  }

  _set(source, track, stream) {
    const cur = this.local.get(source);
    if (cur && cur.track === track) return;
    if (!track) {
      if (cur) {
        this._media.retire(cur);
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
}
