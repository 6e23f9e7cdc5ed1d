// Flags that `index` and `search` share: the database, the kinds of files, the encoder.
import { Command, InvalidArgumentError } from 'commander';
import { MEDIA_KINDS, MediaKind } from '../search';
import { runtimeOptions } from './flags';

export interface MediaCliOptions { db: string; kinds?: MediaKind[]; encoder?: string; models?: string; threads?: number; device: string; json?: boolean }

export const DEFAULT_DB = 'media.sqlite';

function kindList(v: string): MediaKind[] {
  const kinds = v.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = kinds.find((k) => !MEDIA_KINDS.includes(k as MediaKind));
  if (kinds.length === 0 || bad !== undefined) {
    throw new InvalidArgumentError(`expected a comma-separated list of ${MEDIA_KINDS.join(', ')}${bad !== undefined ? ` ('${bad}' is not one)` : ''}`);
  }
  return [...new Set(kinds)] as MediaKind[];
}

export function mediaOptions(cmd: Command, kindsHelp: string): Command {
  return runtimeOptions(cmd)
    .option('--db <file>', 'the media index (SQLite)', DEFAULT_DB)
    .option('--kinds <list>', `${kindsHelp}: comma-separated ${MEDIA_KINDS.join(', ')}`, kindList)
    .option('--encoder <gguf>', 'encoder GGUF (imagebind-llm convert imagebind); an index is tied to the encoder that built it')
    .option('--models <dir>', 'model folder that `imagebind-llm pull` filled, used when --encoder is omitted');
}
