// floor-panel.js — the floor panel of the join page: the mode, who speaks, the request
// queue, the chair's controls (mode switch, grant form, mute all, end meeting), the site's
// own request button, and announcements of floor changes (banner and screen reader).

import { FloorActions, FloorMode, floorGrant, floorQueuePosition } from './cau-client.js';
import { refreshControls } from './controls.js';
import { isChair, mayRequest, siteName } from './floor-roles.js';
import { fmtTime, t } from './i18n.js';
import { $, page, recordError, showBanner } from './join-page.js';

/** The mode's name and what it means, in the page's language. */
function modeText(mode) {
  const m = Object.values(FloorMode).includes(mode) ? mode : FloorMode.DISCUSSION;
  return { name: t(`mode.${m}`), help: t(`mode.${m}_help`) };
}

/** A list item's site label: name (bold) and site id. */
function siteLabel(site) {
  const frag = document.createDocumentFragment();
  const who = document.createElement('span');
  who.className = 'who';
  who.textContent = siteName(site);
  frag.append(who);
  if (who.textContent !== site) {
    const id = document.createElement('span');
    id.className = 'site-id';
    id.textContent = site;
    frag.append(' ', id);
  }
  if (site === page.client?.self?.site) {
    const me = document.createElement('span');
    me.className = 'you';
    me.textContent = t('floor.you');
    frag.append(' ', me);
  }
  return frag;
}

/** A time of the floor's (an ISO string) in Vietnam time, 24-hour. */
const clock = (ts) => fmtTime(ts);

/** A list row for site: its label, then what (the media it holds, when it asked). */
function siteRow(site, what) {
  const li = document.createElement('li');
  li.dataset.site = site;
  const label = document.createElement('span');
  label.className = 'label';
  label.append(siteLabel(site));
  const detail = document.createElement('span');
  detail.className = 'media';
  detail.textContent = what;
  li.append(label, detail);
  return li;
}

function floorButton(action, site, text, label, extraClass = '') {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = `action small ${extraClass}`.trim();
  b.dataset.action = action;
  b.dataset.site = site;
  b.textContent = text;
  b.setAttribute('aria-label', t(label, { site: siteName(site) }));
  // Not disabled while the server answers (that would drop keyboard focus); floorAction
  // ignores a second press.
  if (page.floorBusy.has(`${action}:${site}`)) b.setAttribute('aria-busy', 'true');
  return b;
}

