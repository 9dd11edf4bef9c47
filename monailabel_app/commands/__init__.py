"""``gazelabel`` commands that belong to the server side (registered in ``pyproject.toml`` under the
``gazelabel.commands`` entry points, so ``models.cli`` finds them without importing this package)."""
