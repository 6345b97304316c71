// autoplay.js — the browsers' autoplay rule, shared by the join page and the kiosk: a
// video with sound may need a user gesture before it plays.

/**
 * Starts el; if the browser blocks its sound until a gesture, plays it muted instead and
 * calls onBlocked (the page then offers a button or a hint to turn the sound on).
 */
export function playOrMute(el, onBlocked) {
  const p = el.play();
  if (!p) return;
  p.catch((err) => {
    if (err.name !== 'NotAllowedError' || el.muted) return;
    el.muted = true;
    el.play().catch(() => {});
    onBlocked();
  });
}
