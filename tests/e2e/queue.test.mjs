// The queue: claim order, 204, never the same task twice, re-claim, release, lease
// expiry, submit twice, someone else's assignment, heartbeat, min/max responses.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { World, assertError, ok, sentimentSchema, textTasks, sleep, TS_RE, SLOW, rawRequest } from './lib.mjs';

const w = World.create('queue');
let srv, org, mgr, c, anns;

before(async () => {
  org = w.org('Queue Org');
  mgr = w.member(org, 'manager');
  anns = Array.from({ length: 5 }, () => w.member(org, 'annotator'));
  srv = await w.serve();
  c = srv.client(mgr.key);
});
const A = (i) => srv.client(anns[i].key);
const S = { sentiment: 'positive' };

test('claim: highest priority first, then oldest; 204 with no body when nothing is left', async () => {
  const prj = (await c.createProject(sentimentSchema())).id;
  const r1 = await c.createTasks(prj, [
    { data: { text: 'p0 first' }, priority: 0 },
    { data: { text: 'p5 a' }, priority: 5 },
    { data: { text: 'p5 b' }, priority: 5 },
    { data: { text: 'p1' }, priority: 1 },
    { data: { text: 'p-3' }, priority: -3 },
  ]);
  const r2 = await c.createTasks(prj, [
    { data: { text: 'p9 newest' }, priority: 9 },
    { data: { text: 'p0 newest' }, priority: 0 },
    { data: { text: 'p5 newest' }, priority: 5 },
  ]);
  const [p0, p5a, p5b, p1, pm3] = r1.created;
  const [p9, p0n, p5n] = r2.created;
  const expect = [p9, p5a, p5b, p5n, p1, p0, p0n, pm3];
  const got = [];
  const a = A(0);
  for (let i = 0; i < 20; i++) {
    const cl = await a.claim(prj);
    if (!cl) break;
    assert.match(cl.assignment.id, /^asg_/);
    assert.match(cl.assignment.expires_at, TS_RE);
    const lease = Date.parse(cl.assignment.expires_at) - Date.now();
    assert.ok(lease > 590_000 && lease <= 601_000, `expires_at ${cl.assignment.expires_at} is not ~600 s away`);
    assert.equal(typeof cl.task.data.text, 'string');
    got.push(cl.task.id);
    await a.submit(cl.assignment.id, S);
  }
  assert.deepEqual(got, expect);
  const r = await a.post(`/api/v1/projects/${prj}/claim`);
  assert.equal(r.status, 204);
  assert.equal(r.text, '');
  assert.equal(await A(1).claim(prj), null, 'all tasks are completed (min=max=1)');
});

test('claim hands out the task data; the same annotator never gets the same task twice', async () => {
  const prj = (await c.createProject(sentimentSchema({ min_responses: 3, max_responses: 3 }))).id;
  const ids = (await c.createTasks(prj, textTasks(4, 'twice'))).created;
  const a = A(0);
  const seen = [];
  for (let i = 0; i < 10; i++) {
    const cl = await a.claim(prj);
    if (!cl) break;
    assert.deepEqual(cl.task.data, { text: `twice text ${ids.indexOf(cl.task.id)}` });
    seen.push(cl.task.id);
    await a.submit(cl.assignment.id, S);
  }
  assert.deepEqual(seen, ids, 'each task exactly once, in order');
  // other annotators still get them (max 3)
  const b = await A(1).claim(prj);
  assert.equal(b.task.id, ids[0]);
});

test('re-claim while holding a live lease returns the same assignment', async () => {
  const prj = (await c.createProject(sentimentSchema())).id;
  const ids = (await c.createTasks(prj, textTasks(3, 'reclaim'))).created;
  const a = A(0);
  const c1 = await a.claim(prj);
  const c2 = await a.claim(prj);
  const c3 = await a.claim(prj);
  assert.equal(c1.task.id, ids[0]);
  assert.deepEqual(c2.assignment.id, c1.assignment.id);
  assert.deepEqual(c3.task, c1.task);
  // another annotator gets the next task (max_responses 1 → ids[0] is full)
  const b = await A(1).claim(prj);
  assert.equal(b.task.id, ids[1]);
  const k = await c.getProject(prj);
  assert.deepEqual(k.counts, { queued: 1, in_progress: 2, completed: 0, canceled: 0 });
  await a.submit(c1.assignment.id, S);
  const c4 = await a.claim(prj);
  assert.notEqual(c4.assignment.id, c1.assignment.id);
  assert.equal(c4.task.id, ids[2]);
});

