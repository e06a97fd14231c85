"""Wrong students: the solution notebook of each assignment with the mistakes students make, and the
score each must get. tests/test_assignments.py grades them; a weakened test changes a score.

A student is a list of edits of the solution notebook that otter writes (``autograder/<name>.ipynb``):
``body(function, code)`` replaces what is between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` in that
function, ``edit(old, new)`` replaces a piece of text found exactly once. ``notebook`` applies them;
``score`` grades a notebook the way otter does (its own test files and scoring) without running the
notebook's demonstrations: the imports, functions and classes of its code cells are run in a fresh
namespace, then each ``tests/qN.py`` of the autograder.
"""
from __future__ import annotations

import ast
import sys
import textwrap
from pathlib import Path

import nbformat

UNFINISHED = "..."          # what otter leaves in the student version


def body(function: str, code: str):
    return ("body", function, code)


def edit(old: str, new: str):
    return ("edit", old, new)


def unfinished(*functions: str):
    return [body(f, UNFINISHED) for f in functions]


LIBRARY_NV = [
    body("saliency", "return lk.attribution.saliency(model, x, target)"),
    body("make_fooling_image", """\
result = lk.ascent.ascend(model, lk.ascent.class_score(target), lk.ascent.Pixels(img), preprocess, steps=max_steps,
                          lr=lr, post=[lk.ascent.clamp()], until=lambda logits: logits.argmax(1).item() == target,
                          progress=False)
return result.image"""),
    body("l2_penalty", "return lk.ascent.l2(weight)(None, x)"),
    body("tv_penalty", "return lk.ascent.tv(weight)(img, None)"),
    body("class_objective", """\
x = preprocess(img)
return model(x)[:, target] - lk.ascent.l2(l2_weight)(img, x) - lk.ascent.tv(tv_weight)(img, x)"""),
    body("visualize_class", """\
start = (0.5 + 0.1 * torch.randn(1, 3, size, size, generator=generator)).clamp(0, 1)
result = lk.ascent.ascend(model, lk.ascent.class_score(target), lk.ascent.Pixels(start), preprocess, steps=steps,
                          lr=lr, transforms=[lk.ascent.jitter(jitter)], post=[lk.ascent.clamp()],
                          penalties=[lk.ascent.l2(l2_weight), lk.ascent.tv(tv_weight)], progress=False)
return result.image, [float(v) for v in result.history]"""),
]

LIBRARY_ATTRIBUTION = [
    body("GuidedReLU", "return lk.attribution._GuidedReLU.forward(ctx, inp)"),
    edit("""\
        inp, = ctx.saved_tensors
        return grad.clamp(min=0) * (inp > 0)""", "        return lk.attribution._GuidedReLU.backward(ctx, grad)[0]"),
    body("guided_backprop", "return lk.attribution.guided_backprop(model, x, target)"),
    body("grad_cam", "return lk.attribution.grad_cam(model, x, target, layer=layer)"),
    body("occlusion", "return lk.attribution.occlusion(model, x, target, patch=patch, stride=stride)"),
    body("rank_correlation", "return lk.sanity.rank_correlation(a, b)"),
    body("randomization_curve", """\
original = method(model, x, target)
return [lk.sanity.rank_correlation(original, method(lk.sanity.randomized(
    model, k, generator=torch.Generator().manual_seed(generator_seed)), x, target))
    for k in range(len(lk.sanity.weight_layers(model)) + 1)]"""),
]

LIBRARY_STYLE = [
    body("content_loss", 'return lk.losses.feature_match("L", target)({"L": f})'),
    body("gram", "return lk.style.gram(f)"),
    body("style_loss", "return sum(lk.losses.gram_match(l, target_grams[l])(feats) for l in layers) / len(layers)"),
    body("tv_loss", "return lk.ascent.tv(1.0)(img, None)"),
    body("style_transfer", """\
result = lk.style.transfer(net, content, [style_img], steps=steps, content_weight=content_weight,
                           style_weight=style_weight, tv_weight=tv_weight, optimizer="adam", lr=lr, progress=False)
return result.image, [float(v) for v in result.history]"""),
    body("train_step", """\
terms = lk.faststyle.loss_terms(net, transform(photos), photos, style_grams, content_weight, style_weight, tv_weight)
loss = sum(terms.values())
optimizer.zero_grad()
loss.backward()
optimizer.step()
return loss.item()"""),
]

