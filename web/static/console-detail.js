// console-detail.js — the console's site detail: the site's grade and reasons, each
// connected endpoint's figures with ten-minute sparklines, and the relay path to the top.
// Rendering only: console.js fetches the data and calls renderDetail. The reasons a grade
// gives come from the server as they are.

import { fmtTime, t } from './i18n.js';

const UNKNOWN = 'unknown'; // the monitor's grade and site for what it cannot place

/** The element with this id. */
export const $ = (id) => document.getElementById(id);
/** A new element with a class and a text (both optional). */
export const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};

const KNOWN = (prefix, list) => (v) => (list.includes(v) ? t(`${prefix}.${v}`) : v);
/** A grade's name in the page's language (unknown: being measured). */
export const gradeText = KNOWN('grade', ['good', 'fair', 'poor', 'lost', 'none', 'unknown']);
/** A level's name in the page's language. */
export const levelText = KNOWN('level', ['central', 'province', 'district', 'commune', 'unknown']);
const roleText = KNOWN('role', ['admin', 'technician', 'chair', 'participant', 'room', 'bridge']);

const fmtMs = (v) => (v > 0 ? Math.round(v) + ' ms' : '–');
/** A bit rate for people: 1.25 Mb/s, 640 kb/s. */
export const fmtRate = (v) => (v >= 1e6 ? (v / 1e6).toFixed(2) + ' Mb/s' : Math.round(v / 1e3) + ' kb/s');

/** What a link receives (issue 10): its bandwidth estimate and its video streams by layer
 * ({low, middle, top, paused}); '' when it has neither. */
export function adaptText(estimate, layers) {
  const parts = [];
  if (estimate > 0) parts.push(t('detail.estimate', { rate: fmtRate(estimate) }));
  if (layers && layers.low + layers.middle + layers.top + layers.paused > 0) parts.push(t('detail.layers', layers));
  return parts.join(' · ');
}

/** Shows a site's detail (GET /api/v1/monitor/sites/{id}); siteName names a site id. */
export function renderDetail(d, siteName) {
  const s = d.site;
  $('d-dot').dataset.g = s.grade === UNKNOWN ? 'none' : s.grade;
  $('d-name').textContent = s.name || s.id;
  $('d-path').textContent = (d.path || []).slice().reverse().map((p) => p.name).join(' › ') || s.id;
  let line = t('detail.grade_line', { grade: gradeText(s.grade), endpoints: t('console.endpoints', { n: s.endpoints }),
    level: levelText(s.level) });
  if (s.path_grade !== UNKNOWN) line += ` · ${t('detail.relay_grade', { grade: gradeText(s.path_grade) })}`;
  if (s.mos > 0) line += ` · MOS ${s.mos.toFixed(1)}`;
  const adapt = adaptText(s.estimate_bps, s.layers);
  if (adapt) line += ` · ${adapt}`;
  $('d-grade').textContent = line;
  const reasons = $('d-reasons');
  reasons.replaceChildren(...(s.reasons || []).map((r) => el('li', '', r)));
  $('d-affected').hidden = !s.affected_by;
  $('d-affected').textContent = s.affected_by ? t('detail.affected_by', { hop: s.affected_by }) : '';
  renderChain(d.chain || [], siteName);

  const box = $('d-endpoints');
  box.replaceChildren();
  for (const ep of d.endpoints || []) box.append(renderEndpoint(ep));
  $('d-no-endpoints').hidden = (d.endpoints || []).length > 0;

  const hops = $('d-path-hops');
  hops.replaceChildren();
  for (const h of d.relay_path || []) {
    const li = el('li');
    li.append(el('b', '', `${h.from} (${siteName(h.from_site)}) → ${h.to} (${siteName(h.to_site)})`));
    for (const [label, r] of [[t('detail.up'), h.up], [t('detail.down'), h.down]]) {
      const row = el('span', 'dir');
      const dot = el('span', 'dot');
      dot.dataset.g = r ? (r.grade === UNKNOWN ? 'none' : r.grade) : 'none';
      row.append(dot, document.createTextNode(' ' + (r
        ? t('detail.hop', { dir: label, grade: gradeText(r.grade), rtt: fmtMs(r.rtt_ms), loss: r.loss_pct.toFixed(1),
          jitter: fmtMs(r.jitter_ms), rate: fmtRate(r.bitrate_bps), streams: r.streams })
        : t('detail.hop_none', { dir: label }))));
      const adapt = r ? adaptText(r.estimate_bps, r.layers) : '';
      if (adapt) row.append(el('span', 'adapt', ` · ${adapt}`));
      li.append(row);
    }
    hops.append(li);
  }
  $('d-no-path').hidden = (d.relay_path || []).length > 0;
}

