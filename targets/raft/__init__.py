"""splitbrain's own replicated store: a sans-IO Raft core, its simulator and its asyncio server."""
