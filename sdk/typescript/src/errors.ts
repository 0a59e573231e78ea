// Typed errors: one class per `error` name of the server's problem documents (docs/http.md).
import type { Problem } from './wire.js';

/** Root of every error the client throws for an answer of the server (or for no answer at all). */
export class AlmaError extends Error {
  /** HTTP status (0 when the server could not be reached). */
  readonly status: number;
  /** The server's error name: the Python `AlmaError` class or the HTTP condition. */
  readonly error: string;
  /** One line: what went wrong. */
  readonly detail: string;
  /** The whole problem document, when the server sent one. */
  readonly problem?: Problem;

  constructor(status: number, error: string, detail: string, problem?: Problem) {
    super(`${error} (${status}): ${detail}`);
    this.name = new.target.name;
    this.status = status;
    this.error = error;
    this.detail = detail;
    this.problem = problem;
  }
}

/** A bad argument: a body or query that fails validation (422), or a body that is not JSON (400). */
export class ValidationError extends AlmaError {}
/** A work item status change the transition table forbids (409). */
export class InvalidTransition extends ValidationError {}
/** An agent the server's config does not define (422). */
export class UnknownAgent extends AlmaError {}
/** A write outside the agent's can_learn / cannot_learn (403); nothing was stored. */
export class ScopeViolation extends AlmaError {}
/** A memory, checkpoint, session, work item or route that does not exist (404). */
export class NotFound extends AlmaError {}
/** The store was built with another embedder (409). */
export class EmbeddingMismatch extends AlmaError {}
/** The store failed (503) or the server is overloaded (429), after the client's retries. */
export class StorageError extends AlmaError {}
/** No token, or a wrong one (401). */
export class Unauthorized extends AlmaError {}
/** The token is another project's, or the Origin is not allowed (403). */
export class Forbidden extends AlmaError {}
/** The body is over the server's limit (413). */
export class PayloadTooLarge extends AlmaError {}
/** The server could not be reached (connection refused, reset, DNS). */
export class ConnectionError extends AlmaError {}

const BY_NAME: Record<string, new (s: number, e: string, d: string, p?: Problem) => AlmaError> = {
  ValidationError,
  BadRequest: ValidationError,
  ConfigError: ValidationError,
  SerializationError: ValidationError,
  InvalidTransition,
  UnknownAgent,
  ScopeViolation,
  NotFound,
  EmbeddingMismatch,
  StorageError,
  TooManyRequests: StorageError,
  Unauthorized,
  Forbidden,
  PayloadTooLarge,
};

/** The typed error for a problem document (an `AlmaError` for names this client does not know). */
export function errorFor(status: number, problem: Partial<Problem> | undefined, fallback: string): AlmaError {
  const name = problem?.error ?? (status === 429 ? 'TooManyRequests' : `Http${status}`);
  const Cls = BY_NAME[name] ?? AlmaError;
  return new Cls(status, name, problem?.detail ?? fallback, problem as Problem | undefined);
}
