// landing.js — the landing page (/): its texts in the page's language.

import { translatePage } from './i18n.js';

translatePage();
