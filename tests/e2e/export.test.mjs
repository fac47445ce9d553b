// Export: GET /api/v1/projects/{id}/export?format=jsonl — one line per task, ordered
// by id, with exactly what was submitted.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { World, assertError, parseJsonl, TS_RE, sleep, rawRequest, rawBody } from './lib.mjs';

const w = World.create('export');
let srv, mgr, rev, anns, c, prj, ids, tasks;
const submitted = new Map(); // task id → [{id,user_id,answers,duration_ms}]

before(async () => {
  const org = w.org('Export Org');
  mgr = w.member(org, 'manager');
  rev = w.member(org, 'reviewer');
  anns = [w.member(org, 'annotator'), w.member(org, 'annotator'), w.member(org, 'annotator')];
  srv = await w.serve();
  c = srv.client(mgr.key);
  prj = (await c.createProject({
    name: 'Export',
    fields: [{ name: 'text', type: 'text' }, { name: 'outs', type: 'responses' }],
    questions: [
      { name: 'label', type: 'choice', options: ['yes', 'no'] },
      { name: 'rank', type: 'ranking', field: 'outs' },
      { name: 'note', type: 'text', required: false },
    ],
    min_responses: 2, max_responses: 3,
  })).id;
  tasks = Array.from({ length: 7 }, (_, i) => ({
    data: { text: `export ${i} — ünï 🌍`, outs: ['a', 'b'] },
    unique_id: i % 2 ? `ex-${i}` : undefined,
    priority: i === 5 ? 10 : 0,
    metadata: i === 3 ? { source: 'crawl', tags: ['x', 'y'], n: 3 } : undefined,
  })).map((t) => Object.fromEntries(Object.entries(t).filter(([, v]) => v !== undefined)));
  ids = (await c.createTasks(prj, tasks)).created;
  // annotators 0 and 1 answer 4 tasks each (priority task first), annotator 2 answers one and holds one lease
  for (let u = 0; u < 2; u++) {
    const a = srv.client(anns[u].key);
    for (let k = 0; k < 4; k++) {
      const cl = await a.claim(prj);
      const answers = { label: (u + k) % 2 ? 'yes' : 'no', rank: k % 2 ? [0, 1] : [1, 0], ...(k === 2 ? { note: `note by ${u}\n"q"` } : {}) };
      const s = await a.submit(cl.assignment.id, answers, 100 * u + k);
      if (!submitted.has(cl.task.id)) submitted.set(cl.task.id, []);
      submitted.get(cl.task.id).push({ id: s.response.id, user_id: anns[u].id, answers, duration_ms: 100 * u + k, created_at: s.response.created_at });
    }
  }
  const a2 = srv.client(anns[2].key);
  const cl = await a2.claim(prj);
  const answers = { label: 'yes', rank: [0, 1] };
  const s = await a2.submit(cl.assignment.id, answers, 999);
  assert.equal(cl.task.id, ids[3]);
  submitted.set(cl.task.id, []);
  submitted.get(cl.task.id).push({ id: s.response.id, user_id: anns[2].id, answers, duration_ms: 999, created_at: s.response.created_at });
  assert.equal((await a2.claim(prj)).task.id, ids[4]); // a live lease: not a response, must not show
  await c.post(`/api/v1/tasks/${ids[6]}/cancel`);
});

