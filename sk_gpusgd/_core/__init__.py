"""Numerics with no loop: losses, schedules, update rules, preconditioning, step scaling,
and the types every engine shares."""
