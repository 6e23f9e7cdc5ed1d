// AbortSignal → the native abort token that stops work inside the addon (between items, inside
// ggml's compute loop, between llama.cpp decode steps), and the native abort → AbortError.
import { addon } from './binding';
import { AbortError, throwIfAborted } from './errors';

/** What the native side takes to be told to stop. */
export type NativeAbortToken = { abort(): void; readonly aborted: boolean };

export async function withAbortToken<T>(signal: AbortSignal | undefined, run: (token: NativeAbortToken) => Promise<T>): Promise<T> {
  throwIfAborted(signal);
  const token = new (addon().AbortToken)();
  const onAbort = () => token.abort();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return await run(token);
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_ABORTED') throw new AbortError(undefined, { cause: signal?.reason });
    throw e;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}
