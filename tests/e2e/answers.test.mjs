// Answers for every question type: valid → 201 (stored as sent), invalid → 422 field answers.<name>.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { World, assertError, ok } from './lib.mjs';

const w = World.create('answers');
let srv, mgr, ann, a, c, prj;

// "Zoë 🌍 Paris": 11 code points, 12 UTF-16 units, 15 bytes.
const TEXT = 'Zoë 🌍 Paris';
const schema = {
  name: 'All question types',
  fields: [
    { name: 'text', type: 'text' },
    { name: 'img', type: 'image' },
    { name: 'outs', type: 'responses' },
  ],
  questions: [
    { name: 'sentiment', type: 'choice', options: ['positive', 'negative', 'neutral'] },
    { name: 'topics', type: 'multi_choice', options: ['a', 'b', 'c'], min_selected: 1, max_selected: 2 },
    { name: 'ents', type: 'spans', field: 'text', labels: ['PER', 'LOC'] },
    { name: 'objs', type: 'boxes', field: 'img', labels: ['car', 'tree'] },
    { name: 'rank', type: 'ranking', field: 'outs' },
    { name: 'pref', type: 'compare', field: 'outs', allow_tie: true },
    { name: 'pref2', type: 'compare', field: 'outs' },
    { name: 'stars', type: 'rating', min: 1, max: 5 },
    { name: 'note', type: 'text', min_length: 2, max_length: 5 },
    { name: 'extra', type: 'text', required: false },
  ],
  min_responses: 1, max_responses: 1,
};

const good = () => ({
  sentiment: 'positive',
  topics: ['a', 'c'],
  ents: [{ start: 0, end: 3, label: 'PER' }, { start: 6, end: 11, label: 'LOC' }],
  objs: [{ x: 0.1, y: 0.2, w: 0.3, h: 0.4, label: 'car' }],
  rank: [2, 0, 1],
  pref: 1,
  pref2: 0,
  stars: 4,
  note: 'fine',
});

before(async () => {
  const org = w.org('Answers Org');
  mgr = w.member(org, 'manager');
  ann = w.member(org, 'annotator');
  srv = await w.serve();
  c = srv.client(mgr.key);
  a = srv.client(ann.key);
  prj = (await c.createProject(schema)).id;
  const tasks = Array.from({ length: 60 }, (_, i) => ({
    data: { text: TEXT, img: `https://example.com/img${i}.png`, outs: ['A', 'B', 'C'] },
    unique_id: `ans-${i}`,
  }));
  await c.createTasks(prj, tasks);
});

/** Claims (or re-claims the live lease) for the annotator. */
async function lease() {
  const cl = await a.claim(prj);
  assert.ok(cl, 'ran out of tasks');
  return cl;
}

// [question, answer value (undefined = omitted)]
const invalid = [
  ['sentiment', 'other'], ['sentiment', ['positive']], ['sentiment', 1], ['sentiment', null], ['sentiment', 'Positive'], ['sentiment', undefined],
  ['topics', []], ['topics', ['a', 'b', 'c']], ['topics', ['a', 'a']], ['topics', ['z']], ['topics', 'a'], ['topics', [1]],
  ['ents', [{ start: 0, end: 12, label: 'PER' }]],               // 12 = UTF-16 length: past 11 code points
  ['ents', [{ start: 0, end: 15, label: 'PER' }]],               // 15 = byte length
  ['ents', [{ start: 3, end: 3, label: 'PER' }]],                // empty span
  ['ents', [{ start: 5, end: 4, label: 'PER' }]],
  ['ents', [{ start: -1, end: 2, label: 'PER' }]],
  ['ents', [{ start: 0, end: 2, label: 'ORG' }]],
  ['ents', [{ start: 0, end: 2 }]],
  ['ents', [{ start: 0.5, end: 2, label: 'PER' }]],
  ['ents', [{ start: '0', end: 2, label: 'PER' }]],
  ['ents', { start: 0, end: 2, label: 'PER' }],
  ['objs', [{ x: 0.6, y: 0, w: 0.5, h: 0.5, label: 'car' }]],    // x+w > 1
  ['objs', [{ x: 0, y: 0.7, w: 0.5, h: 0.31, label: 'car' }]],   // y+h > 1
  ['objs', [{ x: -0.1, y: 0, w: 0.5, h: 0.5, label: 'car' }]],
  ['objs', [{ x: 0, y: 0, w: 0, h: 0.5, label: 'car' }]],
  ['objs', [{ x: 0, y: 0, w: 0.5, h: -0.1, label: 'car' }]],
  ['objs', [{ x: 0, y: 0, w: 0.5, label: 'car' }]],
  ['objs', [{ x: 0, y: 0, w: 0.5, h: 0.5, label: 'bus' }]],
  ['objs', [{ x: '0', y: 0, w: 0.5, h: 0.5, label: 'car' }]],
  ['rank', [0, 1]], ['rank', [0, 1, 2, 3]], ['rank', [0, 0, 1]], ['rank', [1, 2, 3]], ['rank', [0, 1, -1]], ['rank', ['0', '1', '2']], ['rank', [0, 1.5, 2]],
  ['pref', 3], ['pref', -1], ['pref', 'TIE'], ['pref', 1.5], ['pref', '1'],
  ['pref2', 'tie'], ['pref2', 3],
  ['stars', 0], ['stars', 6], ['stars', 2.5], ['stars', '3'], ['stars', null],
  ['note', 'a'], ['note', 'abcdef'], ['note', 'ab🌍🌍🌍🌍'], ['note', 5], ['note', undefined],
  ['extra', 42],
  ['bogus', 'x'],   // unknown answer name
];

