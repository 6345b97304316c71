// console.js — the technicians' console: /console?token=<jwt> (role technician or admin).
//
// The token is moved from the URL to this tab's sessionStorage at once and the URL cleaned,
// so it is not kept in history, bookmarks or screenshots; the API gets it in an
// Authorization header (never in a URL, so never in an access log).
//
// Data: GET /api/v1/monitor/tree once, then /api/v1/monitor/stream (Server-Sent Events read
// with fetch, which can send the header EventSource cannot): one "state" event a second
// with the grade of every connected site. A selected site's detail is polled every 2 s.
// The meetings open now (test window or live) are polled every 5 s from /meetings; a
// selected meeting's pre-meeting check or live roll call every 3 s from /meetings/{id}.
// The tree's DOM is built once; an update only touches the rows whose grade or figures
// changed. The site detail is drawn by console-detail.js. window.cauConsole exposes timings
// for the tests.

import { $, el, fmtRate, gradeText, levelText, renderDetail } from './console-detail.js';
import { fmtTime, t, translatePage } from './i18n.js';
import { showRecording } from './console-recording.js';
import { takeToken } from './page-token.js';

const TOKEN_KEY = 'cau.console.token';
const API = '/api/v1/monitor/';
const SEV = { good: 0, fair: 1, poor: 2, lost: 3 };
const BY_SEV = ['good', 'fair', 'poor', 'lost'];
const UNKNOWN = 'unknown'; // the monitor's site for endpoints outside the registry
const STALL_MS = 6000; // no event for this long: reconnect
const RECENT_UPDATES = 16; // update durations kept for the page's tests (stats.recentUpdateMs)

const sev = (g) => (g in SEV ? SEV[g] : -1);
const gradeName = (s) => (s >= 0 ? BY_SEV[s] : 'none');

const stats = {
  ready: false, sites: 0, treeRenderMs: 0, updates: 0, lastUpdateMs: 0, maxUpdateMs: 0, totalUpdateMs: 0,
  recentUpdateMs: [], // the last RECENT_UPDATES updates' durations
  lastEventAt: 0, detailRenderMs: 0, detailSite: '', errors: [],
  meetings: 0, meetingShown: '', meetingRenderMs: 0,
};
window.cauConsole = stats;

// ---- token ----
const token = takeToken(TOKEN_KEY);

function fatal(title, text) {
  $('fatal-title').textContent = title;
  $('fatal-text').textContent = text;
  $('fatal').hidden = false;
  $('main').hidden = true;
  setStatus('down');
}

class AuthError extends Error {}

async function api(path, init = {}) {
  const res = await fetch(API + path, { ...init, cache: 'no-store', headers: { Authorization: 'Bearer ' + token } });
  if (res.status === 401 || res.status === 403) {
    let msg = '';
    try { msg = (await res.json()).error?.message ?? ''; } catch { /* not JSON */ }
    sessionStorage.removeItem(TOKEN_KEY);
    throw new AuthError(t(res.status === 403 ? 'console.not_technician' : 'console.link_invalid', { why: msg }));
  }
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return res;
}

/** The stream's state: connecting, live, reconnecting or down (stopped). */
function setStatus(state, reconnecting = false) {
  const s = $('status');
  s.dataset.state = state;
  s.textContent = t(`console.status_${state === 'down' ? (reconnecting ? 'reconnecting' : 'stopped') : state}`);
}

// ---- the tree ----
const nodes = new Map(); // id → node
let order = []; // preorder
let selected = '';

