// Durability under kill -9, the short version of bench/crash_test.sh for CI.
// 8 annotators load two projects (A: min = max = 3; B: min 1, max 3,
// confidence_target 0.9) with claim -> submit while the server is killed with
// SIGKILL at random moments (TALLY_E2E_CRASH_KILLS times, 8 by default) and
// restarted on the same port. Every submit answered 201 is an acknowledgement.
// Then: every acknowledged response is in the export with its task and user;
// no task above max_responses; no annotator twice on a task; response_count
// (HTTP) and n_responses (SQLite) equal the task's responses; live leases
// match n_leases; PRAGMA integrity_check = ok; no 5xx; the last server exits 0
// on SIGTERM.
// The load is build/bench/crashload (built by `make`); without it, an
// in-process node client does the same (TALLY_E2E_CRASH_NODE=1 forces it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { World, Server, BIN, REPO, SLOW, sleep, freePort, parseJsonl, HAVE_SQLITE3, sqlite } from './lib.mjs';

const KILLS = Number(process.env.TALLY_E2E_CRASH_KILLS || 8);
const N_ANN = 8;
const N_TASKS = 10_000;
const LABELS = ['positive', 'negative', 'neutral', 'mixed'];
const PROJECTS = {
  A: { min: 3, max: 3, quality: undefined, labels: LABELS },
  B: { min: 1, max: 3, quality: { confidence_target: 0.9, refit_every: 100 }, labels: ['positive', 'negative'] },
};

function schema(name, p) {
  const s = {
    name, instructions: 'Pick the feeling of the review.',
    fields: [{ name: 'text', type: 'text' }],
    questions: [{ name: 'label', type: 'choice', options: LABELS }],
    min_responses: p.min, max_responses: p.max, lease_seconds: 600,
  };
  if (p.quality) s.quality = p.quality;
  return s;
}

function findCrashload() {
  if (process.env.TALLY_E2E_CRASH_NODE) return null;
  const cands = [path.join(REPO, 'build/bench/crashload'), path.join(path.dirname(BIN), 'bench/crashload')];
  return cands.find((p) => existsSync(p)) || null;
}

const loadProcs = new Set();
process.on('exit', () => { for (const p of loadProcs) try { p.kill('SIGKILL'); } catch {} });

