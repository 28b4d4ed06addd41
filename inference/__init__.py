"""The inference stage: object detectors over camera frames (see :mod:`inference.detector`)."""
