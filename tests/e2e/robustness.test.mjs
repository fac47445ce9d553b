// Hostile input: malformed JSON, odd bodies, huge numbers, deep nesting, invalid UTF-8,
// unknown routes, wrong methods, oversize bodies, garbage over raw TCP. The server
// must answer each with a 4xx JSON error, never a 5xx, and keep serving.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { World, assertError, ok, sentimentSchema, textTasks, rawRequest, rawBody, SLOW } from './lib.mjs';

const w = World.create('robust');
let srv, small, org, mgr, ann, c, prj, tid;

before(async () => {
  org = w.org('Robust Org');
  mgr = w.member(org, 'manager');
  ann = w.member(org, 'annotator');
  srv = await w.serve();
  small = await w.serve(['--max-body', '1024']);
  c = srv.client(mgr.key);
  prj = (await c.createProject(sentimentSchema())).id;
  [tid] = (await c.createTasks(prj, textTasks(1, 'rob'))).created;
});

const post = (p, body, headers) => c.post(p, body, headers ? { headers } : undefined);
const tasksPath = () => `/api/v1/projects/${prj}/tasks`;

async function stillAlive() {
  const me = await c.me();
  assert.equal(me.user.id, mgr.id);
  const p = await c.getProject(prj);
  assert.equal(p.id, prj);
}

test('malformed JSON bodies → 400 bad_json with an offset inside the body', async () => {
  const bodies = ['{', '}', '{"tasks": [', '{"tasks": [}', "{'tasks': []}", '{"tasks": [1,]}', '{"a":1}{"b":2}',
    '{"tasks": NaN}', '{"tasks": Infinity}', '{"tasks": [0x10]}', '{"tasks": "\\x41"}', '{"tasks": "a\nb"}', '{"a" 1}',
    '\u0000', '{"tasks": [01]}'];
  for (const b of bodies) {
    const e = assertError(await post(tasksPath(), b), 400, 'bad_json');
    assert.ok(Number.isInteger(e.offset) && e.offset >= 0 && e.offset <= Buffer.byteLength(b), `offset ${e.offset} for ${JSON.stringify(b)}`);
  }
  await stillAlive();
  assert.equal((await c.listAll(prj)).length, 1);
});

test('empty body and non-object bodies → 400', async () => {
  for (const p of [tasksPath(), '/api/v1/projects']) {
    assertError(await post(p, ''), 400, ['bad_json', 'bad_request']);
    assertError(await post(p, '   '), 400, ['bad_json', 'bad_request']);
    assertError(await post(p, '[]'), 400, 'bad_request');
    assertError(await post(p, '[1,2,3]'), 400, 'bad_request');
    for (const b of ['1', '"s"', 'null', 'false', '-0', '1e5']) assertError(await post(p, b), 400, ['bad_json', 'bad_request']);
  }
  await stillAlive();
});

test('huge numbers are refused with 4xx (never 5xx, never silently wrapped)', async () => {
  const cases = [
    `{"tasks":[{"data":{"text":"x"},"priority":1e400}]}`,
    `{"tasks":[{"data":{"text":"x"},"priority":99999999999999999999999}]}`,
    `{"tasks":[{"data":{"text":"x"},"priority":-99999999999999999999999}]}`,
    `{"tasks":[{"data":{"text":"x"},"priority":1e30}]}`,
    `{"tasks":[{"data":{"text":"x"},"priority":${'9'.repeat(5000)}}]}`,
  ];
  for (const b of cases) {
    const r = await post(tasksPath(), b);
    assert.ok(r.status === 400 || r.status === 422, `${b.slice(0, 80)}: ${r}`);
    assertError(r, r.status);
  }
  const proj = [
    { ...sentimentSchema(), min_responses: 1e300, max_responses: 1e300 },
    { ...sentimentSchema(), lease_seconds: 4294967897 },       // 2^32 + 601: wraps to 601 in 32 bits
    { ...sentimentSchema(), lease_seconds: 18446744073709552000 },
    { ...sentimentSchema(), min_responses: 4294967298, max_responses: 4294967298 }, // 2^32 + 2
  ];
  for (const s of proj) {
    const r = await post('/api/v1/projects', s);
    assert.ok(r.status === 400 || r.status === 422, `${JSON.stringify(s).slice(-120)}: ${r}`);
    assertError(r, r.status);
  }
  // duration_ms and rating answers out of range
  const cl = await srv.client(ann.key).claim(prj);
  for (const b of [
    `{"answers":{"sentiment":"positive"},"duration_ms":1e400}`,
    `{"answers":{"sentiment":"positive"},"duration_ms":99999999999999999999999}`,
  ]) {
    const r = await srv.client(ann.key).post(`/api/v1/assignments/${cl.assignment.id}/submit`, b);
    assert.ok(r.status === 400 || r.status === 422, String(r));
    assertError(r, r.status);
  }
  assert.equal((await c.getTask(tid)).response_count, 0);
  await srv.client(ann.key).post(`/api/v1/assignments/${cl.assignment.id}/release`);
  await stillAlive();
  assert.equal((await c.listAll(prj)).length, 1);
});

