// Quality (docs/API.md): consensus on tasks and in the export, gold tasks,
// qualification, pausing by gold accuracy (204 + Tally-Reason), the quality report, refit.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { World, assertError, ok, sleep, SLOW } from './lib.mjs';

const w = World.create('quality-api');
let srv, mgr, rev, anns, c;

const schema = (quality, over = {}) => ({
  name: 'Quality',
  fields: [{ name: 'text', type: 'text' }],
  questions: [
    { name: 's', type: 'choice', options: ['a', 'b', 'c'] },
    { name: 'r', type: 'rating', min: 1, max: 5 },
    { name: 'note', type: 'text', required: false },
  ],
  min_responses: 3, max_responses: 3,
  ...(quality ? { quality } : {}),
  ...over,
});

before(async () => {
  const org = w.org('Quality Org');
  mgr = w.member(org, 'manager');
  rev = w.member(org, 'reviewer');
  anns = Array.from({ length: 4 }, () => w.member(org, 'annotator'));
  srv = await w.serve();
  c = srv.client(mgr.key);
});
const A = (i) => srv.client(anns[i].key);

/** Asks for a refit of prj (asserting 202 and its body) and returns the report's
 * last_fit once it differs from `before`. */
async function refitted(prj, before) {
  const rf = await c.post(`/api/v1/projects/${prj}/quality/refit`);
  assert.equal(rf.status, 202, String(rf));
  assert.deepEqual(rf.body, { queued: true, project_id: prj });
  for (let i = 0; i < 100 * SLOW; i++) {
    const q = ok(await c.get(`/api/v1/projects/${prj}/quality`), 200);
    if (q.last_fit && JSON.stringify(q.last_fit) !== JSON.stringify(before)) return q.last_fit;
    await sleep(100);
  }
  assert.fail('last_fit did not appear within 10 s of the refit');
}

test('quality settings are normalized with their defaults; bad ones → 422 quality.<key>', async () => {
  const p = await c.createProject(schema());
  assert.deepEqual(p.quality, { confidence_target: 0, gold_rate: 0, qualification_tasks: 0, gold_min_accuracy: 0, refit_every: 500 });
  const q = await c.createProject(schema({ gold_rate: 0.25, qualification_tasks: 2 }));
  assert.equal(q.quality.gold_rate, 0.25);
  assert.equal(q.quality.qualification_tasks, 2);
  assert.equal(q.quality.refit_every, 500);
  for (const [k, v] of [['gold_rate', 0.95], ['gold_rate', -0.1], ['qualification_tasks', -1], ['qualification_tasks', 1.5], ['confidence_target', 1.5], ['gold_min_accuracy', 2]]) {
    assertError(await c.post('/api/v1/projects', schema({ [k]: v })), 422, 'invalid', `quality.${k}`);
  }
});

test('consensus: null before the first response, then per categorical question with votes; same in the export', async () => {
  const prj = (await c.createProject(schema())).id;
  const [t0, t1] = (await c.createTasks(prj, [{ data: { text: 'x' } }, { data: { text: 'y' } }])).created;
  assert.equal((await c.getTask(t0)).consensus, null);
  const answers = [{ s: 'a', r: 4 }, { s: 'a', r: 4, note: 'n' }, { s: 'b', r: 2 }];
  for (let i = 0; i < 3; i++) {
    const cl = await A(i).claim(prj);
    assert.equal(cl.task.id, t0);
    assert.ok(!('consensus' in cl.task) && !('gold' in cl.task), `claim shows more than id and data: ${JSON.stringify(cl.task)}`);
    await A(i).submit(cl.assignment.id, answers[i]);
  }
  const t = await c.getTask(t0);
  assert.equal(t.status, 'completed');
  assert.deepEqual(Object.keys(t.consensus).sort(), ['r', 's'], 'consensus only for categorical questions (choice, rating, compare)');
  assert.equal(t.consensus.s.label, 'a');
  assert.deepEqual(t.consensus.s.votes, { a: 2, b: 1 });
  assert.ok(t.consensus.s.confidence > 0.5 && t.consensus.s.confidence < 1, `confidence ${t.consensus.s.confidence}`);
  assert.ok(['one_coin', 'dawid_skene'].includes(t.consensus.s.method));
  assert.equal(t.consensus.r.label, 4);
  assert.deepEqual(t.consensus.r.votes, { 4: 2, 2: 1 });
  const lines = await c.exportLines(prj);
  assert.deepEqual(lines.map((l) => l.id), [t0, t1]);
  assert.deepEqual(lines[0].consensus, t.consensus);
  assert.equal(lines[1].consensus, null);
  const listed = (await c.listAll(prj)).find((x) => x.id === t0);
  assert.deepEqual(listed.consensus, t.consensus);
});

