// Generated from the server's /openapi.json by scripts/gen-wire.mjs: do not edit; `npm run gen` rewrites it.
/* eslint-disable */

export interface AddAntiPatternArgs {
  /** Free-form JSON object kept with the item (<= 65536 bytes). */
  metadata?: Record<string, unknown> | null;
  /** Agent name as configured in .alma/config.yaml. */
  agent: string;
  /** What not to do. */
  pattern: string;
  /** Why it fails. */
  why_bad?: string;
  /** What to do instead. */
  better_alternative?: string;
  /** Category (must be in the agent's can_learn). */
  task_type?: string | null;
  /** How sure, 0..1. */
  confidence?: number;
}

export interface AddKnowledgeArgs {
  /** Free-form JSON object kept with the item (<= 65536 bytes). */
  metadata?: Record<string, unknown> | null;
  /** Agent name as configured in .alma/config.yaml. */
  agent: string;
  /** Domain of the fact (scope-checked). */
  domain: string;
  /** The fact, in one or two sentences. */
  fact: string;
  /** Where the fact comes from (URL, file, person). */
  source?: string;
  /** How sure, 0..1. */
  confidence?: number;
}

export interface AddPreferenceArgs {
  /** Free-form JSON object kept with the item (<= 65536 bytes). */
  metadata?: Record<string, unknown> | null;
  /** The user this preference belongs to. */
  user_id: string;
  /** What the user wants, in one sentence. */
  preference: string;
  /** e.g. code_style, tools. */
  category?: string;
  /** Where it came from (explicit, inferred). */
  source?: string;
  /** Owner; omit for project-wide. */
  agent?: string | null;
}

/** Something a workflow produced (code, a test, a document, config, a deployment), by reference. */
export interface Artifact {
  id: string;
  workflow_id: string;
  artifact_type: ArtifactType;
  ref: string;
  created_at: string;
  metadata?: Record<string, unknown>;
}

export interface ArtifactList {
  workflow_id: string;
  count: number;
  artifacts: Artifact[];
}

/** What an artifact linked to a workflow is. */
export type ArtifactType = "code" | "test" | "document" | "config" | "deployment";

/** One saved state of a workflow. `sequence` is strict and increasing per workflow, across */
export interface Checkpoint {
  id: string;
  workflow_id: string;
  sequence: number;
  created_at: string;
  agent?: string | null;
  parent_id?: string | null;
  metadata?: Record<string, unknown>;
  state?: Record<string, unknown>;
  size_bytes?: number | null;
}

export interface CheckpointArgs {
  /** Free-form JSON object kept with the item (<= 65536 bytes). */
  metadata?: Record<string, unknown> | null;
  /** Id of the workflow (any stable string you choose). */
  workflow_id: string;
  /** The workflow state to save, a JSON object (<= 1048576 bytes). */
  state: Record<string, unknown>;
  /** Agent that produced this state. */
  agent?: string | null;
  /** Checkpoint this one follows from. */
  parent_id?: string | null;
}

export interface CheckpointList {
  checkpoints: Checkpoint[];
}

export interface CleanupArgs {
  /** Delete checkpoints older than this. */
  older_than_days?: number;
  /** Always keep this many newest per workflow. */
  keep_latest?: number;
  /** Only this workflow; omit for all. */
  workflow_id?: string | null;
}

export interface ConsolidateArgs {
  /** Agent name as configured in .alma/config.yaml. */
  agent: string;
  /** Which memories to merge. */
  memory_type?: "heuristic" | "knowledge" | "anti_pattern";
  /** Cosine above which memories merge. */
  similarity_threshold?: number;
  /** Only report the groups that would merge. */
  dry_run?: boolean;
}

export interface Count {
  deleted: number;
}

export interface EndSessionArgs {
  /** How it went. */
  summary?: string | null;
}

export interface ForgetArgs {
  /** Only this agent's memories. */
  agent?: string | null;
  /** Created more than N days ago. */
  older_than_days?: number | null;
  /** Confidence below this. */
  below_confidence?: number | null;
  /** Keep each agent's newest N per type. */
  max_per_agent?: number | null;
  /** Only report what would be forgotten. */
  dry_run?: boolean;
  /** Types to consider (preferences only when named). */
  memory_types?: Array<"outcome" | "heuristic" | "anti_pattern" | "preference" | "knowledge"> | null;
}

