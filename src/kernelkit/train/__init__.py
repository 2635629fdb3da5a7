"""Plain classification training loop with exact resume and DDP."""