test('gold: checked like answers, never shown to annotators, answered once by each, never completes', async () => {
  // qualification_tasks 1: each annotator's first claim is a gold task (gold_rate 0 would never serve gold)
  const prj = (await c.createProject(schema({ qualification_tasks: 1 }, { min_responses: 1, max_responses: 1 }))).id;
  const path = `/api/v1/projects/${prj}/tasks`;
  assertError(await c.post(path, { tasks: [{ data: { text: 'g' }, gold: { s: 'z' } }] }), 422, 'invalid', 'tasks[0].gold.s');
  assertError(await c.post(path, { tasks: [{ data: { text: 'ok' } }, { data: { text: 'g' }, gold: { nope: 'a' } }] }), 422, 'invalid', 'tasks[1].gold.nope');
  assertError(await c.post(path, { tasks: [{ data: { text: 'g' }, gold: 'a' }] }), 422, 'invalid', 'tasks[0].gold');
  assert.equal((await c.listAll(prj)).length, 0);
  const [g] = (await c.createTasks(prj, [{ data: { text: 'gold one' }, gold: { s: 'a' } }])).created;
  const seen = [];
  for (let i = 0; i < 3; i++) {
    const cl = await A(i).claim(prj);
    assert.ok(cl, `annotator ${i} gets the gold task (max_responses does not cap gold)`);
    assert.equal(cl.task.id, g);
    assert.deepEqual(Object.keys(cl.task).sort(), ['data', 'id']);
    assert.ok(!JSON.stringify(cl).includes('"gold"'));
    const s = await A(i).submit(cl.assignment.id, { s: i === 2 ? 'b' : 'a', r: 3 });
    assert.notEqual(s.task.status, 'completed', 'a gold task never completes');
    seen.push(s.response.id);
    assert.equal(await A(i).claim(prj), null, 'each annotator answers a gold task once');
  }
  const t = await srv.client(rev.key).getTask(g);
  assert.deepEqual(t.gold, { s: 'a' });
  assert.equal(t.response_count, 3);
  assert.notEqual(t.status, 'completed');
  const line = (await srv.client(rev.key).exportLines(prj))[0];
  assert.deepEqual(line.gold, { s: 'a' });
  // a gold task nobody answered yet counts too (the report reads answered tasks
  // only, and counts gold apart)
  await c.createTasks(prj, [{ data: { text: 'gold two' }, gold: { s: 'b' } }, { data: { text: 'plain' } }]);
  const rep = ok(await srv.client(rev.key).get(`/api/v1/projects/${prj}/quality`), 200);
  assert.equal(rep.counts.gold_tasks, 2);
  assert.equal(rep.counts.responses, 3);
  assert.equal(rep.counts.queued, 2);
  const byUser = Object.fromEntries(rep.annotators.map((x) => [x.user_id, x]));
  assert.deepEqual([byUser[anns[0].id].gold.seen, byUser[anns[0].id].gold.correct], [1, 1]);
  assert.deepEqual([byUser[anns[2].id].gold.seen, byUser[anns[2].id].gold.correct], [1, 0]);
});

