"""The money-path simulation (issue 9): see docs/development/simulation.md."""
