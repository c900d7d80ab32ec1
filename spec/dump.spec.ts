/**
 * lib/dump.ts: backup and restore as NDJSON from an application, without the command line.
 * dumpStore/dumpLines read through the store (keys() and getEntry()), so they work on any medium;
 * loadStore writes in bounded atomic batches and reports where it stopped by error code and details.
 */
import { expect } from 'chai';
import { PassThrough, Readable, Writable } from 'stream';
import { ErrorCodes, LogkvError, Store, dumpLines, dumpStore, loadStore, open } from '../lib';
import type { DumpProgress, ErrorCode, LoadProgress } from '../lib';
import { MemoryMedium } from '../lib/medium/memory';
import { expectCode, openFast, tempDir } from './helpers';
import { failingAfter, textCollector } from './text-streams';

async function withStore<T>(body: (store: Store<unknown>) => Promise<T>, dir = tempDir('dump')): Promise<T> {
  const store = await openFast<unknown>(dir);
  try {
    return await body(store);
  } finally {
    await store.close();
  }
}

/** The size of every batch() the store is given from now on, in order. */
function batchSizes(store: Store<unknown>): number[] {
  const sizes: number[] = [];
  const batch = store.batch.bind(store);
  store.batch = (operations) => {
    sizes.push(operations.length);
    return batch(operations);
  };
  return sizes;
}

/** Lines written by a dump, sorted (a dump's order is unspecified). */
function sortedLines(text: string): string[] {
  return text.split('\n').filter((line) => line !== '').sort();
}

