// Search your own media: the one public entry of the search subsystem.
export { MediaIndex } from './media-index';
export type { AddOptions, AddResult, IndexProgress, MediaIndexOptions, SearchInput, SearchOptions, SearchQuery, SearchResult } from './media-index';
export { SqliteStore } from './sqlite-store';
export type { SqliteStoreOptions } from './sqlite-store';
export type { VectorStore, StoredItem, NewItem, StoreHit, EncoderStamp, StoreStats } from './store';
export { recognise, MEDIA_KINDS, type MediaKind, type Recognised } from './kinds';
export { hashFile, readHead, encoderIdentity, type HashedFile } from './identity';
export { walk, type WalkedFile, type WalkOptions } from './walk';
