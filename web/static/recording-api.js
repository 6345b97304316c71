// recording-api.js — the REST calls about a meeting's recording (docs/openapi.yaml, tag
// recordings) for the console and the record page, with the caller's API token in the
// Authorization header (never in a URL). An error answer throws a RecordingError whose
// `status` and `code` come from the API.

export class RecordingError extends Error {
  constructor(status, code, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code || '';
  }
}

const base = (meeting) => '/api/v1/meetings/' + encodeURIComponent(meeting);

async function call(token, path, method = 'GET') {
  const res = await fetch(path, { method, cache: 'no-store', headers: { Authorization: 'Bearer ' + token } });
  if (!res.ok) {
    let err = {};
    try { err = (await res.json()).error || {}; } catch { /* not JSON */ }
    throw new RecordingError(res.status, err.code, err.message);
  }
  return res;
}

/** {active, id, since, by}: whether the meeting is being recorded. */
export async function recordingStatus(token, meeting) {
  return (await call(token, base(meeting) + '/recording')).json();
}

/** Starts (verb 'start') or stops ('stop') the recording. */
export async function record(token, meeting, verb) {
  return (await call(token, base(meeting) + '/recording/' + verb, 'POST')).json();
}

/** The meeting's recordings, oldest first, each with its files. */
export async function listRecordings(token, meeting) {
  return (await (await call(token, base(meeting) + '/recordings')).json()).recordings || [];
}

/** Starts rendering a recording's composite video. */
export async function compose(token, meeting, rec) {
  await call(token, `${base(meeting)}/recordings/${encodeURIComponent(rec)}/compose`, 'POST');
}

/** A file of a recording as a Blob (the browser cannot send the header from a link). */
export async function fetchFile(token, meeting, rec, name) {
  const path = `${base(meeting)}/recordings/${encodeURIComponent(rec)}/files/${encodeURIComponent(name)}`;
  return (await call(token, path)).blob();
}

/** The message to show for a failed call: forbidden and "not live" get their own. */
export function errorKey(e) {
  if (e instanceof RecordingError && e.status === 403) return 'recording.forbidden';
  if (e instanceof RecordingError && e.code === 'not_connectable') return 'recording.not_live';
  return 'recording.failed';
}
