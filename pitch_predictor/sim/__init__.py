"""pitchsim: physically grounded synthetic Kinect pitching trials (see generator.py)."""
