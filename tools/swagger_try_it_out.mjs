// Swagger UI click-through: "Authorize" with a token from login, then "Try it out" and "Execute" on
// GET /api/v1/me and on a tenant route; fails unless both answer 200. With SCHEME=api_key and an API
// key's secret as TOKEN, "Authorize" fills the `api_key` scheme instead, and only the tenant route
// is tried (a key never reaches /me). Needs Node.js, Debian's
// chromium and playwright-core (pinned in tools/package.json; ./test installs it) (not part of CI,
// which has no browser).
//
//   BASE=http://127.0.0.1:8080 TOKEN=<access token> TENANT=<tenant id> node tools/swagger_try_it_out.mjs
import { chromium } from 'playwright-core';
const base = process.env.BASE, token = process.env.TOKEN, tenant = process.env.TENANT;
const scheme = process.env.SCHEME || 'bearer_auth';
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
const page = await browser.newPage({ viewport: { width: 1400, height: 2000 } });
await page.goto(`${base}/swagger-ui/`);
await page.waitForSelector('.auth-wrapper .authorize', { timeout: 20000 });
await page.click('.auth-wrapper .authorize');
const box = page.locator('.auth-container').filter({ hasText: scheme });
await box.locator('input').first().fill(token);
await box.locator('button.authorize').click();
await page.click('.btn-done');
async function tryOut(path, method, params = {}) {
  const block = page.locator(`.opblock-${method}`).filter({ has: page.locator(`.opblock-summary-path[data-path="${path}"]`) }).first();
  await block.locator('.opblock-summary').click();
  await block.locator('.try-out__btn').click();
  for (const [name, value] of Object.entries(params)) {
    await block.locator(`tr[data-param-name="${name}"] input`).fill(value);
  }
  await block.locator('.execute').click();
  const status = block.locator('.live-responses-table tbody .response-col_status').first();
  await status.waitFor({ timeout: 20000 });
  const text = (await status.innerText()).trim();
  const body = (await block.locator('.live-responses-table .response-col_description pre').first().innerText()).slice(0, 160);
  console.log(`${method.toUpperCase()} ${path} -> ${text} ${body.replace(/\s+/g, ' ')}`);
  return text;
}
const a = scheme === 'api_key' ? '200' : await tryOut('/api/v1/me', 'get');
const b = await tryOut('/api/v1/tenants/{tenant_id}/users', 'get', { tenant_id: tenant });
await page.screenshot({ path: process.env.SCREENSHOT || 'swagger-try-it-out.png' });
await browser.close();
if (a !== '200' || b !== '200') { console.error('FAILED'); process.exit(1); }
console.log('OK');
