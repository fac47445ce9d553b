// Authentication (401) and role rules (403) — docs/API.md "Errors", "Roles".
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { World, assertError, ok, sentimentSchema, textTasks } from './lib.mjs';

const w = World.create('auth');
let srv, org, owner, manager, reviewer, annotator, prj, taskIds;

before(async () => {
  org = w.org('Acme Auth');
  owner = w.member(org, 'owner');
  manager = w.member(org, 'manager');
  reviewer = w.member(org, 'reviewer');
  annotator = w.member(org, 'annotator');
  srv = await w.serve();
  const p = await srv.client(manager.key).createProject(sentimentSchema());
  prj = p.id;
  taskIds = (await srv.client(manager.key).createTasks(prj, textTasks(3, 'auth'))).created;
});

const routes = () => [
  ['GET', '/api/v1/me'],
  ['GET', '/api/v1/projects'],
  ['POST', '/api/v1/projects', sentimentSchema()],
  ['GET', `/api/v1/projects/${prj}`],
  ['GET', `/api/v1/projects/${prj}/tasks`],
  ['POST', `/api/v1/projects/${prj}/tasks`, { tasks: textTasks(1, 'noauth') }],
  ['POST', `/api/v1/projects/${prj}/claim`],
  ['GET', `/api/v1/projects/${prj}/export?format=jsonl`],
  ['GET', `/api/v1/tasks/${taskIds[0]}`],
  ['POST', `/api/v1/tasks/${taskIds[0]}/cancel`],
  ['GET', `/api/v1/projects/${prj}/quality`],
  ['POST', `/api/v1/projects/${prj}/quality/refit`],
];

test('no key → 401 unauthorized with the error body, on every authenticated route', async () => {
  const c = srv.client(null);
  for (const [m, p, b] of routes()) {
    assertError(await c.req(m, p, b), 401, 'unauthorized');
  }
  // nothing was written by the refused requests
  const list = await srv.client(manager.key).get(`/api/v1/projects`);
  assert.equal(ok(list, 200).projects.length, 1);
  const tasks = await srv.client(manager.key).listAll(prj);
  assert.equal(tasks.length, 3);
  assert.ok(tasks.every((t) => t.status === 'queued'), 'unauthenticated cancel/claim changed a task');
});

test('bad keys → 401: garbage, wrong scheme, empty bearer, tampered key, key with spaces', async () => {
  const c = srv.client(null);
  const k = manager.key;
  const tampered = k.slice(0, -1) + (k.at(-1) === 'A' ? 'B' : 'A');
  const headers = [
    'Bearer garbage', `Basic ${Buffer.from('a:b').toString('base64')}`, 'Bearer ', 'Bearer',
    `Bearer ${tampered}`, `Bearer ${k}x`, `Bearer ${k.slice(0, -3)}`, `Token ${k}`, `${k}`,
    `Bearer ${'A'.repeat(5000)}`, `Bearer ${k} ${k}`,
  ];
  for (const h of headers) {
    const r = await c.get('/api/v1/me', { authHeader: h });
    assertError(r, 401, 'unauthorized');
  }
  // the real key, for contrast (case-insensitive scheme is allowed by RFC 7235 but not required: not tested)
  const me = await srv.client(k).me();
  assert.equal(me.user.id, manager.id);
});

test('GET /me tells user, org and role for each role', async () => {
  for (const m of [owner, manager, reviewer, annotator]) {
    const me = await srv.client(m.key).me();
    assert.deepEqual(me.user, { id: m.id, email: m.email });
    assert.deepEqual(me.org, { id: org, name: 'Acme Auth' });
    assert.equal(me.role, m.role);
  }
});

test('revoked key → 401; other keys of the same user keep working', async () => {
  const email = `revoke-${process.pid}@example.com`;
  const uid = w.user(org, email, 'manager');
  const k1 = w.key(email, org);
  const k2 = w.key(email, org);
  assert.notEqual(k1.key, k2.key);
  assert.notEqual(k1.keyId, k2.keyId);
  assert.match(k1.keyId, /^key_/);
  assert.equal((await srv.client(k1.key).me()).user.id, uid);
  const r = w.ok(['key', 'revoke', k1.keyId]);
  assert.equal(r.stdout, '', 'key revoke prints nothing on stdout');
  assertError(await srv.client(k1.key).get('/api/v1/me'), 401, 'unauthorized');
  assertError(await srv.client(k1.key).get(`/api/v1/projects/${prj}`), 401, 'unauthorized');
  assertError(await srv.client(k1.key).post(`/api/v1/projects/${prj}/claim`), 401, 'unauthorized');
  assert.equal((await srv.client(k2.key).me()).user.id, uid);
});

