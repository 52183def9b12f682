"""wsgate: the asyncio client for wsgate (docs/clients.md).

Connects with a token getter (never in the URL), reconnects with backoff and
full jitter, honours the server's answers, refreshes the token in band,
recovers subscriptions exactly once in order or reports recovery_failed,
matches replies to requests, signs messages (hmac, pop), and seals and opens
the payloads of end-to-end encrypted channels."""

from .client import (SUBPROTOCOL, Client, ClosedError, CloseError, DisconnectedError, Event, HandshakeError,
                     NotEncryptedError, Position, QueueFullError, RecoveryFailed, RecoveryFailedError, ServerError, Subscription,
                     TimeoutError, WsgateError)
from . import encryption, integrity
from .encryption import Encryption, EncryptionKey, Keyring
from .integrity import Signer, verify_server

__all__ = ["Client", "Subscription", "Event", "Position", "RecoveryFailed", "WsgateError", "HandshakeError",
           "ServerError", "CloseError", "TimeoutError", "ClosedError", "QueueFullError", "DisconnectedError",
           "RecoveryFailedError", "NotEncryptedError", "SUBPROTOCOL", "Signer", "verify_server", "Encryption",
           "EncryptionKey", "Keyring"]
