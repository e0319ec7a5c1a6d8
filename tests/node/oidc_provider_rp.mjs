// A relying party (openid-client, pinned in package.json) and a user (fetch
// with a cookie jar) against panva's oidc-provider with curfew's adapter
// (tests/node/oidc_provider_curfew.mjs). Run once per step by
// tests/tests/oidc_provider_live.rs:
//
//   node oidc_provider_rp.mjs login       sign in (devInteractions login and consent), code exchange
//   node oidc_provider_rp.mjs refresh     refresh with the kept refresh token
//   node oidc_provider_rp.mjs introspect  the provider's introspection of the kept access token
//   node oidc_provider_rp.mjs authorize   a new authorization request (no prompt) with the
//                                         user's cookies: where does it land?
//   node oidc_provider_rp.mjs machine     a client-credentials token for the machine client
//
// Env: ISSUER, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, MACHINE_ID,
// MACHINE_SECRET, USERNAME, STATE_FILE (the cookies and tokens kept between
// steps). Prints one JSON line; exits non-zero only on an unexpected failure.
import { readFileSync, writeFileSync, existsSync } from 'node:fs';

import * as client from 'openid-client';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};

const stateFile = env('STATE_FILE');
const state = existsSync(stateFile) ? JSON.parse(readFileSync(stateFile, 'utf8')) : { cookies: {} };
const save = () => writeFileSync(stateFile, JSON.stringify(state));
const out = (v) => console.log(JSON.stringify(v));

const issuer = new URL(env('ISSUER'));
const redirectUri = env('REDIRECT_URI');
// The test provider is plain HTTP on 127.0.0.1.
const discover = (id, secret) => client.discovery(
  issuer,
  id,
  undefined,
  client.ClientSecretBasic(secret),
  { execute: [client.allowInsecureRequests] },
);

// The user's browser: a cookie jar (names are unique across the provider's
// paths) and manual redirects.
function cookieHeader() {
  return Object.entries(state.cookies).map(([k, v]) => `${k}=${v}`).join('; ');
}
function keepCookies(res) {
  for (const line of res.headers.getSetCookie()) {
    const [pair, ...attrs] = line.split(';');
    const i = pair.indexOf('=');
    const name = pair.slice(0, i).trim();
    const value = pair.slice(i + 1).trim();
    const expired = attrs.some((a) => {
      const [k, v] = a.split('=');
      return k.trim().toLowerCase() === 'expires' && new Date(v) <= new Date();
    });
    if (!value || expired) delete state.cookies[name];
    else state.cookies[name] = value;
  }
}
async function browse(url, init = {}) {
  const res = await fetch(url, {
    ...init,
    redirect: 'manual',
    headers: { ...init.headers, cookie: cookieHeader() },
  });
  keepCookies(res);
  return res;
}

// Follows an authorization request like a browser until it reaches the
// redirect URI, or an interaction page (`stopAtInteraction`), or an error.
// Submits devInteractions' forms (login as USERNAME, consent) otherwise.
async function drive(authUrl, { stopAtInteraction }) {
  let url = authUrl.href;
  const hops = [];
  for (let i = 0; i < 20; i += 1) {
    if (url.startsWith(redirectUri)) return { landed: 'redirect', url, hops };
    const res = await browse(url);
    hops.push(`${res.status} ${new URL(url).pathname}`);
    const location = res.headers.get('location');
    if (location) {
      url = new URL(location, url).href;
      continue;
    }
    const html = await res.text();
    const prompt = /name="prompt" value="([a-z]+)"/.exec(html)?.[1];
    if (res.status !== 200 || !prompt) {
      return { landed: 'error', status: res.status, body: html.slice(0, 300), hops };
    }
    if (stopAtInteraction) return { landed: 'interaction', prompt, hops };
    const form = { prompt };
    if (prompt === 'login') Object.assign(form, { login: env('USERNAME'), password: 'any' });
    const action = new URL(/action="([^"]+)"/.exec(html)[1], url).href;
    const post = await browse(action, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form),
    });
    hops.push(`${post.status} POST ${new URL(action).pathname} (${prompt})`);
    url = new URL(post.headers.get('location'), action).href;
  }
  return { landed: 'loop', hops };
}

function authRequest(config, extra = {}) {
  const verifier = client.randomPKCECodeVerifier();
  const nonce = client.randomNonce();
  const st = client.randomState();
  return client.calculatePKCECodeChallenge(verifier).then((challenge) => ({
    verifier,
    nonce,
    state: st,
    url: client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: 'openid',
      code_challenge: challenge,
      code_challenge_method: 'S256',
      nonce,
      state: st,
      ...extra,
    }),
  }));
}

const tokenError = (e) => ({
  ok: false,
  // The HTTP status: openid-client keeps the response as the cause of an
  // answer it does not accept (e.g. a 500).
  status: e?.status ?? e?.cause?.status,
  error: e?.error ?? e?.code ?? String(e),
  error_description: e?.error_description ?? e?.message ?? '',
});

const step = process.argv[2];
const config = step === 'machine'
  ? await discover(env('MACHINE_ID'), env('MACHINE_SECRET'))
  : await discover(env('CLIENT_ID'), env('CLIENT_SECRET'));

if (step === 'login') {
  const req = await authRequest(config);
  const r = await drive(req.url, { stopAtInteraction: false });
  if (r.landed !== 'redirect') throw new Error(`the login did not reach the client: ${JSON.stringify(r)}`);
  try {
    const tokens = await client.authorizationCodeGrant(config, new URL(r.url), {
      pkceCodeVerifier: req.verifier,
      expectedNonce: req.nonce,
      expectedState: req.state,
      idTokenExpected: true,
    });
    state.access_token = tokens.access_token;
    state.refresh_token = tokens.refresh_token;
    save();
    out({ ok: true, claims: tokens.claims(), expires_in: tokens.expires_in, has_refresh_token: Boolean(tokens.refresh_token), hops: r.hops });
  } catch (e) {
    save();
    out({ ...tokenError(e), hops: r.hops });
  }
} else if (step === 'refresh') {
  try {
    const tokens = await client.refreshTokenGrant(config, state.refresh_token);
    state.access_token = tokens.access_token;
    state.refresh_token = tokens.refresh_token ?? state.refresh_token;
    save();
    out({ ok: true, claims: tokens.claims(), expires_in: tokens.expires_in });
  } catch (e) {
    out(tokenError(e));
  }
} else if (step === 'introspect') {
  out(await client.tokenIntrospection(config, state.access_token));
} else if (step === 'authorize') {
  const req = await authRequest(config);
  out(await drive(req.url, { stopAtInteraction: true }));
} else if (step === 'machine') {
  try {
    const tokens = await client.clientCredentialsGrant(config, {});
    out({ ok: true, expires_in: tokens.expires_in });
  } catch (e) {
    out(tokenError(e));
  }
} else {
  throw new Error(`unknown step ${step}`);
}
