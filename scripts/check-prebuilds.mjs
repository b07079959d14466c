#!/usr/bin/env node
// @vmlink/native's prepublishOnly: refuses to publish without a prebuild for every
// platform we promise (prebuilds/ is gitignored, so a fresh checkout has none).
// Make them with `npm run prebuild:all` (scripts/prebuild.mjs --arch x64 --arch arm64).
import { existsSync } from 'node:fs';
import { ELF_MACHINE, elfMachine, prebuildPath } from './prebuild.mjs';

const missing = [];
for (const arch of Object.keys(ELF_MACHINE)) {
  const file = prebuildPath(arch);
  if (!existsSync(file)) missing.push(`${file} is missing`);
  else if (elfMachine(file) !== ELF_MACHINE[arch]) missing.push(`${file} is not an ${arch} ELF binary`);
}
if (missing.length > 0) {
  console.error(`@vmlink/native: not publishing without its prebuilds:\n  ${missing.join('\n  ')}\nRun \`npm run prebuild:all\` first (arm64 needs g++-aarch64-linux-gnu).`);
  process.exit(1);
}
console.log('@vmlink/native: prebuilds for linux-x64 and linux-arm64 are in place');
