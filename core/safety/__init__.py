"""The safety layer: credential detection, secrets, and (with the job runner) locks and masking."""