test('deep nesting (100,000 arrays/objects) → 400, server survives', async () => {
  const n = 100_000;
  const bodies = [
    '['.repeat(n) + ']'.repeat(n),
    `{"tasks":[{"data":{"text":"x"},"metadata":{"m":${'['.repeat(n)}${']'.repeat(n)}}}]}`,
    `{"tasks":[{"data":{"text":"x"},"metadata":${'{"a":'.repeat(n)}1${'}'.repeat(n)}}]}`,
    '['.repeat(n), // unterminated too
  ];
  for (const b of bodies) {
    const r = await post(tasksPath(), b);
    assert.ok(r.status === 400 || r.status === 422, `${b.slice(0, 40)}…: ${r}`);
    assertError(r, r.status);
  }
  const r = await post('/api/v1/projects', `{"name":"deep","fields":${'['.repeat(n)}${']'.repeat(n)}}`);
  assert.ok(r.status === 400 || r.status === 422, String(r));
  await stillAlive();
  assert.equal((await c.listAll(prj)).length, 1);
});

test('invalid UTF-8 → 400 bad_json; valid non-ASCII is kept byte for byte', async () => {
  const bad = [
    Buffer.concat([Buffer.from('{"tasks":[{"data":{"text":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}}]}')]),
    Buffer.concat([Buffer.from('{"tasks":[{"data":{"text":"'), Buffer.from([0xc3]), Buffer.from('"}}]}')]),       // truncated sequence
    Buffer.concat([Buffer.from('{"tasks":[{"data":{"text":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}}]}')]), // CESU surrogate
    Buffer.concat([Buffer.from('{"tasks":[{"data":{"text":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}}]}')]), // overlong '/'
    Buffer.concat([Buffer.from('{"name":"'), Buffer.from([0xf8, 0x88, 0x80, 0x80, 0x80]), Buffer.from('"}')]),
  ];
  for (const b of bad) {
    const p = b.includes(Buffer.from('"name"')) ? '/api/v1/projects' : tasksPath();
    const e = assertError(await post(p, b), 400, 'bad_json');
    assert.ok(Number.isInteger(e.offset) && e.offset >= 0 && e.offset <= b.length, `offset ${e.offset}`);
  }
  const text = 'naïve 日本語 🌍 \u2028 "quoted" \\ back';
  const t = await c.createTasks(prj, [{ data: { text }, unique_id: '🔑-ключ' }]);
  const got = await c.getTask(t.created[0]);
  assert.equal(got.data.text, text);
  assert.equal(got.unique_id, '🔑-ключ');
  await stillAlive();
});

