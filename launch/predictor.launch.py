"""
Launch the pitch_predictor node: parameter file, namespace and topic remappings.

Example::

    ros2 launch pitch_predictor predictor.launch.py \
        image_topic:=/kinect2/qhd/image_color skeleton_topic:=/body_tracking/skeleton \
        params_file:=/path/to/my_predictor.yaml use_sim_time:=true

The node's own topic names are relative (``kinect2/qhd/image_color``,
``body_tracking/skeleton``, ``pitch/...``) so ``namespace`` moves them all; the
``*_topic`` arguments remap the inputs to wherever the camera driver publishes.
"""

PACKAGE = 'pitch_predictor'
EXECUTABLE = 'predictor_node'
NODE_NAME = 'pitch_predictor'
PARAMS_SUBDIR = 'config'
PARAMS_FILE = 'predictor.yaml'

# (launch argument, node topic it remaps, default target, description)
TOPIC_ARGUMENTS = (
    ('image_topic', 'kinect2/qhd/image_color', '/kinect2/qhd/image_color',
     'sensor_msgs/Image input (image_transport: raw)'),
    ('compressed_image_topic', 'kinect2/qhd/image_color/compressed',
     '/kinect2/qhd/image_color/compressed',
     'sensor_msgs/CompressedImage input (image_transport: compressed)'),
    ('skeleton_topic', 'body_tracking/skeleton', '/body_tracking/skeleton',
     'PoseArray (25 Kinect V2 joints) or MarkerArray (Azure Kinect) input'),
)


def generate_launch_description():
    """Return the launch description (imports launch only when ros2 launch runs it)."""
    import os

    from ament_index_python.packages import get_package_share_directory
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node
    from launch_ros.parameter_descriptions import ParameterValue

    default_params = os.path.join(
        get_package_share_directory(PACKAGE), PARAMS_SUBDIR, PARAMS_FILE)
    arguments = [
        DeclareLaunchArgument('params_file', default_value=default_params,
                              description='Node parameter YAML file'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='Namespace of the node and its topics'),
        DeclareLaunchArgument('use_sim_time', default_value='false',
                              description='Use /clock (bag replay) instead of wall time'),
    ]
    arguments += [DeclareLaunchArgument(name, default_value=default, description=text)
                  for name, _, default, text in TOPIC_ARGUMENTS]
    node = Node(
        package=PACKAGE,
        executable=EXECUTABLE,
        name=NODE_NAME,
        namespace=LaunchConfiguration('namespace'),
        parameters=[
            LaunchConfiguration('params_file'),
            {'use_sim_time': ParameterValue(LaunchConfiguration('use_sim_time'),
                                            value_type=bool)},
        ],
        remappings=[(topic, LaunchConfiguration(name)) for name, topic, _, _ in TOPIC_ARGUMENTS],
        output='screen',
        emulate_tty=True,
    )
    return LaunchDescription(arguments + [node])
