// speaker-marks.js — marks the tiles with what the bridges chose (the `speaker` message,
// docs/protocol/speaker.md): the dominant speaker's tile is highlighted ("Đang nói"), a
// site whose camera the bridge holds back (outside Last-N) is marked as such, pinned sites
// carry a pin, and a line under the grid names the speaker and counts the Last-N set.
// The join page and the room kiosk share it; the join page also gets a pin button per
// tile (the chair's pin holds for everyone, an official's for its own screen only).

import { t } from './i18n.js';

/**
 * Applies the state to the tiles.
 * @param {object} o
 * @param {Map<string, HTMLElement>} o.tiles       participant id → camera tile
 * @param {Map<string, object>}      o.participants participant id → participant
 * @param {object|null}              o.state       the last `speaker` message's data
 * @param {HTMLElement|null}         o.status      the summary line, if the page has one
 * @param {object|null}              [o.self]      this endpoint ({id, name}), highlighted
 *                                                 in selfEl while it is the speaker
 * @param {HTMLElement|null}         [o.selfEl]    the self view
 * @param {(site: string, on: boolean) => void} [o.onPin] adds a pin button per tile
 */
export function markSpeaker({ tiles, participants, state, status, self = null, selfEl = null, onPin }) {
  const lastN = new Set(state?.last_n || []);
  const pinned = new Set([...(state?.pinned || []), ...(state?.mine || [])]);
  for (const [id, tile] of tiles) {
    const p = participants.get(id);
    const dominant = !!state && state.dominant === id;
    tile.classList.toggle('dominant', dominant);
    // Held back: the bridge told us its choice and this participant, who sends a camera,
    // is not in it.
    const held = !!state && !!p?.streams?.camera && !(p.muted || []).includes('camera') && !lastN.has(id);
    tile.classList.toggle('lastn-out', held);
    tile.classList.toggle('pinned', !!p && pinned.has(p.site));
    let badge = tile.querySelector('.speaker-badge');
    if (!badge) {
      badge = document.createElement('span');
      badge.className = 'speaker-badge';
      tile.append(badge);
    }
    const text = dominant ? t('tile.dominant') : held ? t('tile.held_back') : '';
    if (badge.textContent !== text) badge.textContent = text;
    badge.hidden = text === '';
    if (onPin && p?.site) pinButton(tile, p.site, pinned.has(p.site), onPin);
  }
  const selfSpeaks = !!self && !!state && state.dominant === self.id;
  selfEl?.classList.toggle('dominant', selfSpeaks);
  if (!status) return;
  const d = selfSpeaks ? self : state?.dominant ? participants.get(state.dominant) : null;
  const parts = [];
  if (d) parts.push(t('speaker.now', { name: d.name || d.site || d.id }));
  if (state) parts.push(t('speaker.last_n', { n: String(lastN.size) }));
  if (pinned.size > 0) parts.push(t('speaker.pinned', { sites: [...pinned].sort().join(', ') }));
  const text = parts.join(' · ');
  if (status.textContent !== text) status.textContent = text;
  status.hidden = text === '';
}

function pinButton(tile, site, on, onPin) {
  let b = tile.querySelector('.pin-button');
  if (!b) {
    b = document.createElement('button');
    b.type = 'button';
    b.className = 'pin-button';
    b.addEventListener('click', (e) => {
      e.stopPropagation();
      onPin(b.dataset.site, b.getAttribute('aria-pressed') !== 'true');
    });
    tile.append(b);
  }
  b.dataset.site = site;
  b.setAttribute('aria-pressed', String(on));
  const label = on ? t('tile.unpin') : t('tile.pin');
  if (b.textContent !== label) b.textContent = label;
  b.title = label;
}
