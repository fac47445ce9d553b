// Tasks: bulk create (order, duplicates, all-or-nothing, limits), data validation,
// list + pagination + status filter, GET with responses, cancel.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { World, assertError, ok, sentimentSchema, textTasks, TS_RE } from './lib.mjs';

const w = World.create('tasks');
let srv, org, mgr, ann, ann2, c;

before(async () => {
  org = w.org('Tasks Org');
  mgr = w.member(org, 'manager');
  ann = w.member(org, 'annotator');
  ann2 = w.member(org, 'annotator');
  srv = await w.serve();
  c = srv.client(mgr.key);
});

const counts = async (prj) => (await c.getProject(prj)).counts;
const total = (k) => k.queued + k.in_progress + k.completed + k.canceled;

/** field equals `path`, or is a deeper path under it (`path[…` / `path.…`). */
function fieldUnder(e, p) {
  assert.ok(e.field === p || e.field?.startsWith(p + '[') || e.field?.startsWith(p + '.'), `field ${JSON.stringify(e.field)} is not ${p} (or under it)`);
}

test('bulk create → 201, created ids in request order, every task stored as sent', async () => {
  const prj = (await c.createProject(sentimentSchema())).id;
  const tasks = [
    { data: { text: 'first' }, unique_id: 'u-1', priority: 5, metadata: { src: 'a', n: [1, 2] } },
    { data: { text: 'second ✓ ünï' } },
    { data: { text: 'third' }, unique_id: 'u-3', priority: -7 },
    { data: { text: '' }, metadata: {} },
  ];
  const r = await c.post(`/api/v1/projects/${prj}/tasks`, { tasks });
  const b = ok(r, 201);
  assert.equal(b.created.length, 4);
  assert.deepEqual(b.duplicates, []);
  assert.equal(new Set(b.created).size, 4);
  for (const id of b.created) assert.match(id, /^tsk_/);
  for (let i = 0; i < tasks.length; i++) {
    const t = await c.getTask(b.created[i]);
    assert.equal(t.id, b.created[i]);
    assert.equal(t.project_id, prj);
    assert.deepEqual(t.data, tasks[i].data, `task ${i} data`);
    assert.equal(t.unique_id, tasks[i].unique_id ?? null, `task ${i} unique_id`);
    assert.equal(t.priority, tasks[i].priority ?? 0, `task ${i} priority`);
    assert.deepEqual(t.metadata, tasks[i].metadata ?? {}, `task ${i} metadata`);
    assert.equal(t.status, 'queued');
    assert.equal(t.response_count, 0);
    assert.match(t.created_at, TS_RE);
    assert.deepEqual(t.responses, []);
    assert.equal(t.consensus, null, 'consensus is null before the first response');
    assert.ok(!('gold' in t), 'not a gold task');
  }
  // the list is ordered by id = creation order
  const list = await c.listAll(prj);
  assert.deepEqual(list.map((t) => t.id), b.created);
  assert.deepEqual(list.map((t) => t.data.text), tasks.map((t) => t.data.text));
  assert.ok(!('responses' in list[0]) || Array.isArray(list[0].responses));
  assert.deepEqual(await counts(prj), { queued: 4, in_progress: 0, completed: 0, canceled: 0 });
});

test('duplicates by unique_id (in the DB and within the request) create nothing and are listed', async () => {
  const prj = (await c.createProject(sentimentSchema())).id;
  const first = await c.createTasks(prj, [{ data: { text: 'a1' }, unique_id: 'a-1' }, { data: { text: 'a2' }, unique_id: 'a-2' }]);
  assert.equal(first.created.length, 2);
  const [a1, a2] = first.created;
  const second = await c.createTasks(prj, [
    { data: { text: 'a2 again' }, unique_id: 'a-2' },  // already in DB
    { data: { text: 'a3' }, unique_id: 'a-3' },
    { data: { text: 'a3 again' }, unique_id: 'a-3' },  // repeated in this request
    { data: { text: 'no uid' } },
    { data: { text: 'a4' }, unique_id: 'a-4' },
    { data: { text: 'a1 again' }, unique_id: 'a-1' },  // already in DB
  ]);
  assert.equal(second.created.length, 3, JSON.stringify(second));
  const [a3, noUid, a4] = second.created;
  const dups = [...second.duplicates].sort((x, y) => x.unique_id.localeCompare(y.unique_id));
  assert.deepEqual(dups, [{ unique_id: 'a-1', id: a1 }, { unique_id: 'a-2', id: a2 }, { unique_id: 'a-3', id: a3 }]);
  const list = await c.listAll(prj);
  assert.deepEqual(list.map((t) => t.id), [a1, a2, a3, noUid, a4]);
  // the first occurrence wins; the duplicate's data was not written anywhere
  assert.deepEqual(list.map((t) => t.data.text), ['a1', 'a2', 'a3', 'no uid', 'a4']);
  assert.deepEqual(list.map((t) => t.unique_id), ['a-1', 'a-2', 'a-3', null, 'a-4']);
});

