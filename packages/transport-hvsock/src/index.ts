/** @vmlink/transport-hvsock: the host side of hybrid vsock (placeholder; being built). */
export {};
