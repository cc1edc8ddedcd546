"""Detectors: pure, keyed-state logic over contract events (see ``base.py``)."""
