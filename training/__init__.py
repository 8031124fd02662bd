"""
Offline training, evaluation, export and the paper's experiments (run with ``python -m``).

Not part of the installed ``pitch_predictor`` package: nothing on the robot imports it.
Entry points: ``python -m training.train``, ``python -m training.export``,
``python -m training.experiments``.
"""
