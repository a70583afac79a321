// A real OpenID Provider (the `oidc-provider` package) for Roster's SSO tests
// (tests/api/oidc_harness.rs starts it, one process a test). It listens on 127.0.0.1 at a random
// port, its issuer is `http://127.0.0.1:<port>`, and it prints one JSON line once it serves:
// {"issuer": "...", "port": N}.
//
// Configured by the environment:
//   OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_REDIRECT_URI  the one client (required)
//   OIDC_AUTH_METHOD   its token endpoint auth method (client_secret_basic, or client_secret_post)
//   OIDC_PKCE_METHODS  the PKCE methods announced and accepted, comma-separated (S256)
//
// The browser's steps, over plain HTTP (no script, no browser needed):
//   GET  /interaction/<uid>          an HTML page; <form data-prompt="login|consent" action=...>
//   POST /interaction/<uid>/login    form: email (any address), and optionally sub,
//                                    email_verified (true|false|absent), name
//   POST /interaction/<uid>/confirm  grants what the client asked for (consent)
// Cookies are set as a browser would keep them; send them back.
//
// A knob for the negative tests: POST /__test/tamper {"mode": M} changes every ID token the
// token endpoint answers from then on ("none" stops it):
//   payload   the email changed, the signature kept (so it no longer matches)
//   resign    the email changed, signed again by a key not in the JWKS (same kid)
//   new-kid   the email changed, signed by a key not in the JWKS with a kid it does not list
//   iss, aud, nonce, expired, future-iat, azp   that claim changed, signed by the real key
//   strip-email   email and email_verified removed (the user info endpoint still has them)
//   hs256     signed with HMAC-SHA256 keyed by the client secret (which discovery announces)
//   rotated   signed by a new key (kid `rotated-key`) that the JWKS publishes from now on
// GET /__test/stats answers how often discovery and the keys were fetched:
//   {"discovery": N, "jwks": N}

import crypto from 'node:crypto';
import http from 'node:http';
import Provider from 'oidc-provider';

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) {
    console.error(`oidc_provider: ${name} is required`);
    process.exit(2);
  }
  return value;
};

const clientId = env('OIDC_CLIENT_ID');
const clientSecret = env('OIDC_CLIENT_SECRET');
const redirectUri = env('OIDC_REDIRECT_URI');
const authMethod = env('OIDC_AUTH_METHOD', 'client_secret_basic');
const pkceMethods = env('OIDC_PKCE_METHODS', 'S256').split(',');

// The provider's signing key (in its JWKS) and an impostor's (never published).
const KID = 'roster-test-key';
const signing = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const impostor = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJwk = { ...signing.privateKey.export({ format: 'jwk' }), kid: KID, alg: 'RS256', use: 'sig' };

// Accounts as the login form creates them: sub -> claims.
const accounts = new Map();
let tamper = 'none';
const fetched = { discovery: 0, jwks: 0 };

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: authMethod,
    },
  ],
  // Discovery announces only the client's own method.
  clientAuthMethods: [authMethod],
  jwks: { keys: [signingJwk] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  pkce: { required: () => true, methods: pkceMethods },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name'],
  },
  // HS256 announced too, so that a client that trusted it would accept the `hs256` knob's tokens.
  enabledJWA: { idTokenSigningAlgValues: ['RS256', 'HS256'] },
  // Put the scopes' claims in the ID token too, as most providers do.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, sub) {
    const claims = accounts.get(sub);
    if (!claims) return undefined;
    return { accountId: sub, claims: async () => ({ sub, ...claims }) };
  },
  renderError(ctx, out) {
    ctx.type = 'json';
    ctx.body = out;
  },
});

const b64 = (data) => Buffer.from(data).toString('base64url');

