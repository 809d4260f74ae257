"""Teaching: explain-*, doctor; they read run records and never drive training."""
