// controls.js — the join page's meeting controls: microphone, camera and screen buttons,
// the self-view, and the hint that says why the floor keeps this site off the air.

import { FloorMode, Source, floorQueuePosition } from './cau-client.js';
import { mayRequest } from './floor-roles.js';
import { t } from './i18n.js';
import { $, page, showBanner } from './join-page.js';
import { applyLocalMute, mediaErrorText, setToggle, updatePreview } from './local-media.js';


/** Why the floor keeps this site's microphone or camera off the air, or ''. */
function floorHint(allowed) {
  const c = page.client;
  const f = c?.floor;
  if (!f || !c.self || (allowed.mic && allowed.camera)) return '';
  if (f.ended) return t('hint.ended');
  if (allowed.mic) return t('hint.mic_only');
  if (allowed.camera) return t('hint.camera_only');
  const asked = floorQueuePosition(f, c.self.site) > 0;
  if (asked) return t('hint.asked');
  if (mayRequest()) return t(f.mode === FloorMode.TRAINING ? 'hint.training' : 'hint.directed');
  return t('hint.off_air');
}

export function refreshControls() {
  const c = page.client;
  const joined = !!c?.self;
  const allowed = joined ? c.floorAllows() : { mic: true, camera: true };
  setToggle($('mic-button'), !page.micMuted, 'i-mic', 'i-mic-off');
  setToggle($('cam-button'), !page.camMuted, 'i-cam', 'i-cam-off');
  const sharing = !!c?.sharingScreen;
  $('screen-button').classList.toggle('active', sharing);
  $('screen-button').setAttribute('aria-pressed', String(sharing));
  const hasMic = !!page.local?.getAudioTracks().length;
  const hasCam = !!page.local?.getVideoTracks().length;
  const hint = floorHint(allowed);
  $('mic-button').disabled = !hasMic || !allowed.mic;
  $('cam-button').disabled = !hasCam || !allowed.camera;
  $('mic-button').title = !allowed.mic ? t('controls.mic_off_air', { hint })
    : t(page.micMuted ? 'controls.mic_unmute' : 'controls.mic_mute');
  $('cam-button').title = !allowed.camera ? t('controls.cam_off_air', { hint })
    : t(page.camMuted ? 'controls.cam_on' : 'controls.cam_off');
  // The content channel follows the camera; a running share can always be stopped.
  $('screen-button').disabled = !navigator.mediaDevices?.getDisplayMedia || (!allowed.camera && !sharing);
  $('screen-button').title = sharing ? t('controls.share_stop')
    : allowed.camera ? t('controls.share_start') : t('controls.share_off_air', { hint });
  $('floor-hint').textContent = hint;
  $('floor-hint').hidden = !hint;
  const self = $('self-view');
  self.classList.toggle('mic-muted', page.micMuted || !hasMic);
  self.classList.toggle('no-video', page.camMuted || !hasCam);
  self.classList.toggle('sharing', sharing);
  const air = $('self-air');
  air.textContent = !allowed.mic && !allowed.camera ? t('air.none')
    : !allowed.mic ? t('air.camera_only') : !allowed.camera ? t('air.mic_only') : '';
  air.hidden = !joined || !air.textContent;
  self.classList.toggle('off-air', joined && !allowed.mic && !allowed.camera);
}

export function toggleMic() {
  toggleMute(Source.MICROPHONE, 'micMuted');
}

export function toggleCam() {
  toggleMute(Source.CAMERA, 'camMuted');
}

/** Flips the page's mute flag for source (page[flag]) and the client's sending. */
function toggleMute(source, flag) {
  const want = !page[flag];
  // The client refuses to unmute while the floor keeps the source off the air.
  if (page.client && !page.client.setMuted(source, want)) {
    refreshControls();
    return;
  }
  page[flag] = want;
  applyLocalMute();
  refreshControls();
  updatePreview();
}

export async function toggleScreen() {
  const c = page.client;
  if (!c) return;
  if (c.sharingScreen) {
    await c.stopScreenShare();
    refreshControls();
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
  } catch (err) {
    if (err.name !== 'NotAllowedError') showBanner(t('share.failed', { why: mediaErrorText(err) }), 'warn', 6000);
    return;
  }
  const track = stream.getVideoTracks()[0];
  track?.addEventListener('ended', () => {
    // The browser's own "Stop sharing" button.
    if (c.sharingScreen && c.local.get(Source.SCREEN)?.track === track) c.stopScreenShare().then(refreshControls);
  });
  try {
    await c.startScreenShare(stream);
  } catch (err) {
    stream.getTracks().forEach((t) => t.stop());
    showBanner(t('share.failed', { why: err.message }), 'warn', 6000);
  }
  refreshControls();
}

