// ALMA's TypeScript client: the v0.6.0 SDK's calls over `alma serve`'s HTTP API (docs/http.md).
//
//   const alma = new ALMA({ baseUrl: 'http://localhost:8765', projectId: 'my-project' });
//   const memories = await alma.retrieve({ query: 'authentication flow', agent: 'dev-agent', topK: 5 });
//   await alma.learn({ agent: 'dev-agent', task: 'Implement OAuth', outcome: 'success', strategyUsed: '...' });
//
// Parameters are the server's body fields in camelCase (topK -> top_k); results are the server's JSON as is.
// Every parameter and result type comes from src/wire.ts, generated from the server's OpenAPI document.
import { AlmaError, ConnectionError, errorFor } from './errors.js';
import type * as W from './wire.js';

export * from './errors.js';
export type * from './wire.js';

type Camel<S extends string> = S extends `${infer H}_${infer T}` ? `${H}${Capitalize<Camel<T>>}` : S;
/** A wire body with camelCase keys: what the client's methods take. */
export type Params<T> = { [K in keyof T as Camel<K & string>]: T[K] };

export type RetrieveParams = Omit<Params<W.RetrieveArgs>, 'task'> &
  ({ query: string; task?: never } | { task: string; query?: never });
export type MemoryTypeName = W.MemoryOut['type'];
export type Reducer = 'latest_wins' | 'merge_lists' | 'priority_agent';

export interface ALMAOptions {
  /** Where `alma serve` listens, e.g. http://localhost:8765 */
  baseUrl: string;
  /** The project to use; the token must be this project's. */
  projectId: string;
  /** Bearer token (default: the ALMA_TOKEN environment variable, under Node). */
  token?: string;
  /** Retries on 429 and 503, with exponential backoff and jitter (default 3). */
  maxRetries?: number;
  /** First backoff delay in ms, doubled each retry (default 250); a Retry-After header wins. */
  retryBaseMs?: number;
  /** Per-request timeout in ms, retries included (default 30000; 0 for none). */
  timeoutMs?: number;
  /** A fetch implementation (default: the global one). */
  fetch?: typeof fetch;
}

/** Per-call options. */
export interface CallOptions {
  /** Cancels the call (and any retry wait): the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

type Query = Record<string, string | number | boolean | null | undefined | Array<string>>;

/** Every route the client calls, checked against the server's OpenAPI document by the tests. */
export const ROUTES = {
  retrieve: ['POST', '/retrieve'],
  learn: ['POST', '/learn'],
  learnMany: ['POST', '/learn_many'],
  addPreference: ['POST', '/preferences'],
  addKnowledge: ['POST', '/knowledge'],
  addAntiPattern: ['POST', '/anti_patterns'],
  listMemories: ['GET', '/memories'],
  get: ['GET', '/memories/{memory_id}'],
  delete: ['DELETE', '/memories/{memory_id}'],
  forget: ['POST', '/forget'],
  consolidate: ['POST', '/consolidate'],
  stats: ['GET', '/stats'],
  health: ['GET', '/health'],
  exportMemories: ['GET', '/export'],
  importMemories: ['POST', '/import'],
  deleteUser: ['DELETE', '/users/{user_id}'],
  checkpoint: ['POST', '/checkpoints'],
  listCheckpoints: ['GET', '/workflows/{workflow_id}/checkpoints'],
  getCheckpoint: ['GET', '/workflows/{workflow_id}/checkpoint'],
  resume: ['GET', '/workflows/{workflow_id}/resume'],
  mergeStates: ['POST', '/merge_states'],
  workflowLearn: ['POST', '/workflow_learn'],
  linkArtifact: ['POST', '/artifacts'],
  getArtifacts: ['GET', '/workflows/{workflow_id}/artifacts'],
  cleanupCheckpoints: ['POST', '/checkpoints/cleanup'],
  retrieveScoped: ['POST', '/retrieve_scoped'],
  startSession: ['POST', '/sessions'],
  listSessions: ['GET', '/sessions'],
  getSession: ['GET', '/sessions/{agent}/{session_id}'],
  endSession: ['POST', '/sessions/{agent}/{session_id}/end'],
  createHandoff: ['POST', '/sessions/{agent}/{session_id}/handoff'],
  listHandoffs: ['GET', '/handoffs'],
  getLatestHandoff: ['GET', '/handoffs/latest'],
  createWorkItem: ['POST', '/work_items'],
  listWorkItems: ['GET', '/work_items'],
  getNextItem: ['GET', '/work_items/next'],
  getWorkItem: ['GET', '/work_items/{item_id}'],
  updateStatus: ['POST', '/work_items/{item_id}/status'],
  getProgressSummary: ['GET', '/progress'],
} as const satisfies Record<string, readonly ['GET' | 'POST' | 'DELETE', string]>;
type Route = keyof typeof ROUTES;

const snake = (key: string): string => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** The wire body of camelCase params: top-level keys renamed, values (metadata, state) untouched. */
function toWire<T>(params: Params<T> | object): T {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined) out[snake(key)] = value;
  }
  return out as T;
}

