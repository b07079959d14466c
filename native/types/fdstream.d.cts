// Types of the exports src/fdstream provides (filled in with the area).
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface FdStreamBinding {}