const GRADE_RANK = { good: 0, fair: 1, poor: 2, lost: 3 };

/** The hops from the chair's site down to this one, each with its own figures; the
 *  worst hop's row is marked (class weakest) so it stands out. */
function renderChain(chain, siteName) {
  const table = $('d-chain');
  table.replaceChildren();
  $('d-no-chain').hidden = chain.length > 0;
  if (!chain.length) return;
  const head = el('tr');
  for (const h of t('detail.chain_head').split('|')) head.append(el('th', '', h));
  table.append(head);
  let worst = -1;
  for (const h of chain) worst = Math.max(worst, GRADE_RANK[h.grade] ?? -1);
  for (const h of chain) {
    const tr = el('tr');
    // Which hop the row is, for scripts and tests (the cells are translated).
    tr.dataset.hop = `${h.site} ${h.kind} ${h.direction}`;
    if (worst >= 1 && (GRADE_RANK[h.grade] ?? -1) === worst) {
      tr.className = 'weakest';
      tr.title = t('detail.weakest');
    }
    const dot = el('span', 'dot');
    dot.dataset.g = h.grade === UNKNOWN ? 'none' : h.grade;
    const name = el('td');
    name.append(dot, document.createTextNode(' ' + t(`detail.kind.${h.kind}`, { site: siteName(h.site) })));
    tr.append(name, el('td', '', h.direction === 'up' ? t('detail.up') : t('detail.down')),
      el('td', '', h.loss_pct.toFixed(1) + '%'),
      el('td', '', h.upstream_loss_pct ? h.upstream_loss_pct.toFixed(1) + '%' : '–'),
      el('td', '', fmtMs(h.rtt_ms)), el('td', '', fmtMs(h.jitter_ms)), el('td', '', fmtRate(h.bitrate_bps)),
      el('td', '', gradeText(h.grade)));
    table.append(tr);
  }
}

const sipState = KNOWN('sip_state', ['connecting', 'active', 'held', 'ended']);
const refusedText = KNOWN('sip_refused', ['codec', 'h264_mode0', 'srtp', 'transport']);
const codecName = (c) => (!c || c === 'none' ? t('detail.sip_none') : c.toUpperCase());

/**
 * A room codec's SIP call through the gateway: transport and encryption, codecs, state and
 * the video layer its H.264 parameters allow (its RTT, jitter and loss are the figures
 * below, measured on the room's own RTP).
 */
export function sipText(s) {
  const layer = s.video_layer >= 0 ? t(`detail.layer_${Math.max(0, Math.min(2, s.video_layer))}`) : '–';
  const text = t('detail.sip', { transport: (s.transport || '?').toUpperCase(),
    encryption: s.encryption === 'srtp' ? 'SRTP' : t('detail.sip_plain'), audio: codecName(s.audio_codec),
    video: codecName(s.video_codec), state: sipState(s.state), layer });
  // A room whose video could not be matched joined audio-only: say why, for the technician.
  return s.video_refused ? `${text} · ${t('detail.sip_audio_only', { why: refusedText(s.video_refused) })}` : text;
}

