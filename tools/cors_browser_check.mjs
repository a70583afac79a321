// CORS from a real browser (issue 10): a page served from another origin calls the API with fetch,
// as a single-page app would, in Debian's headless Chromium. Run by tests/api/cors.rs, which starts
// the API (with ALLOWED's origin in ROSTER_CORS_ORIGINS) and two one-page static servers.
//
//   API=http://127.0.0.1:8080 ALLOWED=http://127.0.0.1:5173/ BLOCKED=http://127.0.0.1:5174/ \
//   EMAIL=<owner email> PASSWORD=<owner password> MEMBER=<a member's user id> node tools/cors_browser_check.mjs
//
// On the allowed page it signs in (POST /api/v1/auth/login), GETs the member with
// `Authorization: Bearer`, reads ETag and X-Request-Id from JavaScript, PATCHes with If-Match (and
// an X-Request-Id of its own), then PATCHes again with the old ETag and reads the 412 problem. On
// the blocked page it tries the same sign-in and a plain GET, which must reject with TypeError.
// Prints one JSON object on stdout: {browser, allowed: {...}, blocked: {...}}; a step that throws
// is reported as `error` in its place. Needs Node.js, Debian's chromium (/usr/bin/chromium) and
// playwright-core from tools/node_modules (`npm ci --prefix tools`).
import { chromium } from 'playwright-core';

const need = (name) => {
  const value = process.env[name];
  if (!value) {
    console.error(`cors_browser_check: ${name} is not set (see the header of this script)`);
    process.exit(2);
  }
  return value;
};
const config = {
  api: need('API').replace(/\/$/, ''),
  allowed: need('ALLOWED'),
  blocked: need('BLOCKED'),
  email: need('EMAIL'),
  password: need('PASSWORD'),
  member: need('MEMBER'),
  requestId: `browser-cors-check-${Date.now()}`,
  jobTitle: 'Set from a browser',
};
// Never hang a test run: give up after a minute.
setTimeout(() => {
  console.error('cors_browser_check: timed out after 60 s');
  process.exit(3);
}, 60_000).unref();

// Runs inside the allowed page (its origin is the page's): what a frontend would do.
async function allowedFlow({ api, email, password, member, requestId, jobTitle }) {
  const out = { origin: location.origin };
  const json = { 'Content-Type': 'application/json' };
  try {
    let res = await fetch(`${api}/api/v1/auth/login`, { method: 'POST', headers: json, body: JSON.stringify({ email, password }) });
    const login = await res.json();
    out.login = { status: res.status, has_access_token: typeof login.access_token === 'string', tenant_id: login.tenant_id };
    const auth = { Authorization: `Bearer ${login.access_token}` };
    const url = `${api}/api/v1/tenants/${login.tenant_id}/users/${member}`;

    res = await fetch(url, { headers: auth });
    const got = await res.json();
    out.get = { status: res.status, etag: res.headers.get('ETag'), request_id: res.headers.get('X-Request-Id'), id: got.id };

    res = await fetch(url, {
      method: 'PATCH',
      headers: { ...auth, ...json, 'If-Match': out.get.etag, 'X-Request-Id': requestId },
      body: JSON.stringify({ job_title: jobTitle }),
    });
    const patched = await res.json();
    out.patch = {
      status: res.status,
      etag: res.headers.get('ETag'),
      request_id: res.headers.get('X-Request-Id'),
      sent_request_id: requestId,
      job_title: patched.job_title,
    };

    res = await fetch(url, {
      method: 'PATCH',
      headers: { ...auth, ...json, 'If-Match': out.get.etag },
      body: JSON.stringify({ job_title: 'Stale' }),
    });
    const problem = await res.json();
    out.stale = { status: res.status, content_type: res.headers.get('Content-Type'), type: problem.type };

    res = await fetch(`${api}/api/v1/me`);
    out.unauthenticated = { status: res.status, www_authenticate: res.headers.get('WWW-Authenticate') };
  } catch (e) {
    out.error = `${e.name}: ${e.message}`;
  }
  return out;
}

// Runs inside the blocked page: the browser must keep every answer from it.
async function blockedFlow({ api, email, password }) {
  const attempt = async (url, init) => {
    try {
      const res = await fetch(url, init);
      return { read: true, status: res.status, body: (await res.text()).slice(0, 200) };
    } catch (e) {
      return { read: false, error_name: e.name, error: e.message };
    }
  };
  return {
    origin: location.origin,
    login: await attempt(`${api}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email, password }),
    }),
    simple_get: await attempt(`${api}/healthz`),
  };
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
const result = { browser: browser.version() };
try {
  const context = await browser.newContext();
  for (const [key, url, flow] of [
    ['allowed', config.allowed, allowedFlow],
    ['blocked', config.blocked, blockedFlow],
  ]) {
    const page = await context.newPage();
    const console_ = [];
    page.on('console', (m) => console_.push(`${m.type()}: ${m.text()}`));
    try {
      const loaded = await page.goto(url);
      if (!loaded || !loaded.ok()) throw new Error(`loading ${url}: ${loaded ? loaded.status() : 'no response'}`);
      result[key] = await page.evaluate(flow, config);
    } catch (e) {
      result[key] = { error: String(e) };
    }
    result[key].console = console_;
    await page.close();
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
