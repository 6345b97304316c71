// slot-streams.js — the remote media of a session that receives in slots (join with
// slots: true; docs/protocol: "slots"). The bridge sends a fixed set of tracks, each its
// own stream ("slot-a0".. audio, "slot-v0".. video), and says in a "slots" message which
// participant each carries now; a slot changes participant without renegotiation. This
// gathers, per participant, the slot tracks that carry it into one MediaStream and reports
// it as a 'media' payload (source camera, as a participant's camera stream would be), so
// a page shows the right name on a tile whichever slot the picture came in.

/** Whether a remote stream id is a slot's. */
export function isSlotStream(id) {
  return /^slot-[av]\d+$/.test(id);
}

/** The slot tracks and slot map of one session. */
export class SlotStreams {
  /**
   * @param {(detail: {participant: string, source: string, stream: MediaStream|null}) => void} emit
   */
  constructor(emit) {
    this._emit = emit;
    this._tracks = new Map(); // slot stream id → MediaStreamTrack
    this._map = new Map(); // slot stream id → participant id ('' for none)
    this._shown = new Map(); // participant id → {stream, key}: what was last reported
  }

  /** A slot's track arrived on the subscriber connection. */
  arrived(stream) {
    for (const track of stream.getTracks()) this._tracks.set(stream.id, track);
    this._update();
  }

  /** The server's slot map: [{stream, kind, participant}]. */
  mapped(slots) {
    this._map = new Map(slots.map((s) => [s.stream, s.participant || '']));
    this._update();
  }

  /** The slot streams that carry a participant now (test hook and debugging). */
  slotsOf(participant) {
    return [...this._map].filter(([sid, p]) => p === participant && this._tracks.has(sid)).map(([sid]) => sid).sort();
  }

  /** The subscriber connection closed: every participant's slot media ends. */
  clear() {
    for (const participant of this._shown.keys()) this._emit({ participant, source: 'camera', stream: null });
    this._shown.clear();
    this._tracks.clear();
    this._map.clear();
  }

  _update() {
    const want = new Map(); // participant → [{sid, track}]
    for (const [sid, participant] of this._map) {
      const track = this._tracks.get(sid);
      if (!participant || !track) continue;
      if (!want.has(participant)) want.set(participant, []);
      want.get(participant).push({ sid, track });
    }
    for (const participant of [...this._shown.keys()]) {
      if (want.has(participant)) continue;
      this._shown.delete(participant);
      this._emit({ participant, source: 'camera', stream: null });
    }
    for (const [participant, slots] of want) {
      const key = slots.map((s) => s.sid).sort().join(',');
      if (this._shown.get(participant)?.key === key) continue;
      const stream = new MediaStream(slots.map((s) => s.track));
      this._shown.set(participant, { stream, key });
      this._emit({ participant, source: 'camera', stream });
    }
  }
}
