// The command line (docs/CLI.md): init, org/user/key/project, import (jsonl, csv,
// stdin, bad lines → nothing written), export == HTTP export, errors → stderr + non-zero.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { rmSync } from 'node:fs';
import { World, ok, parseJsonl, sentimentSchema } from './lib.mjs';

const w = World.create('cli');
let org, mgr, srv, c, prj;

before(async () => {
  org = w.org('CLI Org');
  mgr = w.member(org, 'manager');
  prj = w.project('CLI Org', {
    name: 'Imported',
    fields: [{ name: 'text', type: 'text' }, { name: 'lang', type: 'text', required: false }],
    questions: [{ name: 'sentiment', type: 'choice', options: ['positive', 'negative'] }],
  });
  srv = await w.serve();
  c = srv.client(mgr.key);
});

const count = async (p = prj) => (await c.listAll(p)).length;

test('init twice is fine: exit 0, no output, data kept', () => {
  const r = w.cli(['init']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, '');
  const orgs = w.ok(['org', 'list']).stdout;
  assert.match(orgs, new RegExp(`^${org}\\tCLI Org$`, 'm'));
});

test('org list, user add (new membership of an existing user), key create per org', async () => {
  const org2 = w.org('Second Org');
  const lines = w.ok(['org', 'list']).stdout.trim().split('\n');
  assert.deepEqual(lines, [`${org}\tCLI Org`, `${org2}\tSecond Org`]);
  // same email in a second org: same user id, new membership
  const uid2 = w.user('Second Org', mgr.email, 'annotator');
  assert.equal(uid2, mgr.id);
  // two orgs now: --org is needed
  const amb = w.cli(['key', 'create', '--user', mgr.email]);
  assert.notEqual(amb.status, 0, 'key create for a user in two orgs without --org must fail');
  assert.equal(amb.stdout, '');
  assert.ok(amb.stderr.length > 0);
  const k2 = w.key(mgr.email, org2);
  const me = await srv.client(k2.key).me();
  assert.deepEqual(me.org, { id: org2, name: 'Second Org' });
  assert.equal(me.role, 'annotator');
  assert.equal(me.user.id, mgr.id);
});

test('project create --org NAME|ID --schema FILE prints prj_…; project list', async () => {
  const id = w.project(org, sentimentSchema({ name: 'From CLI' }));
  const p = await c.getProject(id);
  assert.equal(p.name, 'From CLI');
  assert.equal(p.questions.length, 1);
  for (const [k, v] of Object.entries(sentimentSchema().questions[0])) assert.deepEqual(p.questions[0][k], v, `questions[0].${k}`);
  const list = w.ok(['project', 'list', '--org', org]).stdout.trim().split('\n');
  assert.deepEqual(list, [`${prj}\tImported`, `${id}\tFrom CLI`]);
  // a bad schema: 1, message on stderr naming the field, nothing created
  const f = w.file('bad-schema.json', JSON.stringify(sentimentSchema({ min_responses: 0 })));
  const r = w.cli(['project', 'create', '--org', org, '--schema', f]);
  assert.equal(r.status, 1, r.stderr);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /min_responses/);
  const f2 = w.file('notjson.json', '{"name": ');
  const r2 = w.cli(['project', 'create', '--org', org, '--schema', f2]);
  assert.equal(r2.status, 1);
  assert.equal(r2.stdout, '');
  assert.equal(w.ok(['project', 'list', '--org', org]).stdout.trim().split('\n').length, 2);
});

