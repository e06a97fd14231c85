"""Real paintings and photos out of Debian's packages, taken out once and read offline.

    copy = debian.DebianFile("opencv-doc", "usr/share/doc/opencv-doc/examples/data/starry_night.jpg", "accda7...")
    copy.path                                   # where it lands: cache_dir()/debian/opencv-doc/starry_night.jpg
    debian.extract("opencv-doc", [copy])        # what `python -m lecturekit download photos` does

``extract`` copies the files from the installed package when it is installed; otherwise it runs
``apt-get download`` in a temporary folder (no root needed; where the package lists are missing
or stale, ``apt-get update`` first: the system's lists as root, private ones in that folder
otherwise), reads the files out of the .deb with ``dpkg-deb --fsys-tarfile`` (nothing is
installed), checks each against its pinned SHA-256 and keeps it. The .deb is deleted with the
folder. This is an install step (``tasks.sh``, Binder's ``postBuild``); at run time the
notebooks only read the kept files, so ``LECTUREKIT_OFFLINE`` still means no network.

The files live in ``cache_dir()``: ``$LECTUREKIT_CACHE``, else ``$XDG_CACHE_HOME/lecturekit``,
else ``~/.cache/lecturekit``. It is not the torch cache on purpose: the tests run the notebooks
with a fresh, empty ``TORCH_HOME`` and they still find the paintings and photos here.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

APT_GET = "apt-get"           # looked up on PATH when needed
DPKG_DEB = "dpkg-deb"
INSTALLED_ROOT = Path("/")    # where an installed package's files are
DOWNLOAD_TIMEOUT_S = 300      # apt-get download (opencv-doc is 96 MB) and apt-get update, each
MAX_MEMBER_BYTES = 20_000_000


class DebianUnavailable(RuntimeError):
    """The files could not be had from Debian; the message is one line saying why."""


def cache_dir() -> Path:
    """``$LECTUREKIT_CACHE``, else ``$XDG_CACHE_HOME/lecturekit``, else ``~/.cache/lecturekit``."""
    if os.environ.get("LECTUREKIT_CACHE"):
        return Path(os.environ["LECTUREKIT_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "lecturekit"


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass(frozen=True)
class DebianFile:
    package: str                  # Debian package that ships it
    member: str                   # its path inside the package, without the leading "./"
    sha256: str                   # of the file in the package version named where it is pinned

    @property
    def path(self) -> Path:
        """Where the kept copy is (whether or not it is there yet)."""
        return cache_dir() / "debian" / self.package / Path(self.member).name

    def status(self) -> str:
        """'ok', 'missing' or 'damaged' (there, but not the pinned bytes)."""
        if not self.path.is_file():
            return "missing"
        return "ok" if sha256(self.path) == self.sha256 else "damaged"

    def checked(self, what: str, refetch: str) -> Path:
        """The kept copy's path once it is there with the pinned bytes. Raises ``Missing`` or
        ``Damaged``, naming ``what`` it is and the ``refetch`` command that takes it out again."""
        status = self.status()
        if status == "missing":
            raise Missing(f"{what} comes from Debian's {self.package} package and is not at {self.path} "
                          f"(on Debian or Ubuntu: {refetch})")
        if status == "damaged":
            raise Damaged(f"{self.path} does not match the SHA-256 pinned for {what} (damaged or altered); "
                          f"fetch it again: {refetch}")
        return self.path


class Unusable(Exception):
    """A kept copy that cannot be used; the message says why and how to get it again."""


class Missing(Unusable, FileNotFoundError):
    """Not taken out of its package (yet)."""


class Damaged(Unusable):
    """There, but not the pinned bytes."""


def _keep(data: bytes, file: DebianFile, where: str) -> str | None:
    """Write ``data`` as ``file`` when it has the pinned SHA-256; else the reason it was not kept."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != file.sha256:
        return (f"{where} has a {Path(file.member).name} whose SHA-256 ({digest[:12]}...) is not the pinned "
                f"one ({file.sha256[:12]}...); not kept")
    file.path.parent.mkdir(parents=True, exist_ok=True)
    partial = file.path.with_name(file.path.name + ".part")
    partial.write_bytes(data)
    os.replace(partial, file.path)              # never a half-written file under the real name
    return None


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``cmd`` with its output captured; after ``DOWNLOAD_TIMEOUT_S`` it and its children are killed."""
    with subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True, env={**os.environ, "LC_ALL": "C"}) as proc:
        try:
            out, err = proc.communicate(timeout=DOWNLOAD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)          # apt-get's download methods too
            proc.communicate()
            return subprocess.CompletedProcess(cmd, 124, "", f"gave up after {DOWNLOAD_TIMEOUT_S:g} s")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _last_line(out: subprocess.CompletedProcess) -> str:
    lines = [line.strip() for line in (out.stderr + out.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("E:")] or lines
    return errors[-1] if errors else f"exit status {out.returncode}"


def _download(package: str, folder: Path) -> Path:
    """``apt-get download package`` into ``folder``; the .deb's path."""
    apt = shutil.which(APT_GET)
    if apt is None or shutil.which(DPKG_DEB) is None:
        raise DebianUnavailable(f"no {'apt-get' if apt is None else 'dpkg-deb'} here (not Debian or Ubuntu)")
    out = _run([apt, "-qq", "download", package], folder)
    if out.returncode != 0 and out.returncode != 124:   # missing or stale package lists: update, then again
        if os.geteuid() == 0:
            options = []
        else:                                           # private lists, readable by anyone: no root needed
            (folder / "lists" / "partial").mkdir(parents=True)
            (folder / "cache" / "archives" / "partial").mkdir(parents=True)
            options = ["-o", f"Dir::State::Lists={folder / 'lists'}", "-o", f"Dir::Cache={folder / 'cache'}",
                       "-o", "Debug::NoLocking=1"]
        update = _run([apt, "-qq", *options, "update"], folder)
        out = _run([apt, "-qq", *options, "download", package], folder) if update.returncode == 0 else update
    if out.returncode != 0:
        raise DebianUnavailable(f"apt-get could not fetch {package} from the Debian mirror ({_last_line(out)})")
    debs = sorted(folder.glob(f"{package}_*.deb"))
    if not debs:
        raise DebianUnavailable(f"apt-get download {package} left no .deb")
    return debs[0]