test('a retried identical request creates nothing and answers every task as a duplicate', async () => {
  const prj = (await c.createProject(sentimentSchema())).id;
  const tasks = textTasks(50, 'retry');
  const r1 = await c.createTasks(prj, tasks);
  assert.equal(r1.created.length, 50);
  const r2 = await c.createTasks(prj, tasks);
  assert.deepEqual(r2.created, []);
  assert.equal(r2.duplicates.length, 50);
  const byUid = Object.fromEntries(r2.duplicates.map((d) => [d.unique_id, d.id]));
  tasks.forEach((t, i) => assert.equal(byUid[t.unique_id], r1.created[i], t.unique_id));
  assert.equal((await c.listAll(prj)).length, 50);
  assert.equal((await counts(prj)).queued, 50);
});

test('all or nothing: the 3rd task is bad → 422 tasks[2].data.text and nothing is written', async () => {
  const prj = (await c.createProject(sentimentSchema())).id;
  await c.createTasks(prj, textTasks(5, 'pre'));
  const tasks = [
    { data: { text: 'ok 0' }, unique_id: 'n-0' },
    { data: { text: 'ok 1' }, unique_id: 'n-1' },
    { data: { text: 12345 }, unique_id: 'n-2' },
    { data: { text: 'ok 3' }, unique_id: 'n-3' },
  ];
  assertError(await c.post(`/api/v1/projects/${prj}/tasks`, { tasks }), 422, 'invalid', 'tasks[2].data.text');
  assert.deepEqual(await counts(prj), { queued: 5, in_progress: 0, completed: 0, canceled: 0 });
  const list = await c.listAll(prj);
  assert.equal(list.length, 5);
  assert.ok(list.every((t) => t.unique_id.startsWith('pre-')));
  // the same first two are still creatable (their unique_ids were not taken)
  const again = await c.createTasks(prj, tasks.slice(0, 2));
  assert.equal(again.created.length, 2);
  assert.deepEqual(again.duplicates, []);
  // a bad task at index 7 after a duplicate: still nothing written
  const more = [...textTasks(7, 'm'), { data: {} }];
  more[0].unique_id = 'n-0';
  assertError(await c.post(`/api/v1/projects/${prj}/tasks`, { tasks: more }), 422, 'invalid', 'tasks[7].data.text');
  assert.equal((await c.listAll(prj)).length, 7);
});

