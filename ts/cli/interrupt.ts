// Ctrl-C and SIGTERM: the first one stops the running operation through its AbortSignal (the command
// then ends with exit code 130, or 143 for SIGTERM); a second one exits at once. An interactive
// command (chat) takes over with its own handler.
import { AbortError } from '../errors';

let controller = new AbortController();
let handler: ((sig: NodeJS.Signals) => void) | null = null;
let received: NodeJS.Signals | null = null;

export const EXIT_SIGINT = 130;
export const EXIT_SIGTERM = 143;

/** The signal one-shot commands pass to long operations. */
export function interruptSignal(): AbortSignal {
  return controller.signal;
}

/** Which signal stopped the command, if any. */
export function interruptedBy(): NodeJS.Signals | null {
  return received;
}

/** Replaces the default handling (null restores it). */
export function onInterrupt(h: ((sig: NodeJS.Signals) => void) | null): void {
  handler = h;
}

export function installInterruptHandlers(): void {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (handler) return handler(sig);
      if (received) process.exit(sig === 'SIGINT' ? EXIT_SIGINT : EXIT_SIGTERM);
      received = sig;
      controller.abort(new AbortError(`interrupted by ${sig}`));
    });
  }
}

/** For tests and re-use: a fresh controller. */
export function resetInterrupt(): void {
  controller = new AbortController();
  received = null;
}
