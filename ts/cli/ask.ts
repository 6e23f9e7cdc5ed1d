// `ask`: one question about the inputs; the answer streams to stdout as it is generated.
import type { Command } from 'commander';
import type { EmbedInput } from '../encoder';
import { interruptSignal, interruptedBy } from './interrupt';
import { LlmCliOptions, askOptionsOf, checkLlmFlags, formatTimings, llmOptions, loadLlmCli } from './llm-options';
import { note, printJson } from './output';
import { progress } from './progress';

export function registerAsk(program: Command): void {
  const inputs: EmbedInput[] = [];
  llmOptions(program.command('ask'), inputs)
    .description('ask ImageBind-LLM about the inputs; streams the answer to stdout')
    .argument('<instruction>', 'the question or instruction')
    .option('--json', 'print one JSON object: text, tokens, promptTokens, stopReason, timings')
    .option('--logits', 'with --json: also the last-token logits of the prompt')
    .action(async (instruction: string, opts: LlmCliOptions & { logits?: boolean }) => {
      checkLlmFlags(opts, inputs);
      const signal = interruptSignal();
      const llm = await loadLlmCli(opts, signal);
      const prompt = progress('reading the prompt', opts);
      try {
        const base = askOptionsOf(opts, inputs);
        let visual;
        if (inputs.length) {
          const enc = progress('encoding the inputs', opts);
          try {
            visual = await llm.visual(base.inputs!, { weights: base.weights, cache: base.cache, signal, onProgress: (d, t) => enc.update(d, t) });
          } finally {
            enc.stop();
          }
        }
        const res = await llm.ask(instruction, {
          ...base, inputs: undefined, visual, signal, stopOnAbortSignal: true, logits: !!opts.logits,
          onPromptProgress: (d, t) => prompt.update(d, t),
          onTextChunk: opts.json ? undefined : (t) => { prompt.stop(); process.stdout.write(t); },
        });
        prompt.stop();
        if (opts.json) {
          printJson({ text: res.text, tokens: res.tokens, promptTokens: res.promptTokens, stopReason: res.stopReason, timings: res.timings,
            ...(res.logits ? { logits: Array.from(res.logits) } : {}) });
        } else {
          process.stdout.write('\n');
        }
        if (opts.timing) note(formatTimings(res));
        if (res.stopReason === 'abort' && interruptedBy()) throw signal.reason;
      } finally {
        prompt.stop();
        llm.dispose();
      }
    });
}
