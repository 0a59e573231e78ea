// Starts a real `alma serve` on a loopback port it picks itself (`--port 0`) for the tests (and for `npm run gen`).
// The `alma` executable is $ALMA_BIN (the Makefile passes the venv's), else ../../.venv/bin/alma.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
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

/**
 * `alma serve` on a fresh store with mock embeddings. Resolves once /v1/health answers.
 * @param {{projectId?: string, token?: string, agents?: string, extraArgs?: string[]}} options
 */
export async function startServer({ projectId = 'sdk-test', token = 'sdk-test-token-0123456789', agents = '',
  extraArgs = [] } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'alma-sdk-'));
  const config = join(dir, 'config.yaml');
  await writeFile(config, `alma:\n  project_id: ${projectId}\n  storage_dir: ${dir}\n  embedding_provider: mock\n${agents}`);
  const env = { ...process.env, PYTHONUNBUFFERED: '1' };
  delete env.ALMA_TOKEN;
  // `--port 0`: the server binds a free port itself and names it on its start-up line, so no other
  // process can take the port in between (no free-port guess, no retry on another port).
  const child = spawn(ALMA_BIN, ['serve', '--config', config, '--port', '0', '--token', token, ...extraArgs], {
    env, stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`alma serve did not start within 120 s: ${log.slice(-2000)}`)), 120_000);
    child.stderr.on('data', (chunk) => {
      log += chunk;
      const found = /alma serve: serving (http:\/\/\S+)/.exec(log);
      if (found) { clearTimeout(timer); resolve(found[1]); }
    });
    child.on('close', () => { clearTimeout(timer); reject(new Error(`alma serve (${ALMA_BIN}) did not start: ${log.slice(-2000)}`)); });
  }).catch((error) => { child.kill('SIGKILL'); throw error; });
  // The socket listens from that line on: this request waits in its backlog until the server accepts.
  const health = await fetch(`${url}/v1/health`, { signal: AbortSignal.timeout(120_000) }).catch((error) => error);
  if (!(health instanceof Response) || !health.ok) {
    child.kill('SIGKILL');
    throw new Error(`alma serve did not answer /v1/health (${health}): ${log.slice(-2000)}`);
  }
  const port = Number(new URL(url).port);
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