test('import JSONL: objects with data/unique_id/priority/metadata, or bare data; summary; re-import = duplicates', async () => {
  const lines = [
    { data: { text: 'one', lang: 'en' }, unique_id: 'j-1', priority: 3, metadata: { k: 1 } },
    { text: 'bare two' },
    { data: { text: 'three ünï 🌍' }, unique_id: 'j-3' },
    { text: 'bare four', lang: 'fr' },
  ];
  w.file('tasks.jsonl', lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  const r = w.ok(['import', prj, 'tasks.jsonl']);
  assert.equal(r.stdout.trim(), 'created 4, duplicates 0');
  const tasks = await c.listAll(prj);
  assert.deepEqual(tasks.map((t) => t.data), [{ text: 'one', lang: 'en' }, { text: 'bare two' }, { text: 'three ünï 🌍' }, { text: 'bare four', lang: 'fr' }]);
  assert.deepEqual(tasks.map((t) => t.unique_id), ['j-1', null, 'j-3', null]);
  assert.deepEqual(tasks.map((t) => t.priority), [3, 0, 0, 0]);
  assert.deepEqual(tasks[0].metadata, { k: 1 });
  // again: the ones with unique_id are duplicates; the bare ones have none and are created again
  const again = w.ok(['import', prj, 'tasks.jsonl']);
  assert.equal(again.stdout.trim(), 'created 2, duplicates 2');
  assert.equal(await count(), 6);
});

test('import CSV: header, quoting, unique_id/priority/metadata columns honoured', async () => {
  const p = w.project(org, { name: 'CSV', fields: [{ name: 'text', type: 'text' }, { name: 'lang', type: 'text' }], questions: [{ name: 'q', type: 'rating' }] });
  const csv = [
    'unique_id,text,priority,lang,metadata',
    'c-1,hello,2,en,"{""a"":1}"',
    'c-2,"with, comma",0,fr,{}',
    'c-3,"with ""quotes"" and',
    'newline",-1,de,"{""b"":[1,2]}"',
    'c-1,dup of c-1,0,en,{}',
    '',
  ].join('\r\n');
  w.file('tasks.csv', csv);
  const r = w.ok(['import', p, 'tasks.csv']);
  assert.equal(r.stdout.trim(), 'created 3, duplicates 1');
  const tasks = await c.listAll(p);
  assert.deepEqual(tasks.map((t) => t.unique_id), ['c-1', 'c-2', 'c-3']);
  assert.deepEqual(tasks.map((t) => t.data), [
    { text: 'hello', lang: 'en' },
    { text: 'with, comma', lang: 'fr' },
    { text: 'with "quotes" and\r\nnewline', lang: 'de' },
  ]);
  assert.deepEqual(tasks.map((t) => t.priority), [2, 0, -1]);
  assert.deepEqual(tasks.map((t) => t.metadata), [{ a: 1 }, {}, { b: [1, 2] }]);
  // --format overrides the extension
  w.file('csv-as-txt.data', 'text,lang\nfrom txt,en\n');
  const r2 = w.ok(['import', p, 'csv-as-txt.data', '--format', 'csv']);
  assert.equal(r2.stdout.trim(), 'created 1, duplicates 0');
  assert.deepEqual((await c.listAll(p)).at(-1).data, { text: 'from txt', lang: 'en' });
});

test('import from stdin with -', async () => {
  const n0 = await count();
  const r = w.ok(['import', prj, '-', '--format', 'jsonl'], { input: '{"text":"stdin 1"}\n{"data":{"text":"stdin 2"},"unique_id":"s-2"}\n' });
  assert.equal(r.stdout.trim(), 'created 2, duplicates 0');
  const tasks = await c.listAll(prj);
  assert.equal(tasks.length, n0 + 2);
  assert.deepEqual(tasks.slice(-2).map((t) => t.data.text), ['stdin 1', 'stdin 2']);
});

test('import JSONL that starts with a UTF-8 byte order mark (as Windows editors save it)', async () => {
  const n0 = await count();
  w.file('bom.jsonl', '\ufeff{"text":"after a BOM"}\r\n{"text":"second"}\r\n');
  assert.equal(w.ok(['import', prj, 'bom.jsonl']).stdout.trim(), 'created 2, duplicates 0');
  const tasks = await c.listAll(prj);
  assert.equal(tasks.length, n0 + 2);
  assert.deepEqual(tasks.slice(-2).map((t) => t.data), [{ text: 'after a BOM' }, { text: 'second' }]);
  // only at the very start: a BOM on a later line is bad JSON there
  w.file('bom2.jsonl', '{"text":"one"}\n\ufeff{"text":"two"}\n');
  const r = w.cli(['import', prj, 'bom2.jsonl']);
  assert.equal(r.status, 1, r.stderr);
  assert.ok(r.stderr.startsWith('bom2.jsonl:2: malformed JSON'), r.stderr);
  assert.equal(await count(), n0 + 2);
});

test('a JSONL line over 64 MiB is refused at that line, and nothing of the file is imported', async () => {
  const n0 = await count();
  const f = w.file('long.jsonl', `{"text":"fine"}\n{"text":"${'x'.repeat(64 * 1024 * 1024)}"}\n{"text":"after"}\n`);
  const r = w.cli(['import', prj, 'long.jsonl']);
  rmSync(f);
  assert.equal(r.status, 1, r.stderr);
  assert.ok(r.stderr.startsWith('long.jsonl:2: line longer than 67108864 bytes'), r.stderr);
  assert.equal(await count(), n0);
});

test('a bad line 3 → stderr "FILE:3: …", exit 1, nothing of the file imported', async () => {
  const n0 = await count();
  const bad = [
    ['bad-json.jsonl', '{"text":"ok 1"}\n{"data":{"text":"ok 2"},"unique_id":"b-2"}\n{"text": nope}\n{"text":"ok 4"}\n'],
    ['bad-type.jsonl', '{"text":"ok 1"}\n{"text":"ok 2"}\n{"data":{"text":42}}\n{"text":"ok 4"}\n'],
    ['bad-missing.jsonl', '{"text":"ok 1"}\n{"text":"ok 2"}\n{"data":{"lang":"en"}}\n'],
    ['bad-scalar.jsonl', '{"text":"ok 1"}\n{"text":"ok 2"}\n[1,2]\n'],
  ];
  for (const [name, content] of bad) {
    w.file(name, content);
    const r = w.cli(['import', prj, name]);
    assert.equal(r.status, 1, `${name}: exit ${r.status}, stderr ${r.stderr}`);
    assert.ok(r.stderr.startsWith(`${name}:3:`), `${name}: stderr should start with "${name}:3:": ${JSON.stringify(r.stderr)}`);
    assert.ok(!/created \d+/.test(r.stdout), `${name}: summary printed on failure: ${r.stdout}`);
    assert.equal(await count(), n0, `${name}: tasks were half-imported`);
  }
  // the path is reported as given
  const abs = path.join(w.dir, 'bad-type.jsonl');
  const r = w.cli(['import', prj, abs]);
  assert.equal(r.status, 1);
  assert.ok(r.stderr.startsWith(`${abs}:3:`), r.stderr);
  // CSV: the header is line 1, so the bad row is line 3
  const pc = w.project(org, { name: 'CSV bad', fields: [{ name: 'text', type: 'text' }], questions: [{ name: 'q', type: 'rating' }] });
  w.file('bad.csv', 'text,metadata\nfine,{}\nbroken,{not json\nfine again,{}\n');
  const rc = w.cli(['import', pc, 'bad.csv']);
  assert.equal(rc.status, 1, rc.stderr);
  assert.ok(rc.stderr.startsWith('bad.csv:3:'), JSON.stringify(rc.stderr));
  assert.equal(await count(pc), 0);
  // the unique_ids of a refused file were not taken
  w.file('good-after.jsonl', '{"data":{"text":"ok 2"},"unique_id":"b-2"}\n');
  assert.equal(w.ok(['import', prj, 'good-after.jsonl']).stdout.trim(), 'created 1, duplicates 0');
});

test('tally export equals the HTTP export, byte for byte (also with --status)', async () => {
  // give the project some responses first
  const ann = w.member(org, 'annotator');
  const a = srv.client(ann.key);
  for (let i = 0; i < 3; i++) {
    const cl = await a.claim(prj);
    await a.submit(cl.assignment.id, { sentiment: i % 2 ? 'negative' : 'positive' }, i);
  }
  const http = await c.get(`/api/v1/projects/${prj}/export?format=jsonl`);
  assert.equal(http.status, 200);
  const cli = w.ok(['export', prj]);
  assert.equal(cli.stdout, http.text);
  assert.equal(w.ok(['export', prj, '--format', 'jsonl']).stdout, http.text);
  const lines = parseJsonl(cli.stdout);
  assert.equal(lines.length, await count());
  assert.equal(lines.filter((l) => l.status === 'completed').length, 3);
  const httpDone = await c.get(`/api/v1/projects/${prj}/export?format=jsonl&status=completed`);
  const cliDone = w.ok(['export', prj, '--status', 'completed']);
  assert.equal(cliDone.stdout, httpDone.text);
  assert.equal(parseJsonl(cliDone.stdout).length, 3);
});

test('export read by several threads: the same bytes from the CLI (--threads) and the server (--export-threads)', async () => {
  // 2,600 tasks in three imports, with another project's import in between:
  // three ranges of 1,024 for the CLI, two of 2,048 for the server
  const other = w.project('CLI Org', sentimentSchema());
  const jsonl = (tag, n) => Array.from({ length: n }, (_, i) =>
    JSON.stringify({ data: { text: `${tag} ${i} "q" \\ é` }, unique_id: `${tag}-${i}` })).join('\n') + '\n';
  const big = w.project('CLI Org', sentimentSchema());
  w.file('big1.jsonl', jsonl('one', 1000));
  w.file('other.jsonl', jsonl('other', 500));
  w.file('big2.jsonl', jsonl('two', 1600));
  w.ok(['import', big, 'big1.jsonl']);
  w.ok(['import', other, 'other.jsonl']);
  w.ok(['import', big, 'big2.jsonl']);
  const one = w.ok(['export', big, '--threads', '1']).stdout;
  const lines = parseJsonl(one);
  assert.equal(lines.length, 2600);
  assert.equal(lines[0].unique_id, 'one-0');
  assert.equal(lines[999].unique_id, 'one-999');
  assert.equal(lines[1000].unique_id, 'two-0');
  assert.equal(lines[2599].unique_id, 'two-1599');
  assert.ok(lines.every((l) => l.data.text.endsWith(' "q" \\ é')));
  for (const n of ['2', '3', '8']) assert.equal(w.ok(['export', big, '--threads', n]).stdout, one, `--threads ${n}`);
  assert.equal(w.ok(['export', big]).stdout, one);
  const viaDefault = await c.get(`/api/v1/projects/${big}/export`);
  assert.equal(viaDefault.status, 200);
  assert.equal(viaDefault.text, one);
  const single = await w.serve(['--export-threads', '1']); // stopped with the others at the end
  const r1 = await single.client(mgr.key).get(`/api/v1/projects/${big}/export`);
  assert.equal(r1.status, 200);
  assert.equal(r1.text, one);
  for (const bad of ['0', '9', 'two', '']) {
    const r = w.cli(['export', big, '--threads', bad]);
    assert.equal(r.status, 1, `--threads ${JSON.stringify(bad)}: exit ${r.status}`);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /--threads: a whole number from 1 to 8/);
  }
  const r = w.cli(['serve', '--export-threads', '0']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /--export-threads: a whole number from 1 to 8/);
});

