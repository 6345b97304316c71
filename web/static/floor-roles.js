// floor-roles.js — who this endpoint is in the floor (may it ask for the floor, does it
// chair) and how sites are named on the join page, from the client's state.

import { FloorMode } from './cau-client.js';
import { page } from './join-page.js';

/** Whether this endpoint may ask for the floor for its site (see rooms.Floor.site). */
export function mayRequest() {
  const c = page.client;
  const f = c?.floor;
  const self = c?.self;
  if (!f || !self || f.ended || f.mode === FloorMode.DISCUSSION || !self.site) return false;
  if (self.site === f.chair_site) return false; // the chair site always has the floor
  return self.role === 'participant' || self.role === 'room' || self.role === 'admin';
}

/** Whether this endpoint controls the floor: an admin, or the chair at the chair site. */
export function isChair() {
  const c = page.client;
  const self = c?.self;
  if (!self || !c.floor) return false;
  if (self.role === 'admin') return true;
  return self.role === 'chair' && (!c.floor.chair_site || c.floor.chair_site === self.site);
}

/** Everyone at a site, this endpoint included. */
function atSite(site) {
  const c = page.client;
  const out = [...(c?.participants.values() || [])].filter((p) => p.site === site);
  if (c?.self?.site === site) out.unshift(c.self);
  return out;
}

/** A site's display name: the names of its endpoints, or its id. */
export function siteName(site) {
  const names = [...new Set(atSite(site).map((p) => p.name).filter(Boolean))];
  return names.length ? names.join(', ') : site;
}

