"""
The model library: preprocessing, sampling, networks, the registry, checkpoints, decision.

ROS-free; used by the node (``runtime/``), training and evaluation. ``registry`` lists
every network; ``networks``, ``peers`` and ``two_stream`` define them.
"""
