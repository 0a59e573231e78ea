// The TypeScript SDK against a real `alma serve` (started here on a free loopback port): the seed's quick
// start as its README writes it, every call, typed errors, retries, AbortSignal, and drift from /openapi.json.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

import {
  ALMA, AlmaError, ConnectionError, Forbidden, InvalidTransition, NotFound, ROUTES, ScopeViolation, StorageError,
  Unauthorized, UnknownAgent, ValidationError,
} from '../dist/index.js';
import { generate } from '../scripts/gen-wire.mjs';
import { startServer } from './server.mjs';

const PKG = fileURLToPath(new URL('..', import.meta.url));
const REPO = join(PKG, '..', '..');
const OTHER_TOKEN = 'other-project-token-0123456789';
delete process.env.ALMA_TOKEN; // the client would pick it up

let server;
let alma;

before(async () => {
  server = await startServer({
    projectId: 'my-project',
    agents: `  agents:
    helena: {can_learn: [testing_strategies, selector_patterns], cannot_learn: [backend_logic]}
    victor: {can_learn: [api_patterns]}
    dev-agent: {}
`,
    extraArgs: ['--project-token', `other-project=${OTHER_TOKEN}`],
  });
  alma = new ALMA({ baseUrl: server.url, projectId: 'my-project', token: server.token });
});

after(async () => {
  await server?.stop();
});

/** The seed README: in the `shared/seed` folder beside the clone (or beside one of its parents). */
function seedReadme() {
  for (let dir = REPO; ; dir = dirname(dir)) {
    const candidate = join(dir, 'shared', 'seed', 'ALMA-v0.6.0-README.md');
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) return null;
  }
}

describe('the seed quick start', () => {
  test('type-checks against the SDK and runs as the README writes it', async (t) => {
    const readme = seedReadme();
    if (!readme) return t.skip('shared/seed/ALMA-v0.6.0-README.md not found beside the clone');
    const blocks = [...(await readFile(readme, 'utf8')).matchAll(/```typescript\n([\s\S]*?)```/g)].map((m) => m[1]);
    const block = blocks.find((b) => b.includes('new ALMA('));
    assert.ok(block, 'the seed README has a TypeScript quick start');
    // Only the port changes: the test server listens on a free one, not 8765.
    const source = block.replace("'http://localhost:8765'", `'http://localhost:${server.port}'`);
    assert.notEqual(source, block, 'the quick start names http://localhost:8765');

    const dir = join(PKG, '.quickstart');
    await mkdir(dir, { recursive: true });
    const file = join(dir, 'quickstart.ts');
    await writeFile(file, `${source}\nexport {};\n`);
    const program = ts.createProgram([file], {
      module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022, lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'], strict: true, noEmit: true, types: [],
    });
    const problems = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    assert.deepEqual(problems, [], 'the seed quick start type-checks against our .d.ts');

    const js = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } });
    await writeFile(join(dir, 'quickstart.mjs'), js.outputText);
    const run = spawnSync(process.execPath, [join(dir, 'quickstart.mjs')], {
      env: { ...process.env, ALMA_TOKEN: server.token }, encoding: 'utf8', timeout: 240_000,
    });
    assert.equal(run.status, 0, run.stderr);

    const stats = await alma.stats({ agent: 'dev-agent' });
    assert.equal(stats.outcomes, 1);
    assert.equal(stats.knowledge, 1);
    const found = await alma.retrieve({ query: 'authentication flow', agent: 'dev-agent', topK: 5, userId: 'user-123' });
    assert.ok(found.prompt.includes('passport.js'), found.prompt);
    assert.deepEqual(found.memories.preference?.map((m) => m.preference), ['Use TypeScript strict mode']);
  });
});

