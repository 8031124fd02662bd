"""
The live predictor without ROS: message conversion, pairing, buffering, decisions.

``core.PredictorCore`` is what ``predictor_node`` wraps and what offline evaluation
runs; nothing in this package imports rclpy.
"""
