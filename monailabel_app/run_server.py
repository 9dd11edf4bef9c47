"""``python -m monailabel_app.run_server <start_server arguments>``: MONAI Label's ``start_server`` with the
console quiet from the first line.

``monailabel.main`` configures logging with ``basicConfig(level=INFO)`` before it reads ``--log_config``, so
its ~25 ``USING:: ...`` lines and, later, one ``Adding New Image`` line per image reached the console. Here
the launcher's log config (console: warnings only; ``server.log``: everything) is applied first.
"""

from __future__ import annotations

import json
import logging.config
import sys


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--log_config" in argv:
        with open(argv[argv.index("--log_config") + 1]) as f:
            logging.config.dictConfig(json.load(f))
    from monailabel.main import Main

    sys.argv = ["monailabel", *argv]
    Main().run()


if __name__ == "__main__":
    main()
