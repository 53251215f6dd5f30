"""benchbd's built-in plugins. They register through the ``benchbd`` entry points, exactly as a third party's do."""
