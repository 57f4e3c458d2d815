"""Pure rules and value objects of MSSanté: no I/O, no imports from the rest of the project."""
