"""Small shared helpers: logging setup, seeding, device selection, image I/O."""
