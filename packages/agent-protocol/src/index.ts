/**
 * The vmlink agent protocol, in one place for both ends: the guest agent (vmlink-guest)
 * serves these methods and the host CLI (vmlink) calls them.
 */
export const AGENT_PROTOCOL_VERSION = 1;

export * from './methods.js';
export * from './errors.js';
export * from './detached.js';
export { READ_TRAILER_BYTES } from './read-body.js';
export { UPLOAD_RESUME_METHODS, uploadPartName, type PartialParams, type PartialResult, type WriteResumeParams } from './upload-resume.js';
export { leftoverName, leftoverWriter, processGone, processStateOf, type LeftoverKind } from './leftovers.js';
export { RECORD_HEADER, TaggedRecordDecoder, encodeTaggedRecord, type TaggedRecord } from './tagged-records.js';
export {
  ExecRecordTag,
  EXEC_RECORD_HEADER,
  EXEC_MAX_RECORD,
  encodeExecRecord,
  ExecRecordDecoder,
  type ExecRecord,
  ExecInputTag,
  ExecInputDecoder,
  encodeExecInput,
  EXEC_MAX_INPUT_RECORD,
  ENV_DENIED,
  type ExecInputRecord,
  type ExecRequestOptions,
  type ExecExit,
  type PtySize,
} from './exec-records.js';
