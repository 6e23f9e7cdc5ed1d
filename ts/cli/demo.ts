// `demo`: every stage on a tiny model set with RANDOM weights that the package builds for itself.
import path from 'node:path';
import type { Command } from 'commander';
import { DEMO_LABEL, buildDemo, defaultDemoDir } from '../demo';
import { ImageBindEncoder, zeroShot } from '../encoder';
import { AskInput, ImageBindLLM } from '../llm';
import { runtimeOptions } from './flags';
import { interruptSignal } from './interrupt';
import { preview, printJson } from './output';

export function registerDemo(program: Command): void {
  runtimeOptions(program.command('demo'))
    .description('run every stage on a tiny demo model set with RANDOM weights that the package builds for itself, on media it synthesises')
    .option('--dir <dir>', 'where the demo models and media live', defaultDemoDir())
    .option('--json', 'print JSON')
    .action(async (opts: { dir: string; threads?: number; device: string; json?: boolean }) => {
      const log = (m: string) => process.stderr.write(`${m}\n`);
      const signal = interruptSignal();
      const demo = await buildDemo(opts.dir, log);
      const enc = await ImageBindEncoder.load(demo.encoder, { threads: opts.threads, device: opts.device, signal });
      const llm = await ImageBindLLM.load({ model: demo.llm, bind: demo.bind, encoder: enc, threads: opts.threads, device: opts.device, signal });
      try {
        const res = await enc.embed(demo.inputs, { signal });
        const texts = res.filter((r) => r.kind === 'text');
        const rows = res.filter((r) => r.kind !== 'text').map((r) => ({
          kind: r.kind, input: r.input, clips: r.clips, embedding: Array.from(r.embedding),
          zeroShot: Object.fromEntries(zeroShot(r.embedding, texts.map((t) => t.embedding)).map((p, i) => [texts[i]!.input, p])),
        }));
        // The whole ImageBind-LLM path: an image and a sound, mixed, bound, injected, answered.
        const question = 'What is in this picture?';
        const answer = await llm.ask(question, {
          inputs: demo.inputs.filter((i) => i.kind === 'image' || i.kind === 'audio').slice(0, 2) as AskInput[],
          temperature: 0, maxTokens: 16, signal,
        });
        if (opts.json) {
          printJson({
            label: DEMO_LABEL, encoder: demo.encoder, llm: demo.llm, bind: demo.bind, embeddings: rows,
            texts: texts.map((t) => ({ text: t.input, embedding: Array.from(t.embedding) })),
            ask: { question, text: answer.text, tokens: answer.tokens, promptTokens: answer.promptTokens.length, stopReason: answer.stopReason },
          });
          return;
        }
        console.log(`*** ${DEMO_LABEL}: the numbers below show that every stage runs, not what the inputs mean ***`);
        console.log(`encoder ${demo.encoder}\nllm     ${demo.llm}\nbind    ${demo.bind}`);
        for (const r of res) console.log(`${r.kind.padEnd(7)} ${path.basename(r.input)}${r.clips > 1 ? ` (${r.clips} clips)` : ''}: ${preview(r.embedding, 4)}`);
        for (const r of rows) {
          const best = Object.entries(r.zeroShot).sort((a, b) => b[1] - a[1])[0]!;
          console.log(`zero-shot ${path.basename(r.input)} → "${best[0]}" (${(100 * best[1]).toFixed(1)}%)`);
        }
        console.log(`ask (image + sound injected): "${question}" → ${JSON.stringify(answer.text)} (${answer.tokens.length} tokens, random weights)`);
      } finally {
        llm.dispose();
        enc.dispose();
      }
    });
}
