#!/usr/bin/env node
/** The `logkv-compact DIR [--dry-run] [--json]` command (see lib/cli/main.ts). */
import { compactMain } from '../cli/main';

compactMain(process.argv.slice(2)).then((code) => { process.exitCode = code; });
