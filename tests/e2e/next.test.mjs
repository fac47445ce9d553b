// A submit with "next": true leases the annotator's next task in the same durable
// write; the claim after it hands that lease back. Checked over HTTP: what the
// claim returns, that others do not get the held task, that a bad value is refused
// with nothing kept, and that the held lease survives kill -9 of the server; and
// that the event loop hands the held lease back itself only while nothing touched it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { World, assertError, ok, sentimentSchema, sleep } from './lib.mjs';

const S = { sentiment: 'positive' };

test('submit with "next": the next task is held for its annotator, through kill -9', async () => {
  const w = World.create('next');
  const org = w.org('Next Org');
  const mgr = w.member(org, 'manager');
  const anns = [w.member(org, 'annotator'), w.member(org, 'annotator')];
  let srv = await w.serve();
  const prj = (await srv.client(mgr.key).createProject(sentimentSchema())).id;
  const ids = (await srv.client(mgr.key).createTasks(prj, [
    { data: { text: 'first' }, priority: 9 },
    { data: { text: 'second' }, priority: 5 },
    { data: { text: 'third' }, priority: 1 },
    { data: { text: 'fourth' } },
  ])).created;
  let a = srv.client(anns[0].key);
  let b = srv.client(anns[1].key);

  const c1 = await a.claim(prj);
  assert.equal(c1.task.id, ids[0]);
  // a bad "next" is refused before anything is written
  for (const bad of ['yes', 1, {}]) {
    assertError(await a.post(`/api/v1/assignments/${c1.assignment.id}/submit`, { answers: S, next: bad }), 422, 'invalid', 'next');
  }
  assert.equal((await srv.client(mgr.key).getTask(ids[0])).responses.length, 0);
  assert.equal((await srv.client(mgr.key).getTask(ids[1])).status, 'queued');

  const r = ok(await a.post(`/api/v1/assignments/${c1.assignment.id}/submit`, { answers: S, duration_ms: 5, next: true }), 201);
  assert.deepEqual(Object.keys(r).sort(), ['response', 'task'], 'the submit reply is the plain one');
  assert.equal(r.task.status, 'completed');
  // "second" is the first annotator's now: the other one gets "third"
  assert.equal((await srv.client(mgr.key).getTask(ids[1])).status, 'in_progress');
  const cb = await b.claim(prj);
  assert.equal(cb.task.id, ids[2]);

  // the server dies right after acknowledging: the held lease was part of that write
  await srv.kill();
  w.servers = w.servers.filter((s) => s !== srv);
  srv = await w.serve();
  a = srv.client(anns[0].key);
  b = srv.client(anns[1].key);
  const c2 = await a.claim(prj);
  assert.equal(c2.task.id, ids[1]);
  assert.deepEqual(c2.task.data, { text: 'second' });
  assert.deepEqual(await a.claim(prj), c2, 'claiming again hands back the same lease');
  assert.deepEqual(await b.claim(prj), cb, "the other annotator's lease survived too");

  // without "next" nothing is held: the last task goes to whoever claims first
  ok(await a.post(`/api/v1/assignments/${c2.assignment.id}/submit`, { answers: S, next: false }), 201);
  assert.equal((await srv.client(mgr.key).getTask(ids[3])).status, 'queued');
  ok(await b.post(`/api/v1/assignments/${cb.assignment.id}/submit`, { answers: S, next: true }), 201);
  assert.equal((await b.claim(prj)).task.id, ids[3]);
  assert.equal(await a.claim(prj), null, 'nothing left for the first annotator');
  // nothing left to hold: the submit stands, the claim after it is a 204
  const cl = await b.claim(prj);
  ok(await b.post(`/api/v1/assignments/${cl.assignment.id}/submit`, { answers: S, next: true }), 201);
  assert.equal(await b.claim(prj), null);
  for (const id of ids) assert.equal((await srv.client(mgr.key).getTask(id)).status, 'completed');
  await w.close();
});

