// Helpers for the tally end-to-end tests: start the real binary, set a world up
// through the CLI (docs/CLI.md), talk HTTP to it (docs/API.md).
// No npm dependencies: node:test, node:assert, built-in fetch, node:net.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { after } from 'node:test';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.resolve(REPO, process.env.TALLY_BIN || 'build/tally');
// ASan builds are several times slower: every timeout is multiplied by SLOW.
export const SLOW = Number(process.env.TALLY_E2E_SLOW || (/asan/i.test(BIN) ? 4 : 1));
export const TS_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
export const ERROR_CODES = {
  400: ['bad_json', 'bad_request'], 401: ['unauthorized'], 403: ['forbidden'], 404: ['not_found'],
  405: ['method_not_allowed'], 409: ['conflict'], 413: ['too_large'], 422: ['invalid'], 500: ['internal'],
  503: ['busy'],
};

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The sqlite3 CLI is there (scripts/setup installs it): the checks that read
 * the database directly need it. */
export const HAVE_SQLITE3 = spawnSync('sqlite3', ['-version'], { encoding: 'utf8' }).status === 0;

/** SQL on db through the sqlite3 CLI (on its standard input: a long script
 * would pass the argument limit): its output, trimmed. */
export function sqlite(db, sql) {
  const r = spawnSync('sqlite3', ['-batch', '-noheader', db], { input: sql, encoding: 'utf8', timeout: 60_000 * SLOW });
  if (r.error) throw r.error;
  assert.equal(r.status, 0, `sqlite3 ${sql}: ${r.stderr}`);
  return r.stdout.trim();
}

/** bench/preload/diskfault.c of the release build, or undefined: a shim that
 * only wraps libc, the same whatever server binary is under test. */
export const DISKFAULT = [path.join(REPO, 'build/bench/libdiskfault.so')].find((p) => existsSync(p));

/** The environment that runs a tally binary on w's database under the
 * disk-fault shim; faults names the flag files (DISKFAULT_FULL, DISKFAULT_SYNC)
 * and DISKFAULT_ERRNO. The shim is not sanitized: a sanitizer runtime must not
 * insist on coming first. */
export function diskfaultEnv(w, faults) {
  const asan = [process.env.ASAN_OPTIONS, 'verify_asan_link_order=0'].filter(Boolean).join(':');
  return { LD_PRELOAD: DISKFAULT, DISKFAULT_DB: w.db, ASAN_OPTIONS: asan, ...faults };
}

const children = new Set();
process.on('exit', () => { for (const c of children) try { c.kill('SIGKILL'); } catch {} });