test('release: back to the queue; that user never gets it again, another does; release/submit after → 409', async () => {
  const prj = (await c.createProject(sentimentSchema())).id;
  const [tid] = (await c.createTasks(prj, textTasks(1, 'rel'))).created;
  const a = A(0);
  const cl = await a.claim(prj);
  assert.equal(cl.task.id, tid);
  assert.equal(await A(1).claim(prj), null, 'task is leased (max 1)');
  const r = await a.post(`/api/v1/assignments/${cl.assignment.id}/release`);
  assert.deepEqual(ok(r, 200), { assignment: { id: cl.assignment.id, status: 'released' } });
  assert.equal((await c.getTask(tid)).status, 'queued');
  assert.equal(await a.claim(prj), null, 'the releasing user never gets it again');
  const e = assertError(await a.post(`/api/v1/assignments/${cl.assignment.id}/submit`, { answers: S }), 409, 'conflict');
  assert.match(e.message, /released/);
  const e2 = assertError(await a.post(`/api/v1/assignments/${cl.assignment.id}/release`), 409, 'conflict');
  assert.match(e2.message, /released/);
  assertError(await a.post(`/api/v1/assignments/${cl.assignment.id}/heartbeat`), 409, 'conflict');
  const b = await A(1).claim(prj);
  assert.equal(b.task.id, tid, 'another user gets it');
  await A(1).submit(b.assignment.id, S);
  const t = await c.getTask(tid);
  assert.equal(t.status, 'completed');
  assert.deepEqual(t.responses.map((x) => x.user_id), [anns[1].id]);
  assert.equal(await a.claim(prj), null);
});

test('lease expiry: after lease_seconds another user can claim it; the original submit → 409 lease_expired', async () => {
  const prj = (await c.createProject(sentimentSchema({ lease_seconds: 1 }))).id;
  const [tid] = (await c.createTasks(prj, textTasks(1, 'exp'))).created;
  const a = A(0);
  const cl = await a.claim(prj);
  assert.equal(cl.task.id, tid);
  const lease = Date.parse(cl.assignment.expires_at) - Date.now();
  assert.ok(lease > 0 && lease <= 1_100, `expires_at ${cl.assignment.expires_at} is not ~1 s away (${lease} ms)`);
  assert.equal(await A(1).claim(prj), null, 'leased');
  await sleep(2200);
  const b = await A(1).claim(prj);
  assert.ok(b, 'after the lease expired another user can claim the task');
  assert.equal(b.task.id, tid);
  const e = assertError(await a.post(`/api/v1/assignments/${cl.assignment.id}/submit`, { answers: S }), 409, 'conflict');
  assert.match(e.message, /lease_expired/);
  assertError(await a.post(`/api/v1/assignments/${cl.assignment.id}/heartbeat`), 409, 'conflict');
  // the expired user is never handed that task again
  assert.equal(await a.claim(prj), null);
  const s = await A(1).submit(b.assignment.id, S);
  assert.equal(s.task.status, 'completed');
  const t = await c.getTask(tid);
  assert.equal(t.response_count, 1);
  assert.deepEqual(t.responses.map((x) => x.user_id), [anns[1].id]);
});

test('lease expiry also frees a re-claim: the expired lease is not handed out again', async () => {
  const prj = (await c.createProject(sentimentSchema({ lease_seconds: 1 }))).id;
  const ids = (await c.createTasks(prj, textTasks(2, 'exp2'))).created;
  const a = A(2);
  const c1 = await a.claim(prj);
  assert.equal(c1.task.id, ids[0]);
  await sleep(2200);
  const c2 = await a.claim(prj);
  assert.notEqual(c2.assignment.id, c1.assignment.id);
  assert.equal(c2.task.id, ids[1], 'a user never gets a task they were assigned before (expired included)');
});

