// Projects: create / list / get, schema validation (422 + field), malformed JSON (400 + offset).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { World, assertError, ok, sentimentSchema, TS_RE } from './lib.mjs';

const w = World.create('projects');
let srv, orgA, orgB, mA, mB;

before(async () => {
  orgA = w.org('Proj A');
  orgB = w.org('Proj B');
  mA = w.member(orgA, 'manager');
  mB = w.member(orgB, 'owner');
  srv = await w.serve();
});

const full = {
  name: 'Everything',
  instructions: 'Do all the things. ✓ ünïcødé',
  fields: [
    { name: 'text', type: 'text' },
    { name: 'notes', type: 'markdown', required: false },
    { name: 'img', type: 'image' },
    { name: 'conv', type: 'chat' },
    { name: 'outs', type: 'responses' },
  ],
  questions: [
    { name: 'sentiment', type: 'choice', options: ['positive', 'negative', 'neutral'] },
    { name: 'topics', type: 'multi_choice', options: ['a', 'b', 'c'], min_selected: 1, max_selected: 2 },
    { name: 'ents', type: 'spans', field: 'text', labels: ['PER', 'LOC'] },
    { name: 'objs', type: 'boxes', field: 'img', labels: ['car'] },
    { name: 'rank', type: 'ranking', field: 'outs' },
    { name: 'pref', type: 'compare', field: 'outs', allow_tie: true },
    { name: 'stars', type: 'rating', min: 1, max: 10 },
    { name: 'why', type: 'text', min_length: 0, max_length: 500, required: false },
  ],
  min_responses: 2, max_responses: 3, lease_seconds: 120,
};

test('create → 201, echoes the schema, prj_ id, zero counts, RFC 3339 created_at', async () => {
  const r = await srv.client(mA.key).post('/api/v1/projects', full);
  const p = ok(r, 201);
  assert.match(p.id, /^prj_/);
  for (const k of ['name', 'instructions', 'min_responses', 'max_responses', 'lease_seconds']) assert.deepEqual(p[k], full[k], k);
  // every key given is echoed with its value (defaults may be added)
  assert.equal(p.fields.length, full.fields.length);
  full.fields.forEach((f, i) => { for (const k of Object.keys(f)) assert.deepEqual(p.fields[i][k], f[k], `fields[${i}].${k}`); });
  assert.equal(p.questions.length, full.questions.length);
  full.questions.forEach((q, i) => { for (const k of Object.keys(q)) assert.deepEqual(p.questions[i][k], q[k], `questions[${i}].${k}`); });
  assert.deepEqual(p.counts, { queued: 0, in_progress: 0, completed: 0, canceled: 0 });
  assert.match(p.created_at, TS_RE);
  assert.ok(Math.abs(Date.parse(p.created_at) - Date.now()) < 60_000, `created_at ${p.created_at} is not now`);
  // get answers the same object
  assert.deepEqual(await srv.client(mA.key).getProject(p.id), p);
});

test('defaults: min_responses 1, max_responses = min, lease_seconds 600; max defaults to min', async () => {
  const c = srv.client(mA.key);
  const p = await c.createProject({ name: 'Defaults', fields: [{ name: 'text', type: 'text' }], questions: [{ name: 'q', type: 'rating' }] });
  assert.equal(p.min_responses, 1);
  assert.equal(p.max_responses, 1);
  assert.equal(p.lease_seconds, 600);
  const p2 = await c.createProject({ name: 'Min4', fields: [{ name: 'text', type: 'text' }], questions: [{ name: 'q', type: 'rating' }], min_responses: 4 });
  assert.equal(p2.min_responses, 4);
  assert.equal(p2.max_responses, 4);
  const p3 = await c.createProject(sentimentSchema({ min_responses: 100, max_responses: 100, lease_seconds: 86400 }));
  assert.deepEqual([p3.min_responses, p3.max_responses, p3.lease_seconds], [100, 100, 86400]);
  const p4 = await c.createProject(sentimentSchema({ min_responses: 1, max_responses: 100, lease_seconds: 1 }));
  assert.deepEqual([p4.min_responses, p4.max_responses, p4.lease_seconds], [1, 100, 1]);
});