function envToken(): string | undefined {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return proc?.env?.ALMA_TOKEN || undefined;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The ALMA client: one project of one `alma serve`. */
export class ALMA {
  readonly baseUrl: string;
  readonly projectId: string;
  readonly maxRetries: number;
  readonly retryBaseMs: number;
  readonly timeoutMs: number;
  readonly #token?: string;
  readonly #fetch: typeof fetch;

  constructor(options: ALMAOptions) {
    if (!options?.baseUrl || !options.projectId) throw new TypeError('new ALMA({ baseUrl, projectId }) needs both');
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.projectId = options.projectId;
    this.#token = options.token ?? envToken();
    this.maxRetries = options.maxRetries ?? 3;
    this.retryBaseMs = options.retryBaseMs ?? 250;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  // ---- memory (the seed's calls) ---------------------------------------------------------------------

  /** Before a task: the agent's most relevant memories per type, and `prompt`, a block for your prompt. */
  retrieve(params: RetrieveParams, options?: CallOptions): Promise<W.RetrieveResult> {
    const { query, task, ...rest } = params;
    return this.#call('retrieve', { body: toWire<W.RetrieveArgs>({ task: task ?? query, ...rest }), ...options });
  }

  /** After a task: record its outcome; repeated wins become heuristics, repeated failures anti-patterns. */
  learn(params: Params<W.LearnArgs>, options?: CallOptions): Promise<W.MemoryOut> {
    return this.#call('learn', { body: toWire<W.LearnArgs>(params), ...options });
  }

  /** Many outcomes in one transaction: all stored or none. */
  learnMany(items: Array<Params<W.LearnArgs>>, options?: CallOptions): Promise<W.LearnManyResult> {
    const body: W.LearnManyArgs = { items: items.map((item) => toWire<W.LearnArgs>(item)) };
    return this.#call('learnMany', { body, ...options });
  }

  /** Remember what a user wants (project-wide unless `agent` is given). */
  addPreference(params: Params<W.AddPreferenceArgs>, options?: CallOptions): Promise<W.MemoryOut> {
    return this.#call('addPreference', { body: toWire<W.AddPreferenceArgs>(params), ...options });
  }

  /** Remember a fact of a domain for an agent (the domain is scope-checked). */
  addKnowledge(params: Params<W.AddKnowledgeArgs>, options?: CallOptions): Promise<W.MemoryOut> {
    return this.#call('addKnowledge', { body: toWire<W.AddKnowledgeArgs>(params), ...options });
  }

  /** Record what not to do, why, and what to do instead. */
  addAntiPattern(params: Params<W.AddAntiPatternArgs>, options?: CallOptions): Promise<W.MemoryOut> {
    return this.#call('addAntiPattern', { body: toWire<W.AddAntiPatternArgs>(params), ...options });
  }

  /** Memories of the project (or one agent, or some types), newest first. */
  async listMemories(
    params: { agent?: string; type?: MemoryTypeName[]; limit?: number } = {},
    options?: CallOptions,
  ): Promise<W.MemoryOut[]> {
    return (await this.#call<W.MemoryList>('listMemories', { query: params, ...options })).memories;
  }

  /** One memory by id (`NotFound` otherwise). */
  get(memoryId: string, options?: CallOptions): Promise<W.MemoryOut> {
    return this.#call('get', { path: { memory_id: memoryId }, ...options });
  }

  /** Delete one memory; resolves to it. */
  delete(memoryId: string, options?: CallOptions): Promise<W.MemoryOut> {
    return this.#call('delete', { path: { memory_id: memoryId }, ...options });
  }

  /** Delete memories matching every criterion given; `dryRun` first. */
  forget(params: Params<W.ForgetArgs>, options?: CallOptions): Promise<W.ForgetResult> {
    return this.#call('forget', { body: toWire<W.ForgetArgs>(params), ...options });
  }

  /** Merge an agent's near-duplicate heuristics, facts or anti-patterns. */
  consolidate(params: Params<W.ConsolidateArgs>, options?: CallOptions): Promise<Record<string, unknown>> {
    return this.#call('consolidate', { body: toWire<W.ConsolidateArgs>(params), ...options });
  }

  /** Counts per type and per agent. */
  stats(params: { agent?: string } = {}, options?: CallOptions): Promise<Record<string, unknown>> {
    return this.#call('stats', { query: params, ...options });
  }

  /** Whether the project's store answers, and which store and embedder it uses. */
  health(options?: CallOptions): Promise<Record<string, unknown>> {
    return this.#call('health', { ...options });
  }

  /** Every memory of the project as JSON lines. */
  exportMemories(params: { withEmbeddings?: boolean } = {}, options?: CallOptions): Promise<string> {
    return this.#call('exportMemories', { query: { with_embeddings: params.withEmbeddings }, text: true, ...options });
  }

  /** Load JSON lines (an export) into the project: all lines or none. */
  importMemories(jsonl: string, options?: CallOptions): Promise<W.Imported> {
    return this.#call('importMemories', { raw: jsonl, ...options });
  }

  /** Delete everything about one user (GDPR); resolves to how many items went. */
  deleteUser(userId: string, options?: CallOptions): Promise<W.Count> {
    return this.#call('deleteUser', { path: { user_id: userId }, ...options });
  }

  // ---- workflows (the v0.6.0 calls) -----------------------------------------------------------------

  /** Save a workflow's state as its newest checkpoint. */
  checkpoint(params: Params<W.CheckpointArgs>, options?: CallOptions): Promise<W.Checkpoint> {
    return this.#call('checkpoint', { body: toWire<W.CheckpointArgs>(params), ...options });
  }

  /** The state of the latest (or named) checkpoint (`NotFound` when there is none). */
  async resume(params: { workflowId: string; checkpointId?: string }, options?: CallOptions): Promise<unknown> {
    const path = { workflow_id: params.workflowId };
    const query = { checkpoint_id: params.checkpointId };
    return (await this.#call<W.ResumeResult>('resume', { path, query, ...options })).state;
  }

  /** One checkpoint with its state: the named one, or the latest. */
  getCheckpoint(params: { workflowId: string; checkpointId?: string }, options?: CallOptions): Promise<W.Checkpoint> {
    const path = { workflow_id: params.workflowId };
    return this.#call('getCheckpoint', { path, query: { checkpoint_id: params.checkpointId }, ...options });
  }

  /** Checkpoints newest first, without states; `before` is a sequence number or a checkpoint id. */
  async listCheckpoints(
    params: { workflowId: string; limit?: number; before?: number | string },
    options?: CallOptions,
  ): Promise<W.Checkpoint[]> {
    const query = { limit: params.limit, before: params.before === undefined ? undefined : String(params.before) };
    const path = { workflow_id: params.workflowId };
    return (await this.#call<W.CheckpointList>('listCheckpoints', { path, query, ...options })).checkpoints;
  }

  /** Merge parallel agents' states with a reducer and checkpoint the result. */
  mergeStates(params: Params<W.MergeStatesArgs>, options?: CallOptions): Promise<W.Checkpoint> {
    return this.#call('mergeStates', { body: toWire<W.MergeStatesArgs>(params), ...options });
  }

  /** `learn`, recording the workflow (and checkpoint) the outcome came from. */
  workflowLearn(params: Params<W.WorkflowLearnArgs>, options?: CallOptions): Promise<W.MemoryOut> {
    return this.#call('workflowLearn', { body: toWire<W.WorkflowLearnArgs>(params), ...options });
  }

  /** Record that a workflow produced an artifact (code, test, document, config, deployment). */
  linkArtifact(params: Params<W.LinkArtifactArgs>, options?: CallOptions): Promise<W.Artifact> {
    return this.#call('linkArtifact', { body: toWire<W.LinkArtifactArgs>(params), ...options });
  }

  /** The workflow's artifacts, newest first (of one type if given). */
  async getArtifacts(
    params: { workflowId: string; artifactType?: W.ArtifactType },
    options?: CallOptions,
  ): Promise<W.Artifact[]> {
    const path = { workflow_id: params.workflowId };
    const query = { artifact_type: params.artifactType };
    return (await this.#call<W.ArtifactList>('getArtifacts', { path, query, ...options })).artifacts;
  }

  /** Delete old checkpoints, keeping each workflow's `keepLatest` newest. */
  cleanupCheckpoints(params: Params<W.CleanupArgs> = {}, options?: CallOptions): Promise<W.Count> {
    return this.#call('cleanupCheckpoints', { body: toWire<W.CleanupArgs>(params), ...options });
  }

  /** Retrieve within one workflow, one agent or the whole project. */
  retrieveScoped(params: Params<W.RetrieveScopedArgs>, options?: CallOptions): Promise<W.RetrieveResult> {
    return this.#call('retrieveScoped', { body: toWire<W.RetrieveScopedArgs>(params), ...options });
  }

  // ---- sessions and handoffs ------------------------------------------------------------------------

  /** Open a session; `previous_handoff` is what the agent's last session left. */
  startSession(params: Params<W.StartSessionArgs>, options?: CallOptions): Promise<W.SessionStarted> {
    return this.#call('startSession', { body: toWire<W.StartSessionArgs>(params), ...options });
  }

  getSession(params: { agent: string; sessionId: string }, options?: CallOptions): Promise<W.SessionInfo> {
    return this.#call('getSession', { path: { agent: params.agent, session_id: params.sessionId }, ...options });
  }

  async listSessions(params: { agent: string; limit?: number }, options?: CallOptions): Promise<W.SessionInfo[]> {
    return (await this.#call<W.SessionList>('listSessions', { query: params, ...options })).sessions;
  }

  endSession(params: { agent: string; sessionId: string; summary?: string }, options?: CallOptions): Promise<W.SessionInfo> {
    const path = { agent: params.agent, session_id: params.sessionId };
    return this.#call('endSession', { path, body: { summary: params.summary }, ...options });
  }

  createHandoff(
    params: { agent: string; sessionId: string } & Params<W.HandoffArgs>,
    options?: CallOptions,
  ): Promise<W.Handoff> {
    const { agent, sessionId, ...rest } = params;
    const path = { agent, session_id: sessionId };
    return this.#call('createHandoff', { path, body: toWire<W.HandoffArgs>(rest), ...options });
  }

  async listHandoffs(params: { agent: string; limit?: number }, options?: CallOptions): Promise<W.Handoff[]> {
    return (await this.#call<W.HandoffList>('listHandoffs', { query: params, ...options })).handoffs;
  }

  getLatestHandoff(params: { agent: string }, options?: CallOptions): Promise<W.Handoff | null> {
    return this.#call('getLatestHandoff', { query: params, ...options });
  }

  // ---- progress -------------------------------------------------------------------------------------

  createWorkItem(params: Params<W.WorkItemArgs>, options?: CallOptions): Promise<W.WorkItem> {
    return this.#call('createWorkItem', { body: toWire<W.WorkItemArgs>(params), ...options });
  }

  getWorkItem(itemId: string, options?: CallOptions): Promise<W.WorkItem> {
    return this.#call('getWorkItem', { path: { item_id: itemId }, ...options });
  }

  async listWorkItems(
    params: { status?: W.WorkStatus; agent?: string } = {},
    options?: CallOptions,
  ): Promise<W.WorkItem[]> {
    return (await this.#call<W.WorkItemList>('listWorkItems', { query: params, ...options })).items;
  }

  /** The ready item to start next, or null. */
  getNextItem(
    params: { strategy?: 'priority' | 'quick_win' | 'unblock'; agent?: string } = {},
    options?: CallOptions,
  ): Promise<W.WorkItem | null> {
    return this.#call('getNextItem', { query: params, ...options });
  }

  updateStatus(itemId: string, status: W.WorkStatus, options?: CallOptions): Promise<W.WorkItem> {
    const body: W.StatusArgs = { status };
    return this.#call('updateStatus', { path: { item_id: itemId }, body, ...options });
  }

  getProgressSummary(options?: CallOptions): Promise<W.ProgressSummary> {
    return this.#call('getProgressSummary', { ...options });
  }

  // ---- plumbing -------------------------------------------------------------------------------------

  #url(route: Route, path: Record<string, string> = {}, query: Query = {}): string {
    const template = ROUTES[route][1];
    const rel = template.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(path[name] ?? ''));
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value === undefined || value === null) continue;
      for (const item of Array.isArray(value) ? value : [value]) search.append(key, String(item));
    }
    const qs = search.toString();
    return `${this.baseUrl}/v1/projects/${encodeURIComponent(this.projectId)}${rel}${qs ? `?${qs}` : ''}`;
  }

  async #call<T>(
    route: Route,
    req: { path?: Record<string, string>; query?: Query; body?: unknown; raw?: string; text?: boolean } & CallOptions,
  ): Promise<T> {
    const method = ROUTES[route][0];
    const headers: Record<string, string> = { accept: 'application/json, application/problem+json' };
    if (this.#token) headers.authorization = `Bearer ${this.#token}`;
    let body: string | undefined;
    if (req.raw !== undefined) {
      headers['content-type'] = 'application/x-ndjson';
      body = req.raw;
    } else if (req.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(req.body);
    }
    const signals = [req.signal, this.timeoutMs > 0 ? AbortSignal.timeout(this.timeoutMs) : undefined];
    const present = signals.filter((s): s is AbortSignal => s !== undefined);
    const signal = present.length > 1 ? AbortSignal.any(present) : present[0];
    const url = this.#url(route, req.path, req.query);
    for (let attempt = 0; ; attempt++) {
      let response: Response;
      try {
        response = await this.#fetch(url, { method, headers, body, signal });
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        throw new ConnectionError(0, 'ConnectionError', `cannot reach ${this.baseUrl}: ${String((err as Error)?.cause ?? err)}`);
      }
      if ((response.status === 429 || response.status === 503) && attempt < this.maxRetries) {
        await response.body?.cancel();
        await sleep(this.#backoff(attempt, response.headers.get('retry-after')), signal);
        continue;
      }
      if (!response.ok) throw await this.#error(response);
      if (req.text) return (await response.text()) as T;
      return (await response.json()) as T;
    }
  }

  #backoff(attempt: number, retryAfter: string | null): number {
    const seconds = retryAfter === null ? NaN : Number(retryAfter);
    if (Number.isFinite(seconds) && seconds >= 0) return Math.min(seconds * 1000, 60_000);
    const base = this.retryBaseMs * 2 ** attempt;
    return base / 2 + Math.random() * (base / 2); // "equal jitter": never a thundering herd, never zero
  }

  async #error(response: Response): Promise<AlmaError> {
    const text = await response.text();
    let problem: Partial<W.Problem> | undefined;
    try {
      const parsed: unknown = JSON.parse(text);
      if (parsed && typeof parsed === 'object' && 'error' in parsed) problem = parsed as W.Problem;
    } catch {
      /* not JSON: a proxy's page, say */
    }
    return errorFor(response.status, problem, text.slice(0, 300) || response.statusText);
  }
}

export default ALMA;
