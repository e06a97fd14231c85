"""The sample-photo registry and the Debian copies from the installed wheel (not the checkout)."""
import json

from test_install import _run, fresh  # noqa: F401  (the fixture: a fresh environment and the built wheel)

from lecturekit import debian

REAL_CACHE = debian.cache_dir()       # where `python -m lecturekit download photos` put the real files, if it ran


def test_the_photo_registry_works_from_the_installed_wheel(fresh, tmp_path):  # noqa: F811
    python, wheel, env, base = fresh
    _run([python, "-m", "pip", "install", "-q", wheel], cwd=base, env=env)          # no-op if already installed
    script = """
import json, lecturekit as lk
lk.images.samples()                     # says which are not at hand
every = lk.images.samples(include_missing=True)
here = [n for n, s in every.items() if s.debian and s.available]
shapes = {n: list(lk.images.load(n).shape) for n in here}
print(json.dumps({"module": lk.__file__, "debian": [n for n, s in every.items() if s.debian], "here": here,
                  "shapes": shapes, "licences": all(s.license for s in every.values())}))
"""
    for cache in (tmp_path / "empty", REAL_CACHE):
        out = _run([python, "-c", script], cwd=tmp_path, env={**env, "LECTUREKIT_CACHE": str(cache)})
        result = json.loads(out.strip().splitlines()[-1])
        assert result["module"].startswith(str(base / "env")) and result["licences"]
        assert {"squirrel", "eagle", "baboon"} <= set(result["debian"])
        if cache != REAL_CACHE:
            assert result["here"] == [] and "python -m lecturekit download photos" in out
        assert all(shape[:2] == [1, 3] for shape in result["shapes"].values())
    if not result["here"]:
        return                                   # nothing taken out on this machine: the registry alone was checked
    assert result["shapes"]["eagle"] == [1, 3, 512, 773]
    painting = _run([python, "-c", "import lecturekit as lk; lk.paintings.load('starry_night')"], cwd=tmp_path,
                    env={**env, "LECTUREKIT_CACHE": str(REAL_CACHE)})
    assert "the copy in Debian's opencv-doc package), 708x556" in painting      # 752 x 600 less its frame
