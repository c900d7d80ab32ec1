/**
 * Compaction: rewrite the sealed segments into new ones that hold only live records, online.
 * This file does the work on files (copy, make durable, remove); every step that touches the live
 * store (seal, what to keep, space, the switch) is a call on the CompactionSwitch (switch.ts).
 * Compactions, at the end, runs one at a time for the Store and starts automatic ones.
 * docs/compaction.md states the steps and why each crash point is safe; in short:
 *
 *  1. Seal: the active segment is sealed (a new one takes the writes) and every queued write to
 *     the sealed ones is made durable. The inputs are all sealed segments, oldest first.
 *  2. Copy: each input is walked (walk.ts, checking every CRC), in slices that yield to the event loop so
 *     reads and writes go on. A record is copied if the keydir still points at it, or a queued
 *     write would point the keydir back at it if that write failed. Expired records, overwritten
 *     records and tombstones are dropped. Outputs are written under temporary names.
 *  3. Make durable: each output and its hint file are fsynced, renamed to their final names, and
 *     the directory is fsynced.
 *  4. Switch: the keydir moves to the outputs in slices (between them reads find a key in an
 *     input or in an output, both valid copies), then in one synchronous step the queued writes'
 *     undo entries, and anything a failed write put back, move too, and the inputs are forgotten.
 *  5. Remove the inputs, oldest first, fsyncing the directory after each.
 *
 * Versions: a copied record keeps its version (its bytes are copied; a version-1 record is
 * re-encoded as version 2 with version 0). Each output's header carries the version floor of
 * the inputs (the highest of their floors and of 1 + every version they held, dropped records
 * included), so a reopen never issues again a version whose record compaction dropped. A
 * compaction whose inputs held records but that keeps none still writes one output, holding no
 * record, for its floor; one whose inputs hold no record changes nothing.
 *
 * Output ids sit between the newest input's id and the new active segment's id, so on replay
 * they come after every input and before every later write. An output only holds copies of
 * records that were the newest for their key among the inputs, so replaying inputs + outputs
 * gives the same state as the inputs alone: that is why the renames of step 3 are safe at any
 * point. Removing the inputs oldest first means the inputs left after a crash in step 5 are
 * always the newest ones, which still hold every tombstone that could matter, so a deleted key
 * cannot come back. Tombstones themselves are never copied: every segment older than the outputs
 * is an input, so no surviving older record is left for a tombstone to hide.
 */
import * as path from 'path';
import { crc32 } from './crc';
import { ErrorCodes, LogkvError, ioError } from './errors';
import {
  FLAG_BATCH_CONT, FORMAT_VERSION, KIND_SEGMENT, RECORD_HEADER_BYTES, RecordHeader, SEGMENT_HEADER_BYTES, TYPE_SET, encodeRecord,
  encodeSegmentHeader,
} from './format';
import { HintWriter, hintFileBytes, hintName } from './hint';
import type { KeyIndex } from './keyindex';
import type { Medium } from './medium/types';
import type { ResolvedOptions } from './options';
import { Segment, TEMP_SUFFIX, isWriteSegmentId, segmentName } from './segment';
import type { SegmentSet } from './segments';
import { RecordSources } from './sources';
import type { CompactionSwitch, SwitchOutput } from './switch';
import { SegmentWalker } from './walk';
import type { LogWriter } from './writer';

export interface CompactOptions {
  /** Report what compaction would reclaim, and change nothing. */
  dryRun?: boolean;
  /** Called as input bytes are processed. */
  onProgress?: (progress: CompactionProgress) => void;
}

export interface CompactionProgress {
  /** 'copy': reading the inputs (bytes are input bytes); 'switch': moving the index to the outputs. */
  phase: 'copy' | 'switch';
  bytesDone: number;
  bytesTotal: number;
}

export interface CompactionResult {
  dryRun: boolean;
  /** Segment files of the whole store, before and after. */
  segmentsBefore: number;
  segmentsAfter: number;
  /** Bytes of the whole store's files (stats().diskBytes: segments, hints and the rest), before and after. */
  bytesBefore: number;
  bytesAfter: number;
  /** Records copied into the new segments, and records dropped (overwritten, deleted, expired, tombstones). */
  recordsKept: number;
  recordsDropped: number;
  durationMs: number;
  /** When it finished, in ms since the epoch. */
  finishedAt: number;
}

