"""Ingest stage: decode camera streams with PyAV, sample frames, store them, publish FrameRefs."""
