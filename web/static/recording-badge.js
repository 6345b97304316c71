// recording-badge.js — the "Đang ghi hình" (recording) indicator that every meeting page
// (join page, meeting-room kiosk) shows while the meeting is recorded. Signaling sends a
// `recording` message right after `joined` when the meeting is being recorded, and to
// everyone when recording starts or stops (docs/recording.md); a (re)join clears the
// indicator until then, so a recording stopped while the page was away does not linger.
//
// Test hook: window.cauRecording = {active, since, by}.

import { fmtTime, t } from './i18n.js';

/** Shows the indicator for client's meeting in a badge at the top of the page. */
export function watchRecording(client) {
  const badge = document.getElementById('recording-badge') || makeBadge(); // a kiosk makes a client per meeting
  const text = badge.lastChild;
  window.cauRecording = { active: false, since: '', by: '' };

  const show = (r) => {
    const active = !!r?.active;
    window.cauRecording = { active, since: r?.since || '', by: r?.by || '' };
    badge.hidden = !active;
    if (!active) return;
    text.textContent = r.since ? t('recording.on_since', { time: fmtTime(new Date(r.since)) }) : t('recording.on');
    badge.title = t('recording.on_title');
  };
  client.addEventListener('joined', () => show(null));
  client.addEventListener('recording', (e) => show(e.detail));
}

function makeBadge() {
  const badge = document.createElement('div');
  badge.id = 'recording-badge';
  badge.className = 'recording-badge';
  badge.setAttribute('role', 'status');
  badge.setAttribute('aria-live', 'polite');
  badge.hidden = true;
  const dot = document.createElement('span');
  dot.className = 'recording-dot';
  badge.append(dot, document.createElement('span'));
  document.body.append(badge);
  return badge;
}