test('list: own organization only, oldest first; get of another org\'s project is 404', async () => {
  const cA = srv.client(mA.key);
  const cB = srv.client(mB.key);
  const before = ok(await cA.get('/api/v1/projects'), 200).projects;
  const b1 = await cB.createProject(sentimentSchema({ name: 'B one' }));
  const a1 = await cA.createProject(sentimentSchema({ name: 'A later 1' }));
  const a2 = await cA.createProject(sentimentSchema({ name: 'A later 2' }));
  const listA = ok(await cA.get('/api/v1/projects'), 200).projects;
  assert.deepEqual(listA.map((p) => p.id), [...before.map((p) => p.id), a1.id, a2.id]);
  assert.deepEqual(listA.at(-1), a2);
  const listB = ok(await cB.get('/api/v1/projects'), 200).projects;
  assert.deepEqual(listB.map((p) => p.id), [b1.id]);
  assertError(await cA.get(`/api/v1/projects/${b1.id}`), 404, 'not_found');
  assertError(await cB.get(`/api/v1/projects/${a1.id}`), 404, 'not_found');
  // created_at non-decreasing (oldest first)
  for (let i = 1; i < listA.length; i++) assert.ok(listA[i - 1].created_at <= listA[i].created_at);
  // project list through the CLI agrees
  const lines = w.ok(['project', 'list', '--org', orgA]).stdout.trim().split('\n');
  assert.deepEqual(lines, listA.map((p) => `${p.id}\t${p.name}`));
});

test('list: a page at a time (limit, next_cursor), own organization only; bad limit or cursor → 400', async () => {
  const org = w.org('Paging Org');
  const m = w.member(org, 'manager');
  const cP = srv.client(m.key);
  const made = [];
  for (let i = 0; i < 5; i++) made.push((await cP.createProject(sentimentSchema({ name: `page ${i}` }))).id);
  await srv.client(mB.key).createProject(sentimentSchema({ name: 'B between' })); // a rival's, in between
  made.push((await cP.createProject(sentimentSchema({ name: 'page 5' }))).id);
  const seen = [], sizes = [];
  let cursor = null;
  do {
    const page = ok(await cP.get(`/api/v1/projects?limit=2${cursor ? `&cursor=${cursor}` : ''}`), 200);
    sizes.push(page.projects.length);
    seen.push(...page.projects.map((p) => p.id));
    cursor = page.next_cursor;
  } while (cursor);
  assert.deepEqual(sizes, [2, 2, 2, 0], 'the cursor of the last full page leads to an empty one');
  assert.deepEqual(seen, made);
  const all = ok(await cP.get('/api/v1/projects'), 200);
  assert.deepEqual(all.projects.map((p) => p.id), made);
  assert.equal(all.next_cursor, null, 'the default page (100) holds them all');
  const last = ok(await cP.get(`/api/v1/projects?limit=1000&cursor=${made[3]}`), 200);
  assert.deepEqual(last.projects.map((p) => p.id), made.slice(4));
  for (const q of ['limit=0', 'limit=1001', 'limit=abc', 'limit=-1', 'limit=+5', 'cursor=nonsense', `cursor=${'tsk_0000000000000'}`]) {
    assertError(await cP.get(`/api/v1/projects?${q}`), 400, 'bad_request', q.split('=')[0]);
  }
  // the CLI lists every page
  const lines = w.ok(['project', 'list', '--org', org]).stdout.trim().split('\n');
  assert.deepEqual(lines.map((l) => l.split('\t')[0]), made);
});

test('unknown, malformed and wrong-kind project ids → 404', async () => {
  const c = srv.client(mA.key);
  const p = ok(await c.get('/api/v1/projects'), 200).projects[0];
  for (const id of ['prj_', 'prj_zzzzzzzzzzzz', 'nope', p.id.replace(/^prj_/, 'tsk_'), p.id.replace(/^prj_/, 'org_'), `${p.id}x`, '%00', 'prj_' + 'A'.repeat(300)]) {
    assertError(await c.get(`/api/v1/projects/${encodeURIComponent(id)}`), 404, 'not_found');
  }
});