test('unknown routes → 404 JSON error; known path with a wrong method → 405 JSON error', async () => {
  const unknown = ['/', '/api', '/api/v1', '/api/v1/', '/api/v2/projects', '/api/v1/nope', `/api/v1/projects/${prj}/nope`,
    `/api/v1/projects/${prj}/tasks/extra`, '/api/v1/tasks', '/api/v1/assignments', '/api/v1/openapi.yaml', '/../../etc/passwd',
    '/api/v1/ME', '/favicon.ico'];
  for (const p of unknown) {
    for (const k of [mgr.key, null]) {
      const r = await srv.client(k).get(p);
      // an unknown route is 404 even without a key (or 401 if the server checks the key first for /api/v1)
      if (k) assertError(r, 404, 'not_found');
      else assert.ok(r.status === 404 || r.status === 401, String(r));
    }
  }
  const wrong = [
    ['DELETE', '/api/v1/projects'], ['PUT', '/api/v1/projects'], ['PATCH', `/api/v1/projects/${prj}`],
    ['DELETE', `/api/v1/projects/${prj}`], ['POST', `/api/v1/projects/${prj}`], ['GET', `/api/v1/projects/${prj}/claim`],
    ['PUT', `/api/v1/projects/${prj}/tasks`], ['POST', `/api/v1/projects/${prj}/export`], ['POST', '/api/v1/me'],
    ['DELETE', `/api/v1/tasks/${tid}`], ['GET', `/api/v1/tasks/${tid}/cancel`], ['GET', '/api/v1/assignments/asg_x/submit'],
    ['POST', '/api/v1/openapi.json'], ['OPTIONS', '/api/v1/projects'], ['PATCH', '/api/v1/projects'],
  ];
  const failures = [];
  for (const [m, p] of wrong) {
    const r = await c.req(m, p, m === 'GET' || m === 'DELETE' ? undefined : '{}');
    try { assertError(r, 405, 'method_not_allowed'); } catch { failures.push(String(r).slice(0, 160)); }
  }
  assert.deepEqual(failures, [], 'expected 405 method_not_allowed JSON for a known path with a wrong method');
  await stillAlive();
});

test('body over --max-body → 413; a body just under it is served', async () => {
  const cs = small.client(mgr.key);
  const big = JSON.stringify({ tasks: [{ data: { text: 'x'.repeat(2048) } }] });
  assert.ok(big.length > 2048);
  const r = await cs.post(tasksPath(), big);
  assert.equal(r.status, 413, String(r));
  if (r.body?.error) assert.equal(r.body.error.code, 'too_large');
  // a body under the limit works on the same server
  const fine = await cs.post(tasksPath(), { tasks: [{ data: { text: 'small' }, unique_id: 'small-1' }] });
  assert.equal(fine.status, 201, String(fine));
  // chunked transfer (no Content-Length) over the limit: refused while reading → 413
  const chunk = 'x'.repeat(512);
  const head = `POST ${tasksPath()} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${mgr.key}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`;
  const payload = `{"tasks":[{"data":{"text":"${chunk.repeat(4)}"}}]}`;
  const chunks = [];
  for (let i = 0; i < payload.length; i += 300) { const p = payload.slice(i, i + 300); chunks.push(`${p.length.toString(16)}\r\n${p}\r\n`); }
  const raw = await rawRequest(small.port, head + chunks.join('') + '0\r\n\r\n');
  assert.equal(raw.status, 413, `chunked 2 KB body: ${raw.text.slice(0, 300)}`);
  // the big server takes 2 KB fine
  const okBig = await c.post(tasksPath(), big);
  assert.equal(okBig.status, 201, String(okBig));
  // nothing of the refused bodies was written
  const list = await srv.client(mgr.key).listAll(prj);
  assert.equal(list.filter((t) => t.data.text.length >= 2048).length, 1);
  assert.equal((await small.client(mgr.key).me()).user.id, mgr.id);
});