describe('dump and load as library calls', () => {
  const expiresAt = Date.now() + 3_600_000;
  const VALUES: Record<string, unknown> = {
    text: 'héllo\nworld \u2028',
    big: 2n ** 70n,
    date: new Date('2024-05-01T12:34:56.789Z'),
    bytes: Buffer.from([0, 255]),
    floats: new Float64Array([Math.PI, NaN]),
    map: new Map<unknown, unknown>([[1, new Set(['x'])]]),
    nested: { list: [undefined, null, -Infinity], $logkv: 'not a tag' },
  };

  async function fill(store: Store<unknown>): Promise<void> {
    for (const [key, value] of Object.entries(VALUES)) await store.set(key, value);
    await store.set('expiring', 'soon', { expiresAt });
    await store.set('other:1', 1);
  }

  it('dumpStore writes one line per live key with its expiry; loadStore gives back every value and expiry', async () => {
    const out = textCollector();
    const result = await withStore(async (store) => {
      await fill(store);
      await store.set('deleted', 1);
      await store.delete('deleted');
      return dumpStore(store, out.stream);
    });
    const lines = sortedLines(out.text());
    expect(result).to.deep.equal({ keys: Object.keys(VALUES).length + 2, bytes: Buffer.byteLength(out.text()) });
    expect(lines).to.have.length(result.keys);
    expect(lines).to.include(`{"key":"expiring","value":"soon","expiresAt":${expiresAt}}`);
    expect(lines).to.include('{"key":"other:1","value":1,"expiresAt":null}');

    const loaded = await withStore(async (store) => {
      const counts = await loadStore(store, out.text());
      // Loading writes each key anew: its value and expiry come back, with a version of this store's.
      const withoutVersion = async (key: string): Promise<unknown> => {
        const { version, ...rest } = (await store.getEntry(key))!;
        expect(version, key).to.be.greaterThan(0);
        return rest;
      };
      for (const [key, value] of Object.entries(VALUES)) expect(await withoutVersion(key), key).to.deep.equal({ value });
      expect(await withoutVersion('expiring')).to.deep.equal({ value: 'soon', expiresAt });
      return counts;
    });
    expect(loaded).to.deep.equal({ loaded: result.keys, skippedExpired: 0, lines: result.keys });
  });

  it('reads expiries through the store, so a store on any medium can be dumped', async () => {
    const store = await open<unknown>('/mem/store', { medium: new MemoryMedium(), sync: 'never' });
    try {
      await store.set('a', 1, { expiresAt });
      await store.set('b', 2);
      const lines: string[] = [];
      for await (const line of dumpLines(store)) lines.push(line);
      expect(lines.sort()).to.deep.equal([
        `{"key":"a","value":1,"expiresAt":${expiresAt}}\n`,
        '{"key":"b","value":2,"expiresAt":null}\n',
      ]);
    } finally {
      await store.close();
    }
  });

  it('dumpLines takes a prefix, reports progress, and its lines load straight into another store', async () => {
    const progress: DumpProgress[] = [];
    await withStore(async (source) => {
      await fill(source);
      const all: DumpProgress[] = [];
      for await (const line of dumpLines(source, { onProgress: (p) => all.push(p) })) expect(line.endsWith('\n')).to.equal(true);
      expect(all.map((p) => p.keysTotal)).to.deep.equal(all.map(() => source.size));
      await withStore(async (target) => {
        const result = await loadStore(target, dumpLines(source, { prefix: 'other:', onProgress: (p) => progress.push(p) }));
        expect(result).to.deep.equal({ loaded: 1, skippedExpired: 0, lines: 1 });
        expect(await target.get('other:1')).to.equal(1);
        expect(target.size).to.equal(1);
      });
    });
    const line = '{"key":"other:1","value":1,"expiresAt":null}\n';
    expect(progress).to.deep.equal([{ keys: 1, bytes: Buffer.byteLength(line) }]); // no keysTotal with a prefix
  });

  it('skips a key that is gone between keys() and getEntry()', async () => {
    // A store whose key 'gone' expires or is deleted after keys() yielded it.
    const racing = {
      size: 3,
      async *keys() {
        yield* ['a', 'gone', 'b'];
      },
      async getEntry(key: string) {
        return key === 'gone' ? undefined : { value: key };
      },
    } as unknown as Store<unknown>;
    const lines: string[] = [];
    for await (const line of dumpLines(racing)) lines.push(line);
    expect(lines).to.deep.equal(['{"key":"a","value":"a","expiresAt":null}\n', '{"key":"b","value":"b","expiresAt":null}\n']);
  });

  it('dumpStore waits for a slow stream to drain instead of buffering the dump', async () => {
    const highWaterMark = 256;
    let pendingMax = 0;
    const slow = new Writable({
      highWaterMark,
      write(_chunk, _encoding, callback) {
        setImmediate(callback);
      },
    });
    await withStore(async (store) => {
      await store.batch(Array.from({ length: 500 }, (_, i) => ({ type: 'set' as const, key: `key-${i}`, value: 'v'.repeat(40) })));
      const result = await dumpStore(store, slow, { onProgress: () => { pendingMax = Math.max(pendingMax, slow.writableLength); } });
      expect(result.keys).to.equal(500);
    });
    const lineBytes = Buffer.byteLength(`{"key":"key-100","value":"${'v'.repeat(40)}","expiresAt":null}\n`);
    expect(pendingMax).to.be.at.most(highWaterMark + lineBytes);
  });

  it('dumpStore rejects with LOGKV_IO, the stream error as cause, when the output fails or is closed', async () => {
    await withStore(async (store) => {
      await store.set('a', 1);
      await store.set('b', 2);
      const failing = failingAfter(0, 'EPIPE');
      const err = await expectCode(dumpStore(store, failing), ErrorCodes.IO);
      expect((err.cause as NodeJS.ErrnoException).code).to.equal('EPIPE');

      const closed = new PassThrough();
      closed.destroy();
      const destroyed = await expectCode(dumpStore(store, closed), ErrorCodes.IO);
      expect((destroyed.cause as NodeJS.ErrnoException).code).to.equal('ERR_STREAM_DESTROYED');
      expect(failing.listenerCount('error')).to.equal(0); // it stopped listening when it returned
    });
  });

  it('loadStore reads a stream, a string or lines, with LF, CRLF, blank lines and expired records', async () => {
    const text = '{"key":"a","value":1}\r\n\n{"key":"old","value":2,"expiresAt":1000}\n{"key":"b","value":3,"expiresAt":null}\n';
    const inputs = {
      stream: () => Readable.from([Buffer.from(text.slice(0, 7)), Buffer.from(text.slice(7))]),
      string: () => text,
      lines: () => ['{"key":"a","value":1}\r\n', '', '{"key":"old","value":2,"expiresAt":1000}', '{"key":"b","value":3,"expiresAt":null}\n'],
    };
    for (const [kind, input] of Object.entries(inputs)) {
      await withStore(async (store) => {
        expect(await loadStore(store, input()), kind).to.deep.equal({ loaded: 2, skippedExpired: 1, lines: 4 });
        expect([await store.get('a'), await store.get('b'), await store.has('old')], kind).to.deep.equal([1, 3, false]);
      });
    }
  });

  it('loadStore writes atomic batches of batchSize, reporting progress after each line', async () => {
    const lines = Array.from({ length: 5 }, (_, i) => JSON.stringify({ key: `k${i}`, value: i }));
    await withStore(async (store) => {
      const batches = batchSizes(store);
      const progress: LoadProgress[] = [];
      const result = await loadStore(store, lines, { batchSize: 2, onProgress: (p) => progress.push(p) });
      expect(batches).to.deep.equal([2, 2, 1]);
      expect(result).to.deep.equal({ loaded: 5, skippedExpired: 0, lines: 5 });
      expect(progress.map((p) => [p.lines, p.loaded])).to.deep.equal([[1, 0], [2, 2], [3, 2], [4, 4], [5, 4]]);
      expect(progress[4].bytes).to.equal(lines.reduce((sum, line) => sum + Buffer.byteLength(line) + 1, 0));
    });
  });

  it('loadStore ends a batch at 8 MiB of lines, whatever batchSize says', async () => {
    const value = 'x'.repeat(1024 * 1024);
    await withStore(async (store) => {
      const batches = batchSizes(store);
      const result = await loadStore(store, Array.from({ length: 10 }, (_, i) => JSON.stringify({ key: `big${i}`, value })));
      expect(result.loaded).to.equal(10);
      expect(batches).to.deep.equal([8, 2]);
    });
  });

  it('loadStore stops at a bad line with its number and code, keeping the batches before it', async () => {
    const good = (key: string): string => JSON.stringify({ key, value: key });
    const cases: Array<{ name: string; bad: string; code: ErrorCode }> = [
      { name: 'not JSON', bad: '{oops', code: ErrorCodes.INVALID_ARGUMENT },
      { name: 'not an object', bad: '[1]', code: ErrorCodes.INVALID_ARGUMENT },
      { name: 'no value', bad: '{"key":"d"}', code: ErrorCodes.INVALID_ARGUMENT },
      { name: 'an extra member', bad: '{"key":"d","value":1,"extra":true}', code: ErrorCodes.INVALID_ARGUMENT },
      { name: 'a key that is not a string', bad: '{"key":1,"value":1}', code: ErrorCodes.INVALID_ARGUMENT },
      { name: 'a bad expiresAt', bad: '{"key":"d","value":1,"expiresAt":"soon"}', code: ErrorCodes.INVALID_ARGUMENT },
      { name: 'a malformed tag', bad: '{"key":"d","value":{"$logkv":"Buffer","base64":"!!"}}', code: ErrorCodes.INVALID_VALUE },
    ];
    for (const { name, bad, code } of cases) {
      await withStore(async (store) => {
        const err = await expectCode(loadStore(store, [good('a'), good('b'), good('c'), bad, good('e')], { batchSize: 2 }), code);
        expect(err.details, name).to.deep.equal({ line: 4, loaded: 2 });
        expect([await store.has('a'), await store.has('b'), await store.has('c'), await store.has('e')], name)
          .to.deep.equal([true, true, false, false]);
      });
    }
  });

  it('a batch the store rejects keeps the store\'s code, names its lines, and writes none of it', async () => {
    await withStore(async (store) => {
      const lines = ['{"key":"a","value":1}', '{"key":"b","value":2}', '{"key":"c","value":3}', '{"key":"","value":4}'];
      const err = await expectCode(loadStore(store, lines, { batchSize: 2 }), ErrorCodes.INVALID_KEY);
      expect(err.details).to.include({ firstLine: 3, lastLine: 4, loaded: 2 });
      expect(err.cause).to.be.instanceOf(LogkvError);
      expect((err.cause as LogkvError).code).to.equal(ErrorCodes.INVALID_KEY);
      expect([await store.has('a'), await store.has('c')]).to.deep.equal([true, false]);
    });
  });

  it('loadStore rejects a bad batchSize or input before writing anything', async () => {
    await withStore(async (store) => {
      for (const batchSize of [0, -1, 1.5, NaN, '10']) {
        const err = await expectCode(loadStore(store, ['{"key":"a","value":1}'], { batchSize: batchSize as number }), ErrorCodes.INVALID_ARGUMENT);
        expect(err.details.option).to.equal('batchSize');
      }
      await expectCode(loadStore(store, [1] as unknown as string[]), ErrorCodes.INVALID_ARGUMENT);
      expect(store.size).to.equal(0);
    });
  });
});