test('export: application/x-ndjson, one line per task ordered by id, every field as submitted', async () => {
  const r = await srv.client(rev.key).get(`/api/v1/projects/${prj}/export?format=jsonl`);
  assert.equal(r.status, 200, String(r));
  assert.match(r.headers.get('content-type') || '', /^application\/x-ndjson/);
  const lines = parseJsonl(r.text);
  assert.equal(lines.length, tasks.length);
  assert.deepEqual(lines.map((l) => l.id), ids);
  let total = 0;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    assert.deepEqual(Object.keys(l).sort(), ['consensus', 'data', 'id', 'metadata', 'responses', 'status', 'unique_id'], `line ${i} keys`);
    assert.deepEqual(l.data, tasks[i].data);
    assert.equal(l.unique_id, tasks[i].unique_id ?? null);
    assert.deepEqual(l.metadata, tasks[i].metadata ?? {});
    const want = submitted.get(ids[i]) || [];
    assert.deepEqual(l.responses.map((x) => ({ id: x.id, user_id: x.user_id, answers: x.answers, duration_ms: x.duration_ms, created_at: x.created_at })), want, `line ${i} responses`);
    for (const x of l.responses) assert.match(x.created_at, TS_RE);
    // consensus: null before the first response; then the choice question only (ranking/text are not categorical)
    if (want.length === 0) assert.equal(l.consensus, null, `line ${i} consensus`);
    else {
      assert.deepEqual(Object.keys(l.consensus), ['label'], `line ${i} consensus keys`);
      const votes = {};
      for (const x of want) votes[x.answers.label] = (votes[x.answers.label] || 0) + 1;
      assert.deepEqual(l.consensus.label.votes, votes, `line ${i} consensus votes`);
    }
    // 0,1,2,5: two responses (completed); 3: one response; 4: a live lease only; 6: canceled
    const expectStatus = ['completed', 'completed', 'completed', 'in_progress', 'in_progress', 'completed', 'canceled'][i];
    assert.equal(l.status, expectStatus, `line ${i} status`);
    total += l.responses.length;
  }
  assert.equal(total, 9);
  // each line is compact JSON on one line (no embedded raw newline)
  assert.equal(r.text.split('\n').length, tasks.length + 1);
  // export agrees with GET /tasks/{id}
  for (let i = 0; i < lines.length; i++) {
    const t = await c.getTask(ids[i]);
    assert.deepEqual(t.responses, lines[i].responses);
    assert.equal(t.status, lines[i].status);
  }
});

test('export ?status= filters; format defaults / bad values', async () => {
  const all = await c.exportLines(prj);
  for (const s of ['completed', 'in_progress', 'queued', 'canceled']) {
    const lines = await c.exportLines(prj, `format=jsonl&status=${s}`);
    assert.deepEqual(lines, all.filter((l) => l.status === s), `status=${s}`);
  }
  assert.equal((await c.exportLines(prj, 'format=jsonl&status=canceled')).length, 1);
  assertError(await c.get(`/api/v1/projects/${prj}/export?format=jsonl&status=nope`), 400, 'bad_request');
  assertError(await c.get(`/api/v1/projects/${prj}/export?format=csv2`), 400, 'bad_request');
  const noFormat = await c.get(`/api/v1/projects/${prj}/export`);
  assert.ok(noFormat.status === 200 || noFormat.status === 400, String(noFormat));
  if (noFormat.status === 200) assert.deepEqual(parseJsonl(noFormat.text), all);
});

test('export of an empty project is an empty 200 body', async () => {
  const p = (await c.createProject({ name: 'empty', fields: [{ name: 'text', type: 'text' }], questions: [{ name: 'q', type: 'rating' }] })).id;
  const r = await c.get(`/api/v1/projects/${p}/export?format=jsonl`);
  assert.equal(r.status, 200);
  assert.equal(r.text, '');
});

test('export streams a large project: 5,000 tasks with big data, every line intact', { timeout: 120_000 }, async () => {
  const p = (await c.createProject({ name: 'big', fields: [{ name: 'text', type: 'text' }], questions: [{ name: 'q', type: 'rating' }] })).id;
  const blob = 'z'.repeat(2000);
  const ids2 = (await c.createTasks(p, Array.from({ length: 5000 }, (_, i) => ({ data: { text: `${i}:${blob}` } })))).created;
  const lines = await c.exportLines(p);
  assert.equal(lines.length, 5000);
  assert.deepEqual(lines.map((l) => l.id), ids2);
  assert.ok(lines.every((l, i) => l.data.text === `${i}:${blob}` && l.status === 'queued' && l.responses.length === 0));
});

/** An export requested on a raw socket, to leave or stall mid-stream: the
 * socket, and how many bytes came so far (pauseAfter: stop reading past that). */
