// A relying party built on openid-client (pinned in package.json), against
// curfew's example OpenID Provider. Run by tests/tests/oidc_node.rs, which
// starts the provider over TLS and passes:
//   ISSUER, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, POST_LOGOUT_URI,
//   USERNAME, PASSWORD, and NODE_EXTRA_CA_CERTS (the test CA).
// Prints one JSON line of results on stdout; exits non-zero on any failure.
//
// openid-client does: discovery, the authorization URL with PKCE (S256),
// nonce and state, the code exchange with ID-token validation (signature
// against the JWKS, iss, aud, exp, nonce), UserInfo, refresh, and the
// RP-initiated logout URL. The "user" part (the login form) is plain fetch.
import * as client from 'openid-client';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};

const issuer = new URL(env('ISSUER'));
const redirectUri = env('REDIRECT_URI');
// The token endpoint takes client_secret_basic (oxide-auth's refresh flow
// reads no credentials from the body), as discovery says.
const config = await client.discovery(
  issuer,
  env('CLIENT_ID'),
  { id_token_signed_response_alg: 'ES256' },
  client.ClientSecretBasic(env('CLIENT_SECRET')),
);
const meta = config.serverMetadata();

// The authorization request.
const codeVerifier = client.randomPKCECodeVerifier();
const codeChallenge = await client.calculatePKCECodeChallenge(codeVerifier);
const nonce = client.randomNonce();
const state = client.randomState();
const authUrl = client.buildAuthorizationUrl(config, {
  redirect_uri: redirectUri,
  scope: 'openid profile offline_access',
  code_challenge: codeChallenge,
  code_challenge_method: 'S256',
  nonce,
  state,
});

// The provider's forms carry hidden fields (a token bound to the
// pre-session cookie the page sets): a user agent sends both back.
const unescape = (v) => v.replaceAll('&quot;', '"').replaceAll('&#39;', "'")
  .replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&amp;', '&');
const formOf = (html, id) => {
  const form = new RegExp(`<form [^>]*id="${id}">([\\s\\S]*?)<\\/form>`).exec(html);
  if (!form) throw new Error(`no form ${id}: ${html.slice(0, 300)}`);
  const fields = new URLSearchParams();
  for (const m of form[1].matchAll(/<input type="hidden" name="([^"]*)" value="([^"]*)">/g)) {
    fields.append(unescape(m[1]), unescape(m[2]));
  }
  return fields;
};
const cookiesOf = (r) => r.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');

// The user: open the page, submit the form.
const signIn = async (url) => {
  const page = await fetch(url, { redirect: 'manual' });
  const html = await page.text();
  if (page.status !== 200 || !html.includes('<form')) {
    throw new Error(`no login page: ${page.status} ${html.slice(0, 200)}`);
  }
  const fields = formOf(html, 'login');
  fields.append('username', env('USERNAME'));
  fields.append('password', env('PASSWORD'));
  const login = await fetch(url, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: cookiesOf(page) },
    body: fields,
  });
  const location = login.headers.get('location');
  if (login.status !== 302 || !location) throw new Error(`login did not redirect: ${login.status}`);
  return { html, location };
};
const { html, location } = await signIn(authUrl);
const banner = /<div class="banner"[^>]*><pre>([^<]*)<\/pre>/.exec(html)?.[1] ?? '';

// The code exchange; openid-client validates the ID token and the nonce.
const tokens = await client.authorizationCodeGrant(config, new URL(location), {
  pkceCodeVerifier: codeVerifier,
  expectedNonce: nonce,
  expectedState: state,
  idTokenExpected: true,
});
const claims = tokens.claims();

// A wrong nonce is refused by the library (same flow, a fresh code).
let wrongNonceError = 'accepted';
{
  const v = client.randomPKCECodeVerifier();
  const n = client.randomNonce();
  const s = client.randomState();
  const u = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri, scope: 'openid', nonce: n, state: s,
    code_challenge: await client.calculatePKCECodeChallenge(v), code_challenge_method: 'S256',
  });
  const r = await signIn(u);
  try {
    await client.authorizationCodeGrant(config, new URL(r.location), {
      pkceCodeVerifier: v, expectedNonce: 'not-the-nonce', expectedState: s,
    });
  } catch (e) {
    wrongNonceError = `${e?.code ?? ''} ${e?.message ?? e} (${e?.cause?.message ?? ''})`;
  }
}

const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);

// Refresh: new tokens for the same session and user.
const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
const refreshedClaims = refreshed.claims();

// RP-initiated logout.
const endUrl = client.buildEndSessionUrl(config, {
  id_token_hint: refreshed.id_token ?? tokens.id_token,
  post_logout_redirect_uri: env('POST_LOGOUT_URI'),
  state: 'bye',
});
// This user agent keeps no cookies, so the provider sees no login of its
// own to match the hint with and asks to confirm (RP-Initiated Logout 1.0
// section 2); the user confirms on that page: its form's hidden fields and
// the pre-session cookie the page set go back with the POST.
const ask = await fetch(endUrl, { redirect: 'manual' });
const askPage = await ask.text();
if (ask.status !== 200) {
  throw new Error(`no logout confirmation page: ${ask.status} ${askPage.slice(0, 300)}`);
}
const out = await fetch(new URL(endUrl.pathname, endUrl), {
  method: 'POST',
  redirect: 'manual',
  headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: cookiesOf(ask) },
  body: formOf(askPage, 'confirm-logout'),
});
const back = out.headers.get('location') ?? '';

// After the logout the refresh token is dead.
let refreshAfterLogout = 'succeeded';
try {
  await client.refreshTokenGrant(config, refreshed.refresh_token);
} catch (e) {
  refreshAfterLogout = e?.error ?? e?.code ?? String(e);
}

console.log(JSON.stringify({
  issuer: meta.issuer,
  alg: meta.id_token_signing_alg_values_supported,
  end_session_endpoint: meta.end_session_endpoint,
  banner,
  claims,
  wrongNonceError,
  userinfo,
  refreshedClaims,
  refreshedAccessTokenDiffers: refreshed.access_token !== tokens.access_token,
  logoutConfirmationAsked: ask.status === 200,
  logoutStatus: out.status,
  logoutLocation: back,
  refreshAfterLogout,
}));
