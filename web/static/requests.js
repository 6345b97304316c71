// requests.js — requests sent over the signaling socket and their replies. A request
// carries an id; the server's reply carries it back (or, for some kinds, arrives without
// one: then the oldest request waiting for that kind gets it). An error message answers
// the request whose id it carries. Each request times out on its own.

import { CauError } from './protocol.js';

/** The requests waiting for a reply on one session. */
export class PendingRequests {
  /** @param {number} timeoutMs how long a request waits for its reply */
  constructor(timeoutMs) {
    this.timeoutMs = timeoutMs;
    this._seq = 0;
    this._pending = new Map(); // request id → {resolve, reject, timer, expect, type, strictId}
  }

  /**
   * Sends a request with send(type, data, id) and waits for the reply of kind expect (or an
   * error). opts.strictId: only a reply carrying the id answers it (the kind is also
   * broadcast). Rejects at once when send returns false (not connected).
   */
  request(send, type, data, expect, { strictId = false } = {}) {
    const id = `${type}-${++this._seq}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new CauError('timeout', `no ${expect} for ${type}`));
      }, this.timeoutMs);
      this._pending.set(id, { resolve, reject, timer, expect, type, strictId });
      if (!send(type, data, id)) {
        clearTimeout(timer);
        this._pending.delete(id);
        reject(new CauError('disconnected', 'not connected'));
      }
    });
  }

  /** Answers the pending request a reply belongs to; returns its entry, or null. */
  settle(id, type, data) {
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

  /** Fails every pending request with err (the socket closed). */
  rejectAll(err) {
    for (const e of this._pending.values()) {
      clearTimeout(e.timer);
      e.reject(err);
    }
    this._pending.clear();
  }
}
