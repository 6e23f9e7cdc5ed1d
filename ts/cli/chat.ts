// `chat`: a conversation at the terminal, as people use llama.cpp's mtmd-cli. Answers stream to
// stdout; the banner, confirmations and timings go to stderr, so piped output holds only answers.
//   Ctrl-C during an answer stops it (the partial answer stays in the conversation) and returns to
//   the prompt; Ctrl-C at an empty prompt exits with 130, Ctrl-D with 0. Piped stdin: every line is
//   answered in order.
import fs from 'node:fs';
import readline from 'node:readline';
import type { Command } from 'commander';
import type { EmbedInput, InputKind } from '../encoder';
import { isAbortError } from '../errors';
import type { AskOptions, ChatSession, ImageBindLLM, VisualResult } from '../llm';
import { MEDIA_KINDS } from './flags';
import { EXIT_SIGINT, EXIT_SIGTERM, interruptSignal, onInterrupt } from './interrupt';
import { LlmCliOptions, askOptionsOf, checkLlmFlags, formatTimings, llmOptions, loadLlmCli } from './llm-options';
import { note } from './output';
import { progress } from './progress';

const HELP = [
  'commands:',
  ...MEDIA_KINDS.map((k) => `  /${k} PATH`.padEnd(18) + `add ${k === 'imu' ? 'an' : 'a'} ${k} input (the conversation starts over with it)`),
  '  /clear          drop every input (the conversation starts over)',
  '  /reset          forget the conversation, keep the inputs',
  '  /help           this list',
  '  /exit, /quit    leave (also Ctrl-D at an empty prompt, or Ctrl-C: exit code 130)',
  'Ctrl-C during an answer stops it.',
].join('\n');

function describeInputs(inputs: EmbedInput[]): string {
  return inputs.length ? inputs.map((i) => `${i.kind} ${'path' in i ? i.path : ''}`.trim()).join(', ') : 'none';
}

class Chat {
  #inputs: EmbedInput[];
  #visual: VisualResult | null = null;
  #inject = true;   // the next question starts a conversation with the inputs
  #busy: AbortController | null = null;

  constructor(private llm: ImageBindLLM, private session: ChatSession, private opts: LlmCliOptions, inputs: EmbedInput[]) {
    this.#inputs = [...inputs];
  }

  get busy(): AbortController | null {
    return this.#busy;
  }

  /** A line from the user: a command or a question. Returns false to leave. */
  async line(raw: string): Promise<boolean> {
    const line = raw.trim();
    if (!line) return true;
    if (line.startsWith('/')) return this.#command(line);
    await this.#answer(line);
    return true;
  }

  #command(line: string): boolean {
    const [cmd, ...rest] = line.slice(1).split(/\s+/);
    const arg = rest.join(' ').replace(/^(['"])(.*)\1$/, '$2');
    if (cmd === 'exit' || cmd === 'quit') return false;
    if (cmd === 'help') note(HELP);
    else if (cmd === 'reset') {
      this.session.reset();
      this.#inject = true;
      note(`conversation forgotten; inputs kept: ${describeInputs(this.#inputs)}`);
    } else if (cmd === 'clear') {
      this.session.reset();
      this.#inputs = [];
      this.#visual = null;
      this.#inject = true;
      note('inputs dropped; the conversation starts over without inputs');
    } else if ((MEDIA_KINDS as string[]).includes(cmd!)) {
      if (!arg) note(`/${cmd} needs a file: /${cmd} PATH`);
      else if (!this.opts.encoder) note(`/${cmd} needs an encoder: start chat with --encoder <gguf>`);
      else if (!fs.existsSync(arg) || !fs.statSync(arg).isFile()) note(`/${cmd}: ${arg}: no such file`);
      else {
        this.#inputs.push({ kind: cmd as Exclude<InputKind, 'text'>, path: arg });
        this.#visual = null;
        this.#inject = true;
        note(`added ${cmd} ${arg}; the next question starts a new conversation with: ${describeInputs(this.#inputs)}`);
      }
    } else note(`unknown command /${cmd} (/help lists the commands)`);
    return true;
  }

  async #answer(question: string): Promise<void> {
    const ac = new AbortController();
    this.#busy = ac;
    const base = askOptionsOf(this.opts, this.#inputs);
    const prompt = progress('reading the prompt', this.opts);
    try {
      const o: AskOptions = {
        ...base, inputs: undefined, signal: ac.signal, stopOnAbortSignal: true,
        onPromptProgress: (d, t) => prompt.update(d, t),
        onTextChunk: (t) => { prompt.stop(); process.stdout.write(t); },
      };
      if (this.#inject) {
        if (this.#inputs.length) {
          const enc = progress('encoding the inputs', this.opts);
          try {
            this.#visual ??= await this.llm.visual(base.inputs!, { weights: base.weights, cache: base.cache, signal: ac.signal, onProgress: (d, t) => enc.update(d, t) });
          } finally {
            enc.stop();
          }
          o.visual = this.#visual;
        } else {
          this.session.reset();
        }
        this.#inject = false;
      }
      const res = await this.session.ask(question, o);
      prompt.stop();
      process.stdout.write(res.stopReason === 'abort' ? ' [stopped]\n' : '\n');
      if (this.opts.timing) note(formatTimings(res));
    } catch (e) {
      prompt.stop();
      if (!isAbortError(e)) throw e;
      process.stdout.write('[stopped]\n');
    } finally {
      this.#busy = null;
    }
  }
}

export function registerChat(program: Command): void {
  const inputs: EmbedInput[] = [];
  llmOptions(program.command('chat'), inputs)
    .description('a conversation about the inputs at the terminal (/help lists the commands); reads questions from stdin')
    .action(async (opts: LlmCliOptions) => {
      checkLlmFlags(opts, inputs, true);
      const llm = await loadLlmCli(opts, interruptSignal());
      const session = await llm.createSession();
      const tty = !!process.stdin.isTTY;
      const chat = new Chat(llm, session, opts, inputs);
      const rl = readline.createInterface({ input: process.stdin, output: tty ? process.stdout : undefined, terminal: tty, prompt: '> ' });
      let exitCode: number | undefined;
      const interrupt = (sig: NodeJS.Signals) => {
        if (chat.busy) { chat.busy.abort(); return; }
        if (sig === 'SIGINT' && tty && rl.line) {
          // Ctrl-C with text typed: drop the line, as a shell does.
          process.stdout.write('^C\n');
          (rl as unknown as { line: string }).line = '';
          rl.prompt();
          return;
        }
        exitCode = sig === 'SIGINT' ? EXIT_SIGINT : EXIT_SIGTERM;
        if (tty) process.stdout.write('\n');
        rl.close();
      };
      onInterrupt(interrupt);
      rl.on('SIGINT', () => interrupt('SIGINT'));
      if (tty) {
        note(`imagebind-llm chat — ${llm.info.model}\ninputs: ${describeInputs(inputs)}\n${HELP}`);
        rl.prompt();
      }
      try {
        for await (const line of rl) {
          if (!(await chat.line(line))) break;
          if (tty) rl.prompt();
        }
      } finally {
        onInterrupt(null);
        rl.close();
        session.dispose();
        llm.dispose();
      }
      if (exitCode !== undefined) process.exitCode = exitCode;
    });
}
