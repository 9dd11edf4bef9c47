"""GazeLabel model library."""
