"""Dataset registrations."""
