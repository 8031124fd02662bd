# Copyright 2015 Open Source Robotics Foundation, Inc.
# Licensed under the Apache License, Version 2.0 (standard ament_python linter test).

from ament_pep257.main import main
from lint_paths import LINT_PATHS
import pytest


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    rc = main(argv=LINT_PATHS)
    assert rc == 0, 'Found code style errors / warnings'
