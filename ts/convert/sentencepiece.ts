// SentencePiece tokenizer.model → llama.cpp's SPM vocabulary (tokenizer.ggml.* keys).
//
// tokenizer.model is a serialized sentencepiece.ModelProto (proto2). We read the few fields we need,
// by the field numbers of google/sentencepiece src/sentencepiece_model.proto (unknown fields are
// skipped), with the bounded wire reader of protobuf-wire.ts:
//   ModelProto     { repeated SentencePiece pieces = 1; TrainerSpec trainer_spec = 2; NormalizerSpec normalizer_spec = 3; }
//   SentencePiece  { string piece = 1; float score = 2; Type type = 3 [default = NORMAL]; }
//   TrainerSpec    { ModelType model_type = 3 [default = UNIGRAM]; bool treat_whitespace_as_suffix = 24;
//                    bool byte_fallback = 35; int32 unk_id = 40 [0]; bos_id = 41 [1]; eos_id = 42 [2]; pad_id = 43 [-1]; }
//   NormalizerSpec { string name = 1; bool add_dummy_prefix = 3 [true]; bool remove_extra_whitespaces = 4 [true]; }
//
// What llama.cpp expects (conversion/base.py _create_vocab_sentencepiece and src/llama-vocab.cpp):
// tokenizer.ggml.model = "llama" selects its SPM tokenizer, which merges adjacent symbols by the score
// of the merged piece (SentencePiece BPE stores -rank as the score) and falls back to <0xXX> byte
// pieces; token ids are the piece indices; the token types use the same numbers as SentencePiece's
// ModelProto.SentencePiece.Type (NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4, UNUSED 5, BYTE 6).
import fs from 'node:fs';
import { ImageBindError } from '../errors';
import { READ_LIMITS, readRegularSync } from '../files';
import type { GgufMetaEntry } from '../native';
import { readMessage, readNested, WireField } from './protobuf-wire';

/** llama.cpp's llama_token_type values (they equal SentencePiece's piece types). */
export const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

export interface SentencePieceVocab {
  tokens: string[];
  scores: Float32Array;
  /** llama.cpp token types, one per token. */
  types: Int32Array;
  /** 'unigram' | 'bpe' (SentencePiece's trainer model type). */
  modelType: string;
  byteFallback: boolean;
  unkId: number;
  bosId: number;
  eosId: number;
  /** -1 when the model has no padding piece. */
  padId: number;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  normalizer: string;
}

interface RawPiece { piece?: string; score?: number; type?: number }
interface RawModel {
  pieces: RawPiece[];
  trainer_spec: Record<string, number | boolean>;
  normalizer_spec: Record<string, string | boolean>;
}

// The fields read, by number, with how each is read.
const TRAINER_FIELDS: Record<number, [string, (f: WireField) => number | boolean]> = {
  3: ['model_type', (f) => f.int32()],
  24: ['treat_whitespace_as_suffix', (f) => f.varint() !== 0],
  35: ['byte_fallback', (f) => f.varint() !== 0],
  40: ['unk_id', (f) => f.int32()],
  41: ['bos_id', (f) => f.int32()],
  42: ['eos_id', (f) => f.int32()],
  43: ['pad_id', (f) => f.int32()],
};
const NORMALIZER_FIELDS: Record<number, [string, (f: WireField) => string | boolean]> = {
  1: ['name', (f) => f.string()],
  3: ['add_dummy_prefix', (f) => f.varint() !== 0],
  4: ['remove_extra_whitespaces', (f) => f.varint() !== 0],
};

function decodeModel(bytes: Uint8Array): RawModel {
  const m: RawModel = { pieces: [], trainer_spec: {}, normalizer_spec: {} };
  readMessage(bytes, (f) => {
    if (f.field === 1) {
      const p: RawPiece = {};
      readNested(f, (g) => {
        if (g.field === 1) p.piece = g.string();
        else if (g.field === 2) p.score = g.float();
        else if (g.field === 3) p.type = g.int32();
      });
      m.pieces.push(p);
    } else if (f.field === 2) {
      readNested(f, (g) => { const r = TRAINER_FIELDS[g.field]; if (r) m.trainer_spec[r[0]] = r[1](g); });
    } else if (f.field === 3) {
      readNested(f, (g) => { const r = NORMALIZER_FIELDS[g.field]; if (r) m.normalizer_spec[r[0]] = r[1](g); });
    }
  });
  return m;
}

function bad(file: string, msg: string): never {
  throw new ImageBindError('ERR_TOKENIZER_INVALID', `${file}: not a valid SentencePiece tokenizer.model: ${msg}`);
}

