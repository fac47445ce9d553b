// bench/loadgen, the client every loop and connection figure in docs/PERFORMANCE.md
// is counted by. Against the real server: its cycle and request counts agree with
// what the server stored, and an emptied queue ends the run. Against small node
// servers that misbehave on purpose: a server that closes after every answer, one
// that sends garbage, one that never answers, and a port nobody listens on are each
// counted as what they are, never as successes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { World, BIN, REPO, ok, sentimentSchema, textTasks, freePort, SLOW } from './lib.mjs';

// the sanitized build's own loadgen when the suite runs the sanitized server
const LOADGEN = [path.join(path.dirname(BIN), 'bench/loadgen'), path.join(REPO, 'build/bench/loadgen')]
  .find((p) => existsSync(p));
const skip = !LOADGEN && 'bench/loadgen not built';

const N_TASKS = 150;
const N_ANN = 8;
const PER = 2;

/** Runs loadgen; resolves { code, out, err, result } (result: the RESULT line's fields). */
function loadgen(args, ms = 60_000 * SLOW) {
  return new Promise((resolve, reject) => {
    const p = spawn(LOADGEN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`loadgen ran over ${ms} ms: ${out} ${err}`)); }, ms);
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    p.on('exit', (code) => {
      clearTimeout(timer);
      const line = out.split('\n').find((l) => l.startsWith('RESULT ')) || '';
      const result = Object.fromEntries(line.split(' ').slice(1).map((kv) => kv.split('='))
        .map(([k, v]) => [k, /^-?[0-9.]+$/.test(v) ? Number(v) : v]));
      resolve({ code, out, err, result });
    });
  });
}

/** A TCP server on 127.0.0.1 that hands each connection to onConn. */
async function rawServer(onConn) {
  const s = net.createServer(onConn);
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  return s;
}

const w = World.create('loadgen');
let srv, mgr, anns, prj, keysFile;
const raws = [];

before(async () => {
  const org = w.org('Loadgen Org');
  mgr = w.member(org, 'manager');
  anns = Array.from({ length: N_ANN }, () => w.member(org, 'annotator'));
  keysFile = w.file('keys', anns.map((a) => a.key).join('\n') + '\n');
  srv = await w.serve();
  const c = srv.client(mgr.key);
  prj = (await c.createProject(sentimentSchema({ min_responses: PER, max_responses: PER }))).id;
  const r = await c.createTasks(prj, textTasks(N_TASKS, 'lg'));
  assert.equal(r.created.length, N_TASKS);
});

after(() => { for (const s of raws) s.close(); });

test('a claim loop runs until the queue is empty, and its counts are what the server stored', { skip, timeout: 120_000 * SLOW }, async () => {
  const { code, err, result: r } = await loadgen(['-p', String(srv.port), '-c', String(N_ANN), '-d', String(60 * SLOW),
    '--claim', prj, '--keys', keysFile, '--answer', '{"answers":{"sentiment":"neutral"},"duration_ms":7}']);
  assert.equal(code, 0, err);
  assert.equal(r.errors, 0);
  assert.equal(r.done, N_ANN, 'every annotator got 204');
  assert.equal(r.cycles, N_TASKS * PER);
  assert.equal(r.submit_n, N_TASKS * PER);
  assert.equal(r.claim_n, N_TASKS * PER + N_ANN, 'one claim per cycle, and each annotator\'s last one answered 204');
  const c = srv.client(mgr.key);
  assert.deepEqual((await c.getProject(prj)).counts, { queued: 0, in_progress: 0, completed: N_TASKS, canceled: 0 });
  const lines = await c.exportLines(prj);
  assert.equal(lines.length, N_TASKS);
  for (const l of lines) {
    assert.equal(l.responses.length, PER, `task ${l.id}`);
    assert.equal(new Set(l.responses.map((x) => x.user_id)).size, PER, `task ${l.id}: two different annotators`);
    assert.ok(l.responses.every((x) => x.answers.sentiment === 'neutral' && x.duration_ms === 7));
  }
});

test('paced GETs: each connection sends no more than its rate, large answers are read whole', { skip, timeout: 60_000 * SLOW }, async () => {
  // the OpenAPI document is tens of KiB: several reads per answer
  const { code, err, result: r } = await loadgen(['-p', String(srv.port), '-c', '4', '-d', '2', '--rate', '20', '--get', '/api/v1/openapi.json']);
  assert.equal(code, 0, err);
  assert.equal(r.errors, 0);
  assert.ok(r.get_n > 0, 'some answers');
  // 4 connections x 20/s x 2 s, plus the one each may have due at the start
  assert.ok(r.get_n <= 4 * 20 * 2 + 4, `${r.get_n} answers: the rate was not kept`);
});

test('a server that closes after every answer: each answer counts, the client reconnects', { skip, timeout: 60_000 * SLOW }, async () => {
  let conns = 0;
  const s = await rawServer((sock) => {
    conns++;
    sock.on('data', () => { sock.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok'); });
    sock.on('error', () => {});
  });
  raws.push(s);
  const { code, err, result: r } = await loadgen(['-p', String(s.address().port), '-c', '2', '-d', '1', '--get', '/']);
  assert.equal(code, 0, err);
  assert.equal(r.errors, 0);
  assert.ok(r.get_n >= 2, `${r.get_n} answers`);
  assert.ok(conns >= r.get_n, `${conns} connections for ${r.get_n} answers: one each`);
});

test('garbage, a 500 and silence are errors, never successes', { skip, timeout: 60_000 * SLOW }, async () => {
  const garbage = await rawServer((sock) => {
    sock.on('data', () => { sock.write('SMTP ready\r\n\r\n'); });
    sock.on('error', () => {});
  });
  const fail = await rawServer((sock) => {
    sock.on('data', () => { sock.write('HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n'); });
    sock.on('error', () => {});
  });
  const silent = await rawServer((sock) => { sock.on('error', () => {}); });
  raws.push(garbage, fail, silent);

  let { code, result: r } = await loadgen(['-p', String(garbage.address().port), '-c', '1', '-d', '1', '--get', '/']);
  assert.equal(code, 3, 'no request succeeded');
  assert.equal(r.get_n, undefined);
  assert.ok(r.errors >= 1, `${r.errors} errors`);

  ({ code, result: r } = await loadgen(['-p', String(fail.address().port), '-c', '2', '-d', '1', '--get', '/']));
  assert.equal(code, 3);
  assert.ok(r.errors >= 2 && r.errors === r.get_n, `${r.errors} errors, ${r.get_n} answers: every answer a 500`);

  // a 1-s timeout in a 3-s run: each connection times out, reconnects, and times out again
  ({ code, result: r } = await loadgen(['-p', String(silent.address().port), '-c', '2', '-d', '3', '-t', '1', '--get', '/']));
  assert.equal(code, 3);
  assert.ok(r.errors >= 2, `${r.errors} errors`);
});

test('nobody listening: the client gives up with a message', { skip, timeout: 60_000 * SLOW }, async () => {
  const port = await freePort();
  const { code, err } = await loadgen(['-p', String(port), '-c', '2', '-d', '30', '--get', '/']);
  assert.equal(code, 2);
  assert.match(err, /too many connection failures/);
});
