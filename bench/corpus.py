"""The benchmark corpus: real photographs, fetched from package registries.

``python -m bench.corpus [DIR]`` (``make bench-corpus``) fills ``bench/corpus``:

- Debian's Lomiri wallpaper packages, fetched with ``apt-get download`` and unpacked
  with ``dpkg -x`` (nothing is installed): camera photographs of 12 to 20 MP, baseline
  and progressive JPEG, plus a 24 MP digital painting and a 9 MP PNG;
- scikit-image's small sample images, unzipped from its wheel (``pip download``,
  nothing is installed);
- four files derived from those photographs, because no package ships them:
  a copy of a JPEG with EXIF orientation 6 spliced into its header (the compressed
  image data is byte-for-byte the original), a photograph stored as PNG (its decoded
  pixels, losslessly), a photograph as RGBA PNG whose alpha channel is the
  photograph's own smoothed luminance, and a photograph as lossy WebP (quality 90).
  None is upscaled.

``manifest.json`` records where every file came from. ``load(dir)`` lists any
directory of images (``BENCH_CORPUS`` points the benchmark at your own).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageFilter, ImageOps

from imgpipe.detect import sniff

DEFAULT_DIR = Path(__file__).with_name("corpus")
SCIKIT_IMAGE = "scikit-image==0.26.0"
LARGE_MP = 8.0  # at or above: a "large" image for the targets
SMALL_MP = 1.0  # below: a "small" image

# (Debian package, file in the package, what it is)
DEBIAN_FILES = [
    ("lomiri-wallpapers-20.04", "Kleiber_by_Lukas_Baubkus.jpg", "photo, baseline JPEG"),
    ("lomiri-wallpapers-20.04", "Painting-Colors_by__herobrine7gamer.jpg", "digital painting, baseline JPEG"),
    ("lomiri-wallpapers-20.04", "Infinite-Sea_by_Aury88.jpg", "night-sky photo, progressive JPEG"),
    ("lomiri-wallpapers-16.04", "Dragonfly_by_Bolly.jpg", "photo, progressive JPEG"),
    ("lomiri-wallpapers-16.04", "seeding_by_Clements_Engelhardt.jpg", "photo, progressive JPEG"),
    ("lomiri-wallpapers-16.04", "sunset_by_Aitzol_Berasategi.jpg", "photo, progressive JPEG"),
    ("lomiri-wallpapers-16.04", "Picture_0B_by_freespace.jpg", "photo, progressive JPEG"),
    ("lomiri-wallpapers-16.04", "Picture_1A_by_freespace.jpg", "photo, progressive JPEG"),
    ("lomiri-wallpapers", "warty-final-ubuntu.png", "digital artwork, RGB PNG"),
]
BACKGROUNDS = "usr/share/backgrounds"

# files inside the scikit-image wheel
SKIMAGE_FILES = [
    ("astronaut.png", "photo, RGB PNG"),
    ("coffee.png", "photo, RGB PNG"),
    ("camera.png", "photo, grayscale PNG"),
    ("rocket.jpg", "photo, baseline JPEG"),
    ("retina.jpg", "medical photo, baseline JPEG"),
]

ORIENTATION = 0x0112


@dataclass(frozen=True)
class CorpusImage:
    path: Path
    format: str
    width: int
    height: int
    mode: str
    progressive: bool
    orientation: int
    description: str

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6

    @property
    def category(self) -> str:
        """jpeg-large, png-large, jpeg-medium, png-small, ... (what the targets group by)."""
        if self.megapixels >= LARGE_MP:
            size = "large"
        elif self.megapixels >= SMALL_MP:
            size = "medium"
        else:
            size = "small"
        return f"{self.format}-{size}"

    def describe(self) -> dict:
        return {
            "file": self.name,
            "format": self.format,
            "width": self.width,
            "height": self.height,
            "megapixels": round(self.megapixels, 2),
            "mode": self.mode,
            "progressive": self.progressive,
            "orientation": self.orientation,
            "bytes": self.path.stat().st_size,
            "category": self.category,
            "description": self.description,
        }


def load(directory: Path) -> list[CorpusImage]:
    """Every image in ``directory`` (not recursive), largest first."""
    manifest = {}
    manifest_path = directory / "manifest.json"
    if manifest_path.exists():
        manifest = {item["file"]: item for item in json.loads(manifest_path.read_text())["files"]}
    images = []
    for path in sorted(directory.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        with path.open("rb") as fh:
            fmt = sniff(fh.read(64))
        if fmt is None:
            continue
        with Image.open(path) as im:
            progressive = bool(im.info.get("progressive") or im.info.get("progression"))
            orientation = int(im.getexif().get(ORIENTATION, 1) or 1)
            images.append(
                CorpusImage(
                    path=path,
                    format=fmt,
                    width=im.width,
                    height=im.height,
                    mode=im.mode,
                    progressive=progressive,
                    orientation=orientation,
                    description=manifest.get(path.name, {}).get("description", "your own"),
                )
            )
    images.sort(key=lambda i: (-i.width * i.height, i.name))
    return images


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)


def _apt_download(packages: list[str], where: Path) -> None:
    result = _run(["apt-get", "download", *packages], where)
    if result.returncode != 0 and os.geteuid() == 0:
        # A fresh machine may have no package lists yet: fetch them once and retry.
        print("bench.corpus: apt-get download failed; running apt-get update once", file=sys.stderr)
        update = _run(["apt-get", "update"], where)
        if update.returncode == 0:
            result = _run(["apt-get", "download", *packages], where)
    if result.returncode != 0:
        raise SystemExit(
            f"bench.corpus: `apt-get download {' '.join(packages)}` failed:\n{result.stderr.strip()}\n"
            "Run `apt-get update` (as root) and try again, or point BENCH_CORPUS at your own images."
        )


def _deb_version(deb: Path) -> str:
    result = _run(["dpkg-deb", "--field", str(deb), "Version"], deb.parent)
    return result.stdout.strip()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _jpeg_with_orientation(data: bytes, orientation: int) -> bytes:
    """The same JPEG with its EXIF orientation set, entropy-coded data untouched.

    Any APP1 Exif segment is replaced by one carrying the original tags plus the
    new orientation, placed after SOI and a JFIF APP0 if there is one.
    """
    assert data[:2] == b"\xff\xd8"
    with Image.open(io.BytesIO(data)) as im:
        exif = im.getexif()
    exif[ORIENTATION] = orientation
    payload = exif.tobytes()  # starts with b"Exif\0\0"
    segment = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    out = bytearray(b"\xff\xd8")
    pos, inserted = 2, False
    while pos < len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xDA:  # start of scan: the rest is image data
            break
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        chunk = data[pos : pos + 2 + length]
        pos += 2 + length
        if marker == 0xE1 and chunk[4:10] == b"Exif\0\0":
            continue
        if not inserted and marker != 0xE0:
            out += segment
            inserted = True
        out += chunk
    if not inserted:
        out += segment
    out += data[pos:]
    return bytes(out)


def _luminance_alpha(im: Image.Image) -> Image.Image:
    """RGBA whose alpha is the photo's own smoothed, contrast-stretched luminance."""
    rgb = im.convert("RGB")
    alpha = ImageOps.autocontrast(rgb.convert("L").filter(ImageFilter.GaussianBlur(6)), cutoff=2)
    rgba = rgb.copy()
    rgba.putalpha(alpha)
    return rgba