export interface ForgetResult {
  count: number;
  dry_run: boolean;
  ids: string[];
}

/** What an agent leaves for its next session. */
export interface Handoff {
  id: string;
  agent: string;
  session_id: string;
  last_action: string;
  last_outcome: string;
  next_steps?: string[];
  blockers?: string[];
  decisions?: string[];
  notes?: string;
  created_at: string;
  metadata?: Record<string, unknown>;
}

export interface HandoffArgs {
  /** Free-form JSON object kept with the item (<= 65536 bytes). */
  metadata?: Record<string, unknown> | null;
  /** What the agent did last. */
  last_action: string;
  /** How that went. */
  last_outcome: string;
  /** Short items, one each. */
  next_steps?: string[] | null;
  /** Short items, one each. */
  blockers?: string[] | null;
  /** Short items, one each. */
  decisions?: string[] | null;
  notes?: string;
}

export interface HandoffList {
  handoffs: Handoff[];
}

export interface Imported {
  imported: number;
}

export interface LearnArgs {
  /** Free-form JSON object kept with the item (<= 65536 bytes). */
  metadata?: Record<string, unknown> | null;
  /** Agent name as configured in .alma/config.yaml. */
  agent: string;
  /** The task that was attempted. */
  task: string;
  /** 'success' or 'failure' (or true / false). */
  outcome: "success" | "failure" | boolean;
  /** What was tried; repeated wins become heuristics. */
  strategy_used?: string;
  /** Category (must be in the agent's can_learn). */
  task_type?: string | null;
  /** How long the task took. */
  duration_ms?: number | null;
  /** The error, for a failure. */
  error_message?: string | null;
  /** Reviewer or user feedback. */
  feedback?: string | null;
}

export interface LearnManyArgs {
  /** Outcomes, all stored or none. */
  items: LearnArgs[];
}

export interface LearnManyResult {
  count: number;
  outcomes: MemoryOut[];
}

export interface LinkArtifactArgs {
  /** Free-form JSON object kept with the item (<= 65536 bytes). */
  metadata?: Record<string, unknown> | null;
  /** Id of the workflow (any stable string you choose). */
  workflow_id: string;
  /** Kind of artifact. */
  artifact_type: "code" | "test" | "document" | "config" | "deployment";
  /** Where it is: a path, URL, commit or id. */
  ref: string;
}

export interface MemoryList {
  memories: MemoryOut[];
}

/** A memory as JSON: the common fields, plus those of its `type` (task, strategy_used, fact...). */
export interface MemoryOut {
  type: "outcome" | "heuristic" | "anti_pattern" | "preference" | "knowledge";
  id: string;
  project_id: string;
  agent: string;
  created_at: string;
  updated_at: string;
  confidence: number;
  metadata: Record<string, unknown>;
  workflow_id?: string | null;
  [key: string]: unknown;
}

export interface MergeStatesArgs {
  /** Id of the workflow (any stable string you choose). */
  workflow_id: string;
  /** The states to merge (JSON objects, earliest first). */
  states: Array<Record<string, unknown>>;
  /** The agent of each state, same order and length as states (optional). */
  agents?: string[] | null;
  /** latest_wins (later states win key by key), merge_lists (lists concatenated, de-duplicated), priority_agent (the agent earliest in priorities wins), or per key: {'findings': 'merge_lists', '*': 'latest_wins'}. */
  reducer?: "latest_wins" | "merge_lists" | "priority_agent" | Record<string, "latest_wins" | "merge_lists" | "priority_agent">;
  /** Agents, most trusted first. */
  priorities?: string[] | null;
  /** Agent recorded on the merged checkpoint. */
  agent?: string | null;
}

/** An RFC 9457 problem document: every error the API answers (`error` names the ALMA error class). */
export interface Problem {
  /** urn:alma:error:<error> */
  type: string;
  title: string;
  status: number;
  /** The AlmaError class (ValidationError, ScopeViolation, NotFound...) or HTTP condition. */
  error: string;
  /** One line: what went wrong. */
  detail: string;
}

/** Counts per status, the share done, and how many items are ready to start. */
export interface ProgressSummary {
  total: number;
  by_status: Record<string, number>;
  percent_done: number;
  ready: number;
  blocked_ids: string[];
}

export interface ResumeResult {
  workflow_id: string;
  state: Record<string, unknown>;
}

