/** Errors thrown by imagebind-llm carry a stable `code` (the native layer sets the same codes). */
export class ImagebindError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ImagebindError';
    this.code = code;
  }
}
