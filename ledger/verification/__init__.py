"""Verification: the Merkle tree over the ledger's order, signed checkpoints, proofs and the audit."""
