"""Tiny stand-ins for Debian's opencv-doc and darknet: real .deb files built with dpkg-deb, holding
small images at the real paths, and a fake apt-get that hands them out (or fails as told)."""
import hashlib
import io
import os
import shutil
import subprocess
from pathlib import Path

from PIL import Image

from lecturekit import debian, images, paintings

OPENCV = "usr/share/doc/opencv-doc/examples/data/"
DARKNET = "usr/share/darknet/data/"


def jpeg(color, size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="JPEG")
    return buf.getvalue()


def build_deb(folder: Path, package: str, files: dict[str, bytes]) -> Path:
    """``package``_1.0_all.deb in ``folder`` with ``files`` (path inside -> bytes)."""
    root = folder / f"{package}-tree"
    for member, data in files.items():
        (root / member).parent.mkdir(parents=True, exist_ok=True)
        (root / member).write_bytes(data)
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(f"Package: {package}\nVersion: 1.0\nArchitecture: all\n"
                                             "Maintainer: Tests <tests@example.org>\nDescription: stand-in\n")
    deb = folder / f"{package}_1.0_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)], check=True,
                   capture_output=True)
    shutil.rmtree(root)
    return deb


FAKE_APT = """#!/bin/sh
# A stand-in for apt-get: logs its arguments; 'download PKG' copies $FAKE_DEBS/PKG_*.deb here.
echo "$*" >> "$FAKE_APT_LOG"
[ -n "$FAKE_APT_SLEEP" ] && sleep "$FAKE_APT_SLEEP"
for last; do :; done
case "$*" in
  *update*)
    [ "$FAKE_APT_MODE" = unreachable ] && { echo "E: Could not resolve 'deb.debian.org'" >&2; exit 100; }
    touch "$FAKE_APT_LOG.updated"; exit 0 ;;
  *download*)
    [ "$FAKE_APT_MODE" = unreachable ] && { echo "E: Failed to fetch http://deb.debian.org/x.deb  Could not resolve 'deb.debian.org'" >&2; exit 100; }
    if [ "$FAKE_APT_MODE" = nolists ] && [ ! -e "$FAKE_APT_LOG.updated" ]; then
      echo "E: Unable to locate package $last" >&2; exit 100; fi
    cp "$FAKE_DEBS/${last}"_*.deb . ;;
esac
"""


class FakeApt:
    """apt-get on PATH (beside the real dpkg-deb) serving the .debs in ``debs``."""

    def __init__(self, tmp_path: Path, monkeypatch):
        self.debs = tmp_path / "debs"
        self.debs.mkdir()
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self.log = tmp_path / "apt.log"
        apt = self.bin / "apt-get"
        apt.write_text(FAKE_APT)
        apt.chmod(0o755)
        os.symlink(shutil.which("dpkg-deb"), self.bin / "dpkg-deb")
        monkeypatch.setenv("PATH", f"{self.bin}:{os.environ['PATH']}")
        monkeypatch.setattr(debian, "APT_GET", "apt-get")        # looked up on PATH: this one
        monkeypatch.setenv("FAKE_DEBS", str(self.debs))
        monkeypatch.setenv("FAKE_APT_LOG", str(self.log))
        self.monkeypatch = monkeypatch

    def mode(self, mode: str) -> None:
        self.monkeypatch.setenv("FAKE_APT_MODE", mode)

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


def stand_ins(monkeypatch, folder: Path, altered: set[str] = frozenset()) -> dict[str, bytes]:
    """Build opencv-doc and darknet stand-ins in ``folder`` and point The Starry Night, The Scream
    and two photos (squirrel from opencv-doc, eagle from darknet) at them, pinned to their
    bytes; a name in ``altered`` gets other bytes in its .deb than the pinned ones."""
    content = {"starry_night": jpeg((20, 40, 160)), "the_scream": jpeg((230, 120, 20)),
               "squirrel": jpeg((150, 90, 40)), "eagle": jpeg((90, 80, 70))}
    packed = {n: (jpeg((0, 255, 0)) if n in altered else data) for n, data in content.items()}
    pin = {n: hashlib.sha256(data).hexdigest() for n, data in content.items()}
    build_deb(folder, "opencv-doc", {OPENCV + "starry_night.jpg": packed["starry_night"],
                                     OPENCV + "squirrel_cls.jpg": packed["squirrel"],
                                     OPENCV + "other.jpg": jpeg((1, 2, 3))})
    build_deb(folder, "darknet", {DARKNET + "scream.jpg": packed["the_scream"], DARKNET + "eagle.jpg": packed["eagle"]})
    for name, member, package in (("starry_night", OPENCV + "starry_night.jpg", "opencv-doc"),
                                  ("the_scream", DARKNET + "scream.jpg", "darknet")):
        old = paintings.PAINTINGS[name]
        monkeypatch.setitem(paintings.PAINTINGS, name, paintings.Painting(
            old.title, old.artist, old.file, old.fallback, debian=debian.DebianFile(package, member, pin[name])))
    opencv = ("opencv-doc", OPENCV, "Apache-2.0 AND BSD-3-Clause")
    darknet = ("darknet", DARKNET, "GPL-3.0+ or MIT or WTFPL")
    monkeypatch.setattr(images, "_DEBIAN", {
        "squirrel": (opencv, "squirrel_cls.jpg", pin["squirrel"], "a squirrel", "fox squirrel", ""),
        "eagle": (darknet, "eagle.jpg", pin["eagle"], "an eagle", "bald eagle", "")})
    return content
