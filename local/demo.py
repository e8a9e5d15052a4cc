"""``make demo``: one sample image through both upload routes of a running local stack.

Start the stack first (``make run`` in another terminal). The demo builds a
photo-like JPEG with Pillow, uploads it

1. directly: ``POST /images`` with the bytes as the body, and
2. presigned: ``POST /uploads``, then the returned form posted to the emulated S3,

polls ``GET /images/{id}`` until each is ``done`` (or ``failed``) and prints the
renditions with their URLs (the local CDN's, ``$API/cdn/<key>``, or presigned
GETs with ``cdn_enabled = false``), which work from this machine with curl.
``API`` says where the stack listens; by default the running stack's own
(``$LOCAL_STACK_DIR/stack.json``), else ``http://127.0.0.1:$API_PORT``. The
uploads and the polling are ``local.client``'s, shared with the bench and the tests.
"""

from __future__ import annotations

import io
import sys
from typing import Any

from PIL import Image, ImageDraw

from local import client

POLL_SECONDS = 120


def sample_jpeg(width: int = 2400, height: int = 1600) -> bytes:
    """A colourful landscape-like picture: gradients, a sun, hills, some text."""
    sky = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    sky = Image.merge(
        "RGB",
        (
            sky.getchannel(0).point(lambda v: 60 + v // 3),
            sky.getchannel(0),
            Image.new("L", (width, height), 235),
        ),
    )
    draw = ImageDraw.Draw(sky)
    draw.ellipse((width * 0.7, height * 0.1, width * 0.85, height * 0.1 + width * 0.15), fill=(255, 200, 60))
    for i, colour in enumerate(((70, 140, 60), (50, 110, 45), (35, 85, 35))):
        top = height * (0.55 + 0.12 * i)
        draw.polygon(
            [
                (0, height),
                (0, top),
                (width * 0.3, top - height * 0.12),
                (width * 0.65, top),
                (width, top - height * 0.08),
                (width, height),
            ],
            fill=colour,
        )
    draw.text(
        (width * 0.04, height * 0.05), "image-pipeline demo", fill=(255, 255, 255), font_size=height // 14
    )
    out = io.BytesIO()
    sky.save(out, "JPEG", quality=88)
    return out.getvalue()


def upload_direct(api: str, data: bytes) -> str:
    response = client.upload_direct(api, data, "image/jpeg", "demo-direct.jpg")
    response.raise_for_status()
    body = response.json()
    print(f"POST /images                 -> {response.status_code} id={body['id']} status={body['status']}")
    return body["id"]


def upload_presigned(api: str, data: bytes) -> str:
    created, form = client.upload_presigned(api, data, "image/jpeg", "demo-presigned.jpg")
    created.raise_for_status()
    body = created.json()
    print(f"POST /uploads                -> {created.status_code} id={body['id']} status={body['status']}")
    form.raise_for_status()
    print(f"POST (presigned form to S3)  -> {form.status_code}")
    return body["id"]


def wait_done(api: str, image_id: str) -> dict[str, Any]:
    try:
        return client.wait_done(api, image_id, timeout=POLL_SECONDS)
    except TimeoutError as exc:
        return {"id": image_id, "status": "not finished", "error": str(exc)}


def show(label: str, body: dict[str, Any]) -> bool:
    original = body.get("original", {})
    print(f"\n{label}: {body['id']} is {body['status']}", end="")
    if original.get("width"):
        print(f" (original {original['width']}x{original['height']} {original.get('format', '')})", end="")
    print()
    if body["status"] != "done":
        print(f"  error: {body.get('error')}")
        return False
    for r in body.get("renditions", []):
        size = f"{r['width']}x{r['height']}"
        print(f"  {r['name']:<8} {r['format']:<5} {size:>10} {r['bytes']:>8} B  {r['url']}")
    return True


def main() -> int:
    api = client.api_url()
    if not client.is_answering(api):
        print(
            f"nothing answers on {api}: start the stack with `make run` in another terminal", file=sys.stderr
        )
        return 1
    data = sample_jpeg()
    print(f"sample image: 2400x1600 JPEG, {len(data)} bytes; API {api}\n")
    direct = upload_direct(api, data)
    presigned = upload_presigned(api, data)
    ok = show("direct upload", wait_done(api, direct))
    ok = show("presigned upload", wait_done(api, presigned)) and ok
    if ok:
        print("\nThe URLs work from this machine (docs/cdn.md): curl -sS -o out.webp '<url>'")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
