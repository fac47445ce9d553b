// A failed fsync: the server runs under bench/preload/diskfault.c, which
// makes fsync and fdatasync of the database and its WAL fail with EIO while a
// flag file exists (a device that lost a write-back). After such a failure
// the kernel may have dropped the pages it could not write, so nothing that
// sync was to cover may be acknowledged, and no later sync can vouch for them
// either: the server must stop at once, answer nothing of that batch, and a
// restart must recover exactly what the disk holds, every earlier answer with it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { World, SLOW, sentimentSchema, textTasks, DISKFAULT, diskfaultEnv, HAVE_SQLITE3, sqlite } from './lib.mjs';

test('a failed fsync stops the server before any answer of its batch; the restart has every earlier answer',
  { skip: !DISKFAULT && 'bench/libdiskfault.so not built', timeout: 120_000 * SLOW }, async () => {
    const w = World.create('syncfail');
    const flag = path.join(w.dir, 'syncs-fail');
    const org = w.org('Sync Org');
    const mgr = w.member(org, 'manager');
    const ann = w.member(org, 'annotator');
    const srv = await w.serve([], diskfaultEnv(w, { DISKFAULT_SYNC: flag }));
    const c = srv.client(mgr.key);
    const A = srv.client(ann.key);
    const S = { sentiment: 'positive' };
    const prj = (await c.createProject(sentimentSchema())).id;
    await c.createTasks(prj, textTasks(5, 'sync'));
    const acked = [];
    for (let i = 0; i < 2; i++) {
      const cl = await A.claim(prj);
      acked.push((await A.submit(cl.assignment.id, S)).response.id);
    }
    const held = await A.claim(prj);

    writeFileSync(flag, '');
    // the submit's batch is committed, its sync fails: no answer comes back
    const r = await A.post(`/api/v1/assignments/${held.assignment.id}/submit`, { answers: S }, { timeout: 20_000 })
      .then((res) => `answered ${res.status}: ${res.text}`, (e) => e);
    assert.ok(r instanceof Error, `the submit whose sync failed must not be answered (${r})`);
    const exit = await srv.exited;
    assert.equal(exit.signal, 'SIGABRT', `the server stopped at the failed sync: ${JSON.stringify(exit)}`);
    assert.match(srv.log, /fdatasync: Input\/output error; stopping to recover from what is on disk/);
    w.servers = w.servers.filter((x) => x !== srv);
    rmSync(flag, { force: true });

    // the restart recovers from the disk: every acknowledged answer is there
    const again = await w.serve();
    const c2 = again.client(mgr.key);
    const stored = (await c2.exportLines(prj)).flatMap((l) => l.responses.map((x) => x.id));
    for (const id of acked) assert.ok(stored.includes(id), `acknowledged ${id} survives`);
    // the unanswered submit may or may not have reached the disk; either way the
    // counts agree with the rows, and the queue goes on
    const counts = (await c2.getProject(prj)).counts;
    assert.equal(counts.completed, stored.length);
    assert.ok(stored.length === 2 || stored.length === 3, `stored ${stored.length}`);
    const next = await again.client(ann.key).claim(prj);
    assert.ok(next, 'the queue goes on');
    await again.stop();
    w.servers = w.servers.filter((x) => x !== again);
    if (HAVE_SQLITE3) assert.equal(sqlite(w.db, 'PRAGMA integrity_check'), 'ok');
  });
