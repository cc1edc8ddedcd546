"""CLI sub-commands; each module's ``register`` adds one parser (see ``secmon/cli.py``)."""