test('submit twice → 409 already_submitted and only one response is stored', async () => {
  const prj = (await c.createProject(sentimentSchema({ min_responses: 2, max_responses: 2 }))).id;
  const [tid] = (await c.createTasks(prj, textTasks(1, 'dup'))).created;
  const a = A(0);
  const cl = await a.claim(prj);
  const s1 = await a.submit(cl.assignment.id, { sentiment: 'negative' }, 10);
  assert.match(s1.response.id, /^rsp_/);
  assert.equal(s1.task.id, tid);
  assert.equal(s1.task.status, 'in_progress');
  const e = assertError(await a.post(`/api/v1/assignments/${cl.assignment.id}/submit`, { answers: { sentiment: 'positive' }, duration_ms: 20 }), 409, 'conflict');
  assert.match(e.message, /already_submitted/);
  // concurrent double submit on a fresh assignment: exactly one 201
  const b = A(1);
  const cb = await b.claim(prj);
  const rs = await Promise.all(Array.from({ length: 6 }, () => b.post(`/api/v1/assignments/${cb.assignment.id}/submit`, { answers: S, duration_ms: 1 })));
  const codes = rs.map((r) => r.status).sort();
  assert.deepEqual(codes, [201, 409, 409, 409, 409, 409], rs.map(String).join('\n'));
  const t = await c.getTask(tid);
  assert.equal(t.response_count, 2);
  assert.equal(t.status, 'completed');
  assert.deepEqual(t.responses.map((r) => [r.user_id, r.answers, r.duration_ms]), [
    [anns[0].id, { sentiment: 'negative' }, 10],
    [anns[1].id, S, 1],
  ]);
});

test("someone else's assignment: submit / release / heartbeat → 404 and nothing changes", async () => {
  const prj = (await c.createProject(sentimentSchema())).id;
  const [tid] = (await c.createTasks(prj, textTasks(1, 'other'))).created;
  const cl = await A(0).claim(prj);
  const b = A(1);
  assertError(await b.post(`/api/v1/assignments/${cl.assignment.id}/submit`, { answers: S }), 404, 'not_found');
  assertError(await b.post(`/api/v1/assignments/${cl.assignment.id}/release`), 404, 'not_found');
  assertError(await b.post(`/api/v1/assignments/${cl.assignment.id}/heartbeat`), 404, 'not_found');
  // even the manager of the org may not submit for the annotator
  assertError(await c.post(`/api/v1/assignments/${cl.assignment.id}/submit`, { answers: S }), 404, 'not_found');
  assert.equal((await c.getTask(tid)).response_count, 0);
  const s = await A(0).submit(cl.assignment.id, S);
  assert.equal(s.task.status, 'completed');
  for (const id of ['asg_nope', 'asg_', tid, cl.assignment.id.replace(/^asg_/, 'tsk_')]) {
    assertError(await b.post(`/api/v1/assignments/${id}/submit`, { answers: S }), 404, 'not_found');
  }
});

test('heartbeat extends expires_at by lease_seconds from now', async () => {
  const prj = (await c.createProject(sentimentSchema({ lease_seconds: 3 }))).id;
  const [tid] = (await c.createTasks(prj, textTasks(1, 'hb'))).created;
  const a = A(3);
  const cl = await a.claim(prj);
  const e0 = Date.parse(cl.assignment.expires_at);
  await sleep(1200);
  const h = ok(await a.post(`/api/v1/assignments/${cl.assignment.id}/heartbeat`), 200);
  assert.equal(h.assignment.id, cl.assignment.id);
  assert.match(h.assignment.expires_at, TS_RE);
  const e1 = Date.parse(h.assignment.expires_at);
  assert.ok(e1 - e0 >= 1000, `heartbeat did not extend: ${cl.assignment.expires_at} → ${h.assignment.expires_at}`);
  assert.ok(Math.abs(e1 - (Date.now() + 3000)) < 1000 * SLOW, `expires_at ${h.assignment.expires_at} is not now + 3 s`);
  // keep it alive past the original lease with heartbeats; nobody else may take it
  for (let i = 0; i < 3; i++) {
    await sleep(1200);
    ok(await a.post(`/api/v1/assignments/${cl.assignment.id}/heartbeat`), 200);
  }
  assert.ok(Date.now() > e0 + 500, 'the original lease has passed');
  assert.equal(await A(4).claim(prj), null, 'a heartbeated lease is still live');
  const re = await a.claim(prj);
  assert.equal(re.assignment.id, cl.assignment.id, 're-claim returns the live lease');
  const s = await a.submit(cl.assignment.id, S);
  assert.equal(s.task.id, tid);
  assert.equal(s.task.status, 'completed');
  assertError(await a.post(`/api/v1/assignments/${cl.assignment.id}/heartbeat`), 409, 'conflict');
});