function makeNode(id, name, level, parent) {
  const n = { id, name, level, parent, children: [], depth: 0, own: -1, sub: -1, fig: '', path: false, search: '' };
  n.el = el('div', 'node leaf');
  n.el.dataset.g = 'none';
  n.el.dataset.sub = 'none';
  n.el.dataset.level = level;
  n.row = el('div', 'row');
  n.row.setAttribute('role', 'treeitem');
  n.row.tabIndex = -1;
  n.row.dataset.id = id;
  n.row.append(el('span', 'tog'), el('span', 'dot'), el('span', 'name', name), el('span', 'lvl', levelText(level)));
  n.figEl = el('span', 'fig');
  n.badge = el('span', 'badge', t('console.badge_below'));
  n.row.append(n.figEl, n.badge);
  n.kids = el('div', 'kids');
  n.el.append(n.row, n.kids);
  n.search = fold(name + ' ' + id);
  return n;
}

function fold(s) {
  return s.normalize('NFD').replace(/\p{Diacritic}/gu, '').replace(/đ/g, 'd').replace(/Đ/g, 'D').toLowerCase();
}

function buildTree(data) {
  const t0 = performance.now();
  for (const [id, name, level, parent] of data.sites) nodes.set(id, makeNode(id, name, level, parent));
  const roots = [];
  for (const n of nodes.values()) {
    const p = n.parent && nodes.get(n.parent);
    if (p) p.children.push(n); else roots.push(n);
  }
  order = [];
  const stack = roots.slice().reverse();
  while (stack.length) {
    const n = stack.pop();
    order.push(n);
    for (let i = n.children.length - 1; i >= 0; i--) {
      n.children[i].depth = n.depth + 1;
      stack.push(n.children[i]);
    }
  }
  const frag = document.createDocumentFragment();
  for (const n of order) {
    if (n.children.length) n.el.classList.remove('leaf');
    if (n.depth >= 1 && n.children.length) n.el.classList.add('collapsed');
    const p = n.parent && nodes.get(n.parent);
    (p ? p.kids : frag).append(n.el);
  }
  $('tree').append(frag);
  for (const l of data.levels) $('level').append(new Option(levelText(l), l));
  stats.sites = nodes.size;
  stats.treeRenderMs = performance.now() - t0;
}

// The node for endpoints outside the registry appears only when there are some.
function unknownNode() {
  let n = nodes.get(UNKNOWN);
  if (!n) {
    n = makeNode(UNKNOWN, t('console.outside'), UNKNOWN, '');
    nodes.set(UNKNOWN, n);
    order.push(n);
    $('tree').append(n.el);
  }
  return n;
}

function figText(s) {
  if (!s) return '';
  let text = t('console.endpoints', { n: s.n });
  if (s.rtt > 0) text += ` · ${Math.round(s.rtt)} ms`;
  if (s.loss > 0) text += ` · ${s.loss.toFixed(1)}%`;
  // What the site receives (issue 10): its weakest link's estimate, its streams by layer.
  if (s.est > 0) text += ` · ${t('console.estimate', { rate: fmtRate(s.est) })}`;
  if (s.ly) text += ` · ${t('console.layers', { low: s.ly[0], middle: s.ly[1], top: s.ly[2], paused: s.ly[3] })}`;
  return text;
}

// ---- updates ----
let lastAlertsKey = '';

