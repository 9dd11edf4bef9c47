"""One module per `gazelabel` command."""
