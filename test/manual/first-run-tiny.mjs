// Not a test (ava runs *.test.mjs only): a first-time user's path after `npm install`, on the
// fixtures' tiny files served by the tests' loopback hub, timing each command as the user types it:
//   imagebind-llm pull --llama <LLaMA folder>          (download, check, convert into the model folder)
//   imagebind-llm ask --image dog.jpg "What is in the picture?"
// The model folder is a fresh temporary one (IMAGEBIND_LLM_MODELS), the types are pull's defaults.
// Run: node test/manual/first-run-tiny.mjs   (IBL_CLI=<path to lib/cli.js> for an installed package)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { cliPath, tmpDir } from '../helpers/paths.mjs';
import { tinyA } from '../helpers/fixtures.mjs';
import { readMetaTensors, writeMetaLlama } from '../helpers/hf-llama.mjs';
import { startHub } from '../helpers/hub-server.mjs';

const dir = tmpDir('ibl-first-run-');
const llama = path.join(tinyA, 'llama');
const zero = new Map([...(await readMetaTensors(llama))].map(([n, t]) => [n, { ...t, bits: new Uint16Array(t.bits.length) }]));
const delta = await writeMetaLlama(path.join(dir, 'delta'), zero, JSON.parse(fs.readFileSync(path.join(llama, 'params.json'), 'utf8')));
const hub = await startHub([
  { repo: 'ZiyuG/ImageBind_w3D', revision: 'e9206a10f118b0790c730264e7b3aa5c324c35cb', path: 'imagebind_w3D.pth', data: fs.readFileSync(path.join(tinyA, 'imagebind.pth')) },
  { repo: 'Cxxs/ImageBind-LLM', revision: 'main', path: '7B.pth', data: fs.readFileSync(path.join(tinyA, 'adapter.pth')) },
  { repo: 'csuhan/knn', revision: 'main', path: 'knn.index', data: fs.readFileSync(path.join(tinyA, 'knn.index')) },
  { repo: 'Cxxs/Open-Chinese-LLaMA', revision: 'main', path: '7B_chinese_delta/consolidated.00.pth', data: fs.readFileSync(path.join(delta, 'consolidated.00.pth')) },
  { repo: 'Cxxs/Open-Chinese-LLaMA', revision: 'main', path: '7B_chinese_delta/params.json', data: fs.readFileSync(path.join(delta, 'params.json')) },
]);
const env = { ...process.env, HF_ENDPOINT: hub.endpoint, IMAGEBIND_LLM_MODELS: path.join(dir, 'models') };
const image = path.join(tinyA, '..', 'assets', 'dog_image.jpg');

// The CLI under test: this checkout's, or an installed package's (IBL_CLI=node_modules/imagebind-llm/lib/cli.js).
const cli = process.env.IBL_CLI ? path.resolve(process.env.IBL_CLI) : cliPath;

/** Runs one command (asynchronously: the hub answers from this process) and prints its time. */
async function step(label, args) {
  const t0 = process.hrtime.bigint();
  const { stdout, stderr } = await promisify(execFile)(process.execPath, [cli, ...args], { env, encoding: 'utf8' });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`--- ${label}: ${s.toFixed(2)} s\n${stderr.trim()}\n${stdout.trim()}`);
  return s;
}

try {
  console.log(`${os.cpus()[0].model}, ${os.cpus().length} CPUs, node ${process.version}`);
  await step('imagebind-llm pull --llama <tiny LLaMA> (+ --encoder-config: the tiny encoder is not ImageBind-huge)', ['pull', '--llama', llama, '--encoder-config', path.join(tinyA, 'imagebind.config.json')]);
  await step('imagebind-llm pull again (nothing to do)', ['pull', '--llama', llama, '--encoder-config', path.join(tinyA, 'imagebind.config.json')]);
  await step('imagebind-llm ask --image dog.jpg "What is in the picture?"', ['ask', '--image', image, 'What is in the picture?']);
} finally {
  await hub.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