test('serve --max-body outside 1024..4294967296 (or not a number) exits 1 and says the bounds', () => {
  for (const bad of ['1023', '4294967297', '-5', '32M', '']) {
    const r = w.cli(['serve', '--listen', '127.0.0.1:1', '--max-body', bad]);
    assert.equal(r.status, 1, `--max-body ${JSON.stringify(bad)}: exit ${r.status}`);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /--max-body: a whole number from 1024 to 4294967296/);
  }
});

test('TALLY_DB and --db after the command name both select the database', () => {
  const viaEnv = w.cli(['org', 'list'], { noDb: true, env: { TALLY_DB: w.db } });
  assert.equal(viaEnv.status, 0, viaEnv.stderr);
  assert.match(viaEnv.stdout, new RegExp(`^${org}\\t`, 'm'));
  const after = w.cli(['org', 'list', '--db', w.db], { noDb: true });
  assert.equal(after.status, 0, after.stderr);
  assert.equal(after.stdout, viaEnv.stdout);
});

test('errors go to stderr with a non-zero exit and nothing on stdout', () => {
  const cases = [
    ['frobnicate'],
    ['org'],
    ['org', 'add'],
    ['user', 'add', '--org', org, '--email', 'x@example.com', '--role', 'emperor'],
    ['user', 'add', '--org', 'org_doesnotexist', '--email', 'y@example.com', '--role', 'annotator'],
    ['user', 'add', '--org', 'No Such Org', '--email', 'y@example.com', '--role', 'annotator'],
    ['key', 'create', '--user', 'nobody@example.com'],
    ['key', 'revoke', 'key_doesnotexist'],
    ['project', 'create', '--org', org, '--schema', path.join(w.dir, 'no-such-file.json')],
    ['project', 'list', '--org', 'org_nope'],
    ['import', 'prj_doesnotexist', 'tasks.jsonl'],
    ['import', prj, 'no-such-file.jsonl'],
    ['import', prj, 'tasks.jsonl', '--format', 'xml'],
    ['export', 'prj_doesnotexist'],
    ['export', prj, '--status', 'bogus'],
    ['serve', '--listen', 'not-an-address'],
  ];
  for (const args of cases) {
    const r = w.cli(args, { timeout: 15_000 });
    assert.ok(r.status !== 0 && r.status !== null, `tally ${args.join(' ')}: exit ${r.status} ${r.signal || ''}`);
    assert.ok(r.status === 1 || r.status === 2, `tally ${args.join(' ')}: exit ${r.status} (1 or 2 per CLI.md)`);
    assert.equal(r.stdout, '', `tally ${args.join(' ')}: stdout ${JSON.stringify(r.stdout)}`);
    assert.ok(r.stderr.trim().length > 0, `tally ${args.join(' ')}: no message on stderr`);
  }
  // a database that cannot be opened: storage failure (2) or usage (1), never a crash
  const r = w.cli(['org', 'list'], { noDb: true, env: { TALLY_DB: path.join(w.dir, 'no', 'such', 'dir', 'x.db') } });
  assert.ok(r.status === 1 || r.status === 2, `unopenable db: exit ${r.status} ${r.signal || ''}: ${r.stderr}`);
});
