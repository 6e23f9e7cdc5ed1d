/** Errors thrown by imagebind-llm carry a stable `code` (the native layer sets the same codes). */
export class ImageBindError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ImageBindError';
    this.code = code;
  }
}

/**
 * The one error every operation rejects with when its AbortSignal fires: `embed`, `ask`, `stream`,
 * model loads and conversions. `name` 'AbortError' and `code` 'ABORT_ERR', as Node's own.
 */
export class AbortError extends ImageBindError {
  constructor(message = 'The operation was aborted', options?: { cause?: unknown }) {
    super('ABORT_ERR', message, options);
    this.name = 'AbortError';
  }
}

/** @deprecated the old spelling of {@link ImageBindError}; kept for one release. */
export const ImagebindError = ImageBindError;
/** @deprecated the old spelling of {@link ImageBindError}; kept for one release. */
export type ImagebindError = ImageBindError;

export function isAbortError(e: unknown): boolean {
  return typeof e === 'object' && e !== null && ((e as { code?: string }).code === 'ABORT_ERR' || (e as { code?: string }).code === 'ERR_ABORTED');
}

export function throwIfAborted(signal: AbortSignal | undefined, what?: string): void {
  if (signal?.aborted) throw new AbortError(what ? `${what} aborted` : undefined, { cause: signal.reason });
}
