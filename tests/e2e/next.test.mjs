// A submit with "next": true leases the annotator's next task in the same durable
// write; the claim after it hands that lease back. Checked over HTTP: what the
// claim returns, that others do not get the held task, that a bad value is refused
// with nothing kept, and that the held lease survives kill -9 of the server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { World, assertError, ok, sentimentSchema } from './lib.mjs';

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