#: {assignment: {student: (edits, {question: points})}}: the points every autograded question must
#: get (questions left out score 0).
STUDENTS = {
    "network_visualization": {
        "solution": ([], {"q1": 2, "q2": 3, "q3": 2, "q4": 1, "q5": 2}),
        "library_calls": (LIBRARY_NV, {}),
        "missing_abs": ([edit("    return grad.abs().amax(1)", "    return grad.amax(1)")],
                        {"q1": 0.5, "q2": 3, "q3": 2, "q4": 1, "q5": 2}),
        "descent": ([edit("(-logits[0, target]).backward()", "logits[0, target].backward()"),
                     edit("(-value.sum()).backward()", "value.sum().backward()")],
                    {"q1": 2, "q2": 1.2, "q3": 2, "q4": 1, "q5": 4 / 3}),
        "no_clamp": ([edit("fooled.clamp_(0, 1)", "fooled.add_(0)"), edit("img.clamp_(0, 1)", "img.add_(0)")],
                     {"q1": 2, "q2": 1.8, "q3": 2, "q4": 1, "q5": 5 / 3}),
        "l1_tv_and_penalties_added": (
            [edit("dh = (img[..., 1:, :] - img[..., :-1, :]).pow(2)", "dh = (img[..., 1:, :] - img[..., :-1, :]).abs()"),
             edit("dw = (img[..., :, 1:] - img[..., :, :-1]).pow(2)", "dw = (img[..., :, 1:] - img[..., :, :-1]).abs()"),
             edit("- l2_penalty(x, l2_weight) - tv_penalty(img, tv_weight)",
                  "+ l2_penalty(x, l2_weight) + tv_penalty(img, tv_weight)")],
            {"q1": 2, "q2": 3, "q3": 1, "q4": 0, "q5": 2}),
        "loop_without_objective_or_jitter": ([body("visualize_class", """\
img = (0.5 + 0.1 * torch.randn(1, 3, size, size, generator=generator)).clamp(0, 1).requires_grad_(True)
opt = torch.optim.Adam([img], lr=lr)
history = []
for _ in range(steps):
    value = model(preprocess(img))[:, target] - l2_penalty(preprocess(img), l2_weight) - tv_penalty(img, tv_weight)
    opt.zero_grad()
    (-value.sum()).backward()
    opt.step()
    with torch.no_grad():
        img.clamp_(0, 1)
    history.append(value.item())
return img.detach(), history""")], {"q1": 2, "q2": 3, "q3": 2, "q4": 1, "q5": 2 / 3}),
        "half_done": (unfinished("tv_penalty", "class_objective", "visualize_class"),
                      {"q1": 2, "q2": 3, "q3": 1}),
    },
    "attribution": {
        "solution": ([], {"q1": 2, "q2": 2, "q3": 2, "q4": 2, "q5": 2, "q6": 2}),
        "library_calls": (LIBRARY_ATTRIBUTION, {}),
        "relu_backward": ([edit("return grad.clamp(min=0) * (inp > 0)", "return grad * (inp > 0)")],
                          {"q1": 1, "q2": 1.5, "q3": 2, "q4": 2, "q5": 2, "q6": 2}),
        "missing_abs": ([edit("    return grad.abs().amax(1)", "    return grad.amax(1)")],
                        {"q1": 2, "q2": 0.5, "q3": 2, "q4": 2, "q5": 2, "q6": 2}),
        "gradcam_summed_no_relu": ([edit("alpha = grad.mean((2, 3), keepdim=True)", "alpha = grad.sum((2, 3), keepdim=True)"),
                                    edit("maps = F.relu((alpha * acts).sum(1, keepdim=True))", "maps = (alpha * acts).sum(1, keepdim=True)")],
                                   {"q1": 2, "q2": 2, "q3": 0, "q4": 2, "q5": 2, "q6": 2}),
        "occlusion_sum": ([edit("return total / count", "return total")],
                          {"q1": 2, "q2": 2, "q3": 2, "q4": 0.5, "q5": 2, "q6": 2}),
        "occlusion_no_flush": ([edit("return p if p[-1] == size - patch else p + [size - patch]", "return p")],
                               {"q1": 2, "q2": 2, "q3": 2, "q4": 0.5, "q5": 2, "q6": 2}),
        "signed_ranks": ([edit("zip(a.abs().flatten(1).double(), b.abs().flatten(1).double())",
                               "zip(a.flatten(1).double(), b.flatten(1).double())")],
                         {"q1": 2, "q2": 2, "q3": 2, "q4": 2, "q5": 1, "q6": 2}),
        "half_done": (unfinished("occlusion", "rank_correlation", "randomization_curve"),
                      {"q1": 2, "q2": 2, "q3": 2}),
    },
    "style": {
        "solution": ([], {"q1": 1, "q2": 2, "q3": 2, "q4": 1, "q5": 2, "q6": 2}),
        "library_calls": (LIBRARY_STYLE, {}),
        "library_losses": (LIBRARY_STYLE[:3],               # the loop and training step call these losses
                           {"q4": 1, "q5": 1.5, "q6": 1.5}),
        "content_not_relative": ([edit("return (f - target).pow(2).flatten(1).sum(1) / target.pow(2).flatten(1).sum(1)",
                                       "return (f - target).pow(2).flatten(1).sum(1)")],
                                 {"q2": 2, "q3": 2, "q4": 1, "q5": 1.5, "q6": 2}),
        "unnormalised_gram": ([edit("return flat @ flat.transpose(1, 2) / (h * w)", "return flat @ flat.transpose(1, 2)")],
                              {"q1": 1, "q2": 0.5, "q3": 2, "q4": 1, "q5": 2, "q6": 2}),
        "style_summed_over_layers": ([edit("    return total / len(layers)", "    return total")],
                                     {"q1": 1, "q2": 2, "q3": 2 / 3, "q4": 1, "q5": 2, "q6": 2}),
        "l1_tv": ([edit("dh = (img[..., 1:, :] - img[..., :-1, :]).pow(2)", "dh = (img[..., 1:, :] - img[..., :-1, :]).abs()"),
                   edit("dw = (img[..., :, 1:] - img[..., :, :-1]).pow(2)", "dw = (img[..., :, 1:] - img[..., :, :-1]).abs()")],
                  {"q1": 1, "q2": 2, "q3": 2, "q4": 0, "q5": 2, "q6": 2}),
        "ascent": ([edit("        loss.backward()\n        opt.step()", "        (-loss).backward()\n        opt.step()")],
                   {"q1": 1, "q2": 2, "q3": 2, "q4": 1, "q5": 1, "q6": 2}),
        "no_clamp": ([edit("img.clamp_(0, 1)", "img.add_(0)")], {"q1": 1, "q2": 2, "q3": 2, "q4": 1, "q5": 1, "q6": 2}),
        "batch_sum": ([edit("content_loss(feats[net.content_layer], content_target).mean()",
                            "content_loss(feats[net.content_layer], content_target).sum()"),
                       edit("style_loss(feats, style_grams, net.style_layers).mean()",
                            "style_loss(feats, style_grams, net.style_layers).sum()"),
                       edit("tv_weight * tv_loss(out).mean())", "tv_weight * tv_loss(out).sum())")],
                      {"q1": 1, "q2": 2, "q3": 2, "q4": 1, "q5": 2, "q6": 1.5}),
        "half_done": (unfinished("tv_loss", "style_transfer", "train_step"), {"q1": 1, "q2": 2, "q3": 2}),
    },
}


