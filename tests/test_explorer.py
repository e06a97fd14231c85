"""The explorer's state logic: which panels a change redraws, the cache, stale results that must never
overwrite newer ones, interrupted work, uploads good and bad, and the model left as it was. On the
teaching model (28 px), so each figure takes a fraction of a second."""
import io
import threading

import numpy as np
import pytest
import torch
from PIL import Image

import lecturekit as lk
from lecturekit.explorer import PANELS, Choice, Explorer, Superseded, key


@pytest.fixture
def app():
    a = Explorer(model="teaching", panels=("saliency",))
    yield a
    a.close()


def _png(mode="RGB", size=(60, 40), fmt="PNG") -> bytes:
    rng = np.random.default_rng(0)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    arr = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr[..., 0] if mode == "L" else arr).save(buf, fmt)          # the mode follows the shape
    return buf.getvalue()


# ---------------------------------------------------------------- keys: what a change touches

def test_a_new_class_changes_the_class_maps_only():
    a = Choice(model="m", image="i", target=1, layer="l", channel=0)
    b = Choice(model="m", image="i", target=2, layer="l", channel=0)
    changed = {p for p in PANELS if key(p, a) != key(p, b)}
    assert changed == set(PANELS) - {"activations", "unit"}


def test_a_new_layer_changes_the_layer_panels_only():
    a = Choice(model="m", image="i", target=1, layer="l1", channel=0)
    b = Choice(model="m", image="i", target=1, layer="l2", channel=0)
    changed = {p for p in PANELS if key(p, a) != key(p, b)}
    assert changed == {"grad_cam", "guided_grad_cam", "activations", "unit", "sanity"}


def test_a_new_channel_or_image_or_k():
    base = Choice(model="m", image="i", target=1, layer="l", channel=0, randomise=1)
    assert {p for p in PANELS if key(p, base) != key(p, Choice(**{**base.__dict__, "channel": 3}))} == \
        {"activations", "unit"}
    assert {p for p in PANELS if key(p, base) != key(p, Choice(**{**base.__dict__, "randomise": 2}))} == {"sanity"}
    assert {p for p in PANELS if key(p, base) != key(p, Choice(**{**base.__dict__, "image": "j"}))} == \
        set(PANELS) - {"unit"}                         # what a unit wants does not depend on the image


# ---------------------------------------------------------------- the app

def test_every_panel_draws_and_leaves_the_model_as_it_was(tmp_path):
    app = Explorer(model="teaching", panels=tuple(PANELS))
    try:
        model = app.bundle.model
        flags = [p.requires_grad for p in model.parameters()]
        app.wait()
        assert not app.errors and set(app._shown) == set(PANELS)
        for lane in ("quick", "slow"):
            m = app._model_copy(lane, "teaching")
            assert lk.hooks.count(m) == 0 and not m.training
        assert [p.requires_grad for p in model.parameters()] == flags
        app.save("occlusion", tmp_path / "occlusion.png")
        assert Image.open(tmp_path / "occlusion.png").size[0] > 300
        note = app._boxes["grad_cam"]["note"].value
        assert "download=" in note and "data:image/png;base64," in note       # the save-PNG link
        assert set(app.w["layer"].options) >= set(app.bundle.stages)
    finally:
        app.close()


def test_a_class_change_redraws_only_what_depends_on_the_class_and_the_cache_brings_figures_back():
    app = Explorer(model="teaching", panels=("saliency", "grad_cam", "activations"))
    try:
        app.wait()
        first = app.resolved()
        drawn = len(app.timings)
        app.choose(target=(first.target + 1) % 10).wait()
        assert sorted(p for p, _ in app.timings[drawn:]) == ["grad_cam", "saliency"]
        drawn = len(app.timings)
        app.choose(layer="relu2").wait()
        assert sorted(p for p, _ in app.timings[drawn:]) == ["activations", "grad_cam"]
        drawn = len(app.timings)
        app.choose(target=None, layer="relu4").wait()                 # all seen before: from the cache
        assert len(app.timings) == drawn and app.resolved() == first
    finally:
        app.close()


def test_the_controls_follow_the_choice_and_drive_it(app):
    app.wait()
    assert app.w["top5"].value == app.resolved().target
    app.w["top5"].value = app.w["top5"].options[2][1]              # a click on the third class
    app.wait()
    assert app.resolved().target == app.w["top5"].options[2][1]
    app.toggles["deeplift"].value = True                           # a panel switched on
    assert app.choice.panels == ("saliency", "deeplift")
    app.w["search"].value = f"{app.bundle.classes[7]} (7)"          # a class typed in the box
    app.wait()
    assert app.resolved().target == 7 and "deeplift" in app._shown
    assert app._boxes["deeplift"]["box"].layout.display == "" and app._boxes["occlusion"]["box"].layout.display == "none"


def test_a_stale_result_never_replaces_a_newer_one(app):
    app.wait()
    old = app.wanted("saliency")
    app.choose(target=(app.resolved().target + 1) % 10).wait()
    new = app.wanted("saliency")
    app._cache[old] = b"old figure"
    app._show("saliency", old)                                      # a late result for the old class
    assert app._shown["saliency"] == new and app.png("saliency") != b"old figure"


