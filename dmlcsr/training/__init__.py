"""Training: datasets, edge labels, DML losses, cyclical self-regulation, metrics (needs torch)."""
