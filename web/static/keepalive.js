// The signaling socket's keepalive: a ping every PING_EVERY_MS, which the server answers
// (pong, or any message). A ping sent on the last tick and nothing heard since means the
// socket is dead; this holds even when a hidden tab's timers are throttled.

const PING_EVERY_MS = 20000;
// A ping unanswered for this long (checked at the next ping) means the socket is dead.
const PONG_WAIT_MS = 15000;

export class Keepalive {
  /**
   * @param {() => boolean} ping sends a ping; false if it could not be sent
   * @param {() => void} onDead is called once the socket is found dead
   */
  constructor(ping, onDead) {
    this._ping = ping;
    this._onDead = onDead;
    this._timer = 0;
    this._sentAt = 0;
    this._heardAt = 0;
  }

  /** Something came from the server. */
  heard() {
    this._heardAt = Date.now();
  }

  start() {
    this.stop();
    this.heard();
    this._sentAt = 0;
    this._timer = setInterval(() => {
      const now = Date.now();
      if (this._sentAt && this._heardAt < this._sentAt && now - this._sentAt > PONG_WAIT_MS) {
        this.stop();
        this._onDead();
        return;
      }
      if (this._ping()) this._sentAt = now;
    }, PING_EVERY_MS);
  }

  stop() {
    clearInterval(this._timer);
    this._timer = 0;
  }
}