function applyState(ev) {
  const t0 = performance.now();
  const sites = ev.sites || {};
  if (sites[UNKNOWN]) unknownNode();
  for (const n of order) {
    const s = sites[n.id];
    n.own = s ? sev(s.g) : -1;
    n.sub = n.own;
    n.state = s;
  }
  for (let i = order.length - 1; i >= 0; i--) {
    const n = order[i];
    const p = n.parent && nodes.get(n.parent);
    if (p && n.sub > p.sub) p.sub = n.sub;
  }
  const counts = [0, 0, 0, 0];
  const problems = [];
  for (const n of order) {
    const g = gradeName(n.own);
    if (n.el.dataset.g !== g) n.el.dataset.g = g;
    const sub = gradeName(n.sub);
    if (n.el.dataset.sub !== sub) n.el.dataset.sub = sub;
    const fig = figText(n.state);
    if (fig !== n.fig) { n.fig = fig; n.figEl.textContent = fig; }
    const pathBad = !!n.state && sev(n.state.p) >= 2 && n.own < 2;
    if (pathBad !== n.path) { n.path = pathBad; n.el.classList.toggle('path-bad', pathBad); }
    if (n.own >= 0) counts[n.own]++;
    if (n.own >= 2) problems.push(n);
  }
  renderCounts(counts);
  renderProblems(problems);
  const alertsKey = (ev.alerts || []).map((a) => a.id + ':' + a.grade + ':' + (a.end || '')).join(',');
  if (alertsKey !== lastAlertsKey) { lastAlertsKey = alertsKey; renderAlerts(ev.alerts || []); }
  const ms = performance.now() - t0;
  stats.updates++;
  stats.lastUpdateMs = ms;
  stats.totalUpdateMs += ms;
  stats.maxUpdateMs = Math.max(stats.maxUpdateMs, ms);
  stats.recentUpdateMs.push(ms);
  if (stats.recentUpdateMs.length > RECENT_UPDATES) stats.recentUpdateMs.shift();
  stats.lastEventAt = Date.now();
  stats.ready = true;
}

function renderCounts(counts) {
  const c = $('counts');
  c.replaceChildren();
  counts.forEach((k, i) => {
    const s = el('span');
    const d = el('span', 'dot');
    d.dataset.g = BY_SEV[i];
    // The dot's colour names the grade (as the legend says); the number is what counts.
    s.title = t('console.count', { n: k, grade: gradeText(BY_SEV[i]) });
    s.append(d, document.createTextNode(String(k)));
    c.append(s);
  });
}

function renderProblems(list) {
  list.sort((a, b) => b.own - a.own || (b.state.loss - a.state.loss) || a.name.localeCompare(b.name));
  const ol = $('problems');
  ol.replaceChildren();
  for (const n of list.slice(0, 200)) {
    const li = el('li');
    const d = el('span', 'dot');
    d.dataset.g = gradeName(n.own);
    const text = el('span');
    text.append(el('b', '', n.name), document.createTextNode(' ' + levelText(n.level)));
    text.append(el('span', 'why', n.state.why || figText(n.state)));
    li.append(d, text);
    li.dataset.id = n.id;
    ol.append(li);
  }
  $('no-problems').hidden = list.length > 0;
}

const time = (iso) => fmtTime(iso, { seconds: true });

/** Why an alert closed, as the monitor says it (monitor/sites.go), in the page's language. */
function endReason(why) {
  const key = { recovered: 'alert_end.recovered', 'no endpoint left': 'alert_end.no_endpoint_left',
    'bridge back': 'alert_end.bridge_back' }[why];
  return key ? t(key) : why;
}

function renderAlerts(alerts) {
  const ol = $('alerts');
  ol.replaceChildren();
  for (const a of alerts) {
    const li = el('li', a.end ? 'closed' : 'open');
    const d = el('span', 'dot');
    d.dataset.g = a.grade;
    const text = el('span');
    const name = a.kind === 'site' && a.subject === UNKNOWN ? t('console.outside') : a.name;
    text.append(el('b', '', name), document.createTextNode(` ${a.kind === 'bridge' ? t('console.bridge_down') : gradeText(a.grade)}`));
    const when = a.end ? t('console.alert_closed', { start: time(a.start), end: time(a.end), why: endReason(a.end_reason) })
      : t('console.alert_open', { start: time(a.start) });
    text.append(el('span', 'when', when));
    li.append(d, text);
    if (a.kind === 'site') li.dataset.id = a.subject;
    li.title = a.reason || '';
    ol.append(li);
  }
  $('no-alerts').hidden = alerts.length > 0;
}

