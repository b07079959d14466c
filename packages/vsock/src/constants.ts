// AF_VSOCK address constants (linux/vm_sockets.h). Plain numbers, so importing the
// package works everywhere; they match the native addon's `vsockConstants`.

/** Any CID: bind to every local CID. */
export const VMADDR_CID_ANY = 0xffff_ffff;
/** The hypervisor. */
export const VMADDR_CID_HYPERVISOR = 0;
/** This machine (loopback, needs the vsock_loopback transport). */
export const VMADDR_CID_LOCAL = 1;
/** The host, seen from a guest. */
export const VMADDR_CID_HOST = 2;
/** Any port: the kernel picks a free one. */
export const VMADDR_PORT_ANY = 0xffff_ffff;
/** sockaddr_vm flag: route to the host even for a sibling guest's CID. */
export const VMADDR_FLAG_TO_HOST = 0x01;
