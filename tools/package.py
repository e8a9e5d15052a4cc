"""Build ``build/lambda.zip``: the handlers, ``imgpipe`` and the pinned runtime wheels.

Wheels are the function's platform and runtime, never this machine's:
``pip download --only-binary=:all: --platform manylinux_2_28_<arch>
--platform manylinux2014_<arch> --python-version 3.12 --implementation cp``.
The newer manylinux tag comes first: with ``manylinux2014`` alone pip silently
settles for the last Pillow release that still shipped such wheels.

The zip is reproducible: the same sources and requirements give the same
bytes, so ``filebase64sha256`` and ``terraform plan`` see no change. Entries are
sorted, timestamps fixed at 1980-01-01, permissions fixed (0644 files, 0755
directories), and nothing that depends on the build machine is kept: no
``.pyc``, no ``__pycache__``, no ``direct_url.json``, ``INSTALLER``,
``REQUESTED`` or ``RECORD``, no console scripts. boto3 and botocore are left out:
the Lambda runtime provides them.

Downloaded wheels are cached under ``build/wheels/<platform>-<python>/``.

What the package was built for (architecture, runtime, Python ABI, platform
tags) is recorded twice: ``lambda-package.json`` inside the zip, and a manifest
beside it (``lambda.zip`` -> ``lambda.json``) that also carries the zip's
base64 SHA-256. Terraform reads the latter at plan time and refuses a package
whose compiled wheels would not import on the functions' architecture or runtime.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIR = REPO_ROOT / "lambda"
REQUIREMENTS = REPO_ROOT / "requirements.txt"
DEFAULT_OUTPUT = REPO_ROOT / "build" / "lambda.zip"
WHEEL_CACHE = REPO_ROOT / "build" / "wheels"

ARCHES = {"arm64": "aarch64", "x86_64": "x86_64"}
RUNTIMES = ("python3.12", "python3.13")
# Provided by the Lambda runtime; never packaged even if something pulls them in.
EXCLUDED_DISTRIBUTIONS = ("boto3", "botocore", "s3transfer")
# Written by pip on install and different on every machine or run.
DROPPED_METADATA = ("direct_url.json", "INSTALLER", "REQUESTED", "RECORD")
FIXED_DATE = (1980, 1, 1, 0, 0, 0)
# Inside the zip; the one beside it is manifest_path(zip).
INNER_MANIFEST = "lambda-package.json"
FILE_MODE = 0o100644
DIR_MODE = 0o040755


class PackageError(RuntimeError):
    pass


def platforms(arch: str) -> list[str]:
    machine = ARCHES[arch]
    return [f"manylinux_2_28_{machine}", f"manylinux2014_{machine}"]


def build_info(arch: str, runtime: str) -> dict[str, object]:
    """What the wheels were chosen for; Terraform compares it with lambda_architecture/lambda_runtime."""
    version = runtime.removeprefix("python")
    return {
        "architecture": arch,
        "runtime": runtime,
        "python_abi": f"cp{version.replace('.', '')}",
        "platforms": platforms(arch),
    }


def manifest_path(zip_path: Path) -> Path:
    """``build/lambda.zip`` -> ``build/lambda.json``, where Terraform looks for it."""
    return zip_path.with_suffix(".json")


def write_manifest(zip_path: Path, arch: str, runtime: str) -> Path:
    """The manifest beside the zip: build_info plus the zip's hash, as filebase64sha256 gives it."""
    digest = base64.b64encode(hashlib.sha256(zip_path.read_bytes()).digest()).decode()
    info = {**build_info(arch, runtime), "zip_base64sha256": digest}
    path = manifest_path(zip_path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def _pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PackageError(
            f"{' '.join(cmd[2:5])} ... failed:\n{result.stderr.strip() or result.stdout.strip()}"
        )


def download_wheels(arch: str, runtime: str, requirements: Path, cache: Path) -> Path:
    """Wheels of the pinned requirements for the function's platform, cached."""
    version = runtime.removeprefix("python")
    dest = cache / f"{ARCHES[arch]}-cp{version.replace('.', '')}"
    dest.mkdir(parents=True, exist_ok=True)
    args = ["download", "--quiet", "--only-binary=:all:", "--implementation", "cp"]
    for plat in platforms(arch):
        args += ["--platform", plat]
    args += ["--python-version", version, "--dest", str(dest), "--requirement", str(requirements)]
    _pip(*args)
    return dest


def install_wheels(wheels: Path, arch: str, runtime: str, requirements: Path, target: Path) -> None:
    """Install from the cache only (``--no-index``): what was downloaded is what ships."""
    version = runtime.removeprefix("python")
    args = ["install", "--quiet", "--no-index", "--find-links", str(wheels), "--no-compile"]
    args += ["--only-binary=:all:", "--implementation", "cp", "--python-version", version]
    for plat in platforms(arch):
        args += ["--platform", plat]
    args += ["--target", str(target), "--requirement", str(requirements)]
    _pip(*args)


def _excluded(rel: Path) -> bool:
    parts = rel.parts
    if "__pycache__" in parts or rel.suffix in (".pyc", ".pyo"):
        return True
    top = parts[0]
    if top == "bin":  # console scripts carry the build machine's interpreter path
        return True
    name = top.split("-")[0].lower().replace("_", "-") if top.endswith(".dist-info") else top.lower()
    if name in EXCLUDED_DISTRIBUTIONS:
        return True
    return bool(len(parts) == 2 and top.endswith(".dist-info") and parts[1] in DROPPED_METADATA)


def collect(site: Path, source: Path) -> dict[str, Path]:
    """Archive name -> file; the sources win over anything installed."""
    files: dict[str, Path] = {}
    for root in (site, source):
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if path.is_file() and not _excluded(rel):
                files[rel.as_posix()] = path
    return files


def write_zip(files: dict[str, Path], output: Path) -> None:
    """Deterministic zip: sorted names, fixed dates and modes, directory entries."""
    dirs = sorted({p for name in files for p in _parents(name)})
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".lambda-", suffix=".zip", dir=output.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w") as zf:
            for name in sorted([*dirs, *files]):
                info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
                info.create_system = 3  # unix, so external_attr holds the mode
                if name.endswith("/"):
                    info.external_attr = (DIR_MODE << 16) | 0x10
                    zf.writestr(info, b"")
                    continue
                info.external_attr = FILE_MODE << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, files[name].read_bytes(), compresslevel=9)
        os.chmod(tmp, 0o644)
        os.replace(tmp, output)  # atomic: concurrent builds never see half a zip
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _parents(name: str) -> list[str]:
    parts = name.split("/")[:-1]
    return ["/".join(parts[: i + 1]) + "/" for i in range(len(parts))]


