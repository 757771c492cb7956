"""The records the domain hands out and takes in, for the layers above (which never import the store).

They are the store's plain rows; the domain gives them meaning. Only the composition root
(``kluis.api.runtime``) may import ``kluis.store`` itself. The list of names is the records module's own.
"""

from kluis.store.records import *  # noqa: F403 - every record type, as kluis.store.records exports them
from kluis.store.records import __all__ as __all__
