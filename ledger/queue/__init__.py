"""The hot queue: Redis keys, Lua scripts (one per operation) and the client wrapper.

Redis holds only what workers need to find work fast; the SQL log is the truth.
Everything here can be lost and rebuilt by ``ledger.relay`` from the log.
"""

from ledger.queue.hotqueue import Claim, Depths, HotQueue
from ledger.queue.keys import QueueKeys

__all__ = ["Claim", "Depths", "HotQueue", "QueueKeys"]
