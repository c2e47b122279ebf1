"""Official format definitions shipped with the package (read through ``importlib.resources``).

``bmecat-1.2/`` is the official BMEcat 1.2 XML Schema (``bmecat_new_catalog_1_2.xsd`` and the files it
includes), unchanged; the product validates every BMEcat file against it and the tests use the same copy.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from functools import cache
from importlib.resources import as_file, files
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lxml import etree

BMECAT12_DIR = "bmecat-1.2"
BMECAT12_XSD = "bmecat_new_catalog_1_2.xsd"


def bmecat12_dir() -> AbstractContextManager[Path]:
    """The schema folder as a real path for as long as the context is open (the xsd includes
    its sibling files by relative name, so lxml needs the folder, not a stream)."""
    return as_file(files(__name__) / BMECAT12_DIR)


@cache
def bmecat12_schema() -> etree.XMLSchema:
    """The official BMEcat 1.2 schema (T_NEW_CATALOG), parsed once per process."""
    from lxml import etree

    with bmecat12_dir() as folder:
        return etree.XMLSchema(etree.parse(str(folder / BMECAT12_XSD)))
