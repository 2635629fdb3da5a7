"""Small shared utilities: atomic IO, seeding, devices and threads, counting, safe checkpoints."""
