// Durability under power loss, the short version of `CUT=power
// bench/crash_test.sh` for CI: the server runs under the write logger
// (bench/preload/wlog.c); each SIGKILL becomes a simulated power cut, after
// which the database files hold only what a completed fsync/fdatasync covered
// (or, at random, that plus any part of the later writes, or all of them), and
// the next server starts on them. The script's own checks must all hold:
// every acknowledged answer stored, every task handed out with its lease
// stored (half the annotators submit with "next", so their claims go out
// without a sync of their own) and never under two leases to one annotator,
// no task over max_responses, no annotator twice on a task, counters equal to
// rows, PRAGMA integrity_check = ok.
// Needs bash, curl and the sqlite3 CLI (scripts/setup installs them) and the
// bench tools (crashload, powercut, libwlog.so) of the build under test or of
// the release build; without either it is skipped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { BIN, REPO, SLOW, HAVE_SQLITE3 } from './lib.mjs';

const CUTS = Number(process.env.TALLY_E2E_POWER_CUTS || 6);
// the bench tools of the build under test, else the release ones (the TSan
// server is built alone) with the binary under test as the server
const TOOLS = ['bench/crashload', 'bench/powercut', 'bench/libwlog.so'];
const hasTools = (dir) => TOOLS.every((t) => existsSync(path.join(dir, t)));
const build = [path.dirname(BIN), path.join(REPO, 'build')].find(hasTools);
const missing = build ? [] : TOOLS;

test(`${CUTS} simulated power cuts under claim/submit load: every acknowledged response survives`,
  { timeout: 600_000 * SLOW, skip: missing.length ? `bench tools not built: ${missing.join(', ')}` : !HAVE_SQLITE3 && 'no sqlite3 CLI' },
  () => {
    const r = spawnSync('bash', [path.join(REPO, 'bench/crash_test.sh'), String(CUTS), '4000'], {
      encoding: 'utf8',
      env: { ...process.env, CUT: 'power', BUILD: build, SERVER_BIN: BIN, CRASH_DEADLINE: String(240 * SLOW) },
      timeout: 540_000 * SLOW,
    });
    const out = `${r.stdout}\n${r.stderr}`;
    assert.equal(r.status, 0, `crash_test.sh CUT=power failed:\n${out.slice(-6000)}`);
    const m = out.match(/^RESULT kills=(\d+) cut=power acks=(\d+) violations=(\d+)$/m);
    assert.ok(m, `no RESULT line:\n${out.slice(-3000)}`);
    assert.equal(Number(m[1]), CUTS, 'every cut was made');
    assert.ok(Number(m[2]) > 0, 'no answer was acknowledged: the load did not run');
    assert.equal(Number(m[3]), 0);
    // the cuts really dropped writes: at least one cut kept only synced data
    assert.match(out, /each kill a power cut: .*durable/);
  });
