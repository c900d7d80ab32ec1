/**
 * The compaction switch: everything a compaction asks of the live store, and the moment the store
 * moves from the compaction's inputs to its outputs, in one object, steps in order.
 * lib/compactor.ts does the file work (copy, make durable, remove) and calls this; docs/compaction.md
 * gives the whole protocol and why each crash point is safe.
 *
 *  1. seal()        the active segment is sealed and every queued write made durable; the
 *                   inputs are the segments sealed now, oldest first.
 *  2. mustKeep()    during the copy, per record: keep it if the index still points at it, or a
 *                   queued write would point the index back at it if that write failed
 *                   (undoRefs()). reserve()/release() claim disk space for the outputs.
 *  3. switchOver()  once the outputs are durable under their final names:
 *       a. begin:   the outputs join the segment set (readable), the inputs stay;
 *       b. slices:  each key that still points at a copied record moves to its copy, SWITCH_SLICE
 *                   records per turn of the event loop (between slices a key points into an
 *                   input or an output, both valid copies, so every read is right);
 *       c. strays:  references into the inputs that remain, held by queued writes' undo entries
 *                   or put back by a write that failed during the switch, are looked up in the
 *                   outputs' hints;
 *       d. finish:  in one synchronous step, so no read or write sees it half done, the strays
 *                   move to their copies, keys with an expiry still in an input (expired when
 *                   copied, so not copied) are dropped, and the inputs are forgotten.
 *  4. durable()     before the inputs are removed, every write so far is made durable.
 */
import * as path from 'path';
import { ErrorCodes, LogkvError } from './errors';
import { FORMAT_VERSION } from './format';
import { HintCursor, HintWriter, startOfHints } from './hint';
import type { Entry } from './keydir';
import type { KeyIndex } from './keyindex';
import type { MediumFile } from './medium/types';
import type { Reader } from './reader';
import { Segment, isWriteSegmentId, segmentName } from './segment';
import type { RecordSources } from './sources';
import { type SegmentSet, isUnborn } from './segments';
import type { LogWriter } from './writer';

/** Records relocated per turn of the event loop during the switch. */
const SWITCH_SLICE = 20_000;

/** A compaction output, durable under its final name, and where each of its records came from. */
export interface SwitchOutput {
  id: number;
  file: MediumFile;
  size: number;
  /** The version floor its header carries (compactor.ts). */
  floor: number;
  hint: HintWriter;
  /** Where each record came from, in output order: input segment id and offset (off the JS heap). */
  sources: RecordSources;
  /** Bytes of its hint file, written beside it. */
  hintBytes: number;
  /** Bytes claimed under maxStoreBytes for it and its hint (reserve()): its size plus hintBytes. */
  claimed: number;
}

export interface SwitchRooms {
  dir: string;
  maxStoreBytes: number;
  segments: SegmentSet;
  index: KeyIndex;
  writer: LogWriter;
  reader: Reader;
  /** Called at the end of every switch (a shared store's owner tells its clients: lib/shared/role.ts). */
  afterSwitch?: () => void;
}

/** Set while a switch runs: the inputs, and keys a failed write put back into one of them. */
interface Switching {
  inputs: Segment[];
  inputIds: Set<number>;
  restored: Set<string>;
}

export class CompactionSwitch {
  readonly #rooms: SwitchRooms;
  #switching: Switching | undefined;

  constructor(rooms: SwitchRooms) {
    this.#rooms = rooms;
  }

  // ---------------------------------------------------------------- 1. seal

  /**
   * Whether a compaction now would reclaim nothing: no write since the last one (the active
   * segment holds nothing), every segment is a compaction output (dense, with its hint) of this
   * format version (an older one's records are re-encoded by a compaction), and no record in them
   * is dead (overwritten, deleted or expired). Such a compaction would only copy the same records
   * under new ids, so it is skipped.
   */
  nothingToReclaim(): boolean {
    const { segments, index } = this.#rooms;
    const active = segments.active;
    if (!isUnborn(active)) return false;
    for (const segment of segments.all()) {
      if (segment === active) continue;
      if (isWriteSegmentId(segment.id) || segment.layout.version !== FORMAT_VERSION) return false;
    }
    return segments.deadBytes(index.liveBytes) === 0;
  }

  /**
   * Seals the active segment (unless `dryRun`); resolves with the segments sealed now, oldest
   * first, once every write made so far is durable, and the first id the outputs may take.
   *
   * The outputs take the ids just above the sealed segment's, below the new active one's. The
   * active segment is sealed even if it holds nothing yet (it has no file, so its id is simply
   * never used): otherwise a compaction of nothing but earlier outputs would have to take ids
   * above theirs, and compactions of an idle store would creep through the ids between two write
   * segments until they ran out. So each compaction uses the ids of one write segment.
   */
  async seal(dryRun: boolean): Promise<{ inputs: Segment[]; firstOutputId: number }> {
    const { writer, segments } = this.#rooms;
    const firstOutputId = segments.active.id + 1;
    if (!dryRun) writer.seal();
    // The inputs are the segments sealed now. Taken after the sync below, a segment that writes
    // made meanwhile filled and rotated would be one too, though it holds writes newer than the
    // seal (and queued ones, whose undo the copy keeps): see the regression spec in
    // spec/faults/compaction.spec.ts.
    const limit = dryRun ? Infinity : segments.active.id;
    await writer.sync();
    return { inputs: segments.withFilesBelow(limit), firstOutputId };
  }

  // ---------------------------------------------------------------- 2. what the copy asks

