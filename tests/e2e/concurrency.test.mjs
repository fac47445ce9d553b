// 8 annotators claim and submit in parallel over 10,000 tasks with min=max=3.
// At the end: every task has exactly 3 responses from 3 distinct annotators, every
// acknowledged submit (201) is in the export, 30,000 responses in all, no 5xx.
// The server runs three event loops (--threads 3), so the connections are spread
// over loops that share one listening socket and get their replies back each
// through its own mailbox; the other suites run the default single loop.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { World, ok, sentimentSchema, SLOW } from './lib.mjs';

const N_TASKS = Number(process.env.TALLY_E2E_CONC_TASKS || 10_000);
const N_ANN = 8;
const PER = 3;
const OPTS = ['positive', 'negative', 'neutral'];

const w = World.create('concurrency');
let srv, mgr, anns, prj, ids;

before(async () => {
  const org = w.org('Conc Org');
  mgr = w.member(org, 'manager');
  anns = Array.from({ length: N_ANN }, () => w.member(org, 'annotator'));
  srv = await w.serve(['--threads', '3']);
  const c = srv.client(mgr.key);
  prj = (await c.createProject(sentimentSchema({ min_responses: PER, max_responses: PER }))).id;
});

test(`import ${N_TASKS} tasks in one request`, { timeout: 120_000 * SLOW }, async () => {
  const c = srv.client(mgr.key);
  const tasks = Array.from({ length: N_TASKS }, (_, i) => ({ data: { text: `conc ${i}` }, unique_id: `c-${i}`, priority: i % 7 === 0 ? 1 : 0 }));
  const r = await c.post(`/api/v1/projects/${prj}/tasks`, { tasks }, { timeout: 120_000 });
  const b = ok(r, 201);
  assert.equal(b.created.length, N_TASKS);
  assert.equal(new Set(b.created).size, N_TASKS);
  assert.deepEqual(b.duplicates, []);
  ids = b.created;
  assert.deepEqual((await c.getProject(prj)).counts, { queued: N_TASKS, in_progress: 0, completed: 0, canceled: 0 });
});

test(`${N_ANN} annotators claim and submit in parallel until the queue is empty`, { timeout: 240_000 * SLOW }, async () => {
  assert.ok(ids, 'import failed');
  const acked = [];       // {rsp, task, user, answer}
  const problems = [];    // anything not 200/201/204
  const perUser = anns.map(() => new Set());
  const t0 = Date.now();
  const worker = async (u) => {
    const cl = srv.client(anns[u].key);
    const maxIter = N_TASKS + 10; // a user can get each task at most once
    for (let n = 0; n < maxIter; n++) {
      let r;
      try { r = await cl.post(`/api/v1/projects/${prj}/claim`); } catch (e) { problems.push(`claim threw: ${e.message}`); return; }
      if (r.status === 204) return;
      if (r.status !== 200) { problems.push(String(r)); return; }
      const { assignment, task } = r.body;
      if (perUser[u].has(task.id)) problems.push(`user ${u} got task ${task.id} twice`);
      perUser[u].add(task.id);
      const answer = OPTS[(u + n) % 3];
      let s;
      try {
        s = await cl.post(`/api/v1/assignments/${assignment.id}/submit`, { answers: { sentiment: answer }, duration_ms: n });
      } catch (e) { problems.push(`submit threw: ${e.message}`); return; }
      if (s.status !== 201) { problems.push(String(s)); continue; }
      acked.push({ rsp: s.body.response.id, task: task.id, user: anns[u].id, answer, n });
    }
    problems.push(`user ${u}: loop bound reached`);
  };
  await Promise.all(anns.map((_, u) => worker(u)));
  const secs = (Date.now() - t0) / 1000;
  console.log(`# concurrency: ${acked.length} submits in ${secs.toFixed(1)} s (${Math.round(acked.length * 2 / secs)} req/s)`);
  assert.deepEqual(problems.slice(0, 20), [], `${problems.length} problems`);
  assert.deepEqual(srv.fiveXX, [], 'no 5xx');
  assert.equal(acked.length, N_TASKS * PER);
  assert.equal(new Set(acked.map((a) => a.rsp)).size, acked.length, 'response ids are unique');

  // the export agrees with every acknowledged submit
  const c = srv.client(mgr.key);
  const lines = await c.exportLines(prj);
  assert.equal(lines.length, N_TASKS);
  assert.deepEqual(lines.map((l) => l.id), ids, 'export ordered by id = creation order');
  const byRsp = new Map();
  let total = 0;
  const bad = [];
  for (const l of lines) {
    total += l.responses.length;
    const users = new Set(l.responses.map((r) => r.user_id));
    if (l.responses.length !== PER || users.size !== PER || l.status !== 'completed') {
      bad.push(`${l.id}: ${l.status}, ${l.responses.length} responses from ${users.size} users`);
    }
    for (const r of l.responses) byRsp.set(r.id, { ...r, task: l.id });
  }
  assert.deepEqual(bad.slice(0, 10), [], `${bad.length} tasks without exactly ${PER} responses from distinct users`);
  assert.equal(total, N_TASKS * PER);
  const missing = [];
  for (const a of acked) {
    const r = byRsp.get(a.rsp);
    if (!r || r.task !== a.task || r.user_id !== a.user || r.answers.sentiment !== a.answer || r.duration_ms !== a.n) missing.push(JSON.stringify(a));
  }
  assert.deepEqual(missing.slice(0, 10), [], `${missing.length} acknowledged submits missing or different in the export`);
  assert.deepEqual((await c.getProject(prj)).counts, { queued: 0, in_progress: 0, completed: N_TASKS, canceled: 0 });
  // nobody gets anything now
  for (const m of anns) {
    const r = await srv.client(m.key).post(`/api/v1/projects/${prj}/claim`);
    assert.equal(r.status, 204, String(r));
  }
});