test('task data validation for every field type → 422 with the path', async () => {
  const prj = (await c.createProject({
    name: 'Types',
    fields: [
      { name: 'text', type: 'text' },
      { name: 'md', type: 'markdown', required: false },
      { name: 'img', type: 'image' },
      { name: 'conv', type: 'chat' },
      { name: 'outs', type: 'responses' },
    ],
    questions: [{ name: 'q', type: 'rating' }],
  })).id;
  const good = () => ({
    text: 'hello', img: 'https://example.com/a.png',
    conv: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }],
    outs: ['one', 'two'],
  });
  // valid variants
  const valid = [
    good(),
    { ...good(), md: '# title' },
    { ...good(), img: 'http://example.com/x.jpg' },
    { ...good(), img: 'data:image/png;base64,iVBORw0KGgo=' },
    { ...good(), outs: ['only one'] },
    { ...good(), outs: Array.from({ length: 64 }, (_, i) => `o${i}`) },
  ];
  const created = await c.createTasks(prj, valid.map((data) => ({ data })));
  assert.equal(created.created.length, valid.length);
  for (let i = 0; i < valid.length; i++) assert.deepEqual((await c.getTask(created.created[i])).data, valid[i]);
  const bad = [
    [(d) => { delete d.text; }, 'data.text', true],
    [(d) => { d.text = null; }, 'data.text', true],
    [(d) => { d.md = 5; }, 'data.md', true],
    [(d) => { d.img = 'ftp://example.com/a.png'; }, 'data.img', true],
    [(d) => { d.img = 'data:text/plain;base64,AAAA'; }, 'data.img', true],
    [(d) => { d.img = 42; }, 'data.img', true],
    [(d) => { delete d.img; }, 'data.img', true],
    [(d) => { d.conv = 'hi'; }, 'data.conv', false],
    [(d) => { d.conv = [{ role: 'user' }]; }, 'data.conv', false],
    [(d) => { d.conv = [{ role: 'user', content: 3 }]; }, 'data.conv', false],
    [(d) => { d.outs = []; }, 'data.outs', false],
    [(d) => { d.outs = Array.from({ length: 65 }, (_, i) => `o${i}`); }, 'data.outs', false],
    [(d) => { d.outs = ['a', 1]; }, 'data.outs', false],
    [(d) => { d.outs = 'a'; }, 'data.outs', true],
  ];
  for (const [mut, p, exact] of bad) {
    const d = good();
    mut(d);
    const r = await c.post(`/api/v1/projects/${prj}/tasks`, { tasks: [{ data: good() }, { data: d }] });
    const e = assertError(r, 422, 'invalid');
    if (exact) assert.equal(e.field, `tasks[1].${p}`, String(r));
    else fieldUnder(e, `tasks[1].${p}`);
  }
  assert.equal((await c.listAll(prj)).length, valid.length, 'a refused request wrote tasks');
  // non-object data
  assertError(await c.post(`/api/v1/projects/${prj}/tasks`, { tasks: [{ data: 'x' }] }), 422, 'invalid', 'tasks[0].data');
  assertError(await c.post(`/api/v1/projects/${prj}/tasks`, { tasks: [{ data: [good()] }] }), 422, 'invalid', 'tasks[0].data');
});

test('unique_id (1–256 bytes), priority (integer), metadata (object) rules', async () => {
  const prj = (await c.createProject(sentimentSchema())).id;
  const t = (extra) => ({ tasks: [{ data: { text: 'x' }, ...extra }] });
  const ok256 = await c.createTasks(prj, [{ data: { text: 'x' }, unique_id: 'é'.repeat(128) }]); // 256 bytes
  assert.equal(ok256.created.length, 1);
  assert.equal((await c.getTask(ok256.created[0])).unique_id, 'é'.repeat(128));
  const okAscii = await c.createTasks(prj, [{ data: { text: 'x' }, unique_id: 'a'.repeat(256) }]);
  assert.equal(okAscii.created.length, 1);
  const path = `/api/v1/projects/${prj}/tasks`;
  assertError(await c.post(path, t({ unique_id: 'a'.repeat(257) })), 422, 'invalid', 'tasks[0].unique_id');
  assertError(await c.post(path, t({ unique_id: 'é'.repeat(129) })), 422, 'invalid', 'tasks[0].unique_id'); // 129 chars, 258 bytes
  assertError(await c.post(path, t({ unique_id: '' })), 422, 'invalid', 'tasks[0].unique_id');
  assertError(await c.post(path, t({ unique_id: 17 })), 422, 'invalid', 'tasks[0].unique_id');
  assertError(await c.post(path, t({ priority: 'high' })), 422, 'invalid', 'tasks[0].priority');
  assertError(await c.post(path, t({ priority: 1.5 })), 422, 'invalid', 'tasks[0].priority');
  assertError(await c.post(path, t({ metadata: [1] })), 422, 'invalid', 'tasks[0].metadata');
  assertError(await c.post(path, t({ metadata: 'm' })), 422, 'invalid', 'tasks[0].metadata');
  assert.equal((await c.listAll(prj)).length, 2);
});

test('priority: any integer (API.md sets no range): ±2^31 and ±(2^53-1) are stored as given', async () => {
  const prj = (await c.createProject(sentimentSchema())).id;
  const ps = [2147483647, -2147483648, 2147483648, -2147483649, 9007199254740991, -9007199254740991];
  const r = await c.createTasks(prj, ps.map((priority, i) => ({ data: { text: `p${i}` }, priority })));
  for (let i = 0; i < ps.length; i++) assert.equal((await c.getTask(r.created[i])).priority, ps[i]);
  // served highest first
  const a = srv.client(ann.key);
  const order = [];
  for (let i = 0; i < ps.length; i++) { const cl = await a.claim(prj); order.push(cl.task.data.text); await a.submit(cl.assignment.id, { sentiment: 'neutral' }); }
  assert.deepEqual(order, ['p4', 'p2', 'p0', 'p1', 'p3', 'p5']);
});

