"""Process roles: front ends and call servers as separate processes (docs/operations.md)."""