// ---- stream ----
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function runStream() {
  let backoff = 500;
  for (;;) {
    const abort = new AbortController();
    let watchdog;
    const pet = () => { clearTimeout(watchdog); watchdog = setTimeout(() => abort.abort(), STALL_MS); };
    try {
      setStatus('connecting');
      pet();
      const res = await api('stream', { signal: abort.signal });
      setStatus('live');
      backoff = 500;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        pet();
        buf += value;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          handleEvent(block);
        }
      }
    } catch (e) {
      if (e instanceof AuthError) { fatal(t('console.cannot_open'), e.message); return; }
      if (e.name !== 'AbortError') stats.errors.push(String(e));
    } finally {
      clearTimeout(watchdog);
    }
    setStatus('down', true);
    await sleep(backoff);
    backoff = Math.min(backoff * 2, 5000);
  }
}

function handleEvent(block) {
  let kind = 'message';
  let data = '';
  for (const line of block.split('\n')) {
    if (line.startsWith('event:')) kind = line.slice(6).trim();
    else if (line.startsWith('data:')) data += line.slice(5).trim();
  }
  if (kind === 'expired') {
    sessionStorage.removeItem(TOKEN_KEY);
    fatal(t('console.expired'), t('console.expired_detail'));
    throw new AuthError('expired');
  }
  if (kind === 'state') applyState(JSON.parse(data));
}

// ---- selection and detail ----

/**
 * A side panel that shows one item and reloads it every `everyMs` while open.
 * @param {string} elId the panel's element
 * @param {(id: string) => void} load fills the panel with the item's figures
 */
function pollingPanel(elId, load, everyMs) {
  let timer = 0;
  return {
    open(id) {
      $(elId).hidden = false;
      clearInterval(timer);
      load(id);
      timer = setInterval(() => load(id), everyMs);
    },
    close() {
      clearInterval(timer);
      $(elId).hidden = true;
    },
  };
}

const detailPanel = pollingPanel('detail', (id) => loadDetail(id), 2000);

function select(id) {
  const n = nodes.get(id);
  if (!n) return;
  if (selected) nodes.get(selected)?.row.classList.remove('selected');
  selected = id;
  n.row.classList.add('selected');
  for (let p = nodes.get(n.parent); p; p = nodes.get(p.parent)) p.el.classList.remove('collapsed');
  n.row.scrollIntoView({ block: 'nearest' });
  history.replaceState(null, '', location.pathname + location.search + '#' + encodeURIComponent(id));
  closeMeeting();
  detailPanel.open(id);
}

function closeDetail() {
  detailPanel.close();
  if (selected) nodes.get(selected)?.row.classList.remove('selected');
  selected = '';
  history.replaceState(null, '', location.pathname + location.search);
}

async function loadDetail(id) {
  try {
    const d = await (await api('sites/' + encodeURIComponent(id))).json();
    if (id === selected) showDetail(d);
  } catch (e) {
    if (e instanceof AuthError) fatal(t('console.cannot_open'), e.message);
    else stats.errors.push(String(e));
  }
}

function showDetail(d) {
  const t0 = performance.now();
  renderDetail(d, siteName);
  stats.detailRenderMs = performance.now() - t0;
  stats.detailSite = d.site.id;
}

const siteName = (id) => nodes.get(id)?.name || id;

// ---- meetings: the pre-meeting check and the live roll call ----
let meetingSel = '';
const meetingPanel = pollingPanel('mdetail', (id) => loadMeeting(id), 3000);
let meetingsKey = '';

