// Starts a real `alma serve` on a free loopback port for the tests (and for `npm run gen`).
// The `alma` executable is $ALMA_BIN (the Makefile passes the venv's), else ../../.venv/bin/alma.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
export const ALMA_BIN = process.env.ALMA_BIN || join(ROOT, '.venv', 'bin', 'alma');

export const AGENTS = `
  agents:
    helena:
      can_learn: [testing_strategies, selector_patterns]
      cannot_learn: [backend_logic]
    victor:
      can_learn: [api_patterns]
`;

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * `alma serve` on a fresh store with mock embeddings. Resolves once /v1/health answers.
 * @param {{projectId?: string, token?: string, agents?: string, extraArgs?: string[]}} options
 */
export async function startServer({ projectId = 'sdk-test', token = 'sdk-test-token-0123456789', agents = '',
  extraArgs = [] } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'alma-sdk-'));
  const config = join(dir, 'config.yaml');
  await writeFile(config, `alma:\n  project_id: ${projectId}\n  storage_dir: ${dir}\n  embedding_provider: mock\n${agents}`);
  const port = await freePort();
  const env = { ...process.env, PYTHONUNBUFFERED: '1' };
  delete env.ALMA_TOKEN;
  const child = spawn(ALMA_BIN, ['serve', '--config', config, '--port', String(port), '--token', token, ...extraArgs], {
    env, stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (chunk) => { log += chunk; });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      if ((await fetch(`${url}/v1/health`)).ok) break;
    } catch { /* not listening yet */ }
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`alma serve (${ALMA_BIN}) did not start: ${log.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url, port, token, projectId, dir,
    async stop() {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
