"""``python -m web_annotator`` (in ``.venv-web``): the web annotator; ``gazelabel web`` runs this."""

import sys

from web_annotator.app import main

sys.exit(main())
