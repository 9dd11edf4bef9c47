"""Keep third-party chatter out of a user's terminal: progress bars and warnings that carry nothing for them.

``gazelabel`` commands and the server call :func:`quiet_libraries` unless asked to be verbose
(``gazelabel --verbose ...``, ``gazelabel serve --verbose``). Our own progress lines stay; transformers'
"Loading weights" / "Writing model shards" bars and its info-level notes go, and so do the deprecation
warnings that third-party code triggers inside transformers and MONAI (nothing a user can act on).
"""

from __future__ import annotations

import logging
import os
import warnings

# (message regex, category): warnings raised by library code we call, not by ours.
LIBRARY_WARNINGS = (
    (r".*is_gradient_checkpointing.*", FutureWarning),
    (r".*past_key_values.*", FutureWarning),
    (r".*cgi.* is deprecated.*", DeprecationWarning),
    (r".*split_arg_string.*", DeprecationWarning),
    (r".*pkg_resources is deprecated.*", UserWarning),
)


def quiet_libraries(verbose: bool = False) -> None:
    """Silence transformers' progress bars and info/warning logs and known library deprecation warnings."""
    if verbose:
        return
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for pattern, category in LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern, category=category)
    for name in ("transformers", "peft", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
