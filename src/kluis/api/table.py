"""The one route table: every endpoint kluis serves, joined from each resource family's rows.

A resource family is one handler module plus its rows; adding one is adding it here.
"""

from __future__ import annotations

from kluis.api import admin, keys, oauth, secrets
from kluis.api.routes import Route, Router

__all__ = ["NOT_YET", "ROUTER", "ROUTES"]

ROUTES: tuple[Route, ...] = (*keys.ROUTES, *secrets.ROUTES, *admin.ROUTES, *oauth.ROUTES)
ROUTER = Router(ROUTES)

# Data-plane collections of Azure's REST API that kluis does not serve yet: authenticated, then 501.
NOT_YET = frozenset({"certificates", "deletedcertificates", "storage"})
