// curfew's adapter for panva's oidc-provider (npm `oidc-provider`, 9.x).
//
// Two directions, both through `curfew hook serve`:
//
// - Token requests ask curfew first. The grants of a user (authorization
//   code, refresh token, device code, CIBA) are decided in a wrapper of the
//   provider's `findAccount`, which oidc-provider calls in every such grant
//   after it has authenticated the client and checked the code or refresh
//   token and the grant, and before it creates any token. Client
//   credentials are decided in `extraTokenClaims` (that grant never loads an
//   account). The question is `POST /v1/decide` (the neutral JSON route);
//   a refusal is answered `invalid_grant` with curfew's reason, and the
//   provider's session and grant of that login are destroyed at once; an
//   allowance puts curfew's claims into the access token (`extraTokenClaims`)
//   and shortens its lifetime to curfew's (`ttl.AccessToken`).
// - Ends reach the provider. A long poll of `GET /v1/ends` gets every end
//   curfew decides or is told of (revoke, terminate, idle, max duration);
//   for each, the provider's login session (by its `uid`, which curfew
//   keeps as the login session id) and the grants of that login are
//   destroyed, with every token of those grants (`revokeByGrantId`). The
//   next authorization request finds no session and shows the login
//   prompt instead of silently issuing a code for a login curfew refuses.
//
// oidc-provider reads its configuration once, in `new Provider(...)`, so the
// adapter is wired in two steps:
//
//   const curfew = new Curfew({ hookUrl: 'http://127.0.0.1:8787', tokenFile: '/etc/curfew/hook-token' });
//   const provider = new Provider(issuer, curfew.configuration({ ...yourConfiguration }));
//   curfew.attach(provider);
//
// No dependency beyond oidc-provider itself (a peer): the HTTP calls use
// Node's own fetch. See docs/oidc.md in the curfew repository.

import { readFileSync } from 'node:fs';
import { errors } from 'oidc-provider';

/** Token kinds whose grant is a user's login (the `token` argument of findAccount). */
const LOGIN_KINDS = new Set([
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
]);

/** The models whose tokens belong to a grant (revoked by grant id). */
const GRANT_MODELS = [
  'AccessToken',
  'RefreshToken',
  'AuthorizationCode',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
];

/** oidc-provider's own default access-token lifetime (seconds). */
const DEFAULT_ACCESS_TOKEN_TTL = 60 * 60;

/** How many login sessions the adapter remembers the grants of. */
const MAX_INDEXED = 100_000;

function fail(option, problem) {
  return new TypeError(`curfew-oidc-provider: option ${option}: ${problem}`);
}

function loopback(hostname) {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\./.test(hostname);
}

/**
 * curfew's side of an oidc-provider instance.
 *
 * Options:
 * - `hookUrl` (required): the base URL of `curfew hook serve`,
 *   e.g. `http://127.0.0.1:8787`. `http:` or `https:`.
 * - `token` or `tokenFile`: the hook's bearer token (`--hook-token-file`);
 *   a file is read once, trimmed. One of the two is required unless
 *   `anonymous: true` (a hook started without a token).
 * - `rememberMe(ctx, session, token)`: whether the login is persistent
 *   ("remember me"). Default: the provider's session exists and is not
 *   `transient` (oidc-provider's `login.remember === false` makes it
 *   transient). Never the refresh scope.
 * - `groups(ctx, account, token)`: the user's groups (an array of strings)
 *   for group rules of the policy. Default: none.
 * - `ends` (default `true`): poll `GET /v1/ends` and destroy the provider's
 *   sessions and grants of every end.
 * - `pollWaitSeconds` (default 25, 1..30): how long one poll waits.
 * - `timeoutMs` (default 5000): the limit of one decision request.
 * - `endAttempts` (default 3): tries to apply one end before it is given up
 *   (logged).
 * - `logger` (default `console`): `info`, `warn` and `error` are used.
 * - `onEnd(report)`: called after each end was applied (or given up) with
 *   `{ end, sessions, grants, ok, error, attempts }`, for the operator's
 *   audit trail.
 */