test('request shape: tasks must be an array of 1–10,000', async () => {
  const prj = (await c.createProject(sentimentSchema())).id;
  const path = `/api/v1/projects/${prj}/tasks`;
  assertError(await c.post(path, { tasks: 'x' }), 400, 'bad_request');
  assertError(await c.post(path, { tasks: { data: { text: 'x' } } }), 400, 'bad_request');
  for (const b of [{}, { task: [] }]) {
    const r = await c.post(path, b);
    assert.ok([400, 422].includes(r.status), String(r));
    assertError(r, r.status);
  }
  const empty = await c.post(path, { tasks: [] });
  assert.ok([400, 422].includes(empty.status), `0 tasks: ${empty}`);
  assertError(empty, empty.status);
  const over = await c.post(path, { tasks: textTasks(10_001, 'over') });
  assert.ok([400, 422].includes(over.status), `10,001 tasks: ${over}`);
  assertError(over, over.status);
  assert.equal((await c.listAll(prj)).length, 0);
  const notObj = await c.post(path, { tasks: [{ data: { text: 'fine' } }, 42] });
  assert.ok([400, 422].includes(notObj.status), String(notObj));
  if (notObj.status === 422) assertError(notObj, 422, 'invalid', 'tasks[1]');
  else assertError(notObj, 400, 'bad_request');
  assert.equal((await c.listAll(prj)).length, 0);
});