/** A free TCP port on 127.0.0.1: bind a server to port 0, read the port, close it. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Runs `tally --db DB ARGS…` synchronously. */
function runCli(db, args, opts = {}) {
  const env = { ...process.env, ...(opts.env || {}) };
  if (!opts.env || !('TALLY_DB' in opts.env)) delete env.TALLY_DB;
  const argv = opts.noDb ? args : ['--db', db, ...args];
  const r = spawnSync(BIN, argv, {
    cwd: opts.cwd, input: opts.input, env, encoding: 'utf8',
    timeout: (opts.timeout || 120_000) * SLOW, maxBuffer: 512 * 1024 * 1024,
  });
  if (r.error) throw r.error;
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** One database in a fresh temp dir, set up through the CLI, plus its servers. */
export class World {
  constructor(tag) {
    if (!existsSync(BIN)) throw new Error(`tally binary not found at ${BIN} (set TALLY_BIN or run make)`);
    this.dir = mkdtempSync(path.join(os.tmpdir(), `tally-e2e-${tag}-`));
    this.db = path.join(this.dir, 'tally.db');
    this.servers = [];
    this.seq = 0;
  }

  /** Creates the world, runs `tally init`, registers the teardown in `after`. */
  static create(tag) {
    const w = new World(tag);
    w.ok(['init']);
    after(async () => { await w.close(); });
    return w;
  }

  cli(args, opts = {}) { return runCli(this.db, args, { cwd: this.dir, ...opts }); }

  /** Runs the CLI and asserts exit 0. */
  ok(args, opts = {}) {
    const r = this.cli(args, opts);
    assert.equal(r.status, 0, `tally ${args.join(' ')} exited ${r.status} (${r.signal || ''}): ${r.stderr}`);
    return r;
  }

  file(name, content) {
    const p = path.join(this.dir, name);
    writeFileSync(p, content);
    return p;
  }

  org(name) {
    const out = this.ok(['org', 'add', name]).stdout.trim();
    assert.match(out, /^org_\S+$/, `org add printed ${JSON.stringify(out)}`);
    return out;
  }

  user(org, email, role) {
    const out = this.ok(['user', 'add', '--org', org, '--email', email, '--role', role]).stdout.trim();
    assert.match(out, /^usr_\S+$/, `user add printed ${JSON.stringify(out)}`);
    return out;
  }

  key(email, org) {
    const args = ['key', 'create', '--user', email];
    if (org) args.push('--org', org);
    const r = this.ok(args);
    const key = r.stdout.trim();
    assert.ok(key.length > 0 && !/\s/.test(key), `key create printed ${JSON.stringify(r.stdout)}`);
    const m = r.stderr.match(/\b(key_[A-Za-z0-9_-]*[A-Za-z0-9])/);
    assert.ok(m, `key create: no key_… id on stderr: ${JSON.stringify(r.stderr)}`);
    return { key, keyId: m[1] };
  }

  /** A new user with `role` in `org`, and a key. */
  member(org, role, email) {
    email = email || `${role}${++this.seq}-${process.pid}@example.com`;
    const id = this.user(org, email, role);
    const { key, keyId } = this.key(email, org);
    return { id, email, role, org, key, keyId };
  }

  project(org, schema) {
    const f = this.file(`schema-${++this.seq}.json`, JSON.stringify(schema));
    const out = this.ok(['project', 'create', '--org', org, '--schema', f]).stdout.trim();
    assert.match(out, /^prj_\S+$/);
    return out;
  }

  /** Starts `tally serve` on a free port and waits until it answers (env: added to the
   * server's; wrap: a command that execs the server, e.g. ['prlimit', '--nofile=64']). */
  async serve(extra = [], env = {}, wrap = []) {
    let lastErr;
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await freePort();
      const s = new Server(this, port, extra, env, wrap);
      try {
        await s.start();
        this.servers.push(s);
        return s;
      } catch (e) {
        lastErr = e;
        await s.kill();
        if (!/EADDRINUSE|address already in use|bind/i.test(String(e.message))) break;
      }
    }
    throw lastErr;
  }

  /** Stops every server (asserting exit 0 within 10 s and that no 5xx was seen). */
  async close() {
    const errors = [];
    for (const s of this.servers) {
      try { await s.stop(); } catch (e) { errors.push(e); }
      if (s.fiveXX.length) errors.push(new Error(`server answered 5xx: ${JSON.stringify(s.fiveXX.slice(0, 5))}`));
    }
    this.servers = [];
    if (!errors.length && !process.env.TALLY_E2E_KEEP) rmSync(this.dir, { recursive: true, force: true });
    if (errors.length) throw errors.length === 1 ? errors[0] : new AggregateError(errors, errors.map((e) => e.message).join('; '));
  }
}

export class Server {
  constructor(world, port, extra, env = {}, wrap = []) {
    this.world = world;
    this.port = port;
    this.extra = extra;
    this.env = env;
    this.wrap = wrap;
    this.base = `http://127.0.0.1:${port}`;
    this.log = '';
    this.fiveXX = [];
    this.exit = null;
  }

  async start() {
    const args = ['--db', this.world.db, 'serve', '--listen', `127.0.0.1:${this.port}`, ...this.extra];
    const env = { ...process.env, ...this.env };
    delete env.TALLY_DB;
    const cmd = [...this.wrap, BIN, ...args];
    this.proc = spawn(cmd[0], cmd.slice(1), { cwd: this.world.dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(this.proc);
    const keep = (d) => { this.log = (this.log + d.toString()).slice(-64 * 1024); };
    this.proc.stdout.on('data', keep);
    this.proc.stderr.on('data', keep);
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => { this.exit = { code, signal }; children.delete(this.proc); resolve(this.exit); });
    });
    const deadline = Date.now() + 20_000 * SLOW;
    while (Date.now() < deadline) {
      if (this.exit) throw new Error(`tally serve exited early ${JSON.stringify(this.exit)}: ${this.log}`);
      try {
        const r = await fetch(`${this.base}/api/v1/openapi.json`, { signal: AbortSignal.timeout(2000 * SLOW) });
        await r.arrayBuffer();
        if (r.status === 200) return;
      } catch {}
      await sleep(50);
    }
    throw new Error(`tally serve did not answer GET /api/v1/openapi.json within ${20 * SLOW} s: ${this.log}`);
  }

  async kill() {
    if (this.proc && !this.exit) { this.proc.kill('SIGKILL'); await this.exited; }
  }

  /** SIGTERM; asserts the process exits with status 0 within `ms`. Returns elapsed ms. */
  async stop(ms = 10_000, signal = 'SIGTERM') {
    if (this.exit) throw new Error(`tally serve had already exited ${JSON.stringify(this.exit)}: ${this.log}`);
    const t0 = Date.now();
    this.proc.kill(signal);
    let timer;
    const res = await Promise.race([this.exited,
      new Promise((r) => { timer = setTimeout(() => r(null), ms); })]);
    clearTimeout(timer); // a pending timer would keep node alive after the file's last test
    if (!res) {
      this.proc.kill('SIGKILL');
      await this.exited;
      throw new Error(`tally serve did not exit within ${ms} ms of ${signal}; log: ${this.log.slice(-2000)}`);
    }
    if (res.code !== 0) throw new Error(`tally serve exited ${JSON.stringify(res)} after ${signal} (expected 0); log: ${this.log.slice(-4000)}`);
    return Date.now() - t0;
  }

  client(key) { return new Client(this, key); }
}