export interface RetrieveArgs {
  /** The task about to be done, in plain words. */
  task: string;
  /** Agent name as configured in .alma/config.yaml. */
  agent: string;
  /** At most this many memories per memory type. */
  top_k?: number;
  /** Include this user's preferences. */
  user_id?: string | null;
  /** Also read memories shared with / inherited by the agent. */
  include_shared?: boolean;
  /** Only these types. */
  memory_types?: Array<"outcome" | "heuristic" | "anti_pattern" | "preference" | "knowledge"> | null;
  /** Token budget of the returned prompt text. */
  max_tokens?: number | null;
}

export interface RetrieveResult {
  query: string;
  agent: string;
  total: number;
  /** The memories rendered for a prompt (empty when none). */
  prompt: string;
  memories: Partial<Record<"outcome" | "heuristic" | "anti_pattern" | "preference" | "knowledge", MemoryOut[]>>;
}

export interface RetrieveScopedArgs {
  /** The task or question, in plain words. */
  query: string;
  /** workflow_only needs workflow_id; agent_only needs agent. */
  scope: "workflow_only" | "agent_only" | "project_wide";
  /** Agent whose view to use. */
  agent?: string | null;
  /** Workflow to restrict to (scope workflow_only). */
  workflow_id?: string | null;
  /** At most this many memories per type. */
  top_k?: number;
  /** Token budget of the returned prompt text. */
  max_tokens?: number | null;
}

/** A session as stored: who, why, when, and how it ended. */
export interface SessionInfo {
  session_id: string;
  agent: string;
  goal: string;
  status?: "active" | "ended";
  started_at: string;
  ended_at?: string | null;
  summary?: string | null;
  metadata?: Record<string, unknown>;
}

export interface SessionList {
  sessions: SessionInfo[];
}

export interface SessionStarted {
  session_id: string;
  agent: string;
  goal: string;
  status?: "active" | "ended";
  started_at: string;
  ended_at?: string | null;
  summary?: string | null;
  metadata?: Record<string, unknown>;
  previous_handoff?: Handoff | null;
}

export interface StartSessionArgs {
  /** Free-form JSON object kept with the item (<= 65536 bytes). */
  metadata?: Record<string, unknown> | null;
  /** Agent name as configured in .alma/config.yaml. */
  agent: string;
  /** What the session is for. */
  goal?: string;
}

export interface StatusArgs {
  status: "pending" | "in_progress" | "blocked" | "done" | "failed";
}

/** One unit of work. Higher `priority` is more urgent; `estimated_effort` is in any unit you like */
export interface WorkItem {
  id: string;
  title: string;
  description?: string;
  priority?: number;
  estimated_effort?: number | null;
  agent?: string | null;
  status?: WorkStatus;
  dependencies?: string[];
  created_at: string;
  updated_at: string;
  metadata?: Record<string, unknown>;
}

export interface WorkItemArgs {
  /** Free-form JSON object kept with the item (<= 65536 bytes). */
  metadata?: Record<string, unknown> | null;
  title: string;
  description?: string;
  /** Higher is more urgent. */
  priority?: number;
  /** Who should do it; omit for anyone. */
  agent?: string | null;
  /** Ids of existing work items. */
  dependencies?: string[] | null;
  /** Any unit (hours, points). */
  estimated_effort?: number | null;
}

export interface WorkItemList {
  items: WorkItem[];
}

export type WorkStatus = "pending" | "in_progress" | "blocked" | "done" | "failed";

export interface WorkflowLearnArgs {
  /** Free-form JSON object kept with the item (<= 65536 bytes). */
  metadata?: Record<string, unknown> | null;
  /** Agent name as configured in .alma/config.yaml. */
  agent: string;
  /** Id of the workflow (any stable string you choose). */
  workflow_id: string;
  /** The task that was attempted. */
  task: string;
  /** 'success' or 'failure' (or true / false). */
  outcome: "success" | "failure" | boolean;
  /** What was tried. */
  strategy_used?: string;
  /** Category (must be in the agent's can_learn). */
  task_type?: string | null;
  /** Checkpoint the outcome came from. */
  checkpoint_id?: string | null;
  /** How long the task took. */
  duration_ms?: number | null;
  /** The error, for a failure. */
  error_message?: string | null;
  /** Reviewer or user feedback. */
  feedback?: string | null;
}
