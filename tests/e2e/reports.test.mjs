// Quality reports read every answered task of their project: seconds on a
// large one. They run in a thread of their own, so the quick reads (GET /me,
// a task, a project) never queue behind one; and the requests for one project
// that queued while a report was made share the next one, each after its own
// access check (a rival organization still gets 404, an annotator 403).
// The answers are written straight into the database (sqlite3) before the
// server starts: 100,000 tasks answered by 4 annotators each make a report
// long enough to overlap (about 0.9 s in the release build).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { World, SLOW, BIN, sleep, sentimentSchema, textTasks, assertError, ok, HAVE_SQLITE3, sqlite } from './lib.mjs';

// under a sanitizer every answer costs several times more: a quarter of the
// tasks make a report as long (and the setup shorter)
const N = /asan|tsan/i.test(BIN) ? 25_000 : 100_000, K = 4;
const w = World.create('reports');
let srv, orgA, rev, mgr, ann, rival, big, small, mixed, expected, busy, busyBase, busyAnns;

function answerAll(name, emails) {
  const prj = `(SELECT id FROM projects WHERE name = '${name}')`;
  const users = `(SELECT id FROM users WHERE email IN (${emails.map((e) => `'${e}'`).join(',')}))`;
  sqlite(w.db, `BEGIN;
    INSERT INTO assignments(task_id, project_id, user_id, status, created_at, expires_at)
      SELECT t.id, t.project_id, u.id, 1, 0, 0 FROM tasks t, ${users} u WHERE t.project_id = ${prj}
      ORDER BY t.id, u.id;
    INSERT INTO responses(task_id, assignment_id, user_id, answers, duration_ms, created_at)
      SELECT a.task_id, a.id, a.user_id,
             CASE (a.task_id + a.user_id) % 3 WHEN 0 THEN '{"sentiment":"positive"}' WHEN 1 THEN '{"sentiment":"negative"}'
                                ELSE '{"sentiment":"neutral"}' END, 1000, 0
      FROM assignments a WHERE a.project_id = ${prj} ORDER BY a.id;
    UPDATE tasks SET status = 2, n_responses = ${emails.length}, slots = 0 WHERE project_id = ${prj};
    -- rows written in SQL bypass tally's status counters: count them again
    DELETE FROM project_counts;
    INSERT INTO project_counts SELECT project_id, status, count(*) FROM tasks GROUP BY project_id, status;
    COMMIT;`);
}

// Krippendorff's alpha by the coincidence method (Krippendorff 2011), from
// units given as arrays of values: nominal compares labels, interval values.
function alpha(units, interval) {
  let n = 0, dobs = 0;
  const nc = new Map();
  for (const u of units) {
    if (u.length < 2) continue;
    const m = u.length, c = new Map();
    for (const v of u) c.set(v, (c.get(v) || 0) + 1);
    let s;
    if (interval) {
      const mean = u.reduce((a, v) => a + v, 0) / m;
      s = 2 * m * u.reduce((a, v) => a + (v - mean) ** 2, 0);
    } else {
      s = m * m - [...c.values()].reduce((a, x) => a + x * x, 0);
    }
    dobs += s / (m - 1);
    n += m;
    for (const [v, x] of c) nc.set(v, (nc.get(v) || 0) + x);
  }
  let dexp;
  if (interval) {
    const mean = [...nc].reduce((a, [v, x]) => a + v * x, 0) / n;
    dexp = 2 * n * [...nc].reduce((a, [v, x]) => a + x * (v - mean) ** 2, 0);
  } else {
    dexp = n * n - [...nc.values()].reduce((a, x) => a + x * x, 0);
  }
  return 1 - (n - 1) * dobs / dexp;
}

