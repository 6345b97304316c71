// floor-panel.js — the floor panel of the join page: the mode, who speaks, the request
// queue, the chair's controls (mode switch, grant form, mute all, end meeting), the site's
// own request button, and announcements of floor changes (banner and screen reader).

import { FloorActions, FloorMode, floorGrant, floorQueuePosition } from './cau-client.js';
import { refreshControls } from './controls.js';
import { isChair, mayRequest, siteName } from './floor-roles.js';
import { $, page, recordError, showBanner } from './join-page.js';

const MODE_TEXT = {
  [FloorMode.DISCUSSION]: {
    name: 'Discussion', vi: 'Thảo luận',
    help: 'Every site may speak. Mọi điểm cầu đều được phát biểu.',
  },
  [FloorMode.TRAINING]: {
    name: 'Training', vi: 'Tập huấn',
    help: 'Sites request the floor; the chair gives it to one site at a time. ' +
      'Điểm cầu xin phát biểu, chủ tọa cho phép từng điểm cầu.',
  },
  [FloorMode.DIRECTED]: {
    name: 'Directed', vi: 'Chỉ đạo',
    help: 'The chair gives microphone and camera to one or more sites. ' +
      'Chủ tọa cấp micrô và camera cho một hoặc nhiều điểm cầu.',
  },
};

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
    me.textContent = '(you · bạn)';
    frag.append(' ', me);
  }
  return frag;
}

function clock(ts) {
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleTimeString('vi-VN', { hour: '2-digit', minute: '2-digit' });
}

function floorButton(action, site, text, label, extraClass = '') {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = `action small ${extraClass}`.trim();
  b.dataset.action = action;
  b.dataset.site = site;
  b.textContent = text;
  b.setAttribute('aria-label', `${label} ${siteName(site)}`);
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
  const text = MODE_TEXT[mode] || MODE_TEXT[FloorMode.DISCUSSION];
  const chair = isChair();
  // The lists are rebuilt: remember which of their buttons has the keyboard focus.
  const focused = document.activeElement?.closest?.('#floor-speakers button, #floor-requests button');
  const focusKey = focused ? { action: focused.dataset.action, site: focused.dataset.site } : null;

  const modeEl = $('floor-mode');
  modeEl.dataset.mode = f?.ended ? 'ended' : mode;
  modeEl.textContent = f?.ended ? 'Ended · Đã kết thúc' : `${text.name} · ${text.vi}`;
  $('floor-mode-help').textContent = f?.ended ? 'The chair ended the meeting. Chủ tọa đã kết thúc cuộc họp.' : text.help;

  // This site's own state.
  const status = $('floor-self-status');
  let st = '';
  if (f && self && !f.ended) {
    const g = floorGrant(f, self.site);
    const pos = floorQueuePosition(f, self.site);
    if (self.site && self.site === f.chair_site) st = 'Chair site: always on air. Điểm cầu chủ tọa: luôn được phát.';
    else if (mode === FloorMode.DISCUSSION) st = '';
    else if (g) {
      const media = g.mic && g.camera ? 'microphone and camera · micrô và camera' : g.mic ? 'microphone · micrô' : 'camera';
      st = `You have the floor (${media}). Bạn đang được phát biểu.`;
    } else if (pos > 0) st = `You asked for the floor: number ${pos} in the queue. Đã xin phát biểu, thứ tự ${pos}.`;
  }
  status.textContent = st;
  status.hidden = !st;

  // Speakers.
  const speakers = $('floor-speakers');
  speakers.replaceChildren();
  for (const g of f?.speakers || []) {
    const li = document.createElement('li');
    li.dataset.site = g.site;
    const label = document.createElement('span');
    label.className = 'label';
    label.append(siteLabel(g.site));
    const media = document.createElement('span');
    media.className = 'media';
    media.textContent = [g.mic ? 'Mic' : '', g.camera ? 'Camera' : ''].filter(Boolean).join(' + ') +
      (clock(g.since) ? ` · ${clock(g.since)}` : '');
    li.append(label, media);
    if (chair) li.append(floorButton(FloorActions.REVOKE, g.site, 'Revoke · Thu hồi', 'Take the floor back from'));
    speakers.append(li);
  }
  $('floor-speakers-none').hidden = (f?.speakers || []).length > 0;
  // In discussion mode every site may speak: nobody holds or waits for the floor.
  $('floor-speakers-section').hidden = mode === FloorMode.DISCUSSION && !(f?.speakers || []).length;

  // Requests, oldest first.
  const requests = $('floor-requests');
  requests.replaceChildren();
  for (const r of f?.requests || []) {
    const li = document.createElement('li');
    li.dataset.site = r.site;
    const label = document.createElement('span');
    label.className = 'label';
    label.append(siteLabel(r.site));
    const at = document.createElement('span');
    at.className = 'media';
    at.textContent = clock(r.at);
    li.append(label, at);
    if (chair) {
      const actions = document.createElement('span');
      actions.className = 'row-actions';
      actions.append(
        floorButton(FloorActions.GRANT, r.site, 'Grant · Cho phép', 'Give the floor to', 'ok'),
        floorButton(FloorActions.DENY, r.site, 'Deny · Từ chối', 'Refuse the request of'),
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
      o.textContent = `${siteName(site)}${siteName(site) !== site ? ` (${site})` : ''}${g ? ' — speaking' : ''}`;
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
    let label = 'Request the floor · Xin phát biểu';
    if (floorGrant(f, self.site)) {
      action = FloorActions.YIELD;
      label = 'Yield the floor · Nhường lời';
    } else if (floorQueuePosition(f, self.site) > 0) {
      action = FloorActions.WITHDRAW;
      label = 'Withdraw request · Rút yêu cầu';
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
  forbidden: 'You may not do that',
  not_joined: 'Not connected',
  disconnected: 'Not connected',
  timeout: 'The server did not answer',
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
    const what = FLOOR_ERRORS[err.code] || 'Refused';
    showBanner(`${what}: ${err.message || err.code}. Không thực hiện được.`, 'warn', 8000);
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
  if (muteAll) showBanner('The chair muted all microphones. Chủ tọa đã tắt tất cả micrô.', 'info', 6000);
  if (joined || !prev || !self) return;
  if (f.ended && !prev.ended) {
    showBanner('The chair ended the meeting. Chủ tọa đã kết thúc cuộc họp.', 'info');
    return;
  }
  if (f.mode !== prev.mode) {
    const t = MODE_TEXT[f.mode];
    if (t) {
      say(`Mode: ${t.name}. ${t.help}`);
      showBanner(`Mode: ${t.name} · Chế độ: ${t.vi}`, 'info', 5000);
    }
    return;
  }
  const had = floorGrant(prev, self.site);
  const has = floorGrant(f, self.site);
  if (has && !had) {
    showBanner('You have the floor: you are on air. Bạn được phát biểu.', 'info', 6000);
  } else if (had && !has) {
    showBanner('Your turn has ended. Đã kết thúc lượt phát biểu.', 'info', 5000);
  } else if (!has && floorQueuePosition(prev, self.site) > 0 && floorQueuePosition(f, self.site) === 0) {
    showBanner('The chair declined your request. Chủ tọa chưa cho phép phát biểu.', 'info', 6000);
  }
  if (isChair()) {
    const before = new Set(prev.requests.map((r) => r.site));
    for (const r of f.requests) {
      if (!before.has(r.site)) say(`${siteName(r.site)} requests the floor.`);
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

