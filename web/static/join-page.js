// join-page.js — what the join page's modules share: the link's parameters, the page's
// state, and small DOM helpers (the banner, the screens, the connection status, error
// records). Everything here runs on the page's one thread; each field of `page` says
// which module writes it (the others only read it).

import { decodeTokenClaims } from './cau-client.js';
import { DEFAULT_HOLD_MS, LayoutPlanner, MAX_HOLD_MS, MIN_HOLD_MS } from './layout.js';

/** The element with this id. */
export const $ = (id) => document.getElementById(id);

export const params = new URLSearchParams(location.search);
export const token = params.get('token') || '';
export const autojoin = params.get('autojoin') === '1';
export const pathMeeting = (() => {
  try {
    return decodeURIComponent(location.pathname.split('/')[2] || '');
  } catch {
    return '';
  }
})();
export const claims = token ? decodeTokenClaims(token) : null;

export const holdMs = (() => {
  const v = Number.parseFloat(params.get('hold') ?? '');
  return Number.isFinite(v) ? Math.min(MAX_HOLD_MS, Math.max(MIN_HOLD_MS, Math.round(v * 1000))) : DEFAULT_HOLD_MS;
})();

export const page = {
  /** the session (join.js) */
  client: null,
  /** reports the tiles' sizes to the server (view-report.js; join.js, grid.js) */
  view: null,
  /** @type {MediaStream|null} microphone + camera (join.js, local-media.js) */
  local: null,
  /** what the user muted (controls.js; join.js follows the chair's "mute all") */
  micMuted: false,
  camMuted: false,
  /** the browser wants a click before playing sound (grid.js) */
  soundBlocked: false,
  /** the user pressed Leave (join.js) */
  leaving: false,
  /** participant id → tile element (camera) (grid.js) */
  tiles: new Map(),
  /** participant id → stage element (screen) (grid.js) */
  screens: new Map(),
  /** the last errors, for the test hook (recordError) */
  errors: [],
  /** the layout planner, and its last plan (grid.js; see layout.js) */
  planner: new LayoutPlanner({ holdMs }),
  plan: null,
  layoutTimer: 0,
  audioTimer: 0,
  audioBusy: false,
  /** whether the floor panel is shown (floor-panel.js) */
  panelOpen: true,
  /** whether the user opened or closed the panel (then the page leaves it so) */
  panelChosen: false,
  /** floor actions waiting for the server, by a key of action and site (floor-panel.js) */
  floorBusy: new Set(),
};

// ---- banner, screens -----------------------------------------------------------------------

let bannerTimer = 0;

/** Shows a message at the top. kind: info|warn|error; ttl 0 keeps it. */
export function showBanner(text, kind = 'info', ttl = 0, action = null) {
  clearTimeout(bannerTimer);
  const b = $('banner');
  b.dataset.kind = kind;
  $('banner-text').textContent = text;
  const btn = $('banner-action');
  if (action) {
    btn.textContent = action.label;
    btn.onclick = action.run;
    btn.hidden = false;
  } else {
    btn.hidden = true;
    btn.onclick = null;
  }
  b.hidden = false;
  if (ttl > 0) bannerTimer = setTimeout(hideBanner, ttl);
}

export function hideBanner() {
  clearTimeout(bannerTimer);
  $('banner').hidden = true;
}

export function showScreen(id) {
  for (const s of ['preview-screen', 'meeting-screen', 'end-screen']) $(s).hidden = s !== id;
  document.body.dataset.screen = id;
}

export function recordError(code, message) {
  page.errors.push({ code, message, at: new Date().toISOString() });
  if (page.errors.length > 50) page.errors.shift();
}


export function setConnStatus(state, text) {
  const el = $('conn-status');
  el.dataset.state = state;
  el.textContent = text;
}



/** Sets an element's text and shows it, or hides it when text is empty; writes only changes. */
export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
  setHidden(el, !text);
}

export function setHidden(el, hidden) {
  if (el.hidden !== hidden) el.hidden = hidden;
}

export function setData(el, key, value) {
  if (el.dataset[key] !== value) el.dataset[key] = value;
}
