"""The node image for Docker nodes, built here with no registry: debootstrap of Debian bookworm, packages
installed in the chroot, then ``docker import``.

The image's tag is a hash of its recipe (``splitbrain-node:<hash12>``), so a build is a no-op while the
recipe is unchanged and any change to it gives a new tag. The project itself is not in the image: Docker
nodes bind-mount it read-only at the same path as on the host.

To add a target's programs (etcd-server, zookeeper + default-jre-headless, nginx, haproxy,
postgresql-15, openssh-server), add them to ``NODE_PACKAGES``: the hash, and so the tag, changes with it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import shutil
import struct
import subprocess
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from splitbrain.control.errors import ConfigError, HostError

IMAGE_REPO = "splitbrain-node"
RECIPE_LABEL = "splitbrain.recipe"
SOURCES_FILE = Path("/etc/apt/sources.list.d/debian.sources")
FALLBACK_MIRROR = "http://deb.debian.org/debian"
# What a node needs for the internal Raft store and the nemeses: python3 runs the store (the project is
# bind-mounted), iproute2/iptables for partitions and packet faults, procps/psmisc for kill and pidof.
# Then the third-party targets' programs: etcd, ZooKeeper with a headless JRE, nginx, HAProxy, PostgreSQL 15.
NODE_PACKAGES = ("python3", "iproute2", "iptables", "procps", "psmisc",
                 "etcd-server", "zookeeper", "default-jre-headless", "nginx", "haproxy", "postgresql-15")
# Bump when the build steps below change in a way that changes the image.
BUILD_STEPS_VERSION = 1
BUILD_TIMEOUT_S = 1800


@dataclass(frozen=True)
class Recipe:
    repo: str = IMAGE_REPO
    suite: str = "bookworm"
    variant: str = "minbase"
    packages: tuple[str, ...] = NODE_PACKAGES
    steps_version: int = BUILD_STEPS_VERSION

    def digest(self) -> str:
        """The recipe's identity: a change of suite, packages or build steps changes it (the mirror does not)."""
        fields = {k: v for k, v in asdict(self).items() if k != "repo"}  # the tag's name carries the repo
        text = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def tag(self) -> str:
        return f"{self.repo}:{self.digest()[:12]}"


NODE_RECIPE = Recipe()
# What a new user has: a minimal Debian 12 with Debian's python3 and nothing else (.ci/readme-check runs
# the README's first command in it).
FRESH_DEBIAN_RECIPE = Recipe(repo="splitbrain-fresh-debian", packages=("python3", "ca-certificates"))


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    size_bytes: int
    created: str
    current: bool


def mirror_from_sources(text: str) -> str | None:
    """The first ``URIs:`` of a deb822 sources file (the Debian archive this machine installs from)."""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "URIs" and value.split():
            return value.split()[0]
    return None


def debian_mirror(sources: Path = SOURCES_FILE) -> str:
    try:
        found = mirror_from_sources(sources.read_text())
    except OSError:
        found = None
    return found or FALLBACK_MIRROR


def _docker(args: list[str], *, input_bytes: bytes | None = None, timeout: float = 60) -> str:
    """Run the docker CLI; ConfigError with docker's last stderr line when it fails."""
    try:
        done = subprocess.run(["docker", *args], input=input_bytes, capture_output=True, timeout=timeout)
    except FileNotFoundError:
        raise ConfigError("Docker nodes need the docker CLI (apt-get install docker.io)") from None
    except subprocess.TimeoutExpired:
        raise ConfigError(f"docker {' '.join(args[:2])}: no answer in {timeout:.0f} s") from None
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        raise ConfigError(f"docker {' '.join(args[:2])}: {lines[-1] if lines else f'exit code {done.returncode}'}")
    return done.stdout.decode(errors="replace")


def require_docker() -> None:
    """ConfigError in one line unless the docker CLI is installed and the daemon answers."""
    if shutil.which("docker") is None:
        raise ConfigError("Docker nodes need the docker CLI (apt-get install docker.io)")
    try:
        done = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                              capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        raise ConfigError("the Docker daemon does not answer (is dockerd running?)") from None
    if done.returncode != 0:
        raise ConfigError("the Docker daemon does not answer (start dockerd; /var/run/docker.sock)")


def image_exists(tag: str) -> bool:
    done = subprocess.run(["docker", "image", "inspect", tag], capture_output=True)
    return done.returncode == 0


def built_images() -> list[BuiltImage]:
    """Every node image on this machine, newest first; ``current`` marks the one of today's recipe."""
    require_docker()
    out = _docker(["image", "ls", IMAGE_REPO, "--format", "{{json .}}"])
    images = []
    for line in out.splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        tag = f"{row['Repository']}:{row['Tag']}"
        size = _docker(["image", "inspect", tag, "--format", "{{.Size}}"]).strip()
        images.append(BuiltImage(tag, int(size or 0), row.get("CreatedAt", ""), tag == NODE_RECIPE.tag))
    return images