def _read_members(deb: Path, members: set[str]) -> dict[str, bytes]:
    """The bytes of ``members`` of the .deb's file tree, streamed out of ``dpkg-deb --fsys-tarfile``."""
    found = {}
    with subprocess.Popen([shutil.which(DPKG_DEB) or DPKG_DEB, "--fsys-tarfile", str(deb)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                for entry in tar:
                    name = entry.name.removeprefix("./")
                    if name in members and entry.isfile() and entry.size <= MAX_MEMBER_BYTES:
                        found[name] = tar.extractfile(entry).read()
                        if len(found) == len(members):
                            break
        except tarfile.TarError as err:
            raise DebianUnavailable(f"{deb.name} could not be read: {err}") from None
        finally:
            proc.kill()                     # stop decompressing the rest once everything is found
    return found


def extract(package: str, files: list[DebianFile]) -> dict[DebianFile, str]:
    """Keep every one of ``files`` (all from ``package``) that is not kept yet, checked against its
    pinned SHA-256. Returns, for each file not kept now, why (an empty dict: all there).
    Raises ``DebianUnavailable`` (a one-line reason) when the package cannot be had at all."""
    todo = [f for f in files if f.status() != "ok"]
    problems: dict[DebianFile, str] = {}
    for file in list(todo):                     # the package is installed: copy its files
        installed = INSTALLED_ROOT / file.member
        if installed.is_file() and _keep(installed.read_bytes(), file, f"the installed {package}") is None:
            todo.remove(file)
    if not todo:
        return problems
    with tempfile.TemporaryDirectory(prefix=f"lecturekit-{package}-") as tmp:       # the .deb goes with it
        deb = _download(package, Path(tmp))
        data = _read_members(deb, {f.member for f in todo})
        for file in todo:
            if file.member not in data:
                problems[file] = f"{deb.name} has no {file.member}"
            elif (why := _keep(data[file.member], file, deb.name)) is not None:
                problems[file] = why
    return problems
