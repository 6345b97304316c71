// page-token.js — the token a page is opened with (?token=…). It is moved from the URL to
// this tab's sessionStorage at once and the address bar cleaned, so it is not bookmarked,
// shared with the link or left in the history; a reload finds it in the tab.

/**
 * The page's token: the link's, else the one this tab kept under key, else under the
 * first of fallbackKeys that has one (a page opened from another, in the same tab).
 */
export function takeToken(key, ...fallbackKeys) {
  const params = new URLSearchParams(location.search);
  const fromURL = params.get('token');
  if (fromURL) {
    sessionStorage.setItem(key, fromURL);
    params.delete('token');
    const rest = params.toString();
    history.replaceState(null, '', location.pathname + (rest ? '?' + rest : '') + location.hash);
    return fromURL;
  }
  for (const k of [key, ...fallbackKeys]) {
    const v = sessionStorage.getItem(k);
    if (v) return v;
  }
  return '';
}
