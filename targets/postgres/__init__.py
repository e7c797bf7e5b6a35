"""PostgreSQL 15 (the Debian package) as a system under test: targets/postgres/spec.py plugs it into the run."""