test('list: pagination walks every task once, in id order; limit bounds; status filter', async () => {
  const prj = (await c.createProject(sentimentSchema())).id;
  const ids = [];
  for (let i = 0; i < 3; i++) ids.push(...(await c.createTasks(prj, textTasks(45, `pg${i}`))).created);
  assert.equal(ids.length, 135);
  // default limit is 100
  const p1 = ok(await c.get(`/api/v1/projects/${prj}/tasks`), 200);
  assert.equal(p1.tasks.length, 100);
  assert.equal(typeof p1.next_cursor, 'string');
  const p2 = ok(await c.get(`/api/v1/projects/${prj}/tasks?cursor=${encodeURIComponent(p1.next_cursor)}`), 200);
  assert.equal(p2.tasks.length, 35);
  assert.equal(p2.next_cursor, null);
  assert.deepEqual([...p1.tasks, ...p2.tasks].map((t) => t.id), ids);
  // small pages
  for (const limit of [1, 7, 45, 135, 1000]) {
    const seen = [];
    let cursor = null;
    let pages = 0;
    for (let guard = 0; guard < 200; guard++) {
      const q = `limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const b = ok(await c.get(`/api/v1/projects/${prj}/tasks?${q}`), 200);
      assert.ok(b.tasks.length <= limit);
      pages++;
      seen.push(...b.tasks.map((t) => t.id));
      cursor = b.next_cursor;
      if (cursor === null) break;
      assert.equal(b.tasks.length, limit, 'a non-last page is full');
    }
    assert.equal(cursor, null);
    assert.deepEqual(seen, ids, `limit ${limit}`);
    assert.ok(pages >= Math.ceil(135 / limit) && pages <= Math.ceil(135 / limit) + 1, `limit ${limit}: ${pages} pages`);
  }
  // status filter: complete 3, put 2 in progress, cancel 1
  const a = srv.client(ann.key);
  const done = [];
  for (let i = 0; i < 3; i++) {
    const cl = await a.claim(prj);
    await a.submit(cl.assignment.id, { sentiment: 'positive' });
    done.push(cl.task.id);
  }
  assert.deepEqual(done, ids.slice(0, 3));
  const inprog = [(await a.claim(prj)).task.id, (await srv.client(ann2.key).claim(prj)).task.id];
  assert.deepEqual(inprog, ids.slice(3, 5));
  const can = await c.post(`/api/v1/tasks/${ids[100]}/cancel`);
  assert.equal(can.status, 200, String(can));
  const by = async (s) => (await c.listAll(prj, `status=${s}`)).map((t) => t.id);
  assert.deepEqual(await by('completed'), done);
  assert.deepEqual(await by('in_progress'), inprog);
  assert.deepEqual(await by('canceled'), [ids[100]]);
  assert.deepEqual(await by('queued'), ids.filter((id, i) => i >= 5 && i !== 100));
  // status filter with small pages
  const q2 = ok(await c.get(`/api/v1/projects/${prj}/tasks?status=completed&limit=2`), 200);
  assert.deepEqual(q2.tasks.map((t) => t.id), done.slice(0, 2));
  assert.ok(q2.tasks.every((t) => t.status === 'completed' && t.response_count === 1));
  const q3 = ok(await c.get(`/api/v1/projects/${prj}/tasks?status=completed&limit=2&cursor=${encodeURIComponent(q2.next_cursor)}`), 200);
  assert.deepEqual(q3.tasks.map((t) => t.id), done.slice(2));
  assert.deepEqual(await counts(prj), { queued: 129, in_progress: 2, completed: 3, canceled: 1 });
  // bad query parameters
  for (const q of ['limit=0', 'limit=1001', 'limit=abc', 'limit=-1', 'status=done', 'status=', 'cursor=%%%garbage']) {
    assertError(await c.get(`/api/v1/projects/${prj}/tasks?${q}`), 400, 'bad_request');
  }
});

test('GET task with responses; cancel rules', async () => {
  const prj = (await c.createProject(sentimentSchema({ min_responses: 2, max_responses: 2 }))).id;
  const ids = (await c.createTasks(prj, textTasks(3, 'resp'))).created;
  const a = srv.client(ann.key);
  const b = srv.client(ann2.key);
  const ca = await a.claim(prj);
  const cb = await b.claim(prj);
  assert.equal(ca.task.id, ids[0]);
  assert.equal(cb.task.id, ids[0]);
  const sa = await a.submit(ca.assignment.id, { sentiment: 'negative' }, 1500);
  assert.equal(sa.task.status, 'in_progress');
  const mid = await c.getTask(ids[0]);
  assert.equal(mid.response_count, 1);
  assert.equal(mid.responses.length, 1);
  const sb = await b.submit(cb.assignment.id, { sentiment: 'neutral' }, 2500);
  assert.equal(sb.task.status, 'completed');
  const t = await c.getTask(ids[0]);
  assert.equal(t.status, 'completed');
  assert.equal(t.response_count, 2);
  assert.deepEqual(t.responses.map((r) => [r.id, r.user_id, r.answers, r.duration_ms]), [
    [sa.response.id, ann.id, { sentiment: 'negative' }, 1500],
    [sb.response.id, ann2.id, { sentiment: 'neutral' }, 2500],
  ]);
  for (const r of t.responses) { assert.match(r.id, /^rsp_/); assert.match(r.created_at, TS_RE); }
  // cancel: completed → 409; queued → 200, leaves the queue; twice → not 5xx
  assertError(await c.post(`/api/v1/tasks/${ids[0]}/cancel`), 409, 'conflict');
  assert.equal((await c.getTask(ids[0])).status, 'completed');
  const cr = await c.post(`/api/v1/tasks/${ids[1]}/cancel`);
  const crb = ok(cr, 200);
  assert.equal(crb.id, ids[1]);
  assert.equal(crb.status, 'canceled');
  assert.equal((await c.getTask(ids[1])).status, 'canceled');
  // annotators now only get ids[2]
  const next = await a.claim(prj);
  assert.equal(next.task.id, ids[2]);
  // cancel an in-progress task: its lease can no longer be submitted
  const cr2 = await c.post(`/api/v1/tasks/${ids[2]}/cancel`);
  assert.equal(cr2.status, 200, String(cr2));
  const late = await a.post(`/api/v1/assignments/${next.assignment.id}/submit`, { answers: { sentiment: 'positive' } });
  assertError(late, 409, 'conflict');
  assert.equal((await c.getTask(ids[2])).response_count, 0);
  assert.equal(await srv.client(ann2.key).claim(prj), null);
  assert.deepEqual(await counts(prj), { queued: 0, in_progress: 0, completed: 1, canceled: 2 });
  const again = await c.post(`/api/v1/tasks/${ids[1]}/cancel`);
  assert.ok(again.status === 200 || again.status === 409, String(again));
  assertError(await c.post(`/api/v1/tasks/tsk_doesnotexist/cancel`), 404, 'not_found');
});