test('min=max=3: completes after 3 responses from 3 distinct users, never handed to a 4th', async () => {
  const prj = (await c.createProject(sentimentSchema({ min_responses: 3, max_responses: 3 }))).id;
  const [tid] = (await c.createTasks(prj, textTasks(1, 'three'))).created;
  const cls = [];
  for (let i = 0; i < 3; i++) {
    const cl = await A(i).claim(prj);
    assert.equal(cl.task.id, tid);
    cls.push(cl);
  }
  assert.equal(new Set(cls.map((x) => x.assignment.id)).size, 3);
  assert.equal(await A(3).claim(prj), null, '3 live leases: full');
  const statuses = [];
  for (let i = 0; i < 3; i++) statuses.push((await A(i).submit(cls[i].assignment.id, S)).task.status);
  assert.deepEqual(statuses, ['in_progress', 'in_progress', 'completed']);
  assert.equal(await A(3).claim(prj), null, 'completed: not handed to a 4th');
  assert.equal(await A(4).claim(prj), null);
  const t = await c.getTask(tid);
  assert.equal(t.status, 'completed');
  assert.equal(t.response_count, 3);
  assert.deepEqual(t.responses.map((r) => r.user_id).sort(), [anns[0].id, anns[1].id, anns[2].id].sort());
  assert.deepEqual((await c.getProject(prj)).counts, { queued: 0, in_progress: 0, completed: 1, canceled: 0 });
});

test('min=2 max=3: completes at 2 responses; a 3rd live lease may still be submitted', async () => {
  const prj = (await c.createProject(sentimentSchema({ min_responses: 2, max_responses: 3 }))).id;
  const [tid] = (await c.createTasks(prj, textTasks(1, 'twothree'))).created;
  const cls = [];
  for (let i = 0; i < 3; i++) cls.push(await A(i).claim(prj));
  assert.ok(cls.every((x) => x && x.task.id === tid));
  assert.equal(await A(3).claim(prj), null);
  assert.equal((await A(0).submit(cls[0].assignment.id, S)).task.status, 'in_progress');
  assert.equal((await A(1).submit(cls[1].assignment.id, S)).task.status, 'completed');
  assert.equal(await A(3).claim(prj), null, 'completed tasks are not handed out');
  const third = await A(2).post(`/api/v1/assignments/${cls[2].assignment.id}/submit`, { answers: S });
  // either accepted (max 3) or refused as task_closed; never a 5xx, and counts agree
  assert.ok(third.status === 201 || third.status === 409, String(third));
  if (third.status === 409) assert.match(third.body.error.message, /task_closed/);
  const t = await c.getTask(tid);
  assert.equal(t.status, 'completed');
  assert.equal(t.response_count, third.status === 201 ? 3 : 2);
  assert.equal(t.responses.length, t.response_count);
});

test('claim on a project with no tasks → 204; claim/submit routes take no body but tolerate an empty one', async () => {
  const prj = (await c.createProject(sentimentSchema())).id;
  const r = await A(0).post(`/api/v1/projects/${prj}/claim`);
  assert.equal(r.status, 204);
  assert.equal(r.text, '');
  const r2 = await A(0).post(`/api/v1/projects/${prj}/claim`, '{}');
  assert.equal(r2.status, 204);
});

test('a 204 has neither a body nor a Content-Length (RFC 9110), and its keep-alive connection goes on', async () => {
  const prj = (await c.createProject(sentimentSchema())).id;
  const claim = (last) => `POST /api/v1/projects/${prj}/claim HTTP/1.1\r\nHost: x\r\n` +
    `Authorization: Bearer ${anns[1].key}\r\nContent-Length: 0\r\n${last ? 'Connection: close\r\n' : ''}\r\n`;
  // two claims on one connection, the second asking to close it after
  const r = await rawRequest(srv.port, claim(false) + claim(true));
  const answers = r.text.split(/(?=HTTP\/1\.1 )/);
  assert.equal(answers.length, 2, r.text);
  for (const a of answers) {
    assert.match(a, /^HTTP\/1\.1 204 /, a);
    assert.doesNotMatch(a, /\r\ncontent-length:/i, a);
    assert.ok(a.endsWith('\r\n\r\n'), `no body after the head: ${JSON.stringify(a)}`);
  }
});
