// i18n.js — the pages' language and their message catalogues, one per language:
// i18n/vi.json (the default) and i18n/en.json. Every text a page shows comes from them: the
// HTML names its texts with data-i18n attributes (applied by translatePage), the modules
// ask t(key, params). Dates and times are shown 24-hour in Vietnam time (Asia/Ho_Chi_Minh,
// UTC+7 all year) whatever the browser's time zone, as meetings are scheduled.
//
// The language, first found wins: ?lang=vi|en in the link; the choice made with the
// language switch (kept in this browser); the browser's languages when they ask for
// English and not for Vietnamese (not on a meeting-room kiosk, whose browser nobody set
// up); else Vietnamese.
//
// The module loads its catalogue before the page's modules run (top-level await).

/** The languages there is a catalogue for; the first is the default. */
export const LANGS = ['vi', 'en'];
const STORE_KEY = 'cau.lang';
/** The time zone every time is shown in. */
export const TIME_ZONE = 'Asia/Ho_Chi_Minh';

/**
 * The language to show. opts.browser: whether the browser's own languages count (false
 * on a kiosk).
 */
export function chooseLang({ search = location.search, stored = readStored(), languages = navigator.languages,
  browser = true } = {}) {
  const asked = new URLSearchParams(search).get('lang');
  if (LANGS.includes(asked)) return asked;
  if (LANGS.includes(stored)) return stored;
  if (browser) {
    const prefs = (languages || []).map((l) => String(l).toLowerCase().split('-')[0]);
    if (!prefs.includes('vi') && prefs[0] === 'en') return 'en';
  }
  return LANGS[0];
}

function readStored() {
  try {
    return localStorage.getItem(STORE_KEY);
  } catch {
    return null; // storage disabled
  }
}

/** The page's language (see chooseLang). */
export const lang = chooseLang({ browser: document.documentElement.dataset.browserLang !== 'off' });
document.documentElement.lang = lang;

async function load(l) {
  const res = await fetch(`/static/i18n/${l}.json`, { cache: 'no-cache' });
  if (!res.ok) throw new Error(`catalogue ${l}: HTTP ${res.status}`);
  return res.json();
}

let messages = {};
try {
  messages = await load(lang);
} catch (err) {
  console.error('[cau] cannot load the message catalogue', err);
}

/**
 * The message key in the page's language, with {name} placeholders replaced from params.
 * With params.n, the key's plural form is used when the catalogue has one ("key.one" for
 * n === 1, "key.other" otherwise), else the key itself. A missing key shows as itself (the
 * web tests forbid it).
 */
export function t(key, params = {}) {
  let text = params.n !== undefined ? messages[`${key}.${params.n === 1 ? 'one' : 'other'}`] : undefined;
  if (text === undefined) text = messages[key];
  if (text === undefined) {
    console.warn('[cau] no message', key);
    return key;
  }
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

/**
 * Fills the page's texts from the catalogue: data-i18n (text), data-i18n-title,
 * data-i18n-placeholder, data-i18n-aria-label (attributes), also inside templates. Sets
 * up the language switch (buttons with class lang-switch).
 */
export function translatePage(root = document) {
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const [data, attr] of [['i18nTitle', 'title'], ['i18nPlaceholder', 'placeholder'], ['i18nAriaLabel', 'aria-label']]) {
    const sel = `[data-${data.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}]`;
    for (const el of root.querySelectorAll(sel)) el.setAttribute(attr, t(el.dataset[data]));
  }
  for (const tpl of root.querySelectorAll('template')) translatePage(tpl.content);
  for (const sw of root.querySelectorAll('.lang-switch')) setUpSwitch(sw);
}

/** A language switch: a button that offers the other language and reloads in it. */
function setUpSwitch(button) {
  const other = LANGS.find((l) => l !== lang);
  button.textContent = t('lang.switch');
  button.lang = other;
  button.setAttribute('aria-label', t('lang.switch_label'));
  button.dataset.lang = other;
  button.addEventListener('click', () => switchTo(other));
}

/** Remembers the choice and shows the page again in language l. */
export function switchTo(l) {
  try {
    localStorage.setItem(STORE_KEY, l);
  } catch {
    /* storage disabled: the link's lang= still carries it */
  }
  const u = new URL(location.href);
  u.searchParams.set('lang', l);
  location.replace(u.toString());
}

// ---- dates and times ----------------------------------------------------------------------

const LOCALE = { vi: 'vi-VN', en: 'en-GB' }[lang];
const formats = new Map();

function format(ms, opts) {
  const key = JSON.stringify(opts);
  let f = formats.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat(LOCALE, { timeZone: TIME_ZONE, hourCycle: 'h23', ...opts });
    formats.set(key, f);
  }
  return f.format(ms);
}

const toMs = (v) => (typeof v === 'number' ? v : v instanceof Date ? v.getTime() : Date.parse(v));

/** "14:05" (or "14:05:09" with seconds) in Vietnam time; '' for an unreadable time. */
export function fmtTime(v, { seconds = false } = {}) {
  const ms = toMs(v);
  if (!Number.isFinite(ms)) return '';
  return format(ms, seconds ? { hour: '2-digit', minute: '2-digit', second: '2-digit' } : { hour: '2-digit', minute: '2-digit' });
}

/** "Thứ Năm, 03/12/2026" / "Thursday, 03/12/2026" in Vietnam time. */
export function fmtDay(v) {
  const ms = toMs(v);
  if (!Number.isFinite(ms)) return '';
  const date = format(ms, { day: '2-digit', month: '2-digit', year: 'numeric' });
  return `${t(`weekday.${weekday(ms)}`)}, ${date}`;
}

/** "03/12/2026 14:05" in Vietnam time. */
export function fmtDateTime(v) {
  const ms = toMs(v);
  if (!Number.isFinite(ms)) return '';
  return `${format(ms, { day: '2-digit', month: '2-digit', year: 'numeric' })} ${fmtTime(ms)}`;
}

/** The day of the week in Vietnam time, 0 = Sunday. */
function weekday(ms) {
  return new Date(ms + 7 * 3600 * 1000).getUTCDay(); // UTC+7 all year: no daylight saving
}

/** Whether two times fall on the same day in Vietnam time. */
export function sameDay(a, b) {
  const d = (v) => Math.floor((toMs(v) + 7 * 3600 * 1000) / 86400000);
  return d(a) === d(b);
}