def build_image(recipe: Recipe = NODE_RECIPE, *, force: bool = False, log=print) -> tuple[str, bool]:
    """Build the node image of ``recipe`` unless it exists (or ``force``). Returns (tag, built)."""
    require_docker()
    require_container_start()  # before minutes of building an image no container could run
    if not force and image_exists(recipe.tag):
        return recipe.tag, False
    if os.geteuid() != 0:
        raise ConfigError("building the node image needs root (debootstrap, chroot)")
    for tool in ("debootstrap", "chroot", "tar", "mount"):
        if shutil.which(tool) is None:
            raise ConfigError(f"building the node image needs `{tool}` (apt-get install debootstrap)")
    work = Path(tempfile.mkdtemp(prefix="splitbrain-image-", dir="/var/tmp"))
    root = work / "root"
    try:
        _bootstrap(recipe, root, debian_mirror(), log)
        _import(root, recipe, log)
    finally:
        _remove_tree(work, root)
    return recipe.tag, True


def _run_step(what: str, cmd: list[str], log, env: dict[str, str] | None = None) -> None:
    started = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
                          env={**os.environ, **(env or {})})
    if done.returncode != 0:
        lines = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise ConfigError(f"image build: {what} failed: {lines[-1] if lines else f'exit code {done.returncode}'}")
    log(f"  {what}: {time.monotonic() - started:.1f} s")


def _bootstrap(recipe: Recipe, root: Path, mirror: str, log) -> None:
    _run_step("debootstrap", ["debootstrap", f"--variant={recipe.variant}", recipe.suite, str(root), mirror], log)
    # No package's maintainer script may start a daemon in the chroot.
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    mounts = [root / "proc", root / "dev"]
    try:
        _run_step("mount proc", ["mount", "-t", "proc", "proc", str(mounts[0])], log)
        _run_step("mount dev", ["mount", "--bind", "/dev", str(mounts[1])], log)
        apt_env = {"DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
        _run_step("apt-get install", ["chroot", str(root), "apt-get", "install", "-y", "-qq",
                                      "--no-install-recommends", *recipe.packages], log, env=apt_env)
        _run_step("apt-get clean", ["chroot", str(root), "apt-get", "clean"], log, env=apt_env)
    finally:
        for mount in reversed(mounts):
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)
    shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
    (root / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
    for key in (root / "etc/ssh").glob("ssh_host_*") if (root / "etc/ssh").is_dir() else ():
        key.unlink()


def _import(root: Path, recipe: Recipe, log) -> None:
    started = time.monotonic()
    tar = subprocess.Popen(["tar", "-C", str(root), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
    try:
        done = subprocess.run(
            ["docker", "import", "-c", 'CMD ["/bin/bash"]', "-c", f"LABEL {RECIPE_LABEL}={recipe.digest()}",
             "-", recipe.tag],
            stdin=tar.stdout, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    finally:
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait()
    if done.returncode != 0 or tar.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise ConfigError(f"image build: docker import failed: {lines[-1] if lines else 'tar failed'}")
    log(f"  docker import: {time.monotonic() - started:.1f} s")


def _mounted_under(path: Path, mounts_file: str = "/proc/self/mounts") -> list[str]:
    prefix = str(path.resolve()) + "/"
    with open(mounts_file) as f:
        return [fields[1] for line in f if (fields := line.split()) and (fields[1] + "/").startswith(prefix)]


def _remove_tree(work: Path, root: Path) -> None:
    """Remove the build directory, but never while something is still mounted under it (that would remove
    the host's /dev through the bind mount)."""
    if _mounted_under(work):
        raise ConfigError(f"image build: {work} still has mounts ({', '.join(_mounted_under(work))}); "
                          "unmount them and remove it by hand")
    shutil.rmtree(work, ignore_errors=True)


# -- can this Docker start a container at all? -------------------------------------------------------------
# Some daemons accept images and then fail every start (read-only cgroups inside a container, for one),
# after a long wait and an OCI error. A start of a tiny image (one static x86_64 program that exits 0)
# says so in a few seconds, before anything of a run exists.
PROBE_TAG = "splitbrain-probe:exit0"
PROBE_TIMEOUT_S = 20.0


def exit0_elf() -> bytes:
    """A static x86_64 Linux executable of 129 bytes whose only instruction is exit(0)."""
    code = bytes.fromhex("b83c000000" "31ff" "0f05")  # mov eax, 60 (exit); xor edi, edi; syscall
    base, size = 0x400000, 64 + 56 + len(code)
    header = struct.pack("<4sBBBBB7xHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0, 2, 0x3E, 1, base + 120, 64, 0,
                         0, 64, 56, 1, 0, 0, 0)
    program = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)
    return header + program + code


def _probe_image() -> None:
    if image_exists(PROBE_TAG):
        return
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("exit0")
        program = exit0_elf()
        info.size, info.mode = len(program), 0o755
        tar.addfile(info, io.BytesIO(program))
    _docker(["import", "-", PROBE_TAG], input_bytes=buffer.getvalue())


def require_container_start() -> None:
    """HostError in one line unless the daemon can start a container (a few seconds at most)."""
    require_docker()
    if platform.machine() != "x86_64":
        return  # the probe program is x86_64; elsewhere the first real start tells
    _probe_image()
    try:
        done = subprocess.run(["docker", "run", "--rm", "--network", "none", PROBE_TAG, "/exit0"],
                              capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise HostError(f"Docker cannot start containers here: a start took more than {PROBE_TIMEOUT_S:.0f} s") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit code {done.returncode}"
        raise HostError(f"Docker cannot start containers here: {reason[:300]}")