async function rawExport(port, project, key, pauseAfter = Infinity) {
  const sock = net.connect(port, '127.0.0.1');
  sock.on('error', () => {});
  await new Promise((r) => sock.on('connect', r));
  const seen = { sock, got: 0 };
  sock.on('data', (d) => { seen.got += d.length; if (seen.got > pauseAfter) sock.pause(); });
  sock.write(`GET /api/v1/projects/${project}/export HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\n\r\n`);
  return seen;
}

test('a client that goes away mid-export: the server drops the export and goes on; the next export is whole', { timeout: 120_000 }, async () => {
  const p = (await c.createProject({ name: 'dropped', fields: [{ name: 'text', type: 'text' }], questions: [{ name: 'q', type: 'rating' }] })).id;
  const blob = 'w'.repeat(2000);
  // 7,000 tasks are four ranges of 2,048: the export's helper threads read ahead of the socket
  const all = [];
  for (let k = 0; k < 7; k++)
    all.push(...(await c.createTasks(p, Array.from({ length: 1000 }, (_, i) => ({ data: { text: `${k}-${i}:${blob}` } })))).created);
  for (let round = 0; round < 3; round++) {
    const ex = await rawExport(srv.port, p, mgr.key);
    while (ex.got < 100_000 * (round + 1)) await sleep(5);
    ex.sock.destroy(); // gone with the export under way
    const r = await c.get(`/api/v1/projects/${p}`);
    assert.equal(r.status, 200);
    assert.equal(r.body.counts.queued, 7000);
  }
  const lines = await c.exportLines(p);
  assert.equal(lines.length, 7000);
  assert.deepEqual(lines.map((l) => l.id), all);
  assert.ok(lines.every((l, i) => l.data.text === `${Math.floor(i / 1000)}-${i % 1000}:${blob}`));
});

test('--max-exports: one export more than the limit is 503 busy with Retry-After, claims go on, and a slot frees when an export ends', { timeout: 120_000 }, async () => {
  const s = await w.serve(['--max-exports', '2']);
  const m = s.client(mgr.key);
  const p = (await m.createProject({ name: 'limited', fields: [{ name: 'text', type: 'text' }], questions: [{ name: 'q', type: 'rating' }] })).id;
  const blob = 'v'.repeat(4000);
  for (let k = 0; k < 4; k++) // 16 MB: more than the socket buffers hold, so a client that stops reading holds its export
    await m.createTasks(p, Array.from({ length: 1000 }, (_, i) => ({ data: { text: `${k}-${i}:${blob}` } })));
  const open = [];
  for (let i = 0; i < 2; i++) {
    const ex = await rawExport(s.port, p, mgr.key, 50_000);
    while (ex.got === 0) await sleep(5);
    open.push(ex.sock);
  }
  const busy = await rawRequest(s.port, `GET /api/v1/projects/${p}/export HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${mgr.key}\r\nConnection: close\r\n\r\n`);
  assert.equal(busy.status, 503, busy.text.slice(0, 300));
  assert.match(busy.text, /\r\nRetry-After: 5\r\n/);
  const e = JSON.parse(rawBody(busy.text)).error;
  assert.equal(e.code, 'busy');
  assert.match(e.message, /2 exports are streaming.*--max-exports/);
  // the rest of the API is not held up by the two stalled exports
  const a = s.client(anns[0].key);
  const cl = await a.claim(p);
  assert.equal(cl.task.data.text, `0-0:${blob}`);
  assert.equal((await a.submit(cl.assignment.id, { q: 4 }, 10)).task.status, 'completed');
  // one export goes away: its place is free again, and the next export is whole
  open[0].destroy();
  let lines;
  for (let tries = 0; !lines; tries++) {
    const r = await m.get(`/api/v1/projects/${p}/export`, { timeout: 60_000 });
    if (r.status === 200) lines = parseJsonl(r.text);
    else {
      assert.equal(r.status, 503);
      assert.ok(tries < 100, 'the place of the export that went away never came back');
      s.fiveXX.pop(); // expected: the close may not have reached the server yet
      await sleep(50);
    }
  }
  assert.equal(lines.length, 4000);
  assert.equal(lines[0].responses.length, 1);
  open[1].destroy();
  for (const bad of ['0', '1025', 'x']) {
    const r = w.cli(['serve', '--max-exports', bad]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /--max-exports: a whole number from 1 to 1024/);
  }
});

