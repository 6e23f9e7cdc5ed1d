// Where a command's encoder GGUF comes from: --encoder when given.  The one place to ask, so that a
// default from the model folder (--models DIR) can be added here for every command that needs one.
import { UsageError } from './flags';

export function resolveEncoderPath(flag: string | undefined): string {
  if (flag) return flag;
  throw new UsageError('--encoder <gguf> is required (the encoder GGUF from `imagebind-llm convert imagebind`)');
}
