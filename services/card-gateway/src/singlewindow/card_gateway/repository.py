"""card-gateway's tables: none of its own. Cards are state enough; only the outbox and inbox."""

from sqlalchemy import MetaData

metadata = MetaData()