/** One endpoint's card: grade, role, figures now and over the last ten minutes. */
function renderEndpoint(ep) {
  const a = $('endpoint-template').content.firstElementChild.cloneNode(true);
  a.querySelector('.dot').dataset.g = ep.grade === UNKNOWN ? 'none' : ep.grade;
  a.querySelector('.ep-name').textContent = ep.name || ep.id;
  let meta = t('detail.meta', { role: roleText(ep.role), bridge: ep.bridge || '–', meeting: ep.meeting,
    joined: fmtTime(ep.joined) || '–' });
  if (ep.claimed_site) meta += ` · ${t('detail.claims', { site: ep.claimed_site })}`;
  a.querySelector('.ep-meta').textContent = meta;
  a.querySelector('.ep-reasons').textContent = (ep.now.reasons || []).join('; ');
  a.querySelector('.ep-upstream').textContent = ep.upstream
    ? t('detail.upstream', { up: ep.upstream }) : '';
  // Each simulcast stream it receives, at the layer the bridge forwards it.
  const layers = (ep.layers || []).map((l) => t('detail.stream_layer', { stream: l.key,
    layer: l.paused ? t('detail.layer_paused') : t(`detail.layer_${Math.max(0, Math.min(2, l.layer))}`) }));
  const adapt = [ep.estimate_bps > 0 ? t('detail.estimate', { rate: fmtRate(ep.estimate_bps) }) : '', ...layers];
  a.querySelector('.ep-adapt').textContent = adapt.filter(Boolean).join(' · ');
  a.querySelector('.ep-sip').textContent = ep.sip ? sipText(ep.sip) : '';
  const up = ep.up;
  const down = ep.down;
  const both = (f, unit, digits) => `↑${up.streams ? f(up).toFixed(digits) : '–'} ↓${down.streams ? f(down).toFixed(digits) : '–'} ${unit}`;
  const h = ep.history.series;
  const rows = {
    rtt: [fmtMs(Math.max(up.rtt_ms, down.rtt_ms)), [h.rtt_ms], 800],
    jitter: [both((f) => f.jitter_ms, 'ms', 0), [h.jitter_up_ms, h.jitter_down_ms], 50],
    loss: [both((f) => f.loss_pct, '%', 1), [h.loss_up_pct, h.loss_down_pct], 5],
    bitrate: [`↑${fmtRate(up.bitrate_bps)} ↓${fmtRate(down.bitrate_bps)}`, [h.bitrate_up_bps, h.bitrate_down_bps], 0],
  };
  for (const [k, [text, series, limit]] of Object.entries(rows)) {
    const tr = a.querySelector(`tr[data-k="${k}"]`);
    tr.querySelector('.v').textContent = text;
    tr.querySelector('.s').append(sparkline(series, limit, ep.history.grades.length));
  }
  return a;
}

const SVG = 'http://www.w3.org/2000/svg';

// sparkline draws up to two series (up solid, down dashed) over the history's points,
// scaled to their maximum (at least the poor limit, drawn as a dotted line). Negative
// values are gaps.
function sparkline(series, limit, points) {
  const W = 240;
  const H = 26;
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', 'spark');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  let top = limit || 0;
  for (const s of series) for (const v of s || []) top = Math.max(top, v);
  if (top <= 0) top = 1;
  const n = Math.max(points, 2);
  const x = (i) => (W * i) / (n - 1);
  const y = (v) => H - 1 - ((H - 2) * v) / top;
  series.forEach((s, k) => {
    let pts = [];
    const flush = () => {
      if (pts.length) {
        const pl = document.createElementNS(SVG, 'polyline');
        pl.setAttribute('class', k === 0 ? 'up' : 'down');
        if (pts.length === 1) { // a lone point: a short dash, so that it shows
          const [px, py] = pts[0].split(',').map(Number);
          pts = [`${Math.max(px - 2, 0)},${py}`, `${px + 2},${py}`];
        }
        pl.setAttribute('points', pts.join(' '));
        svg.append(pl);
      }
      pts = [];
    };
    (s || []).forEach((v, i) => {
      if (v < 0) flush(); else pts.push(`${x(i).toFixed(1)},${y(v).toFixed(1)}`);
    });
    flush();
  });
  if (limit) {
    const l = document.createElementNS(SVG, 'line');
    l.setAttribute('class', 'limit');
    l.setAttribute('x1', 0); l.setAttribute('x2', W);
    l.setAttribute('y1', y(limit)); l.setAttribute('y2', y(limit));
    svg.append(l);
  }
  return svg;
}
