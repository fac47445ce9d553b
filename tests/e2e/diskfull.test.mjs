// A full disk: the server runs under bench/preload/diskfault.c, which makes every
// write that would grow the database or its WAL fail with ENOSPC while a flag
// file exists (as a full ext4 does: writes inside a file's length go on). Then
// every write request answers 503 busy with Retry-After and keeps nothing of
// itself, reads go on, an acknowledged answer is never lost, and once space is
// freed everything works again without a restart. Needs the shim (and, for the
// load test, bench/crashload) of the release build: a client and an
// uninstrumented shim, whatever server binary is under test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, writeFileSync, rmSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { World, REPO, BIN, SLOW, sentimentSchema, textTasks, ok, assertError, sleep,
  DISKFAULT, diskfaultEnv, HAVE_SQLITE3, sqlite } from './lib.mjs';

const CRASHLOAD = [path.join(REPO, 'build/bench/crashload')].find((p) => existsSync(p));
const shimEnv = (w, flag) => diskfaultEnv(w, { DISKFAULT_FULL: flag });

const full = (flag) => writeFileSync(flag, '');
const freed = (flag) => rmSync(flag, { force: true });

// every answer the test expected to be 503 is one, and the teardown's "no 5xx" holds for the rest
function dropExpected503(srv, n) {
  const busy = srv.fiveXX.filter((x) => x.status === 503);
  assert.ok(busy.length >= n, `expected ${n} 503s, saw ${JSON.stringify(srv.fiveXX)}`);
  srv.fiveXX = srv.fiveXX.filter((x) => x.status !== 503);
}

function assertBusy(res) {
  assertError(res, 503, 'busy');
  assert.match(res.body.error.message, /disk .*is full.*nothing of this request was kept/, String(res));
  assert.match(res.headers.get('retry-after') || '', /^\d+$/, `Retry-After on ${res}`);
}

test('a full disk: writes answer 503 busy and keep nothing, reads go on, and all works again once space is freed',
  { skip: !DISKFAULT && 'bench/libdiskfault.so not built', timeout: 120_000 * SLOW }, async () => {
    const w = World.create('diskfull');
    const flag = path.join(w.dir, 'disk-is-full');
    const org = w.org('Full Org');
    const mgr = w.member(org, 'manager');
    const [a, b] = [w.member(org, 'annotator'), w.member(org, 'annotator')];
    const srv = await w.serve([], shimEnv(w, flag));
    const c = srv.client(mgr.key);
    const A = srv.client(a.key);
    const B = srv.client(b.key);
    const S = { sentiment: 'positive' };
    const prj = (await c.createProject(sentimentSchema())).id;
    await c.createTasks(prj, textTasks(10, 'full'));
    const acked = [];
    for (let i = 0; i < 2; i++) {
      const cl = await A.claim(prj);
      acked.push((await A.submit(cl.assignment.id, S)).response.id);
    }
    const held = await A.claim(prj); // a lease taken before the disk fills

    full(flag);
    let busy = 0;
    assertBusy(await B.post(`/api/v1/projects/${prj}/claim`)); busy++;
    assertBusy(await A.post(`/api/v1/assignments/${held.assignment.id}/submit`, { answers: S })); busy++;
    assertBusy(await c.post(`/api/v1/projects/${prj}/tasks`, { tasks: textTasks(3, 'late') })); busy++;
    assertBusy(await B.post(`/api/v1/projects/${prj}/claim`)); busy++; // and again: still full
    // reads go on, and show nothing of the refused writes
    const during = await c.getProject(prj);
    assert.deepEqual(during.counts, { queued: 7, in_progress: 1, completed: 2, canceled: 0 });
    assert.equal((await c.listAll(prj)).length, 10);

    freed(flag);
    // the lease held across the full disk is still there, and its submit now counts
    acked.push((await A.submit(held.assignment.id, S)).response.id);
    const cb = await B.claim(prj);
    assert.ok(cb, 'B gets a task once space is freed');
    assert.notEqual(cb.task.id, held.task.id);
    acked.push((await B.submit(cb.assignment.id, S)).response.id);
    assert.equal(ok(await c.post(`/api/v1/projects/${prj}/tasks`, { tasks: textTasks(3, 'late') }), 201).created.length, 3);
    assert.deepEqual((await c.getProject(prj)).counts, { queued: 9, in_progress: 0, completed: 4, canceled: 0 });
    // exactly the acknowledged answers, each once
    const stored = (await c.exportLines(prj)).flatMap((l) => l.responses.map((r) => r.id));
    assert.deepEqual(stored.sort(), acked.sort());

    dropExpected503(srv, busy);
    await srv.stop();
    w.servers = w.servers.filter((x) => x !== srv);
    assert.equal(srv.log.match(/commit failed/g)?.length, 1, `one line for the whole full spell:\n${srv.log}`);
    assert.match(srv.log, /commits work again, after \d+ that failed/);
    if (HAVE_SQLITE3) assert.equal(sqlite(w.db, 'PRAGMA integrity_check'), 'ok');
  });

