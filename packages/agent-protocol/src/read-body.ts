/**
 * fs.read's body: the file's bytes from the requested offset to `size`, then a trailer of
 * READ_TRAILER_BYTES: the SHA-256 of the whole file. RPC results travel before bodies,
 * so what is only known at the end (the checksum) travels at the end of the body.
 */
export const READ_TRAILER_BYTES = 32;
