// view-report.js — tells the server how large the page shows each remote video (the
// protocol's view message, docs/protocol/view.md): each tile's height in device pixels,
// 0 for a tile that is not shown (hidden, scrolled out of view, the page in the
// background). The bridge then forwards each stream at a layer no larger than its tile
// needs, and nothing for a hidden one. Shared by the join page and the kiosk.
//
// It watches the tiles' sizes (ResizeObserver), whether they are on screen
// (IntersectionObserver) and whether the page is (visibilitychange), and sends at most
// one view per DEBOUNCE_MS, only when it changed.

const DEBOUNCE_MS = 300;
// The protocol's bound on the tiles of one view (protocol.MaxViewTiles).
const MAX_TILES = 512;
const MAX_HEIGHT = 8640;

/** Reports a page's tiles to the server. */
export class ViewReporter {
  /**
   * @param {(tiles: {participant: string, source: string, height: number}[]) => void} send
   * @param {() => Iterable<{participant: string, source: string, element: Element}>} tiles
   *     the remote video tiles now (element: the tile or its video)
   */
  constructor(send, tiles) {
    this._send = send;
    this._tiles = tiles;
    this._last = '';
    this._timer = 0;
    this._observed = new Set();
    /** element → on screen, from the IntersectionObserver (absent: not known yet) */
    this._onScreen = new WeakMap();
    const schedule = () => this.schedule();
    this._resize = typeof ResizeObserver === 'function' ? new ResizeObserver(schedule) : null;
    this._intersect = typeof IntersectionObserver === 'function'
      ? new IntersectionObserver((entries) => {
        for (const e of entries) this._onScreen.set(e.target, e.isIntersecting);
        schedule();
      })
      : null;
    document.addEventListener('visibilitychange', schedule);
    window.addEventListener('resize', schedule); // a zoom changes devicePixelRatio
    this._stop = () => {
      document.removeEventListener('visibilitychange', schedule);
      window.removeEventListener('resize', schedule);
    };
  }

  /** The set of tiles changed (added, removed, moved): watch the new ones, report soon. */
  update() {
    const now = new Set();
    for (const t of this._tiles()) if (t.element) now.add(t.element);
    for (const el of this._observed) {
      if (!now.has(el)) {
        this._resize?.unobserve(el);
        this._intersect?.unobserve(el);
      }
    }
    for (const el of now) {
      if (!this._observed.has(el)) {
        this._resize?.observe(el);
        this._intersect?.observe(el);
      }
    }
    this._observed = now;
    this.schedule();
  }

  /** Reports within DEBOUNCE_MS (several changes in that time make one message). */
  schedule() {
    if (this._timer) return;
    this._timer = setTimeout(() => {
      this._timer = 0;
      this.flush();
    }, DEBOUNCE_MS);
  }

  /** Sends the view now if it changed since the last one sent. */
  flush() {
    const tiles = this.measure();
    const text = JSON.stringify(tiles);
    if (text === this._last) return;
    this._last = text;
    this._send(tiles);
  }

  /** The view now: one entry per tile, its height in device pixels or 0. */
  measure() {
    const out = [];
    const seen = new Set();
    const ratio = window.devicePixelRatio || 1;
    for (const { participant, source, element } of this._tiles()) {
      const key = `${participant}\u0000${source}`;
      if (!participant || seen.has(key) || out.length >= MAX_TILES) continue;
      seen.add(key);
      out.push({ participant, source, height: this._height(element, ratio) });
    }
    return out;
  }

  _height(el, ratio) {
    if (!el || !el.isConnected || document.visibilityState === 'hidden' || this._onScreen.get(el) === false) return 0;
    const video = el.querySelector?.('video') || el;
    const h = video.getBoundingClientRect().height;
    return Math.min(MAX_HEIGHT, Math.max(0, Math.round(h * ratio)));
  }

  /** Forgets what was sent (a new session): the next report goes whatever it holds. */
  reset() {
    this._last = '';
    this.schedule();
  }

  /** Stops watching (the page leaves). */
  stop() {
    clearTimeout(this._timer);
    this._resize?.disconnect();
    this._intersect?.disconnect();
    this._stop();
  }
}
