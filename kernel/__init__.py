"""The kernel: what every context needs and that imports no context."""
