const SIZE_UNITS: Readonly<Record<string, number>> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 };

/** `1048576`, `512K`, `64M`, `1G` (binary units), at least 1; undefined when it is none of these. */
export function byteSize(raw: string): number | undefined {
  const match = /^(\d+)([KMG]?)i?B?$/i.exec(raw.trim());
  const unit = SIZE_UNITS[(match?.[2] ?? '').toUpperCase()];
  const n = match && unit !== undefined ? Number(match[1]) * unit : Number.NaN;
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}