async function loadMeetings() {
  let list;
  try {
    list = await (await api('meetings')).json();
  } catch (e) {
    if (e instanceof AuthError) { fatal(t('console.cannot_open'), e.message); return false; }
    $('no-meetings').textContent = t(String(e).includes('503') ? 'console.no_schedule' : 'console.meetings_failed');
    $('no-meetings').hidden = false;
    $('meetings').replaceChildren();
    return true;
  }
  const key = JSON.stringify(list);
  if (key !== meetingsKey) {
    meetingsKey = key;
    const ol = $('meetings');
    ol.replaceChildren();
    for (const m of list) {
      const li = el('li');
      li.dataset.id = m.id;
      li.classList.toggle('selected', m.id === meetingSel);
      const st = el('span', 'state', t(m.state === 'live' ? 'console.state_live' : 'console.state_test'));
      st.dataset.state = m.state;
      li.append(el('b', '', m.title), st);
      const missing = m.sites - m.joined;
      const when = m.state === 'live' ? t('console.until', { time: hhmm(m.end) }) : t('console.starts', { time: hhmm(m.start) });
      li.append(el('span', 'count', t('console.joined_of', { joined: m.joined, sites: m.sites }) +
        (missing ? ` · ${t('console.missing', { n: missing })}` : '') + ` · ${when}`));
      if (m.bad) li.append(el('span', 'count bad', t('console.bad', { n: m.bad })));
      ol.append(li);
    }
    $('no-meetings').textContent = t('console.no_meetings');
    $('no-meetings').hidden = list.length > 0;
  }
  stats.meetings = list.length;
  return true;
}

async function runMeetings() {
  while (await loadMeetings()) await sleep(5000);
}

/** A time from the API (RFC 3339, any offset) in Vietnam time, 24-hour. */
const hhmm = (iso) => (iso ? fmtTime(iso) || '–' : '–');
const dur = (s) => (s >= 3600 ? t('console.h_min', { h: Math.floor(s / 3600), m: Math.floor((s % 3600) / 60) })
  : t('console.min_s', { m: Math.floor(s / 60), s: s % 60 }));

function selectMeeting(id) {
  if (selected) closeDetail();
  meetingSel = id;
  for (const li of $('meetings').children) li.classList.toggle('selected', li.dataset.id === id);
  meetingPanel.open(id);
}

function closeMeeting() {
  meetingPanel.close();
  meetingSel = '';
  for (const li of $('meetings').children) li.classList.remove('selected');
}

async function loadMeeting(id) {
  try {
    const res = await fetch(API + 'meetings/' + encodeURIComponent(id), { cache: 'no-store', headers: { Authorization: 'Bearer ' + token } });
    if (res.status === 404) { // ended or cancelled since
      if (id === meetingSel) { $('m-summary').textContent = t('console.meeting_closed'); $('m-sites').replaceChildren(); }
      return;
    }
    if (res.status === 401 || res.status === 403) { fatal(t('console.cannot_open'), t('console.link_invalid_short')); return; }
    if (!res.ok) throw new Error(`meetings/${id}: HTTP ${res.status}`);
    const d = await res.json();
    if (id === meetingSel) renderMeeting(d);
  } catch (e) {
    stats.errors.push(String(e));
  }
}

function renderMeeting(d) {
  const t0 = performance.now();
  const live = d.state === 'live';
  $('m-title').textContent = t(live ? 'console.rollcall' : 'console.precheck', { title: d.title });
  const chair = siteName(d.chair_site);
  $('m-when').textContent = live
    ? t('console.live_when', { start: hhmm(d.start), end: hhmm(d.end), chair })
    : t('console.test_when', { window: hhmm(d.window_start), start: hhmm(d.start), chair });
  const missing = d.sites - d.joined;
  let line = t('console.joined_of', { joined: d.joined, sites: d.sites });
  if (missing) line += ` · ${t('console.missing', { n: missing })}`;
  if (d.bad) line += ` · ${t('console.bad', { n: d.bad })}`;
  $('m-summary').textContent = line;
  showRecording($('m-recording'), token, d.id, live);
  const rows = [];
  for (const s of d.site_list || []) {
    const tr = el('tr', s.joined ? 'joined' : 'missing');
    tr.dataset.id = s.id;
    const dot = el('span', 'dot');
    dot.dataset.g = s.joined && s.grade !== UNKNOWN ? s.grade : 'none';
    const c0 = el('td');
    c0.append(dot);
    const name = el('td');
    name.append(el('b', '', s.name), el('span', 'lvl', levelText(s.level) + (s.chair ? ` · ${t('console.chair_mark')}` : '')));
    rows.push(tr);
    tr.append(c0, name,
      el('td', 'st', s.joined ? t('console.site_joined', { n: s.endpoints }) : t('console.site_missing')),
      el('td', '', s.joined ? gradeText(s.grade) : '–'),
      el('td', '', s.first_joined ? hhmm(s.first_joined) : '–'),
      el('td', '', String(s.drops)),
      el('td', '', s.connected_seconds > 0 ? dur(s.connected_seconds) : '–'));
  }
  $('m-sites').replaceChildren(...rows);
  stats.meetingShown = d.id;
  stats.meetingRenderMs = performance.now() - t0;
}

