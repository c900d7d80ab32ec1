/**
 * logkv: an embedded, crash-safe key-value store on an append-only log.
 *
 *   const store = await open<User>('./data');
 *   await store.set('user:1', { name: 'Ada' }, { ttl: 60_000 });
 *   const user = await store.get('user:1');
 *   await store.close();
 *
 * This module holds what applications call, and only that. Storage media for tests (an in-memory
 * file system, fault injection, simulated power loss) are in `logkv/testing` (lib/testing.ts).
 */
export { open, defaultDir } from './open';
export { Store } from './store';
export type {
  BatchOperation, ChangeEvent, DeleteOptions, IfVersion, IterateOptions, SetOptions, StoreEntry, StoreStats, TouchOptions,
  WatchOptions, WriteOptions,
} from './store';
export { ErrorCodes, LogkvError } from './errors';
export type { ErrorCode, ErrorDetails } from './errors';
export type { OpenOptions, SyncMode } from './options';
export type { Medium, MediumFile, OpenFileOptions } from './medium/types';
export type { RecoveryReport, TruncationReport } from './recovery';
export type { CompactOptions, CompactionProgress, CompactionResult } from './compactor';
export type { BackupOptions, BackupProgress, BackupResult } from './backup';
export { checkStore } from './check';
export type { CheckOptions, CheckProblem, CheckReport, CheckSeverity } from './check';
export { FORMAT_VERSION } from './format';

// Backup and restore as NDJSON (lib/dump.ts), the library side of `logkv dump` and `logkv load`.
export { dumpLines, dumpStore, loadStore } from './dump';
export type { DumpOptions, DumpProgress, DumpResult, LoadInput, LoadOptions, LoadProgress, LoadResult } from './dump';
