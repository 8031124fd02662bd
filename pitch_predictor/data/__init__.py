"""Datasets: the real layout of [13], the memory-mapped training cache, rosbag2 files."""
