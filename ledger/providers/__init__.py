"""Payment providers: handlers for ``ledger worker --handler`` that speak a real provider's API.

Each provider is a package (``ledger.providers.toss``) whose handler returns a
``ledger.ProviderResult`` and carries ``poll`` and ``cancel``. The composing
layer (``ledger.http``, ``ledger.compose``) wires its webhook route and its
demo; the write side never imports a provider.
"""
