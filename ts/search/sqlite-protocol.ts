// Messages between SqliteStore (the application's thread) and its worker (sqlite-worker.ts).
export interface WorkerRequest {
  id: number;
  op: string;
  args: unknown[];
}

/** id 0 is the worker's first message: ready, or why it could not open the database. */
export type WorkerResponse =
  | { id: number; value: unknown; error?: undefined }
  | { id: number; error: { code: string; message: string } };
