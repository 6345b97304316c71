// controls.js — the join page's meeting controls: microphone, camera and screen buttons,
// the self-view, and the hint that says why the floor keeps this site off the air.

import { FloorMode, Source, floorQueuePosition } from './cau-client.js';
import { mayRequest } from './floor-roles.js';
import { $, page, showBanner } from './join-page.js';
import { applyLocalMute, mediaErrorText, setToggle, updatePreview } from './local-media.js';


/** Why the floor keeps this site's microphone or camera off the air, or ''. */
function floorHint(allowed) {
  const c = page.client;
  const f = c?.floor;
  if (!f || !c.self || (allowed.mic && allowed.camera)) return '';
  if (f.ended) return 'The meeting has ended. Cuộc họp đã kết thúc.';
  if (allowed.mic) return 'The chair gave you the microphone only. Chủ tọa chỉ cấp micrô.';
  if (allowed.camera) return 'The chair gave you the camera only. Chủ tọa chỉ cấp camera.';
  const asked = floorQueuePosition(f, c.self.site) > 0;
  if (asked) {
    return 'Your microphone and camera go on air when the chair gives you the floor. ' +
      'Đã xin phát biểu, chờ chủ tọa cho phép.';
  }
  if (mayRequest()) {
    return f.mode === FloorMode.TRAINING
      ? 'Training mode: press “Request the floor” to speak. Chế độ tập huấn: bấm “Xin phát biểu” để phát biểu.'
      : 'Directed mode: the chair gives microphone and camera. Chế độ chỉ đạo: chủ tọa cấp micrô và camera.';
  }
  return 'Only sites given the floor are on air. Chỉ điểm cầu được cấp quyền mới phát.';
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
  $('mic-button').title = !allowed.mic ? `Microphone off the air: ${hint}` : page.micMuted ? 'Unmute microphone' : 'Mute microphone';
  $('cam-button').title = !allowed.camera ? `Camera off the air: ${hint}` : page.camMuted ? 'Turn camera on' : 'Turn camera off';
  // The content channel follows the camera; a running share can always be stopped.
  $('screen-button').disabled = !navigator.mediaDevices?.getDisplayMedia || (!allowed.camera && !sharing);
  $('screen-button').title = sharing ? 'Stop sharing' : allowed.camera ? 'Share screen' : `Sharing off the air: ${hint}`;
  $('floor-hint').textContent = hint;
  $('floor-hint').hidden = !hint;
  const self = $('self-view');
  self.classList.toggle('mic-muted', page.micMuted || !hasMic);
  self.classList.toggle('no-video', page.camMuted || !hasCam);
  self.classList.toggle('sharing', sharing);
  const air = $('self-air');
  air.textContent = !allowed.mic && !allowed.camera ? 'Not on air · Không phát'
    : !allowed.mic ? 'Camera only · Chỉ camera' : !allowed.camera ? 'Microphone only · Chỉ micrô' : '';
  air.hidden = !joined || !air.textContent;
  self.classList.toggle('off-air', joined && !allowed.mic && !allowed.camera);
}

export function toggleMic() {
  const want = !page.micMuted;
  // The client refuses to unmute while the floor keeps the microphone off the air.
  if (page.client && !page.client.setMuted(Source.MICROPHONE, want)) {
    refreshControls();
    return;
  }
  page.micMuted = want;
  applyLocalMute();
  refreshControls();
  updatePreview();
}

export function toggleCam() {
  const want = !page.camMuted;
  if (page.client && !page.client.setMuted(Source.CAMERA, want)) {
    refreshControls();
    return;
  }
  page.camMuted = want;
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
    if (err.name !== 'NotAllowedError') showBanner(`Screen sharing failed: ${mediaErrorText(err)}`, 'warn', 6000);
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
    showBanner(`Screen sharing failed: ${err.message}`, 'warn', 6000);
  }
  refreshControls();
}