test('qualification_tasks + gold_min_accuracy: first N claims are gold; a failing annotator is paused (204 + Tally-Reason)', async () => {
  const prj = (await c.createProject(schema({ qualification_tasks: 3, gold_min_accuracy: 0.9 }, { min_responses: 1, max_responses: 1 }))).id;
  const normal = (await c.createTasks(prj, Array.from({ length: 5 }, (_, i) => ({ data: { text: `n${i}` }, priority: 10 })))).created;
  const gold = (await c.createTasks(prj, Array.from({ length: 3 }, (_, i) => ({ data: { text: `g${i}` }, gold: { s: 'a' } })))).created;
  // good annotator: 3 gold first (despite lower priority), all right, then normal tasks
  const good = A(0);
  const got = [];
  for (let i = 0; i < 4; i++) {
    const cl = await good.claim(prj);
    got.push(cl.task.id);
    await good.submit(cl.assignment.id, { s: 'a', r: 5 });
  }
  assert.deepEqual(got.slice(0, 3).sort(), [...gold].sort(), 'the first 3 claims are the gold tasks');
  assert.ok(normal.includes(got[3]), 'after qualification: normal tasks');
  // bad annotator: wrong gold answers → paused (0/1 already has a 95% Wilson upper bound of 0.79 < 0.9)
  const bad = A(1);
  let wrong = 0;
  for (let i = 0; i < 3; i++) {
    const cl = await bad.claim(prj);
    if (!cl) break;
    assert.ok(gold.includes(cl.task.id), 'a paused or qualifying annotator gets only gold');
    await bad.submit(cl.assignment.id, { s: 'c', r: 1 });
    wrong++;
  }
  assert.ok(wrong >= 1);
  const r = await bad.post(`/api/v1/projects/${prj}/claim`);
  assert.equal(r.status, 204, String(r));
  assert.equal(r.text, '');
  const reason = r.headers.get('tally-reason');
  assert.ok(reason && /^paused/.test(reason), `Tally-Reason: ${reason}`);
  const rep = ok(await c.get(`/api/v1/projects/${prj}/quality`), 200);
  const byUser = Object.fromEntries(rep.annotators.map((x) => [x.user_id, x]));
  assert.equal(byUser[anns[1].id].paused, true);
  assert.deepEqual([byUser[anns[1].id].gold.seen, byUser[anns[1].id].gold.correct], [wrong, 0]);
  assert.equal(byUser[anns[0].id].paused, false);
  assert.equal(byUser[anns[0].id].gold.accuracy, 1);
  assert.ok(byUser[anns[1].id].gold.wilson_high < 0.9);
  // the good one keeps working
  assert.ok(await good.claim(prj));
});

test('quality report and refit: roles, 202, last_fit appears', async () => {
  const prj = (await c.createProject(schema())).id;
  const ids = (await c.createTasks(prj, Array.from({ length: 4 }, (_, i) => ({ data: { text: `q${i}` } })))).created;
  for (let i = 0; i < 3; i++) {
    for (let k = 0; k < 4; k++) {
      const cl = await A(i).claim(prj);
      await A(i).submit(cl.assignment.id, { s: k % 2 ? 'a' : 'b', r: 3 });
    }
  }
  assertError(await A(0).get(`/api/v1/projects/${prj}/quality`), 403, 'forbidden');
  assertError(await srv.client(rev.key).post(`/api/v1/projects/${prj}/quality/refit`), 403, 'forbidden');
  const rep = ok(await srv.client(rev.key).get(`/api/v1/projects/${prj}/quality`), 200);
  assert.equal(rep.project_id, prj);
  assert.deepEqual(rep.counts, { queued: 0, in_progress: 0, completed: 4, canceled: 0, gold_tasks: 0, responses: 12 });
  assert.deepEqual(rep.questions.map((q) => [q.name, q.type, q.alpha_level]), [['s', 'choice', 'nominal'], ['r', 'rating', 'interval']]);
  const qs = rep.questions[0];
  assert.equal(qs.units, 4);
  assert.equal(qs.answers, 12);
  assert.equal(qs.krippendorff_alpha, 1, 'all three annotators agree on every task');
  assert.equal(rep.annotators.length, 3);
  assert.ok(rep.annotators.every((x) => x.responses === 4 && x.agreement_with_consensus === 1 && x.paused === false));
  const fit = await refitted(prj, rep.last_fit);
  assert.equal(fit.method, 'dawid_skene');
  assert.equal(fit.answers, 24, '12 responses × 2 categorical questions');
  assert.equal(fit.annotators, 3);
  const t = await c.getTask(ids[0]);
  assert.equal(t.consensus.s.method, 'dawid_skene');
  assert.equal(t.consensus.s.label, 'b');
  // the CLI agrees (tally quality PROJECT)
  const cli = JSON.parse(w.ok(['quality', prj]).stdout);
  assert.equal(cli.project_id, prj);
  assert.deepEqual(cli.counts, rep.counts);
});

