"""Delivery sinks, one per outbox channel (see ``base.py``)."""
