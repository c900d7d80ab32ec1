/**
 * logkv: an embedded, crash-safe key-value store on an append-only log.
 *
 *   const store = await open<User>('./data');
 *   await store.set('user:1', { name: 'Ada' }, { ttl: 60_000 });
 *   const user = await store.get('user:1');
 *   await store.close();
 */
export { open, defaultDir } from './open';
export { Store } from './store';
export type { BatchOperation, IterateOptions, StoreEntry, StoreStats, WriteOptions } from './store';
export { ErrorCodes, LogkvError } from './errors';
export type { ErrorCode, ErrorDetails } from './errors';
export type { OpenOptions, SyncMode } from './options';
export type { Medium, MediumFile, OpenFileOptions } from './medium/types';
export type { RecoveryReport, TruncationReport } from './recovery';
export type { CompactOptions, CompactionProgress, CompactionResult } from './compactor';
export { checkStore } from './check';
export type { CheckOptions, CheckProblem, CheckReport, CheckSeverity } from './check';
export { FORMAT_VERSION } from './format';
export { MemoryMedium, DROP_UNSYNCED, KEEP_UNSYNCED, randomCrash } from './medium/memory';
export type { ChangeFate, CrashChooser, DataChange, EntryChange, SystemError, UnsyncedDirectory, UnsyncedFile } from './medium/memory';
export { FaultyMedium } from './medium/faulty';
export type { Fault, FaultOperation, FaultPlan, FaultyOptions, OperationEvent, PowerLossOptions } from './medium/faulty';
export { seededRandom } from './medium/random';
export type { Random } from './medium/random';