test('garbage over raw TCP: bad request lines, bad headers, binary, slow and half-closed sockets', async () => {
  const CC = 'Connection: close\r\n';
  const junk = [
    'GARBAGE\r\n\r\n',
    'GET\r\n\r\n',
    'GET / HTTP/9.9\r\n\r\n',
    `GET /api/v1/me HTTP/1.1\r\nHost: x\r\n${CC}Authorization Bearer\r\n\r\n`,
    `POST /api/v1/projects HTTP/1.1\r\nHost: x\r\n${CC}Content-Length: -5\r\n\r\n`,
    `POST /api/v1/projects HTTP/1.1\r\nHost: x\r\n${CC}Content-Length: 99999999999999999999999\r\n\r\n`,
    `POST /api/v1/projects HTTP/1.1\r\nHost: x\r\n${CC}Content-Length: 10\r\nContent-Length: 20\r\n\r\n0123456789`,
    `POST /api/v1/projects HTTP/1.1\r\nHost: x\r\n${CC}Transfer-Encoding: chunked\r\n\r\nzz\r\n`,
    `GET /${'a'.repeat(100_000)} HTTP/1.1\r\nHost: x\r\n${CC}\r\n`,
    `GET /api/v1/me HTTP/1.1\r\nHost: x\r\n${CC}X-Big: ${'b'.repeat(100_000)}\r\n\r\n`,
    Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) % 256)),
    '\r\n\r\n\r\n',
    `GET /api/v1/me HTTP/1.1\r\n${CC}${'X-H: 1\r\n'.repeat(5000)}\r\n`,
    `GET /api/v1/me HTTP/1.1\r\nHost: x\r\n${CC}Authorization: Bearer ${'\u00ff'.repeat(300)}\r\n\r\n`,
  ];
  for (const j of junk) {
    const r = await rawRequest(srv.port, j, 2000 * SLOW);
    // any answer below 500 (or a closed connection); 505 is the one 5xx HTTP allows for "HTTP/9.9"
    const okStatus = r.status === null || r.status < 500 || (r.status === 505 && String(j).includes('HTTP/9.9'));
    assert.ok(okStatus, `${String(j).slice(0, 60)} → ${r.text.slice(0, 200)}`);
  }
  // a client that connects and sends nothing, one that sends half a request line
  const idle = await rawRequest(srv.port, '', 500);
  assert.ok(idle.status === null || idle.status < 500);
  const half = await rawRequest(srv.port, 'GET /api/v1/me HT', 500);
  assert.ok(half.status === null || half.status < 500);
  // a well-formed raw request still works, with a JSON error body for a 404
  const good = await rawRequest(srv.port, 'GET /api/v1/nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.equal(good.status, 404, good.text);
  const body = JSON.parse(rawBody(good.text));
  assert.equal(body.error.code, 'not_found');
  await stillAlive();
});

// Writes each part in turn (`gap` ms apart), half-closes after the last when
// `end`, and gives back every HTTP answer read until the server closes.
function rawSession(port, parts, { gap = 0, end = false, ms = 5000 * SLOW } = {}) {
  return new Promise((resolve) => {
    const chunks = [];
    const sock = net.connect(port, '127.0.0.1');
    const finish = () => {
      clearTimeout(timer);
      sock.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      // each answer: its status, and its body by Content-Length
      const answers = [];
      for (let rest = text; rest.startsWith('HTTP/1.1 ');) {
        const head = rest.slice(0, rest.indexOf('\r\n\r\n'));
        const len = Number((head.match(/content-length:\s*(\d+)/i) || [0, 0])[1]);
        const start = head.length + 4;
        answers.push({ status: Number(head.slice(9, 12)), body: rest.slice(start, start + len) });
        rest = rest.slice(start + len);
      }
      resolve(answers);
    };
    const timer = setTimeout(finish, ms);
    sock.on('connect', async () => {
      for (const p of parts) {
        sock.write(p);
        if (gap) await new Promise((r) => setTimeout(r, gap));
      }
      if (end) sock.end();
    });
    sock.on('data', (d) => chunks.push(d));
    sock.on('close', finish);
    sock.on('error', finish);
  });
}