test('openapi.json needs no key', async () => {
  const r = await srv.client(null).get('/api/v1/openapi.json');
  assert.equal(r.status, 200);
  assert.match(r.body.openapi, /^3\.1\./);
});

test('annotator: reads projects, claims, submits; cannot create projects/tasks, list/read tasks, export, cancel (403)', async () => {
  const c = srv.client(annotator.key);
  assertError(await c.post('/api/v1/projects', sentimentSchema({ name: 'nope' })), 403, 'forbidden');
  assertError(await c.get(`/api/v1/projects/${prj}/tasks`), 403, 'forbidden');
  assertError(await c.get(`/api/v1/tasks/${taskIds[0]}`), 403, 'forbidden');
  assertError(await c.get(`/api/v1/projects/${prj}/export?format=jsonl`), 403, 'forbidden');
  assertError(await c.post(`/api/v1/projects/${prj}/tasks`, { tasks: textTasks(1, 'ann') }), 403, 'forbidden');
  assertError(await c.post(`/api/v1/tasks/${taskIds[2]}/cancel`), 403, 'forbidden');
  assertError(await c.get(`/api/v1/projects/${prj}/quality`), 403, 'forbidden');
  assertError(await c.post(`/api/v1/projects/${prj}/quality/refit`), 403, 'forbidden');
  const list = ok(await c.get('/api/v1/projects'), 200);
  assert.deepEqual(list.projects.map((p) => p.id), [prj]);
  assert.equal((await c.getProject(prj)).id, prj);
  const claim = await c.claim(prj);
  assert.equal(claim.task.id, taskIds[0]);
  const sub = await c.submit(claim.assignment.id, { sentiment: 'neutral' });
  assert.equal(sub.task.status, 'completed');
  // nothing forbidden happened
  const projects = ok(await srv.client(owner.key).get('/api/v1/projects'), 200).projects;
  assert.equal(projects.length, 1);
  const t2 = await srv.client(owner.key).getTask(taskIds[2]);
  assert.equal(t2.status, 'queued');
  assert.equal((await srv.client(owner.key).listAll(prj)).length, 3);
});

test('reviewer: lists tasks, reads tasks, exports; cannot create tasks/projects or cancel (403)', async () => {
  const c = srv.client(reviewer.key);
  const tasks = await c.listAll(prj);
  assert.deepEqual(tasks.map((t) => t.id), taskIds);
  const t0 = await c.getTask(taskIds[0]);
  assert.equal(t0.responses.length, 1);
  assert.equal(t0.responses[0].user_id, annotator.id);
  const lines = await c.exportLines(prj);
  assert.deepEqual(lines.map((l) => l.id), taskIds);
  assertError(await c.post(`/api/v1/projects/${prj}/tasks`, { tasks: textTasks(1, 'rev') }), 403, 'forbidden');
  assertError(await c.post('/api/v1/projects', sentimentSchema({ name: 'nope' })), 403, 'forbidden');
  assertError(await c.post(`/api/v1/tasks/${taskIds[2]}/cancel`), 403, 'forbidden');
  assertError(await c.post(`/api/v1/projects/${prj}/quality/refit`), 403, 'forbidden');
  assert.equal(ok(await c.get(`/api/v1/projects/${prj}/quality`), 200).project_id, prj);
  assert.equal((await c.listAll(prj)).length, 3);
  assert.equal((await c.getTask(taskIds[2])).status, 'queued');
});

test('manager and owner create projects and tasks and cancel', async () => {
  for (const m of [manager, owner]) {
    const c = srv.client(m.key);
    const p = await c.createProject(sentimentSchema({ name: `by ${m.role}` }));
    assert.equal(p.name, `by ${m.role}`);
    const t = await c.createTasks(p.id, textTasks(2, m.role));
    assert.equal(t.created.length, 2);
    const can = await c.post(`/api/v1/tasks/${t.created[1]}/cancel`);
    assert.equal(can.status, 200, String(can));
    assert.equal((await c.getTask(t.created[1])).status, 'canceled');
    const rf = await c.post(`/api/v1/projects/${p.id}/quality/refit`);
    assert.equal(rf.status, 202, String(rf));
    assert.deepEqual(rf.body, { queued: true, project_id: p.id });
  }
});