describe('the API', () => {
  test('memory calls', async () => {
    const learned = await alma.learn({ agent: 'helena', task: 'Test the login form', outcome: 'success',
      strategyUsed: 'incremental validation', taskType: 'testing_strategies', durationMs: 1200 });
    assert.equal(learned.type, 'outcome');
    assert.equal(learned.strategy_used, 'incremental validation');
    const many = await alma.learnMany([1, 2].map((i) => ({ agent: 'victor', task: `orders API ${i}`, outcome: true,
      taskType: 'api_patterns' })));
    assert.equal(many.count, 2);
    const anti = await alma.addAntiPattern({ agent: 'helena', pattern: 'sleep(5000)', whyBad: 'flaky',
      betterAlternative: 'wait for the element', taskType: 'testing_strategies' });
    assert.equal(anti.why_bad, 'flaky');
    assert.equal((await alma.get(anti.id)).id, anti.id);
    assert.equal((await alma.listMemories({ agent: 'victor', type: ['outcome'] })).length, 2);
    assert.equal((await alma.delete(anti.id)).id, anti.id);
    await assert.rejects(alma.get(anti.id), NotFound);

    const dry = await alma.forget({ agent: 'victor', olderThanDays: 0, dryRun: true });
    assert.equal(dry.count, 2);
    assert.equal(dry.dry_run, true);
    assert.equal((await alma.consolidate({ agent: 'helena', memoryType: 'knowledge', dryRun: true })).dry_run, true);
    assert.equal((await alma.health()).status, 'ok');

    await alma.addPreference({ userId: 'user-gdpr', preference: 'Dark mode' });
    const jsonl = await alma.exportMemories();
    assert.ok(jsonl.split('\n').some((line) => line.includes('user-gdpr')));
    assert.equal((await alma.deleteUser('user-gdpr')).deleted, 1);
    const line = jsonl.split('\n').find((l) => l.includes('user-gdpr'));
    assert.deepEqual(await alma.importMemories(line), { imported: 1 });
  });

  test('workflow calls (v0.6.0)', async () => {
    const first = await alma.checkpoint({ workflowId: 'wf-ts', state: { step: 1, findings: ['a'] }, agent: 'helena' });
    assert.equal(first.sequence, 1);
    await alma.checkpoint({ workflowId: 'wf-ts', state: { step: 2, findings: ['b'] }, parentId: first.id });
    assert.deepEqual(await alma.resume({ workflowId: 'wf-ts' }), { step: 2, findings: ['b'] });
    assert.deepEqual(await alma.resume({ workflowId: 'wf-ts', checkpointId: first.id }), { step: 1, findings: ['a'] });
    assert.equal((await alma.getCheckpoint({ workflowId: 'wf-ts', checkpointId: first.id })).agent, 'helena');
    assert.deepEqual((await alma.listCheckpoints({ workflowId: 'wf-ts' })).map((c) => c.sequence), [2, 1]);
    assert.deepEqual((await alma.listCheckpoints({ workflowId: 'wf-ts', before: 2 })).map((c) => c.sequence), [1]);

    const merged = await alma.mergeStates({ workflowId: 'wf-ts', states: [{ findings: ['a'] }, { findings: ['b'] }],
      agents: ['helena', 'victor'], reducer: 'merge_lists' });
    assert.deepEqual(merged.metadata?.reducer, 'merge_lists');
    assert.deepEqual(await alma.resume({ workflowId: 'wf-ts' }), { findings: ['a', 'b'] });

    const out = await alma.workflowLearn({ agent: 'helena', workflowId: 'wf-ts', task: 'Test checkout',
      outcome: 'failure', taskType: 'testing_strategies', checkpointId: first.id });
    assert.equal(out.workflow_id, 'wf-ts');
    const scoped = await alma.retrieveScoped({ query: 'checkout', scope: 'workflow_only', workflowId: 'wf-ts' });
    assert.deepEqual(scoped.memories.outcome?.map((m) => m.id), [out.id]);

    await alma.linkArtifact({ workflowId: 'wf-ts', artifactType: 'test', ref: 'tests/login.spec.ts' });
    await alma.linkArtifact({ workflowId: 'wf-ts', artifactType: 'code', ref: 'src/login.ts' });
    assert.deepEqual((await alma.getArtifacts({ workflowId: 'wf-ts' })).map((a) => a.ref),
      ['src/login.ts', 'tests/login.spec.ts']);
    assert.equal((await alma.getArtifacts({ workflowId: 'wf-ts', artifactType: 'test' })).length, 1);
    assert.equal((await alma.cleanupCheckpoints({ olderThanDays: 0, keepLatest: 1, workflowId: 'wf-ts' })).deleted, 2);
  });

  test('sessions and progress', async () => {
    const s = await alma.startSession({ agent: 'helena', goal: 'login tests' });
    assert.equal(s.previous_handoff, null);
    const h = await alma.createHandoff({ agent: 'helena', sessionId: s.session_id, lastAction: 'wrote tests',
      lastOutcome: 'ok', nextSteps: ['run them'] });
    assert.equal((await alma.endSession({ agent: 'helena', sessionId: s.session_id, summary: 'done' })).status, 'ended');
    assert.equal((await alma.getSession({ agent: 'helena', sessionId: s.session_id })).summary, 'done');
    assert.equal((await alma.startSession({ agent: 'helena' })).previous_handoff?.id, h.id);
    assert.equal((await alma.listSessions({ agent: 'helena' })).length, 2);
    assert.equal((await alma.listHandoffs({ agent: 'helena' }))[0].id, h.id);
    assert.equal((await alma.getLatestHandoff({ agent: 'helena' }))?.id, h.id);

    const base = await alma.createWorkItem({ title: 'schema', priority: 10 });
    const top = await alma.createWorkItem({ title: 'api', priority: 90, dependencies: [base.id] });
    assert.equal((await alma.getNextItem())?.id, base.id);
    await alma.updateStatus(base.id, 'in_progress');
    await alma.updateStatus(base.id, 'done');
    assert.equal((await alma.getNextItem({ strategy: 'unblock' }))?.id, top.id);
    assert.equal((await alma.getWorkItem(top.id)).title, 'api');
    assert.deepEqual((await alma.listWorkItems({ status: 'done' })).map((i) => i.id), [base.id]);
    assert.equal((await alma.getProgressSummary()).percent_done, 50);
    await assert.rejects(alma.updateStatus(base.id, 'pending'), InvalidTransition);
  });

  test('errors are typed and carry the problem document', async () => {
    const scope = await alma.learn({ agent: 'helena', task: 'x', outcome: 'success', taskType: 'backend_logic' })
      .catch((e) => e);
    assert.ok(scope instanceof ScopeViolation && scope instanceof AlmaError, String(scope));
    assert.equal(scope.status, 403);
    assert.equal(scope.problem.type, 'urn:alma:error:ScopeViolation');
    await assert.rejects(alma.learn({ agent: 'nobody', task: 'x', outcome: 'success' }), UnknownAgent);
    await assert.rejects(alma.retrieve({ query: 'x', agent: 'helena', topK: 0 }), ValidationError);
    await assert.rejects(alma.resume({ workflowId: 'no-such-workflow' }), NotFound);
    const anonymous = new ALMA({ baseUrl: server.url, projectId: 'my-project' });
    await assert.rejects(anonymous.stats(), Unauthorized);
    const elsewhere = new ALMA({ baseUrl: server.url, projectId: 'other-project', token: server.token });
    await assert.rejects(elsewhere.learn({ agent: 'helena', task: 'x', outcome: 'success' }), Forbidden);
    const other = new ALMA({ baseUrl: server.url, projectId: 'other-project', token: OTHER_TOKEN });
    assert.equal((await other.stats()).total, 0);
  });

  test('an unreachable server is a ConnectionError', async () => {
    const down = new ALMA({ baseUrl: 'http://127.0.0.1:1', projectId: 'p', token: 't', maxRetries: 0 });
    await assert.rejects(down.stats(), ConnectionError);
  });
});