def test_work_no_longer_wanted_stops_at_its_next_forward_pass(app):
    app.wait()
    r = lk.explorer.replace(app.resolved(), panels=("saliency", "occlusion"))   # occlusion, then switched off
    passes = []
    model = app._model_copy("slow", "teaching")
    counter = model.register_forward_pre_hook(lambda m, i: passes.append(1))
    try:
        app._draw("slow", "occlusion", key("occlusion", r), r)     # as a lane would have started it
    finally:
        counter.remove()
    assert len(passes) <= 1                                       # stopped at its first pass
    assert key("occlusion", r) not in app._cache and "occlusion" not in app._shown
    assert lk.hooks.count(model) == 0


def test_the_job_hook_raises_once_unwanted():
    wanted = threading.Event()
    wanted.set()
    job = lk.explorer._Job("saliency", ("k",), None, None, torch.nn.Identity(), None, None, 0, wanted.is_set,
                           lambda f: None)
    job.hook(None, ())
    wanted.clear()
    with pytest.raises(Superseded):
        job.hook(None, ())
    job.handle.remove()


@pytest.mark.parametrize("mode, fmt", [("RGBA", "PNG"), ("L", "JPEG"), ("RGB", "WEBP")])
def test_uploads_are_converted_and_shown(app, mode, fmt):
    assert app.upload(f"mine.{fmt.lower()}", _png(mode, fmt=fmt))
    assert app.choice.image == f"upload: mine.{fmt.lower()}" and app.choice.image in app.w["image"].options
    app.wait()
    assert not app.errors and "taken" in app.message
    assert app._images[app.choice.image].shape[1] == 3


def test_a_file_that_is_not_an_image_is_a_message_and_changes_nothing(app):
    app.wait()
    before = app.choice
    assert not app.upload("notes.png", b"these are my notes, not a picture")
    assert "'notes.png' was not taken" in app.message and "JPEG, PNG or WebP" in app.message
    assert "color:#b00" in app.w["status"].value
    assert app.choice == before and "upload: notes.png" not in app.w["image"].options


def test_the_upload_widget_value_of_ipywidgets_8_and_7(app):
    app._on_upload({"new": ({"name": "a.png", "content": memoryview(_png())},)})            # ipywidgets 8
    app._on_upload({"new": {"b.png": {"metadata": {}, "content": _png()}}})                 # ipywidgets 7
    assert {"upload: a.png", "upload: b.png"} <= set(app.w["image"].options)


def test_bad_choices_say_what_is_allowed(app):
    with pytest.raises(ValueError, match="the panels are: saliency"):
        app.choose(panels=("heatmap",))
    with pytest.raises(ValueError, match="choose\\(\\) takes model"):
        app.choose(colour="red")
    with pytest.raises(ValueError, match="the sample photos are"):
        app.choose(image="nope.jpg")
    with pytest.raises(ValueError, match="offers the models"):
        app.choose(model="resnet9000")
    app.wait_for_model()
    with pytest.raises(ValueError, match="its layers: conv1"):
        app.choose(layer="conv9")
    with pytest.raises(ValueError, match="classes like it: Sandal"):
        app.choose(target="sand")
    app.choose(target="Sandal").wait()
    assert app.bundle.classes[app.resolved().target] == "Sandal"


def test_the_default_model_is_the_real_imagenet_one(monkeypatch):
    monkeypatch.delenv("LECTUREKIT_MODEL", raising=False)
    if not lk.zoo.available("efficientnet_lite0"):
        pytest.skip("EfficientNet-Lite0's weights package is not installed here")
    app = Explorer(panels=("saliency",))
    try:
        app.wait()
        assert app.choice.model == "efficientnet_lite0" and len(app.bundle.classes) == 1000
        assert app.top5()[0][0] == "tabby cat" or "cat" in " ".join(n for n, _ in app.top5())
        assert not app.errors
    finally:
        app.close()


def test_the_channel_opens_at_the_most_active_one_of_each_layer(app):
    app.choose(panels=("activations",)).wait()
    x = app.bundle.preprocess(lk.images.square(lk.images.load("chelsea"), app.bundle.input_size))
    for layer in ("relu4", "relu2"):
        app.choose(layer=layer).wait()
        act = lk.hooks.activations(app.bundle.model, x, layer)[layer][0]
        assert app.resolved().channel == int(act.flatten(1).mean(1).argmax()) == app.w["channel"].value
    app.choose(channel=5).wait()
    assert app.resolved().channel == 5 and app._shown["activations"][-1] == 5


def test_a_model_that_fails_to_load_is_said_and_another_model_still_works(app, monkeypatch):
    app.wait()
    real = lk.zoo.load

    def broken(name, *a, **kw):
        if name == "efficientnet_lite0":
            raise OSError("damaged weights file")
        return real(name, *a, **kw)
    monkeypatch.setattr(lk.zoo, "load", broken)
    app.choose(model="efficientnet_lite0")
    with pytest.raises(RuntimeError, match="damaged weights file"):
        app.wait(60)
    assert "damaged weights file" in app.message
    app.choose(model="teaching").wait(60)                  # back to a model that loads: waits work again
    assert not app.errors
