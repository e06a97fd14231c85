"""The slides on a lecture-hall screen: decks of notebooks 06 and 15 built in quick mode, opened from
disk in headless Chromium at 1280 x 720 with every request to the network refused; every slide,
across and down, is shown through reveal.js's API and must fit the 16:9 slide, show its figures at a
readable scale, and hold no TeX left unrendered (a ``$`` outside code) and no MathJax error.
"""
from __future__ import annotations

import os
import shutil

import pytest

from lecturekit import npm, render, slides

pytestmark = pytest.mark.browser
NOTEBOOKS = ["06_saliency", "15_style_transfer"]
CHROMIUM = os.environ.get("LECTUREKIT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
#: The smallest scale a figure may be shown at (1 = its pixels as drawn).
READABLE = 0.5

#: Shows every slide in turn and measures it: [{h, v, overflow, raw, errors, math, figures}].
WALK = """async () => {
  await MathJax.startup.promise;
  await Promise.all([...document.images].map(img => img.decode()));
  Reveal.configure({transition: 'none', backgroundTransition: 'none'});
  const frame = () => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)));
  const results = [];
  for (const slide of Reveal.getSlides()) {
    const h = Reveal.getIndices(slide).h, v = Reveal.getIndices(slide).v || 0;
    Reveal.slide(h, v);
    await frame();
    const box = slide.getBoundingClientRect(), scale = Reveal.getScale();
    const outside = r => r.left < box.left - 1 || r.right > box.right + 1 ||
                         r.top < box.top - 1 || r.bottom > box.bottom + 1;
    const overflow = [];
    if (box.left < -1 || box.top < -1 || box.right > innerWidth + 1 || box.bottom > innerHeight + 1)
      overflow.push(`the slide itself: ${JSON.stringify(box)}`);
    if (slide.scrollHeight > slide.clientHeight + 1) overflow.push(`content ${slide.scrollHeight}px tall`);
    for (const el of slide.querySelectorAll('*')) {
      const r = el.getBoundingClientRect();
      if (r.width && r.height && outside(r))
        overflow.push(`<${el.tagName.toLowerCase()}> ${(el.textContent || '').slice(0, 40)} at ` +
                      `${[r.left, r.right, r.top, r.bottom].map(Math.round)} outside ` +
                      `${[box.left, box.right, box.top, box.bottom].map(Math.round)} (left, right, top, bottom)`);
    }
    const text = slide.cloneNode(true);
    text.querySelectorAll('code, pre, mjx-container').forEach(el => el.remove());
    const figures = [...slide.querySelectorAll('img')].map(img => {
      const r = img.getBoundingClientRect();
      return {natural: [img.naturalWidth, img.naturalHeight],
              scale: Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight) / scale};
    });
    results.push({h, v, overflow, figures, math: slide.querySelectorAll('mjx-container').length,
                  raw: /\\$|\\\\\\(|\\\\\\[/.test(text.textContent) ? text.textContent.trim().slice(0, 200) : '',
                  errors: [...slide.querySelectorAll('mjx-merror, [data-mjx-error]')].map(e => e.textContent)});
  }
  return results;
}"""


@pytest.fixture(scope="module")
def decks(tmp_path_factory):
    """The two decks, built once (module scope: before the per-test settings of conftest, so with this
    machine's npm cache, where ``bash tasks.sh`` put reveal.js and MathJax)."""
    if CHROMIUM is None:
        pytest.skip("no Chromium found (Debian: apt-get install chromium; or set LECTUREKIT_CHROMIUM)")
    pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    try:
        slides._assets()
    except npm.Unavailable as err:
        if shutil.which("npm") is None:
            pytest.skip(str(err))
        raise
    out = tmp_path_factory.mktemp("slides")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LECTUREKIT_OFFLINE", "1")
        env.setenv("LECTUREKIT_DEVICE", "cpu")
        env.setenv("TORCH_HOME", str(out / "torch_home"))
        results = slides.build(render.find(NOTEBOOKS), out, quick=True, progress=False)
    assert {k: v["status"] for k, v in results.items()} == dict.fromkeys(NOTEBOOKS, "ok")
    return out


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_slide_fits_the_screen_and_its_math_is_rendered(decks, browser, name):
    path = decks / f"{name}.slides.html"
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    requests, errors = [], []
    page.on("request", lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:", "blob:")) else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route("http*://**", lambda route: route.abort())
    try:
        page.goto(path.as_uri())
        page.wait_for_function("window.Reveal && Reveal.isReady() && window.MathJax && MathJax.startup", timeout=30_000)
        shown = page.evaluate(WALK)
        sections = page.locator("section.lk").count()
    finally:
        page.close()
    assert not errors, f"errors in the page: {errors}"
    assert not requests, f"the deck asked the network for {requests}"
    assert len(shown) == sections and sections >= 5
    assert any(s["v"] > 0 for s in shown) or name != "06_saliency", "no slide below another: no vertical walk"
    where = {(s["h"], s["v"]): s for s in shown}
    assert not {k: s["overflow"][:3] for k, s in where.items() if s["overflow"]}, "slides overflow 1280 x 720"
    assert not {k: s["raw"] for k, s in where.items() if s["raw"]}, "TeX left raw"
    assert not {k: s["errors"] for k, s in where.items() if s["errors"]}, "MathJax errors"
    assert sum(s["math"] for s in shown) >= 3, "the formulas of the notebook were not typeset"
    small = {k: f for k, s in where.items() for f in s["figures"] if f["scale"] < READABLE}
    assert not small, f"figures shrunk below {READABLE:g}x: {small}"
    assert all(f["natural"][0] > 0 for s in shown for f in s["figures"]), "a figure did not load"
    assert sum(len(s["figures"]) for s in shown) >= 4
