"""The money-path simulation (issue 9): see README "Simulation"."""
