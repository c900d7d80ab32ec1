#!/usr/bin/env node
/** The `logkv` command (see lib/cli.ts). */
import { main } from '../cli';

main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