export class Curfew {
  #hookUrl;
  #token;
  #rememberMe;
  #groups;
  #ends;
  #pollWait;
  #timeoutMs;
  #endAttempts;
  #logger;
  #onEnd;
  #provider;
  #decisions = new WeakMap();
  // login session uid -> { accountId, grants: Map(clientId -> Set(grantId)) }
  #index = new Map();
  #abort = new AbortController();
  #polling;

  constructor(options = {}) {
    if (typeof options !== 'object' || options === null) {
      throw fail('(all)', 'expected an object');
    }
    let url;
    try {
      url = new URL(options.hookUrl);
    } catch {
      throw fail('hookUrl', `not a URL: ${JSON.stringify(options.hookUrl)}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw fail('hookUrl', `expected http: or https:, got ${url.protocol}`);
    }
    this.#hookUrl = url.href.replace(/\/+$/, '');
    if (options.token !== undefined && options.tokenFile !== undefined) {
      throw fail('token', 'give token or tokenFile, not both');
    }
    if (options.tokenFile !== undefined) {
      let text;
      try {
        text = readFileSync(options.tokenFile, 'utf8');
      } catch (e) {
        throw fail('tokenFile', `cannot read ${options.tokenFile}: ${e.message}`);
      }
      this.#token = text.trim();
      if (!this.#token) throw fail('tokenFile', `${options.tokenFile} is empty`);
    } else if (options.token !== undefined) {
      if (typeof options.token !== 'string' || !options.token.trim()) {
        throw fail('token', 'expected a non-empty string');
      }
      this.#token = options.token.trim();
    } else if (options.anonymous !== true) {
      throw fail('token', 'the hook token is required (token or tokenFile), or anonymous: true');
    }
    for (const f of ['rememberMe', 'groups', 'onEnd']) {
      if (options[f] !== undefined && typeof options[f] !== 'function') {
        throw fail(f, 'expected a function');
      }
    }
    this.#rememberMe = options.rememberMe ?? ((_ctx, session) => Boolean(session && !session.transient));
    this.#groups = options.groups ?? (() => []);
    this.#onEnd = options.onEnd;
    this.#ends = options.ends ?? true;
    if (typeof this.#ends !== 'boolean') throw fail('ends', 'expected a boolean');
    this.#pollWait = options.pollWaitSeconds ?? 25;
    if (!Number.isInteger(this.#pollWait) || this.#pollWait < 1 || this.#pollWait > 30) {
      throw fail('pollWaitSeconds', 'expected an integer from 1 to 30');
    }
    this.#timeoutMs = options.timeoutMs ?? 5000;
    if (!Number.isInteger(this.#timeoutMs) || this.#timeoutMs < 1 || this.#timeoutMs > 60_000) {
      throw fail('timeoutMs', 'expected an integer from 1 to 60000');
    }
    this.#endAttempts = options.endAttempts ?? 3;
    if (!Number.isInteger(this.#endAttempts) || this.#endAttempts < 1 || this.#endAttempts > 10) {
      throw fail('endAttempts', 'expected an integer from 1 to 10');
    }
    this.#logger = options.logger ?? console;
    if (url.protocol === 'http:' && !loopback(url.hostname)) {
      this.#logger.warn(`curfew: warning: the hook ${this.#hookUrl} is not on this host and not over https: the hook token and the users' sessions cross the network in clear`);
    }
  }

  /**
   * The provider configuration `config` with curfew's pieces wrapped around
   * the operator's own: `findAccount` (the decision for a user's grants),
   * `extraTokenClaims` (curfew's claims in access tokens; the decision for
   * client credentials) and `ttl.AccessToken` (never longer than curfew's
   * token lifetime). Pass the result to `new Provider(issuer, ...)`.
   */
  configuration(config = {}) {
    if (typeof config.findAccount !== 'function') {
      throw fail('configuration.findAccount', 'the provider configuration needs its findAccount');
    }
    // An access token from the authorization endpoint (implicit and
    // hybrid `token` response types) would never reach the token
    // endpoint, where curfew is asked: refused here rather than let by.
    const bearing = (config.responseTypes ?? []).filter((t) => String(t).split(' ').includes('token'));
    if (bearing.length) {
      throw fail('configuration.responseTypes', `${bearing.join(', ')} issue access tokens at the authorization endpoint, where curfew is not asked; use the code flow`);
    }
    const findAccount = config.findAccount;
    const extraTokenClaims = config.extraTokenClaims;
    const ttl = config.ttl ?? {};
    const accessTtl = ttl.AccessToken;
    const self = this;
    return {
      ...config,
      async findAccount(ctx, sub, token) {
        const account = await findAccount(ctx, sub, token);
        if (account && ctx?.oidc?.route === 'token' && token && LOGIN_KINDS.has(token.kind)) {
          await self.#decideLogin(ctx, account, token);
        }
        return account;
      },
      async extraTokenClaims(ctx, token) {
        const own = extraTokenClaims ? await extraTokenClaims(ctx, token) : undefined;
        let decision = ctx ? self.#decisions.get(ctx) : undefined;
        if (!decision && ctx?.oidc?.route === 'token' && token?.kind === 'ClientCredentials') {
          decision = await self.#decideClient(ctx, token);
        }
        if (!decision?.claims || Object.keys(decision.claims).length === 0) return own;
        return { ...own, ...curfewClaims(decision.claims) };
      },
      ttl: {
        ...ttl,
        AccessToken(ctx, token, client) {
          let base;
          if (typeof accessTtl === 'function') base = accessTtl(ctx, token, client);
          else if (typeof accessTtl === 'number') base = accessTtl;
          else base = token.resourceServer?.accessTokenTTL || DEFAULT_ACCESS_TOKEN_TTL;
          const decision = ctx ? self.#decisions.get(ctx) : undefined;
          if (Number.isInteger(decision?.expires_in) && decision.expires_in > 0) {
            return Math.min(base, decision.expires_in);
          }
          return base;
        },
      },
    };
  }

  /**
   * Binds this adapter to the provider made with `configuration(...)` and,
   * unless `ends: false`, starts following curfew's ends. Returns `this`.
   */
  attach(provider) {
    if (this.#provider) throw new Error('curfew-oidc-provider: attach() was called already');
    if (!provider?.Session || !provider?.Grant) {
      throw new TypeError('curfew-oidc-provider: attach(provider): not an oidc-provider instance');
    }
    this.#provider = provider;
    if (this.#ends) this.#polling = this.#poll();
    return this;
  }

  /** Stops following the ends (resolves when the poll loop has returned). */
  async close() {
    this.#abort.abort();
    await this.#polling;
  }

  #headers() {
    const h = { 'content-type': 'application/json', accept: 'application/json' };
    if (this.#token) h.authorization = `Bearer ${this.#token}`;
    return h;
  }

  async #ask(body) {
    let res;
    try {
      res = await fetch(`${this.#hookUrl}/v1/decide`, {
        method: 'POST',
        headers: this.#headers(),
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (e) {
      // Fail closed: no tokens without curfew's answer (server_error).
      throw new Error(`curfew: the token hook ${this.#hookUrl} did not answer: ${e.cause?.message ?? e.message}`);
    }
    let answer;
    try {
      answer = await res.json();
    } catch {
      answer = undefined;
    }
    if (res.status === 200 && answer?.decision === 'allow') return answer;
    if (res.status === 403 && answer?.decision === 'deny') return answer;
    // 400 (this adapter sent something the hook refuses), 401 (wrong
    // token), 503 (curfew's store is down and the policy denies): no tokens.
    const what = answer?.field ? ` (${answer.field}: ${answer.error_description})` : '';
    throw new Error(`curfew: the token hook answered HTTP ${res.status}${what}`);
  }

  async #decideLogin(ctx, account, token) {
    if (this.#decisions.has(ctx)) {
      const d = this.#decisions.get(ctx);
      if (d.decision !== 'allow') throw refusal(d);
      return;
    }
    const provider = ctx.oidc.provider;
    const session = token.sessionUid ? await provider.Session.findByUid(token.sessionUid) : undefined;
    const groups = await this.#groups(ctx, account, token);
    if (!Array.isArray(groups) || groups.some((g) => typeof g !== 'string')) {
      throw new TypeError('curfew-oidc-provider: the groups option must return an array of strings');
    }
    const clientId = ctx.oidc.client.clientId;
    const answer = await this.#ask({
      grant_type: ctx.oidc.params.grant_type,
      client_id: clientId,
      subject: token.accountId,
      login_session: token.sessionUid ?? null,
      auth_time: Number.isInteger(token.authTime) ? token.authTime : null,
      remember_me: Boolean(await this.#rememberMe(ctx, session, token)),
      groups,
    });
    this.#decisions.set(ctx, answer);
    if (answer.decision === 'allow') {
      this.#remember(token.sessionUid, token.accountId, clientId, token.grantId);
      return;
    }
    // Refused: this login is over at the provider too (its session, and
    // this client's grants in it), so the next
    // authorization request asks for a login instead of issuing a code
    // curfew refuses again.
    const report = await this.#destroy(
      token.sessionUid ? [token.sessionUid] : [],
      token.grantId ? [token.grantId] : [],
      (c) => c === clientId,
    );
    this.#logger.info(`curfew: refused ${ctx.oidc.params.grant_type} for ${token.accountId} at ${clientId}: ${answer.reason}; destroyed ${report.sessions} session(s), ${report.grants} grant(s)`);
    throw refusal(answer);
  }

  async #decideClient(ctx, token) {
    const answer = await this.#ask({
      grant_type: 'client_credentials',
      client_id: ctx.oidc.client.clientId,
    });
    this.#decisions.set(ctx, answer);
    if (answer.decision !== 'allow') throw refusal(answer);
    return answer;
  }

