"""ament_python package definition for pitch_predictor."""

from glob import glob
import os

from setuptools import find_packages, setup

PACKAGE = 'pitch_predictor'
SHARE = os.path.join('share', PACKAGE)

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(include=[PACKAGE, PACKAGE + '.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        (SHARE, ['package.xml']),
        (os.path.join(SHARE, 'launch'), glob('launch/*.launch.py')),
        (os.path.join(SHARE, 'config'), glob('config/*.yaml')),
        (os.path.join(SHARE, 'models'),
         glob(PACKAGE + '/shipped_model/*.pt') + glob(PACKAGE + '/shipped_model/*.md')),
    ],
    package_data={PACKAGE + '.shipped_model': ['*.pt', '*.md']},
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='pitch_predictor maintainers',
    maintainer_email='maintainers@pitch-predictor.dev',
    description='Pitch outcome prediction from Kinect RGB + skeleton (ConvGRU on AlexNet).',
    license='Apache-2.0',
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [
            'predictor_node = pitch_predictor.predictor_node:main',
            'pitch-sim = pitch_predictor.sim.cli:main',
            'pitch-eval = pitch_predictor.evaluation.cli:main',
        ],
    },
)
