"""MONAI Label's session store, with ids that are never paths and metadata that survives a crash.

``Sessions`` (0.8.5) joins the session id into a path unchecked (``..`` or an absolute id reaches any
folder, and ``DELETE /session/..`` removes the folder above the store) and rewrites ``meta.info`` in place.
Here ids must be the UUIDs the store itself creates, ``meta.info`` is written atomically, and a session
whose metadata does not parse counts as missing.
"""

from __future__ import annotations

import json
import logging
import os
import uuid

from monailabel.utils.sessions import SessionInfo, Sessions

from models.files import atomic_write

logger = logging.getLogger(__name__)


def is_session_id(value) -> bool:
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        return False


class SafeSessions(Sessions):
    def get_session(self, session_id: str, update_ts: bool = True, fetch_cache: bool = True):
        if not is_session_id(session_id):
            return None
        try:
            return super().get_session(session_id, update_ts=update_ts, fetch_cache=fetch_cache)
        except (ValueError, OSError) as e:  # torn or foreign meta.info
            logger.warning(f"session {session_id}: unreadable metadata ({e}); treated as missing")
            return None

    def remove_session(self, session_id: str):
        if is_session_id(session_id):
            super().remove_session(session_id)

    def add_session(self, data_file: str, expiry: int = 0, uncompress: bool = False, session_id=None):
        if uncompress:
            raise ValueError("sessions hold one uploaded file; archives are not extracted")
        return super().add_session(data_file, expiry, False, session_id=str(uuid.uuid4()))

    def _write_meta_info(self, session_id, session_info: SessionInfo):
        atomic_write(os.path.join(self.store_path, session_id, "meta.info"), json.dumps(session_info.__dict__))
