"""Search-space readers and writers, and :func:`load_space`.

Three file formats are understood:

- ``spaces.formats.native``: archtune's own YAML (``docs/spaces-yaml.md``);
- ``spaces.formats.configspace``: ConfigSpace 1.x JSON and YAML;
- ``spaces.formats.nni``: NNI search-space JSON.

Every reader builds all parameters, conditions and forbidden clauses first and constructs the
:class:`~spaces.core.SearchSpace` once, so a bad file never half-loads. Every problem is reported
as a :class:`~spaces.errors.SpaceError` whose message names the file, the parameter and the rule.

Example::

    from spaces.formats import load_space
    space = load_space("quicktune")            # a library space
    space = load_space("my_space.yaml")        # native or ConfigSpace YAML (auto-detected)
    space = load_space("search_space.json")    # ConfigSpace or NNI JSON (auto-detected)
"""
from __future__ import annotations

from spaces.formats.loading import detect_format, load_space, read, write

__all__ = ["load_space", "detect_format", "read", "write"]
