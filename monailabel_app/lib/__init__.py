"""Task, datastore and strategy classes of the GazeLabel app (imported as ``monailabel_app.lib``)."""
