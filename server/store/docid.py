"""Vespa document ids: `id:<namespace>:<document-type>:<key/value-pair>:<user-specific>`.

The key/value part is empty, `n=<number>` or `g=<group>`; the user-specific part is any
non-empty text and may itself contain colons. The whole string is the document's identity.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from server.store.errors import FeedError

_NUMBER = re.compile(r"^n=-?\d+$")
_CONTROL = re.compile(r"[\x00-\x1f]")
MAX_ID_BYTES = 64 * 1024


# the common case in one match; anything it refuses is diagnosed step by step below
VALID_ID = re.compile(r"id:([^:\x00-\x1f]+):([^:\x00-\x1f]+):(?:n=-?\d+|g=[^:\x00-\x1f]+)?:[^\x00-\x1f]+\Z")


class DocumentId(NamedTuple):
    text: str
    namespace: str
    doctype: str

    def __str__(self) -> str:
        return self.text


def parse_document_id(value: object) -> DocumentId:
    """Parse and check a document id; raises FeedError saying what is wrong."""
    if type(value) is str and len(value) <= MAX_ID_BYTES // 4:
        m = VALID_ID.match(value)
        if m is not None and value.isascii():
            ns, doctype = m.group(1, 2)
            return DocumentId(value, ns, doctype)
    return _parse_slowly(value)


def _parse_slowly(value: object) -> DocumentId:
    if not isinstance(value, str):
        raise FeedError(f"document id must be a string, got {type(value).__name__} {value!r:.80}")
    shown = value if len(value) <= 200 else value[:200] + "..."
    expected = "expected id:<namespace>:<document-type>::<key>, e.g. id:mynamespace:music::a-head-full-of-dreams"
    if not value.startswith("id:"):
        raise FeedError(f"malformed document id '{shown}': must start with 'id:' ({expected})")
    parts = value.split(":", 4)
    if len(parts) != 5:
        raise FeedError(f"malformed document id '{shown}': too few ':'-separated parts ({expected})")
    _, namespace, doctype, keyvalue, user = parts
    if not namespace:
        raise FeedError(f"malformed document id '{shown}': the namespace is empty ({expected})")
    if not doctype:
        raise FeedError(f"malformed document id '{shown}': the document type is empty ({expected})")
    if keyvalue and not (_NUMBER.match(keyvalue) or (keyvalue.startswith("g=") and len(keyvalue) > 2)):
        raise FeedError(f"malformed document id '{shown}': '{keyvalue}' must be empty, n=<number> or g=<group>")
    if not user:
        raise FeedError(f"malformed document id '{shown}': the user-specific part after the last ':' is empty "
                        f"({expected})")
    if _CONTROL.search(value):
        raise FeedError(f"malformed document id '{shown}': control characters are not allowed")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise FeedError(f"malformed document id '{shown}': not valid Unicode (lone surrogate)") from None
    if size > MAX_ID_BYTES:
        raise FeedError(f"malformed document id '{shown}': longer than {MAX_ID_BYTES} bytes")
    return DocumentId(value, namespace, doctype)