/** Redraws the floor panel and the site's floor button from the client's floor state. */
export function renderFloor() {
  const c = page.client;
  const f = c?.floor;
  const self = c?.self;
  const mode = f?.mode || FloorMode.DISCUSSION;
  const text = modeText(mode);
  const chair = isChair();
  // The lists are rebuilt: remember which of their buttons has the keyboard focus.
  const focused = document.activeElement?.closest?.('#floor-speakers button, #floor-requests button');
  const focusKey = focused ? { action: focused.dataset.action, site: focused.dataset.site } : null;

  const modeEl = $('floor-mode');
  modeEl.dataset.mode = f?.ended ? 'ended' : mode;
  modeEl.textContent = f?.ended ? t('mode.ended') : text.name;
  $('floor-mode-help').textContent = f?.ended ? t('floor.ended_help') : text.help;

  // This site's own state.
  const status = $('floor-self-status');
  let st = '';
  if (f && self && !f.ended) {
    const g = floorGrant(f, self.site);
    const pos = floorQueuePosition(f, self.site);
    if (self.site && self.site === f.chair_site) st = t('floor.self_chair');
    else if (mode === FloorMode.DISCUSSION) st = '';
    else if (g) {
      const media = t(g.mic && g.camera ? 'floor.media_both' : g.mic ? 'floor.media_mic' : 'floor.media_camera');
      st = t('floor.self_granted', { media });
    } else if (pos > 0) st = t('floor.self_queued', { pos });
  }
  status.textContent = st;
  status.hidden = !st;

  // Speakers.
  const speakers = $('floor-speakers');
  speakers.replaceChildren();
  for (const g of f?.speakers || []) {
    const li = siteRow(g.site, [g.mic ? t('controls.mic') : '', g.camera ? t('controls.camera') : ''].filter(Boolean).join(' + ') +
      (clock(g.since) ? ` · ${clock(g.since)}` : ''));
    if (chair) li.append(floorButton(FloorActions.REVOKE, g.site, t('floor.revoke'), 'floor.revoke_label'));
    speakers.append(li);
  }
  $('floor-speakers-none').hidden = (f?.speakers || []).length > 0;
  // In discussion mode every site may speak: nobody holds or waits for the floor.
  $('floor-speakers-section').hidden = mode === FloorMode.DISCUSSION && !(f?.speakers || []).length;

  // Requests, oldest first.
  const requests = $('floor-requests');
  requests.replaceChildren();
  for (const r of f?.requests || []) {
    const li = siteRow(r.site, clock(r.at));
    if (chair) {
      const actions = document.createElement('span');
      actions.className = 'row-actions';
      actions.append(
        floorButton(FloorActions.GRANT, r.site, t('floor.grant'), 'floor.grant_label', 'ok'),
        floorButton(FloorActions.DENY, r.site, t('floor.deny'), 'floor.deny_label'),
      );
      li.append(actions);
    }
    requests.append(li);
  }
  const nreq = (f?.requests || []).length;
  $('floor-requests-none').hidden = nreq > 0;
  $('floor-requests-section').hidden = mode === FloorMode.DISCUSSION && nreq === 0;
  $('floor-requests-count').textContent = nreq > 0 ? `(${nreq})` : '';
  const badge = $('panel-badge');
  badge.textContent = String(nreq);
  badge.hidden = !(chair && nreq > 0);

  // The chair's controls.
  $('floor-chair').hidden = !chair || !f || f.ended;
  if (chair && f) {
    for (const b of document.querySelectorAll('.mode-switch button')) {
      b.setAttribute('aria-pressed', String(b.dataset.mode === mode));
    }
    const form = $('grant-form');
    form.hidden = mode === FloorMode.DISCUSSION;
    $('grant-media').hidden = mode !== FloorMode.DIRECTED;
    const select = $('grant-site');
    const chosen = select.value;
    const sites = [...new Set([...c.participants.values()].map((p) => p.site))]
      .filter((site) => site && site !== f.chair_site);
    select.replaceChildren(...sites.map((site) => {
      const o = document.createElement('option');
      o.value = site;
      const g = floorGrant(f, site);
      const name = `${siteName(site)}${siteName(site) !== site ? ` (${site})` : ''}`;
      o.textContent = g ? t('floor.option_speaking', { site: name }) : name;
      o.selected = site === chosen;
      return o;
    }));
    $('grant-button').disabled = sites.length === 0;
  }

  // The site's own floor button in the controls.
  const fb = $('floor-button');
  const show = mayRequest();
  fb.hidden = !show;
  if (show) {
    let action = FloorActions.REQUEST;
    let label = t('floor.request');
    if (floorGrant(f, self.site)) {
      action = FloorActions.YIELD;
      label = t('floor.yield');
    } else if (floorQueuePosition(f, self.site) > 0) {
      action = FloorActions.WITHDRAW;
      label = t('floor.withdraw');
    }
    fb.dataset.action = action;
    fb.querySelector('.pill-text').textContent = label;
    fb.classList.toggle('active', action !== FloorActions.REQUEST);
  }
  if (focusKey) restoreFocus(focusKey);
  refreshControls();
}

/**
 * Puts the keyboard focus back after the lists were rebuilt: on the same button, else on
 * another button for the same site (granted: now Revoke), else on the first in the lists,
 * else on the panel's title.
 */
function restoreFocus({ action, site }) {
  const panel = $('floor-panel');
  const inLists = '#floor-requests button, #floor-speakers button';
  const sel = (a) => `button[data-action="${CSS.escape(a)}"][data-site="${CSS.escape(site)}"]`;
  const target = panel.querySelector(sel(action)) ||
    panel.querySelector(`#floor-requests button[data-site="${CSS.escape(site)}"], #floor-speakers button[data-site="${CSS.escape(site)}"]`) ||
    panel.querySelector(inLists) || $('floor-title');
  target.focus();
}

const FLOOR_ERRORS = {
  forbidden: 'floor.err_forbidden',
  not_joined: 'floor.err_disconnected',
  disconnected: 'floor.err_disconnected',
  timeout: 'floor.err_timeout',
};

