"""make package: a reproducible Lambda zip with the pinned wheels for the function's platform.

Builds download wheels from PyPI once (cached under build/wheels/); slow.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from tools import package

pytestmark = pytest.mark.slow


def _python312() -> str | None:
    """A working CPython 3.12 (pyenv shims exist even when the version is not selected)."""
    candidates = [
        shutil.which("python3.12"),
        *sorted(Path.home().glob(".pyenv/versions/3.12*/bin/python3.12")),
    ]
    for candidate in filter(None, candidates):
        ok = subprocess.run(
            [str(candidate), "-c", "import sys; assert sys.version_info[:2] == (3, 12)"],
            capture_output=True,
            check=False,
        )
        if ok.returncode == 0:
            return str(candidate)
    return None


PY312 = _python312()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def arm_zip(tmp_path_factory) -> Path:
    return package.build(tmp_path_factory.mktemp("arm") / "lambda.zip", arch="arm64")


def test_same_sources_give_byte_identical_zips(arm_zip, tmp_path):
    again = package.build(tmp_path / "again.zip", arch="arm64")
    assert sha256(again) == sha256(arm_zip)


def test_zip_holds_handlers_engine_and_pinned_arm64_wheels(arm_zip):
    with zipfile.ZipFile(arm_zip) as zf:
        names = set(zf.namelist())
    assert {"resize_handler.py", "upload_handler.py", "imgpipe/renditions.py"} <= names
    assert "imgpipe/default_renditions.json" in names
    pinned = {
        line.split("==")[0].lower().replace("-", "_"): line.split("==")[1].strip()
        for line in Path("requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    dist_infos = {n.split("/")[0].lower() for n in names if ".dist-info/" in n}
    for name, version in pinned.items():
        assert f"{name}-{version}.dist-info" in dist_infos, f"{name}=={version} missing"
    # Native code is for aarch64 and CPython 3.12, never this machine's.
    native = [n for n in names if n.endswith(".so")]
    assert any("cpython-312-aarch64-linux-gnu" in n for n in native)
    assert not any("x86_64" in n for n in native)


def test_zip_holds_pillows_own_avif_plugin_and_the_libavif_it_bundles(arm_zip):
    """AVIF renditions need Pillow's _avif module, linked against the libavif its manylinux wheel
    bundles (pillow.libs/); no system library on Lambda provides it."""
    with zipfile.ZipFile(arm_zip) as zf:
        names = set(zf.namelist())
    assert "PIL/AvifImagePlugin.py" in names
    assert "PIL/_avif.cpython-312-aarch64-linux-gnu.so" in names
    assert [n for n in names if n.startswith("pillow.libs/libavif") and ".so" in n]


def test_zip_holds_the_libwebp_the_scaled_webp_decode_loads(arm_zip):
    """imgpipe.webpdecode loads Pillow's bundled libwebp from pillow.libs/ beside PIL/ (no system
    libwebp on Lambda): without it every WebP would decode in full through Pillow."""
    from imgpipe import webpdecode

    with zipfile.ZipFile(arm_zip) as zf:
        names = set(zf.namelist())
    libs = [n for n in names if n.startswith("pillow.libs/")]
    assert [n for n in libs if fnmatch.fnmatch(n.split("/", 1)[1], webpdecode.LIBRARY_GLOB)]


def test_zip_leaves_out_runtime_and_machine_specific_files(arm_zip):
    with zipfile.ZipFile(arm_zip) as zf:
        infos = zf.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names)
    assert not [n for n in names if n.split("/")[0].startswith(("boto3", "botocore", "s3transfer"))]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    dropped = ("direct_url.json", "INSTALLER", "REQUESTED", "RECORD")
    assert not [n for n in names if n.endswith(dropped)]
    assert not [n for n in names if n.startswith("bin/")]
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    modes = {i.external_attr >> 16 for i in infos}
    assert modes <= {0o100644, 0o040755}


def test_zip_records_its_architecture_and_python_inside_and_beside_it(arm_zip):
    """Terraform compares the manifest beside the zip with lambda_architecture and
    lambda_runtime at plan time; its hash is what filebase64sha256 gives for the zip."""
    beside = json.loads(package.manifest_path(arm_zip).read_text())
    assert package.manifest_path(arm_zip) == arm_zip.with_name("lambda.json")
    digest = base64.b64encode(hashlib.sha256(arm_zip.read_bytes()).digest()).decode()
    assert beside == {
        "architecture": "arm64",
        "runtime": "python3.12",
        "python_abi": "cp312",
        "platforms": ["manylinux_2_28_aarch64", "manylinux2014_aarch64"],
        "zip_base64sha256": digest,
    }
    with zipfile.ZipFile(arm_zip) as zf:
        inside = json.loads(zf.read(package.INNER_MANIFEST))
    assert inside == {k: v for k, v in beside.items() if k != "zip_base64sha256"}


def test_zip_fits_lambda_limits(arm_zip):
    zipped, unzipped = package.sizes(arm_zip)
    assert zipped <= 15 * 1024 * 1024
    assert unzipped <= 250 * 1024 * 1024  # Lambda's unzipped limit


def test_boto3_in_requirements_is_refused(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("boto3==1.44.5\n")
    with pytest.raises(package.PackageError, match="runtime provides it"):
        package.build(tmp_path / "x.zip", requirements=req)


@pytest.mark.skipif(PY312 is None, reason="no CPython 3.12 on this machine to import the x86_64 package with")
def test_x86_64_package_imports_and_decodes_on_python312(tmp_path):
    path = package.build(tmp_path / "lambda.zip", arch="x86_64")
    site = tmp_path / "site"
    with zipfile.ZipFile(path) as zf:
        zf.extractall(site)
    code = (
        "import io, sys; from PIL import Image, features; import pillow_heif; "
        "from imgpipe import detect, renditions; "
        "assert features.check('avif'), 'Pillow was built without AVIF'; "
        "buf = io.BytesIO(); Image.new('RGB', (8, 8), 'red').save(buf, 'AVIF'); "
        "assert detect.sniff(buf.getvalue()) == 'avif'; "
        "assert Image.open(io.BytesIO(buf.getvalue())).size == (8, 8); "
        "from imgpipe.encode import encode; "
        "avif = encode(Image.new('RGB', (16, 16), 'blue'), 'avif', 60, avif_speed=8); "
        "assert avif[4:12] == b'ftypavif'; "
        # big PNGs inflate with the packaged ISA-L (imgpipe.pngdecode), not the system's zlib
        "from imgpipe import pngdecode; from isal import isal_zlib; "
        "assert pngdecode._inflater()[0] is isal_zlib, 'isal did not import'; "
        "print(len(renditions.default_renditions()))"
    )
    result = subprocess.run(
        [str(PY312), "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); {code}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3"
