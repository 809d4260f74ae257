"""A user env module that fails on import (tests that its own error reaches the user)."""

raise RuntimeError("corridor.yaml is missing")