/** Runs a floor action; a refusal is shown in the banner. */
async function floorAction(action, opts = {}) {
  const c = page.client;
  if (!c) return null;
  const key = `${action}:${opts.site || ''}`;
  if (page.floorBusy.has(key)) return null;
  page.floorBusy.add(key);
  renderFloor();
  try {
    return await c.floorAction(action, opts);
  } catch (err) {
    recordError(err.code || 'floor', err.message);
    // The end of the meeting closes the socket, maybe before the reply: the end screen says it.
    if (c.state === 'closed') return null;
    const what = t(FLOOR_ERRORS[err.code] || 'floor.err_other');
    showBanner(t('floor.err', { what, why: err.message || err.code }), 'warn', 8000);
    return null;
  } finally {
    page.floorBusy.delete(key);
    renderFloor();
  }
}

/** Says a floor change out loud (screen readers) and, for this site, in the banner. */
export function announceFloor({ floor: f, previous: prev, muteAll, joined }) {
  const self = page.client?.self;
  const say = (t) => {
    $('floor-live').textContent = t;
  };
  if (muteAll) showBanner(t('floor.muted_all'), 'info', 6000);
  if (joined || !prev || !self) return;
  if (f.ended && !prev.ended) {
    showBanner(t('floor.ended_banner'), 'info');
    return;
  }
  if (f.mode !== prev.mode) {
    const m = modeText(f.mode);
    say(t('floor.mode_said', { mode: m.name, help: m.help }));
    showBanner(t('floor.mode_banner', { mode: m.name }), 'info', 5000);
    return;
  }
  const had = floorGrant(prev, self.site);
  const has = floorGrant(f, self.site);
  if (has && !had) {
    showBanner(t('floor.granted_banner'), 'info', 6000);
  } else if (had && !has) {
    showBanner(t('floor.turn_ended'), 'info', 5000);
  } else if (!has && floorQueuePosition(prev, self.site) > 0 && floorQueuePosition(f, self.site) === 0) {
    showBanner(t('floor.declined'), 'info', 6000);
  }
  if (isChair()) {
    const before = new Set(prev.requests.map((r) => r.site));
    for (const r of f.requests) {
      if (!before.has(r.site)) say(t('floor.requested_said', { site: siteName(r.site) }));
    }
  }
}

function togglePanel(open = !page.panelOpen) {
  page.panelOpen = open;
  $('floor-panel').hidden = !open;
  $('panel-button').setAttribute('aria-expanded', String(open));
  $('panel-button').classList.toggle('active', open);
}

/**
 * Opens the floor panel by itself where it matters, on wide screens and until the user
 * chooses: always for the chair, and for a site once the floor is controlled (training or
 * directed mode); in discussion mode a site sees the meeting without it.
 */
export function autoPanel({ floor: f, previous: prev }) {
  if (page.panelChosen || !window.matchMedia('(min-width: 900px)').matches) return;
  const controlled = f.mode !== FloorMode.DISCUSSION;
  if (isChair() || (controlled && (!prev || prev.mode !== f.mode))) togglePanel(true);
}

function onPanelClick(e) {
  const b = e.target.closest('button[data-action]');
  if (!b || b.disabled) return;
  const { action, site } = b.dataset;
  if (action === FloorActions.GRANT) {
    const directed = page.client?.floor?.mode === FloorMode.DIRECTED;
    floorAction(action, {
      site, mic: directed ? $('grant-mic').checked : true, camera: directed ? $('grant-camera').checked : true,
    });
  } else {
    floorAction(action, { site });
  }
}

export function startFloorControls() {
  $('floor-panel').addEventListener('click', onPanelClick);
  for (const b of document.querySelectorAll('.mode-switch button')) {
    b.addEventListener('click', () => {
      if (b.getAttribute('aria-pressed') !== 'true') floorAction(FloorActions.SET_MODE, { mode: b.dataset.mode });
    });
  }
  $('grant-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const site = $('grant-site').value;
    if (!site) return;
    const directed = page.client?.floor?.mode === FloorMode.DIRECTED;
    floorAction(FloorActions.GRANT, {
      site, mic: directed ? $('grant-mic').checked : true, camera: directed ? $('grant-camera').checked : true,
    });
  });
  $('mute-all-button').addEventListener('click', () => floorAction(FloorActions.MUTE_ALL));
  $('end-meeting-button').addEventListener('click', () => {
    const d = $('end-dialog');
    d.returnValue = '';
    d.showModal();
  });
  $('end-dialog').addEventListener('close', () => {
    if ($('end-dialog').returnValue === 'end') floorAction(FloorActions.END);
  });
  $('floor-button').addEventListener('click', () => floorAction($('floor-button').dataset.action));
  $('panel-button').addEventListener('click', () => {
    page.panelChosen = true;
    togglePanel();
  });
  togglePanel(false);
}