def _replace_body(source: str, function: str, code: str) -> str:
    start = next((i for i in (source.find(f"def {function}("), source.find(f"class {function}(")) if i >= 0), -1)
    if start < 0:
        raise KeyError(function)
    begin = source.index("# BEGIN SOLUTION\n", start)
    end = source.index("# END SOLUTION", begin)
    indent = source[source.rindex("\n", 0, begin) + 1:begin]
    line_start = source.rindex("\n", 0, end) + 1
    return source[:begin + len("# BEGIN SOLUTION\n")] + textwrap.indent(code, indent) + "\n" + source[line_start:]


def notebook(solution: Path, edits) -> nbformat.NotebookNode:
    """The solution notebook with ``edits`` applied (each must apply exactly once)."""
    nb = nbformat.read(solution, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code"]
    for kind, a, b in edits:
        if kind == "body":
            hits = [c for c in cells if f"def {a}(" in c.source or f"class {a}(" in c.source]
            if len(hits) != 1:
                raise AssertionError(f"{len(hits)} cells define {a}")
            hits[0].source = _replace_body(hits[0].source, a, b)
        else:
            hits = [c for c in cells if a in c.source]
            if len(hits) != 1 or hits[0].source.count(a) != 1:
                raise AssertionError(f"the edit {a!r} does not apply exactly once")
            hits[0].source = hits[0].source.replace(a, b)
    return nb


def definitions(nb) -> dict:
    """A namespace with what the notebook's code cells import and define (no demonstrations run)."""
    namespace = {"__name__": "__main__"}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tree = ast.parse(cell.source)
        keep = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef))
                and not (isinstance(n, ast.Import) and any(a.name == "otter" for a in n.names))]
        exec(compile(ast.Module(keep, type_ignores=[]), "<notebook>", "exec"), namespace)
    return namespace


def score(nb, autograder: Path) -> dict[str, float]:
    """{question: points} of a notebook under the tests of an autograder folder (otter assign's
    ``autograder/``, with its tests/ and the grading files), scored by otter's own test runner."""
    from otter.test_files.exception_test import ExceptionTestFile

    sys.path.insert(0, str(autograder))
    try:
        for module in ("grading_checks", "grading_reference"):
            sys.modules.pop(module, None)
        namespace = definitions(nb)
        points = {}
        for test in sorted((autograder / "tests").glob("q*.py")):
            file = ExceptionTestFile.from_file(str(test))
            file.run(namespace)
            points[file.name] = file.score
        return points
    finally:
        sys.path.remove(str(autograder))


def messages(nb, autograder: Path, question: str) -> list[str]:
    """What each failing test case of ``question`` says (for reading a failure)."""
    from otter.test_files.exception_test import ExceptionTestFile

    sys.path.insert(0, str(autograder))
    try:
        file = ExceptionTestFile.from_file(str(autograder / "tests" / f"{question}.py"))
        file.run(definitions(nb))
        return [r.message for r in file.test_case_results if not r.passed]
    finally:
        sys.path.remove(str(autograder))



