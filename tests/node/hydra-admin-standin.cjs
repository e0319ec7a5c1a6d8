// A stand-in for Ory Hydra's admin API, for curfew's tests: it accepts only
// requests whose method, path and query parameters are those of an
// operation of Hydra's published API, as the @ory/hydra-client package
// (pinned in package-lock.json) builds them, and records every request.
//
//   node hydra-admin-standin.cjs        prints "listening on http://127.0.0.1:PORT"
//   env STANDIN_TOKEN=T                 require "Authorization: Bearer T"
//   GET  /__calls                       every request so far (JSON)
//   POST /__fail {"count": N}           answer the next N API requests 503
//
// Binds 127.0.0.1 only.
'use strict';
const http = require('node:http');
const hydra = require('@ory/hydra-client');

async function operations() {
  const config = new hydra.Configuration({ basePath: 'http://standin' });
  const ops = [];
  for (const name of Object.keys(hydra).filter((k) => k.endsWith('ApiAxiosParamCreator'))) {
    const creator = hydra[name](config);
    for (const [operation, fn] of Object.entries(creator)) {
      const args = Array.from({ length: fn.length }, (_, i) => `__p${i}__`);
      let built;
      try {
        built = await fn(...args);
      } catch {
        continue;
      }
      const url = new URL(built.url, 'http://standin');
      const template = decodeURIComponent(url.pathname);
      const pattern = new RegExp(
        '^' + template.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/__p\d+__/g, '[^/]+') + '$',
      );
      ops.push({
        api: name.replace('AxiosParamCreator', ''),
        operation,
        method: built.options.method,
        path: template.replace(/__p(\d+)__/g, '{p$1}'),
        pattern,
        query: [...url.searchParams.keys()],
      });
    }
  }
  return ops;
}

function match(ops, method, url) {
  return ops.find(
    (o) =>
      o.method === method &&
      o.pattern.test(url.pathname) &&
      [...url.searchParams.keys()].every((k) => o.query.includes(k)),
  );
}

async function main() {
  const ops = await operations();
  const calls = [];
  let fail = 0;
  const token = process.env.STANDIN_TOKEN;
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://standin');
    const send = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(body === undefined ? '' : JSON.stringify(body));
    };
    if (url.pathname === '/__calls' && req.method === 'GET') return send(200, calls);
    if (url.pathname === '/__ops' && req.method === 'GET') {
      return send(200, ops.map(({ pattern, ...o }) => o));
    }
    if (url.pathname === '/__fail' && req.method === 'POST') {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        fail = JSON.parse(body || '{}').count || 0;
        send(200, { fail });
      });
      return undefined;
    }
    const op = match(ops, req.method, url);
    const call = {
      method: req.method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      operation: op ? op.operation : null,
      authorized: !token || req.headers.authorization === `Bearer ${token}`,
    };
    if (!op) {
      call.status = 404;
    } else if (!call.authorized) {
      call.status = 401;
    } else if (fail > 0) {
      fail -= 1;
      call.status = 503;
    } else {
      call.status = 204;
    }
    calls.push(call);
    return send(call.status, call.status === 204 ? undefined : { error: 'standin', status: call.status });
  });
  server.listen(0, '127.0.0.1', () => {
    console.log(`hydra admin stand-in listening on http://127.0.0.1:${server.address().port}`);
  });
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
