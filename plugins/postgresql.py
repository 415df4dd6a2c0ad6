"""`ceo postgresql`: PostgreSQL databases for members and clubs (see plugins/_databases.py).

A login role that owns its database, with no superuser, CREATEDB or CREATEROLE, and CONNECT on
the database revoked from PUBLIC: only its owner connects to it.
"""

from ceo.plugin import Plugin

from ._databases import Engine, declare

plugin = declare(Plugin("postgresql", "PostgreSQL databases for members and clubs: create, pwreset, delete, list"),
                 Engine("postgresql", "PostgreSQL", service="postgresql", port=5432,
                        client='psql "host={host} port={port} dbname={name} user={name}"'))