/** bench/crashload as a child process; ack lines in a file. */
class NativeLoad {
  constructor(exe, port, prj, keysFile, ackFile, labels) {
    this.ackFile = ackFile;
    writeFileSync(ackFile, '');
    this.out = '';
    this.err = '';
    this.proc = spawn(exe, ['-p', String(port), '-c', String(N_ANN), '-d', String(600 * SLOW), '--project', prj,
      '--keys', keysFile, '--ack', ackFile, '--labels', labels.join(',')], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout.on('data', (d) => { this.out += d; });
    this.proc.stderr.on('data', (d) => { this.err = (this.err + d).slice(-8192); });
    this.exited = new Promise((r) => this.proc.on('exit', (code, signal) => r({ code, signal })));
    loadProcs.add(this.proc);
    this.exited.then(() => loadProcs.delete(this.proc));
  }
  alive() { return this.proc.exitCode === null && this.proc.signalCode === null; }
  ackCount() { return readFileSync(this.ackFile, 'utf8').split('\n').filter(Boolean).length; }
  async stop() {
    this.proc.kill('SIGTERM');
    let timer;
    const ex = await Promise.race([this.exited, new Promise((r) => { timer = setTimeout(r, 20_000 * SLOW, null); })]);
    clearTimeout(timer);
    if (!ex) { this.proc.kill('SIGKILL'); await this.exited; throw new Error(`crashload did not stop on SIGTERM: ${this.err}`); }
    assert.equal(ex.code, 0, `crashload exited ${JSON.stringify(ex)}: ${this.err}`);
    const line = this.out.split('\n').find((l) => l.startsWith('RESULT '));
    assert.ok(line, `crashload printed no RESULT line: ${this.out} ${this.err}`);
    this.result = Object.fromEntries(line.slice(7).split(' ').map((kv) => kv.split('=')).map(([k, v]) => [k, Number(v)]));
    this.acks = readFileSync(this.ackFile, 'utf8').split('\n').filter(Boolean).map((l) => {
      const [asg, rsp, tsk, k] = l.split(' ');
      return { asg, rsp, tsk, k: Number(k) };
    });
    return this.result;
  }
}

/** The same load in-process: N async annotators, acks in memory. */
class NodeLoad {
  constructor(port, prj, keys, labels) {
    this.base = `http://127.0.0.1:${port}`;
    this.acks = [];
    this.result = { acks: 0, http_5xx: 0, mismatch: 0, parse_err: 0, indoubt: 0, indoubt_committed: 0, conflicts: 0, http_4xx: 0 };
    this.stopping = false;
    this.loops = keys.map((key, k) => this.annotator(prj, key, k, labels));
  }
  alive() { return true; }
  ackCount() { return this.acks.length; }
  async annotator(prj, key, k, labels) {
    const R = this.result;
    const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
    let asg = null, tsk = null, resent = false, backoff = 0;
    while (!this.stopping) {
      try {
        if (!asg) {
          const r = await fetch(`${this.base}/api/v1/projects/${prj}/claim`, { method: 'POST', headers, signal: AbortSignal.timeout(30_000 * SLOW) });
          const text = await r.text();
          backoff = 0;
          if (r.status === 204) { await sleep(100); continue; }
          if (r.status >= 500) { R.http_5xx++; await sleep(50); continue; }
          if (r.status !== 200) { R.http_4xx++; await sleep(50); continue; }
          try { const b = JSON.parse(text); asg = b.assignment.id; tsk = b.task.id; resent = false; } catch { R.parse_err++; }
          continue;
        }
        const label = Math.random() < 0.7 ? labels[0] : labels[1 + Math.floor(Math.random() * (labels.length - 1))];
        const r = await fetch(`${this.base}/api/v1/assignments/${asg}/submit`, {
          method: 'POST', headers, body: JSON.stringify({ answers: { label }, duration_ms: 1000, ...(k % 2 ? { next: true } : {}) }), signal: AbortSignal.timeout(30_000 * SLOW),
        });
        const text = await r.text();
        backoff = 0;
        if (r.status >= 500) { R.http_5xx++; await sleep(50); continue; }
        if (r.status === 201) {
          let b;
          try { b = JSON.parse(text); } catch { R.parse_err++; }
          if (b) {
            this.acks.push({ asg, rsp: b.response.id, tsk, k });
            R.acks++;
            if (b.response.task_id !== tsk) R.mismatch++;
          }
        } else if (r.status === 409) {
          R.conflicts++;
          if (resent && text.includes('already_submitted')) R.indoubt_committed++;
        } else R.http_4xx++;
        asg = tsk = null;
      } catch {
        // refused or broken: a submit in flight is in doubt, sent again
        if (asg) { R.indoubt++; resent = true; }
        backoff = Math.min(backoff ? backoff * 2 : 10, 250);
        await sleep(backoff);
      }
    }
  }
  async stop() { this.stopping = true; await Promise.all(this.loops); return this.result; }
}

const w = World.create('crash');

test(`kill -9 the server ${KILLS} times under claim/submit load: every acknowledged response survives`, { timeout: 300_000 * SLOW }, async (t) => {
  const org = w.org('Crash Org');
  const mgr = w.member(org, 'manager');
  const anns = Array.from({ length: N_ANN }, () => w.member(org, 'annotator'));
  const keysFile = w.file('keys', anns.map((a) => a.key).join('\n') + '\n');
  const tasksFile = w.file('tasks.jsonl', Array.from({ length: N_TASKS }, (_, i) =>
    JSON.stringify({ data: { text: `review ${i}: fine` }, unique_id: `t-${i}`, priority: i % 3 })).join('\n') + '\n');
  const prj = {};
  for (const [name, p] of Object.entries(PROJECTS)) {
    prj[name] = w.project(org, schema(`crash-${name}`, p));
    assert.equal(w.ok(['import', prj[name], tasksFile]).stdout.trim(), `created ${N_TASKS}, duplicates 0`);
  }

  const port = await freePort();
  const start = async () => {
    let last;
    for (let i = 0; i < 3; i++) {
      const s = new Server(w, port, []);
      try { await s.start(); return s; } catch (e) { last = e; await s.kill(); await sleep(300); }
    }
    throw last;
  };
  let srv = await start();

  const exe = findCrashload();
  t.diagnostic(`load: ${exe || 'in-process node client'}; server: ${BIN}`);
  const loads = {};
  for (const [name, p] of Object.entries(PROJECTS)) {
    loads[name] = exe
      ? new NativeLoad(exe, port, prj[name], keysFile, path.join(w.dir, `acks.${name}`), p.labels)
      : new NodeLoad(port, prj[name], anns.map((a) => a.key), p.labels);
  }

  const ackCount = () => loads.A.ackCount() + loads.B.ackCount();
  let livesWithAcks = 0, prev = 0, failed = true;
  try {
    for (let i = 0; i < KILLS; i++) {
      await sleep((100 + Math.random() * 1400) * SLOW);
      assert.ok(loads.A.alive() && loads.B.alive(), `a load client died: ${loads.A.err || ''} ${loads.B.err || ''}`);
      assert.equal(srv.exit, null, `tally serve died on its own: ${JSON.stringify(srv.exit)} ${srv.log.slice(-2000)}`);
      await srv.kill();
      assert.equal(srv.exit.signal, 'SIGKILL');
      const now = ackCount();
      if (now > prev) livesWithAcks++;
      prev = now;
      srv = await start();
    }
    await sleep(1000 * SLOW); // the last life serves load too
    failed = false;
  } finally {
    for (const l of Object.values(loads)) await l.stop().catch((e) => t.diagnostic(String(e)));
    if (failed) await srv.kill();
  }

  // while the last server runs: response_count of every task, over HTTP
  const mc = srv.client(mgr.key);
  const listed = {};
  for (const name of Object.keys(PROJECTS)) listed[name] = await mc.listAll(prj[name]);
  // SIGTERM: exit 0 within 10 s (not Server.stop(): its uncleared 10 s timer
  // would hold the process open after the test)
  srv.proc.kill('SIGTERM');
  let timer;
  const ex = await Promise.race([srv.exited, new Promise((r) => { timer = setTimeout(r, 10_000 * SLOW, null); })]);
  clearTimeout(timer);
  if (!ex) await srv.kill();
  assert.deepEqual(ex, { code: 0, signal: null }, `the last tally serve after SIGTERM: ${srv.log.slice(-2000)}`);
  assert.deepEqual(srv.fiveXX, []);

  const userOfKey = anns.map((a) => a.id);
  let totalAcks = 0, totalStored = 0;
  for (const [name, p] of Object.entries(PROJECTS)) {
    const load = loads[name], R = load.result;
    assert.equal(R.http_5xx, 0, `project ${name}: the server answered 5xx ${R.http_5xx} times`);
    assert.equal(R.mismatch, 0, `project ${name}: a submit answered another task than the claimed one`);
    assert.equal(R.parse_err, 0, `project ${name}: unparsable answers`);
    assert.equal(load.acks.length, R.acks, `project ${name}: ack lines vs acks counted`);
    assert.ok(load.acks.length > 0, `project ${name}: no submit was acknowledged`);
    totalAcks += load.acks.length;

    const lines = parseJsonl(w.ok(['export', prj[name]]).stdout);
    assert.equal(lines.length, N_TASKS, `project ${name}: export lines`);
    const byRsp = new Map();
    let stored = 0;
    const over = [], twice = [], notCompleted = [];
    for (const l of lines) {
      const users = new Set();
      for (const r of l.responses) {
        byRsp.set(r.id, { task: l.id, user: r.user_id });
        if (users.has(r.user_id)) twice.push(`${l.id} ${r.user_id}`);
        users.add(r.user_id);
      }
      stored += l.responses.length;
      totalStored += l.responses.length;
      if (l.responses.length > p.max) over.push(`${l.id}: ${l.responses.length}`);
      if (l.responses.length >= p.max && l.status !== 'completed') notCompleted.push(`${l.id} ${l.status}`);
    }
    const lost = load.acks.filter((a) => {
      const s = byRsp.get(a.rsp);
      return !s || s.task !== a.tsk || s.user !== userOfKey[a.k];
    });
    assert.deepEqual(lost.slice(0, 10), [], `project ${name}: ${lost.length} of ${load.acks.length} acknowledged responses missing or wrong`);
    assert.equal(new Set(load.acks.map((a) => a.rsp)).size, load.acks.length, `project ${name}: one response acknowledged twice`);
    assert.deepEqual(over, [], `project ${name}: tasks above max_responses ${p.max}`);
    assert.deepEqual(twice, [], `project ${name}: an annotator answered a task twice`);
    assert.deepEqual(notCompleted, [], `project ${name}: tasks at max_responses not completed`);
    // stored but never acknowledged: only a submit whose reply a kill swallowed
    // (found committed when sent again) or one in flight when the load stopped
    assert.ok(stored >= load.acks.length, `project ${name}: ${stored} stored < ${load.acks.length} acknowledged`);
    assert.ok(stored - load.acks.length <= R.indoubt_committed + N_ANN,
      `project ${name}: ${stored - load.acks.length} responses stored without an ack; ${R.indoubt_committed} explained by a lost reply`);
    // response_count as the API shows it = the responses in the export
    assert.equal(listed[name].length, N_TASKS);
    const count = new Map(lines.map((l) => [l.id, l.responses.length]));
    const badCount = listed[name].filter((x) => x.response_count !== count.get(x.id)).map((x) => `${x.id}: ${x.response_count} vs ${count.get(x.id)}`);
    assert.deepEqual(badCount, [], `project ${name}: response_count differs from the responses`);
    t.diagnostic(`project ${name}: ${load.acks.length} acks, ${stored} responses stored, ${R.indoubt} submits in doubt at a kill (${R.indoubt_committed} found committed)`);
  }
  t.diagnostic(`${KILLS} kills, ${totalAcks} acks, lives in which acks grew: ${livesWithAcks}`);
  assert.ok(livesWithAcks >= Math.ceil(KILLS / 2), `acks grew in only ${livesWithAcks} of ${KILLS} server lives`);

  if (!HAVE_SQLITE3) { t.diagnostic('sqlite3 CLI not found: integrity_check and column checks skipped'); return; }
  assert.equal(sqlite(w.db, 'PRAGMA integrity_check'), 'ok');
  assert.equal(sqlite(w.db, 'SELECT count(*) FROM tasks WHERE n_responses != (SELECT count(*) FROM responses r WHERE r.task_id = tasks.id)'), '0', 'n_responses != responses rows');
  assert.equal(sqlite(w.db, 'SELECT count(*) FROM tasks WHERE n_leases != (SELECT count(*) FROM assignments a WHERE a.task_id = tasks.id AND a.status = 0)'), '0', 'n_leases != live assignments');
  assert.equal(sqlite(w.db, "SELECT count(*) FROM tasks t JOIN projects p ON p.id = t.project_id WHERE t.n_responses + t.n_leases > json_extract(p.schema, '$.max_responses')"), '0', 'responses + leases above max_responses');
  assert.equal(sqlite(w.db, 'SELECT count(*) FROM (SELECT task_id, user_id FROM responses GROUP BY 1, 2 HAVING count(*) > 1)'), '0', '(task, user) twice');
  assert.equal(sqlite(w.db, 'SELECT count(*) FROM responses r LEFT JOIN assignments a ON a.id = r.assignment_id WHERE a.id IS NULL OR a.status != 1 OR a.task_id != r.task_id OR a.user_id != r.user_id'), '0', 'responses without their submitted assignment');
  assert.equal(Number(sqlite(w.db, 'SELECT count(*) FROM responses')), totalStored, 'responses rows vs the export');
});
