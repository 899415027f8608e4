"""An asset row as the view every surface shows (``AssetView``), from either row source (core/rows.py).

Apart from core/inventory/assets.py (the inventory's Session functions) so that the plan review of the
one-shot ``show`` renders targets without importing SQLAlchemy (issue 15).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from core.schemas import AssetView

if TYPE_CHECKING:
    from core.rows import AssetRow


def asset_view(asset: AssetRow) -> AssetView:
    """The view of an asset row (its tags parsed, whether it has a known host key)."""
    return AssetView(
        id=asset.id,
        name=asset.name,
        connection=asset.connection,
        host=asset.host,
        port=asset.port,
        base_url=asset.base_url,
        tags=json.loads(asset.tags_json),
        credential_ref=asset.credential_ref,
        has_known_host_key=bool(asset.known_host_key),
        known_host_key=asset.known_host_key,
        skip_host_key=asset.skip_host_key,
    )
