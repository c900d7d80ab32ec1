/**
 * logkv/testing: storage media for tests, and the tools to break them.
 *
 *   import { open } from 'logkv';
 *   import { MemoryMedium } from 'logkv/testing';
 *   const store = await open('/db', { medium: new MemoryMedium() });   // no disk, no cleanup
 *
 * - MemoryMedium: an in-memory file system that keeps what was synced apart from what was only
 *   written, so a test can simulate a power loss (crash() with DROP_UNSYNCED, KEEP_UNSYNCED or
 *   randomCrash) and reopen what a disk would have kept. Worth having in an application's own
 *   tests: fast, isolated, and it never leaves files behind.
 * - FaultyMedium: wraps another medium and fails the operations a FaultPlan names (a write, a
 *   sync, a rename...), tears writes, flips bits, and records every operation.
 * - seededRandom: the seeded generator the crash harness uses; print the seed to replay a failure.
 *
 * None of this is needed to use logkv, which is why it is not in the root export.
 */
export { MemoryMedium, DROP_UNSYNCED, KEEP_UNSYNCED, randomCrash, writebackError } from './medium/memory';
export type {
  ChangeFate, CrashChooser, DataChange, EntryChange, RandomCrashOptions, SystemError, UnsyncedDirectory, UnsyncedFile,
} from './medium/memory';
export { FaultyMedium } from './medium/faulty';
export type {
  Fault, FaultEvent, FaultOperation, FaultPlan, FaultyOptions, OperationEvent, PowerLossOptions, RandomFaultSource, RandomFaults,
} from './medium/faulty';
export { seededRandom } from './medium/random';
export type { Random } from './medium/random';
export type { Medium, MediumFile, OpenFileOptions } from './medium/types';