// The claim right after a submit with "next" is answered by the event loop from
// what the submit left (src/http/handback.h): it must be the very reply the
// executor gives, go to that key alone, and stop as soon as anything touched the
// lease: a claim or release on another key of the same user, a cancel, age, a key
// revoked from the CLI.
test('the claim after a submit with "next" is handed back at once, only while nothing touched the lease', async () => {
  const w = World.create('handback');
  const org = w.org('Handback Org');
  const rivalOrg = w.org('Handback Rival');
  const mgr = w.member(org, 'manager');
  const ann = w.member(org, 'annotator');
  const key2 = w.key(ann.email, org).key;
  const other = w.member(org, 'annotator');
  const rival = w.member(rivalOrg, 'annotator');
  const srv = await w.serve();
  const m = srv.client(mgr.key);
  const prj = (await m.createProject(sentimentSchema())).id;
  const ids = (await m.createTasks(prj, Array.from({ length: 10 }, (_, i) => (
    { data: { text: `task ${i}` }, priority: 10 - i })))).created;
  const a = srv.client(ann.key);
  const a2 = srv.client(key2);
  const submitNext = async (c) => ok(await a.post(`/api/v1/assignments/${c.assignment.id}/submit`,
    { answers: S, duration_ms: 5, next: true }), 201);

  const c0 = await a.claim(prj);
  assert.equal(c0.task.id, ids[0]);
  await submitNext(c0);
  // neither a rival's key nor a colleague's reaches the held lease
  assertError(await srv.client(rival.key).post(`/api/v1/projects/${prj}/claim`), 404, 'not_found');
  assert.equal((await srv.client(other.key).claim(prj)).task.id, ids[2]);
  const c1 = await a.claim(prj); // handed back by the event loop
  assert.equal(c1.task.id, ids[1]);
  assert.deepEqual(c1.task.data, { text: 'task 1' });
  assert.deepEqual(await a.claim(prj), c1, 'the executor gives the very same reply');

  // the held lease claimed and released on the user's other key: the first key's
  // claim gets a new task, not the released one
  await submitNext(c1);
  const h = await a2.claim(prj);
  assert.equal(h.task.id, ids[3]);
  ok(await a2.post(`/api/v1/assignments/${h.assignment.id}/release`), 200);
  const c4 = await a.claim(prj);
  assert.equal(c4.task.id, ids[4]);
  assert.notEqual(c4.assignment.id, h.assignment.id);

  // the held task canceled by the manager: the claim goes on to the next one
  await submitNext(c4);
  ok(await m.post(`/api/v1/tasks/${ids[5]}/cancel`), 200);
  const c6 = await a.claim(prj);
  assert.equal(c6.task.id, ids[6]);

  // older than the handback's time to live: the executor hands it back instead
  await submitNext(c6);
  await sleep(400);
  const c7 = await a.claim(prj);
  assert.equal(c7.task.id, ids[7]);
  assert.deepEqual(await a.claim(prj), c7);

  await submitNext(c7);
  const c8 = await a.claim(prj); // handed back
  assert.equal(c8.task.id, ids[8]);
  ok(await a.post(`/api/v1/assignments/${c8.assignment.id}/submit`, { answers: S }), 201);

  // a key revoked from the CLI (another process) right after its submit held a
  // lease: once the executor has seen that commit (any request will do), the
  // key's claim is refused, handback or not
  const k3 = w.key(ann.email, org);
  const a3 = srv.client(k3.key);
  const more = (await m.createTasks(prj, [{ data: { text: 'task 10' } }])).created;
  const c9 = await a3.claim(prj);
  assert.equal(c9.task.id, ids[9]);
  ok(await a3.post(`/api/v1/assignments/${c9.assignment.id}/submit`, { answers: S, next: true }), 201);
  w.ok(['key', 'revoke', k3.keyId]);
  assert.equal((await srv.client(other.key).claim(prj)).task.id, ids[2]);
  assertError(await a3.post(`/api/v1/projects/${prj}/claim`), 401, 'unauthorized');
  assert.equal((await m.getTask(more[0])).status, 'in_progress', 'the lease stands, for the user');

  for (const [i, status] of [[0, 'completed'], [1, 'completed'], [2, 'in_progress'], [3, 'queued'],
    [4, 'completed'], [5, 'canceled'], [6, 'completed'], [7, 'completed'], [8, 'completed'], [9, 'completed']]) {
    assert.equal((await m.getTask(ids[i])).status, status, `task ${i}`);
  }
  // the server's own count: at most the two claims that nothing touched (a slow
  // host may send one of them the slow way), at least one
  await srv.stop();
  w.servers = w.servers.filter((s) => s !== srv);
  const n = Number((srv.log.match(/(\d+) claims handed back by the event loop/) || [])[1]);
  assert.ok(n >= 1 && n <= 2, `claims handed back: ${n}; log: ${srv.log.slice(-500)}`);
  await w.close();
});
