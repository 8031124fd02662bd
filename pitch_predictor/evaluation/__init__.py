"""
Evaluation: replay recordings into the node (DDS or offline) and score its predictions.

``scoring`` and ``offline`` are ROS-free; ``replay`` imports rclpy and is only imported
when DDS is used.
"""
