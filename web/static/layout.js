// layout.js — which participants the meeting view shows large, the way hardware MCUs do it.
//
// Officials know the MCU layouts: the chair site and the current speaker in two large
// windows (the previous speaker takes the second window when there is no chair window to
// show), everyone else small in a strip, and the content channel (a shared screen) in the
// main area with chair and speaker beside it. A "talk hold time" keeps the speaker window
// from flapping: a new speaker replaces the shown one only after holding that place for the
// hold time (default 3 s; MCUs offer 1–60 s), and a speaker who lost the floor stays as
// long. An empty speaker window is filled at once, and a change of floor mode (the chair's
// deliberate act, which ends every grant) applies at once.
//
// Who the current speaker is depends on the floor mode: in discussion mode the dominant
// speaker the bridges chose (the `speaker` message), else the loudest remote site (audio
// levels from CauClient.audioLevels()); in training and directed modes
// the site the chair gave the floor (several in directed mode: the loudest of them, else
// the one shown, else the latest grant).
//
// Pure logic, no DOM: the join page (and the kiosk page) feed it and place the tiles.

import { FloorMode, floorAllows } from './cau-client.js';

/** Default talk hold time. */
export const DEFAULT_HOLD_MS = 3000;
/** Hold times MCUs offer (Polycom RMX: 1–60 s). */
export const MIN_HOLD_MS = 0;
export const MAX_HOLD_MS = 60000;
/** Smoothed audio level (linear, 0..1) from which a site counts as talking (about −30 dBov). */
export const TALK_LEVEL = 0.03;

const NONE = Symbol('none');

/**
 * A talk hold: show() returns what the window shows. A new candidate replaces the shown
 * value only after it stayed the candidate for holdMs; an empty window takes a candidate at
 * once.
 */
export class SpeakerHold {
  constructor(holdMs = DEFAULT_HOLD_MS) {
    this.holdMs = holdMs;
    /** @type {string|null} */
    this.shown = null;
    this._pending = NONE;
    this._since = 0;
  }

  /** Offers a candidate (null: nobody) at time now (ms); returns the value shown. */
  update(candidate, now) {
    if (candidate === this.shown) {
      this._pending = NONE;
    } else if (this.shown === null) {
      this.shown = candidate;
      this._pending = NONE;
    } else {
      if (this._pending !== candidate) {
        this._pending = candidate;
        this._since = now;
      }
      if (now - this._since >= this.holdMs) {
        this.shown = candidate;
        this._pending = NONE;
      }
    }
    return this.shown;
  }

  /** The value the window is heading for: the pending candidate, else the shown one. */
  wanted() {
    return this._pending === NONE ? this.shown : this._pending;
  }

  /** Milliseconds until a pending change applies (Infinity when none is pending). */
  pendingIn(now) {
    return this._pending === NONE ? Infinity : Math.max(0, this._since + this.holdMs - now);
  }

  /** Shows value at once (e.g. the shown participant left). */
  reset(value = null) {
    this.shown = value;
    this._pending = NONE;
  }
}

const ROLE_ORDER = ['room', 'chair', 'participant', 'admin', 'technician'];

/**
 * The endpoint that stands for a site in a window: one sending a camera first, then a
 * meeting-room device (its camera shows the hall), then the chair's, then any; ties by
 * the order given (join order).
 */
export function siteEndpoint(participants, site) {
  let best = null;
  let bestScore = Infinity;
  for (const p of participants) {
    if (p.site !== site) continue;
    const cam = p.streams?.camera && !(p.muted || []).includes('camera') ? 0 : 1;
    const role = ROLE_ORDER.indexOf(p.role);
    const score = cam * 10 + (role < 0 ? ROLE_ORDER.length : role);
    if (score < bestScore) {
      best = p;
      bestScore = score;
    }
  }
  return best;
}

/** The chair site: from the floor, else the site of a participant with role chair. */
export function chairSiteOf(floor, self, participants) {
  if (floor?.chair_site) return floor.chair_site;
  if (self?.role === 'chair') return self.site || '';
  return participants.find((p) => p.role === 'chair')?.site || '';
}

/**
 * Plans the meeting view. Keep one per page: it remembers the talk hold, the smoothed
 * audio levels and, in discussion mode, the previous speaker.
 */
export class LayoutPlanner {
  constructor({ holdMs = DEFAULT_HOLD_MS } = {}) {
    this.hold = new SpeakerHold(holdMs);
    /** participant id → smoothed audio level */
    this.levels = new Map();
    this._previous = null; // discussion mode: the speaker shown before the current one
    this._mode = null; // the floor mode of the last plan
  }

  get holdMs() {
    return this.hold.holdMs;
  }

  /**
   * Takes fresh audio levels (participant id → 0..1). The smoothing rises at once and
   * falls over about a second, so pauses between words do not end a turn.
   */
  observeAudio(levels) {
    for (const id of [...this.levels.keys()]) {
      if (!levels.has(id)) this.levels.delete(id);
    }
    for (const [id, v] of levels) {
      const prev = this.levels.get(id) || 0;
      this.levels.set(id, v >= prev ? v : prev * 0.6 + v * 0.4);
    }
  }

  /** Ids whose smoothed level says they are talking. */
  talking() {
    const out = new Set();
    for (const [id, v] of this.levels) if (v >= TALK_LEVEL) out.add(id);
    return out;
  }

