"""SQLite storage: one file, one writer thread, read-only reader connections, versioned schema."""
