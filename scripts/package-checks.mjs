#!/usr/bin/env node
// What a stranger gets from `npm install`: checks every publishable workspace's manifest
// (repository with directory, homepage, bugs, public access, sideEffects, LICENSE and
// CHANGELOG.md shipped), that the changesets `fixed` group covers them, and runs
// `npm publish --dry-run` for all of them, checking that each tarball holds every file
// its manifest points at. Needs built packages (`npm run build`). Exit 1 lists every problem.
import { execFileSync } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, publishableWorkspaces, readJson } from './lib/workspaces.mjs';

const problems = [];
const problem = (where, what) => problems.push(`${where}: ${what}`);

/** Every relative file a manifest points at (main, module, types, exports, bin). */
export function manifestTargets(pkg) {
  const targets = new Set();
  const walk = (value) => {
    if (typeof value === 'string') {
      if (value.startsWith('./') && !value.includes('*')) targets.add(value.slice(2));
    } else if (value && typeof value === 'object') {
      for (const inner of Object.values(value)) walk(inner);
    }
  };
  for (const field of ['main', 'module', 'types']) if (typeof pkg[field] === 'string') walk(pkg[field].startsWith('./') ? pkg[field] : `./${pkg[field]}`);
  walk(pkg.exports);
  if (typeof pkg.bin === 'string') walk(`./${pkg.bin.replace(/^\.\//, '')}`);
  else if (pkg.bin) for (const file of Object.values(pkg.bin)) walk(`./${file.replace(/^\.\//, '')}`);
  return [...targets];
}

function checkManifest({ dir, pkg }, publishedNames, rootLicense) {
  const where = pkg.name;
  const repo = pkg.repository;
  if (!repo || typeof repo !== 'object' || !repo.url) problem(where, 'repository.url is missing');
  else if (repo.directory !== dir) problem(where, `repository.directory is ${JSON.stringify(repo.directory)}, expected "${dir}"`);
  if (typeof pkg.homepage !== 'string' || pkg.homepage === '') problem(where, 'homepage is missing');
  if (!pkg.bugs?.url) problem(where, 'bugs.url is missing');
  if (pkg.publishConfig?.access !== 'public') problem(where, 'publishConfig.access must be "public"');
  if (pkg.sideEffects !== false) problem(where, 'sideEffects must be false');
  if (pkg.license !== 'MIT') problem(where, `license is ${JSON.stringify(pkg.license)}, expected "MIT"`);
  if (!pkg.engines?.node) problem(where, 'engines.node is missing');
  for (const file of ['README.md', 'LICENSE', 'CHANGELOG.md']) {
    if (!pkg.files?.includes(file)) problem(where, `files does not list ${file}`);
    if (!existsSync(join(ROOT, dir, file))) problem(where, `${dir}/${file} does not exist`);
  }
  if (existsSync(join(ROOT, dir, 'LICENSE')) && readFileSync(join(ROOT, dir, 'LICENSE'), 'utf8') !== rootLicense) {
    problem(where, `${dir}/LICENSE differs from the root LICENSE (copy it again)`);
  }
  const changelog = existsSync(join(ROOT, dir, 'CHANGELOG.md')) ? readFileSync(join(ROOT, dir, 'CHANGELOG.md'), 'utf8') : '';
  // changesets inserts each release after the first line, so it must be the title.
  if (changelog && !changelog.startsWith(`# ${pkg.name}\n`)) problem(where, `CHANGELOG.md must start with "# ${pkg.name}"`);
  for (const dep of Object.keys({ ...pkg.dependencies, ...pkg.peerDependencies })) {
    if (!dep.startsWith('@vmlink/')) continue;
    if (!publishedNames.has(dep)) problem(where, `depends on ${dep}, which is not a publishable workspace`);
  }
  for (const file of manifestTargets(pkg)) {
    if (!existsSync(join(ROOT, dir, file))) problem(where, `${file} (named in package.json) does not exist; run \`npm run build\` first`);
  }
}

/** True when a changesets `fixed` pattern names the package (exact or `scope/*`). */
function fixedPatternMatches(pattern, name) {
  return pattern === name || (pattern.endsWith('/*') && name.startsWith(pattern.slice(0, -1)));
}

function checkChangesets(publishable) {
  const config = readJson('.changeset/config.json');
  const groups = config.fixed ?? [];
  for (const { pkg } of publishable) {
    const inGroup = groups.some((group) => group.some((pattern) => fixedPatternMatches(pattern, pkg.name)));
    if (!inGroup) problem('.changeset/config.json', `${pkg.name} is in no "fixed" group`);
  }
  if (groups.length > 1) problem('.changeset/config.json', 'expected one fixed group for every published package');
}

function checkTarballs(publishable) {
  const args = ['publish', '--dry-run', '--json', '--ignore-scripts', '--offline'];
  for (const { pkg } of publishable) args.push('-w', pkg.name);
  let report;
  try {
    const stdout = execFileSync('npm', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
    report = JSON.parse(stdout);
  } catch (error) {
    problem('npm publish --dry-run', `failed: ${error.stderr || error.message}`);
    return;
  }
  for (const { dir, pkg } of publishable) {
    const entry = report[pkg.name];
    if (!entry) {
      problem(pkg.name, 'npm publish --dry-run reported nothing for it');
      continue;
    }
    const files = new Set(entry.files.map((file) => file.path));
    for (const file of ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md', ...manifestTargets(pkg)]) {
      if (!files.has(file)) problem(pkg.name, `tarball lacks ${file}`);
    }
    const leaked = [...files].filter((file) => /(^|\/)(test|node_modules|\.turbo)\//.test(file) || file.endsWith('.tsbuildinfo'));
    if (leaked.length > 0) problem(pkg.name, `tarball carries files users do not need: ${leaked.slice(0, 5).join(', ')}`);
    const prebuilds = [...files].filter((file) => file.startsWith('prebuilds/'));
    const note = prebuilds.length > 0 ? `, prebuilds: ${prebuilds.join(' ')}` : '';
    console.log(`package-checks: ${pkg.name} (${dir}) ${entry.files.length} files, ${(entry.size / 1024).toFixed(1)} KiB packed${note}`);
  }
}

function main() {
  const publishable = publishableWorkspaces();
  const publishedNames = new Set(publishable.map(({ pkg }) => pkg.name));
  const rootLicense = readFileSync(join(ROOT, 'LICENSE'), 'utf8');
  for (const workspace of publishable) checkManifest(workspace, publishedNames, rootLicense);
  checkChangesets(publishable);
  checkTarballs(publishable);
  if (problems.length > 0) {
    console.error(`package-checks: ${problems.length} problem(s):\n  ${problems.join('\n  ')}`);
    process.exit(1);
  }
  console.log(`package-checks: ${publishable.length} packages ready to publish (npm publish --dry-run passed)`);
}

main();
