/**
 * Transpiles the library and this benchmark to JavaScript for the child processes, so that a
 * child runs on plain `node` without the TypeScript compiler in its heap (which would distort the
 * memory and GC numbers). Types are not checked here: that is `tsc -p tools/bench`'s job.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as ts from 'typescript';

export interface Build {
  /** Mirrors the repository: <root>/lib/index.js, <root>/tools/bench/child.js. */
  root: string;
  childScript: string;
  remove(): void;
}

/**
 * Writes the build under the repository's node_modules/.cache, so that the library's own
 * dependencies (msgpackr, ...) resolve from the repository's node_modules as they do in tests.
 */
export function buildForChildren(repoRoot: string): Build {
  const root = path.join(repoRoot, 'node_modules', '.cache', 'logkv-bench', `build-${process.pid}`);
  fs.rmSync(root, { recursive: true, force: true });
  const compilerOptions: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.CommonJS,
    esModuleInterop: true,
    inlineSourceMap: true,
  };
  for (const dir of ['lib', path.join('tools', 'bench')]) {
    transpileTree(path.join(repoRoot, dir), path.join(root, dir), compilerOptions);
  }
  // lib may read its own version from ../package.json.
  fs.copyFileSync(path.join(repoRoot, 'package.json'), path.join(root, 'package.json'));
  return {
    root,
    childScript: path.join(root, 'tools', 'bench', 'child.js'),
    remove: () => fs.rmSync(root, { recursive: true, force: true }),
  };
}

/** Transpiles every .ts file under `from` (skipping node_modules and dot-folders), copying others. */
function transpileTree(from: string, to: string, compilerOptions: ts.CompilerOptions): void {
  if (!fs.existsSync(from)) return;
  fs.mkdirSync(to, { recursive: true });
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
    const source = path.join(from, entry.name);
    if (entry.isDirectory()) {
      transpileTree(source, path.join(to, entry.name), compilerOptions);
    } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
      const output = ts.transpileModule(fs.readFileSync(source, 'utf8'), {
        compilerOptions,
        fileName: source,
      });
      fs.writeFileSync(path.join(to, entry.name.replace(/\.ts$/, '.js')), output.outputText);
    } else if (entry.isFile()) {
      fs.copyFileSync(source, path.join(to, entry.name));
    }
  }
}