/** Decodes a SentencePiece model; `file` names it in errors. */
export function parseSentencePiece(bytes: Uint8Array, file = 'tokenizer.model'): SentencePieceVocab {
  if (bytes.length === 0) bad(file, 'the file is empty');
  let m: RawModel;
  try {
    m = decodeModel(bytes);
  } catch (e) {
    bad(file, `protobuf decoding failed (${(e as Error).message}); the file is damaged or of another format`);
  }
  const pieces = m.pieces;
  if (pieces.length === 0) bad(file, 'it holds no pieces');
  const ts = m.trainer_spec;
  const ns = m.normalizer_spec;
  const n = pieces.length;
  const tokens = new Array<string>(n);
  const scores = new Float32Array(n);
  const types = new Int32Array(n);
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    const p = pieces[i]!;
    const type = p.type ?? TOKEN_TYPE.NORMAL;
    if (typeof p.piece !== 'string' || p.piece.length === 0) bad(file, `piece ${i} is empty`);
    if (!(type >= 1 && type <= 6)) bad(file, `piece ${i} ('${p.piece}') has unknown type ${type}`);
    if (seen.has(p.piece) && type !== TOKEN_TYPE.UNUSED) bad(file, `piece '${p.piece}' occurs twice (again at id ${i})`);
    seen.add(p.piece);
    tokens[i] = p.piece;
    scores[i] = p.score ?? 0;
    types[i] = type;
  }
  const id = (k: string, dflt: number): number => (typeof ts[k] === 'number' ? (ts[k] as number) : dflt);
  const unkId = id('unk_id', 0);
  const bosId = id('bos_id', 1);
  const eosId = id('eos_id', 2);
  const padId = id('pad_id', -1);
  for (const [k, v] of [['unk_id', unkId], ['bos_id', bosId], ['eos_id', eosId], ['pad_id', padId]] as const) {
    if (v < -1 || v >= n) bad(file, `${k} ${v} is outside the vocabulary of ${n} pieces`);
  }
  if (unkId < 0) bad(file, 'it has no unknown piece (unk_id -1)');
  if (types[unkId] !== TOKEN_TYPE.UNKNOWN) bad(file, `unk_id ${unkId} ('${tokens[unkId]}') is not of type UNKNOWN`);
  const mt = id('model_type', 1);
  // llama.cpp's SPM tokenizer reproduces SentencePiece BPE (LLaMA's) exactly; UNIGRAM models get its
  // score-driven approximation. WORD and CHAR models are not SPM vocabularies at all.
  if (mt !== 1 && mt !== 2) bad(file, `model type ${mt === 3 ? 'WORD' : mt === 4 ? 'CHAR' : mt} is not supported (BPE or UNIGRAM)`);
  if (ts.treat_whitespace_as_suffix === true) bad(file, 'treat_whitespace_as_suffix models are not supported by llama.cpp\'s SPM tokenizer');
  return {
    tokens, scores, types,
    modelType: mt === 2 ? 'bpe' : 'unigram',
    byteFallback: ts.byte_fallback === true,
    unkId, bosId, eosId, padId,
    addDummyPrefix: ns.add_dummy_prefix !== false,
    removeExtraWhitespaces: ns.remove_extra_whitespaces !== false,
    normalizer: typeof ns.name === 'string' ? ns.name : '',
  };
}

/** Reads and decodes a tokenizer.model file. */
export function readSentencePiece(file: string): SentencePieceVocab {
  let bytes: Buffer;
  try {
    bytes = readRegularSync(file, READ_LIMITS.tokenizer, 'a tokenizer');
  } catch (e) {
    const code = (e as { code?: string }).code ?? 'ERR_FILE_READ';
    throw new ImageBindError(code, `${file}: cannot read the tokenizer: ${(e as Error).message.replace(`${file}: `, '')}`);
  }
  return parseSentencePiece(bytes, file);
}

/** The tokenizer.ggml.* metadata of llama.cpp's "llama" (SPM) tokenizer. */
export function sentencePieceMetadata(v: SentencePieceVocab): GgufMetaEntry[] {
  const meta: GgufMetaEntry[] = [
    { key: 'tokenizer.ggml.model', type: 'string', value: 'llama' },
    { key: 'tokenizer.ggml.pre', type: 'string', value: 'default' },
    { key: 'tokenizer.ggml.tokens', type: 'array', elemType: 'string', value: v.tokens },
    { key: 'tokenizer.ggml.scores', type: 'array', elemType: 'f32', value: Array.from(v.scores) },
    { key: 'tokenizer.ggml.token_type', type: 'array', elemType: 'i32', value: Array.from(v.types) },
    { key: 'tokenizer.ggml.unknown_token_id', type: 'u32', value: v.unkId },
  ];
  // Ids of -1 (a piece the model does not have) are left out.
  if (v.bosId >= 0) meta.push({ key: 'tokenizer.ggml.bos_token_id', type: 'u32', value: v.bosId });
  if (v.eosId >= 0) meta.push({ key: 'tokenizer.ggml.eos_token_id', type: 'u32', value: v.eosId });
  if (v.padId >= 0) meta.push({ key: 'tokenizer.ggml.padding_token_id', type: 'u32', value: v.padId });
  meta.push(
    // LLaMA prompts are [BOS] + encode(text), no end token.
    { key: 'tokenizer.ggml.add_bos_token', type: 'bool', value: v.bosId >= 0 },
    { key: 'tokenizer.ggml.add_eos_token', type: 'bool', value: false },
    { key: 'tokenizer.ggml.add_space_prefix', type: 'bool', value: v.addDummyPrefix },
    { key: 'tokenizer.ggml.remove_extra_whitespaces', type: 'bool', value: v.removeExtraWhitespaces },
  );
  return meta;
}