test('a compare question (its labels come from the task data) in the quality report and the refit', async () => {
  const prj = (await c.createProject({
    name: 'Compare',
    fields: [{ name: 'prompt', type: 'text' }, { name: 'resp', type: 'responses' }],
    questions: [{ name: 'better', type: 'compare', field: 'resp', allow_tie: true }],
    min_responses: 3, max_responses: 3,
  })).id;
  const ids = (await c.createTasks(prj, [
    { data: { prompt: 'p0', resp: ['x', 'y'] } },
    { data: { prompt: 'p1', resp: ['x', 'y', 'z'] } },
  ])).created;
  // task 0: 1, 1, tie; task 1: 2, 2, 2
  const picks = [[1, 2], [1, 2], ['tie', 2]];
  for (let i = 0; i < 3; i++) {
    for (let k = 0; k < 2; k++) {
      const cl = await A(i).claim(prj);
      await A(i).submit(cl.assignment.id, { better: picks[i][ids.indexOf(cl.task.id)] });
    }
  }
  const rep = ok(await c.get(`/api/v1/projects/${prj}/quality`), 200);
  assert.deepEqual(rep.questions.map((q) => [q.name, q.type, q.units, q.answers]), [['better', 'compare', 2, 6]]);
  const agree = Object.fromEntries(rep.annotators.map((x) => [x.user_id, x.agreement_with_consensus]));
  assert.deepEqual([0, 1, 2].map((i) => agree[anns[i].id]), [1, 1, 0.5], 'the one who said tie on task 0 agrees on half');
  const fit = await refitted(prj, rep.last_fit);
  assert.equal(fit.answers, 6);
  const [t0, t1] = [await c.getTask(ids[0]), await c.getTask(ids[1])];
  assert.equal(t0.consensus.better.label, 1);
  assert.equal(t1.consensus.better.label, 2, 'label 2 exists only because the task has three responses');
  assert.equal(t1.consensus.better.method, 'dawid_skene');
});

test('the report keeps its walk while nothing it reads changes; max_age takes an older one; bad max_age → 400', async () => {
  const prj = (await c.createProject(schema())).id;
  ok(await c.post(`/api/v1/projects/${prj}/tasks`, { tasks: [{ data: { text: 'x' } }, { data: { text: 'y' } }] }), 201);
  const R = (q = '') => srv.client(rev.key).get(`/api/v1/projects/${prj}/quality${q}`);
  const answer = async (i, s) => { const cl = await A(i).claim(prj); await A(i).submit(cl.assignment.id, { s, r: 2 }); };
  await answer(0, 'a');
  await answer(1, 'b');
  const r1 = ok(await R(), 200);
  assert.match(r1.as_of, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(r1.counts.responses, 2);
  await sleep(20);
  // nothing moved: the same walk, the same body
  assert.deepEqual(ok(await R(), 200), r1);
  // one more answer: a new walk sees it (max_age 0 is the default)
  await answer(2, 'a');
  await sleep(20);
  const r2 = ok(await R('?max_age=0'), 200);
  assert.ok(r2.as_of > r1.as_of, `${r2.as_of} after ${r1.as_of}`);
  assert.equal(r2.counts.responses, 3);
  assert.equal(r2.questions[0].answers, 3);
  // another answer, and max_age: the walk of r2 will do; what is counted apart is fresh
  await answer(3, 'b');
  const r3 = ok(await R('?max_age=3600'), 200);
  assert.equal(r3.as_of, r2.as_of);
  assert.equal(r3.counts.responses, 3, 'the walk of r2');
  assert.deepEqual(r3.questions, r2.questions);
  assert.equal(r3.annotators.length, 4, 'the annotators\' own counters are read each time');
  // without it, a new walk
  const r4 = ok(await R(), 200);
  assert.equal(r4.counts.responses, 4);
  assert.ok(r4.as_of > r2.as_of);
  for (const bad of ['-1', '86401', 'abc', '+5', '%205', '1.5', '']) {
    assertError(await R(`?max_age=${bad}`), 400, 'bad_request', 'max_age');
  }
  ok(await R('?max_age=86400'), 200);
  // a stranger's project stays 404 whatever the query
  const other = w.member(w.org('Quality Rival'), 'manager');
  assertError(await srv.client(other.key).get(`/api/v1/projects/${prj}/quality?max_age=abc`), 404, 'not_found');
});