def build(
    output: Path = DEFAULT_OUTPUT,
    arch: str = "arm64",
    runtime: str = "python3.12",
    requirements: Path = REQUIREMENTS,
    source: Path = SOURCE_DIR,
    cache: Path = WHEEL_CACHE,
) -> Path:
    if arch not in ARCHES:
        raise PackageError(f"ARCH={arch!r}: expected one of {sorted(ARCHES)}")
    if runtime not in RUNTIMES:
        raise PackageError(f"LAMBDA_RUNTIME={runtime!r}: expected one of {list(RUNTIMES)}")
    for line in requirements.read_text().splitlines():
        name = line.split("#")[0].strip().split("==")[0].split("[")[0].strip().lower()
        if name in EXCLUDED_DISTRIBUTIONS:
            raise PackageError(f"{requirements.name} lists {name}: the Lambda runtime provides it")
    wheels = download_wheels(arch, runtime, requirements, cache)
    with tempfile.TemporaryDirectory(prefix="lambda-site-") as tmp:
        site = Path(tmp) / "site"
        install_wheels(wheels, arch, runtime, requirements, site)
        info = json.dumps(build_info(arch, runtime), indent=2, sort_keys=True)
        (site / INNER_MANIFEST).write_text(info + "\n")
        write_zip(collect(site, source), output)
    write_manifest(output, arch, runtime)
    return output


def sizes(path: Path) -> tuple[int, int]:
    """(zipped, unzipped) bytes."""
    with zipfile.ZipFile(path) as zf:
        return path.stat().st_size, sum(i.file_size for i in zf.infolist())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.package", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--arch", default=os.environ.get("ARCH", "arm64"), choices=sorted(ARCHES))
    parser.add_argument("--runtime", default=os.environ.get("LAMBDA_RUNTIME", "python3.12"), choices=RUNTIMES)
    args = parser.parse_args(argv)
    try:
        path = build(args.output, args.arch, args.runtime)
    except PackageError as exc:
        print(exc, file=sys.stderr)
        return 1
    zipped, unzipped = sizes(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    print(f"{path}: {zipped / 1e6:.1f} MB zipped, {unzipped / 1e6:.1f} MB unzipped, sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