// [description, schema mutation, expected field]
const bad = [
  ['third question: choice with empty options', (s) => { s.questions.push({ name: 'q1', type: 'rating' }, { name: 'q2', type: 'choice', options: [] }); }, 'questions[2].options'],
  ['choice without options', (s) => { s.questions[0] = { name: 'q', type: 'choice' }; }, 'questions[0].options'],
  ['choice options not strings', (s) => { s.questions[0].options = ['a', 2]; }, 'questions[0].options'],
  ['choice options repeated', (s) => { s.questions[0].options = ['a', 'b', 'a']; }, 'questions[0].options'],
  ['choice with 1001 options', (s) => { s.questions[0].options = Array.from({ length: 1001 }, (_, i) => `o${i}`); }, 'questions[0].options'],
  ['unknown field type', (s) => { s.fields[0].type = 'video'; }, 'fields[0].type'],
  ['second field bad name', (s) => { s.fields.push({ name: '1abc', type: 'text' }); }, 'fields[1].name'],
  ['field name too long (65)', (s) => { s.fields[0].name = 'a'.repeat(65); s.questions = [{ name: 'q', type: 'rating' }]; }, 'fields[0].name'],
  ['field name with a dash', (s) => { s.fields[0].name = 'a-b'; s.questions = [{ name: 'q', type: 'rating' }]; }, 'fields[0].name'],
  ['duplicate field names', (s) => { s.fields.push({ name: 'text', type: 'markdown' }); }, 'fields[1].name'],
  ['duplicate question names', (s) => { s.questions.push({ name: 'sentiment', type: 'rating' }); }, 'questions[1].name'],
  ['bad question name', (s) => { s.questions[0].name = 'has space'; }, 'questions[0].name'],
  ['unknown question type', (s) => { s.questions[0] = { name: 'q', type: 'essay' }; }, 'questions[0].type'],
  ['spans on a missing field', (s) => { s.questions[0] = { name: 'q', type: 'spans', field: 'nope', labels: ['X'] }; }, 'questions[0].field'],
  ['spans on an image field', (s) => { s.fields.push({ name: 'img', type: 'image' }); s.questions[0] = { name: 'q', type: 'spans', field: 'img', labels: ['X'] }; }, 'questions[0].field'],
  ['boxes on a text field', (s) => { s.questions[0] = { name: 'q', type: 'boxes', field: 'text', labels: ['X'] }; }, 'questions[0].field'],
  ['ranking on a text field', (s) => { s.questions[0] = { name: 'q', type: 'ranking', field: 'text' }; }, 'questions[0].field'],
  ['compare on a chat field', (s) => { s.fields.push({ name: 'c', type: 'chat' }); s.questions[0] = { name: 'q', type: 'compare', field: 'c' }; }, 'questions[0].field'],
  ['spans labels repeated', (s) => { s.questions[0] = { name: 'q', type: 'spans', field: 'text', labels: ['X', 'X'] }; }, 'questions[0].labels'],
  ['min_responses 0', (s) => { s.min_responses = 0; s.max_responses = 1; }, 'min_responses'],
  ['min_responses 101', (s) => { s.min_responses = 101; s.max_responses = 101; }, 'min_responses'],
  ['min_responses not an integer', (s) => { s.min_responses = 1.5; s.max_responses = 3; }, 'min_responses'],
  ['min_responses a string', (s) => { s.min_responses = '3'; s.max_responses = 3; }, 'min_responses'],
  ['max_responses below min', (s) => { s.min_responses = 3; s.max_responses = 2; }, 'max_responses'],
  ['max_responses 101', (s) => { s.min_responses = 1; s.max_responses = 101; }, 'max_responses'],
  ['lease_seconds 0', (s) => { s.lease_seconds = 0; }, 'lease_seconds'],
  ['lease_seconds 86401', (s) => { s.lease_seconds = 86401; }, 'lease_seconds'],
  ['name missing', (s) => { delete s.name; }, 'name'],
  ['name not a string', (s) => { s.name = 42; }, 'name'],
];