// A project with a choice and a rating question: 1,500 tasks answered by
// three annotators each, one in five answers off the task's label, and a
// consensus that is not always the majority; one more task has 150 answers
// (from users made in SQL), more than any one task held in the report's
// earlier walk. Returns what the report must say, computed here.
function answerMixed(org) {
  const labels = ['positive', 'negative', 'neutral'];
  const anns = [w.member(org, 'annotator'), w.member(org, 'annotator'), w.member(org, 'annotator')];
  mixed = w.project(org, {
    name: 'mixed', fields: [{ name: 'text', type: 'text' }],
    questions: [{ name: 'label', type: 'choice', options: labels },
      { name: 'stars', type: 'rating', min: 1, max: 5 }],
    min_responses: 3, max_responses: 3, lease_seconds: 600,
  });
  const T = 1500;
  w.ok(['import', mixed, w.file('mixed.jsonl', textTasks(T + 1, 'm').map((t) => JSON.stringify(t)).join('\n'))]);
  const prj = `(SELECT id FROM projects WHERE name = 'mixed')`;
  const ids = sqlite(w.db, `SELECT id FROM tasks WHERE project_id = ${prj} ORDER BY id`).split('\n').map(Number);
  const row = Object.fromEntries(anns.map((a) => [a.id, Number(sqlite(w.db, `SELECT id FROM users WHERE email = '${a.email}'`))]));
  const units = { label: [], stars: [] };
  const agree = new Map(anns.map((a) => [a.id, { n: 0, same: 0 }]));
  const rows = [], cons = [];
  ids.slice(0, T).forEach((tid, i) => {
    const truth = i % 3, stars = 1 + (i % 5);
    const cl = labels[(i % 7 === 0) ? (truth + 1) % 3 : truth], cs = stars;
    cons.push(`WHEN ${tid} THEN '${JSON.stringify({ label: { label: cl, confidence: 0.9 }, stars: { label: cs, confidence: 0.8 } })}'`);
    const ul = [], us = [];
    anns.forEach((a, k) => {
      const off = (i * 31 + k * 17) % 10 < 2;
      const l = labels[(truth + (off ? 1 : 0)) % 3], s = off ? 1 + ((i + 2) % 5) : stars;
      ul.push(l); us.push(s);
      rows.push([tid, row[a.id], { label: l, stars: s }]);
      const g = agree.get(a.id);
      g.n += 2; g.same += (l === cl) + (s === cs);
    });
    units.label.push(ul); units.stars.push(us);
  });
  const big = ids[T];
  sqlite(w.db, `BEGIN;
    WITH RECURSIVE c(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM c WHERE k < 149)
    INSERT INTO users(email, created_at) SELECT 'crowd' || k || '@example.com', 0 FROM c;
    COMMIT;`);
  const crowd = sqlite(w.db, `SELECT id FROM users WHERE email LIKE 'crowd%@example.com' ORDER BY id`).split('\n').map(Number);
  crowd.forEach((u, k) => rows.push([big, u, { label: labels[k % 10 === 0 ? 1 : 0], stars: 4 }]));
  units.label.push(crowd.map((_, k) => labels[k % 10 === 0 ? 1 : 0]));
  units.stars.push(crowd.map(() => 4));
  const values = rows.map(([t, u, a]) => `(${t}, ${prj}, ${u}, '${JSON.stringify(a)}')`).join(',\n');
  sqlite(w.db, `BEGIN;
    CREATE TEMP TABLE x(task_id, project_id, user_id, answers);
    INSERT INTO x VALUES ${values};
    INSERT INTO assignments(task_id, project_id, user_id, status, created_at, expires_at)
      SELECT task_id, project_id, user_id, 1, 0, 0 FROM x ORDER BY rowid;
    INSERT INTO responses(task_id, assignment_id, user_id, answers, duration_ms, created_at)
      SELECT x.task_id, a.id, x.user_id, x.answers, 1000, 0 FROM x
      JOIN assignments a ON a.task_id = x.task_id AND a.user_id = x.user_id ORDER BY x.rowid;
    UPDATE tasks SET status = 2, n_responses = 3, slots = 0,
      consensus = CASE id ${cons.join(' ')} END WHERE project_id = ${prj} AND id <> ${big};
    UPDATE tasks SET status = 1, n_responses = 150 WHERE id = ${big};
    INSERT INTO annotator_stats(project_id, user_id, answered)
      SELECT ${prj}, user_id, count(*) FROM responses WHERE task_id IN (SELECT id FROM tasks WHERE project_id = ${prj})
      AND user_id IN (${anns.map((a) => row[a.id]).join(',')}) GROUP BY user_id;
    -- rows written in SQL bypass tally's status counters: count them again
    DELETE FROM project_counts;
    INSERT INTO project_counts SELECT project_id, status, count(*) FROM tasks GROUP BY project_id, status;
    COMMIT;`);
  return {
    responses: rows.length,
    label: alpha(units.label, false), stars: alpha(units.stars, true),
    agree: Object.fromEntries(anns.map((a) => [a.id, agree.get(a.id).same / agree.get(a.id).n])),
    anns,
  };
}

