// GET /api/v1/openapi.json parses, is OpenAPI 3.1, matches docs/openapi.json, and
// describes exactly the routes `tally routes` prints.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { World, REPO } from './lib.mjs';

const w = World.create('openapi');
let srv, doc;
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

before(async () => {
  srv = await w.serve();
});

test('GET /api/v1/openapi.json: 200, JSON, OpenAPI 3.1 with bearer security', async () => {
  const r = await srv.client(null).get('/api/v1/openapi.json');
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type') || '', /^application\/json/);
  doc = JSON.parse(r.text);
  assert.match(doc.openapi, /^3\.1\.\d+$/);
  assert.equal(typeof doc.info?.title, 'string');
  assert.equal(typeof doc.info?.version, 'string');
  assert.equal(doc.components.securitySchemes.bearer.type, 'http');
  assert.equal(doc.components.securitySchemes.bearer.scheme, 'bearer');
  assert.ok(doc.components.schemas.Error, 'Error schema');
});

test('the served document is docs/openapi.json', () => {
  const file = JSON.parse(readFileSync(path.join(REPO, 'docs/openapi.json'), 'utf8'));
  assert.deepEqual(doc, file);
});

test('`tally routes` and openapi.json paths describe the same routes', () => {
  const r = w.ok(['routes']);
  const lines = r.stdout.split('\n').filter((l) => l.length);
  assert.ok(lines.length >= 15, `only ${lines.length} routes printed`);
  for (const l of lines) assert.match(l, /^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) \/\S*$/, `route line ${JSON.stringify(l)}`);
  const printed = new Set(lines);
  assert.equal(printed.size, lines.length, 'a route is printed twice');
  const base = (doc.servers?.[0]?.url || '').replace(/^https?:\/\/[^/]+/, '').replace(/\/$/, '');
  const described = new Set();
  for (const [p, item] of Object.entries(doc.paths)) {
    for (const m of Object.keys(item)) if (METHODS.includes(m)) described.add(`${m.toUpperCase()} ${base}${p}`);
  }
  const notDescribed = [...printed].filter((x) => !described.has(x));
  const notServed = [...described].filter((x) => !printed.has(x));
  assert.deepEqual(notDescribed, [], 'routes printed by `tally routes` but missing from openapi.json');
  assert.deepEqual(notServed, [], 'routes in openapi.json that `tally routes` does not print');
  // the routes API.md lists
  for (const x of [
    'GET /api/v1/me', 'POST /api/v1/projects', 'GET /api/v1/projects', 'GET /api/v1/projects/{id}',
    'POST /api/v1/projects/{id}/tasks', 'GET /api/v1/projects/{id}/tasks', 'GET /api/v1/tasks/{id}',
    'POST /api/v1/tasks/{id}/cancel', 'POST /api/v1/projects/{id}/claim', 'POST /api/v1/assignments/{id}/submit',
    'POST /api/v1/assignments/{id}/release', 'POST /api/v1/assignments/{id}/heartbeat', 'GET /api/v1/projects/{id}/export',
    'GET /api/v1/projects/{id}/quality', 'POST /api/v1/projects/{id}/quality/refit',
  ]) assert.ok(printed.has(x), `tally routes does not print ${x}`);
});

test('every operation: path parameters declared, responses with the Error schema, auth except openapi.json', () => {
  const resolve = (o) => {
    let x = o;
    for (let i = 0; i < 10 && x && x.$ref; i++) x = x.$ref.replace(/^#\//, '').split('/').reduce((a, k) => a[k], doc);
    return x;
  };
  for (const [p, item] of Object.entries(doc.paths)) {
    const names = [...p.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
    for (const m of Object.keys(item).filter((k) => METHODS.includes(k))) {
      const op = item[m];
      const params = [...(item.parameters || []), ...(op.parameters || [])].map(resolve);
      for (const n of names) {
        const prm = params.find((x) => x.in === 'path' && x.name === n);
        assert.ok(prm && prm.required === true, `${m} ${p}: path parameter ${n} not declared as required`);
      }
      assert.ok(op.responses && Object.keys(op.responses).some((s) => /^2\d\d$/.test(s)), `${m} ${p}: no 2xx response`);
      const errs = Object.entries(op.responses).filter(([s]) => /^[45]\d\d$/.test(s));
      assert.ok(errs.length > 0, `${m} ${p}: no error responses`);
      for (const [s, resp] of errs) {
        const sch = resolve(resolve(resp).content?.['application/json']?.schema);
        assert.equal(sch, doc.components.schemas.Error, `${m} ${p} ${s}: not the Error schema`);
      }
      const security = op.security ?? doc.security;
      if (p === '/api/v1/openapi.json') assert.deepEqual(security, [], 'openapi.json needs no auth');
      else assert.ok(security.some((req) => 'bearer' in req), `${m} ${p}: not bearer-authenticated`);
      if (m === 'post' && ['/api/v1/projects', '/api/v1/projects/{id}/tasks', '/api/v1/assignments/{id}/submit'].includes(p)) {
        assert.ok(op.requestBody?.content?.['application/json']?.schema, `${m} ${p}: request body schema`);
      }
    }
  }
  // every $ref resolves
  const refs = [];
  (function walk(o) { if (o && typeof o === 'object') for (const [k, v] of Object.entries(o)) { if (k === '$ref') refs.push(v); else walk(v); } })(doc);
  for (const r of refs) assert.ok(resolve({ $ref: r }), `dangling $ref ${r}`);
});
