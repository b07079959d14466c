// Types of the exports src/aio (allocAligned, statx alignment) provides (filled in with the area).
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface AioBinding {}
