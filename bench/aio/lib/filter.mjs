// `--bench=TEXT` and `--scenario=TEXT`: which names a filter selects.

/**
 * True when `text` is undefined or occurs in `name` starting at a word: "2 in flight"
 * selects "O_DIRECT, 2 in flight" but not "32 in flight", "warm" selects "warm cache".
 */
export function nameMatches(name, text) {
  if (text === undefined) return true;
  const escaped = text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(^|[^0-9A-Za-z_])${escaped}`).test(name);
}
