/**
 * A client's view of a log another process writes: its own index, segment set and reader, built
 * from the files without changing any of them, then kept up with the log as the owner appends and
 * compacts. docs/sharing.md states what a read sees; in brief:
 *
 * - Build: the head file says how far the owner's log goes (segment, end) and which segments are
 *   gone (below `floor`). Every segment at or above the floor is replayed in id order, from its
 *   hint if it has one, else by walking it: sealed segments to their end, the head's segment only
 *   to the head's end. Past it the owner may be appending this very moment, and a half-written
 *   group must not be mistaken for a torn tail, or applied. Nothing is removed, cut or written.
 * - Tail: before a read, the head is read (one pread, cached until the current task of the event
 *   loop ends: see head()) and the records between what was applied and the head are walked and
 *   applied. Write segments follow each other by id, so a rotation is a move to the next id,
 *   finishing the sealed one to its end first.
 * - Compaction: the owner raises the floor when a compaction switch ends. Outputs (ids between the
 *   floor and the next write segment) are read, from their hints, and every key whose entry points
 *   below the floor moves to its copy; keys left below it had expired when copied and are dropped;
 *   the old segments are closed. It runs in the background, one output per turn of the event
 *   loop: until it ends, entries point into old segments, whose files this process still holds
 *   open, so every read stays right.
 * - A segment that is gone before this process read it (it slept through a rotation and a
 *   compaction) leaves a gap no hint can fill in order: the follower then builds everything again
 *   from the files, in log order, and reads wait for it.
 */
import * as fs from 'fs';
import * as path from 'path';
import { ErrorCodes, LogkvError, corruption, ioError, isErrno } from '../errors';
import { RecordLayout, SEGMENT_HEADER_BYTES, checkSegmentHeader } from '../format';
import { hintName, parseHintName, readHint } from '../hint';
import { Entry } from '../keydir';
import { KeyIndex } from '../keyindex';
import { fileSystem } from '../medium/fs';
import type { MediumFile } from '../medium/types';
import type { ResolvedOptions } from '../options';
import { Reader } from '../reader';
import { RecoveryReport, VersionSeen, replayVisitor } from '../recovery';
import { Segment, isWriteSegmentId, nextWriteSegmentId, parseSegmentName, segmentName } from '../segment';
import { SegmentSet } from '../segments';
import { RecordVisitor, SegmentWalker } from '../walk';
import { Head, HeadReader } from './head';

/** The rooms a client reads through; replaced whole when the follower builds everything again. */
export interface FollowerRooms {
  index: KeyIndex;
  segments: SegmentSet;
  reader: Reader;
}

/** Where the follower stands in the log. */
interface Position {
  /** Every segment below it is gone (or going). */
  floor: number;
  /** The newest write segment it has applied records of, and where they end. */
  tailId: number;
  tailEnd: number;
}

/** How often a client that does not read brings its index up to the head anyway. */
const IDLE_FOLLOW_MS = 50;
/** How often it does while someone watches its changes. */
const WATCHED_FOLLOW_MS = 5;

/** Clears a follower's cached head (a function of its own, so a tick allocates no closure). */
function forget(follower: Follower): void {
  follower.forgetHead();
}

/** A segment this process needed is gone: the index must be built again from the files. */
class SegmentGone extends Error {}

/**
 * A Reader that reads a record once more when its checks fail: a block cached while the owner's
 * write at that place was later undone (a failed write, or a torn tail a new owner cut) holds
 * bytes that are no longer the file's. The first failure drops the cached blocks.
 */
class FollowingReader extends Reader {
  override read(key: string, entry: Entry): unknown {
    return twice(() => super.read(key, entry));
  }

  override readEntry(key: string, entry: Entry): { value: unknown; version: number } {
    return twice(() => super.readEntry(key, entry));
  }

  override version(key: string, entry: Entry): number {
    return twice(() => super.version(key, entry));
  }

  override valueBytes(key: string, entry: Entry): Buffer {
    return twice(() => super.valueBytes(key, entry));
  }
}

/** `read()`, once more if it fails its checks the first time (FollowingReader). */
function twice<T>(read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (!(err instanceof LogkvError) || err.code !== ErrorCodes.CORRUPTION) throw err;
    return read();
  }
}

/**
 * What a follower tells its change feed (lib/watch.ts): the records of the writes it applied
 * while tailing, in log order, with their segment's layout. Compaction's copies are not changes.
 */
