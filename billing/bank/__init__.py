"""Bank statements: read (statements), matched to orders (matching),
imported and resolved by staff (imports); the tables in models."""
