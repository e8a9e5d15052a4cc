"""The user metadata of a rendition, kept within S3's limit whatever the source key.

AWS: "Within the PUT request header, the user-defined metadata is limited to
2 KB in size. The size of user-defined metadata is measured by taking the sum
of the number of bytes in the UTF-8 encoding of each key and value" (Amazon S3
User Guide, "Working with object metadata",
https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingMetadata.html). A
key may be 1,024 bytes of UTF-8, and percent-encoding (S3 metadata must be
ASCII) triples a non-ASCII byte, so a long key alone can pass the limit and
fail the PUT. The source key is then cut, at a whole character, and
``source-key-truncated`` says so; the record keeps the full key.
"""

from __future__ import annotations

from urllib.parse import quote

# "2 KB" counted as 2,000 bytes, with the x-amz-meta- prefix of each name
# counted too: whichever way S3 reads its own limit, the metadata fits.
LIMIT = 2000
PREFIX = "x-amz-meta-"
TRUNCATED = "source-key-truncated"


def size(metadata: dict[str, str]) -> int:
    """Bytes of the metadata as S3 counts them, plus the header prefixes."""
    return sum(len(f"{PREFIX}{name}".encode()) + len(value.encode()) for name, value in metadata.items())


def rendition_metadata(
    source_key: str, image_id: str, version: str | None, config_version: str | None = None
) -> dict[str, str]:
    """``source-key`` (percent-encoded), ``image-id``, ``source-version``, ``config-version``
    (the rendition-config version that made it): at most ``LIMIT`` bytes."""
    metadata = {"image-id": image_id}
    if version:
        metadata["source-version"] = version
    if config_version:
        metadata["config-version"] = config_version
    encoded = quote(source_key, safe="/")
    if size({**metadata, "source-key": encoded}) <= LIMIT:
        return {"source-key": encoded, **metadata}
    room = LIMIT - size({**metadata, "source-key": "", TRUNCATED: "true"})
    return {"source-key": _encoded_prefix(source_key, room), TRUNCATED: "true", **metadata}


def _encoded_prefix(text: str, room: int) -> str:
    """The percent-encoding of the longest prefix of ``text`` (whole characters) within ``room`` bytes."""
    pieces: list[str] = []
    used = 0
    for char in text:
        piece = quote(char, safe="/")
        if used + len(piece) > room:
            break
        pieces.append(piece)
        used += len(piece)
    return "".join(pieces)