// Reals go out in their shortest exact form, as JSON.parse/JSON.stringify, Python's
// json and pandas write them: 0.1, not the 0.10000000000000001 of jansson's "%.17g"
// (docs/API.md, "Numbers"). JSON.parse would hide the difference, so the raw texts
// are read.
const digitsOf = (t) => t.replace(/^-/, '').split(/e/i)[0].replace('.', '').replace(/^0+/, '').replace(/0+$/, '') || '0';
function assertShortestReals(text, what) {
  const noStrings = text.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  let reals = 0;
  for (const t of noStrings.match(/-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?/g) || []) {
    if (!/[.eE]/.test(t)) continue; // an integer
    reals++;
    assert.equal(digitsOf(t), digitsOf(String(Number(t))), `${what}: ${t} is not the shortest form of ${Number(t)}`);
  }
  return reals;
}

test('reals go out as they came in: 0.1 stays 0.1 in the claim, the submit, the task, the export and the report', async () => {
  const p = (await c.createProject({
    name: 'Reals', fields: [{ name: 'img', type: 'image' }],
    questions: [{ name: 'objs', type: 'boxes', field: 'img', labels: ['car'] }, { name: 'ok', type: 'choice', options: ['y', 'n'] }],
    min_responses: 1, max_responses: 2, quality: { confidence_target: 0.9 },
  })).id;
  const prjText = (await c.get(`/api/v1/projects/${p}`)).text;
  assert.ok(prjText.includes('"confidence_target":0.9,'), prjText);
  const data = { img: 'https://example.test/a.png', score: 0.1, vals: [0.7, 1e300, 0.1 + 0.2, -0.0001, 2.5, 1e-7, 100], label: '0.10000000000000001' };
  const dataText = '"score":0.1,"vals":[0.7,1e300,0.30000000000000004,-0.0001,2.5,1e-7,100],"label":"0.10000000000000001"';
  const [id] = (await c.createTasks(p, [{ data, metadata: { w: 0.2 } }])).created;
  const a = srv.client(anns[0].key);
  const cl = await a.post(`/api/v1/projects/${p}/claim`);
  assert.equal(cl.status, 200, String(cl));
  assert.ok(cl.text.includes(dataText), cl.text);
  const answers = { objs: [{ x: 0.1, y: 0.2, w: 0.3, h: 0.4, label: 'car' }], ok: 'y' };
  const ansText = '{"objs":[{"x":0.1,"y":0.2,"w":0.3,"h":0.4,"label":"car"}],"ok":"y"}';
  const s = await a.post(`/api/v1/assignments/${cl.body.assignment.id}/submit`, { answers, duration_ms: 7 });
  assert.equal(s.status, 201, String(s));
  assert.ok(s.text.includes(`"answers":${ansText}`), s.text);
  const t = await c.get(`/api/v1/tasks/${id}`);
  assert.equal(t.status, 200, String(t));
  for (const want of [dataText, `"answers":${ansText}`, '"metadata":{"w":0.2}']) assert.ok(t.text.includes(want), `${want} in ${t.text}`);
  const ex = await srv.client(rev.key).get(`/api/v1/projects/${p}/export?format=jsonl`);
  assert.equal(ex.status, 200, String(ex));
  for (const want of [dataText, `"answers":${ansText}`, '"metadata":{"w":0.2}']) assert.ok(ex.text.includes(want), `${want} in ${ex.text}`);
  assert.deepEqual(parseJsonl(ex.text)[0].data, data); // and the same values
  // every real of every text, the consensus' confidence and the report's statistics included
  const q = await c.get(`/api/v1/projects/${p}/quality`);
  assert.equal(q.status, 200, String(q));
  let reals = 0;
  for (const [what, text] of [['claim', cl.text], ['submit', s.text], ['task', t.text], ['export', ex.text], ['quality', q.text], ['project', prjText]]) {
    reals += assertShortestReals(text, what);
  }
  assert.ok(reals >= 30, `${reals} reals checked`);
  assert.ok(t.text.includes('"confidence":'), t.text);
});
