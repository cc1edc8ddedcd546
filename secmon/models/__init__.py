"""Trained models that detectors load at start-up (fitted by ``secmon train``)."""
