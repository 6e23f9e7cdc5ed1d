// The sketch's scan helper thread (sketch-kernel.ts: Scanner): scans chunks of the codes in the
// memory it shares with the store's worker.
import { workerData } from 'node:worker_threads';
import { serveScans, WasmMemory } from './sketch-kernel';

// (Not named `module`: that is CommonJS's own binding.)
const { kernel, mem, hist } = workerData as { kernel: object; mem: WasmMemory; hist: number };
serveScans(kernel, mem, hist);