describe('retries and cancellation', () => {
  /** A stub server answering `statuses` in turn (then 200 with {"total": 7}); counts requests. */
  async function stub(statuses, headers = {}) {
    const seen = [];
    const srv = createServer((req, res) => {
      seen.push(req.url);
      const status = statuses[seen.length - 1] ?? 200;
      if (status === 200) {
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"total": 7}');
      } else {
        res.writeHead(status, { 'content-type': 'application/problem+json', ...headers })
          .end(JSON.stringify({ type: 'urn:alma:error:StorageError', title: 'Storage error', status,
            error: 'StorageError', detail: 'database is locked' }));
      }
    });
    await new Promise((r) => srv.listen(0, '127.0.0.1', r));
    const client = (opts = {}) => new ALMA({ baseUrl: `http://127.0.0.1:${srv.address().port}`, projectId: 'p',
      token: 't', retryBaseMs: 5, ...opts });
    return { seen, client, close: () => new Promise((r) => srv.close(r)) };
  }

  test('503 and 429 are retried with backoff, then succeed', async () => {
    const s = await stub([503, 429, 503], { 'retry-after': '0' });
    try {
      assert.deepEqual(await s.client().stats(), { total: 7 });
      assert.equal(s.seen.length, 4);
    } finally {
      await s.close();
    }
  });

  test('after maxRetries the error is thrown, typed', async () => {
    const s = await stub([503, 503, 503, 503]);
    try {
      const err = await s.client({ maxRetries: 2 }).stats().catch((e) => e);
      assert.ok(err instanceof StorageError);
      assert.equal(err.detail, 'database is locked');
      assert.equal(s.seen.length, 3);
    } finally {
      await s.close();
    }
  });

  test('an AbortSignal cancels a call, even while it waits to retry', async () => {
    const s = await stub(Array(10).fill(503));
    try {
      const aborted = AbortSignal.abort();
      await assert.rejects(s.client().stats({}, { signal: aborted }), { name: 'AbortError' });
      const controller = new AbortController();
      const started = Date.now();
      const pending = s.client({ retryBaseMs: 60_000 }).stats({}, { signal: controller.signal });
      setTimeout(() => controller.abort(), 50);
      await assert.rejects(pending, { name: 'AbortError' });
      assert.ok(Date.now() - started < 30_000); // not the 60 s retry wait: a loaded machine is no hang
    } finally {
      await s.close();
    }
  });
});

describe('drift from the OpenAPI document', () => {
  test('src/wire.ts is what the server documents today (`npm run gen` rewrites it)', async () => {
    const doc = await (await fetch(`${server.url}/openapi.json`)).json();
    const committed = await readFile(join(PKG, 'src', 'wire.ts'), 'utf8');
    assert.equal(generate(doc), committed, 'the server\'s schemas changed: run `npm run gen` in sdk/typescript');
  });

  test('every route the client calls exists with its method', async () => {
    const doc = await (await fetch(`${server.url}/openapi.json`)).json();
    for (const [name, [method, path]] of Object.entries(ROUTES)) {
      const item = doc.paths[`/v1/projects/{project_id}${path}`];
      assert.ok(item?.[method.toLowerCase()], `${name}: ${method} ${path} is not in /openapi.json`);
    }
  });
});
