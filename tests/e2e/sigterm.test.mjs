// `tally serve` exits 0 promptly on SIGTERM (and SIGINT), also with idle keep-alive
// connections open and after serving traffic; the data survives a restart.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { World, sentimentSchema, textTasks, sleep } from './lib.mjs';

const w = World.create('sigterm');
let org, mgr;

before(() => {
  org = w.org('Sig Org');
  mgr = w.member(org, 'manager');
});

test('SIGTERM right after start: exit 0 within 10 s', async () => {
  const s = await w.serve();
  w.servers.splice(w.servers.indexOf(s), 1);
  const ms = await s.stop(10_000, 'SIGTERM');
  assert.ok(ms < 10_000);
});

test('SIGTERM with an idle keep-alive connection and a half-sent request open: exit 0 within 10 s', async () => {
  const s = await w.serve();
  w.servers.splice(w.servers.indexOf(s), 1);
  const c = s.client(mgr.key);
  const p = await c.createProject(sentimentSchema());
  await c.createTasks(p.id, textTasks(10, 'sig'));
  // an idle keep-alive socket that already did one request
  const idle = net.connect(s.port, '127.0.0.1');
  await new Promise((r) => idle.on('connect', r));
  idle.write(`GET /api/v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${mgr.key}\r\n\r\n`);
  await new Promise((r) => idle.once('data', r));
  // a socket that sent half a request
  const half = net.connect(s.port, '127.0.0.1');
  await new Promise((r) => half.on('connect', r));
  half.write('POST /api/v1/projects HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"na');
  idle.on('error', () => {});
  half.on('error', () => {});
  await sleep(100);
  const ms = await s.stop(10_000, 'SIGTERM');
  assert.ok(ms < 10_000);
  idle.destroy();
  half.destroy();
  // restart on the same database: what was written is there
  const s2 = await w.serve();
  const tasks = await s2.client(mgr.key).listAll(p.id);
  assert.equal(tasks.length, 10);
});

test('SIGTERM while requests are in flight: they complete or fail cleanly, exit 0, no 5xx', async () => {
  const s = await w.serve();
  w.servers.splice(w.servers.indexOf(s), 1);
  const c = s.client(mgr.key);
  const p = await c.createProject(sentimentSchema());
  let stop = false;
  const statuses = [];
  const loops = Array.from({ length: 4 }, async (_, i) => {
    for (let n = 0; n < 2000 && !stop; n++) {
      try {
        const r = await c.post(`/api/v1/projects/${p.id}/tasks`, { tasks: textTasks(20, `fl${i}-${n}`) });
        statuses.push(r.status);
      } catch { break; } // connection refused/closed after shutdown
    }
  });
  await sleep(500);
  const ms = await s.stop(10_000, 'SIGTERM');
  stop = true;
  await Promise.all(loops);
  assert.ok(ms < 10_000);
  assert.ok(statuses.length > 0, 'no request completed before SIGTERM');
  assert.deepEqual([...new Set(statuses)].filter((x) => x !== 201), [], `statuses seen: ${[...new Set(statuses)]}`);
  // every acknowledged request was stored in full (20 tasks each), nothing half-written
  const s2 = await w.serve();
  const tasks = await s2.client(mgr.key).listAll(p.id);
  assert.equal(tasks.length % 20, 0, `${tasks.length} tasks: a request was half-written`);
  assert.ok(tasks.length >= statuses.length * 20, `${statuses.length} acknowledged requests but only ${tasks.length} tasks stored`);
});

test('SIGINT: exit 0 as well', async () => {
  const s = await w.serve();
  w.servers.splice(w.servers.indexOf(s), 1);
  const ms = await s.stop(10_000, 'SIGINT');
  assert.ok(ms < 10_000);
});
