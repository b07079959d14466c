/**
 * The vmlink agent protocol, in one place for both ends: the guest agent (vmlink-guest)
 * serves these methods and the host CLI (vmlink) calls them.
 */
export const AGENT_PROTOCOL_VERSION = 1;
