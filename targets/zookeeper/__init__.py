"""ZooKeeper as a system under test: a QuorumPeerMain JVM per node, kazoo clients (see client.py)."""
