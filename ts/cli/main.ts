// The CLI entry: registers the commands, runs one, and turns its outcome into an exit code:
// 0 done, 1 failed (one line naming the problem), 2 usage error (one line and a hint),
// 130/143 interrupted by SIGINT/SIGTERM. A closed stdout (`| head`) ends the process quietly.
import { Command, CommanderError } from 'commander';
import { isAbortError } from '../errors';
import { registerAsk } from './ask';
import { registerChat } from './chat';
import { registerConvert } from './convert';
import { registerDemo } from './demo';
import { registerEmbed } from './embed';
import { UsageError } from './flags';
import { registerIndex } from './index-cmd';
import { registerInfo } from './info';
import { registerPull } from './pull';
import { EXIT_SIGINT, EXIT_SIGTERM, installInterruptHandlers, interruptedBy } from './interrupt';
import { registerSearch } from './search';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { version } = require('../../package.json') as { version: string };

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('imagebind-llm')
    .description('ImageBind-LLM on llama.cpp/ggml: embed images, audio, video, depth, thermal, IMU and point clouds, and ask questions about them')
    .version(version, '-v, --version', 'print the version')
    .exitOverride()
    .configureOutput({ writeErr: () => {} });  // usage errors are printed once, by main()
  registerInfo(program);
  registerPull(program);
  registerConvert(program);
  registerEmbed(program);
  registerAsk(program);
  registerChat(program);
  registerIndex(program);
  registerSearch(program);
  registerDemo(program);
  // Commands inherit the error handling above.
  for (const c of program.commands) inherit(c);
  return program;
}

function inherit(cmd: Command): void {
  cmd.exitOverride().configureOutput({ writeErr: () => {} });
  for (const c of cmd.commands) inherit(c);
}

/** The name of the (sub)command the arguments name, for the usage hint. */
function commandPath(argv: string[], program: Command): string {
  const names: string[] = [];
  let cmd: Command | undefined = program;
  for (const a of argv.slice(2)) {
    const sub: Command | undefined = cmd?.commands.find((c) => c.name() === a || c.aliases().includes(a));
    if (!sub) break;
    names.push(a);
    cmd = sub;
  }
  return ['imagebind-llm', ...names].join(' ');
}

function fail(message: string, code: number): void {
  process.stderr.write(`imagebind-llm: ${message}\n`);
  process.exitCode = code;
}

export async function main(argv: string[]): Promise<void> {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);  // the reader went away (`| head`): nothing more to say
    throw e;
  });
  installInterruptHandlers();
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    const sig = interruptedBy();
    if (e instanceof CommanderError) {
      if (e.exitCode === 0) return;  // --help, --version
      fail(`${e.message.replace(/^error: /, '')} (see \`${commandPath(argv, program)} --help\`)`, 2);
    } else if (e instanceof UsageError) {
      fail(`${e.message} (see \`${commandPath(argv, program)} --help\`)`, 2);
    } else if (sig && isAbortError(e)) {
      process.exitCode = sig === 'SIGINT' ? EXIT_SIGINT : EXIT_SIGTERM;
    } else {
      const err = e as { message?: string };
      fail((err.message ?? String(e)).split('\n').join('\n  '), 1);
    }
  }
}
