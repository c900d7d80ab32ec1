/**
 * tools/compact <dir> [--dry-run] [--json]: compact a store from the repository
 * (`npm run compact -- DIR` or `npx ts-node tools/compact.ts DIR`).
 *
 * A thin wrapper: the command is lib/cli/main.ts's compactMain, the same code as `logkv compact` and the
 * installed package's `logkv-compact`, and the work is the library's store.compact().
 * Exit codes: 0 done, 1 failed, 2 usage error, 3 store locked by another process (names its pid).
 */
import { compactMain } from '../lib/cli/main';

compactMain(process.argv.slice(2)).then((code) => { process.exitCode = code; });
