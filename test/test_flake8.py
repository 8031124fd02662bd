# Copyright 2017 Open Source Robotics Foundation, Inc.
# Licensed under the Apache License, Version 2.0 (standard ament_python linter test).

from ament_flake8.main import main_with_errors
from lint_paths import LINT_PATHS
import pytest


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    rc, errors = main_with_errors(argv=LINT_PATHS)
    assert rc == 0, f'Found {len(errors)} code style errors / warnings:\n' + '\n'.join(errors)
