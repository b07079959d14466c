import { createRequire } from 'node:module';

/** The agent's version, read from its package.json (works from src/ and dist/). */
export const AGENT_VERSION: string = (() => {
  try {
    const require = createRequire(import.meta.url);
    return (require('../package.json') as { version: string }).version;
  } catch {
    return '0.0.0';
  }
})();
