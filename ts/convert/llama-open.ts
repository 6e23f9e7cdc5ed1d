// Where `convert llm` reads the base LLaMA from: a folder in Meta's layout or in Hugging Face's
// transformers layout (decided by the files present), optionally with a delta added on the fly.
import fs from 'node:fs';
import path from 'node:path';
import { openDelta } from './llama-delta';
import { openHfLlama } from './llama-hf';
import { fail, findTokenizer, openMetaShards, OpenedLlama, readParams } from './llama-source';
import { readSentencePiece } from './sentencepiece';

/** Meta's layout: params.json, tokenizer.model (here or one folder up), consolidated.NN.pth. */
async function openMetaLlama(dir: string): Promise<OpenedLlama> {
  const paramsFile = path.join(dir, 'params.json');
  const tok = findTokenizer(dir);
  const params = readParams(paramsFile);
  const vocab = readSentencePiece(tok);
  return { params, vocab, llama: await openMetaShards(dir), paramsFile };
}

export interface OpenLlamaOptions {
  /** Open-Chinese-LLaMA-style delta: a Meta folder (params.json + consolidated.NN.pth) or one .pth. */
  delta?: string;
}

/**
 * Opens the base LLaMA of `dir` in either layout, and adds `delta` on the fly when given. Decides the
 * layout by the files present: params.json is Meta's, config.json Hugging Face's.
 */
export async function openLlama(dir: string, options: OpenLlamaOptions = {}): Promise<OpenedLlama> {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    fail('ERR_FILE_NOT_FOUND', `${dir}: no such LLaMA folder`);
  }
  if (!st.isDirectory()) fail('ERR_INVALID_ARG', `${dir}: the LLaMA path must be a folder (Meta's params.json, tokenizer.model, consolidated.00.pth; or Hugging Face's config.json, tokenizer.model, *.safetensors or pytorch_model*.bin)`);
  let base: OpenedLlama;
  if (fs.existsSync(path.join(dir, 'params.json'))) base = await openMetaLlama(dir);
  else if (fs.existsSync(path.join(dir, 'config.json'))) base = await openHfLlama(dir);
  else fail('ERR_FILE_NOT_FOUND', `${path.join(dir, 'params.json')}: missing (a LLaMA folder has Meta's params.json or Hugging Face's config.json)`);
  if (options.delta === undefined) return base;
  try {
    return await openDelta(base, options.delta);
  } catch (e) {
    await base.llama.close();
    throw e;
  }
}
