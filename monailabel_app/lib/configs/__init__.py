"""App configuration: where the models live and how they are (re)loaded."""