  #remember(uid, accountId, clientId, grantId) {
    if (!uid || !grantId) return;
    let entry = this.#index.get(uid);
    if (!entry) {
      if (this.#index.size >= MAX_INDEXED) {
        // The oldest first: Map keeps insertion order.
        this.#index.delete(this.#index.keys().next().value);
      }
      entry = { accountId, grants: new Map() };
      this.#index.set(uid, entry);
    }
    if (!entry.grants.has(clientId)) entry.grants.set(clientId, new Set());
    entry.grants.get(clientId).add(grantId);
  }

  /**
   * Destroys the login sessions `uids` and the grants `grantIds`, plus the
   * grants of those sessions' clients that `pick(clientId)` selects (from
   * the session's own record and from what this adapter saw), each with
   * all its tokens. Tells the clients registered for back-channel logout.
   * Returns how many sessions and grants were found and destroyed.
   */
  async #destroy(uids, grantIds, pick) {
    const provider = this.#provider;
    const grants = new Set(grantIds);
    let sessions = 0;
    const logouts = [];
    for (const uid of uids) {
      const seen = this.#index.get(uid);
      if (seen) {
        for (const [clientId, ids] of seen.grants) {
          if (pick(clientId)) ids.forEach((id) => grants.add(id));
        }
      }
      const session = await provider.Session.findByUid(uid);
      if (!session) {
        this.#index.delete(uid);
        continue;
      }
      for (const [clientId, auth] of Object.entries(session.authorizations ?? {})) {
        if (auth?.grantId && pick(clientId)) grants.add(auth.grantId);
        if (auth?.sid) logouts.push([clientId, session.accountId, auth.sid]);
      }
      await session.destroy();
      this.#index.delete(uid);
      sessions += 1;
    }
    let destroyed = 0;
    for (const grantId of grants) {
      await Promise.all(GRANT_MODELS.map((m) => provider[m]?.revokeByGrantId(grantId)));
      const grant = await provider.Grant.find(grantId, { ignoreExpiration: true });
      if (grant) {
        await grant.destroy();
        destroyed += 1;
      }
    }
    // The relying parties of the destroyed sessions, as the provider's own
    // logout tells them (when its backchannelLogout feature is on).
    for (const [clientId, accountId, sid] of logouts) {
      const client = await provider.Client.find(clientId).catch(() => undefined);
      if (client?.backchannelLogoutUri && typeof client.backchannelLogout === 'function') {
        try {
          await client.backchannelLogout(accountId, sid);
        } catch (e) {
          this.#logger.warn(`curfew: back-channel logout of ${clientId} failed: ${e.cause?.message ?? e.message}`);
        }
      }
    }
    return { sessions, grants: destroyed };
  }

  /** Applies one end from `GET /v1/ends`. */
  async #applyEnd(end) {
    const wholeUser = typeof end.revoked === 'string' && end.revoked.startsWith('user ');
    const uids = new Set();
    if (typeof end.login_session === 'string' && end.login_session) uids.add(end.login_session);
    if (wholeUser) {
      for (const [uid, entry] of this.#index) {
        if (entry.accountId === end.subject) uids.add(uid);
      }
    }
    // The session's own client always; every client of the session when
    // the user as a whole is revoked.
    const pick = (clientId) => wholeUser || clientId === end.client_id;
    return this.#destroy([...uids], [], pick);
  }

  async #poll() {
    let after = 0;
    let failing = false;
    let backoff = 1000;
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      let body;
      try {
        const res = await fetch(`${this.#hookUrl}/v1/ends?after=${after}&wait=${this.#pollWait}`, {
          headers: this.#headers(),
          signal: AbortSignal.any([signal, AbortSignal.timeout((this.#pollWait + 10) * 1000)]),
        });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        body = await res.json();
        if (!Number.isInteger(body?.last) || !Array.isArray(body?.ends)) {
          throw new Error('the answer is not {"last": N, "ends": [...]}');
        }
      } catch (e) {
        if (signal.aborted) break;
        if (!failing) {
          this.#logger.error(`curfew: cannot follow the ends of ${this.#hookUrl}/v1/ends: ${e.cause?.message ?? e.message}; retrying`);
          failing = true;
        }
        await sleep(backoff, signal);
        backoff = Math.min(backoff * 2, 30_000);
        continue;
      }
      if (failing) {
        this.#logger.info(`curfew: following the ends of ${this.#hookUrl} again`);
        failing = false;
      }
      backoff = 1000;
      if (body.last < after) {
        // The hook restarted and numbers its ends from 1 again.
        after = 0;
        continue;
      }
      for (const end of body.ends) {
        await this.#applyWithRetries(end, signal);
        if (Number.isInteger(end.seq) && end.seq > after) after = end.seq;
      }
      after = Math.max(after, body.last);
    }
  }

  async #applyWithRetries(end, signal) {
    let error;
    for (let attempt = 1; attempt <= this.#endAttempts; attempt += 1) {
      try {
        const r = await this.#applyEnd(end);
        this.#logger.info(`curfew: session ${end.session_id} of ${end.subject} at ${end.client_id} ended (${end.reason}${end.revoked ? `: ${end.revoked}` : ''}); destroyed ${r.sessions} provider session(s), ${r.grants} grant(s)`);
        this.#onEnd?.({ end, ...r, ok: true, attempts: attempt });
        return;
      } catch (e) {
        error = e;
        if (attempt < this.#endAttempts) await sleep(200 * 2 ** attempt, signal);
      }
    }
    this.#logger.error(`curfew: could not end the provider's session of ${end.subject} (${end.login_session}): ${error?.message}`);
    this.#onEnd?.({ end, sessions: 0, grants: 0, ok: false, error: String(error?.message ?? error), attempts: this.#endAttempts });
  }
}

/** curfew's claims as they go into an access token (`sid` becomes `curfew_sid`: the token's `sid` is the provider's). */
function curfewClaims(claims) {
  const { sid, ...rest } = claims;
  return { curfew_sid: sid, ...rest };
}

/** The token endpoint's answer to a refusal (RFC 6749 section 5.2). */
function refusal(answer) {
  return new errors.CustomOIDCProviderError(
    'invalid_grant',
    `curfew: ${answer.reason}; ${answer.rp_action}`,
  );
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const stop = () => {
      clearTimeout(t);
      resolve();
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', stop);
      resolve();
    }, ms);
    signal?.addEventListener('abort', stop, { once: true });
  });
}