export type PublishRecords = (records: Buffer[], layout: RecordLayout) => void;

export class Follower {
  readonly #dir: string;
  readonly #options: ResolvedOptions;
  readonly #head: HeadReader;
  #rooms: FollowerRooms;
  #at: Position;
  #cachedHead: Head | undefined;
  #switching: Promise<void> | undefined;
  #rebuilding: Promise<void> | undefined;
  #failure: LogkvError | undefined;
  #closed = false;
  #idleTimer: NodeJS.Timeout | undefined;
  /** Where the records go as they are applied, while someone watches. */
  #publish: PublishRecords | undefined;
  /** Above every version in the files the follower read, and at least every floor it saw. */
  #nextVersion: number;
  readonly #onRebuilt: (rooms: FollowerRooms) => void;
  readonly report: RecoveryReport;

  private constructor(dir: string, options: ResolvedOptions, head: HeadReader, built: Built, onRebuilt: (rooms: FollowerRooms) => void) {
    this.#dir = dir;
    this.#options = options;
    this.#head = head;
    this.#rooms = built.rooms;
    this.#at = built.at;
    this.#nextVersion = built.nextVersion;
    this.report = built.report;
    this.#onRebuilt = onRebuilt;
    this.#schedule();
  }

  /** The version the next write of the store gets, as far as this follower read the log: for a takeover. */
  get nextVersion(): number {
    return this.#nextVersion;
  }

  /**
   * Publishes the records it applies from now on to `publish` (undefined: stops). While someone
   * watches, the follower reads the head every few milliseconds, so a watcher in a client learns
   * of another process's write about that long after it resolved.
   */
  watch(publish: PublishRecords | undefined): void {
    if (publish !== undefined) this.#catchUpQuietly();
    this.#publish = publish;
    this.#schedule();
  }

