"""Far-field speech front-end for a robot microphone array, trained on mixtures only, served as a ROS 2 node."""