before(async () => {
  if (!HAVE_SQLITE3) return;
  orgA = w.org('Reports A');
  rev = w.member(orgA, 'reviewer');
  mgr = w.member(orgA, 'manager');
  ann = w.member(orgA, 'annotator');
  rival = w.member(w.org('Reports B'), 'manager');
  big = w.project(orgA, sentimentSchema({ name: 'big' }));
  small = w.project(orgA, sentimentSchema({ name: 'small' }));
  w.ok(['import', big, w.file('big.jsonl', textTasks(N, 'b').map((t) => JSON.stringify(t)).join('\n'))]);
  w.ok(['import', small, w.file('small.jsonl', textTasks(30, 's').map((t) => JSON.stringify(t)).join('\n'))]);
  const crowd = Array.from({ length: K - 1 }, () => w.member(orgA, 'annotator').email);
  answerAll('big', [ann.email, ...crowd]);
  answerAll('small', [ann.email]);
  expected = answerMixed(orgA);
  // 'busy': 20,000 tasks with two of their three answers; the third come
  // through the API while reports and refits walk the project
  const pair = Array.from({ length: 2 }, () => w.member(orgA, 'annotator').email);
  busy = w.project(orgA, sentimentSchema({ name: 'busy', min_responses: 3, max_responses: 3 }));
  w.ok(['import', busy, w.file('busy.jsonl', textTasks(20_000, 'y').map((t) => JSON.stringify(t)).join('\n'))]);
  answerAll('busy', pair);
  sqlite(w.db, `UPDATE tasks SET status = 1, slots = 1 WHERE project_id = (SELECT id FROM projects WHERE name = 'busy');
    INSERT INTO annotator_stats(project_id, user_id, answered)
      SELECT project_id, user_id, count(*) FROM responses r JOIN tasks t ON t.id = r.task_id
      WHERE t.project_id = (SELECT id FROM projects WHERE name = 'busy') GROUP BY project_id, user_id;
    DELETE FROM project_counts;
    INSERT INTO project_counts SELECT project_id, status, count(*) FROM tasks GROUP BY project_id, status;`);
  busyBase = 40_000;
  busyAnns = Array.from({ length: 6 }, () => w.member(orgA, 'annotator'));
  srv = await w.serve();
});

const report = (who, prj) => srv.client(who.key).get(`/api/v1/projects/${prj}/quality`, { timeout: 120_000 });

test('a quick read is answered while a quality report is being made, not after it',
  { skip: !HAVE_SQLITE3 && 'sqlite3 not found', timeout: 120_000 * SLOW }, async () => {
    let reportDone = false;
    const slow = report(rev, big).then((r) => { reportDone = true; return r; });
    await sleep(100); // the report thread has begun
    const me = await srv.client(ann.key).me();
    assert.equal(me.user.id, ann.id);
    const t = ok(await srv.client(mgr.key).get(`/api/v1/projects/${big}`), 200);
    assert.equal(t.id, big);
    assert.equal(reportDone, false, 'GET /me and GET /projects/{id} waited for the quality report');
    const body = ok(await slow, 200);
    assert.equal(body.counts.responses, N * K);
  });

test('reports queued for one project share one, each after its own access check',
  { skip: !HAVE_SQLITE3 && 'sqlite3 not found', timeout: 120_000 * SLOW }, async () => {
    // one more task moves the project's counts: the walk kept from the test
    // before no longer holds, and the next report walks again
    ok(await srv.client(mgr.key).post(`/api/v1/projects/${big}/tasks`, { tasks: [{ data: { text: 'one more' } }] }), 201);
    const first = report(rev, big); // keeps the report thread busy while the rest queue
    await sleep(100);
    const [r1, r2, rAnn, rRival, rSmall, r3] = await Promise.all([
      report(rev, big), report(mgr, big), report(ann, big), report(rival, big), report(mgr, small), report(rev, big)]);
    const b0 = ok(await first, 200);
    for (const r of [r1, r2, r3]) assert.deepEqual(ok(r, 200), b0);
    assert.equal(b0.project_id, big);
    assert.equal(b0.counts.responses, N * K);
    assert.equal(b0.counts.queued, 1);
    assert.deepEqual(b0.questions.map((q) => [q.name, q.answers, q.units]), [['sentiment', N * K, N]]);
    assertError(rAnn, 403, 'forbidden');
    assertError(rRival, 404, 'not_found');
    const bs = ok(rSmall, 200);
    assert.equal(bs.project_id, small);
    assert.equal(bs.counts.responses, 30);
  });

