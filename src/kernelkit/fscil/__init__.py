"""Few-shot class-incremental learning with training-free prototype calibration (TEEN)."""
