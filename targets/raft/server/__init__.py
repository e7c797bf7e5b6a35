"""The internal Raft store's real server: the asyncio shell around the sans-IO core.

    python -m splitbrain.targets.raft.server --id n1 --listen HOST:PORT --peers n1=HOST:PORT,... --data-dir DIR
        [--client-listen HOST:PORT] [--bug NAME ...]      (see __main__.py for every option)

- ``node.py``        RaftServer: drives the core (ticks, Ready loop, group commit), answers clients
- ``storage.py``     DurableLog: the CRC'd, fsync'd write-ahead log; torn tails cut, corruption refused
- ``transport.py``   PeerTransport: length-prefixed JSON frames between peers over TCP
- ``coalesce.py``    combining the replication messages of one Ready
- ``http_api.py``    HttpApi: the HTTP/JSON client API (endpoints and error semantics in its docstring)
- ``local_cluster.py`` LocalCluster: N server processes on loopback, for tests and the benchmark

Client side: ``targets.raft.client.RaftClient`` maps every answer to ok / fail / info.
"""
