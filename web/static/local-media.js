// local-media.js — this endpoint's camera and microphone on the join page: opening them
// (falling back to one, then none, and saying why), the device lists and the preview.

import { t } from './i18n.js';
import { $, page, recordError } from './join-page.js';

const VIDEO_CONSTRAINTS = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
const AUDIO_CONSTRAINTS = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };


/**
 * Opens microphone and camera. Falls back to one of them, then to none, and says why.
 * Returns a MediaStream (possibly with no tracks) or null.
 */
export async function openLocalMedia(micId, camId) {
  const md = navigator.mediaDevices;
  if (!md || !md.getUserMedia) {
    warnMedia(t('media.no_browser_support'));
    return null;
  }
  const audio = micId ? { ...AUDIO_CONSTRAINTS, deviceId: { exact: micId } } : AUDIO_CONSTRAINTS;
  const video = camId ? { ...VIDEO_CONSTRAINTS, deviceId: { exact: camId } } : VIDEO_CONSTRAINTS;
  const attempts = [
    { audio, video },
    { audio, video: false },
    { audio: false, video },
  ];
  let firstErr = null;
  for (const c of attempts) {
    try {
      const s = await md.getUserMedia(c);
      if (firstErr) {
        warnMedia(t(c.video ? 'media.no_mic' : 'media.no_cam', { why: mediaErrorText(firstErr) }));
      } else {
        warnMedia('');
      }
      return s;
    } catch (err) {
      firstErr = firstErr || err;
    }
  }
  warnMedia(t('media.none', { why: mediaErrorText(firstErr) }));
  return null;
}

export function mediaErrorText(err) {
  if (!err) return t('media.err_unknown');
  switch (err.name) {
    case 'NotAllowedError':
      return t('media.err_denied');
    case 'NotFoundError':
      return t('media.err_not_found');
    case 'NotReadableError':
      return t('media.err_busy');
    case 'OverconstrainedError':
      return t('media.err_unavailable');
    default:
      return err.message || err.name;
  }
}

function warnMedia(text) {
  const w = $('media-warning');
  w.textContent = text;
  w.hidden = !text;
  if (text) recordError('media', text);
}

export function stopLocalMedia() {
  page.local?.getTracks().forEach((t) => t.stop());
}

export function applyLocalMute() {
  for (const t of page.local?.getAudioTracks() || []) t.enabled = !page.micMuted;
  for (const t of page.local?.getVideoTracks() || []) t.enabled = !page.camMuted;
}

export async function fillDeviceLists() {
  if (!navigator.mediaDevices?.enumerateDevices) return;
  let devices = [];
  try {
    devices = await navigator.mediaDevices.enumerateDevices();
  } catch {
    return;
  }
  const fill = (select, kind, current) => {
    select.replaceChildren();
    let n = 0;
    for (const d of devices) {
      if (d.kind !== kind) continue;
      n++;
      const o = document.createElement('option');
      o.value = d.deviceId;
      o.textContent = d.label || t(kind === 'audioinput' ? 'media.device_mic' : 'media.device_cam', { n });
      if (d.deviceId === current) o.selected = true;
      select.append(o);
    }
    select.disabled = n === 0;
  };
  const mic = page.local?.getAudioTracks()[0]?.getSettings().deviceId;
  const cam = page.local?.getVideoTracks()[0]?.getSettings().deviceId;
  fill($('mic-select'), 'audioinput', mic);
  fill($('cam-select'), 'videoinput', cam);
}

export async function reopenFromSelects() {
  stopLocalMedia();
  page.local = await openLocalMedia($('mic-select').value, $('cam-select').value);
  applyLocalMute();
  updatePreview();
}

export function updatePreview() {
  const v = $('preview-video');
  v.srcObject = page.local;
  const hasVideo = !!page.local?.getVideoTracks().length;
  $('preview-off').hidden = hasVideo && !page.camMuted;
  setToggle($('preview-mic'), !page.micMuted, 'i-mic', 'i-mic-off');
  setToggle($('preview-cam'), !page.camMuted, 'i-cam', 'i-cam-off');
}

/** Marks a toggle button on (true) or off and swaps its icon. */
export function setToggle(button, on, iconOn, iconOff) {
  button.setAttribute('aria-pressed', String(on));
  button.classList.toggle('off', !on);
  button.querySelector('use').setAttribute('href', '#' + (on ? iconOn : iconOff));
}
