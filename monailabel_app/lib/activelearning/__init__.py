"""Active-learning strategies: MC-dropout uncertainty (plus MONAI Label's random and first)."""
