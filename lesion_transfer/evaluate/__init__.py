"""Evaluation: predictions, the operating point, per-subject scores, native-space label maps."""