/** What a compaction works with: the store's files, and the switch protocol (switch.ts). */
export interface CompactionHost {
  readonly dir: string;
  readonly medium: Medium;
  readonly maxSegmentBytes: number;
  readonly segments: SegmentSet;
  readonly protocol: CompactionSwitch;
  /**
   * Files that could not be removed, oldest first; the next compaction must remove them first.
   * Each keeps its bytes counted (a stray of the segment set) until it is removed.
   */
  readonly garbage: Garbage[];
  now(): number;
  /** True once the store is closing: the compaction stops and discards its work. */
  aborted(): boolean;
}

/** A file awaiting removal, and the bytes the segment set counts for it until then. */
export interface Garbage {
  file: string;
  bytes: number;
}

/** Bytes copied before the compactor yields to the event loop. */
const SLICE_BYTES = 1024 * 1024;

interface Output extends SwitchOutput {
  tempPath: string;
  buffered: Buffer[];
  bufferedBytes: number;
}

/*
 * Space: every byte an output (or its hint) will take is claimed under maxStoreBytes before it
 * is written (CompactionSwitch.reserve), and stays claimed until the switch counts the outputs
 * as segments, or discard() removes them, or, if they cannot be removed, counts them as strays
 * awaiting removal. So the files a compaction has in the directory are always counted, once.
 */

/** A record the copy step keeps: its offset in its input, a copy of its bytes, and what its hint entry needs. */
interface Kept {
  at: number;
  bytes: Buffer;
  keyStart: number;
  keyLength: number;
  expiresAt: number;
  version: number;
}

export async function compact(host: CompactionHost, options: CompactOptions): Promise<CompactionResult> {
  const started = Date.now();
  await removeGarbage(host);
  const segmentsBefore = host.segments.fileCount();
  const bytesBefore = host.segments.diskBytes;
  if (host.protocol.nothingToReclaim()) return unchanged(host, started, segmentsBefore, bytesBefore, options.dryRun === true);
  const { inputs, firstOutputId } = await host.protocol.seal(options.dryRun === true);
  const bytesTotal = inputs.reduce((sum, s) => sum + s.flushed, 0);
  const job = new Job(host, inputs, options, bytesTotal, firstOutputId);
  try {
    await job.copy();
    if (options.dryRun || job.recordsKept + job.recordsDropped === 0) {
      // Inputs that hold no record (an earlier compaction's output kept for its floor) stay as they are.
      await job.discard();
      return job.result(started, segmentsBefore, bytesBefore, options.dryRun === true);
    }
    await job.commit();
  } catch (err) {
    await job.discard();
    throw ioError(err, 'compaction', host.dir);
  }
  await host.protocol.switchOver(inputs, job.outputs, () =>
    options.onProgress?.({ phase: 'switch', bytesDone: bytesTotal, bytesTotal }));
  await removeInputs(host, inputs);
  return job.result(started, segmentsBefore, bytesBefore, false);
}

class Job {
  readonly outputs: Output[] = [];
  recordsKept = 0;
  recordsDropped = 0;
  bytesDone = 0;
  reserved = 0;
  #nextId: number;
  #keptBytes = 0;
  #keptKeyBytes = 0;
  /** The outputs' version floor: the inputs' floors and 1 + every version they held. */
  #floor = 0;

  constructor(private readonly host: CompactionHost, private readonly inputs: Segment[],
              private readonly options: CompactOptions, private readonly bytesTotal: number, firstOutputId: number) {
    this.#nextId = firstOutputId;
  }

