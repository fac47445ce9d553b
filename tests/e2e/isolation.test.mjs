// Organizations are isolated: another org's objects are 404 (never 403) on every route.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { World, assertError, ok, sentimentSchema, textTasks } from './lib.mjs';

const w = World.create('isolation');
let srv, A, B, prjA, prjB, tasksB, asgB, tasksA, asgA;

before(async () => {
  const orgA = w.org('Org A');
  const orgB = w.org('Org B');
  A = { org: orgA, owner: w.member(orgA, 'owner'), manager: w.member(orgA, 'manager'), reviewer: w.member(orgA, 'reviewer'), annotator: w.member(orgA, 'annotator') };
  B = { org: orgB, owner: w.member(orgB, 'owner'), manager: w.member(orgB, 'manager'), reviewer: w.member(orgB, 'reviewer'), annotator: w.member(orgB, 'annotator') };
  srv = await w.serve();
  const cB = srv.client(B.owner.key);
  prjB = (await cB.createProject(sentimentSchema({ name: 'Secret B', min_responses: 2, max_responses: 2 }))).id;
  tasksB = (await cB.createTasks(prjB, textTasks(3, 'b'))).created;
  asgB = (await srv.client(B.annotator.key).claim(prjB)).assignment.id;
  const cA = srv.client(A.owner.key);
  prjA = (await cA.createProject(sentimentSchema({ name: 'Mine A', min_responses: 2, max_responses: 2 }))).id;
  tasksA = (await cA.createTasks(prjA, textTasks(3, 'a'))).created;
  asgA = (await srv.client(A.annotator.key).claim(prjA)).assignment.id;
});

const routes = (prj, tasks, asg) => [
  ['GET', `/api/v1/projects/${prj}`],
  ['GET', `/api/v1/projects/${prj}/tasks`],
  ['GET', `/api/v1/projects/${prj}/tasks?status=queued&limit=5`],
  ['POST', `/api/v1/projects/${prj}/tasks`, { tasks: textTasks(2, 'intruder') }],
  ['POST', `/api/v1/projects/${prj}/claim`],
  ['GET', `/api/v1/projects/${prj}/export?format=jsonl`],
  ['GET', `/api/v1/projects/${prj}/quality`],
  ['POST', `/api/v1/projects/${prj}/quality/refit`],
  ['GET', `/api/v1/tasks/${tasks[0]}`],
  ['GET', `/api/v1/tasks/${tasks[2]}`],
  ['POST', `/api/v1/tasks/${tasks[1]}/cancel`],
  ['POST', `/api/v1/assignments/${asg}/submit`, { answers: { sentiment: 'positive' }, duration_ms: 1 }],
  ['POST', `/api/v1/assignments/${asg}/heartbeat`],
  ['POST', `/api/v1/assignments/${asg}/release`],
];

async function checkAll(member, prj, tasks, asg) {
  const cl = srv.client(member.key);
  const wrong = [];
  for (const [m, p, b] of routes(prj, tasks, asg)) {
    const r = await cl.req(m, p, b);
    try { assertError(r, 404, 'not_found'); } catch { wrong.push(`${member.role}: ${r}`); }
  }
  assert.deepEqual(wrong, [], `expected 404 not_found for every foreign object:\n${wrong.join('\n')}`);
}

test("org A's keys (every role) get 404 for every org-B object on every route", async () => {
  for (const role of ['owner', 'manager', 'reviewer', 'annotator']) await checkAll(A[role], prjB, tasksB, asgB);
});

test("org B's keys get 404 for every org-A object on every route", async () => {
  for (const role of ['owner', 'annotator']) await checkAll(B[role], prjA, tasksA, asgA);
});

test("B's project never appears in A's list; nothing of B was changed by A", async () => {
  const listA = ok(await srv.client(A.owner.key).get('/api/v1/projects'), 200).projects;
  assert.deepEqual(listA.map((p) => p.id), [prjA]);
  assert.ok(!JSON.stringify(listA).includes('Secret B'));
  for (const role of ['manager', 'reviewer', 'annotator']) {
    const l = ok(await srv.client(A[role].key).get('/api/v1/projects'), 200).projects;
    assert.deepEqual(l.map((p) => p.id), [prjA]);
  }
  const cB = srv.client(B.owner.key);
  const listB = ok(await cB.get('/api/v1/projects'), 200).projects;
  assert.deepEqual(listB.map((p) => p.id), [prjB]);
  const tasks = await cB.listAll(prjB);
  assert.deepEqual(tasks.map((t) => t.id), tasksB, 'no task was added to B');
  assert.deepEqual(tasks.map((t) => t.status), ['in_progress', 'queued', 'queued'], 'no B task canceled or claimed by A');
  assert.ok(tasks.every((t) => t.response_count === 0), 'no response from A');
  assert.deepEqual((await cB.getProject(prjB)).counts, { queued: 2, in_progress: 1, completed: 0, canceled: 0 });
  // B's assignment is still live and B's annotator can use it (A's release/submit did nothing)
  const again = await srv.client(B.annotator.key).claim(prjB);
  assert.equal(again.assignment.id, asgB);
  const s = await srv.client(B.annotator.key).submit(asgB, { sentiment: 'negative' });
  assert.equal(s.task.id, tasksB[0]);
  const t = await cB.getTask(tasksB[0]);
  assert.deepEqual(t.responses.map((r) => r.user_id), [B.annotator.id]);
  const lines = await cB.exportLines(prjB);
  assert.deepEqual(lines.map((l) => l.id), tasksB);
});

test('ids of one kind used as another are 404; made-up ids are 404', async () => {
  const c = srv.client(A.owner.key);
  const swaps = [
    ['GET', `/api/v1/projects/${tasksA[0]}`],
    ['GET', `/api/v1/projects/${asgA}`],
    ['GET', `/api/v1/tasks/${prjA}`],
    ['POST', `/api/v1/tasks/${asgA}/cancel`],
    ['POST', `/api/v1/projects/${tasksA[0]}/claim`],
    ['POST', `/api/v1/assignments/${tasksA[0]}/heartbeat`],
    ['GET', `/api/v1/projects/${A.org}`],
    ['GET', `/api/v1/projects/${prjA.replace(/^prj_/, '')}`],
    ['GET', `/api/v1/projects/prj_${'z'.repeat(20)}`],
    ['GET', `/api/v1/tasks/tsk_0`],
    ['GET', `/api/v1/projects/${prjA.slice(0, -1)}`],
  ];
  const wrong = [];
  for (const [m, p] of swaps) {
    const r = await c.req(m, p);
    try { assertError(r, 404, 'not_found'); } catch { wrong.push(String(r)); }
  }
  assert.deepEqual(wrong, []);
});
