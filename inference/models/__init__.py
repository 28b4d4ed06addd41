"""Detector models behind :mod:`inference.detector`: the TF SSD-MobileNetV2 port and torchvision."""
