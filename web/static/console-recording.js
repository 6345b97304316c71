// console-recording.js — the recording control in the console's meeting detail: whether
// the meeting is being recorded, a start/stop button (an admin's token may; a
// technician's is refused by the API, and the line says so) and the link to the meeting's
// record page (/record/<meeting>, which reads the console's token from this tab).

import { el } from './console-detail.js';
import { fmtTime, t } from './i18n.js';
import { errorKey, record, recordingStatus } from './recording-api.js';

let busy = false;

/** Fills box (the meeting detail's recording line) for meeting; called on each refresh. */
export async function showRecording(box, token, meeting, live) {
  if (busy) return;
  let st;
  try {
    st = await recordingStatus(token, meeting);
  } catch (e) {
    box.replaceChildren(el('span', 'rec-state', t(errorKey(e))));
    return;
  }
  const state = el('span', st.active ? 'rec-state rec-on' : 'rec-state',
    st.active ? t('recording.on_since', { time: fmtTime(st.since) }) : t('recording.off'));
  const button = el('button', 'rec-button', t(st.active ? 'recording.stop' : 'recording.start'));
  button.type = 'button';
  button.disabled = !st.active && !live;
  button.addEventListener('click', async () => {
    busy = true;
    button.disabled = true;
    try {
      await record(token, meeting, st.active ? 'stop' : 'start');
      busy = false;
      await showRecording(box, token, meeting, live);
    } catch (e) {
      busy = false;
      state.textContent = t(errorKey(e));
      button.disabled = false;
    }
  });
  const link = el('a', 'rec-link', t('recording.record_page'));
  link.href = '/record/' + encodeURIComponent(meeting);
  box.replaceChildren(state, button, link);
}