  #schedule(): void {
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer);
    if (this.#closed) return;
    const ms = this.#publish === undefined ? IDLE_FOLLOW_MS : WATCHED_FOLLOW_MS;
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = undefined;
      this.#followInBackground();
      this.#schedule();
    }, ms);
    this.#idleTimer.unref();
  }

  /** Builds a follower of the store in `dir`, whose owner publishes `head`. */
  static async open(dir: string, options: ResolvedOptions, head: HeadReader,
                    onRebuilt: (rooms: FollowerRooms) => void): Promise<Follower> {
    const built = await build(dir, options, head);
    // Expired keys leave the index in the background, as in an owner's (keyindex.ts).
    built.rooms.index.start();
    return new Follower(dir, options, head, built, onRebuilt);
  }

  get rooms(): FollowerRooms {
    return this.#rooms;
  }

  /**
   * The head, read at most once per task of the event loop (an I/O callback, a timer, an
   * immediate, with the promise jobs that follow it).
   *
   * The promise is about what the application can know: a write that resolved in another process
   * reaches this one only as an event (a socket's data, a message from a worker, a timer that
   * polled), and every event is its own task. Node runs each task's process.nextTick queue and
   * promise jobs to the end before it starts the next task, and a tick queued from a promise job
   * runs only once the promise jobs queued so far are done. So a cache cleared by a tick lives
   * through one task, promise jobs included, and never into the next: a loop of awaited reads
   * pays one read of the head, a request handler one per request. (A microtask would clear it
   * between the awaited reads of one task too, at one pread each; setImmediate would be wrong:
   * the I/O callbacks of a loop iteration all run before it.) What a task learns synchronously
   * (a readFileSync of a file another process wrote) is outside the promise: docs/sharing.md.
   */
  head(): Head {
    let head = this.#cachedHead;
    if (head === undefined) {
      head = this.#head.read();
      if (head === undefined) throw new LogkvError(ErrorCodes.IO, `the head file of ${this.#dir} is unreadable`, { file: this.#dir });
      this.#cachedHead = head;
      process.nextTick(forget, this);
    }
    return head;
  }

  /** Forgets the cached head: the next read of it is fresh (after an answer from the owner). */
  forgetHead(): void {
    this.#cachedHead = undefined;
  }

  /**
   * Brings the index up to the head, synchronously when it can; a promise when a read must wait
   * (the index is being built again). Throws what the log's records fail with.
   */
  catchUp(): Promise<void> | undefined {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#rebuilding !== undefined) return this.#rebuilding;
    const head = this.head();
    const at = this.#at;
    if (head.segment === at.tailId && head.end === at.tailEnd && head.floor === at.floor) return undefined;
    try {
      this.#tail(head);
    } catch (err) {
      if (!(err instanceof SegmentGone)) throw err;
      return this.#rebuild();
    }
    if (head.floor > at.floor && this.#switching === undefined) {
      this.#switching = this.#followSwitches().finally(() => { this.#switching = undefined; });
      this.#switching.catch(() => undefined);
    }
    return undefined;
  }

  /** Resolves once no compaction is being followed and no rebuild runs, the index caught up. */
  async settle(): Promise<void> {
    for (;;) {
      this.forgetHead();
      await this.catchUp();
      if (this.#switching === undefined && this.#rebuilding === undefined) return;
      await this.#switching?.catch(() => undefined);
      await this.#rebuilding?.catch(() => undefined);
    }
  }

  /** Where the follower stands: what takeover recovers from. */
  get position(): Readonly<Position> {
    return this.#at;
  }

  /** Stops following; the files stay open (the rooms are the caller's to close or hand on). */
  stop(): void {
    this.#closed = true;
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer);
    this.#head.close();
  }

  /**
   * Keeps the index near the head while this process does not read: a takeover then recovers
   * only what was written in the last moments, not everything since the last read (the failover
   * time must not grow with the writes a quiet client missed), and the next read has little to do.
   */
  #followInBackground(): void {
    if (this.#closed || this.#failure !== undefined) return;
    this.forgetHead();
    this.#catchUpQuietly();
  }

  #catchUpQuietly(): void {
    try {
      this.catchUp()?.catch(() => undefined);
    } catch {
      // The next read reports what failed.
    }
  }

  // ---------------------------------------------------------------- tailing

  /** Applies the records between where the follower stands and `head`, segment by segment. */
  #tail(head: Head): void {
    const at = this.#at;
    while (at.tailId < head.segment) {
      // The tail segment is sealed: a later one has records, and the owner syncs a segment
      // before it creates the next. So its file's size is its end.
      this.#apply(at.tailId, at.tailEnd, undefined);
      at.tailId = nextWriteSegmentId(at.tailId);
      // New write segments are of the current format (the writer never appends to an older one).
      at.tailEnd = SEGMENT_HEADER_BYTES;
    }
    if (at.tailId === head.segment && head.end > at.tailEnd) this.#apply(at.tailId, at.tailEnd, head.end);
  }

  /**
   * Walks segment `id` from `from` to `to` (undefined: to its file's end, for a sealed one),
   * applying its records. Throws SegmentGone if it has records this process can no longer read.
   */
  #apply(id: number, from: number, to: number | undefined): void {
    const { segments, index } = this.#rooms;
    let segment = segments.get(id);
    if (segment?.file === undefined) {
      if (to !== undefined && to <= SEGMENT_HEADER_BYTES) return;
      const file = openReadOnly(path.join(this.#dir, segmentName(id)));
      if (file === undefined) throw new SegmentGone(`${segmentName(id)} is gone`);
      segment = segmentOver(id, file, file.sizeSync());
      segment.tail = segment.flushed = segment.synced = segment.layout.fileHeaderBytes;
      this.#sawFloor(segment.floor);
      segments.add(segment);
    }
    const end = to ?? segment.file!.sizeSync();
    const start = Math.max(from, segment.layout.fileHeaderBytes);
    let recordsEnd = end;
    if (end > start) {
      const seen: VersionSeen = { max: 0 };
      const publish = this.#publish;
      const records: Buffer[] = [];
      const replay = replayVisitor(id, (bytes, keyStart, keyLength, entry) => index.applyBytes(bytes, keyStart, keyLength, entry), seen);
      const visit: RecordVisitor = publish === undefined ? replay : (offset, record, buf, pos) => {
        replay(offset, record, buf, pos);
        // A copy: the walker reuses its buffer.
        records.push(Buffer.from(buf.subarray(pos, pos + record.totalLength)));
      };
      const walker = SegmentWalker.forSegment(segment.file!, segment.path, id, end, { start });
      const outcome = walker.walkAll(visit);
      // Zero padding after the records (preallocated space) ends a sealed segment's records.
      if (to === undefined && outcome.paddingFrom !== undefined) recordsEnd = outcome.paddingFrom;
      if (outcome.cleanEnd < recordsEnd) {
        throw corruption(`bad record (${outcome.damage?.reason ?? 'unfinished batch'}) before the head`, segment.path,
          outcome.damage?.offset ?? outcome.cleanEnd);
      }
      this.#nextVersion = Math.max(this.#nextVersion, seen.max + 1);
      if (publish !== undefined && records.length > 0) publish(records, segment.layout);
    }
    segment.tail = segment.flushed = segment.synced = Math.max(recordsEnd, segment.flushed);
    // How far the file extends: its records, then the zero padding the owner preallocated, which
    // diskBytes counts here as in the owner. A sealed segment's file was just measured (a size seen
    // while the owner had it padded is stale once the owner sealed and cut it). The head segment's
    // is measured again only when its records pass the end last measured: the owner extends the
    // padding only then, in the write that passes it (writer.ts #preallocateTo).
    if (to === undefined) segment.allocated = end;
    else if (segment.flushed > segment.allocated) segment.allocated = Math.max(segment.file!.sizeSync(), segment.flushed);
    if (id === this.#at.tailId) this.#at.tailEnd = Math.max(this.#at.tailEnd, recordsEnd);
    segments.recount();
  }

  #sawFloor(floor: number): void {
    if (floor > this.#nextVersion) this.#nextVersion = floor;
  }

  // ---------------------------------------------------------------- compaction

  /** Follows every compaction switch the head shows, oldest first; builds again if one cannot be followed. */
  async #followSwitches(): Promise<void> {
    try {
      for (;;) {
        if (this.#closed) return;
        this.forgetHead();
        const head = this.head();
        if (head.floor <= this.#at.floor) return;
        if (!(await this.#switchTo(head.floor))) {
          this.forgetHead();
          if (this.head().floor === head.floor) throw new SegmentGone('an output of the compaction is gone');
        }
      }
    } catch (err) {
      if (this.#closed) return;
      this.#switching = undefined;
      await this.#rebuild().catch(() => undefined);
      if (!(err instanceof SegmentGone)) throw err;
    }
  }

  /**
   * Moves the index off the segments below `floor` onto the compaction's outputs. The records of
   * every write segment below the floor were applied before (tailing finishes a sealed segment
   * before it moves on), so a key whose entry points below the floor holds the newest record the
   * compaction read for it, and the outputs hold its copy.
   */
  async #switchTo(floor: number): Promise<boolean> {
    const { segments } = this.#rooms;
    const outputs: Segment[] = [];
    if (!isWriteSegmentId(floor)) {
      const limit = nextWriteSegmentId(floor);
      const names = await fileSystem.list(this.#dir);
      const ids = names.map(parseSegmentName).filter((id): id is number => id !== undefined && id >= floor && id < limit)
        .sort((a, b) => a - b);
      for (const id of ids) {
        const known = segments.get(id);
        if (known?.file !== undefined) { outputs.push(known); continue; }
        const file = openReadOnly(path.join(this.#dir, segmentName(id)));
        // Gone already: a later compaction removed it, so the head's floor moved on; follow that one.
        if (file === undefined) return false;
        const segment = segmentOver(id, file, file.sizeSync());
        // An output's floor is above every version in its inputs, dropped records included.
        this.#sawFloor(segment.floor);
        segments.add(segment);
        outputs.push(segment);
      }
    }
    for (const output of outputs) {
      this.#relocateInto(output, floor);
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.#closed || this.#rooms.segments !== segments) return true;
    }
    const gone = new Set<number>();
    for (const segment of segments.all()) if (segment.id < floor) gone.add(segment.id);
    this.#rooms.index.dropExpiringIn(gone);
    for (const id of gone) {
      const segment = segments.get(id)!;
      segments.remove(id);
      this.#rooms.reader.forget(id);
      void segment.file?.close().catch(() => undefined);
    }
    segments.recount();
    this.#at.floor = floor;
    return true;
  }

  /** Points every key whose entry lies below `floor` at its copy in `output`. */
  #relocateInto(output: Segment, floor: number): void {
    const index = this.#rooms.index;
    const visit = (bytes: Buffer, keyStart: number, keyLength: number, entry: Entry | undefined): void => {
      if (entry === undefined) return;
      const key = bytes.toString('utf8', keyStart, keyStart + keyLength);
      const current = index.get(key);
      if (current !== undefined && current.segmentId < floor) index.apply(key, entry);
    };
    if (readHintOf(this.#dir, output, visit) !== undefined) return;
    const walker = SegmentWalker.forSegment(output.file!, output.path, output.id, output.flushed);
    walker.walkAll(replayVisitor(output.id, visit));
  }

  // ---------------------------------------------------------------- building again

  /** Builds the rooms again from the files; reads wait for it. */
  #rebuild(): Promise<void> {
    if (this.#rebuilding !== undefined) return this.#rebuilding;
    const old = this.#rooms;
    this.#rebuilding = (async () => {
      await this.#switching?.catch(() => undefined);
      const built = await build(this.#dir, this.#options, this.#head);
      this.#rooms = built.rooms;
      this.#at = built.at;
      this.#nextVersion = Math.max(this.#nextVersion, built.nextVersion);
      old.index.stop();
      built.rooms.index.start();
      this.#onRebuilt(built.rooms);
      await old.segments.closeAll();
    })().then(
      () => { this.#rebuilding = undefined; },
      (err: unknown) => {
        this.#rebuilding = undefined;
        this.#failure = ioError(err, `following ${this.#dir}`, this.#dir);
        throw this.#failure;
      },
    );
    return this.#rebuilding;
  }
}

interface Built {
  rooms: FollowerRooms;
  at: Position;
  report: RecoveryReport;
  nextVersion: number;
}

/**
 * Replays every segment at or above the head's floor into fresh rooms, changing nothing on disk.
 * A segment that disappears meanwhile (a compaction ended) starts it over.
 */
async function build(dir: string, options: ResolvedOptions, headReader: HeadReader): Promise<Built> {
  for (let attempt = 0; ; attempt++) {
    const head = headReader.read();
    if (head === undefined) throw new LogkvError(ErrorCodes.IO, `the head file of ${dir} is unreadable`, { file: dir });
    try {
      return await buildAt(dir, options, head);
    } catch (err) {
      if (!(err instanceof SegmentGone) || attempt >= 20) throw err;
    }
  }
}

async function buildAt(dir: string, options: ResolvedOptions, head: Head): Promise<Built> {
  const names = await fileSystem.list(dir);
  const hinted = new Set(names.map(parseHintName).filter((id): id is number => id !== undefined));
  const ids = names.map(parseSegmentName)
    .filter((id): id is number => id !== undefined && id >= head.floor && id <= head.segment)
    .sort((a, b) => a - b);
  const report: RecoveryReport = { segments: ids.length, records: 0, hinted: 0, hintsIgnored: [], removed: [], snapshot: false };
  const index = new KeyIndex(options.clock);
  const apply = (bytes: Buffer, start: number, length: number, entry: Entry | undefined): void => index.applyBytes(bytes, start, length, entry);
  const opened: Segment[] = [];
  let nextVersion = 1;
  try {
    for (const id of ids) {
      const file = openReadOnly(path.join(dir, segmentName(id)));
      if (file === undefined) throw new SegmentGone(`${segmentName(id)} is gone`);
      const size = file.sizeSync();
      const end = id === head.segment ? Math.min(head.end, size) : size;
      const segment = segmentOver(id, file, end);
      // The file, padding included, takes disk: counted as the owner counts it (past the head's
      // end of the head segment: the padding the owner preallocated, or a group being written).
      segment.allocated = size;
      opened.push(segment);
      nextVersion = Math.max(nextVersion, segment.floor);
      if (end <= segment.layout.fileHeaderBytes) continue;
      if (hinted.has(id) && !isWriteSegmentId(id)) {
        const highest = readHintOf(dir, segment, apply);
        if (highest !== undefined) {
          report.hinted++;
          nextVersion = Math.max(nextVersion, highest + 1);
          continue;
        }
      }
      const seen: VersionSeen = { max: 0 };
      const walker = SegmentWalker.forSegment(file, segment.path, id, end);
      const outcome = walker.walkAll(replayVisitor(id, apply, seen));
      report.records += outcome.records;
      nextVersion = Math.max(nextVersion, seen.max + 1);
      const recordsEnd = id === head.segment ? end : outcome.paddingFrom ?? end;
      if (outcome.cleanEnd < recordsEnd) {
        throw corruption(`bad record (${outcome.damage?.reason ?? 'unfinished batch'})`, segment.path,
          outcome.damage?.offset ?? outcome.cleanEnd);
      }
      if (recordsEnd < end) segment.tail = segment.flushed = segment.synced = recordsEnd;
    }
  } catch (err) {
    await Promise.all(opened.map((s) => s.file?.close().catch(() => undefined)));
    throw err;
  }
  const segments = new SegmentSet(dir, opened);
  const reader = new FollowingReader(segments, options.cacheBytes);
  // The head names the newest write segment; every write segment below it was read to its end.
  const newest = opened[opened.length - 1];
  const tailEnd = newest !== undefined && newest.id === head.segment ? newest.flushed : SEGMENT_HEADER_BYTES;
  return { rooms: { index, segments, reader }, at: { floor: head.floor, tailId: head.segment, tailEnd }, report, nextVersion };
}

/** The whole records of `segment` from `start` to where its records end, copied, with their layout. */
export function recordsOf(segment: Segment, start: number): { records: Buffer[]; layout: RecordLayout } {
  const records: Buffer[] = [];
  if (segment.file === undefined || segment.flushed <= start) return { records, layout: segment.layout };
  const walker = SegmentWalker.forSegment(segment.file, segment.path, segment.id, segment.flushed, { start });
  walker.walkAll((_offset, record, buf, pos) => records.push(Buffer.from(buf.subarray(pos, pos + record.totalLength))));
  return { records, layout: segment.layout };
}

/**
 * A read-only Segment over `file` (`size` bytes of it are the follower's to read), with the record
 * layout and version floor its header names. A file too short for a header (a write segment just
 * made) is taken as one of the current format. Read-only: if this process takes the store over,
 * its writer never writes to or cuts a file it opened here (segment.ts).
 */
function segmentOver(id: number, file: MediumFile, size: number): Segment {
  const buf = Buffer.alloc(SEGMENT_HEADER_BYTES);
  const got = file.readSync(buf, 0, SEGMENT_HEADER_BYTES, 0);
  if (got < SEGMENT_HEADER_BYTES && isWriteSegmentId(id) && size <= got) {
    return new Segment(id, file.path, file, size, undefined, 0, 'read-only');
  }
  const header = checkSegmentHeader(buf.subarray(0, got), file.path, id);
  return new Segment(id, file.path, file, size, header.layout, header.floor, 'read-only');
}

/** Replays `segment`'s hint through `visit`: the highest version it names, or undefined if it has none that can be used. */
function readHintOf(dir: string, segment: Segment,
                    visit: (bytes: Buffer, start: number, length: number, entry: Entry | undefined) => void): number | undefined {
  const hintPath = path.join(dir, hintName(segment.id));
  const file = openReadOnly(hintPath);
  if (file === undefined) return undefined;
  try {
    const buf = Buffer.alloc(SEGMENT_HEADER_BYTES);
    const got = segment.file!.readSync(buf, 0, SEGMENT_HEADER_BYTES, 0);
    const header = checkSegmentHeader(buf.subarray(0, got), segment.path, segment.id);
    const read = readHint(file, hintPath, segment.id, segment.flushed, header, visit);
    return typeof read === 'number' ? read : undefined;
  } catch {
    return undefined;
  } finally {
    void file.close().catch(() => undefined);
  }
}

/** The file, open for reading; undefined if it does not exist. */
function openReadOnly(file: string): MediumFile | undefined {
  try {
    return openReadOnlyFile(file);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw ioError(err, `opening ${file}`, file);
  }
}

/**
 * @internal A read-only MediumFile over a descriptor opened synchronously (the follower reads
 * within a call). Exported for the specs. Writes and truncations reject; `sync` is a real
 * fdatasync of the read-only descriptor (Linux and macOS allow it), so that whoever holds such a
 * file (a client that took over holds the dead owner's segments this way) gets what the
 * MediumFile contract promises, not a sync that claims durability and does nothing. The engine
 * does not call it today: a follower's segments count as synced to their end (Segment.synced).
 */
export function openReadOnlyFile(file: string): MediumFile {
  const fd = fs.openSync(file, fs.constants.O_RDONLY);
  return {
    path: file,
    readSync(buf: Uint8Array, offset: number, length: number, position: number): number {
      let done = 0;
      while (done < length) {
        const n = fs.readSync(fd, buf, offset + done, length - done, position + done);
        if (n === 0) break;
        done += n;
      }
      return done;
    },
    write: () => Promise.reject(new LogkvError(ErrorCodes.IO, `${file} is open for reading only`, { file })),
    sync: () => new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve()))),
    truncate: () => Promise.reject(new LogkvError(ErrorCodes.IO, `${file} is open for reading only`, { file })),
    sizeSync: () => fs.fstatSync(fd).size,
    close: () => new Promise((resolve, reject) => fs.close(fd, (err) => (err ? reject(err) : resolve()))),
  };
}