  /** Step 2: walk every input in slices and copy what must be kept. */
  async copy(): Promise<void> {
    for (const input of this.inputs) {
      // The walker stops at the first bad record; the input's header names its record layout.
      const walker = SegmentWalker.forSegment(input.file!, input.path, input.id, input.flushed);
      this.bytesDone += input.headerBytes; // so bytesDone reaches bytesTotal, which counts whole files
      this.#floor = Math.max(this.#floor, input.floor);
      let offset = walker.offset;
      while (!walker.done) {
        const undoRefs = this.host.protocol.undoRefs(input.id);
        if (this.host.aborted()) throw new LogkvError(ErrorCodes.CLOSED, 'the store closed during compaction');
        const kept: Kept[] = [];
        walker.walk((at, header, buf, pos) => {
          const keyStart = pos + header.headerLength;
          const key = buf.toString('utf8', keyStart, keyStart + header.keyLength);
          if (header.version >= this.#floor) this.#floor = header.version + 1;
          if (header.type === TYPE_SET && this.host.protocol.mustKeep(key, input.id, at, undoRefs)) {
            kept.push({ at, keyStart: RECORD_HEADER_BYTES, keyLength: header.keyLength, expiresAt: header.expiresAt,
              version: header.version, bytes: copyRecord(header, buf, pos, input.layout.version) });
          } else {
            this.recordsDropped++;
          }
        }, SLICE_BYTES);
        const outcome = walker.outcome;
        if (outcome !== undefined && outcome.cleanEnd < input.flushed) {
          // A sealed segment is whole: recovery would refuse it too (walk.ts judgeWalk).
          const at = outcome.damage?.offset ?? outcome.cleanEnd;
          throw new LogkvError(ErrorCodes.CORRUPTION,
            `compaction found a bad record (${outcome.damage?.reason ?? 'unfinished batch'}) in ${input.path} at offset ${at}`,
            { file: input.path, offset: at });
        }
        for (const record of kept) await this.#append(record, input.id);
        this.bytesDone += walker.offset - offset;
        offset = walker.offset;
        this.options.onProgress?.({ phase: 'copy', bytesDone: this.bytesDone, bytesTotal: this.bytesTotal });
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
    // Inputs held records but none is kept: one output without records carries their floor.
    if (this.outputs.length === 0 && this.recordsDropped > 0 && !this.options.dryRun) await this.#startOutput();
    for (const output of this.outputs) await this.#flush(output);
  }

  /** Appends one record to the current output (starting a new one if it is full). */
  async #append(record: Kept, fromSegment: number): Promise<void> {
    const { bytes } = record;
    this.recordsKept++;
    this.#keptBytes += bytes.length;
    this.#keptKeyBytes += record.keyLength;
    if (this.options.dryRun) return;
    let output = this.outputs[this.outputs.length - 1];
    if (output === undefined || (output.size + bytes.length > this.host.maxSegmentBytes && output.size > SEGMENT_HEADER_BYTES)) {
      // The full output's last records go to its file now, not at the end of the copy: held that
      // long, every output's last slice (up to SLICE_BYTES, and a Buffer object per record)
      // added up to memory that grew with the store.
      if (output !== undefined) await this.#flush(output);
      output = await this.#startOutput();
    }
    if ((bytes[5] & FLAG_BATCH_CONT) !== 0) {
      // Batch atomicity was settled when the batch was first written; alone, a copied record must
      // not look like the start of an unfinished batch.
      bytes[5] &= ~FLAG_BATCH_CONT;
      bytes.writeUInt32LE(crc32(bytes.subarray(4)), 0);
    }
    this.#claim(output, bytes.length);
    output.buffered.push(bytes);
    output.bufferedBytes += bytes.length;
    output.size += bytes.length;
    output.hint.add(bytes, record.keyStart, record.keyLength, bytes.length, record.expiresAt, record.version);
    output.sources.push(fromSegment, record.at);
    if (output.bufferedBytes >= SLICE_BYTES) await this.#flush(output);
  }

  async #startOutput(): Promise<Output> {
    const id = this.#nextId++;
    if (isWriteSegmentId(id)) throw new LogkvError(ErrorCodes.IO, 'compaction ran out of segment ids');
    const tempPath = path.join(this.host.dir, segmentName(id) + TEMP_SUFFIX);
    this.#claim(undefined, SEGMENT_HEADER_BYTES);
    const file = await this.host.medium.open(tempPath, { create: true });
    const output: Output = {
      id, tempPath, file, size: SEGMENT_HEADER_BYTES, floor: 0, hint: new HintWriter(), sources: new RecordSources(),
      buffered: [], bufferedBytes: 0, claimed: SEGMENT_HEADER_BYTES, hintBytes: 0,
    };
    this.outputs.push(output);
    await file.truncate(0);
    // The floor is known once every input is read: commit() writes the header again with it.
    await file.write([encodeSegmentHeader(id)], 0);
    return output;
  }

  /** Claims `bytes` under maxStoreBytes (throws LOGKV_STORE_FULL if they are not there), for `output`'s files. */
  #claim(output: Output | undefined, bytes: number): void {
    this.host.protocol.reserve(bytes);
    this.reserved += bytes;
    if (output !== undefined) output.claimed += bytes;
  }

