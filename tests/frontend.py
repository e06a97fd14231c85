"""Messages a widget front end sends to the kernel, for tests that act as the browser.

A file chosen in a FileUpload reaches the kernel as one comm "update" whose file contents travel
as binary buffers, in the shape of the installed ipywidgets' JavaScript model:

* ipywidgets 8 (@jupyter-widgets/controls 2.x): ``value`` is a list of
  ``{name, type, size, last_modified, content}``, each ``content`` a buffer;
* ipywidgets 7 (@jupyter-widgets/controls 1.x, what Colab renders): ``metadata`` (a list of
  ``{name, type, size, lastModified}``), ``data`` (the buffers) and ``_counter`` raised by the
  number of files, whose change makes the kernel side build ``value``.
"""
import ipywidgets

MAJOR = int(ipywidgets.__version__.split(".")[0])


def upload_update(files: dict[str, bytes], counter: int = 0, major: int = MAJOR,
                  mime: str = "image/png") -> tuple[dict, list[bytes]]:
    """(the comm message's data, its buffers) for choosing ``files`` ({name: content}) in the upload
    button; ``counter`` is the widget's ``_counter`` before (ipywidgets 7 only)."""
    names = list(files)
    if major >= 8:
        value = [{"name": n, "type": mime, "size": len(files[n]), "last_modified": 1_700_000_000_000, "content": None}
                 for n in names]
        data = {"method": "update", "state": {"value": value, "error": ""},
                "buffer_paths": [["value", i, "content"] for i in range(len(names))]}
    else:
        metadata = [{"name": n, "type": mime, "size": len(files[n]), "lastModified": 1_700_000_000_000} for n in names]
        data = {"method": "update",
                "state": {"_counter": counter + len(names), "metadata": metadata, "data": [None] * len(names), "error": ""},
                "buffer_paths": [["data", i] for i in range(len(names))]}
    return data, [files[n] for n in names]


def upload(widget, files: dict[str, bytes]) -> None:
    """Choose ``files`` in a FileUpload in this process, through the widget's own message handler."""
    data, buffers = upload_update(files, getattr(widget, "_counter", 0))
    widget._handle_msg({"content": {"comm_id": widget.model_id, "data": data},
                        "buffers": [memoryview(b) for b in buffers]})
