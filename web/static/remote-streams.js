// remote-streams.js — whose is each remote stream. The bridge sends a participant's media
// as MediaStreams whose ids the participant's announcement lists per source ({camera:
// "<id>.camera", …}); a stream may arrive before or after that announcement. This keeps
// the streams bound to (participant, source) and the ones still waiting for their owner,
// and reports each change as a 'media' event payload through emit. A session that receives
// in slots gets slot streams instead ("slot-v0", never a participant's): slot-streams.js.

import { SlotStreams, isSlotStream } from './slot-streams.js';

/** The remote streams of one session. */
export class RemoteStreams {
  /**
   * @param {(detail: {participant: string, source: string, stream: MediaStream|null}) => void} emit
   */
  constructor(emit) {
    this._emit = emit;
    this._bound = new Map(); // stream id → {stream, participant, source}
    this._orphans = new Map(); // stream id → stream, arrived before its participant
    this.slots = new SlotStreams(emit);
  }

  /** A stream arrived on the subscriber: bound now if participants names its owner. */
  arrived(stream, participants) {
    if (isSlotStream(stream.id)) return this.slots.arrived(stream);
    const owner = RemoteStreams.ownerOf(stream.id, participants);
    if (owner) this._bind(stream, owner.participant, owner.source);
    else this._orphans.set(stream.id, stream); // its participant event comes later
  }

  /** A participant was announced (or updated): binds its streams that were waiting. */
  announced(p) {
    for (const [source, streamId] of Object.entries(p.streams || {})) {
      const stream = this._orphans.get(streamId);
      if (stream) {
        this._orphans.delete(streamId);
        this._bind(stream, p.id, source);
      }
    }
  }

  /** A participant left: forgets its streams without events (the page drops its tiles). */
  left(p) {
    for (const [sid, r] of this._bound) {
      if (r.participant === p.id) this._bound.delete(sid);
    }
    for (const sid of Object.values(p.streams || {})) this._orphans.delete(sid);
  }

  /** The subscriber connection closed: every bound stream ends (with an event). */
  clear() {
    for (const r of this._bound.values()) {
      this._emit({ participant: r.participant, source: r.source, stream: null });
    }
    this._bound.clear();
    this._orphans.clear();
    this.slots.clear();
  }

  /** The participant and source whose bound stream carries track, or null. */
  ownerOfTrack(track) {
    for (const r of this._bound.values()) {
      if (r.stream.getTrackById(track.id)) return { participant: r.participant, source: r.source };
    }
    return null;
  }

  /** The participant (of the Map participants) and source a stream id belongs to, or null. */
  static ownerOf(streamId, participants) {
    for (const p of participants.values()) {
      for (const [source, sid] of Object.entries(p.streams || {})) {
        if (sid === streamId) return { participant: p.id, source };
      }
    }
    return null;
  }

  _bind(stream, participant, source) {
    const known = this._bound.get(stream.id);
    if (known && known.stream === stream) {
      this._emit({ participant, source, stream });
      return;
    }
    this._bound.set(stream.id, { stream, participant, source });
    stream.addEventListener('removetrack', () => {
      const r = this._bound.get(stream.id);
      if (!r || r.stream !== stream) return;
      if (stream.getTracks().length === 0) {
        this._bound.delete(stream.id);
        this._emit({ participant: r.participant, source: r.source, stream: null });
      } else {
        this._emit({ participant: r.participant, source: r.source, stream });
      }
    });
    this._emit({ participant, source, stream });
  }
}