test('pipelined requests, a request sent while another is out, and a half-closed client get every answer in order', async () => {
  const auth = `Authorization: Bearer ${mgr.key}\r\n`;
  const me = `GET /api/v1/me HTTP/1.1\r\nHost: x\r\n${auth}\r\n`;
  const create = (uid) => {
    const b = JSON.stringify({ tasks: [{ unique_id: uid, data: { text: uid } }] });
    return `POST ${tasksPath()} HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(b)}\r\n\r\n${b}`;
  };
  const last = `GET /api/v1/projects/${prj} HTTP/1.1\r\nHost: x\r\n${auth}Connection: close\r\n\r\n`;
  // all in one write: a read, a write (through the executor), a read
  let a = await rawSession(srv.port, [me + create('pipe-1') + last]);
  assert.deepEqual(a.map((x) => x.status), [200, 201, 200]);
  assert.equal(JSON.parse(a[0].body).user.id, mgr.id);
  assert.equal(JSON.parse(a[1].body).created.length, 1);
  assert.equal(JSON.parse(a[2].body).id, prj);
  // one request at a time, each sent 5 ms after the one before, so most
  // arrive while the previous one is still out
  a = await rawSession(srv.port, [create('pipe-2'), me, create('pipe-3'), last], { gap: 5 });
  assert.deepEqual(a.map((x) => x.status), [201, 200, 201, 200]);
  // a write, then the client's FIN at once: the answer still comes
  a = await rawSession(srv.port, [create('pipe-4')], { end: true });
  assert.deepEqual(a.map((x) => x.status), [201]);
  a = await rawSession(srv.port, [me], { end: true });
  assert.deepEqual(a.map((x) => x.status), [200]);
  // a client that leaves while its write is out: the server goes on
  const gone = net.connect(srv.port, '127.0.0.1');
  await new Promise((r) => gone.on('connect', r));
  gone.write(create('pipe-5'));
  await new Promise((r) => setTimeout(r, 2));
  gone.destroy();
  await stillAlive();
  const uids = (await c.listAll(prj)).map((t) => t.unique_id).filter((u) => u && u.startsWith('pipe-'));
  for (const u of ['pipe-1', 'pipe-2', 'pipe-3', 'pipe-4']) assert.ok(uids.includes(u), `${u} in ${uids}`);
  assert.equal(new Set(uids).size, uids.length);
});

test('query strings: odd encodings on list/export are 400 or ignored, never 5xx', async () => {
  const qs = ['limit=%FF', 'limit=1e3', 'limit=10&limit=20', 'status=queued%00', 'cursor=', 'cursor=' + 'A'.repeat(10000), '%', '&&&', 'status[]=queued'];
  for (const q of qs) {
    for (const p of [`/api/v1/projects/${prj}/tasks?${q}`, `/api/v1/projects/${prj}/export?format=jsonl&${q}`]) {
      const r = await c.get(p);
      assert.ok(r.status === 200 || r.status === 400, `${p}: ${r}`);
      if (r.status === 400) assertError(r, 400, 'bad_request');
    }
  }
  assertError(await c.get(`/api/v1/projects/${prj}/export?format=xml`), 400, 'bad_request');
  // limit is digits only: a sign or a space before them is refused too
  for (const q of ['limit=%2B5', 'limit=+5', 'limit=%205', 'limit=-1', 'limit=5x']) {
    const e = assertError(await c.get(`/api/v1/projects/${prj}/tasks?${q}`), 400, 'bad_request', 'limit');
    assert.match(e.message, /limit: must be from 1 to 1000/, q);
  }
  assert.deepEqual(ok(await c.get(`/api/v1/projects/${prj}/tasks?limit=007`), 200),
    ok(await c.get(`/api/v1/projects/${prj}/tasks?limit=7`), 200));
  // a NUL byte would cut the value short ("queued%00x" read as "queued"): refused, wherever it is
  for (const q of ['status=queued%00', 'status=queued%00x', 'limit=5%00', 'x%00=1']) {
    const e = assertError(await c.get(`/api/v1/projects/${prj}/tasks?${q}`), 400, 'bad_request');
    assert.match(e.message, /NUL byte/, q);
  }
  await stillAlive();
});

test('after all of it: the server still answers and never returned 5xx', async () => {
  await stillAlive();
  const list = await c.listAll(prj);
  assert.ok(list.length >= 3);
  assert.deepEqual(srv.fiveXX, []);
  assert.deepEqual(small.fiveXX, []);
  assert.equal(srv.exit, null, 'server is running');
  assert.equal(small.exit, null, 'small server is running');
});
