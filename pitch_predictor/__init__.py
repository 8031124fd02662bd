"""
pitch_predictor: predict where a pitched ball lands from Kinect RGB + skeleton.

Importing this package pulls in nothing heavy: no rclpy, no torch. The ML modules
(``convgru``, ``networks``, ...) import torch themselves; only
``predictor_node`` imports rclpy.
"""

__version__ = '0.1.0'
