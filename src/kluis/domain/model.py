"""The records the domain hands out and takes in, for the layers above (which never import the store).

They are the store's plain rows; the domain gives them meaning. Only the composition root
(``kluis.api.runtime``) may import ``kluis.store`` itself.
"""

from kluis.store.records import (
    AuditQuery,
    AuditRecord,
    GroupRecord,
    ObjectRecord,
    PolicyRecord,
    PrincipalRecord,
    VaultRecord,
    VersionRecord,
)

__all__ = [
    "AuditQuery",
    "AuditRecord",
    "GroupRecord",
    "ObjectRecord",
    "PolicyRecord",
    "PrincipalRecord",
    "VaultRecord",
    "VersionRecord",
]
