#!/usr/bin/env node
/** The `logkv-compact DIR [--dry-run] [--json]` command (see lib/cli.ts). */
import { compactMain } from '../cli';

compactMain(process.argv.slice(2)).then((code) => { process.exitCode = code; });
