// floor.js — floor control as the pages see it (protocol/floor.go, docs/protocol/floor.md):
// the modes, the actions, and what a floor state lets a site send. Pure functions.

/** Floor-control modes (see protocol/floor.go and docs/protocol/floor.md). */
export const FloorMode = Object.freeze({
  DISCUSSION: 'discussion', // every site may speak
  TRAINING: 'training', // sites request the floor, the chair grants it to one at a time
  DIRECTED: 'directed', // the chair grants microphone and/or camera to one or more sites
});

/** Floor actions: request, withdraw and yield are a site's; the others the chair's. */
export const FloorActions = Object.freeze({
  REQUEST: 'request',
  WITHDRAW: 'withdraw',
  YIELD: 'yield',
  GRANT: 'grant',
  DENY: 'deny',
  REVOKE: 'revoke',
  MUTE_ALL: 'mute_all',
  SET_MODE: 'set_mode',
  END: 'end',
});

/**
 * What the floor lets a site send now: {mic, camera} (the screen follows the camera).
 * Mirrors rooms.FloorState.Allowed on the server: nothing once the meeting ended;
 * everything for the chair site and, in discussion mode, for every site; otherwise what
 * the site's grant allows. A null floor (a server without floor control) allows everything.
 */
export function floorAllows(floor, site) {
  if (!floor) return { mic: true, camera: true };
  if (floor.ended) return { mic: false, camera: false };
  if ((site && site === floor.chair_site) || floor.mode === FloorMode.DISCUSSION) return { mic: true, camera: true };
  const g = floorGrant(floor, site);
  return g ? { mic: !!g.mic, camera: !!g.camera } : { mic: false, camera: false };
}

/** The grant the site holds ({site, mic, camera, since}), or null. */
export function floorGrant(floor, site) {
  return (site && floor?.speakers?.find((g) => g.site === site)) || null;
}

/** The site's place in the request queue (1 = next), or 0 when it has not asked. */
export function floorQueuePosition(floor, site) {
  const i = site && floor?.requests ? floor.requests.findIndex((r) => r.site === site) : -1;
  return i + 1;
}

/** A floor state with its optional lists filled in, frozen. */
export function normalizeFloor(f) {
  return Object.freeze({
    mode: f.mode || FloorMode.DISCUSSION,
    chair_site: f.chair_site || '',
    speakers: Object.freeze((Array.isArray(f.speakers) ? f.speakers : []).map((g) => Object.freeze({ ...g }))),
    requests: Object.freeze((Array.isArray(f.requests) ? f.requests : []).map((r) => Object.freeze({ ...r }))),
    previous: f.previous || '',
    mute_epoch: Number(f.mute_epoch) || 0,
    ended: !!f.ended,
    version: Number(f.version) || 0,
  });
}