/** Parsed HTTP answer. */
export class Res {
  constructor(method, url, status, headers, text) {
    this.method = method; this.url = url; this.status = status; this.headers = headers; this.text = text;
    try { this.body = text.length ? JSON.parse(text) : undefined; } catch { this.body = undefined; }
  }
  toString() { return `${this.method} ${this.url} -> ${this.status} ${this.text.slice(0, 600)}`; }
}

export class Client {
  constructor(server, key) { this.server = server; this.key = key; }

  /**
   * body: undefined, a string/Buffer (sent as is) or anything else (JSON.stringify).
   * opts.headers override; opts.auth = false drops Authorization; opts.authHeader sets it raw.
   */
  async req(method, p, body, opts = {}) {
    const headers = { ...(opts.headers || {}) };
    if (opts.authHeader !== undefined) headers.authorization = opts.authHeader;
    else if (this.key && opts.auth !== false) headers.authorization = `Bearer ${this.key}`;
    let payload;
    if (body !== undefined) {
      payload = (typeof body === 'string' || body instanceof Uint8Array) ? body : JSON.stringify(body);
      if (!('content-type' in headers)) headers['content-type'] = 'application/json';
    }
    const url = this.server.base + p;
    let r;
    let lastErr;
    for (let i = 0; i < 1; i++) {
      try {
        r = await fetch(url, { method, headers, body: payload, signal: AbortSignal.timeout((opts.timeout || 30_000) * SLOW) });
      } catch (e) { lastErr = e; }
    }
    if (!r) throw new Error(`${method} ${p}: ${lastErr?.message} ${lastErr?.cause?.message || ''}`);
    const text = await r.text();
    const res = new Res(method, p, r.status, r.headers, text);
    if (r.status >= 500) this.server.fiveXX.push({ method, path: p, status: r.status, body: text.slice(0, 300) });
    return res;
  }

  get(p, opts) { return this.req('GET', p, undefined, opts); }
  post(p, body, opts) { return this.req('POST', p, body, opts); }

  // API shortcuts: each asserts the documented success status and returns the body.
  async me() { return ok(await this.get('/api/v1/me'), 200); }
  async createProject(schema) { return ok(await this.post('/api/v1/projects', schema), 201); }
  async getProject(id) { return ok(await this.get(`/api/v1/projects/${id}`), 200); }
  async createTasks(prj, tasks) { return ok(await this.post(`/api/v1/projects/${prj}/tasks`, { tasks }), 201); }
  async getTask(id) { return ok(await this.get(`/api/v1/tasks/${id}`), 200); }
  async claim(prj) {
    const r = await this.post(`/api/v1/projects/${prj}/claim`);
    if (r.status === 204) { assert.equal(r.text, '', `204 with a body: ${r}`); return null; }
    return ok(r, 200);
  }
  async submit(asg, answers, duration_ms = 1000) { return ok(await this.post(`/api/v1/assignments/${asg}/submit`, { answers, duration_ms }), 201); }
  async listAll(prj, query = '') {
    const all = [];
    let cursor = null;
    for (let i = 0; i < 100_000; i++) {
      const q = new URLSearchParams(query);
      q.set('limit', '1000');
      if (cursor) q.set('cursor', cursor);
      const b = ok(await this.get(`/api/v1/projects/${prj}/tasks?${q}`), 200);
      all.push(...b.tasks);
      cursor = b.next_cursor;
      if (cursor === null) return all;
    }
    throw new Error('listAll: too many pages');
  }
  async exportLines(prj, query = 'format=jsonl') {
    const r = await this.get(`/api/v1/projects/${prj}/export?${query}`, { timeout: 120_000 });
    assert.equal(r.status, 200, String(r));
    return parseJsonl(r.text);
  }
}

