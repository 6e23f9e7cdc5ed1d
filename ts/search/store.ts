// The store behind a media index: what MediaIndex needs from a database, and nothing else, so that a
// distributed vector database can replace SQLite for collections beyond one machine (DESIGN §6).
// Every method is asynchronous: the SQLite store runs on a worker thread, a remote one over a network.
import type { MediaKind } from './kinds';

/** One indexed file, as stored. */
export interface StoredItem {
  path: string;
  kind: MediaKind;
  size: number;
  /** Modification time in whole microseconds since the epoch. */
  mtimeUs: number;
  /** Hex SHA-256 of the content. */
  hash: string;
}

export interface NewItem extends StoredItem {
  /** Unit-length embedding, `dim` values. */
  vector: Float32Array;
}

export interface StoreHit extends StoredItem {
  /** Cosine similarity to the query. */
  score: number;
}

/** The encoder whose embeddings a store holds. */
export interface EncoderStamp {
  /** encoderIdentity() of its GGUF. */
  identity: string;
  /** Its general.name, for messages. */
  name: string;
  dim: number;
}

export interface StoreStats {
  items: number;
  byKind: Partial<Record<MediaKind, number>>;
  encoder: EncoderStamp | null;
  /** Size of the database on disk (bytes), where the store can tell. */
  bytes?: number;
}

export interface VectorStore {
  /** The encoder the store was built with (null: empty and unbound). */
  encoder(): Promise<EncoderStamp | null>;
  /**
   * Binds an empty store to an encoder; a store bound to another one is refused (ERR_INDEX_ENCODER)
   * unless `reset`, which empties it and binds it to the new one.
   */
  bind(encoder: EncoderStamp, reset: boolean): Promise<void>;
  /** The stored rows of these paths (absent ones are left out). */
  lookup(paths: string[]): Promise<StoredItem[]>;
  /** A stored embedding (and its kind) for each of these content hashes that the store holds. */
  vectorsByHash(hashes: string[]): Promise<Array<{ hash: string; kind: MediaKind; vector: Float32Array }>>;
  /** Inserts or replaces these rows and their embeddings, all or none. */
  upsert(items: NewItem[]): Promise<void>;
  /** Records a new size/mtime for rows whose content did not change. */
  touch(items: Array<Pick<StoredItem, 'path' | 'size' | 'mtimeUs'>>): Promise<void>;
  /** Removes these exact paths; returns how many rows went. */
  remove(paths: string[]): Promise<number>;
  /** Stored paths inside folder `dir`, in order, after `after`, at most `limit`. */
  pathsUnder(dir: string, after: string | null, limit: number): Promise<string[]>;
  /** The k nearest rows by cosine similarity (exact), optionally only of some kinds. */
  search(vector: Float32Array, k: number, kinds?: readonly MediaKind[]): Promise<StoreHit[]>;
  stats(): Promise<StoreStats>;
  close(): Promise<void>;
}
