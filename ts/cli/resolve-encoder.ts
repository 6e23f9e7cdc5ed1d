// Where a command's encoder GGUF comes from: --encoder when given, else the model folder that
// `imagebind-llm pull` filled (--models DIR, IMAGEBIND_LLM_MODELS, or the user's cache folder).
import { resolveModels } from '../models';
import { UsageError } from './flags';

export function resolveEncoderPath(flag: string | undefined, models?: string): string {
  if (flag) return flag;
  const set = resolveModels({ models });
  if (set.encoder) return set.encoder;
  throw new UsageError(`--encoder <gguf> is required: the model folder ${set.dir} has no encoder (run \`imagebind-llm pull\`, or give the encoder GGUF from \`imagebind-llm convert imagebind\`)`);
}
