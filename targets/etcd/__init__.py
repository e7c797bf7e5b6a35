"""etcd (3.4, the Debian package) as a system under test: targets/etcd/spec.py plugs it into the run."""