def fetch(out: Path) -> list[dict]:
    """Fill ``out`` with the corpus and its manifest; returns the manifest's entries."""
    out.mkdir(parents=True, exist_ok=True)
    entries: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-corpus-") as tmp_name:
        tmp = Path(tmp_name)
        packages = sorted({pkg for pkg, _, _ in DEBIAN_FILES})
        _apt_download(packages, tmp)
        unpacked = tmp / "root"
        versions = {}
        for deb in sorted(tmp.glob("*.deb")):
            subprocess.run(["dpkg", "-x", str(deb), str(unpacked)], check=True)
            versions[deb.name.split("_", 1)[0]] = _deb_version(deb)
        for pkg, name, what in DEBIAN_FILES:
            src = unpacked / BACKGROUNDS / name
            shutil.copyfile(src, out / name)
            entries.append(
                {"file": name, "description": what, "source": f"Debian package {pkg} {versions.get(pkg, '')}"}
            )

        wheel_dir = tmp / "wheel"
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
        result = _run([*pip, "--dest", str(wheel_dir), SCIKIT_IMAGE], tmp)
        if result.returncode != 0:
            raise SystemExit(f"bench.corpus: pip download {SCIKIT_IMAGE} failed:\n{result.stderr.strip()}")
        wheel = next(wheel_dir.glob("scikit_image-*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            for name, what in SKIMAGE_FILES:
                (out / name).write_bytes(zf.read(f"skimage/data/{name}"))
                entries.append({"file": name, "description": what, "source": f"{wheel.name} skimage/data/"})

    source = "Kleiber_by_Lukas_Baubkus.jpg"
    name = "Kleiber_by_Lukas_Baubkus-orientation6.jpg"
    (out / name).write_bytes(_jpeg_with_orientation((out / source).read_bytes(), 6))
    entries.append(
        {
            "file": name,
            "description": "photo, baseline JPEG, EXIF orientation 6",
            "source": f"derived from {source}: EXIF orientation 6 spliced in, image data untouched",
        }
    )
    source = "sunset_by_Aitzol_Berasategi.jpg"
    name = "sunset_by_Aitzol_Berasategi.png"
    with Image.open(out / source) as im:
        im.convert("RGB").save(out / name, "PNG")
    entries.append(
        {
            "file": name,
            "description": "photo, RGB PNG",
            "source": f"derived from {source}: its decoded pixels saved as PNG (lossless)",
        }
    )
    source = "Dragonfly_by_Bolly.jpg"
    name = "Dragonfly_by_Bolly-alpha.png"
    with Image.open(out / source) as im:
        _luminance_alpha(im).save(out / name, "PNG")
    entries.append(
        {
            "file": name,
            "description": "photo, RGBA PNG",
            "source": f"derived from {source}: alpha = the photo's smoothed, stretched luminance",
        }
    )

    source = "Infinite-Sea_by_Aury88.jpg"
    name = "Infinite-Sea_by_Aury88.webp"
    with Image.open(out / source) as im:
        im.convert("RGB").save(out / name, "WEBP", quality=90)
    entries.append(
        {
            "file": name,
            "description": "night-sky photo, lossy WebP",
            "source": f"derived from {source}: its decoded pixels saved as lossy WebP, quality 90",
        }
    )

    for entry in entries:
        entry["sha256"] = _sha256(out / entry["file"])
    (out / "manifest.json").write_text(json.dumps({"files": entries}, indent=2) + "\n")
    return entries


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else DEFAULT_DIR
    entries = fetch(out)
    for image in load(out):
        print(
            f"{image.name:48} {image.format:5} {image.width:>5}x{image.height:<5} {image.megapixels:5.1f} MP"
        )
    (out / ".fetched").write_text(f"{len(entries)} files\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
