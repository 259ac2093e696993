"""Clean shutdown through the server itself, with a bounded wait for secondaries and quiesce."""

from __future__ import annotations

from pymongo import MongoClient
from pymongo.errors import AutoReconnect, ConnectionFailure, OperationFailure, PyMongoError

# Since 5.0 a mongod quiesces for timeoutSecs before it exits. Nodes being shut down by a step no longer
# serve the application (the deploy-client-v1 gate), so a short quiesce is enough.
QUIESCE_SECS = 2


def request_shutdown(host: str, timeout_secs: int = 10, *, force: bool = True, client: MongoClient | None = None,
                     ) -> bool:
    """Ask the mongod at host to shut down. The driver's AutoReconnect there means it did.

    Returns False when the node could not be reached (already down). `force` lets a primary stop even when
    no secondary is caught up within timeout_secs.
    """
    own = client is None
    client = client or MongoClient(host, directConnection=True, serverSelectionTimeoutMS=2000)
    try:
        client.admin.command("shutdown", 1, timeoutSecs=timeout_secs, force=force)
    except (AutoReconnect, ConnectionFailure):
        return True
    except OperationFailure as exc:
        if exc.code in (13, 18):  # Unauthorized / AuthenticationFailed (arbiters hold no users): host manager
            return False
        raise
    except PyMongoError:
        return False
    finally:
        if own:
            client.close()
    return True
