"""
pitch_predictor: predict where a pitched ball lands from Kinect RGB + skeleton.

Importing this package pulls in nothing heavy: no rclpy, no torch. The model library
(``models/``: preprocessing, networks, the registry, checkpoints, ...) imports torch
itself; only ``predictor_node`` and ``evaluation/replay`` import rclpy.
"""

__version__ = '0.1.0'