export function parseJsonl(text) {
  if (text === '') return [];
  assert.ok(text.endsWith('\n'), `JSONL does not end with a newline: ${JSON.stringify(text.slice(-80))}`);
  return text.slice(0, -1).split('\n').map((l, i) => {
    try { return JSON.parse(l); } catch (e) { throw new Error(`JSONL line ${i + 1} is not JSON: ${l.slice(0, 200)}`); }
  });
}

/** Asserts the status and returns the parsed body. */
export function ok(res, status) {
  assert.equal(res.status, status, `expected ${status}: ${res}`);
  if (status !== 204) {
    assert.match(res.headers.get('content-type') || '', /^application\/json/, `content-type of ${res}`);
    assert.ok(res.body !== undefined, `body is not JSON: ${res}`);
  }
  return res.body;
}

/** Asserts the documented error: status, JSON body {"error":{code,message[,field][,offset]}}. */
export function assertError(res, status, code, field) {
  assert.equal(res.status, status, `expected ${status}${field !== undefined ? ` field ${field}` : ''}: ${res}`);
  assert.ok(res.body && typeof res.body === 'object' && res.body.error && typeof res.body.error === 'object', `no error object: ${res}`);
  const e = res.body.error;
  if (code === undefined) assert.ok(ERROR_CODES[status].includes(e.code), `code ${e.code} not one of ${ERROR_CODES[status]}: ${res}`);
  else if (Array.isArray(code)) assert.ok(code.includes(e.code), `code ${e.code} not one of ${code}: ${res}`);
  else assert.equal(e.code, code, `error code: ${res}`);
  assert.equal(typeof e.message, 'string', `message: ${res}`);
  assert.ok(e.message.length > 0, `empty message: ${res}`);
  if (field !== undefined) assert.equal(e.field, field, `field: ${res}`);
  assert.match(res.headers.get('content-type') || '', /^application\/json/, `content-type of ${res}`);
  return e;
}

/**
 * Raw HTTP over TCP: writes `data`, reads until the server closes or `ms` passes.
 * Returns {text, status (number|null), closed}.
 */
export function rawRequest(port, data, ms = 5000 * SLOW) {
  return new Promise((resolve) => {
    const chunks = [];
    let done = false;
    const sock = net.connect(port, '127.0.0.1');
    const finish = (closed) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const m = text.match(/^HTTP\/1\.[01] (\d{3})/);
      resolve({ text, status: m ? Number(m[1]) : null, closed });
    };
    const timer = setTimeout(() => finish(false), ms);
    sock.on('connect', () => { sock.write(data); });
    sock.on('data', (d) => chunks.push(d));
    sock.on('end', () => finish(true));
    sock.on('close', () => finish(true));
    sock.on('error', () => finish(true));
  });
}

/** The body of a raw HTTP answer (after the blank line), de-chunked when needed. */
export function rawBody(text) {
  const i = text.indexOf('\r\n\r\n');
  if (i < 0) return '';
  const head = text.slice(0, i);
  let body = text.slice(i + 4);
  if (/transfer-encoding:\s*chunked/i.test(head)) {
    let out = '';
    for (let k = 0; k < 100000; k++) {
      const j = body.indexOf('\r\n');
      if (j < 0) break;
      const n = parseInt(body.slice(0, j), 16);
      if (!n) break;
      out += body.slice(j + 2, j + 2 + n);
      body = body.slice(j + 2 + n + 2);
    }
    return out;
  }
  return body;
}

/** Runs `fn` over items with at most `n` in flight. */
export async function pool(items, n, fn) {
  const out = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) { const i = next++; out[i] = await fn(items[i], i); }
  }));
  return out;
}

// ---- schemas used across files -------------------------------------------------

export function sentimentSchema(over = {}) {
  return {
    name: 'Sentiment',
    instructions: 'Pick the feeling of the text.',
    fields: [{ name: 'text', type: 'text' }],
    questions: [{ name: 'sentiment', type: 'choice', options: ['positive', 'negative', 'neutral'] }],
    min_responses: 1, max_responses: 1, lease_seconds: 600,
    ...over,
  };
}

export const textTasks = (n, prefix = 't', from = 0) =>
  Array.from({ length: n }, (_, i) => ({ data: { text: `${prefix} text ${from + i}` }, unique_id: `${prefix}-${from + i}` }));