test('under load, the disk fills and frees twice: every 201 is stored, the only 5xx is 503',
  { skip: (!DISKFAULT || !CRASHLOAD) && 'bench/libdiskfault.so or bench/crashload not built', timeout: 180_000 * SLOW }, async () => {
    const w = World.create('diskfull-load');
    const flag = path.join(w.dir, 'disk-is-full');
    const org = w.org('Full Load Org');
    const mgr = w.member(org, 'manager');
    const anns = Array.from({ length: 8 }, () => w.member(org, 'annotator'));
    const keys = w.file('keys', anns.map((x) => x.key).join('\n') + '\n');
    const acks = path.join(w.dir, 'acks');
    const prj = w.project(org, { ...sentimentSchema(), questions: [{ name: 'label', type: 'choice', options: ['positive', 'negative'] }] });
    w.ok(['import', prj, w.file('tasks.jsonl', textTasks(20000, 'load').map((t) => JSON.stringify(t)).join('\n') + '\n')]);
    const srv = await w.serve([], shimEnv(w, flag));
    const load = spawn(CRASHLOAD, ['-p', String(srv.port), '-c', '8', '-d', String(5 * SLOW), '--project', prj,
      '--keys', keys, '--ack', acks, '--labels', 'positive,negative'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    load.stdout.on('data', (d) => { out += d; });
    load.stderr.on('data', (d) => { out += d; });
    const done = new Promise((r) => load.on('exit', r));
    const t0 = Date.now();
    for (const [at, fn] of [[1000, full], [2000, freed], [3000, full], [3700, freed]]) {
      await sleep(Math.max(0, t0 + at * SLOW - Date.now()));
      fn(flag);
    }
    assert.equal(await done, 0, out);
    const m = Object.fromEntries([...out.matchAll(/(\w+)=(\d+)/g)].map(([, k, v]) => [k, Number(v)]));
    assert.ok(m.acks > 0 && m.http_503 > 0, `the load ran and met the full disk: ${out}`);
    assert.equal(m.http_5xx, 0, `no 5xx but 503: ${out}`);
    assert.equal(m.mismatch + m.parse_err + m.broken, 0, out);

    const c = srv.client(mgr.key);
    const lines = await c.exportLines(prj);
    const stored = new Map(lines.flatMap((l) => l.responses.map((r) => [r.id, l.id])));
    const ackLines = readFileSync(acks, 'utf8').trim().split('\n').map((l) => l.split(' '));
    assert.equal(ackLines.length, m.acks);
    for (const [, rsp, tsk] of ackLines) assert.equal(stored.get(rsp), tsk, `acknowledged ${rsp} (task ${tsk}) is stored`);
    // the load stops at once: a submit in flight then may be stored unacknowledged, one per connection
    assert.ok(stored.size >= m.acks && stored.size <= m.acks + 8, `${stored.size} stored for ${m.acks} acks`);
    assert.ok(lines.every((l) => l.responses.length <= 1), 'max_responses = 1 held');
    assert.equal((await c.getProject(prj)).counts.completed, stored.size);

    srv.fiveXX = srv.fiveXX.filter((x) => x.status !== 503);
  });

test('tally import onto a full disk: exit 2, says why, imports nothing; the same import then works',
  { skip: !DISKFAULT && 'bench/libdiskfault.so not built', timeout: 120_000 * SLOW }, () => {
    const w = World.create('diskfull-cli');
    const flag = path.join(w.dir, 'disk-is-full');
    const org = w.org('Full CLI Org');
    const prj = w.project(org, sentimentSchema());
    // big enough that SQLite must write to the WAL before the commit
    const file = w.file('tasks.jsonl', textTasks(5000, 'cli').map((t) => JSON.stringify(t)).join('\n') + '\n');
    const env = shimEnv(w, flag);
    full(flag);
    const r = w.cli(['import', prj, file], { env });
    assert.equal(r.status, 2, `exit ${r.status}: ${r.stderr}`);
    assert.match(r.stderr, /disk that holds the database is full/);
    freed(flag);
    assert.equal(w.ok(['export', prj]).stdout, '', 'no task of the failed import was kept');
    const again = w.cli(['import', prj, file], { env });
    assert.equal(again.status, 0, again.stderr);
    assert.equal(w.ok(['export', prj]).stdout.trim().split('\n').length, 5000);
  });

test('an exhausted disk quota (EDQUOT, which SQLite reports as an I/O error) is answered like a full disk',
  { skip: !DISKFAULT && 'bench/libdiskfault.so not built', timeout: 60_000 * SLOW }, async () => {
    const w = World.create('diskquota');
    const flag = path.join(w.dir, 'quota-is-used-up');
    const org = w.org('Quota Org');
    const mgr = w.member(org, 'manager');
    const ann = w.member(org, 'annotator');
    const srv = await w.serve([], { ...shimEnv(w, flag), DISKFAULT_ERRNO: 'EDQUOT' });
    const c = srv.client(mgr.key);
    const prj = (await c.createProject(sentimentSchema())).id;
    await c.createTasks(prj, textTasks(3, 'quota'));
    full(flag);
    assertBusy(await srv.client(ann.key).post(`/api/v1/projects/${prj}/claim`));
    freed(flag);
    const cl = await srv.client(ann.key).claim(prj);
    await srv.client(ann.key).submit(cl.assignment.id, { sentiment: 'neutral' });
    assert.deepEqual((await c.getProject(prj)).counts, { queued: 2, in_progress: 0, completed: 1, canceled: 0 });
    dropExpected503(srv, 1);
  });

// The crash test's checks after full spells: bench/crash_test.sh with CUT=full
// fills the disk 8 times for 20–200 ms under its two loads (one server all
// along), then checks every counter against the rows, besides the answers.
test('crash_test.sh CUT=full: 8 full spells under load, every check of the crash test holds',
  { timeout: 300_000 * SLOW, skip: ((!DISKFAULT || !CRASHLOAD) && 'bench/libdiskfault.so or bench/crashload not built') || (!HAVE_SQLITE3 && 'no sqlite3 CLI') },
  () => {
    const r = spawnSync('bash', [path.join(REPO, 'bench/crash_test.sh'), '8', '4000'], {
      encoding: 'utf8',
      env: { ...process.env, CUT: 'full', BUILD: path.join(REPO, 'build'), SERVER_BIN: BIN, CRASH_DEADLINE: String(120 * SLOW) },
      timeout: 280_000 * SLOW,
    });
    const out = `${r.stdout}\n${r.stderr}`;
    assert.equal(r.status, 0, `crash_test.sh CUT=full failed:\n${out.slice(-6000)}`);
    const m = out.match(/^RESULT kills=(\d+) cut=full acks=(\d+) violations=(\d+)$/m);
    assert.ok(m, `no RESULT line:\n${out.slice(-3000)}`);
    assert.equal(Number(m[1]), 8, 'every spell was made');
    assert.ok(Number(m[2]) > 0, 'no answer was acknowledged: the load did not run');
    assert.equal(Number(m[3]), 0);
    assert.match(out, /answered 503 busy: [1-9]/);
  });
