#!/usr/bin/env node
// The examples people copy: extracts every TypeScript block of every README, type-checks
// each as its own ES module against the built packages (the consumer's view: their .d.ts),
// and runs the ones marked runnable on this node (the engines floor in CI: Node 20).
//
// Fences:  ```ts            type-checked (must be complete: its own imports, no `...`)
//          ```ts runnable   type-checked, then transpiled and run (exit 0 within 60 s)
//          ```ts fragment   not checked (a piece of a larger program); counted and listed
// Any block (ts or js) using `await using` / `using` declarations fails: Node 20 rejects them.
// Needs built packages (`npm run build`).
// Usage: node scripts/readme-check.mjs [--keep] [FILE.md...]   (default: every workspace's README and the root's)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative, resolve } from 'node:path';
import { ROOT, workspaces } from './lib/workspaces.mjs';

const require = createRequire(import.meta.url);

/** Every fenced block of a markdown text: { lang, flags, code, line }. */
export function extractBlocks(markdown) {
  const blocks = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^(`{3,})(\S*)\s*(.*)$/.exec(lines[i]);
    if (!open) continue;
    const [, fence, lang, rest] = open;
    const body = [];
    let j = i + 1;
    while (j < lines.length && !lines[j].startsWith(fence)) body.push(lines[j++]);
    blocks.push({ lang: lang.toLowerCase(), flags: rest.split(/\s+/).filter(Boolean), code: body.join('\n'), line: i + 1 });
    i = j;
  }
  return blocks;
}

const isTypeScript = (block) => block.lang === 'ts' || block.lang === 'typescript';
const USING = /(^|[\s;{(])(await\s+)?using\s+[A-Za-z_$][\w$]*\s*=/m;

function readmes() {
  const given = process.argv.slice(2).filter((arg) => !arg.startsWith('--'));
  if (given.length > 0) return given.map((file) => relative(ROOT, resolve(file)));
  const files = ['README.md', ...workspaces().map(({ dir }) => `${dir}/README.md`)];
  return files.filter((file) => existsSync(join(ROOT, file)));
}

function main() {
  const keep = process.argv.includes('--keep');
  // Inside the repository so that `@vmlink/*` resolve through its node_modules; .cache/ is gitignored.
  const work = join(ROOT, '.cache', 'readme-blocks');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const problems = [];
  const checked = [];
  const runnable = [];
  const fragments = [];
  for (const readme of readmes()) {
    const blocks = extractBlocks(readFileSync(join(ROOT, readme), 'utf8'));
    for (const block of blocks) {
      const where = `${readme}:${block.line}`;
      if ((isTypeScript(block) || ['js', 'javascript', 'mjs'].includes(block.lang)) && USING.test(block.code)) {
        problems.push(`${where}: \`using\`/\`await using\` declarations are a syntax error on Node 20 (the engines floor); use try/finally`);
      }
      if (!isTypeScript(block)) continue;
      if (block.flags.includes('fragment')) {
        fragments.push(where);
        continue;
      }
      const file = join(work, `${readme.replace(/\/README\.md$|README\.md$/, '').replace(/[^\w]+/g, '-') || 'root'}-L${block.line}.mts`);
      writeFileSync(file, `// ${where}\n${block.code}\nexport {};\n`);
      checked.push({ where, file });
      if (block.flags.includes('runnable')) runnable.push({ where, file });
    }
  }
  const ts = require('typescript');
  const options = {
    target: ts.ScriptTarget.ES2022,
    lib: ['lib.es2023.d.ts'], // Node 20's language: no Symbol.asyncDispose, so no `using`
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: ['node'],
    typeRoots: [join(ROOT, 'node_modules', '@types')],
  };
  writeFileSync(join(work, 'package.json'), JSON.stringify({ private: true, type: 'module' }));
  /** A diagnostic as `README.md:LINE: message` (the block starts below its fence, after our header line). */
  const describe = (block, diagnostic) => {
    const [readme, fence] = block.where.split(':');
    const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start ?? 0);
    return `${readme}:${Number(fence) + line}: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, ' ')}`;
  };
  // Syntax first, per block: a block that does not parse is reported alone and left out,
  // so it cannot hide the type errors of the others.
  const parsed = checked.filter((block) => {
    const source = ts.createSourceFile(block.file, readFileSync(block.file, 'utf8'), ts.ScriptTarget.ES2022, true);
    const syntax = source.parseDiagnostics ?? [];
    for (const diagnostic of syntax) problems.push(`${describe(block, { ...diagnostic, file: source })} (not complete TypeScript: finish it or fence it as \`\`\`ts fragment)`);
    return syntax.length === 0;
  });
  const program = ts.createProgram(parsed.map(({ file }) => file), options);
  for (const block of parsed) {
    const source = program.getSourceFile(block.file);
    for (const diagnostic of [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)]) problems.push(describe(block, diagnostic));
  }
  for (const diagnostic of program.getGlobalDiagnostics()) problems.push(`typescript: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, ' ')}`);
  for (const { where, file } of runnable) {
    const js = ts.transpileModule(readFileSync(file, 'utf8'), { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
    const jsFile = file.replace(/\.mts$/, '.mjs');
    writeFileSync(jsFile, js);
    const run = spawnSync(process.execPath, [jsFile], { cwd: work, encoding: 'utf8', timeout: 60_000 });
    if (run.status !== 0) problems.push(`${where}: the runnable block failed on node ${process.version} (${run.signal ?? `exit ${run.status}`}): ${`${run.stderr}`.trim().split('\n').slice(0, 6).join(' | ')}`);
  }
  if (!keep) rmSync(work, { recursive: true, force: true });
  console.log(`readme-check: ${checked.length} TypeScript blocks type-checked, ${runnable.length} run on node ${process.version}, ${fragments.length} marked fragment (not checked${fragments.length ? `: ${fragments.join(', ')}` : ''})`);
  if (problems.length > 0) {
    console.error(`readme-check: ${problems.length} problem(s):\n  ${problems.join('\n  ')}`);
    process.exit(1);
  }
}

main();
