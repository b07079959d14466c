// Types of the exports src/aio/threadpool provides (filled in with the area).
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface ThreadPoolBinding {}
