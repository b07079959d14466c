// Types of the exports src/aio/iosubmit provides (filled in with the area).
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface IoSubmitBinding {}