  /** Offsets in `segmentId` that queued or in-flight writes would restore if they failed. */
  undoRefs(segmentId: number): Set<number> {
    const refs = new Set<number>();
    this.#rooms.writer.forEachUndo((previous) => {
      if (previous.segmentId === segmentId) refs.add(previous.offset);
    });
    return refs;
  }

  /** Whether the record of `key` at (segmentId, offset) must be copied; `undoRefs` from undoRefs(). */
  mustKeep(key: string, segmentId: number, offset: number, undoRefs: ReadonlySet<number>): boolean {
    return undoRefs.has(offset) || this.#rooms.index.isLiveAt(key, segmentId, offset);
  }

  /** Claims disk space for outputs under maxStoreBytes; throws LOGKV_STORE_FULL if it is not there. */
  reserve(bytes: number): void {
    const { segments, maxStoreBytes } = this.#rooms;
    if (!segments.claim(bytes, maxStoreBytes)) {
      throw new LogkvError(ErrorCodes.STORE_FULL, `compaction needs more room than maxStoreBytes (${maxStoreBytes}) leaves`);
    }
  }

  release(bytes: number): void {
    this.#rooms.segments.release(bytes);
  }

  // ---------------------------------------------------------------- 3. the switch

  /** Moves the store from `inputs` to `outputs`; `onSlice` is called between slices. */
  async switchOver(inputs: Segment[], outputs: SwitchOutput[], onSlice: () => void): Promise<void> {
    this.#begin(inputs, outputs);
    for (const output of outputs) {
      const cursor: HintCursor = startOfHints();
      let more = true;
      while (more) {
        more = output.hint.walk(cursor, SWITCH_SLICE, (buf, keyStart, keyLength, entry) => {
          const i = cursor.entry;
          this.#rooms.index.relocate(buf, keyStart, keyLength, output.sources.segmentAt(i), output.sources.offsetAt(i), entry);
        }, output.id);
        if (more) {
          onSlice();
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
      }
    }
    this.#finish(findCopies(outputs, this.#strayRefs()));
  }

  /** a. The outputs become segments of the store (readable); the inputs stay until the finish. */
  #begin(inputs: Segment[], outputs: SwitchOutput[]): void {
    const { segments, writer, dir } = this.#rooms;
    for (const o of outputs) {
      const segment = new Segment(o.id, path.join(dir, segmentName(o.id)), o.file, o.size, undefined, o.floor);
      segment.hintBytes = o.hintBytes;
      segments.add(segment);
      // From here its files count as a segment of the set (recount below), no longer as a claim.
      segments.release(o.claimed);
      o.claimed = 0;
    }
    const switching: Switching = { inputs, inputIds: new Set(inputs.map((s) => s.id)), restored: new Set() };
    this.#switching = switching;
    writer.watchRestores((key, previous) => {
      if (switching.inputIds.has(previous.segmentId)) switching.restored.add(key);
    });
    segments.recount();
  }

  /**
   * c. Input locations that must survive the switch: the undo entries of queued and in-flight
   * writes, and index entries that a write failing during the switch put back after their key
   * moved. Usually none.
   */
  #strayRefs(): Map<number, Set<number>> {
    const refs = new Map<number, Set<number>>();
    const switching = this.#switching!;
    const add = (entry: Entry | undefined): void => {
      if (entry === undefined || !switching.inputIds.has(entry.segmentId)) return;
      let offsets = refs.get(entry.segmentId);
      if (offsets === undefined) refs.set(entry.segmentId, (offsets = new Set()));
      offsets.add(entry.offset);
    };
    this.#rooms.writer.forEachUndo(add);
    for (const key of switching.restored) add(this.#rooms.index.get(key));
    return refs;
  }

  /**
   * d. The end of the switch, synchronous so no read or write sees it half done: stray references
   * move to their copies, what still points into an input was expired when copied (so it was
   * not) and is dropped, and the inputs are forgotten.
   */
  #finish(found: Map<number, Map<number, Entry>>): void {
    const { index, writer, segments, reader } = this.#rooms;
    const switching = this.#switching!;
    const relocate = (entry: Entry): Entry | undefined =>
      !switching.inputIds.has(entry.segmentId) ? entry : found.get(entry.segmentId)?.get(entry.offset);
    writer.remapUndo(relocate);
    for (const key of switching.restored) {
      const entry = index.get(key);
      if (entry !== undefined && switching.inputIds.has(entry.segmentId)) index.apply(key, relocate(entry));
    }
    index.dropExpiringIn(switching.inputIds);
    for (const input of switching.inputs) {
      // Its files count as strays until compaction's last step removes them.
      segments.retire(input.id);
      reader.forget(input.id);
    }
    writer.watchRestores(undefined);
    this.#switching = undefined;
    this.#rooms.afterSwitch?.();
  }

  // ---------------------------------------------------------------- 4. before removal

  /** Resolves when every write made so far is durable, whatever the sync mode. */
  durable(): Promise<void> {
    return this.#rooms.writer.sync();
  }
}

/** The copies of the stray references (input segment -> offset -> entry in an output), from the outputs' hints. */
function findCopies(outputs: SwitchOutput[], stray: Map<number, Set<number>>): Map<number, Map<number, Entry>> {
  const found = new Map<number, Map<number, Entry>>();
  if (stray.size === 0) return found;
  for (const output of outputs) {
    const cursor = startOfHints();
    output.hint.walk(cursor, Infinity, (_buf, _keyStart, _keyLength, entry) => {
      const i = cursor.entry;
      const fromSegment = output.sources.segmentAt(i);
      const fromOffset = output.sources.offsetAt(i);
      if (stray.get(fromSegment)?.has(fromOffset)) {
        let bySegment = found.get(fromSegment);
        if (bySegment === undefined) found.set(fromSegment, (bySegment = new Map()));
        bySegment.set(fromOffset, entry);
      }
    }, output.id);
  }
  return found;
}

