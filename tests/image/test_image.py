"""The Containerfile builds, and the image runs vegd, the gateway agent and FRR's bfdd.

Built the way this machine allows: `buildah bud --isolation chroot` on a Debian bookworm base
made by `mmdebstrap` and imported under the name the Containerfile uses
(docker.io/library/debian:bookworm-slim), so the Containerfile itself stays the standard one
users build with podman, docker or buildah. The mmdebstrap tarball is cached in
/var/cache/vegd-test (VEGD_IMAGE_CACHE), the imported base stays in buildah's storage, and
`--layers` reuses the apt layer while only vegd's sources changed. Cold (no cache): about 3 min;
warm: about 1.5 min; that fits the default run, so it is in it (`-m "not image"` leaves it out).
Where buildah or mmdebstrap cannot be installed (not Debian, not root) it is skipped, saying so.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.image, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BASE = "docker.io/library/debian:bookworm-slim"
IMAGE = "localhost/vegd:test"
CACHE = Path(os.environ.get("VEGD_IMAGE_CACHE", "/var/cache/vegd-test"))
MIRRORS = ("deb http://deb.debian.org/debian bookworm main",
           "deb http://deb.debian.org/debian bookworm-updates main",
           "deb http://deb.debian.org/debian-security bookworm-security main")
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
# Debian 13's buildah raises the open-files and process limits of every step to 1048576 unless
# told; a sandbox that caps them (as this machine does) refuses that: steps keep the limits we have.
# (nproc at most 32768: Debian 12's buildah lowers it to that itself and cannot raise it again.)


def _ulimit(name: str, limit: int, most: int | None = None) -> list[str]:
    soft, hard = resource.getrlimit(limit)
    if most is not None:
        soft, hard = ((most if v == resource.RLIM_INFINITY else min(v, most)) for v in (soft, hard))
    return ["--ulimit", f"{name}={soft}:{hard}"]


ULIMITS = [*_ulimit("nofile", resource.RLIMIT_NOFILE),
           *_ulimit("nproc", resource.RLIMIT_NPROC, 32768)]

if os.geteuid() != 0 or not shutil.which("buildah") or not shutil.which("mmdebstrap"):
    pytest.skip("needs root, buildah and mmdebstrap (Debian packages buildah, mmdebstrap; "
                "scripts/setup installs them): cannot build the image here",
                allow_module_level=True)


def run(*argv: str, timeout: float = 900) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(argv)}:\n{result.stdout[-4000:]}\n" \
                                   f"{result.stderr[-4000:]}"
    return result.stdout


def ensure_base() -> None:
    """The Containerfile's base image, made locally once (pulling is not possible here)."""
    # (Debian 12's buildah prints nothing for an image it does not have; 13's exits 125)
    known = subprocess.run(["buildah", "images", "-q", BASE], capture_output=True, text=True)
    if known.returncode == 0 and known.stdout.strip():
        return
    tarball = CACHE / "bookworm-base.tar"
    if not tarball.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = tarball.with_suffix(".partial.tar")
        run("mmdebstrap", "--variant=minbase", "--include=ca-certificates", "bookworm",
            str(partial), *MIRRORS)
        partial.rename(tarball)
    container = run("buildah", "from", "scratch").strip()
    try:
        run("buildah", "add", container, str(tarball), "/")
        run("buildah", "commit", "-q", container, BASE)
    finally:
        run("buildah", "rm", container)


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    ensure_base()
    build = ["buildah", "bud", "--isolation", "chroot", "--pull-never", "--layers",
             *ULIMITS,
             "-f", str(ROOT / "Containerfile"), "-t", IMAGE]
    if HOST_CA.exists():  # this machine's TLS trust for pip (a build argument, not in the image)
        build += ["--build-arg", "PIP_CERT=/run/host-ca.crt",
                  "-v", f"{HOST_CA}:/run/host-ca.crt:ro"]
    run(*build, str(ROOT))
    container = run("buildah", "from", "--pull-never", *ULIMITS, IMAGE).strip()
    try:
        yield container
    finally:
        run("buildah", "rm", container)


def inside(container: str, *argv: str) -> str:
    return run("buildah", "run", "--isolation", "chroot", container, "--", *argv, timeout=60)


def test_vegd_version(image):
    from vegd import __version__

    assert inside(image, "vegd", "version").strip() == __version__


def test_gateway_agent_help(image):
    out = inside(image, "vegd", "gateway", "setup", "--help")
    assert "--snat-sources" in out and "--bfd-peers" in out


def test_bfdd_and_the_gateway_tools(image):
    assert inside(image, "bfdd", "--version").startswith("bfdd version")
    assert "nftables" in inside(image, "nft", "--version")
    assert "conntrack" in inside(image, "conntrack", "--version")
    assert "iproute2" in inside(image, "ip", "-V")


def test_pip_cert_is_not_kept_in_the_image(image):
    assert "PIP_CERT" not in inside(image, "env")
