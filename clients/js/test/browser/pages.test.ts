// Every test that runs in a browser page, in one process sharing one Chromium (test/support/browser.ts).
import { after } from 'node:test';

import { closeSharedBrowser } from '../support/browser.js';

import './sdk-page.js';
import './admin-console.js';
import './kitchen-display.js';

after(() => closeSharedBrowser());