  /** The loudest talking participant among candidates (an array of participants), or null. */
  _loudest(candidates) {
    let best = null;
    let level = TALK_LEVEL;
    for (const p of candidates) {
      const v = this.levels.get(p.id) || 0;
      if (v >= level && !(p.muted || []).includes('microphone')) {
        best = p;
        level = v;
      }
    }
    return best;
  }

  /**
   * Plans the view now.
   * @param {object} input
   * @param {object|null} input.self        this endpoint ({id, site, role})
   * @param {object[]}    input.participants the others, in join order
   * @param {object|null} input.floor       the floor state (CauClient.floor)
   * @param {string[]}    input.content     ids of participants whose screen is shown
   * @param {string|null} input.dominant    the bridges' dominant speaker (CauClient.speaker)
   * @param {number}      now               ms (performance.now())
   * @returns {{layout: 'grid'|'main'|'content', main: {id: string, window: string}[],
   *   strip: string[], content: string[], speaker: string|null, previous: string|null,
   *   talking: Set<string>, recheckIn: number}}
   */
  plan({ self = null, participants = [], floor = null, content = [], dominant = null }, now) {
    const byId = new Map(participants.map((p) => [p.id, p]));
    const selfSite = self?.site || '';
    const chairSite = chairSiteOf(floor, self, participants);
    const mode = floor?.mode || FloorMode.DISCUSSION;
    const mayShow = (p) => {
      const a = floorAllows(floor, p.site);
      return a.mic || a.camera;
    };
    // Speaker candidates: remote, not the chair site (it has its own window, or it is us).
    const speakerOK = (p) => !!p && p.id !== self?.id && (!chairSite || p.site !== chairSite);

    // The chair window: not for the chair site itself (it sees its own hall).
    const chair = chairSite && chairSite !== selfSite ? siteEndpoint(participants, chairSite) : null;

    // The current speaker, before the hold.
    let raw = null;
    if (mode === FloorMode.DISCUSSION || !floor) {
      const dom = dominant ? byId.get(dominant) : null;
      const loud = dom && speakerOK(dom) ? dom : this._loudest(participants.filter(speakerOK));
      // Silence keeps the turn (and a pending change) as it is.
      raw = loud ? loud.id : this.hold.wanted();
    } else {
      const grants = (floor.speakers || [])
        .map((g) => ({ g, p: siteEndpoint(participants, g.site) }))
        .filter((x) => speakerOK(x.p));
      if (grants.length > 0) {
        const loud = this._loudest(grants.map((x) => x.p));
        const shownStill = grants.find((x) => x.p.id === this.hold.shown);
        const t = (x) => Date.parse(x.g.since) || 0;
        const latest = grants.reduce((a, b) => (t(b) > t(a) ? b : a));
        raw = (loud || shownStill?.p || latest.p).id;
      }
    }
    if (raw !== null && !byId.has(raw)) raw = null;
    const before = this.hold.shown;
    if (before !== null && !byId.has(before)) this.hold.reset(null); // the speaker left
    if (this._mode !== null && this._mode !== mode) {
      this.hold.reset(raw); // a new mode: no hold
      this._previous = null;
    }
    this._mode = mode;
    let speaker = this.hold.update(raw, now);
    if (speaker !== null && !speakerOK(byId.get(speaker))) {
      this.hold.reset(raw);
      speaker = raw;
    }
    if (before !== null && speaker !== null && before !== speaker && byId.has(before)) this._previous = before;

    // The previous speaker: the floor's record, or in discussion mode our own.
    let previousId = null;
    if (mode === FloorMode.DISCUSSION || !floor) {
      previousId = this._previous;
    } else if (floor.previous) {
      previousId = siteEndpoint(participants, floor.previous)?.id || null;
    }
    const previous = previousId && byId.has(previousId) && previousId !== speaker &&
      speakerOK(byId.get(previousId)) && mayShow(byId.get(previousId)) ? previousId : null;

    // Two main windows: chair and speaker; the previous speaker fills an empty one.
    const main = [];
    const add = (id, window) => {
      if (id && main.length < 2 && !main.some((m) => m.id === id)) main.push({ id, window });
    };
    if (chair) add(chair.id, 'chair');
    // A speaker held on screen after losing the floor is shown as what it now is.
    const holding = mode === FloorMode.DISCUSSION || !floor ||
      (floor.speakers || []).some((g) => g.site === byId.get(speaker)?.site);
    if (speaker) add(speaker, holding ? 'speaker' : 'previous');
    if (previous) add(previous, 'previous');

    // The strip: sites holding the floor first, then everyone else in join order.
    const inMain = new Set(main.map((m) => m.id));
    const speakingSites = new Set((floor?.speakers || []).map((g) => g.site));
    const rest = participants.filter((p) => !inMain.has(p.id));
    const strip = [
      ...rest.filter((p) => speakingSites.has(p.site)),
      ...rest.filter((p) => !speakingSites.has(p.site)),
    ].map((p) => p.id);

    const shownContent = content.filter((id) => byId.has(id));
    const layout = shownContent.length > 0 ? 'content' : main.length > 0 ? 'main' : 'grid';
    return {
      layout,
      main,
      strip,
      content: shownContent,
      speaker,
      previous,
      talking: this.talking(),
      recheckIn: this.hold.pendingIn(now),
    };
  }
}
