"""Sphinx configuration of the sk_gpusgd documentation.

Build with ``sphinx-build -W -b html docs docs/_build/html`` from the
repository root; the gallery runs ``examples/plot_*.py`` on the CPU.
"""

import os
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))  # document this checkout, installed or not
os.environ.setdefault("MPLBACKEND", "Agg")

import sk_gpusgd  # noqa: E402

project = "sk_gpusgd"
author = "sk_gpusgd developers"
copyright = "sk_gpusgd developers"
version = release = sk_gpusgd.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "auto_examples/*.md5"]
html_static_path = ["_static"]
html_theme = "pydata_sphinx_theme"
html_title = f"sk_gpusgd {release}"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
html_show_sourcelink = False

# ----------------------------------------------------------------- API pages
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": True}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

# Every name sk_gpusgd exports needs its line in api.rst's autosummary list.
_api_text = (DOCS / "api.rst").read_text()
_missing = [name for name in sk_gpusgd.__all__ if f"\n   {name}\n" not in _api_text]
if _missing:
    raise RuntimeError(
        f"docs/api.rst has no entry for the public name(s) {_missing}: add each on its "
        "own line, indented by three spaces, under the autosummary directive there."
    )

# ------------------------------------------------------------------ gallery
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py|quickstart\.py",
    "within_subsection_order": "FileNameSortKey",
    "doc_module": ("sk_gpusgd",),
    "backreferences_dir": "generated/backreferences",
    "abort_on_example_error": True,
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_signature": False,
}


def _skip_metadata_routing(app, what, name, obj, skip, options):
    """scikit-learn's generated metadata-routing methods point into its own docs."""
    if name == "get_metadata_routing" or (name.startswith("set_") and name.endswith("_request")):
        return True
    return None


def _unlink_scikit_learn_labels(app, what, name, obj, options, lines):
    """Inherited scikit-learn docstrings (``score``, the searches' methods) cite labels and
    glossary terms of its own docs: keep the text (a term as a literal: ``classes_``)."""
    for index, line in enumerate(lines):
        line = re.sub(r":ref:`([^`<]+?)\s*(<[^`>]*>)?`", r"\1", line)
        lines[index] = re.sub(r":term:`([^`<]+?)\s*(<[^`>]*>)?`", r"``\1``", line)


def setup(app):
    app.connect("autodoc-skip-member", _skip_metadata_routing)
    app.connect("autodoc-process-docstring", _unlink_scikit_learn_labels)
