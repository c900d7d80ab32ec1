/**
 * Kill mode starts a child process per round, hundreds in a soak. Under ts-node each start pays
 * for loading the TypeScript compiler (a second or more on a busy machine), so the harness
 * transpiles the child and everything it imports once, into plain JavaScript in its work
 * directory, and starts that with plain node. No type checking: `npm run typecheck` does that.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as ts from 'typescript';

const REPO = path.resolve(__dirname, '..', '..');

/** Transpiles lib/ and tools/crash/ under `outDir`; returns the path of the child's script. */
export function buildChild(outDir: string): string {
  for (const dir of ['lib', path.join('tools', 'crash')]) transpileTree(path.join(REPO, dir), path.join(outDir, dir));
  return path.join(outDir, 'tools', 'crash', 'child.js');
}

function transpileTree(from: string, to: string): void {
  fs.mkdirSync(to, { recursive: true });
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    const source = path.join(from, entry.name);
    if (entry.isDirectory()) {
      transpileTree(source, path.join(to, entry.name));
    } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
      const { outputText } = ts.transpileModule(fs.readFileSync(source, 'utf8'), {
        compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.CommonJS, esModuleInterop: true },
        fileName: source,
      });
      fs.writeFileSync(path.join(to, entry.name.replace(/\.ts$/, '.js')), outputText);
    }
  }
}

/** The environment the built child needs: the repository's node_modules on its module path. */
export function childEnv(): NodeJS.ProcessEnv {
  const modules = path.join(REPO, 'node_modules');
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_PATH: process.env.NODE_PATH ? `${modules}${path.delimiter}${process.env.NODE_PATH}` : modules };
  // Under c8 a child would write coverage of its transpiled copies, which map to nothing here.
  delete env.NODE_V8_COVERAGE;
  return env;
}