// ---- filters ----
function applyLevel() {
  const lvl = $('level').value;
  $('tree').classList.toggle('by-level', !!lvl);
  for (const n of order) n.el.classList.toggle('level-match', n.level === lvl);
}

let searchTimer = 0;
function applySearch() {
  const q = fold($('search').value.trim());
  const tree = $('tree');
  tree.classList.toggle('searching', q !== '');
  for (const n of order) { n.el.classList.remove('hit', 'hit-below'); }
  if (!q) return;
  for (const n of order) {
    if (!n.search.includes(q)) continue;
    n.el.classList.add('hit');
    for (let p = nodes.get(n.parent); p; p = nodes.get(p.parent)) p.el.classList.add('hit-below');
  }
}

function wire() {
  $('tree').addEventListener('click', (e) => {
    const row = e.target.closest('.row');
    if (!row) return;
    const n = nodes.get(row.dataset.id);
    if (e.target.classList.contains('tog')) n.el.classList.toggle('collapsed');
    else select(n.id);
  });
  for (const id of ['problems', 'alerts']) {
    $(id).addEventListener('click', (e) => {
      const li = e.target.closest('li');
      if (li && li.dataset.id) select(li.dataset.id);
    });
  }
  $('only-bad').addEventListener('change', (e) => $('tree').classList.toggle('only-bad', e.target.checked));
  $('level').addEventListener('change', applyLevel);
  $('search').addEventListener('input', () => { clearTimeout(searchTimer); searchTimer = setTimeout(applySearch, 150); });
  $('d-close').addEventListener('click', closeDetail);
  $('meetings').addEventListener('click', (e) => {
    const li = e.target.closest('li');
    if (li && li.dataset.id) selectMeeting(li.dataset.id);
  });
  $('m-sites').addEventListener('click', (e) => {
    const tr = e.target.closest('tr');
    if (tr && tr.dataset.id && nodes.has(tr.dataset.id)) select(tr.dataset.id);
  });
  $('m-close').addEventListener('click', closeMeeting);
  $('expand-all').addEventListener('click', () => { for (const n of order) n.el.classList.remove('collapsed'); });
  $('collapse-all').addEventListener('click', () => {
    for (const n of order) n.el.classList.toggle('collapsed', n.depth >= 1 && n.children.length > 0);
  });
}

/** The clock in the header: Vietnam time, whatever the browser's time zone. */
function tickClock() {
  $('clock').textContent = fmtTime(Date.now(), { seconds: true });
}

async function main() {
  translatePage();
  setStatus('connecting');
  tickClock();
  setInterval(tickClock, 1000);
  if (!token) {
    fatal(t('console.no_token'), t('console.no_token_detail'));
    return;
  }
  wire();
  try {
    buildTree(await (await api('tree')).json());
  } catch (e) {
    if (e instanceof AuthError) fatal(t('console.cannot_open'), e.message);
    else fatal(t('console.tree_failed'), String(e));
    return;
  }
  const want = decodeURIComponent(location.hash.slice(1));
  runStream();
  runMeetings();
  if (want && nodes.has(want)) select(want);
}

stats.select = select;
stats.selectMeeting = selectMeeting;
main();