  async #flush(output: Output): Promise<void> {
    if (output.bufferedBytes === 0) return;
    const chunks = output.buffered;
    const at = output.size - output.bufferedBytes;
    output.buffered = [];
    output.bufferedBytes = 0;
    await output.file.write(chunks, at);
  }

  /** Step 3: each output and its hint durable under its final name, then the directory. */
  async commit(): Promise<void> {
    const { medium, dir } = this.host;
    for (const output of this.outputs) {
      await output.file.write([encodeSegmentHeader(output.id, KIND_SEGMENT, this.#floor)], 0);
      await output.file.sync();
      output.floor = this.#floor;
      const hint = output.hint.finish(output.id, output.size, this.#floor);
      const hintBytes = hint.reduce((sum, part) => sum + part.length, 0);
      this.#claim(output, hintBytes);
      output.hintBytes = hintBytes;
      const hintTemp = path.join(dir, hintName(output.id) + TEMP_SUFFIX);
      const hintFile = await medium.open(hintTemp, { create: true });
      try {
        await hintFile.truncate(0);
        await hintFile.write(hint, 0);
        await hintFile.sync();
      } finally {
        await hintFile.close();
      }
      await medium.rename(output.tempPath, path.join(dir, segmentName(output.id)));
      output.tempPath = '';
      await medium.rename(hintTemp, path.join(dir, hintName(output.id)));
    }
    await medium.syncDir(dir);
  }

  /**
   * Undoes a compaction that did not switch: closes and removes every output, temporary or
   * renamed, and gives back its claim, once. An output that cannot be removed stays counted, as
   * garbage the next compaction removes first.
   */
  async discard(): Promise<void> {
    const { medium, dir, segments, protocol } = this.host;
    let attached = 0;
    for (const output of this.outputs) {
      attached += output.claimed;
      await output.file.close().catch(() => undefined);
      const files: Garbage[] = [
        { file: path.join(dir, segmentName(output.id) + TEMP_SUFFIX), bytes: 0 },
        { file: path.join(dir, segmentName(output.id)), bytes: output.claimed - output.hintBytes },
        { file: path.join(dir, hintName(output.id) + TEMP_SUFFIX), bytes: 0 },
        { file: path.join(dir, hintName(output.id)), bytes: output.hintBytes },
      ];
      let removed = true;
      for (const { file } of files) {
        try {
          await medium.remove(file);
        } catch {
          removed = false;
        }
      }
      protocol.release(output.claimed);
      if (removed) continue;
      // Each kind's bytes ride on its final name, removed after its temporary one: they stop
      // counting only once neither name is left.
      segments.addStray(output.claimed);
      this.host.garbage.push(...files);
    }
    protocol.release(this.reserved - attached); // claimed for an output whose file was never made
    this.reserved = 0;
    if (this.outputs.length > 0) await medium.syncDir(dir).catch(() => undefined);
  }

  result(started: number, segmentsBefore: number, bytesBefore: number, dryRun: boolean): CompactionResult {
    const outputsEstimate = this.#keptBytes === 0 ? 0
      : Math.ceil(this.#keptBytes / Math.max(1, this.host.maxSegmentBytes - SEGMENT_HEADER_BYTES));
    // Input segments and their hints go; outputs and theirs come (diskBytes counts hints too).
    const inputBytes = this.inputs.reduce((sum, s) => sum + s.flushed + s.hintBytes, 0);
    const outputBytes = this.#keptBytes + outputsEstimate * SEGMENT_HEADER_BYTES +
      (outputsEstimate === 0 ? 0 : hintFileBytes(outputsEstimate, this.recordsKept, this.#keptKeyBytes));
    return {
      dryRun,
      segmentsBefore,
      segmentsAfter: dryRun ? segmentsBefore - this.inputs.length + outputsEstimate : this.host.segments.fileCount(),
      bytesBefore,
      bytesAfter: dryRun ? bytesBefore - inputBytes + outputBytes : this.host.segments.diskBytes,
      recordsKept: this.recordsKept,
      recordsDropped: this.recordsDropped,
      durationMs: Date.now() - started,
      finishedAt: this.host.now(),
    };
  }
}

/**
 * The result of a compaction that had nothing to reclaim (CompactionSwitch.nothingToReclaim): it
 * sealed nothing, wrote nothing and took no segment id, so a store compacted again and again while
 * idle never runs out of ids.
 */
function unchanged(host: CompactionHost, started: number, segments: number, bytes: number, dryRun: boolean): CompactionResult {
  return {
    dryRun, segmentsBefore: segments, segmentsAfter: segments, bytesBefore: bytes, bytesAfter: bytes,
    recordsKept: 0, recordsDropped: 0, durationMs: Date.now() - started, finishedAt: host.now(),
  };
}

/**
 * A copy of the record at `buf[pos ..]` as a version-2 record: its bytes as they are if its
 * segment is of version 2 (the caller clears BATCH_CONT), else re-encoded with version 0.
 */
function copyRecord(header: RecordHeader, buf: Buffer, pos: number, segmentVersion: number): Buffer {
  if (segmentVersion === FORMAT_VERSION) return Buffer.from(buf.subarray(pos, pos + header.totalLength));
  const keyStart = pos + header.headerLength;
  const valueStart = keyStart + header.keyLength;
  return encodeRecord(header.type, header.flags & ~FLAG_BATCH_CONT, buf.subarray(keyStart, valueStart),
    buf.subarray(valueStart, pos + header.totalLength), header.expiresAt, 0);
}

/** Step 5: remove the inputs oldest first, each removal durable before the next. */
async function removeInputs(host: CompactionHost, inputs: Segment[]): Promise<void> {
  // A backup whose cut holds these files may still be opening them (lib/backup.ts): it pins the
  // segment set for that long (milliseconds), never for its copy.
  await host.segments.whenUnpinned();
  // The switch counted the inputs' files as strays (SegmentSet.retire): each stops counting once removed.
  const filesOf = (input: Segment): Garbage[] =>
    [{ file: input.path, bytes: input.tail }, { file: path.join(host.dir, hintName(input.id)), bytes: input.hintBytes }];
  for (let i = 0; i < inputs.length; i++) {
    const input = inputs[i];
    await input.file?.close().catch(() => undefined);
    const files = filesOf(input);
    try {
      // Records were dropped because newer writes superseded them, and in 'never' or 'interval'
      // mode those may not be durable yet: until they are, the inputs are what a power loss
      // falls back on. Without this, a power loss could take a synced value with the write that
      // superseded it.
      if (i === 0) await host.protocol.durable();
      for (const file of files) {
        await host.medium.remove(file.file);
        host.segments.removeStray(file.bytes);
        file.bytes = 0;
      }
      await host.medium.syncDir(host.dir);
    } catch (err) {
      // The switch is done; what is left on disk is a suffix of the inputs, which replays
      // correctly. It must go before another compaction drops tombstones that could hide it.
      host.garbage.push(...files);
      for (const later of inputs.slice(i + 1)) host.garbage.push(...filesOf(later));
      throw ioError(err, 'removing compacted segments', input.path);
    }
  }
}

async function removeGarbage(host: CompactionHost): Promise<void> {
  if (host.garbage.length === 0) return;
  try {
    // Oldest first, each removal durable before the next, as removeInputs does: a power loss
    // must never keep the removal of a newer leftover (holding a tombstone) without the older's.
    while (host.garbage.length > 0) {
      const first = host.garbage[0];
      await host.medium.remove(first.file);
      host.segments.removeStray(first.bytes);
      first.bytes = 0;
      await host.medium.syncDir(host.dir);
      host.garbage.shift();
    }
  } catch (err) {
    throw ioError(err, 'removing files left by an earlier compaction', host.garbage[0].file);
  }
}

export interface CompactionsInit {
  dir: string;
  medium: Medium;
  options: ResolvedOptions;
  segments: SegmentSet;
  index: KeyIndex;
  writer: LogWriter;
  protocol: CompactionSwitch;
}

/**
 * The store's compactions: at most one at a time, the last one's result, the automatic trigger
 * and its last failure, and the files an earlier compaction could not remove.
 *
 * Each call gets what it asked for. Compactions run one after another (a dry run reads the very
 * segments a real one removes, so the two never overlap): a real compaction asked for while
 * another real one is running or waiting shares that one's promise; a dry run asked for while a
 * real one runs waits for it, then measures the store it left; a real compaction asked for
 * during a dry run waits for the dry run, then compacts. A dry run asked for while another dry
 * run waits to start shares it (they would measure the same store).
 */
export class Compactions {
  readonly #host: CompactionHost;
  readonly #init: CompactionsInit;
  /** The last compaction asked for, running or waiting; everything before it has settled or runs first. */
  #tail: Promise<unknown> = Promise.resolve();
  /** How many asked-for compactions have not settled yet. */
  #pending = 0;
  /** The real compaction running or waiting to run, which a second real call shares. */
  #real: Promise<CompactionResult> | undefined;
  /** A dry run waiting to start, which a second dry call shares. */
  #dryWaiting: Promise<CompactionResult> | undefined;
  #aborted = false;
  #last: CompactionResult | undefined;
  #autoError: LogkvError | undefined;

  constructor(init: CompactionsInit) {
    this.#init = init;
    const { dir, medium, options, segments, protocol } = init;
    this.#host = {
      dir, medium, segments, protocol,
      maxSegmentBytes: options.maxSegmentBytes,
      garbage: [],
      now: () => options.clock(),
      aborted: () => this.#aborted,
    };
  }

  /** Whether a compaction (or a dry run) is running or waiting to run. */
  get running(): boolean {
    return this.#pending > 0;
  }

  /** The last compaction (not a dry run) that finished. */
  get last(): CompactionResult | undefined {
    return this.#last;
  }

  /** The last automatic compaction's failure, if the last one failed. */
  get lastAutoError(): LogkvError | undefined {
    return this.#autoError;
  }

  /**
   * Starts a compaction of the kind asked for, after any that runs now (see the class comment).
   * Throws the writer's failure if it is poisoned.
   */
  start(options: CompactOptions): Promise<CompactionResult> {
    const dryRun = options.dryRun === true;
    if (!dryRun && this.#real !== undefined) return this.#real;
    if (dryRun && this.#dryWaiting !== undefined) return this.#dryWaiting;
    if (this.#init.writer.failure !== undefined) throw this.#init.writer.failure;
    const run = async (): Promise<CompactionResult> => {
      if (this.#dryWaiting === job) this.#dryWaiting = undefined;
      if (this.#aborted) throw new LogkvError(ErrorCodes.CLOSED, 'the store closed before the compaction started');
      const failure = this.#init.writer.failure;
      if (failure !== undefined) throw failure;
      const result = await compact(this.#host, options);
      if (!result.dryRun) this.#last = result;
      return result;
    };
    this.#pending++;
    const job: Promise<CompactionResult> = this.#tail.then(run, run).finally(() => {
      this.#pending--;
      if (this.#real === job) this.#real = undefined;
      if (this.#dryWaiting === job) this.#dryWaiting = undefined;
    });
    if (dryRun) this.#dryWaiting = job;
    else this.#real = job;
    this.#tail = job.catch(() => undefined);
    return job;
  }

  /** Starts a compaction in the background if dead bytes passed the autoCompact thresholds. */
  maybeStartAuto(): void {
    const { options, segments, index, writer, dir } = this.#init;
    const auto = options.autoCompact;
    if (auto === false || this.#pending > 0 || this.#aborted || writer.failure !== undefined) return;
    const dead = segments.deadBytes(index.liveBytes);
    if (dead < auto.minDeadBytes || dead < auto.minDeadRatio * segments.diskBytes) return;
    this.start({}).then(
      () => { this.#autoError = undefined; },
      (err: unknown) => { this.#autoError = ioError(err, 'automatic compaction', dir); },
    );
  }

  /** Stops a running compaction (it discards its work) and starts no more; resolves when it has stopped. */
  async stop(): Promise<void> {
    this.#aborted = true;
    await this.#tail;
  }
}