for (const [desc, mut, field] of bad) {
  test(`bad schema → 422 field ${field}: ${desc}`, async () => {
    const s = sentimentSchema();
    mut(s);
    const c = srv.client(mA.key);
    const n0 = ok(await c.get('/api/v1/projects'), 200).projects.length;
    const e = assertError(await c.post('/api/v1/projects', s), 422, 'invalid', field);
    assert.ok(!('offset' in e), 'offset is only for bad_json');
    assert.equal(ok(await c.get('/api/v1/projects'), 200).projects.length, n0, 'a refused project was stored');
  });
}

test('malformed JSON → 400 bad_json with the byte offset of the fault', async () => {
  const c = srv.client(mA.key);
  // The offset may name the first byte of the offending token (0-based) or, as
  // jansson's json_error_t.position does, the byte just past it. The first
  // sample decides which; every other sample is then pinned exactly.
  // [body, offset of the token's first byte, jansson position]
  const samples = [
    ['{"name": x}', 9, 10],
    ['{"name": "a",, "x": 1}', 13, 14],
    ['{"name" "a"}', 8, 11],
    ['{"name": tru}', 9, 12],
    ['{"a":1}}', 7, 8],
    ['{"name": "ééé", x}', 19, 20], // bytes, not code points (x is code point 16)
  ];
  let conv = null;
  for (const [b, first, past] of samples) {
    const e = assertError(await c.post('/api/v1/projects', b), 400, 'bad_json');
    assert.equal(typeof e.offset, 'number', `offset missing for ${JSON.stringify(b)}: ${JSON.stringify(e)}`);
    assert.ok(Number.isInteger(e.offset) && e.offset >= 0 && e.offset <= Buffer.byteLength(b), `offset ${e.offset} outside the body ${JSON.stringify(b)}`);
    if (conv === null) {
      assert.ok([first, past].includes(e.offset), `offset ${e.offset} for ${JSON.stringify(b)}: expected ${first} (fault byte) or ${past} (jansson)`);
      conv = e.offset === first ? 0 : 1;
    } else {
      assert.equal(e.offset, conv === 0 ? first : past, `offset for ${JSON.stringify(b)} (convention: ${conv === 0 ? 'fault byte' : 'jansson position'})`);
    }
  }
  for (const b of ['', '{', '{"name": "abc', '{"name": "a"']) {
    const e = assertError(await c.post('/api/v1/projects', b), 400, 'bad_json');
    assert.ok(Number.isInteger(e.offset) && e.offset >= 0 && e.offset <= Buffer.byteLength(b), `offset ${e.offset} for ${JSON.stringify(b)}`);
  }
});

test('wrong shapes → 400 bad_request or 422 invalid, never stored', async () => {
  const c = srv.client(mA.key);
  const n0 = ok(await c.get('/api/v1/projects'), 200).projects.length;
  for (const b of ['[]', '[{"name":"x"}]']) assertError(await c.post('/api/v1/projects', b), 400, 'bad_request');
  for (const b of ['42', '"str"', 'null', 'true']) assertError(await c.post('/api/v1/projects', b), 400, ['bad_request', 'bad_json']);
  for (const s of [
    { ...sentimentSchema(), fields: 'text' },
    { ...sentimentSchema(), questions: { name: 'q' } },
    { ...sentimentSchema(), fields: [42] },
    { ...sentimentSchema(), questions: [null] },
  ]) {
    const r = await c.post('/api/v1/projects', s);
    assert.ok([400, 422].includes(r.status), String(r));
    assertError(r, r.status, r.status === 400 ? 'bad_request' : 'invalid');
  }
  assert.equal(ok(await c.get('/api/v1/projects'), 200).projects.length, n0);
});
