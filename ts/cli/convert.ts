// `convert imagebind | llm | cache`: released PyTorch checkpoints and faiss indexes → GGUF.
import { Command, Option } from 'commander';
import { convertCache } from '../convert/cache';
import type { CacheType } from '../convert/cache';
import { convertImagebind, ENCODER_TYPES } from '../convert/imagebind';
import type { EncoderType } from '../convert/imagebind';
import { convertLlm, LLM_TYPES } from '../convert/llm';
import type { BindType, LlmType } from '../convert/llm';
import { intArg } from './flags';
import { interruptSignal } from './interrupt';
import { formatBytes, printJson } from './output';
import { progress } from './progress';

/** Runs one conversion with a progress bar and Ctrl-C, then prints its result (JSON or a summary). */
async function convertWith<T extends object>(opts: { json?: boolean }, run: (signal: AbortSignal, onProgress: (done: number, total: number) => void) => Promise<T>,
  summary: (r: T) => string): Promise<void> {
  const bar = progress('converting', opts);
  const started = Date.now();
  let res: T;
  try {
    res = await run(interruptSignal(), (d, t) => bar.update(d, t));
  } finally {
    bar.stop();
  }
  if (opts.json) printJson({ ...res, seconds: (Date.now() - started) / 1000 });
  else console.log(summary(res));
}

export function registerConvert(program: Command): void {
  const convert = program.command('convert').description('convert released PyTorch checkpoints to GGUF');
  convert
    .command('imagebind')
    .description('ImageBind checkpoint (imagebind_huge.pth, imagebind_w3D.pth) → encoder GGUF')
    .argument('<checkpoint>', '.pth file')
    .requiredOption('-o, --output <file>', 'output .gguf')
    .option('--config <file>', 'hyperparameters JSON (the fixtures\' imagebind.config.json schema); default ImageBind-huge')
    .addOption(new Option('--type <type>', 'weight matrix type (bf16: the fastest on CPUs with AVX512-BF16)').choices([...ENCODER_TYPES]).default('f16'))
    .option('--json', 'print JSON')
    .action(async (checkpoint: string, opts: { output: string; config?: string; type: EncoderType; json?: boolean }) => {
      await convertWith(opts, (signal, onProgress) => convertImagebind(checkpoint, opts.output, { config: opts.config, type: opts.type, signal, onProgress }),
        (res) => `wrote ${res.path}: ${res.modalities.join(', ')}; ${res.tensors} tensors, ${formatBytes(res.bytes)}, ${res.type}`);
    });

  convert
    .command('cache')
    .description('faiss flat index (ImageBind-LLM knn.index) → kNN cache GGUF for cache-enhanced inference')
    .argument('<index>', 'faiss IndexFlatIP / IndexFlatL2 file (faiss.write_index)')
    .requiredOption('-o, --output <file>', 'output .gguf')
    .addOption(new Option('--type <type>', 'feature type').choices(['f16', 'f32']).default('f16'))
    .option('--chunk-rows <n>', 'rows per feature tensor (default 65536)', intArg(1, 1 << 24))
    .option('--json', 'print JSON')
    .action(async (index: string, opts: { output: string; type: CacheType; chunkRows?: number; json?: boolean }) => {
      await convertWith(opts, (signal, onProgress) => convertCache(index, opts.output, { type: opts.type, chunkRows: opts.chunkRows, signal, onProgress }),
        (res) => `wrote ${res.path}: ${res.count} × ${res.dimension} ${res.metric} cache, ${res.type}, ${res.chunks} chunk${res.chunks === 1 ? '' : 's'} of ${res.chunkRows} rows, ${formatBytes(res.bytes)}`);
    });

  convert
    .command('llm')
    .description('LLaMA (Meta or Hugging Face layout, optionally + a delta) + ImageBind-LLM adapter checkpoint → <prefix>-llm.gguf (llama.cpp model, adapter merged) and <prefix>-bind.gguf (bind network, injection)')
    .requiredOption('--llama <dir>', "LLaMA folder: Meta's params.json, tokenizer.model, consolidated.00.pth (…), or Hugging Face's config.json, tokenizer.model, *.safetensors or pytorch_model*.bin (+ index)")
    .option('--delta <path>', 'add this delta to the base on the fly, as upstream makes Open-Chinese-LLaMA-7B: a folder with params.json and consolidated.00.pth, or a .pth')
    .requiredOption('--adapter <file>', 'ImageBind-LLM adapter checkpoint (.pth)')
    .requiredOption('-o, --output <prefix>', 'output prefix: writes <prefix>-llm.gguf and <prefix>-bind.gguf')
    .addOption(new Option('--type <type>', 'LLM weight type').choices([...LLM_TYPES]).default('f16'))
    .addOption(new Option('--bind-type <type>', 'bind network matrix type').choices(['f32', 'f16']).default('f32'))
    .option('--context-length <n>', 'llama.context_length to record (default 512)', intArg(16, 1 << 24), 512)
    .option('--json', 'print JSON')
    .action(async (opts: { llama: string; delta?: string; adapter: string; output: string; type: LlmType; bindType: BindType; contextLength: number; json?: boolean }) => {
      await convertWith(opts, (signal, onProgress) => convertLlm({
        llamaDir: opts.llama, delta: opts.delta, adapter: opts.adapter, outPrefix: opts.output, type: opts.type, bindType: opts.bindType,
        contextLength: opts.contextLength, signal, onProgress,
      }), (res) => `wrote ${res.llm}: llama, ${res.layers} layers, dim ${res.dim}, vocabulary ${res.vocabSize}, ${res.type}, ${formatBytes(res.bytes.llm)}\n` +
        `wrote ${res.bind}: bind network (${res.bridge}), ${res.queryLayer} injected layers, ${res.bindType}, ${formatBytes(res.bytes.bind)}`);
    });
}