test('the report\'s alpha and agreement equal an independent computation; no task\'s answers are cut',
  { skip: !HAVE_SQLITE3 && 'sqlite3 not found', timeout: 120_000 * SLOW }, async () => {
    const rep = ok(await report(mgr, mixed), 200);
    assert.equal(rep.counts.responses, expected.responses, 'every answer counted, the 150 of one task too');
    const q = Object.fromEntries(rep.questions.map((x) => [x.name, x]));
    assert.deepEqual([q.label.alpha_level, q.label.units, q.label.answers], ['nominal', 1501, expected.responses]);
    assert.deepEqual([q.stars.alpha_level, q.stars.units, q.stars.answers], ['interval', 1501, expected.responses]);
    assert.ok(Math.abs(q.label.krippendorff_alpha - expected.label) < 1e-12,
      `label alpha ${q.label.krippendorff_alpha}, computed here ${expected.label}`);
    assert.ok(Math.abs(q.stars.krippendorff_alpha - expected.stars) < 1e-12,
      `stars alpha ${q.stars.krippendorff_alpha}, computed here ${expected.stars}`);
    assert.ok(expected.label > 0.3 && expected.label < 0.9 && expected.stars > 0.3 && expected.stars < 0.9,
      'the data disagrees enough for alpha to mean something');
    assert.equal(rep.annotators.length, 3);
    for (const a of rep.annotators) {
      assert.equal(a.responses, 1500);
      assert.ok(Math.abs(a.agreement_with_consensus - expected.agree[a.user_id]) < 1e-12,
        `${a.user_id}: ${a.agreement_with_consensus}, computed here ${expected.agree[a.user_id]}`);
    }
    // the same report again, to the byte
    assert.deepEqual(ok(await report(rev, mixed), 200), rep);
    // the refit's model takes every answer too (it kept a task's first 128)
    assert.equal((await srv.client(mgr.key).post(`/api/v1/projects/${mixed}/quality/refit`)).status, 202);
    let fit = null;
    for (let i = 0; i < 400 * SLOW && !fit; i++) {
      fit = ok(await report(mgr, mixed), 200).last_fit;
      if (!fit) await sleep(50);
    }
    assert.ok(fit, `no refit finished: ${srv.log.slice(-2000)}`);
    assert.equal(fit.answers, 2 * expected.responses, 'both questions of every answer');
    assert.deepEqual(fit.questions.map((x) => [x.name, x.answers, x.tasks]),
      [['label', expected.responses, 1501], ['stars', expected.responses, 1501]]);
  });

test('while tasks complete under a walk, a report counts each answer once and a refit sees each task once',
  { skip: !HAVE_SQLITE3 && 'sqlite3 not found', timeout: 300_000 * SLOW }, async () => {
    let acked = 0, stop = false;
    const work = busyAnns.map(async (a) => {
      const c = srv.client(a.key);
      while (!stop) {
        const cl = await c.claim(busy);
        if (!cl) break;
        await c.submit(cl.assignment.id, { sentiment: 'positive' });
        acked++;
      }
    });
    const reports = [];
    let refits = 0;
    // reports (and refits) go on until they have overlapped enough answers
    const until = Date.now() + 60_000 * SLOW;
    for (let i = 0; (i < 8 || acked < 300) && Date.now() < until; i++) {
      const before = acked;
      const r = ok(await srv.client(mgr.key).get(`/api/v1/projects/${busy}/quality`, { timeout: 120_000 }), 200);
      reports.push([before, r.counts.responses, acked]);
      if (i % 2 === 0) {
        assert.equal((await srv.client(mgr.key).post(`/api/v1/projects/${busy}/quality/refit`)).status, 202);
        refits++;
      }
    }
    stop = true;
    await Promise.all(work);
    // an answer may be on disk before its reply reaches the annotator: one
    // in flight per annotator at most
    for (const [before, got, after] of reports) {
      assert.ok(got >= busyBase + before && got <= busyBase + after + busyAnns.length,
        `a report counted ${got - busyBase} new answers; ${before} were acknowledged before it was asked, ${after} when it came`);
    }
    assert.ok(acked >= 300, `only ${acked} answers came in within a minute: the walks did not overlap much work`);
    // the refits ran (one at a time) and none failed on a task seen twice
    let fit = null;
    for (let i = 0; i < 400 * SLOW && !fit; i++) {
      fit = ok(await srv.client(mgr.key).get(`/api/v1/projects/${busy}/quality`), 200).last_fit;
      if (!fit) await sleep(50);
    }
    assert.ok(fit, `no refit finished: ${srv.log.slice(-2000)}`);
    // only tasks with a consensus are rewritten: those that got their third
    // answer through the API, once each
    assert.ok(fit.tasks_updated > 0 && fit.tasks_updated <= acked + busyAnns.length,
      `${fit.tasks_updated} tasks rewritten, ${acked} answered through the API`);
    assert.doesNotMatch(srv.log, /refit of \S+ failed/, srv.log.slice(-2000));
    assert.ok(refits > 0);
  });
