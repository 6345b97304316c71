// protocol.js — the words of Cầu's signaling protocol (docs/protocol, package protocol in
// Go) that every page needs: version, track sources, close and error codes, the error
// type, and small helpers for tokens, names and SDP. No state, no DOM.

/** Protocol version spoken by this client. */
export const PROTOCOL_VERSION = 1;

/** Track sources. */
export const Source = Object.freeze({
  MICROPHONE: 'microphone',
  CAMERA: 'camera',
  SCREEN: 'screen',
});

/** Close codes the server uses (see protocol.go). */
export const CloseCode = Object.freeze({
  UNAUTHORIZED: 4001,
  JOIN_TIMEOUT: 4002,
  RATE_LIMITED: 4003,
  REPLACED: 4004,
  MEETING_ENDED: 4005,
  ENDPOINT_IN_USE: 4006,
});

/** Error codes the server uses in error messages. */
export const ErrorCode = Object.freeze({
  BAD_MESSAGE: 'bad_message',
  UNKNOWN_KIND: 'unknown_kind',
  UNSUPPORTED_VERSION: 'unsupported_version',
  UNAUTHORIZED: 'unauthorized',
  FORBIDDEN: 'forbidden',
  ENDPOINT_IN_USE: 'endpoint_in_use',
  NOT_JOINED: 'not_joined',
  BAD_SDP: 'bad_sdp',
  RATE_LIMITED: 'rate_limited',
  INTERNAL: 'internal',
  UNAVAILABLE: 'unavailable',
});

/** The longest display name the server accepts, in characters (code points). */
export const MAX_NAME_CHARS = 64;

/** The /ws URL on the page's own host (ws: or wss: by the page's scheme). */
export function defaultSignalURL(loc = window.location) {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}/ws`;
}

/**
 * Decodes a JWT's payload for display only (no signature check: the server verifies).
 * Returns null when the token is not a readable JWT.
 */
export function decodeTokenClaims(token) {
  try {
    const part = String(token).split('.')[1];
    if (!part) return null;
    let b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    b64 += '='.repeat((4 - (b64.length % 4)) % 4);
    const bin = atob(b64);
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder('utf-8').decode(bytes));
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

/** Cuts a display name to the protocol's limit (64 characters, counted as code points). */
export function clampName(name) {
  return Array.from(String(name ?? '').trim()).slice(0, MAX_NAME_CHARS).join('');
}

/** Reads the msid track id of each m-section of an SDP, keyed by mid. */
export function msidTracksByMid(sdp) {
  const out = new Map();
  let mid = null;
  let track = null;
  const flush = () => {
    if (mid !== null && track) out.set(mid, track);
  };
  for (const line of String(sdp).split(/\r?\n/)) {
    if (line.startsWith('m=')) {
      flush();
      mid = null;
      track = null;
    } else if (line.startsWith('a=mid:')) {
      mid = line.slice(6).trim();
    } else if (line.startsWith('a=msid:')) {
      const parts = line.slice(7).trim().split(/\s+/);
      if (parts.length >= 2 && parts[1] !== '-') track = parts[1];
    }
  }
  flush();
  return out;
}

/** A server error reply, or a failure to get one. */
export class CauError extends Error {
  constructor(code, message) {
    super(message || code);
    this.name = 'CauError';
    this.code = code;
  }
}
