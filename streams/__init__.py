"""Streams stage: faust-streaming jobs turning detections into facts."""
