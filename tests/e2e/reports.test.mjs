// Quality reports read every answered task of their project: seconds on a
// large one. They run in a thread of their own, so the quick reads (GET /me,
// a task, a project) never queue behind one; and the requests for one project
// that queued while a report was made share the next one, each after its own
// access check (a rival organization still gets 404, an annotator 403).
// The answers are written straight into the database (sqlite3) before the
// server starts: 40,000 answered tasks make a report long enough to overlap.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { World, SLOW, sleep, sentimentSchema, textTasks, assertError, ok, HAVE_SQLITE3, sqlite } from './lib.mjs';

const N = 40_000;
const w = World.create('reports');
let srv, orgA, rev, mgr, ann, rival, big, small;

function answerAll(name, annotatorEmail) {
  const prj = `(SELECT id FROM projects WHERE name = '${name}')`;
  const user = `(SELECT id FROM users WHERE email = '${annotatorEmail}')`;
  sqlite(w.db, `BEGIN;
    INSERT INTO assignments(task_id, project_id, user_id, status, created_at, expires_at)
      SELECT id, project_id, ${user}, 1, 0, 0 FROM tasks WHERE project_id = ${prj};
    INSERT INTO responses(task_id, assignment_id, user_id, answers, duration_ms, created_at)
      SELECT a.task_id, a.id, a.user_id,
             CASE a.task_id % 3 WHEN 0 THEN '{"sentiment":"positive"}' WHEN 1 THEN '{"sentiment":"negative"}'
                                ELSE '{"sentiment":"neutral"}' END, 1000, 0
      FROM assignments a WHERE a.project_id = ${prj};
    UPDATE tasks SET status = 2, n_responses = 1, slots = 0 WHERE project_id = ${prj};
    COMMIT;`);
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
  answerAll('big', ann.email);
  answerAll('small', ann.email);
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
    assert.equal(body.counts.responses, N);
  });

test('reports queued for one project share one, each after its own access check',
  { skip: !HAVE_SQLITE3 && 'sqlite3 not found', timeout: 120_000 * SLOW }, async () => {
    const first = report(rev, big); // keeps the report thread busy while the rest queue
    await sleep(100);
    const [r1, r2, rAnn, rRival, rSmall, r3] = await Promise.all([
      report(rev, big), report(mgr, big), report(ann, big), report(rival, big), report(mgr, small), report(rev, big)]);
    const b0 = ok(await first, 200);
    for (const r of [r1, r2, r3]) assert.deepEqual(ok(r, 200), b0);
    assert.equal(b0.project_id, big);
    assert.equal(b0.counts.responses, N);
    assert.deepEqual(b0.questions.map((q) => [q.name, q.answers]), [['sentiment', N]]);
    assertError(rAnn, 403, 'forbidden');
    assertError(rRival, 404, 'not_found');
    const bs = ok(rSmall, 200);
    assert.equal(bs.project_id, small);
    assert.equal(bs.counts.responses, 30);
  });
