// The meeting's other participants as one client knows them, kept from joined and roster
// messages (docs/protocol/roster.md).

/**
 * Participants other than self, by id. A large meeting's list does not fit joined: the next
 * `more` participants of roster messages complete it, and only then is it known who left
 * while the client was away. Changes are reported to on.changed(p, previous) (previous null
 * for one who entered) and on.left(id, p).
 */
export class Roster {
  constructor(on) {
    /** @type {Map<string, object>} */
    this.byId = new Map();
    this._on = on;
    this.reset();
  }

  /** A new socket: nobody is announced on it yet. */
  reset() {
    this._heard = new Set(); // participants announced on this socket (maybe before joined)
    this._rest = null; // {ids, more}: joined's list, while roster messages complete it
  }

  /** Starts from joined's list (a Map by id) and the count of participants still to come. */
  joined(listed, more) {
    this._rest = more > 0 ? { ids: new Set(listed.keys()), more } : null;
    if (!this._rest) this._dropAbsent(listed);
  }

  /** Applies a roster message: upserts first, then leaves (an id is in one list only). */
  apply(r, selfId) {
    for (const p of r.participants || []) {
      const rest = this._rest;
      if (rest) {
        rest.ids.add(p.id);
        if (--rest.more <= 0) {
          this._rest = null;
          this._dropAbsent(rest.ids);
        }
      }
      this.upsert(p, selfId);
    }
    for (const id of r.left || []) this.remove(id);
  }

  upsert(p, selfId) {
    if (!p || !p.id || p.id === selfId) return;
    const previous = this.byId.get(p.id) || null;
    this.byId.set(p.id, p);
    this._heard.add(p.id);
    this._on.changed(p, previous);
  }

  remove(id) {
    const p = this.byId.get(id);
    if (!p) return;
    this.byId.delete(id);
    this._on.left(id, p);
  }

  /**
   * Drops those we knew that are not in the meeting's list (listed: ids). One who joined at
   * the same moment as us may be announced on this socket before our joined arrives, and is
   * not in its list.
   */
  _dropAbsent(listed) {
    for (const id of [...this.byId.keys()]) {
      if (!listed.has(id) && !this._heard.has(id)) this.remove(id);
    }
  }
}