test('invalid answers → 422 invalid, field answers.<name>; nothing stored; the lease stays usable', async () => {
  const cl = await lease();
  const failures = [];
  for (const [name, value] of invalid) {
    const answers = good();
    if (value === undefined) delete answers[name]; else answers[name] = value;
    const r = await a.post(`/api/v1/assignments/${cl.assignment.id}/submit`, { answers, duration_ms: 10 });
    try {
      assertError(r, 422, 'invalid', `answers.${name}`);
    } catch (e) {
      failures.push(`${name}=${JSON.stringify(value)}: ${r.status} ${r.text.slice(0, 200)}`);
    }
  }
  assert.deepEqual(failures, [], `answers accepted or refused wrongly:\n${failures.join('\n')}`);
  const t = await c.getTask(cl.task.id);
  assert.equal(t.response_count, 0);
  assert.deepEqual(t.responses, []);
  // the same lease still takes a valid answer
  const again = await lease();
  assert.equal(again.assignment.id, cl.assignment.id);
  const s = await a.submit(cl.assignment.id, good(), 77);
  assert.deepEqual(s.response.answers, good());
  assert.equal(s.task.status, 'completed');
});

// [description, mutation] — each valid variant gets its own task
const valid = [
  ['baseline', () => {}],
  ['choice: each option', (x) => { x.sentiment = 'neutral'; }],
  ['multi_choice: one', (x) => { x.topics = ['b']; }],
  ['multi_choice: max 2', (x) => { x.topics = ['c', 'a']; }],
  ['spans: whole text in code points (0..11)', (x) => { x.ents = [{ start: 0, end: 11, label: 'LOC' }]; }],
  ['spans: just the emoji (4..5)', (x) => { x.ents = [{ start: 4, end: 5, label: 'LOC' }]; }],
  ['spans: none', (x) => { x.ents = []; }],
  ['boxes: touching the edges (x+w = 1, y+h = 1)', (x) => { x.objs = [{ x: 0.5, y: 0, w: 0.5, h: 1, label: 'tree' }, { x: 0, y: 0.75, w: 0.25, h: 0.25, label: 'car' }]; }],
  ['boxes: none', (x) => { x.objs = []; }],
  ['ranking: identity', (x) => { x.rank = [0, 1, 2]; }],
  ['compare: tie allowed', (x) => { x.pref = 'tie'; }],
  ['compare: index 2', (x) => { x.pref = 2; x.pref2 = 2; }],
  ['rating: bounds 1', (x) => { x.stars = 1; }],
  ['rating: bounds 5', (x) => { x.stars = 5; }],
  ['text: 5 code points with 2-byte chars', (x) => { x.note = 'héllo'; }],
  ['text: 5 code points, 4 of them astral (9 UTF-16 units)', (x) => { x.note = 'a🌍🌍🌍🌍'; }],
  ['text: exactly 2', (x) => { x.note = 'ok'; }],
  ['optional text given', (x) => { x.extra = 'anything at all, any length'; }],
];

for (const [desc, mut] of valid) {
  test(`valid answers → 201 and stored as sent: ${desc}`, async () => {
    const cl = await lease();
    const answers = good();
    mut(answers);
    const r = await a.post(`/api/v1/assignments/${cl.assignment.id}/submit`, { answers, duration_ms: 5 });
    const b = ok(r, 201);
    assert.deepEqual(b.response.answers, answers);
    assert.equal(b.response.task_id, cl.task.id);
    assert.equal(b.response.duration_ms, 5);
    const t = await c.getTask(cl.task.id);
    assert.equal(t.responses.length, 1);
    assert.deepEqual(t.responses[0].answers, answers);
    assert.equal(t.responses[0].user_id, ann.id);
  });
}

test('submit body shape: answers must be an object; duration_ms an integer ≥ 0', async () => {
  const cl = await lease();
  const p = `/api/v1/assignments/${cl.assignment.id}/submit`;
  for (const b of [{ answers: 'x' }, { answers: [good()] }, { answers: null }]) {
    const r = await a.post(p, b);
    assert.ok([400, 422].includes(r.status), String(r));
    assertError(r, r.status);
  }
  for (const d of [-1, 1.5, 'fast']) {
    const r = await a.post(p, { answers: good(), duration_ms: d });
    assert.ok([400, 422].includes(r.status), `duration_ms ${JSON.stringify(d)}: ${r}`);
    assertError(r, r.status);
  }
  assertError(await a.post(p, '{"answers": {'), 400, 'bad_json');
  assertError(await a.post(p, '[]'), 400, 'bad_request');
  assert.equal((await c.getTask(cl.task.id)).response_count, 0);
  const s = await a.submit(cl.assignment.id, good(), 0);
  assert.equal(s.response.duration_ms, 0);
});