/** The ID token with its claims changed by the current tamper mode. */
function tampered(idToken) {
  const [header, payload, signature] = idToken.split('.');
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
  const now = Math.floor(Date.now() / 1000);
  let key = signing.privateKey;
  let kid = KID;
  switch (tamper) {
    case 'payload':
      claims.email = 'mallory@evil.test';
      return `${header}.${b64(JSON.stringify(claims))}.${signature}`;
    case 'resign':
      claims.email = 'mallory@evil.test';
      key = impostor.privateKey;
      break;
    case 'new-kid':
      claims.email = 'mallory@evil.test';
      key = impostor.privateKey;
      kid = 'unknown-key';
      break;
    case 'iss':
      claims.iss = 'http://127.0.0.1:1/evil';
      break;
    case 'aud':
      claims.aud = 'someone-else';
      break;
    case 'azp':
      claims.azp = 'someone-else';
      break;
    case 'nonce':
      claims.nonce = 'not-the-nonce';
      break;
    case 'expired':
      claims.iat = now - 1200;
      claims.exp = now - 600;
      break;
    case 'future-iat':
      claims.iat = now + 3600;
      claims.exp = now + 7200;
      break;
    case 'hs256': {
      claims.email = 'mallory@evil.test';
      const head = b64(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
      const body = b64(JSON.stringify(claims));
      const mac = crypto.createHmac('sha256', clientSecret).update(`${head}.${body}`).digest();
      return `${head}.${body}.${b64(mac)}`;
    }
    case 'rotated':
      key = impostor.privateKey;
      kid = 'rotated-key';
      break;
    case 'strip-email':
      delete claims.email;
      delete claims.email_verified;
      break;
    default:
      return idToken;
  }
  const head = b64(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid }));
  const body = b64(JSON.stringify(claims));
  const signed = crypto.sign('sha256', Buffer.from(`${head}.${body}`), key);
  return `${head}.${body}.${b64(signed)}`;
}

provider.use(async (ctx, next) => {
  await next();
  if (ctx.path === '/token' && ctx.body && typeof ctx.body === 'object' && ctx.body.id_token) {
    ctx.body = { ...ctx.body, id_token: tampered(ctx.body.id_token) };
  }
});

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString();
  if ((req.headers['content-type'] ?? '').startsWith('application/json')) return JSON.parse(text || '{}');
  return Object.fromEntries(new URLSearchParams(text));
}

function send(res, status, type, body) {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return send(res, 400, 'text/plain', 'interaction mismatch');
  const { prompt, params, session } = details;
  if (req.method === 'GET' && !action) {
    const form =
      prompt.name === 'login'
        ? `<input name="email" type="email"><input name="sub"><input name="email_verified"><input name="name">`
        : `<p>${escape(params.client_id)} asks for ${escape(params.scope)}</p>`;
    const target = prompt.name === 'login' ? 'login' : 'confirm';
    return send(
      res,
      200,
      'text/html',
      `<!doctype html><title>${prompt.name}</title><form method="post" data-prompt="${prompt.name}" action="/interaction/${uid}/${target}">${form}<button>Continue</button></form>`,
    );
  }
  if (req.method === 'POST' && action === 'login' && prompt.name === 'login') {
    const form = await readForm(req);
    const email = String(form.email ?? '').trim();
    if (!email) return send(res, 400, 'text/plain', 'email is required');
    const sub = form.sub || `sub-${crypto.createHash('sha256').update(email.toLowerCase()).digest('hex').slice(0, 16)}`;
    const claims = { email };
    if (form.email_verified === 'true' || form.email_verified === 'false') {
      claims.email_verified = form.email_verified === 'true';
    }
    if (form.name) {
      claims.name = form.name;
      const [given, ...family] = form.name.split(' ');
      claims.given_name = given;
      if (family.length) claims.family_name = family.join(' ');
    }
    accounts.set(sub, claims);
    return provider.interactionFinished(req, res, { login: { accountId: sub } }, { mergeWithLastSubmission: false });
  }
  if (req.method === 'POST' && action === 'confirm' && prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }
  return send(res, 400, 'text/plain', `unexpected ${req.method} ${action ?? ''} at prompt ${prompt.name}`);
}

const callback = provider.callback();
server.on('request', async (req, res) => {
  try {
    const path = new URL(req.url, issuer).pathname;
    const step = path.match(/^\/interaction\/([^/]+)(?:\/(login|confirm))?$/);
    if (step) return await interaction(req, res, step[1], step[2]);
    if (path === '/.well-known/openid-configuration') fetched.discovery += 1;
    if (path === '/jwks') fetched.jwks += 1;
    if (path === '/jwks' && tamper === 'rotated') {
      const published = (pair, kid) => ({ ...pair.publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' });
      const keys = [published(signing, KID), published(impostor, 'rotated-key')];
      return send(res, 200, 'application/json', JSON.stringify({ keys }));
    }
    if (path === '/__test/stats') return send(res, 200, 'application/json', JSON.stringify(fetched));
    if (path === '/__test/tamper' && req.method === 'POST') {
      tamper = String((await readForm(req)).mode ?? 'none');
      return send(res, 200, 'application/json', JSON.stringify({ mode: tamper }));
    }
    return callback(req, res);
  } catch (error) {
    return send(res, 500, 'text/plain', String(error?.stack ?? error));
  }
});

// Whoever started us may stop reading our output.
process.stdout.on('error', () => {});
process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// The test that started us is gone when our stdin closes.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
