/**
 * Transparency for vramseal trails (issue 8): RFC 9162 Merkle tree over the records, inclusion and
 * consistency proofs, Ed25519-signed C2SP checkpoints, and the checkpoint check for the verifier.
 */

export { catchUpFromTrail } from './catch-up.js';
export {
  type CheckpointCheckOptions,
  type CheckpointCheckReport,
  type CheckpointFailure,
  type CheckpointFailureKind,
  checkAgainstCheckpoint,
} from './check-checkpoint.js';
export {
  CHECKPOINTS_FILE,
  type Checkpoint,
  formatCheckpoint,
  openNote,
  parseCheckpoint,
  parseNote,
  signCheckpoint,
  signNote,
  splitNotes,
  type VerifiedCheckpoint,
  verifyCheckpoint,
} from './checkpoint.js';
export { TlogError, type TlogErrorCode } from './errors.js';
export {
  checkKeyName,
  ED25519_TYPE,
  ed25519KeyId,
  loadSignerKey,
  loadVerifierKey,
  parseVerifierKey,
  SignerKey,
  VerifierKey,
  writeKeyPair,
} from './keys.js';
export {
  emptyRoot,
  FrontierOnlyStore,
  HASH_SIZE,
  hashChildren,
  hashLeaf,
  MemoryNodeStore,
  MerkleTree,
  type NodeStore,
  recordLeafHash,
  rootOfLeafHashes,
  type TreeReader,
} from './merkle.js';
export {
  assertConsistency,
  consistencyProof,
  inclusionProof,
  rootFromInclusionProof,
  verifyConsistency,
  verifyInclusion,
} from './proof.js';
export {
  buildConsistencyProof,
  buildInclusionProof,
  CONSISTENCY_PROOF_TYPE,
  type ConsistencyProofBundle,
  INCLUSION_PROOF_TYPE,
  type InclusionProofBundle,
  latestTrailCheckpoint,
  loadCheckpointFile,
  type ProofVerification,
  readCheckpointUnverified,
  verifyProofBundle,
} from './proof-bundle.js';
export { FileNodeStore, readTlogState, removeStoredTree, TLOG_DIR } from './store.js';
export {
  type CheckpointInfo,
  type DurableRecord as TlogDurableRecord,
  Transparency,
  type TransparencyOptions,
  type TransparencySource,
  witnessFileName,
} from './transparency.js';
export { LocalTreeHost, type TreeHead, type TreeHost } from './tree-host.js';
export {
  type AckSource,
  attachCheckpointWitness,
  type CheckpointSource,
  CheckpointWitnessClient,
  fetchWitnessedCheckpoint,
  type WitnessClientOptions,
  type WitnessClientState,
  type WitnessClientStatus,
} from './witness-client.js';
export { WorkerTreeHost } from './worker-host.js';
