import { createRequire } from 'node:module';

/** The CLI's version, read from its package.json (works from src/ and dist/). */
export const CLI_VERSION: string = (() => {
  try {
    const require = createRequire(import.meta.url);
    return (require('../package.json') as { version: string }).version;
  } catch {
    return '0.0.0';
  }
})();
