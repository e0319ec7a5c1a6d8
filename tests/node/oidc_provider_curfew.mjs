// panva's oidc-provider (pinned in package.json) with curfew's adapter
// (oidc_hook/adapters/oidc-provider, installed here as
// `curfew-oidc-provider` by `npm ci`), on 127.0.0.1. Run by
// tests/tests/oidc_provider_live.rs, which starts `curfew hook serve`
// first and passes:
//   HOOK_URL, HOOK_TOKEN       the hook
//   CURFEW_ENDS                '0' to leave the ends feed off (the refusal path alone)
//   CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, BACKCHANNEL_URI   the web client
//   MACHINE_ID, MACHINE_SECRET                                a client-credentials client
// Prints `listening http://127.0.0.1:PORT` once it serves; logs to stderr.
//
// Logins use oidc-provider's devInteractions (any login and password).
// Test-only view of the provider's own state (not part of the adapter):
//   GET /__logins   every login the provider issued tokens for, with
//                   whether its Session and Grant still exist, as the
//                   provider's models find them
//   GET /__ends     the adapter's onEnd reports
import { createServer } from 'node:http';

import Provider from 'oidc-provider';
import { Curfew } from 'curfew-oidc-provider';

const env = (k, fallback) => {
  const v = process.env[k] ?? fallback;
  if (v === undefined || v === '') throw new Error(`${k} is not set`);
  return v;
};

const log = (...a) => console.error(...a);
const ends = [];
const curfew = new Curfew({
  hookUrl: env('HOOK_URL'),
  token: env('HOOK_TOKEN'),
  ends: env('CURFEW_ENDS', '1') !== '0',
  pollWaitSeconds: 5,
  logger: { info: log, warn: log, error: log },
  onEnd: (report) => {
    ends.push(report);
  },
});

const server = createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, curfew.configuration({
  clients: [
    {
      client_id: env('CLIENT_ID'),
      client_secret: env('CLIENT_SECRET'),
      redirect_uris: [env('REDIRECT_URI')],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      backchannel_logout_uri: env('BACKCHANNEL_URI'),
      backchannel_logout_session_required: true,
    },
    {
      client_id: env('MACHINE_ID'),
      client_secret: env('MACHINE_SECRET'),
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    },
  ],
  cookies: { keys: ['curfew-test-cookie-key-0123456789'] },
  async findAccount(_ctx, id) {
    return { accountId: id, async claims() { return { sub: id }; } };
  },
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    backchannelLogout: { enabled: true },
  },
  // A refresh token for every code exchange of a client that may refresh
  // (without asking for offline_access and its consent).
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  // The test's back-channel logout receiver is on 127.0.0.1, which the
  // provider's SSRF protection refuses: the test lets loopback through
  // (a deployment keeps the default).
  fetch: (url, options) => {
    const { dispatcher, ...rest } = options;
    return fetch(url, rest);
  },
  ttl: { AccessToken: 3600, Session: 3600, Grant: 3600, RefreshToken: 3600, Interaction: 600, IdToken: 600 },
}));
curfew.attach(provider);

// What the provider issued, from its own event (test view only).
const logins = [];
provider.on('grant.success', (ctx) => {
  const at = ctx.oidc.entities.AccessToken;
  if (at?.grantId && !logins.some((l) => l.grantId === at.grantId && l.sessionUid === at.sessionUid)) {
    logins.push({ accountId: at.accountId, clientId: at.clientId, sessionUid: at.sessionUid, grantId: at.grantId });
  }
});
provider.on('server_error', (_ctx, err) => log('server_error:', err));
provider.on('grant.error', (_ctx, err) => log('grant.error:', err.error, err.error_description));
provider.on('backchannel.error', (_ctx, err) => log('backchannel.error:', err.message));

provider.use(async (ctx, next) => {
  if (ctx.method === 'GET' && ctx.path === '/__logins') {
    ctx.body = await Promise.all(logins.map(async (l) => ({
      ...l,
      session: Boolean(await provider.Session.findByUid(l.sessionUid)),
      grant: Boolean(await provider.Grant.find(l.grantId, { ignoreExpiration: true })),
    })));
    return;
  }
  if (ctx.method === 'GET' && ctx.path === '/__ends') {
    ctx.body = ends;
    return;
  }
  await next();
});

server.on('request', provider.callback());
console.log(`oidc-provider with curfew listening ${issuer}`);

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, async () => {
    await curfew.close();
    server.close();
    process.exit(0);
  });
}
