// Out of descriptors: a flood of connections (anyone who can reach the port
// can open them, no key needed) must neither spin a core nor take the
// descriptors the database needs. The server runs under `prlimit --nofile`:
// with room, it stops accepting at its connection cap, which keeps
// descriptors for the store; with too little room for that, accept fails
// with EMFILE and the listener rests 100 ms at a time. Either way a client
// connected before the flood still writes (the first write of the server's
// life: it syncs the WAL), and the connections that waited are served once
// others close.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { World, SLOW, sleep, sentimentSchema, textTasks, rawBody } from './lib.mjs';

const HAVE_PRLIMIT = spawnSync('prlimit', ['--version'], { encoding: 'utf8' }).status === 0;

/** CPU time of a process so far, in clock ticks (user + system). */
function ticks(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return Number(rest[11]) + Number(rest[12]); // fields 14 and 15
}

/** A keep-alive connection that sends one request at a time and reads the answer
 * (Content-Length bodies only: what these routes answer). */
function keepAlive(port) {
  const sock = net.connect(port, '127.0.0.1');
  let buf = Buffer.alloc(0);
  let waiter = null;
  const check = () => {
    if (!waiter) return;
    const text = buf.toString('latin1');
    const i = text.indexOf('\r\n\r\n');
    if (i < 0) return;
    const m = text.slice(0, i).match(/content-length:\s*(\d+)/i);
    const len = m ? Number(m[1]) : 0;
    if (buf.length < i + 4 + len) return;
    const one = text.slice(0, i + 4 + len);
    buf = buf.subarray(i + 4 + len);
    const w = waiter;
    waiter = null;
    w.resolve({ status: Number(one.match(/^HTTP\/1\.1 (\d{3})/)[1]), body: JSON.parse(rawBody(one) || 'null') });
  };
  sock.on('data', (d) => { buf = Buffer.concat([buf, d]); check(); });
  sock.on('error', (e) => { if (waiter) waiter.reject(e); });
  sock.on('close', () => { if (waiter) waiter.reject(new Error('connection closed')); });
  const ready = new Promise((r) => sock.once('connect', r));
  return {
    ready,
    sock,
    send(method, p, key, body = '') {
      return new Promise((resolve, reject) => {
        waiter = { resolve, reject };
        sock.write(`${method} ${p} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer ${key}\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      });
    },
  };
}

async function flood(port, n) {
  const socks = [];
  for (let i = 0; i < n; i++) {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    await new Promise((r) => { s.once('connect', r); s.once('error', r); });
    socks.push(s);
  }
  return socks;
}

async function logSays(srv, re) {
  for (let i = 0; i < 100 * SLOW && !re.test(srv.log); i++) await sleep(50);
  assert.match(srv.log, re);
}

async function run(nofile, nflood, expect) {
  const w = World.create(`fdlimit${nofile}`);
  const org = w.org('Fd Org');
  const mgr = w.member(org, 'manager');
  const ann = w.member(org, 'annotator');
  const prj = w.project(org, sentimentSchema());
  w.ok(['import', prj, w.file('t.jsonl', textTasks(3, 'fd').map((t) => JSON.stringify(t)).join('\n'))]);
  // export threads and exports fixed, so the cap does not depend on the machine's cores
  const srv = await w.serve(['--export-threads', '1', '--max-exports', '8'], {},
    ['prlimit', `--nofile=${nofile}:${nofile}`]);
  await logSays(srv, expect.listening);
  const legit = keepAlive(srv.port);
  await legit.ready;
  const ok = await legit.send('GET', '/api/v1/me', ann.key);
  assert.equal(ok.status, 200);

  const socks = await flood(srv.port, nflood);
  await logSays(srv, expect.limited);
  // no busy loop while connections wait: a spinning accept took a whole core (100 ticks a second)
  const t0 = ticks(srv.proc.pid);
  await sleep(1000);
  const spent = ticks(srv.proc.pid) - t0;
  assert.ok(spent <= 30, `the server used ${spent} of 100 clock ticks in a second while connections waited`);

  // the server's first write: a claim, then its submit, on the connection made before the flood
  const cl = await legit.send('POST', `/api/v1/projects/${prj}/claim`, ann.key);
  assert.equal(cl.status, 200, JSON.stringify(cl.body));
  const sub = await legit.send('POST', `/api/v1/assignments/${cl.body.assignment.id}/submit`, ann.key,
    JSON.stringify({ answers: { sentiment: 'positive' } }));
  assert.equal(sub.status, 201, JSON.stringify(sub.body));
  assert.equal(sub.body.task.id, cl.body.task.id);

  // every flood connection but the last closes: the last, which waited in the
  // listen queue all along, is accepted and answered
  const last = socks.pop();
  for (const s of socks) s.destroy();
  const got = await new Promise((resolve) => {
    let text = '';
    const timer = setTimeout(() => resolve(text), 10_000 * SLOW);
    last.on('data', (d) => { text += d.toString('latin1'); if (text.includes('\r\n\r\n')) { clearTimeout(timer); resolve(text); } });
    last.write('GET /api/v1/openapi.json HTTP/1.1\r\nHost: t\r\n\r\n');
  });
  assert.match(got, /^HTTP\/1\.1 200 /, `the connection that waited got ${JSON.stringify(got.slice(0, 80))}`);
  await logSays(srv, expect.recovered);
  last.destroy();
  legit.sock.destroy();
  assert.equal(srv.exit, null, `the server stopped: ${srv.log}`);
  const t = await srv.client(mgr.key).getTask(cl.body.task.id);
  assert.equal(t.status, 'completed');
}

test('at its connection cap the server stops accepting, keeps descriptors for the database, and serves the waiting connections later',
  { skip: !HAVE_PRLIMIT && 'prlimit (util-linux) not found', timeout: 120_000 * SLOW }, async () => {
    // 200 descriptors, 64 + 3 * 8 exports * 1 thread kept: 112 connections
    await run(200, 240, {
      listening: /listening on http:\/\/127\.0\.0\.1:\d+ \(1 thread, 112 connections at most\)/,
      limited: /tally: 112 connections open, the most one event loop takes \(descriptor limit 200, 88 kept for the database\)/,
      recovered: /connections open, below the cap again \(reached \d+ times\)/,
    });
  });

test('with fewer descriptors than the cap assumes, accept fails with EMFILE and the listener rests instead of spinning',
  { skip: !HAVE_PRLIMIT && 'prlimit (util-linux) not found', timeout: 120_000 * SLOW }, async () => {
    // 32 descriptors: the cap is half of them (16), but the server's own files,
    // connections and loops take about 20, so accept runs out first
    await run(32, 60, {
      listening: /\(1 thread, 16 connections at most\)/,
      limited: /tally: cannot accept a connection: Too many open files \(\d+ open\); trying again every 100 ms/,
      recovered: /tally: accepting again, after \d+ tries found no descriptor/,
    });
  });
