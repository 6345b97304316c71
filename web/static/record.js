// record.js — a meeting's record page: /record/<meeting>?token=<API token> (an admin, or
// the meeting's chair). Opened from the console, it uses the console's token kept in this
// tab. The token is moved from the URL to this tab's sessionStorage at once and the URL
// cleaned; the API gets it in an Authorization header.
//
// It shows whether the meeting is being recorded with a start/stop button, and lists the
// meeting's recordings (polled every 3 s): for each, its files (the composite video, one
// file per site, the roll call, the timeline, the manifest) to play or download, and a
// button that renders the composite video with its progress. Files are fetched with the
// header and handed to the player or the download as blob: URLs.
//
// Test hook: window.cauRecord = {ready, recordings, error}.

import { fmtDateTime, fmtTime, t, translatePage } from './i18n.js';
import { takeToken } from './page-token.js';
import { compose, errorKey, fetchFile, listRecordings, record, recordingStatus } from './recording-api.js';

const TOKEN_KEY = 'cau.record.token';
const CONSOLE_TOKEN_KEY = 'cau.console.token';
const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};

const state = { ready: false, recordings: [], error: '' };
window.cauRecord = state;

const token = takeToken(TOKEN_KEY, CONSOLE_TOKEN_KEY);
const meeting = decodeURIComponent(location.pathname.split('/').pop() || '');
let current = { active: false };
let blobURL = '';

function fatal(text) {
  $('fatal-title').textContent = t('record.cannot_open');
  $('fatal-text').textContent = text;
  $('fatal').hidden = false;
  $('record-main').hidden = true;
}

function fail(e) {
  state.error = String(e);
  if (e?.status === 401) fatal(t('record.link_invalid'));
  else $('rec-error').textContent = t(errorKey(e));
}

async function refresh() {
  try {
    current = await recordingStatus(token, meeting);
    $('rec-state').textContent = current.active ? t('recording.on_since', { time: fmtTime(current.since) }) : t('recording.off');
    $('rec-state').classList.toggle('rec-on', current.active);
    $('rec-toggle').textContent = t(current.active ? 'recording.stop' : 'recording.start');
    state.recordings = await listRecordings(token, meeting);
    render(state.recordings);
    state.ready = true;
  } catch (e) {
    fail(e);
  }
}

const KIND_ORDER = ['composite', 'media', 'rollcall', 'timeline', 'manifest'];
const sizeText = (b) => (b >= 1 << 20 ? `${(b / (1 << 20)).toFixed(1)} MB` : `${Math.max(1, Math.round(b / 1024))} kB`);
const secs = (ms) => `${Math.round(ms / 1000)} s`;

function render(list) {
  $('no-recordings').hidden = list.length > 0;
  const blocks = [];
  for (const r of [...list].reverse()) { // newest first
    const box = el('article', 'recording');
    box.dataset.id = r.id;
    const head = el('header');
    const when = fmtDateTime(r.started) + (r.stopped ? ` – ${fmtTime(r.stopped)}` : '');
    head.append(el('b', '', when), el('span', 'rec-meta', t(r.state === 'stopped' ? 'record.state_stopped' : 'record.state_recording')));
    if (r.state === 'stopped' && r.compose !== 'running') {
      const b = el('button', 'compose', t(r.compose === 'done' ? 'record.compose_again' : 'record.compose'));
      b.type = 'button';
      b.addEventListener('click', () => compose(token, meeting, r.id).then(refresh, fail));
      head.append(b);
    }
    if (r.compose === 'running') head.append(el('span', 'rec-meta', t('record.composing', { pct: Math.round(100 * (r.compose_progress || 0)) })));
    if (r.compose === 'failed') head.append(el('span', 'rec-error', t('record.compose_failed')));
    const table = el('table', 'rec-files');
    for (const f of [...r.files].sort((a, b) => KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind))) {
      const tr = el('tr');
      tr.dataset.name = f.name;
      const actions = el('td');
      if (f.kind === 'media' || f.kind === 'composite') actions.append(button('record.play', () => play(r.id, f.name)));
      actions.append(button('record.download', () => download(r.id, f.name)));
      tr.append(el('td', '', t(`record.kind_${f.kind}`)), el('td', '', f.site || ''),
        el('td', '', f.kind === 'media' ? secs(f.duration_ms) : ''), el('td', '', sizeText(f.bytes)), el('td', 'name', f.name), actions);
      table.append(tr);
    }
    box.append(head, table);
    blocks.push(box);
  }
  $('recordings').replaceChildren(...blocks);
}

function button(key, fn) {
  const b = el('button', '', t(key));
  b.type = 'button';
  b.addEventListener('click', fn);
  return b;
}

async function blobOf(rec, name) {
  if (blobURL) URL.revokeObjectURL(blobURL);
  blobURL = URL.createObjectURL(await fetchFile(token, meeting, rec, name));
  return blobURL;
}

async function play(rec, name) {
  try {
    $('player').src = await blobOf(rec, name);
    $('player-title').textContent = name;
    $('player-box').hidden = false;
  } catch (e) {
    fail(e);
  }
}

async function download(rec, name) {
  try {
    const a = el('a');
    a.href = await blobOf(rec, name);
    a.download = name;
    a.click();
  } catch (e) {
    fail(e);
  }
}

translatePage();
$('meeting-id').textContent = meeting;
document.title = t('record.page_title', { meeting });
if (!token) {
  fatal(t('record.no_token'));
} else {
  $('rec-toggle').addEventListener('click', async () => {
    $('rec-toggle').disabled = true;
    $('rec-error').textContent = '';
    try {
      await record(token, meeting, current.active ? 'stop' : 'start');
    } catch (e) {
      fail(e);
    }
    $('rec-toggle').disabled = false;
    refresh();
  });
  refresh();
  setInterval(refresh, 3000);
}
